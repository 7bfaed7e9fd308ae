"""Replay of traffic recorded by the real service: the app on a loopback port, a real model server.

Requests (single and batch, valid and not, with the model answering and failing) go through
`build_app` with a `SQLiteAuditStore`; then the recorded decisions are replayed. The policy
itself changes nothing; a changed candidate agrees, record by record, with one-by-one replay.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from guardrails.app import build_app
from guardrails.audit.record import AuditRecord
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.demo.model import ModelServer
from guardrails.policy.load import load_policy_text
from guardrails.replay import replay_audit
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

from .conftest import LENDING, edit
from .test_agreement import one_by_one, over_columns, plan_for, stored_rows


def lending_request(rng: random.Random) -> dict[str, Any]:
    item: dict[str, Any] = {
        "amount": rng.choice([100, 1200, 9000, 60000, round(rng.uniform(0, 90000), 2)]),
        "account_age_days": rng.choice([5, 30, 400, 2000]),
        "income": rng.choice([12000, 52000, 150000]),
        "country": rng.choice(["US", "GB", "DE", "KP"]),
    }
    optional = [
        ("prior_defaults", rng.choice([0, 1, 3])),
        ("segment", "vip"),
        ("email", "a@example.com"),
        ("phone", "+15550000"),
        ("verified", rng.random() < 0.5),
    ]
    for name, value in optional:
        if rng.random() < 0.4:
            item[name] = value
    if rng.random() < 0.08:
        item["amount"] = -1  # invalid: the policy's fallback, recorded with the input as sent
    return item


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    path = tmp_path_factory.mktemp("service") / "audit.db"
    model = ModelServer()
    with ServerThread(model) as upstream:
        policy_text = edit(LENDING, ("http://127.0.0.1:9", upstream.url))
        policy = load_policy_text(policy_text, "lending.yaml")
        store = SQLiteAuditStore(path)
        app = build_app([policy], ServerSettings(audit_key=b"service-test-key"), audit=store)
        rng = random.Random(3)
        with ServerThread(app) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
            for n in range(90):
                if n == 60:
                    model.mode = "error"  # the rest fall back: upstream_error
                if n % 10 == 9:
                    batch = [lending_request(rng) for _ in range(5)]
                    client.post("/v1/decide/lending/batch", json={"instances": batch})
                else:
                    client.post("/v1/decide/lending", json=lending_request(rng))
        store.close()
    yield path, policy_text


def test_the_recorded_policy_itself_changes_nothing(recorded: tuple[Path, str]) -> None:
    path, policy_text = recorded
    report = replay_audit(load_policy_text(policy_text, "lending.yaml"), path)
    assert report.read == 126  # 81 single requests, 9 batches of 5
    unscored = report.not_replayable_unscored  # invalid inputs
    assert (report.replayed, report.changed, report.not_replayable) == (report.read - unscored, 0, unscored)
    assert {t.from_ for t in report.transitions} == {"approve", "review", "decline"}
    assert all(r.recorded == r.candidate for r in report.rules)
    assert all(r.recorded == r.candidate for r in report.reasons)
    records = [msgspec.json.decode(blob, type=AuditRecord) for _, blob in stored_rows(path, "lending")]
    assert {r.fallback for r in records} >= {None, "input_invalid", "upstream_error"}  # and the open circuit
    assert {r.endpoint for r in records} == {"decide", "batch"}


def test_a_changed_candidate_agrees_with_one_by_one_on_service_traffic(recorded: tuple[Path, str]) -> None:
    path, policy_text = recorded
    candidate = edit(
        policy_text,
        ("score >= 0.85", "score >= 0.3"),
        ("reason: SANCTIONED_COUNTRY, final: true}", "reason: SANCTIONED_COUNTRY}"),
        ("in: [US, CA, GB, DE, FR, KP]", "in: [US, GB, DE, KP]"),
    )
    plan = plan_for(candidate, path)
    rows = stored_rows(path, "lending")
    expected = [one_by_one(plan, blob)[1] for _, blob in rows]
    assert [have for have, _ in over_columns(plan, rows, 16)] == expected
    report = replay_audit(plan.candidate, path)
    assert report.changed > 10
    reads_email = edit(
        policy_text,
        ("outcomes: [", '  - {name: known, when: email == "a", outcome: review, reason: KNOWN}\noutcomes: ['),
    )
    hashed = replay_audit(load_policy_text(reads_email, "candidate.yaml"), path)
    assert hashed.not_replayable > 0
    assert [(u.field, u.dropped) for u in hashed.not_replayable_inputs] == [("email", 0)]
