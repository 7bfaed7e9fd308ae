"""The explanation of one recorded decision, recomputed with the exact policy that made it.

The policy's source text is kept once per version id, so the explanation compiles that
version and replays the decision on the stored input and score fields: every threshold
and rule with whether its condition matched, the outcome as it stood before each rule,
and whether the replay reaches the recorded outcome, reasons and rules. The stored input
is the redacted one: a condition that reads a hashed or dropped field is `unknown`, never
guessed, and the replay then takes the record's word for it (and says so).

`explain_record` is pure; `explain` reads the record and the policy source from a
connection.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Mapping
from typing import Any

import msgspec

from guardrails.audit.record import AuditRecord, is_hashed
from guardrails.audit.sqlite import stored
from guardrails.audit.times import iso
from guardrails.decide import RuleFired
from guardrails.errors import PolicyError
from guardrails.policy.compile import CompiledPolicy, Condition, Rule, Threshold
from guardrails.policy.expr import referenced_names
from guardrails.policy.inputs import FieldError
from guardrails.policy.load import load_policy_text

MATCHED, NOT_MATCHED, UNKNOWN = "matched", "not matched", "unknown (field hashed/dropped)"


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One threshold or rule: its condition and whether it matched on this decision."""

    kind: str  # "threshold" | "rule"
    name: str  # a threshold's 1-based position, a rule's name
    when: str | None
    outcome: str
    reason: str
    result: str  # matched | not matched | unknown (field hashed/dropped) | not evaluated (...)
    matched: bool | None
    unknown_fields: list[str] = []
    mode: str | None = None  # rules: enforce | shadow
    final: bool = False
    outcome_before: str | None = None  # rules: the outcome the condition saw
    effect: str = ""  # what this check did to the decision


