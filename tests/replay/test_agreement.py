"""Replay over columns agrees, record by record, with replaying each record alone with `decide`.

For each candidate (the recorded policy itself, and edits of every kind), every recorded
decision is replayed twice: by `replay_chunk` over chunks of decoded records (the path
`guardrails replay` takes) and by `replay_record` on the record as the store gives it
(`AuditRecord`), which validates with the candidate's `inputs:` and calls `decide`. The two
must give equal results for every record; the report's counts must be the counts of the
one-by-one results.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from guardrails.audit.record import AuditRecord
from guardrails.audit.sqlite import closing, connect
from guardrails.decide import CAUSES, Decision
from guardrails.policy.load import load_policy_text
from guardrails.replay import RecordDecoder, recorded_versions, replay_audit
from guardrails.replay_record import NotReplayable, Plan, Rejected, Replayed, make_plan, replay_record
from guardrails.replay_report import REJECTED
from guardrails.replay_vector import NOT_REPLAYABLE_CODE, replay_chunk
from guardrails.scores import ScoreFields

from .conftest import LENDING, Traffic, edit


def with_rule(text: str, rule: str) -> tuple[str, str]:
    """The edit that adds `rule` (a flow mapping) after the last rule."""
    return ("outcomes: [", f"  - {rule}\noutcomes: [")


CANDIDATES: dict[str, str] = {
    "unchanged": LENDING,
    "decline threshold moved": edit(LENDING, ("score >= 0.85", "score >= 0.8")),
    "reads hashed email": edit(
        LENDING,
        with_rule(LENDING, '{name: known-email, when: email == "x", outcome: review, reason: EMAIL}'),
    ),
    "reads dropped phone": edit(
        LENDING,
        with_rule(LENDING, "{name: phone-given, when: not is_missing(phone), outcome: review, reason: PHONE}"),
    ),
    "tighter amount, fallback": edit(LENDING, ("max: 1000000}", "max: 20000}")),
    "tighter amount, reject": edit(
        LENDING, ("max: 1000000}", "max: 20000}"), ("on_invalid: fallback", "on_invalid: reject")
    ),
    "note removed": edit(LENDING, ("  note:             {type: str, required: false, max_length: 20}\n", "")),
    "note removed, extras ignored": edit(
        LENDING,
        ("  note:             {type: str, required: false, max_length: 20}\n", "extra_fields: ignore\n"),
    ),
    "new required input, unread": edit(LENDING, ("inputs:\n", "inputs:\n  channel: {type: str, in: [web, app]}\n")),
    "new optional input, read": edit(
        LENDING,
        ("inputs:\n", "inputs:\n  tier: {type: int, required: false}\n"),
        with_rule(LENDING, "{name: tiered, when: tier >= 2, outcome: approve, reason: TIER}"),
    ),
    "KP not allowed": edit(LENDING, ("in: [US, CA, GB, DE, FR, KP]", "in: [US, CA, GB, DE, FR]"), ('"KP"', '"FR"')),
    "shorter note": edit(LENDING, ("max_length: 20}", "max_length: 5}")),
    "final and shadow swapped": edit(
        LENDING,
        ("reason: SANCTIONED_COUNTRY, final: true}", "reason: SANCTIONED_COUNTRY}"),
        ("reason: REPEAT_DEFAULTER, mode: shadow}", "reason: REPEAT_DEFAULTER, final: true}"),
    ),
    "age is a float, amount an int": edit(
        LENDING,
        ("account_age_days: {type: int, min: 0}", "account_age_days: {type: float, min: 0}"),
        ("{type: float, min: 0, max: 1000000}", "{type: int, min: 0, max: 1000000}"),
    ),
    "verified must be true, defaults changed": edit(
        LENDING,
        ("{type: bool, required: false}", "{type: bool, in: [true], default: true}"),
        ("in: [standard, vip], default: standard}", "in: [standard, vip], default: vip}"),
        ("prior_defaults:   {type: int, min: 0, default: 0}", "prior_defaults:   {type: int, min: 1, default: 1}"),
    ),
    "income required to be an allowed number": edit(
        LENDING, ("income:           {type: float, min: 0}", "income:           {type: float, in: [0, 50000.5]}")
    ),
    "prior defaults from a list": edit(
        LENDING, ("prior_defaults:   {type: int, min: 0, default: 0}", "prior_defaults:   {type: int, in: [0, 1, 2]}")
    ),
}


def stored_rows(path: Path, policy: str) -> list[tuple[int, bytes]]:
    with closing(connect(path, readonly=True)) as connection:
        rows = connection.execute(
            "SELECT seq, record FROM decisions WHERE policy = ? AND kind = 'decision' ORDER BY seq", (policy,)
        ).fetchall()
    return [(int(seq), bytes(record)) for seq, record in rows]


def plan_for(text: str, path: Path) -> Plan:
    candidate = load_policy_text(text, "candidate.yaml")
    with closing(connect(path, readonly=True)) as connection:
        return make_plan(candidate, recorded_versions(connection, candidate.name))


def one_by_one(plan: Plan, blob: bytes) -> tuple[AuditRecord, Replayed]:
    record = msgspec.json.decode(blob, type=AuditRecord)
    fields = None
    if record.score is not None and record.confidence is not None and record.margin is not None:
        fields = ScoreFields(record.score, record.confidence, record.margin, record.label)
    return record, replay_record(plan, record.policy_version, record.input, fields, record.fallback)


def over_columns(plan: Plan, rows: list[tuple[int, bytes]], chunk: int) -> list[tuple[Replayed, int]]:
    """Each row's result and outcome code, replayed over columns in chunks of `chunk` rows."""
    decoder = RecordDecoder(plan.names)
    results: list[tuple[Replayed, int]] = []
    for start in range(0, len(rows), chunk):
        seqs, blobs = zip(*rows[start : start + chunk], strict=True)
        replayed = replay_chunk(plan, decoder.decode_all(blobs, seqs), decoder.names)
        codes = replayed.outcome_codes().tolist()
        results += [(replayed.result(i), codes[i]) for i in range(replayed.rows)]
    return results


