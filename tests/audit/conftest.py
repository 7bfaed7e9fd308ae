"""Fixtures of the audit query, explanation and verification tests; real SQLite files, nothing mocked.

- `policy`: a credit policy with an `audit: hash` field (email) and an `audit: drop` field
  (note), each read by a rule, so explanations meet conditions they cannot recompute.
- `small_log`: a store holding a dozen decisions made by the real `decide` and recorded by the
  real `AuditRecorder` through `SQLiteAuditStore.append`: approvals, rules, a final rule, a
  shadow rule, hashed and dropped fields, a fallback and a rejected input.
- `big_log`: 100,000 generated records written once per session with executemany in the
  store's row format, chained as the writer chains them; `rows` summarises each for
  brute-force expectations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from guardrails.audit.chain import GENESIS
from guardrails.audit.record import AuditRecord
from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.schema import SCHEMA
from guardrails.audit.sqlite import Rows, SQLiteAuditStore, closing, connect
from guardrails.decide import RuleFired, decide_row, fallback
from guardrails.envelope import ModelCall
from guardrails.ids import DecisionIds
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text

AUDIT_KEY = b"audit-tests-key"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BIG = 100_000
UNUSED_URL = "http://127.0.0.1:9/v2/models/credit/infer"


def policy_text(url: str = UNUSED_URL, name: str = "credit-audit") -> str:
    return f"""\
policy: {name}
version: "audit-1"
owner: tests@example.com
upstream:
  url: {url}
  protocol: v2
  tensor: {{name: x, datatype: FP64, features: [amount, account_age_days, income, prior_defaults]}}
  output: predict_proba
inputs:
  amount:           {{type: float, min: 0, max: 1000000}}
  account_age_days: {{type: int, min: 0}}
  income:           {{type: float, min: 0}}
  prior_defaults:   {{type: int, min: 0, default: 0}}
  country:          {{type: str, in: [US, CA, GB, DE, FR, KP]}}
  segment:          {{type: str, in: [standard, vip], default: standard}}
  email:            {{type: str, max_length: 254, required: false, audit: hash}}
  note:             {{type: str, required: false, audit: drop}}
score: {{labels: [good, bad], positive: bad}}
thresholds:
  - {{when: score >= 0.85, outcome: decline, reason: HIGH_RISK}}
  - {{when: score >= 0.5 or confidence < 0.6, outcome: review, reason: UNCERTAIN}}
  - {{outcome: approve, reason: LOW_RISK}}
rules:
  - {{name: sanctioned-country, when: 'country in ["KP"]', outcome: decline, reason: SANCTIONED_COUNTRY, final: true}}
  - name: large-amount-new-account
    when: amount > 50000 and account_age_days < 90 and outcome == "approve"
    outcome: review
    reason: LARGE_AMOUNT_NEW_ACCOUNT
  - name: vip-never-auto-declined
    when: segment == "vip" and outcome == "decline"
    outcome: review
    reason: VIP_PROTECTION
  - {{name: blocked-email, when: 'email == "fraud@example.com"', outcome: decline, reason: BLOCKED_EMAIL}}
  - {{name: long-note, when: len(note) > 20, outcome: review, reason: LONG_NOTE, mode: shadow}}
  - {{name: repeat-defaulter, when: prior_defaults >= 2, outcome: decline, reason: REPEAT_DEFAULTER, mode: shadow}}
