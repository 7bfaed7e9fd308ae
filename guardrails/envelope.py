"""The JSON the proxy answers with: msgspec Structs, also the source of the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

import msgspec

from guardrails.decide import Cause, Decision, RuleFired
from guardrails.policy.inputs import FieldError
from guardrails.upstream.caller import ModelStatus

ModelCallStatus = ModelStatus | Literal["skipped"]


class ModelCall(msgspec.Struct, frozen=True):
    """What happened when the model was called (`skipped` when it never was)."""

    status: ModelCallStatus
    latency_ms: float | None = None
    http_status: int | None = None
    attempts: int = 0


class DecisionEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    decision_id: str
    policy: str
    policy_version: str
    outcome: str
    reasons: list[str]
    rules: list[RuleFired]
    score: float | None
    confidence: float | None
    margin: float | None
    label: str | None
    fallback: Cause | None
    fallback_detail: str | None = None
    model: ModelCall
    latency_ms: float
    request_id: str | None = None
    errors: list[FieldError] | None = None


class InputRejected(msgspec.Struct, frozen=True, kw_only=True):
    """HTTP 422: the input broke the policy's `inputs:`; every violation is listed."""

    error: Literal["input_invalid"] = "input_invalid"
    decision_id: str
    policy: str
    policy_version: str
    errors: list[FieldError]
    request_id: str | None = None


class BatchEnvelope(msgspec.Struct, frozen=True):
    decisions: list[DecisionEnvelope]


class ErrorBody(msgspec.Struct, frozen=True):
    """Every other error: a stable `error` code and a sentence that says what is wrong."""

    error: str
    detail: str


def envelope(
    decision: Decision, decision_id: str, model: ModelCall, latency_ms: float, request_id: str | None
) -> DecisionEnvelope:
    return DecisionEnvelope(
        decision_id=decision_id,
        policy=decision.policy,
        policy_version=decision.policy_version,
        outcome=decision.outcome,
        reasons=decision.reasons,
        rules=decision.rules,
        score=decision.score,
        confidence=decision.confidence,
        margin=decision.margin,
        label=decision.label,
        fallback=decision.fallback,
        fallback_detail=decision.fallback_detail,
        model=model,
        latency_ms=latency_ms,
        request_id=request_id,
        errors=decision.errors,
    )