def code_of(plan: Plan, replayed: Replayed) -> int:
    outcomes = plan.candidate.outcomes
    if isinstance(replayed, Decision):
        return outcomes.index(replayed.outcome)
    return len(outcomes) if isinstance(replayed, Rejected) else NOT_REPLAYABLE_CODE


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_columns_agree_with_one_by_one_on_recorded_traffic(name: str, traffic: Traffic) -> None:
    plan = plan_for(CANDIDATES[name], traffic.path)
    rows = stored_rows(traffic.path, "lending")
    expected = [one_by_one(plan, blob)[1] for _, blob in rows]
    for chunk in (97, 50_000):
        got = over_columns(plan, rows, chunk)
        for (seq, _), want, (have, code) in zip(rows, expected, got, strict=True):
            assert have == want, f"record {seq}: over columns {have!r}, one by one {want!r}"
            assert code == code_of(plan, want), f"record {seq}: outcome code {code} for {want!r}"


@pytest.mark.parametrize(
    ("name", "settled"),
    [("unchanged", 3000), ("decline threshold moved", 3000), ("reads hashed email", 3000), ("KP not allowed", 3000)],
)
def test_usual_records_are_settled_over_columns(name: str, settled: int, traffic: Traffic) -> None:
    plan = plan_for(CANDIDATES[name], traffic.path)
    rows = stored_rows(traffic.path, "lending")
    seqs, blobs = zip(*rows, strict=True)
    decoder = RecordDecoder(plan.names)
    replayed = replay_chunk(plan, decoder.decode_all(blobs, seqs), decoder.names)
    assert replayed.rows - len(replayed.one_by_one) == settled
    assert len(replayed.decided) > 1000


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_report_counts_are_the_one_by_one_counts(name: str, traffic: Traffic, tmp_path: Path) -> None:
    plan = plan_for(CANDIDATES[name], traffic.path)
    rows = stored_rows(traffic.path, "lending")
    expected = Expected()
    for _, blob in rows:
        expected.add(*one_by_one(plan, blob))
    report = replay_audit(plan.candidate, traffic.path, chunk_rows=333)
    assert report.read == len(rows) == 3000
    assert report.replayed == len(rows) - expected.not_replayable
    assert report.not_replayable == expected.not_replayable
    assert report.changed == sum(n for (a, b), n in expected.transitions.items() if a != b)
    assert report.rejected == expected.transitions_to(REJECTED)
    assert {(t.from_, t.to): t.count for t in report.transitions} == expected.transitions
    assert {u.field: (u.hashed, u.dropped) for u in report.not_replayable_inputs} == expected.unknown
    assert report.not_replayable_unscored == expected.unscored
    assert {(r.rule, r.mode): r.recorded for r in report.rules if r.recorded} == expected.recorded_rules
    assert {(r.rule, r.mode): r.candidate for r in report.rules if r.candidate} == expected.candidate_rules
    assert {r.reason: r.recorded for r in report.reasons if r.recorded} == expected.recorded_reasons
    assert {r.reason: r.candidate for r in report.reasons if r.candidate} == expected.candidate_reasons
    assert [c.decision_id for c in report.changed_sample] == expected.changed_ids[:10]
    assert {v.version: v.count for v in report.recorded_versions} == expected.versions


