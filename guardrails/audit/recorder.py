"""Between the service and the store: build each decision's audit record and write it.

Holds the redaction key and the wall clock (passed in); what it builds a record with
(redaction, the capped model output) stays pure in guardrails.audit.record.
`write` answers whether the caller may be answered: False only when the store is in
`sync` or `commit` durability and could not commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from guardrails.audit.record import AuditRecord, cap_output, redact, redact_errors
from guardrails.audit.store import AuditStore
from guardrails.decide import Decision
from guardrails.errors import AuditUnavailable
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import FieldError

log = logging.getLogger("guardrails.audit")
Endpoint = Literal["decide", "batch"]


class AuditRecorder:
    def __init__(self, store: AuditStore, key: bytes | None, wall_ms: Callable[[], int]) -> None:
        self.store = store
        self.key = key
        self.wall_ms = wall_ms
        self._deciding = _Deciding(store)

    def deciding(self) -> _Deciding:
        """`with recorder.deciding():` around a decision, so the store knows another record is coming."""
        return self._deciding

    def decision(
        self,
        policy: CompiledPolicy,
        decision: Decision,
        *,
        decision_id: str,
        endpoint: Endpoint,
        values: Any,
        model: Any,
        model_output: bytes | None,
        latency_ms: float | None,
        request_id: str | None,
        shadow_of: str | None = None,
        live_decision_id: str | None = None,
    ) -> AuditRecord:
        """The record of a decision (fallbacks and shadows included); `model` is the envelope's ModelCall."""
        if decision.errors:  # an `input_invalid` fallback
            decision = msgspec.structs.replace(decision, errors=redact_errors(policy.inputs.fields, decision.errors))
        output, truncated = cap_output(model_output)
        return AuditRecord(  # built here, not through a helper: a second call with these keywords costs a few us
            decision_id=decision_id,
            ts_ms=self.wall_ms(),
            kind="decision" if shadow_of is None else "shadow",
            endpoint=endpoint,
            policy=decision.policy,
            policy_version=decision.policy_version,
            policy_label=policy.version,
            input=self._redacted(policy, values),
            model_output=output,
            model_output_truncated=truncated,
            score=decision.score,
            confidence=decision.confidence,
            margin=decision.margin,
            label=decision.label,
            outcome=decision.outcome,
            reasons=decision.reasons,
            rules=decision.rules,
            threshold=decision.threshold,
            fallback=decision.fallback,
            fallback_detail=decision.fallback_detail,
            errors=decision.errors,
            model_status=model.status,
            model_http_status=model.http_status,
            model_latency_ms=model.latency_ms,
            model_attempts=model.attempts,
            latency_ms=latency_ms,
            request_id=request_id,
            shadow_of=shadow_of,
            live_decision_id=live_decision_id,
        )

    def rejection(
        self,
        policy: CompiledPolicy,
        raw: Any,
        errors: list[FieldError],
        *,
        decision_id: str,
        endpoint: Endpoint,
        latency_ms: float | None,
        request_id: str | None,
    ) -> AuditRecord:
        """The record of an input rejected with HTTP 422."""
        return AuditRecord(
            decision_id=decision_id,
            ts_ms=self.wall_ms(),
            kind="rejected",
            endpoint=endpoint,
            policy=policy.name,
            policy_version=policy.version_id,
            policy_label=policy.version,
            input=self._redacted(policy, raw),
            errors=redact_errors(policy.inputs.fields, errors),
            latency_ms=latency_ms,
            request_id=request_id,
        )

    def _redacted(self, policy: CompiledPolicy, values: Any) -> dict[str, Any]:
        if not isinstance(values, dict):
            return {}
        return redact(policy.inputs, values, self.key)

    async def write(self, records: Sequence[AuditRecord]) -> bool:
        """Append `records`; False when they could not be committed and the caller must not be answered."""
        try:
            await self.store.append(records)
        except AuditUnavailable:
            log.exception("audit records not committed")
            return False
        return True


class _Deciding:
    """Counts the decisions under way in the store's `deciding` (one object, entered by every request)."""

    def __init__(self, store: AuditStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        self.store.deciding += 1

    def __exit__(self, *exc: object) -> None:
        self.store.deciding -= 1