class Recomputed(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str | None
    reasons: list[str]
    rules: list[RuleFired]
    threshold: int | None
    agrees: bool | None  # None: nothing to recompute (a rejected input, or no policy source)
    summary: str


class ModelInfo(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    http_status: int | None
    latency_ms: float | None
    attempts: int
    output: str | None
    output_truncated: bool


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: str
    seq: int
    hash: str
    time: str
    ts_ms: int
    kind: str
    endpoint: str
    policy: str
    policy_version: str
    policy_label: str | None
    request_id: str | None
    input: dict[str, Any]
    redacted: dict[str, str]  # field -> "hashed" | "dropped"
    model: ModelInfo
    score: float | None
    confidence: float | None
    margin: float | None
    label: str | None
    thresholds: list[Check]
    rules: list[Check]
    outcome: str | None
    reasons: list[str]
    rules_fired: list[RuleFired]
    fallback: str | None
    fallback_detail: str | None
    errors: list[FieldError] | None
    latency_ms: float | None
    shadow_of: str | None = None
    live_decision_id: str | None = None
    recomputed: Recomputed


def explain(connection: sqlite3.Connection, decision_id: str) -> Explanation | None:
    """The explanation of decision `decision_id`, or None when the log has no such decision."""
    row = connection.execute(
        "SELECT seq, prev_hash, hash, record FROM decisions WHERE decision_id = ?", (decision_id,)
    ).fetchone()
    if row is None:
        return None
    entry = stored(row)
    source = connection.execute(
        "SELECT source FROM policy_versions WHERE version_id = ?", (entry.record.policy_version,)
    ).fetchone()
    return explain_record(entry.record, entry.seq, entry.hash, None if source is None else str(source[0]))


@functools.lru_cache(maxsize=32)
def _compiled(source: str) -> CompiledPolicy:
    return load_policy_text(source, "<audit log>")


def explain_record(record: AuditRecord, seq: int, hash_: str, source: str | None) -> Explanation:
    """Explain `record` (stored as record `seq`) with the policy compiled from `source`."""
    policy: CompiledPolicy | None = None
    problem = None
    if source is None:
        problem = f"the audit log has no source for policy version {record.policy_version}"
    else:
        try:
            policy = _compiled(source)
        except PolicyError as exc:
            problem = f"the stored source of policy version {record.policy_version} no longer compiles: {exc}"
    redacted = _redacted(policy, record.input) if policy is not None else {}
    thresholds, rules, recomputed = _replay(policy, record, redacted, problem)
    return Explanation(
        decision_id=record.decision_id,
        seq=seq,
        hash=hash_,
        time=iso(record.ts_ms),
        ts_ms=record.ts_ms,
        kind=record.kind,
        endpoint=record.endpoint,
        policy=record.policy,
        policy_version=record.policy_version,
        policy_label=record.policy_label,
        request_id=record.request_id,
        input=record.input,
        redacted=redacted,
        model=ModelInfo(
            status=record.model_status,
            http_status=record.model_http_status,
            latency_ms=record.model_latency_ms,
            attempts=record.model_attempts,
            output=record.model_output,
            output_truncated=record.model_output_truncated,
        ),
        score=record.score,
        confidence=record.confidence,
        margin=record.margin,
        label=record.label,
        thresholds=thresholds,
        rules=rules,
        outcome=record.outcome,
        reasons=record.reasons,
        rules_fired=record.rules,
        fallback=record.fallback,
        fallback_detail=record.fallback_detail,
        errors=record.errors,
        latency_ms=record.latency_ms,
        shadow_of=record.shadow_of,
        live_decision_id=record.live_decision_id,
        recomputed=recomputed,
    )


def _redacted(policy: CompiledPolicy, stored_input: Mapping[str, Any]) -> dict[str, str]:
    """The fields whose value the log does not hold: hashed (a null stays null) or dropped."""
    redacted: dict[str, str] = {}
    for field in policy.inputs.fields:
        if field.audit == "drop":
            redacted[field.name] = "dropped"
        elif field.audit == "hash" and is_hashed(stored_input.get(field.name)):
            redacted[field.name] = "hashed"
    return redacted


def _replay(
    policy: CompiledPolicy | None, record: AuditRecord, redacted: dict[str, str], problem: str | None
) -> tuple[list[Check], list[Check], Recomputed]:
    if policy is None:
        summary = f"not recomputed: {problem}"
        return [], [], Recomputed(outcome=None, reasons=[], rules=[], threshold=None, agrees=None, summary=summary)
    if record.kind == "rejected":
        why = "not evaluated (the input was rejected)"
        summary = "nothing to recompute: the input was rejected with HTTP 422, so there is no outcome"
        checks = _unevaluated(policy, why)
        return *checks, Recomputed(outcome=None, reasons=[], rules=[], threshold=None, agrees=None, summary=summary)
    if record.fallback is not None:
        return _replay_fallback(policy, record)
    return _Replay(policy, record, redacted).run()


def _threshold_check(i: int, threshold: Threshold, **found: Any) -> Check:
    """Threshold number i + 1 as the explanation lists it, with what was found about it."""
    when = None if threshold.when is None else threshold.when.text
    return Check(
        kind="threshold", name=str(i + 1), when=when, outcome=threshold.outcome, reason=threshold.reason, **found
    )


def _rule_check(rule: Rule, **found: Any) -> Check:
    """A rule as the explanation lists it, with what was found about it."""
    mode = "shadow" if rule.shadow else "enforce"
    return Check(
        kind="rule",
        name=rule.name,
        when=rule.when.text,
        outcome=rule.outcome,
        reason=rule.reason,
        mode=mode,
        final=rule.final,
        **found,
    )


def _unevaluated(policy: CompiledPolicy, why: str) -> tuple[list[Check], list[Check]]:
    thresholds = [_threshold_check(i, t, result=why, matched=None) for i, t in enumerate(policy.thresholds)]
    rules = [_rule_check(r, result=why, matched=None) for r in policy.rules]
    return thresholds, rules


def _replay_fallback(policy: CompiledPolicy, record: AuditRecord) -> tuple[list[Check], list[Check], Recomputed]:
    thresholds, rules = _unevaluated(policy, f"not evaluated (fallback: {record.fallback})")
    outcome, reasons = policy.fallback_outcome, [policy.fallback_reason]
    agrees = outcome == record.outcome and reasons == record.reasons and not record.rules
    said = f"the policy's fallback is outcome {outcome!r} with reason {policy.fallback_reason}"
    verdict = "the same as recorded" if agrees else f"but the record says {record.outcome!r} with {record.reasons}"
    recomputed = Recomputed(
        outcome=outcome,
        reasons=reasons,
        rules=[],
        threshold=None,
        agrees=agrees,
        summary=f"fallback ({record.fallback}): {said}: {verdict}",
    )
    return thresholds, rules, recomputed


class _Replay:
    """Thresholds then rules, as `guardrails.decide.decide` runs them, noting every condition."""

    def __init__(self, policy: CompiledPolicy, record: AuditRecord, redacted: dict[str, str]) -> None:
        self.policy = policy
        self.record = record
        self.unknown = set(redacted)
        self.taken_from_record = 0
        values = {f.name: None if f.name in self.unknown else record.input.get(f.name) for f in policy.inputs.fields}
        env = policy.inputs.to_env(values)
        env.update(score=record.score, confidence=record.confidence, margin=record.margin, label=record.label)
        self.env = env

    def evaluate(self, when: Condition) -> tuple[bool | None, list[str]]:
        unknown = sorted(referenced_names(when.tree) & self.unknown)
        if unknown:
            return None, unknown
        return bool(when.scalar(self.env)), []

    def run(self) -> tuple[list[Check], list[Check], Recomputed]:
        thresholds, chosen = self.thresholds()
        rules, outcome, reasons, fired = self.rules(chosen)
        return thresholds, rules, self.compare(outcome, reasons, fired, chosen)

    def thresholds(self) -> tuple[list[Check], int]:
        checks: list[Check] = []
        chosen: int | None = None
        for i, threshold in enumerate(self.policy.thresholds):
            matched: bool | None = True
            unknown: list[str] = []
            result = "matched (no condition: the last threshold)"
            if threshold.when is not None:
                matched, unknown = self.evaluate(threshold.when)
                result = _result(matched)
            effect = ""
            if chosen is None:
                decides = matched if matched is not None else self._recorded_threshold(i)
                if decides:
                    chosen, effect = i, f"sets the outcome: {threshold.outcome}, reason {threshold.reason}"
            else:
                effect = "not reached (an earlier threshold set the outcome)"
            checks.append(
                _threshold_check(i, threshold, result=result, matched=matched, unknown_fields=unknown, effect=effect)
            )
        assert chosen is not None, "the last threshold has no condition"
        return checks, chosen

    def _recorded_threshold(self, i: int) -> bool:
        self.taken_from_record += 1
        return self.record.threshold == i

    def rules(self, chosen: int) -> tuple[list[Check], str, list[str], list[RuleFired]]:
        first = self.policy.thresholds[chosen]
        outcome, reasons = first.outcome, [first.reason]
        fired: list[RuleFired] = []
        recorded = {(r.name, r.mode) for r in self.record.rules}
        stopped_by: str | None = None
        checks: list[Check] = []
        for rule in self.policy.rules:
            mode = "shadow" if rule.shadow else "enforce"
            self.env["outcome"] = outcome
            before = outcome
            matched, unknown = self.evaluate(rule.when)
            if matched is None and (rule.shadow or stopped_by is None):
                self.taken_from_record += 1  # unknown, and it matters: the record says whether it fired
                fires = (rule.name, mode) in recorded
            else:
                fires = bool(matched)
            if rule.shadow:
                effect = "shadow: listed, never applied" if fires else ""
                if fires:
                    fired.append(RuleFired(rule.name, "shadow", rule.outcome, rule.reason))
            elif stopped_by is not None:
                effect = f"not applied: the final rule {stopped_by!r} fired before it"
            elif fires:
                outcome = rule.outcome
                reasons.append(rule.reason)
                fired.append(RuleFired(rule.name, "enforce", rule.outcome, rule.reason))
                effect = f"sets the outcome: {rule.outcome}, adds reason {rule.reason}"
                if rule.final:
                    stopped_by = rule.name
                    effect += "; final: no later enforced rule applies"
            else:
                effect = ""
            checks.append(
                _rule_check(
                    rule,
                    result=_result(matched),
                    matched=matched,
                    unknown_fields=unknown,
                    outcome_before=before,
                    effect=effect,
                )
            )
        return checks, outcome, reasons, fired

    def compare(self, outcome: str, reasons: list[str], fired: list[RuleFired], chosen: int) -> Recomputed:
        record = self.record
        agrees = (
            outcome == record.outcome
            and reasons == record.reasons
            and fired == record.rules
            and chosen == record.threshold
        )
        label = f"version {self.policy.version} " if self.policy.version else ""
        what = f"outcome {outcome!r}, reasons {', '.join(reasons)}"
        summary = f"recomputed with the stored policy ({label}id {record.policy_version}): {what}: "
        if agrees:
            summary += "the same as recorded"
        else:
            summary += f"DIFFERENT from the record (outcome {record.outcome!r}, reasons {', '.join(record.reasons)})"
        if self.taken_from_record:
            count = self.taken_from_record
            summary += (
                f"; {count} condition{'s' if count != 1 else ''} read hashed or dropped fields, "
                "and for those the record's result was taken"
            )
        return Recomputed(
            outcome=outcome, reasons=reasons, rules=fired, threshold=chosen, agrees=agrees, summary=summary
        )


def _result(matched: bool | None) -> str:
    if matched is None:
        return UNKNOWN
    return MATCHED if matched else NOT_MATCHED