class Expected:
    """The report's counts, tallied from one-by-one results."""

    def __init__(self) -> None:
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.not_replayable = 0
        self.unscored = 0
        self.unknown: dict[str, tuple[int, int]] = {}
        self.recorded_rules: Counter[tuple[str, str]] = Counter()
        self.candidate_rules: Counter[tuple[str, str]] = Counter()
        self.recorded_reasons: Counter[str] = Counter()
        self.candidate_reasons: Counter[str] = Counter()
        self.changed_ids: list[str] = []
        self.versions: Counter[str] = Counter()

    def transitions_to(self, outcome: str) -> int:
        return sum(n for (_, b), n in self.transitions.items() if b == outcome)

    def add(self, record: AuditRecord, replayed: Replayed) -> None:
        self.versions[record.policy_version] += 1
        if isinstance(replayed, NotReplayable):
            self.not_replayable += 1
            self.unscored += replayed.unscored
            for name in replayed.hashed:
                h, d = self.unknown.get(name, (0, 0))
                self.unknown[name] = (h + 1, d)
            for name in replayed.dropped:
                h, d = self.unknown.get(name, (0, 0))
                self.unknown[name] = (h, d + 1)
            return
        outcome = replayed.outcome if isinstance(replayed, Decision) else REJECTED
        assert record.outcome is not None
        self.transitions[(record.outcome, outcome)] += 1
        if record.outcome != outcome:
            self.changed_ids.append(record.decision_id)
        self.recorded_rules.update((r.name, r.mode) for r in record.rules)
        self.recorded_reasons.update(record.reasons)
        if isinstance(replayed, Decision):
            self.candidate_rules.update((r.name, r.mode) for r in replayed.rules)
            self.candidate_reasons.update(replayed.reasons)
        else:
            assert isinstance(replayed, Rejected)


def test_the_traffic_covers_every_kind_of_record(traffic: Traffic) -> None:
    rows = stored_rows(traffic.path, "lending")
    records = [msgspec.json.decode(blob, type=AuditRecord) for _, blob in rows]
    causes = Counter(r.fallback for r in records)
    assert set(causes) == {None, *CAUSES}
    fired = Counter((rule.name, rule.mode) for r in records for rule in r.rules)
    assert {name for name, _ in fired} >= {"sanctioned-country", "large-amount-new-account", "vip-never-auto-declined",
                                          "unverified-large", "repeat-defaulter"}  # fmt: skip
    hashed = sum(1 for r in records if str(r.input.get("email", "")).startswith("hmac-sha256:"))
    assert hashed > 300
    assert not any("phone" in r.input for r in records)
    assert Counter(r.outcome for r in records).keys() == {"approve", "review", "decline"}
