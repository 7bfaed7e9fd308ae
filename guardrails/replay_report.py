"""What a replay found: counts gathered chunk by chunk over arrays, the report, and its text form.

Recorded against candidate: outcome transitions, rules fired and reasons given, over the
records that could be replayed; the records that could not, per input and why; a sample of
changed decisions. A candidate's rejection (HTTP 422) counts as the outcome `(rejected)`.

Pure: imports the stdlib, msgspec, numpy and the replay modules only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np

from guardrails.audit.figures import FeedbackFigures, figures_text, label_figures
from guardrails.decide import Decision
from guardrails.policy.compile import CompiledPolicy
from guardrails.replay_record import NotReplayable, RecordedRule, Rejected, Replayed
from guardrails.replay_vector import NOT_REPLAYABLE, NOT_REPLAYABLE_CODE, ChunkReplay

REJECTED = "(rejected)"


class Transition(msgspec.Struct, frozen=True, rename={"from_": "from"}):
    from_: str
    to: str
    count: int


class RuleCount(msgspec.Struct, frozen=True):
    rule: str
    mode: str
    recorded: int
    candidate: int


class ReasonCount(msgspec.Struct, frozen=True):
    reason: str
    recorded: int
    candidate: int


class UnknownInput(msgspec.Struct, frozen=True):
    """An input the candidate reads, and in how many records it was hashed or absent."""

    field: str
    hashed: int
    dropped: int


class VersionCount(msgspec.Struct, frozen=True):
    version: str
    count: int


class ChangedDecision(msgspec.Struct, frozen=True):
    decision_id: str
    seq: int
    recorded_outcome: str
    outcome: str
    recorded_reasons: list[str]
    reasons: list[str]
    rules: list[str]
    fallback: str | None = None


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    candidate_version: str
    candidate_file: str
    audit: str
    since_ms: int | None
    limit: int | None
    read: int  # recorded decisions read
    replayed: int
    changed: int
    rejected: int  # of the replayed, those the candidate would answer with 422
    not_replayable: int
    not_replayable_inputs: list[UnknownInput]
    not_replayable_unscored: int  # recorded as invalid input, accepted by the candidate: no model output
    transitions: list[Transition]
    rules: list[RuleCount]
    reasons: list[ReasonCount]
    changed_sample: list[ChangedDecision]
    recorded_versions: list[VersionCount]
    feedback: FeedbackComparison | None = None  # on the replayed decisions that have a label fed back
    notes: list[str] = []


class FeedbackComparison(msgspec.Struct, frozen=True, kw_only=True):
    """The labelled records' figures under the recorded outcomes and under the candidate's."""

    recorded: FeedbackFigures
    candidate: FeedbackFigures


class Tally:
    """Counts over the chunks of one replay."""

    def __init__(self, candidate: CompiledPolicy, sample: int, labels: dict[int, str] | None = None) -> None:
        self.candidate = candidate
        self.labels = labels or {}  # seq -> the latest label fed back
        self.labelled: list[tuple[str, str, str]] = []  # (recorded outcome, candidate outcome, label)
        self.sample_size = sample
        self.to_names = (*candidate.outcomes, REJECTED)
        self.from_index: dict[str | None, int] = {}
        self.transitions: Counter[tuple[str, str]] = Counter()
        self.read = 0
        self.rejected = 0
        self.versions: Counter[str] = Counter()
        self.unknown: dict[str, list[int]] = {}
        self.unscored = 0
        self.not_replayable = 0
        self.recorded_rules: Counter[bytes] = Counter()  # by the JSON text of a record's list
        self.candidate_rules: Counter[tuple[str, str]] = Counter()
        self.recorded_reasons: Counter[bytes] = Counter()
        self.candidate_reasons: Counter[str] = Counter()
        self.sample: list[tuple[int, str, list[str], Replayed]] = []  # seq, recorded outcome and reasons, replayed

    def add(self, chunk: ChunkReplay, seqs: Sequence[int]) -> None:
        """Count one chunk; `seqs` are its records' places in the log."""
        records = chunk.records
        self.read += chunk.rows
        self.versions.update(chunk.versions)
        index = self.from_index
        outcomes = list(map(attrgetter("outcome"), records))
        for outcome in set(outcomes):
            index.setdefault(outcome, len(index))
        recorded = np.fromiter(map(index.__getitem__, outcomes), dtype=np.int64, count=len(outcomes))
        candidate = chunk.outcome_codes()
        replayed = candidate != NOT_REPLAYABLE_CODE
        self._count_not_replayable(chunk, replayed)
        width = len(self.to_names)
        pairs = np.bincount(recorded[replayed] * width + candidate[replayed], minlength=len(index) * width)
        names = list(index)
        for code in np.flatnonzero(pairs).tolist():
            from_, to = names[code // width], self.to_names[code % width]
            self.transitions[(str(from_), to)] += int(pairs[code])
        self.rejected += int(np.count_nonzero(candidate == len(self.candidate.outcomes)))
        kept = records if replayed.all() else [records[i] for i in np.flatnonzero(replayed).tolist()]
        self.recorded_rules.update(map(bytes, map(attrgetter("rules"), kept)))
        self.recorded_reasons.update(map(bytes, map(attrgetter("reasons"), kept)))
        self._count_candidate(chunk)
        if self.labels:
            self._count_labelled(outcomes, candidate, replayed, seqs)
        if len(self.sample) < self.sample_size:
            self._take_sample(chunk, seqs, recorded, candidate, replayed)

    def _count_labelled(self, outcomes: list[Any], candidate: Any, replayed: Any, seqs: Sequence[int]) -> None:
        for i, seq in enumerate(seqs):
            label = self.labels.get(seq)
            if label is not None and replayed[i]:
                self.labelled.append((str(outcomes[i]), self.to_names[int(candidate[i])], label))

    def feedback(self) -> FeedbackComparison | None:
        positive = self.candidate.scores.positive
        if not self.labelled or positive is None:
            return None
        outcomes = self.candidate.outcomes
        recorded_totals: Counter[str] = Counter()
        candidate_totals: Counter[str] = Counter()
        for (recorded, replayed), n in self.transitions.items():
            recorded_totals[recorded] += n
            candidate_totals[replayed] += n
        name = self.candidate.name
        return FeedbackComparison(
            recorded=label_figures(
                name, outcomes, positive, dict(recorded_totals), [(r, label) for r, _, label in self.labelled]
            ),
            candidate=label_figures(
                name, outcomes, positive, dict(candidate_totals), [(c, label) for _, c, label in self.labelled]
            ),
        )

    def _count_not_replayable(self, chunk: ChunkReplay, replayed: Any) -> None:
        self.not_replayable += int(np.count_nonzero(~replayed))
        found = chunk.kind == NOT_REPLAYABLE
        self.unscored += int(np.count_nonzero(chunk.unscored & found))
        for name, (hashed, dropped) in chunk.unknown.items():
            counts = self.unknown.setdefault(name, [0, 0])
            counts[0] += int(np.count_nonzero(hashed & found))
            counts[1] += int(np.count_nonzero(dropped & found))
        for replayed_one in chunk.one_by_one.values():
            if isinstance(replayed_one, NotReplayable):
                self.unscored += replayed_one.unscored
                for name in replayed_one.hashed:
                    self.unknown.setdefault(name, [0, 0])[0] += 1
                for name in replayed_one.dropped:
                    self.unknown.setdefault(name, [0, 0])[1] += 1

    def _count_candidate(self, chunk: ChunkReplay) -> None:
        policy = self.candidate
        vector = chunk.vector
        if vector is not None:
            thresholds = np.bincount(vector.threshold, minlength=len(policy.thresholds))
            for t, count in zip(policy.thresholds, thresholds.tolist(), strict=True):
                self.candidate_reasons[t.reason] += count
            enforced, shadow = vector.enforced.sum(axis=1).tolist(), vector.shadow.sum(axis=1).tolist()
            for rule, e, s in zip(policy.rules, enforced, shadow, strict=True):
                if rule.shadow:
                    self.candidate_rules[(rule.name, "shadow")] += s
                elif e:
                    self.candidate_rules[(rule.name, "enforce")] += e
                    self.candidate_reasons[rule.reason] += e
        self.candidate_reasons[policy.fallback_reason] += chunk.fallbacks()
        for replayed in chunk.one_by_one.values():
            if isinstance(replayed, Decision):
                self.candidate_reasons.update(replayed.reasons)
                self.candidate_rules.update((r.name, r.mode) for r in replayed.rules)

    def _take_sample(
        self, chunk: ChunkReplay, seqs: Sequence[int], recorded: Any, candidate: Any, replayed: Any
    ) -> None:
        names = list(self.from_index)
        same = np.array([self.to_names.index(str(n)) if n in self.to_names else -2 for n in names])
        changed = replayed & (same[recorded] != candidate)
        for i in np.flatnonzero(changed)[: self.sample_size - len(self.sample)].tolist():
            record = chunk.records[i]
            reasons = _reasons_of(bytes(record.reasons))
            self.sample.append((seqs[i], str(record.outcome), reasons, chunk.result(i)))

    def report(
        self,
        *,
        audit: str,
        since_ms: int | None,
        limit: int | None,
        decision_ids: dict[int, str],
        notes: list[str],
    ) -> ReplayReport:
        policy = self.candidate
        transitions = [Transition(f, t, n) for (f, t), n in sorted(self.transitions.items(), key=_transition_order)]
        return ReplayReport(
            policy=policy.name,
            candidate_version=policy.version_id,
            candidate_file=policy.file,
            audit=audit,
            since_ms=since_ms,
            limit=limit,
            read=self.read,
            replayed=self.read - self.not_replayable,
            changed=sum(t.count for t in transitions if t.from_ != t.to),
            rejected=self.rejected,
            not_replayable=self.not_replayable,
            not_replayable_inputs=[UnknownInput(name, h, d) for name, (h, d) in self.unknown.items() if h or d],
            not_replayable_unscored=self.unscored,
            transitions=transitions,
            rules=self._rule_counts(),
            reasons=self._reason_counts(),
            changed_sample=[_changed(seq, o, r, x, decision_ids.get(seq, "?")) for seq, o, r, x in self.sample],
            recorded_versions=[VersionCount(v, n) for v, n in self.versions.most_common()],
            feedback=self.feedback(),
            notes=notes,
        )

    def _rule_counts(self) -> list[RuleCount]:
        recorded: Counter[tuple[str, str]] = Counter()
        for text, n in self.recorded_rules.items():
            for rule in _rules_of(text):
                recorded[(rule.name, rule.mode)] += n
        keys = [(r.name, "shadow" if r.shadow else "enforce") for r in self.candidate.rules]
        keys += sorted(k for k in recorded if k not in keys)
        return [
            RuleCount(name, mode, recorded[(name, mode)], self.candidate_rules[(name, mode)]) for name, mode in keys
        ]

    def _reason_counts(self) -> list[ReasonCount]:
        recorded: Counter[str] = Counter()
        for text, n in self.recorded_reasons.items():
            for reason in _reasons_of(text):
                recorded[reason] += n
        candidate = self.candidate_reasons
        used = {k for k in candidate.keys() | recorded.keys() if recorded[k] or candidate[k]}
        ordered = sorted(used, key=lambda k: (-recorded[k] - candidate[k], k))
        return [ReasonCount(k, recorded[k], candidate[k]) for k in ordered]


_reasons_of = msgspec.json.Decoder(list[str]).decode
_rules_of = msgspec.json.Decoder(list[RecordedRule]).decode


def _transition_order(item: tuple[tuple[str, str], int]) -> tuple[bool, int, str, str]:
    (from_, to), count = item
    return (from_ != to, -count, from_, to)


def _changed(seq: int, outcome: str, reasons: list[str], replayed: Replayed, decision_id: str) -> ChangedDecision:
    if isinstance(replayed, Rejected):
        return ChangedDecision(decision_id, seq, outcome, REJECTED, reasons, [], [], None)
    assert isinstance(replayed, Decision)
    rules = [r.name if r.mode == "enforce" else f"{r.name} (shadow)" for r in replayed.rules]
    return ChangedDecision(
        decision_id, seq, outcome, replayed.outcome, reasons, replayed.reasons, rules, replayed.fallback
    )


# ---- text -------------------------------------------------------------------------------


def render_text(report: ReplayReport) -> str:
    """The report for a person at a terminal."""
    lines = [
        f"replay of policy {report.policy}: candidate {report.candidate_file} (id {report.candidate_version})",
        f"recorded decisions from {report.audit}{_window(report)}: {report.read:,} read",
        *(f"note: {note}" for note in report.notes),
        "",
        f"  replayed          {report.replayed:>12,}",
        f"  changed outcome   {report.changed:>12,}{_share(report.changed, report.replayed)}",
        f"  rejected (422)    {report.rejected:>12,}",
        f"  not replayable    {report.not_replayable:>12,}",
    ]
    for gap in report.not_replayable_inputs:
        if gap.hashed:
            lines.append(f"    {gap.hashed:,} read `{gap.field}`, which the record holds hashed (audit: hash)")
        if gap.dropped:
            lines.append(
                f"    {gap.dropped:,} read `{gap.field}`, which the record does not hold "
                "(audit: drop, or not an input then)"
            )
    if report.not_replayable_unscored:
        lines.append(
            f"    {report.not_replayable_unscored:,} recorded as invalid input, which the candidate accepts: "
            "no model output to decide on"
        )
    lines += ["", "transitions (recorded -> candidate):"]
    width = max((len(t.from_) for t in report.transitions), default=0)
    to_width = max((len(t.to) for t in report.transitions), default=0)
    for t in report.transitions:
        mark = "" if t.from_ == t.to else "  *"
        lines.append(
            f"  {t.from_:<{width}} -> {t.to:<{to_width}} {t.count:>12,}{_share(t.count, report.replayed)}{mark}"
        )
    lines += _table(
        "rules",
        ["rule", "recorded", "candidate"],
        [[f"{r.rule} ({r.mode})", r.recorded, r.candidate] for r in report.rules],
    )
    lines += _table(
        "reasons", ["reason", "recorded", "candidate"], [[r.reason, r.recorded, r.candidate] for r in report.reasons]
    )
    if report.changed_sample:
        lines += ["", f"changed decisions (first {len(report.changed_sample)} of {report.changed:,}):"]
        for c in report.changed_sample:
            lines.append(
                f"  {c.decision_id}  {c.recorded_outcome} -> {c.outcome}  "
                f"reasons {_list(c.recorded_reasons)} -> {_list(c.reasons)}"
                + (f"  rules {_list(c.rules)}" if c.rules else "")
                + (f"  fallback {c.fallback}" if c.fallback else "")
            )
    if report.feedback is not None:
        lines += [
            "",
            "outcomes fed back, under the recorded outcomes:",
            figures_text(report.feedback.recorded).rstrip(),
        ]
        lines += ["under the candidate:", figures_text(report.feedback.candidate).rstrip()]
    return "\n".join(lines) + "\n"


def _window(report: ReplayReport) -> str:
    parts = []
    if report.since_ms is not None:
        parts.append(f"since ts_ms {report.since_ms}")
    if report.limit is not None:
        parts.append(f"the last {report.limit:,}")
    return f" ({', '.join(parts)})" if parts else ""


def _share(part: int, whole: int) -> str:
    return f"  ({100 * part / whole:.2f}%)" if whole else ""


def _list(items: list[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _table(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return []
    width = max(len(header[0]), *(len(str(r[0])) for r in rows))
    lines = ["", f"{title}:", f"  {header[0]:<{width}} {header[1]:>12} {header[2]:>12}"]
    lines += [f"  {str(r[0]):<{width}} {r[1]:>12,} {r[2]:>12,}" for r in rows]
    return lines
