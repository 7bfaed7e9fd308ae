"""Recorded traffic for the replay tests, written the way the service writes it.

Each decision is made with `decide` (or is the policy's `fallback` for a cause), turned into
its audit record by `AuditRecorder` (redaction included: `email` hashed, `phone` dropped)
and appended to a real `SQLiteAuditStore`; the policy's source is kept with `add_policy`.
The clock is passed in, so timestamps are known: record i is at T0 + i seconds.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guardrails.audit.record import AuditRecord
from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.decide import CAUSES, Decision, decide_row, fallback
from guardrails.envelope import ModelCall
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text
from guardrails.replay_record import as_cause

T0 = 1_700_000_000_000
KEY = b"replay-tests-key"

LENDING = """\
policy: lending
version: "v2"
owner: tests@example.com
upstream:
  url: http://127.0.0.1:9/v2/models/credit/infer
  protocol: v2
  tensor: {name: x, features: [amount, account_age_days, income, prior_defaults]}
  output: predict_proba
inputs:
  amount:           {type: float, min: 0, max: 1000000}
  account_age_days: {type: int, min: 0}
  income:           {type: float, min: 0}
  prior_defaults:   {type: int, min: 0, default: 0}
  country:          {type: str, in: [US, CA, GB, DE, FR, KP]}
  segment:          {type: str, in: [standard, vip], default: standard}
  email:            {type: str, max_length: 254, required: false, audit: hash}
  phone:            {type: str, required: false, audit: drop}
  verified:         {type: bool, required: false}
  note:             {type: str, required: false, max_length: 20}
on_invalid: fallback
score: {labels: [good, bad], positive: bad}
thresholds:
  - {when: score >= 0.85, outcome: decline, reason: HIGH_RISK}
  - {when: score >= 0.5 or confidence < 0.6, outcome: review, reason: UNCERTAIN}
  - {outcome: approve, reason: LOW_RISK}
rules:
  - {name: sanctioned-country, when: 'country in ["KP"]', outcome: decline, reason: SANCTIONED_COUNTRY, final: true}
  - name: large-amount-new-account
    when: amount > 50000 and account_age_days < 90 and outcome == "approve"
    outcome: review
    reason: LARGE_AMOUNT_NEW_ACCOUNT
  - {name: vip-never-auto-declined, when: segment == "vip" and outcome == "decline", outcome: review, reason: VIP}
  - {name: unverified-large, when: verified == false and amount > 20000, outcome: review, reason: UNVERIFIED}
  - {name: repeat-defaulter, when: prior_defaults >= 2, outcome: decline, reason: REPEAT_DEFAULTER, mode: shadow}
