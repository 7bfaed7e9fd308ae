"""The audit record: a versioned schema of everything needed to explain a decision later.

Built from what the service knew when it answered: the (redacted) input, the model's raw
output (capped), the score fields, outcome, reasons, rules, fallback cause, upstream
status and latency, total latency and the caller's request id. The store adds `seq` and
the hash chain.

Pure: imports the stdlib and msgspec only (and the decision types).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from guardrails.decide import RuleFired
from guardrails.policy.inputs import FieldError, InputField, InputSchema

SCHEMA_VERSION = 1
MAX_MODEL_OUTPUT_CHARS = 16 * 1024
HASH_PREFIX = "hmac-sha256:"


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    schema_version: int = SCHEMA_VERSION
    decision_id: str
    ts_ms: int
    kind: Literal["decision", "rejected", "shadow"]
    endpoint: Literal["decide", "batch"]
    policy: str
    policy_version: str
    policy_label: str | None
    input: dict[str, Any]
    model_output: str | None = None
    model_output_truncated: bool = False
    score: float | None = None
    confidence: float | None = None
    margin: float | None = None
    label: str | None = None
    outcome: str | None = None
    reasons: list[str] = []
    rules: list[RuleFired] = []
    threshold: int | None = None
    fallback: str | None = None
    fallback_detail: str | None = None
    errors: list[FieldError] | None = None
    model_status: str = "skipped"
    model_http_status: int | None = None
    model_latency_ms: float | None = None
    model_attempts: int = 0
    latency_ms: float | None = None
    request_id: str | None = None
    shadow_of: str | None = None  # kind "shadow": the live policy it was decided beside
    live_decision_id: str | None = None  # kind "shadow": the live decision it shadows


class StoredRecord(msgspec.Struct, frozen=True):
    """A record as the store keeps it: its place in the chain and the record."""

    seq: int
    prev_hash: str
    hash: str
    record: AuditRecord


def redact(schema: InputSchema, values: Mapping[str, Any], key: bytes | None) -> dict[str, Any]:
    """The input as the audit log may keep it: `audit: hash` fields keyed-hashed, `drop` fields gone.

    Only declared fields are kept: a rejected request's undeclared fields are named in its
    errors, their values are not stored. A validated input holds declared fields only, so it
    is copied whole and only its hashed and dropped fields are touched (once per decision).
    """
    if values.keys() <= schema.names:
        kept = dict(values)
    else:
        kept = {name: value for name, value in values.items() if name in schema.names}
    for name in schema.audit_dropped:
        kept.pop(name, None)
    for name in schema.audit_hashed:
        value = kept.get(name)
        if value is not None:
            kept[name] = hash_value(value, key)
    return kept


def redact_errors(fields: Sequence[InputField], errors: list[FieldError] | None) -> list[FieldError] | None:
    """Input errors as the audit log may keep them.

    A message can show the value it is about (`got a number 12.5`, `got "XX"`), so the message
    of an error on a `hash` or `drop` field is replaced by one that names only the field and the
    constraint it broke.
    """
    hidden = {f.name: f.audit for f in fields if f.audit != "keep"}
    if not errors or not hidden:
        return errors
    return [
        FieldError(
            e.field, e.constraint, f"`{e.field}` broke `{e.constraint}` (value not recorded: audit: {hidden[e.field]})"
        )
        if e.field in hidden
        else e
        for e in errors
    ]


def hash_value(value: Any, key: bytes | None) -> str:
    """HMAC-SHA256 of the value's JSON: equal values group together, none can be read back."""
    if key is None:
        raise ValueError("a field is marked `audit: hash` but no audit key is set (GUARDRAILS_AUDIT_KEY)")
    inner, outer = _hmac_pads(key)
    digest = inner.copy()
    digest.update(msgspec.json.encode(value))
    result = outer.copy()
    result.update(digest.digest())
    return HASH_PREFIX + result.hexdigest()


@functools.lru_cache(maxsize=8)
def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's inner and outer hashes with the key's pads already absorbed (RFC 2104), once per key.

    `hmac.new` and `hmac.digest` look the digest up in OpenSSL's provider tables on every
    call: in the running server that made one hashed field cost more than the rest of its
    audit record. Copying a started hash does not. tests/audit_durability/test_redaction.py
    holds this to `hmac.new` for keys and values of every size.
    """
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    return inner, outer


def is_hashed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(HASH_PREFIX)


def cap_output(raw: bytes | None) -> tuple[str | None, bool]:
    """The model's raw output as text, cut at MAX_MODEL_OUTPUT_CHARS."""
    if raw is None:
        return None, False
    text = raw.decode("utf-8", errors="replace")
    if len(text) > MAX_MODEL_OUTPUT_CHARS:
        return text[:MAX_MODEL_OUTPUT_CHARS], True
    return text, False