outcomes: [approve, review, decline]
fallback: {{outcome: review, reason: MODEL_UNAVAILABLE}}
"""


@pytest.fixture(scope="session")
def policy() -> CompiledPolicy:
    return load_policy_text(policy_text())


# ---- real records through the real recorder and store ------------------------------------------

LOW_RISK = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US", "email": "ann@example.com"}
NEW_ACCOUNT_LARGE = {"amount": 60000, "account_age_days": 30, "income": 90000, "country": "GB"}
SANCTIONED_VIP = {"amount": 100, "account_age_days": 800, "income": 52000, "country": "KP", "segment": "vip"}
VIP_HIGH_RISK = {"amount": 100, "account_age_days": 800, "income": 52000, "country": "US", "segment": "vip"}
BLOCKED_EMAIL = {"amount": 100, "account_age_days": 800, "income": 52000, "country": "US", "email": "fraud@example.com"}
LONG_NOTE = {
    "amount": 100,
    "account_age_days": 800,
    "income": 52000,
    "country": "CA",
    "note": "called twice about the limit, said it was urgent",
    "prior_defaults": 3,
}


@dataclass
class Log:
    """A store at `path` and the records written to it, in order (record i has seq i + 1)."""

    path: Path
    policy: CompiledPolicy
    records: list[AuditRecord] = field(default_factory=list)
    clock_ms: int = T0

    def tick(self) -> int:
        self.clock_ms += 1000
        return self.clock_ms

    def by_id(self, decision_id: str) -> AuditRecord:
        return next(r for r in self.records if r.decision_id == decision_id)


def v2_output(p_bad: float) -> bytes:
    output = {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [1 - p_bad, p_bad]}
    return msgspec.json.encode({"model_name": "credit", "outputs": [output]})


class Writer:
    """Decide with the real policy, record with the real AuditRecorder, write with the real store."""

    def __init__(self, log: Log, store: SQLiteAuditStore) -> None:
        self.log = log
        self.store = store
        self.recorder = AuditRecorder(store, AUDIT_KEY, log.tick)
        self.ids = DecisionIds()
        store.add_policy(log.policy, T0)

    def decide(self, values: dict[str, Any], p_bad: float, request_id: str | None = None) -> AuditRecord:
        validated = self.log.policy.inputs.from_mapping(values)
        assert isinstance(validated, dict), validated
        decision = decide_row(self.log.policy, validated, [1 - p_bad, p_bad])
        model = ModelCall("ok", 1.5, 200, 1)
        return self._write(
            self.recorder.decision(
                self.log.policy,
                decision,
                decision_id=self.ids.new(),
                endpoint="decide",
                values=validated,
                model=model,
                model_output=v2_output(p_bad),
                latency_ms=2.5,
                request_id=request_id,
            )
        )

    def fallback(self, values: dict[str, Any], cause: Any, detail: str) -> AuditRecord:
        validated = self.log.policy.inputs.from_mapping(values)
        assert isinstance(validated, dict), validated
        decision = fallback(self.log.policy, cause, detail)
        return self._write(
            self.recorder.decision(
                self.log.policy,
                decision,
                decision_id=self.ids.new(),
                endpoint="decide",
                values=validated,
                model=ModelCall("timeout", 300.0, None, 1),
                model_output=None,
                latency_ms=301.0,
                request_id=None,
            )
        )

    def rejected(self, raw: dict[str, Any]) -> AuditRecord:
        errors = self.log.policy.inputs.check_all(raw)
        record = self.recorder.rejection(
            self.log.policy, raw, errors, decision_id=self.ids.new(), endpoint="decide", latency_ms=0.4, request_id=None
        )
        return self._write(record)

    def _write(self, record: AuditRecord) -> AuditRecord:
        asyncio.run(self.store.append([record]))
        self.log.records.append(record)
        return record


@dataclass
class SmallLog(Log):
    low_risk: str = ""
    new_account: str = ""
    sanctioned_vip: str = ""
    vip_protected: str = ""
    blocked_email: str = ""
    long_note: str = ""
    timeout: str = ""
    rejected: str = ""


def write_small_log(path: Path, policy: CompiledPolicy) -> SmallLog:
    log = SmallLog(path, policy)
    store = SQLiteAuditStore(path)
    try:
        writer = Writer(log, store)
        log.low_risk = writer.decide(LOW_RISK, 0.05, request_id="req-low").decision_id
        log.new_account = writer.decide(NEW_ACCOUNT_LARGE, 0.05).decision_id
        log.sanctioned_vip = writer.decide(SANCTIONED_VIP, 0.95).decision_id
        log.vip_protected = writer.decide(VIP_HIGH_RISK, 0.95).decision_id
        log.blocked_email = writer.decide(BLOCKED_EMAIL, 0.05).decision_id
        log.long_note = writer.decide(LONG_NOTE, 0.3).decision_id
        log.timeout = writer.fallback(LOW_RISK, "upstream_timeout", "no answer within 300 ms").decision_id
        log.rejected = writer.rejected({"amount": -5, "country": "XX"})
        log.rejected = log.records[-1].decision_id
        for i in range(6):
            writer.decide({**LOW_RISK, "amount": 1000 + i}, 0.6 if i % 2 else 0.1)
    finally:
        store.close()
    return log


@pytest.fixture
def small_log(tmp_path: Path, policy: CompiledPolicy) -> SmallLog:
    return write_small_log(tmp_path / "audit.db", policy)


# ---- 100,000 generated records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Summary:
    """What the queries filter on, for one generated record."""

    seq: int
    ts_ms: int
    policy: str
    kind: str
    outcome: str | None
    reasons: tuple[str, ...]
    rules: tuple[tuple[str, str], ...]
    fallback: str | None
    policy_version: str


POLICIES = ("credit-risk", "moderation", "credit-risk-next")
VERSIONS = {"credit-risk": ("v1aaaaaaaaaaaaaa", "v2bbbbbbbbbbbbbb"), "moderation": ("m1cccccccccccccc",)}
CAUSES = ("upstream_timeout", "upstream_error", "upstream_unavailable", "output_invalid")
RULES = (("sanctioned-country", "enforce"), ("large-amount-new-account", "enforce"), ("repeat-defaulter", "shadow"))


def _generated(seq: int, ts_ms: int, u: list[float]) -> AuditRecord:
    """One record from eight uniform draws `u` (numpy draws them all at once: quicker than `random`)."""
    name = POLICIES[0] if u[0] < 0.7 else POLICIES[1] if u[0] < 0.98 else POLICIES[2]
    versions = VERSIONS.get(name, ("n1dddddddddddddd",))
    common: dict[str, Any] = {
        "decision_id": f"dec-{seq:08d}",
        "ts_ms": ts_ms,
        "endpoint": "decide" if u[1] < 0.8 else "batch",
        "policy": name,
        "policy_version": versions[int(u[1] * 7) % len(versions)],
        "policy_label": None,
        "input": {"amount": int(u[2] * 90000), "country": ("US", "GB", "KP")[int(u[2] * 300) % 3]},
    }
    kind = "shadow" if name == POLICIES[2] else "decision"
    if u[3] < 0.01:
        return AuditRecord(kind="rejected", **common)
    if u[3] < 0.05:
        cause = CAUSES[int(u[3] * 1000) % len(CAUSES)]
        return AuditRecord(kind=kind, outcome="review", reasons=["MODEL_UNAVAILABLE"], fallback=cause, **common)
    score = u[4]
    outcome, reason = ("decline", "HIGH_RISK") if score >= 0.85 else ("approve", "LOW_RISK")
    if 0.5 <= score < 0.85:
        outcome, reason = "review", "UNCERTAIN"
    reasons = [reason]
    rules: list[RuleFired] = []
    for (rule, mode), draw in zip(RULES, u[5:8], strict=True):
        if draw < (0.02 if mode == "enforce" else 0.05):
            rules.append(RuleFired(rule, mode, "decline", rule.upper()))
            if mode == "enforce":
                reasons.append(rule.upper())
    if outcome == "decline" and u[7] > 0.99:
        reasons.append("HIGH_RISK")  # the same reason twice: a query lists the record once
    return AuditRecord(kind=kind, score=score, outcome=outcome, reasons=reasons, rules=rules, threshold=0, **common)


def write_big_log(path: Path, count: int = BIG, seed: int = 7) -> list[Summary]:
    """`count` chained records in the store's own row format, timestamps rising over about 29 days."""
    SQLiteAuditStore(path).close()  # the schema, as the store creates it
    rng = np.random.default_rng(seed)
    draws = rng.random((count, 8)).tolist()
    stamps = (T0 + np.cumsum(rng.integers(0, 50_000, count))).tolist()
    rows, summaries = Rows(), []
    prev = GENESIS
    for seq, ts_ms, u in zip(range(1, count + 1), stamps, draws, strict=True):
        record = _generated(seq, ts_ms, u)
        prev = rows.add(seq, prev, record)
        summaries.append(
            Summary(
                seq, ts_ms, record.policy, record.kind, record.outcome, tuple(record.reasons),
                tuple((rule.name, rule.mode) for rule in record.rules), record.fallback, record.policy_version,
            )
        )  # fmt: skip
    with closing(connect(path)) as connection:
        # A bulk load: the rows first, then the store's own indexes, built once (three times faster).
        indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        for (name,) in connection.execute(indexes).fetchall():
            connection.execute(f"DROP INDEX {name}")
        connection.execute("BEGIN")
        rows.insert(connection, None)
        connection.execute("COMMIT")
        connection.executescript(SCHEMA)
    return summaries


@dataclass(frozen=True)
class BigLog:
    path: Path
    rows: list[Summary]


@pytest.fixture(scope="session")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigLog]:
    path = tmp_path_factory.mktemp("big") / "audit.db"
    yield BigLog(path, write_big_log(path))