outcomes: [approve, review, decline]
fallback: {outcome: review, reason: MODEL_UNAVAILABLE}
"""


def edit(text: str, *replacements: tuple[str, str]) -> str:
    """`text` with each (old, new) replaced; each old must be there."""
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


# The version before LENDING: no `note`, a lower decline threshold, no vip rule.
LENDING_V1 = edit(
    LENDING,
    ('version: "v2"', 'version: "v1"'),
    ("  note:             {type: str, required: false, max_length: 20}\n", ""),
    ("score >= 0.85", "score >= 0.9"),
    (
        '  - {name: vip-never-auto-declined, when: segment == "vip" and outcome == "decline", outcome: review, '
        "reason: VIP}\n",
        "",
    ),
)

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "KP")


def valid_input(rng: random.Random, with_note: bool = True) -> dict[str, Any]:
    """A request a caller could send: varied, optional fields sometimes left out."""
    new_account = rng.random() < 0.2
    item: dict[str, Any] = {
        "amount": round(rng.lognormvariate(9.5, 1.5), 2) if rng.random() < 0.9 else rng.choice([0, 25000, 60000]),
        "account_age_days": rng.randrange(0, 90) if new_account else rng.randrange(90, 4000),
        "income": round(rng.lognormvariate(10.8, 0.6), 2),
        "country": rng.choices(COUNTRIES, weights=(40, 15, 15, 12, 15, 3))[0],
    }
    item["amount"] = min(item["amount"], 1_000_000.0)
    optional: list[tuple[str, Callable[[], Any]]] = [
        ("prior_defaults", lambda: rng.choice([0, 0, 1, 2, 3])),
        ("segment", lambda: rng.choice(["standard", "vip"])),
        ("email", lambda: f"user{rng.randrange(50)}@example.com"),
        ("phone", lambda: f"+1555{rng.randrange(10_000):04d}"),
        ("verified", lambda: rng.random() < 0.7),
    ]
    if with_note:
        optional.append(("note", lambda: rng.choice(["", "repeat customer", "called twice", "x" * 20])))
    for name, value in optional:
        if rng.random() < 0.5:
            item[name] = value()
    return item


def invalid_input(rng: random.Random) -> dict[str, Any]:
    item = valid_input(rng)
    kind = rng.randrange(5)
    if kind == 0:
        item["amount"] = -5
    elif kind == 1:
        item["country"] = "XX"
    elif kind == 2:
        item["account_age_days"] = "old"
    elif kind == 3:
        del item["income"]
    else:
        item["unexpected"] = 1
    return item


@dataclass
class Traffic:
    path: Path
    policies: dict[str, CompiledPolicy]  # by version label
    count: int


def write_traffic(
    path: Path,
    plan: list[tuple[CompiledPolicy, int]],
    seed: int = 7,
    keep_source: bool = True,
    extra: list[tuple[CompiledPolicy, str, dict[str, Any], Decision]] | None = None,
) -> int:
    """Record `count` varied decisions of each (policy, count) in turn; return how many were written."""
    rng = random.Random(seed)
    store = SQLiteAuditStore(path, "async")
    clock = iter(range(T0, T0 + 10**9, 1000))
    recorder = AuditRecorder(store, KEY, lambda: next(clock))
    records: list[AuditRecord] = []
    n = 0
    for policy, count in plan:
        if keep_source:
            store.add_policy(policy, T0)
        with_note = any(f.name == "note" for f in policy.inputs.fields)
        for _ in range(count):
            records.append(_one(rng, recorder, policy, with_note, f"d-{n:06d}"))
            n += 1
    for policy, decision_id, values, decision in extra or []:
        records.append(_record(recorder, policy, decision, decision_id, values, None))
        n += 1
    asyncio.run(store.append(records))
    store.flush()
    store.close()
    return n


def write_decisions(
    path: Path, policy: CompiledPolicy, items: list[tuple[dict[str, Any], float | str]], keep_source: bool = True
) -> None:
    """Record one decision per (input, score or fallback cause); ids d-000000, d-000001, ..."""
    store = SQLiteAuditStore(path, "async")
    clock = iter(range(T0, T0 + 10**9, 1000))
    recorder = AuditRecorder(store, KEY, lambda: next(clock))
    if keep_source:
        store.add_policy(policy, T0)
    records = []
    for n, (raw, given) in enumerate(items):
        checked = policy.inputs.from_mapping(raw)
        output = None
        if isinstance(checked, list):
            decision, values = fallback(policy, "input_invalid", errors=checked), raw
        elif isinstance(given, str):
            decision, values = fallback(policy, as_cause(given), "it failed"), checked
        else:
            output = msgspec.json.encode(given)
            decision, values = decide_row(policy, checked, given), checked
        records.append(_record(recorder, policy, decision, f"d-{n:06d}", values, output))
    asyncio.run(store.append(records))
    store.flush()
    store.close()


def _one(
    rng: random.Random, recorder: AuditRecorder, policy: CompiledPolicy, with_note: bool, decision_id: str
) -> AuditRecord:
    roll = rng.random()
    if roll < 0.06:
        raw = invalid_input(rng)
        checked = policy.inputs.from_mapping(raw)
        assert isinstance(checked, list), raw
        return _record(recorder, policy, fallback(policy, "input_invalid", errors=checked), decision_id, raw, None)
    values = policy.inputs.from_mapping(valid_input(rng, with_note))
    assert isinstance(values, dict)
    if roll < 0.14:
        cause = rng.choice([c for c in CAUSES if c != "input_invalid"])
        return _record(recorder, policy, fallback(policy, cause, "it failed"), decision_id, values, None)
    p_bad = rng.random() ** 2 if rng.random() < 0.8 else rng.betavariate(5, 1)
    if rng.random() < 0.05:
        p_bad = rng.choice([0.5, 0.85, 0.9, 0.0, 1.0])
    row = [1.0 - p_bad, p_bad]
    decision = decide_row(policy, values, row)
    return _record(recorder, policy, decision, decision_id, values, msgspec.json.encode(row))


def _record(
    recorder: AuditRecorder,
    policy: CompiledPolicy,
    decision: Decision,
    decision_id: str,
    values: dict[str, Any],
    output: bytes | None,
) -> AuditRecord:
    model = ModelCall("ok", 1.0, 200, 1) if output is not None else ModelCall("skipped")
    return recorder.decision(
        policy,
        decision,
        decision_id=decision_id,
        endpoint="decide",
        values=values,
        model=model,
        model_output=output,
        latency_ms=2.0,
        request_id=None,
    )


@pytest.fixture(scope="session")
def lending() -> CompiledPolicy:
    return load_policy_text(LENDING, "lending.yaml")


@pytest.fixture(scope="session")
def lending_v1() -> CompiledPolicy:
    return load_policy_text(LENDING_V1, "lending-v1.yaml")


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory, lending: CompiledPolicy, lending_v1: CompiledPolicy) -> Traffic:
    """3,000 decisions recorded under two versions of `lending`, and 200 of another policy."""
    path = tmp_path_factory.mktemp("replay") / "audit.db"
    other = load_policy_text(edit(LENDING, ("policy: lending", "policy: other")), "other.yaml")
    count = write_traffic(path, [(lending_v1, 1000), (other, 200), (lending, 2000)])
    return Traffic(path, {"v1": lending_v1, "v2": lending}, count)


@pytest.fixture
def candidate_file(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    def write(text: str, name: str = "candidate.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    yield write


LOANS = """\
policy: loans
owner: tests@example.com
upstream: {url: "http://127.0.0.1:9/score", protocol: json, score_path: score}
inputs:
  amount: {type: float, min: 0}
  email:  {type: str, required: false, audit: hash}
  phone:  {type: str, required: false, audit: drop}
