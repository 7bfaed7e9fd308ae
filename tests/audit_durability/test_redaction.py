"""Redaction as the audit file holds it: `audit: hash` fields keyed-hashed, `audit: drop` fields nowhere.

The raw bytes of the database, its WAL and its shared-memory file are searched, so a value
that leaked anywhere (the input, an error message, an index) is found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.audit.record import hash_value, redact
from guardrails.policy.inputs import InputField, InputSchema
from tests.audit_durability.support import (
    AUDIT_KEY,
    DROPPED_FIELD,
    VALID,
    ServeFactory,
    decide,
    decision_ids,
    open_audit,
)

OTHER_KEY = "another-audit-key"
ALICE, BOB = "alice@example.com", "bob@example.com"
# A number where a string is expected: the type error's message shows the value.
SECRETS = (b"DROPPED-7431-SECRET", b"55500011122.5", b"98765432101.5")
HASHED_RAW = (ALICE.encode(), BOB.encode(), b"12345678909.5")
MISSING_KEY = (
    "error: credit-risk.email is marked `audit: hash`, which needs a secret key: set GUARDRAILS_AUDIT_KEY "
    "(for example `export GUARDRAILS_AUDIT_KEY=$(openssl rand -hex 32)`), or run with --no-audit\n"
)


def raw_bytes(audit: Path) -> bytes:
    """The database and whatever sits beside it (-wal, -shm), as bytes."""
    return b"".join(path.read_bytes() for path in sorted(audit.parent.glob(f"{audit.name}*")))


def inputs_by_id(audit: Path) -> dict[str, dict[str, Any]]:
    connection = open_audit(audit)
    try:
        rows = connection.execute("SELECT decision_id, record FROM decisions").fetchall()
    finally:
        connection.close()
    return {decision_id: json.loads(record)["input"] for decision_id, record in rows}


def send(client: httpx.Client, url: str, body: dict[str, Any], status: int) -> str:
    response = decide(client, url, body)
    assert response.status_code == status, response.text
    [decision_id] = decision_ids(response)
    return decision_id


def test_hashed_fields_group_by_value_and_key_and_dropped_fields_are_never_written(
    tmp_path: Path, serve: ServeFactory
) -> None:
    audit = tmp_path / "audit.db"
    server = serve(audit)
    secret = SECRETS[0].decode()
    with httpx.Client(timeout=10) as client:
        alice_1 = send(client, server.url, {**VALID, "email": ALICE, DROPPED_FIELD: secret}, 200)
        alice_2 = send(client, server.url, {**VALID, "amount": 99, "email": ALICE, DROPPED_FIELD: secret}, 200)
        bob = send(client, server.url, {**VALID, "email": BOB, DROPPED_FIELD: secret}, 200)
        # Rejected inputs: the values of hashed and dropped fields must not reach the record's errors either.
        send(client, server.url, {**VALID, DROPPED_FIELD: float(SECRETS[1])}, 422)
        send(client, server.url, {**VALID, "amount": -1, DROPPED_FIELD: secret + "-and-far-too-long"}, 422)
        send(client, server.url, {**VALID, "email": float(HASHED_RAW[2]), DROPPED_FIELD: float(SECRETS[2])}, 422)
        batch = client.post(
            f"{server.url}/v1/decide/credit-risk/batch",
            json={"instances": [{**VALID, "email": BOB, DROPPED_FIELD: secret}]},
        )
        assert batch.status_code == 200, batch.text
        [bob_batch] = decision_ids(batch)
        written = raw_bytes(audit)  # while the server runs: the WAL holds the records
    server.terminate()

    inputs = inputs_by_id(audit)
    assert inputs[alice_1]["email"] == inputs[alice_2]["email"] == hash_value(ALICE, AUDIT_KEY.encode())
    assert inputs[alice_1]["email"].startswith("hmac-sha256:")
    assert inputs[bob]["email"] == inputs[bob_batch]["email"] != inputs[alice_1]["email"]
    assert inputs[alice_1]["email"] != hash_value(ALICE, OTHER_KEY.encode())  # the key, not only the value, decides
    assert all(DROPPED_FIELD not in fields for fields in inputs.values())
    for data in (written, raw_bytes(audit)):
        for value in (*SECRETS, *HASHED_RAW):
            assert value not in data, f"{value!r} is in the audit file"


def test_serve_refuses_to_start_without_the_audit_key(tmp_path: Path, serve: ServeFactory) -> None:
    server = serve(tmp_path / "audit.db", key=None, start=False)
    code, stderr = server.run_to_exit()
    assert code == 2
    assert stderr == MISSING_KEY
    assert not (tmp_path / "audit.db").exists()


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=1, max_size=200),  # shorter than, as long as, and longer than SHA-256's 64-byte block
    value=st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none(), st.lists(st.text(), max_size=3)),
)
def test_hash_value_is_hmac_sha256_of_the_json(key: bytes, value: Any) -> None:
    expected = hmac.new(key, msgspec.json.encode(value), hashlib.sha256).hexdigest()
    assert hash_value(value, key) == "hmac-sha256:" + expected


NAMES = ("a", "b", "c", "d", "e")
KEY = b"redaction-test-key"


def redacted_field_by_field(fields: tuple[InputField, ...], values: dict[str, Any]) -> dict[str, Any]:
    """What `redact` must give, written the plain way: each declared field given, as its `audit` says."""
    kept: dict[str, Any] = {}
    for f in fields:
        if f.name not in values or f.audit == "drop":
            continue
        value = values[f.name]
        kept[f.name] = hash_value(value, KEY) if f.audit == "hash" and value is not None else value
    return kept


@settings(max_examples=300, deadline=None)
@given(
    audits=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["keep", "hash", "drop"]), max_size=4),
    values=st.dictionaries(
        st.sampled_from([*NAMES, "undeclared"]), st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=6
    ),
)
def test_redact_keeps_declared_fields_as_their_audit_says(audits: dict[str, str], values: dict[str, Any]) -> None:
    """Validated inputs (declared fields only) and raw ones (undeclared fields too) alike."""
    fields = tuple(
        InputField(name, "str", False, None, None, None, None, None, audit)  # type: ignore[arg-type]
        for name, audit in audits.items()
    )
    schema = InputSchema("redaction", fields, reject_extra=False)
    assert redact(schema, values, KEY) == redacted_field_by_field(fields, values)
