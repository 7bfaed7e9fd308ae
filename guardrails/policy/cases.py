"""Run a policy's own `tests:` cases: expected against actual, in both evaluation forms.

Each case is decided with the scalar form, and again with the vectorised form, which must
agree; a disagreement is reported as a failure of guardrails itself, not of the policy.

Pure: imports the stdlib and the decision modules only.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from guardrails.decide import Decision, decide_response, decide_row, fallback
from guardrails.decide_vector import columns_from_records, decide_vector
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import FieldError
from guardrails.policy.spec import ExpectSpec, PolicyTestSpec
from guardrails.scores import ScoreFields


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    mismatches: tuple[str, ...]
    decision: Decision | None
    errors: tuple[FieldError, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches


def run_cases(policy: CompiledPolicy) -> list[CaseResult]:
    """The result of every case in the policy's `tests:`, in order."""
    return [run_case(policy, case) for case in policy.tests]


def run_case(policy: CompiledPolicy, case: PolicyTestSpec) -> CaseResult:
    validated = policy.inputs.from_mapping(case.input)
    if isinstance(validated, list):
        if policy.on_invalid == "fallback":
            decision = fallback(policy, "input_invalid", errors=validated)
            return _result(case, decision, (), _compare(case.expect, decision, validated))
        return _result(case, None, tuple(validated), _compare_rejected(case.expect, validated))
    if case.score is not None:
        decision = decide_row(policy, validated, case.score)
    elif case.model_output is not msgspec.UNSET:
        decision = decide_response(policy, validated, case.model_output)
    else:
        return _result(case, None, (), ["a test needs `score` or `model_output`"])
    mismatches = _compare(case.expect, decision, [])
    mismatches.extend(_vector_disagreement(policy, validated, decision))
    return _result(case, decision, (), mismatches)


def _result(
    case: PolicyTestSpec, decision: Decision | None, errors: tuple[FieldError, ...], mismatches: list[str]
) -> CaseResult:
    return CaseResult(case.name, tuple(mismatches), decision, errors)


def _compare(expect: ExpectSpec, decision: Decision, errors: list[FieldError]) -> list[str]:
    enforced = [r.name for r in decision.rules if r.mode == "enforce"]
    shadow = [r.name for r in decision.rules if r.mode == "shadow"]
    checks: list[tuple[str, object, object]] = [
        ("outcome", expect.outcome, decision.outcome),
        ("reasons", expect.reasons, decision.reasons),
        ("rules", expect.rules, enforced),
        ("shadow_rules", expect.shadow_rules, shadow),
        ("errors", expect.errors, [e.field for e in errors] if expect.errors is not None else None),
    ]
    mismatches = [
        f"{key}: expected {want!r}, got {got!r}" for key, want, got in checks if want is not None and want != got
    ]
    if expect.fallback is not msgspec.UNSET and expect.fallback != decision.fallback:
        detail = f" ({decision.fallback_detail})" if decision.fallback_detail else ""
        mismatches.append(f"fallback: expected {expect.fallback!r}, got {decision.fallback!r}{detail}")
    return mismatches


def _compare_rejected(expect: ExpectSpec, errors: list[FieldError]) -> list[str]:
    fields = [e.field for e in errors]
    if expect.errors is None:
        messages = "; ".join(e.message for e in errors)
        return [f"input was rejected: {messages}"]
    if sorted(expect.errors) != sorted(fields):
        return [f"errors: expected fields {expect.errors!r}, got {fields!r}"]
    return []


def _vector_disagreement(policy: CompiledPolicy, validated: dict[str, object], decision: Decision) -> list[str]:
    if decision.score is None or decision.confidence is None or decision.margin is None:
        return []  # a fallback: nothing was evaluated
    fields = ScoreFields(decision.score, decision.confidence, decision.margin, decision.label)
    vector = decide_vector(policy, columns_from_records(policy, [validated], [fields]), 1).decision(0)
    if vector != decision:
        return [f"internal: the vectorised form decided {vector!r}, the scalar form {decision!r}"]
    return []
