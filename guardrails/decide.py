"""Pure: a validated input and the model's score fields in, a `Decision` out.

Thresholds first (the first that matches sets the outcome and the first reason), then
rules in file order: an enforced rule that matches sets the outcome and adds its reason,
and `final: true` stops the enforced rules after it; shadow rules are evaluated and
listed but never change anything. Any failure before this point is a cause, and the
decision is the policy's fallback with that cause.

No I/O, no clock, no randomness: imports the stdlib, msgspec and the policy modules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import FieldError
from guardrails.protocols import read_rows
from guardrails.scores import ScoreFields

Cause = Literal[
    "input_invalid",
    "upstream_timeout",
    "upstream_error",
    "upstream_unavailable",
    "output_invalid",
    "internal_error",
    "score_drift",
]
CAUSES: tuple[Cause, ...] = (
    "input_invalid",
    "upstream_timeout",
    "upstream_error",
    "upstream_unavailable",
    "output_invalid",
    "internal_error",
    "score_drift",
)


class RuleFired(msgspec.Struct, frozen=True):
    name: str
    mode: Literal["enforce", "shadow"]
    outcome: str
    reason: str


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """What guardrails decided, and everything needed to say why."""

    policy: str
    policy_version: str
    outcome: str
    reasons: list[str]
    rules: list[RuleFired]
    score: float | None = None
    confidence: float | None = None
    margin: float | None = None
    label: str | None = None
    fallback: Cause | None = None
    fallback_detail: str | None = None
    threshold: int | None = None
    errors: list[FieldError] | None = None


def decide(policy: CompiledPolicy, values: Mapping[str, Any], fields: ScoreFields) -> Decision:
    """Decide a validated input (`InputSchema` output) with the model's score fields."""
    # Runs once per request: locals instead of repeated attribute lookups, the threshold loop inline.
    env = policy.inputs.to_env(values)
    score = env["score"] = fields.score
    confidence = env["confidence"] = fields.confidence
    margin = env["margin"] = fields.margin
    label = env["label"] = fields.label
    threshold = 0
    for first in policy.thresholds:
        when = first.when
        if when is None or when.scalar(env):
            break
        threshold += 1
    else:
        raise AssertionError("compile guarantees a last threshold without `when`")
    outcome = env["outcome"] = first.outcome
    reasons = [first.reason]
    fired: list[RuleFired] = []
    stopped = False
    for rule in policy.rules:
        if rule.shadow:
            if rule.when.scalar(env):
                fired.append(RuleFired(rule.name, "shadow", rule.outcome, rule.reason))
        elif not stopped and rule.when.scalar(env):
            outcome = env["outcome"] = rule.outcome
            reasons.append(rule.reason)
            fired.append(RuleFired(rule.name, "enforce", rule.outcome, rule.reason))
            stopped = rule.final
    return Decision(
        policy=policy.name,
        policy_version=policy.version_id,
        outcome=outcome,
        reasons=reasons,
        rules=fired,
        score=score,
        confidence=confidence,
        margin=margin,
        label=label,
        threshold=threshold,
    )


def fallback(
    policy: CompiledPolicy,
    cause: Cause,
    detail: str | None = None,
    errors: list[FieldError] | None = None,
) -> Decision:
    """The policy's safe default, carrying the cause (and what went wrong)."""
    return Decision(
        policy=policy.name,
        policy_version=policy.version_id,
        outcome=policy.fallback_outcome,
        reasons=[policy.fallback_reason],
        rules=[],
        fallback=cause,
        fallback_detail=detail,
        errors=errors,
    )


def decide_row(policy: CompiledPolicy, values: Mapping[str, Any], row: Any) -> Decision:
    """Decide with one raw row of model output; unreadable output gives the fallback."""
    fields = policy.scores.read(row)
    if isinstance(fields, str):
        return fallback(policy, "output_invalid", fields)
    return decide(policy, values, fields)


def decide_response(policy: CompiledPolicy, values: Mapping[str, Any], body: Any) -> Decision:
    """Decide with a decoded response body in the policy's protocol, for one instance."""
    rows = read_rows(policy.upstream, body, 1)
    if isinstance(rows, str):
        return fallback(policy, "output_invalid", rows)
    return decide_row(policy, values, rows[0])


def decide_shadow(shadow: CompiledPolicy, live: Decision, values: Mapping[str, Any] | None, row: Any) -> Decision:
    """A shadow policy's decision on the live request: the same validated input, the same model row.

    It never calls the model: when the live decision had no model row (a fallback), the
    shadow falls back with the same cause. `values` is None when the input was invalid.
    """
    if values is None:
        return fallback(shadow, "input_invalid", errors=live.errors)
    if row is None:
        return fallback(shadow, live.fallback or "internal_error", live.fallback_detail)
    checked = shadow.inputs.from_mapping(dict(values))
    if isinstance(checked, list):
        return fallback(shadow, "input_invalid", errors=checked)
    return decide_row(shadow, checked, row)