on_invalid: fallback
thresholds:
  - {when: score >= 0.8, outcome: decline, reason: HIGH_RISK}
  - {when: score >= 0.5, outcome: review, reason: UNCERTAIN}
  - {outcome: approve, reason: LOW_RISK}
rules:
  - {name: big, when: amount > 10000 and outcome == "approve", outcome: review, reason: BIG}
outcomes: [approve, review, decline]
fallback: {outcome: review, reason: MODEL_UNAVAILABLE}
"""

# Ten decisions of `loans`, one second apart: d-000000 .. d-000009.
LOANS_TRAFFIC: list[tuple[dict[str, Any], float | str]] = [
    ({"amount": 100}, 0.10),  # approve
    ({"amount": 20000}, 0.10),  # review (big)
    ({"amount": 100}, 0.55),  # review
    ({"amount": 100}, 0.75),  # review
    ({"amount": 100, "email": "a@example.com"}, 0.78),  # review; email hashed
    ({"amount": 100}, 0.85),  # decline
    ({"amount": 100}, 0.95),  # decline
    ({"amount": 100}, "upstream_timeout"),  # review, fallback
    ({"amount": -1}, 0.5),  # review, fallback input_invalid
    ({"amount": 500, "phone": "+15550000"}, 0.30),  # approve; phone dropped
]


@pytest.fixture
def loans_audit(tmp_path: Path) -> Path:
    path = tmp_path / "loans.db"
    write_decisions(path, load_policy_text(LOANS, "loans.yaml"), LOANS_TRAFFIC)
    return path
