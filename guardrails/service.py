"""The proxy's orchestration: body bytes in, an HTTP status and JSON bytes out.

validate (one msgspec pass) -> call the model -> read the score -> decide -> envelope.
Every failure after the input is known becomes the policy's fallback with its cause; an
unexpected exception becomes the fallback with `internal_error`, logged with its
traceback here and never sent to the caller. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.audit.recorder import AuditRecorder
from guardrails.decide import Cause, Decision, decide_row, fallback
from guardrails.decide_vector import columns_from_records, decide_vector
from guardrails.envelope import BatchEnvelope, ErrorBody, InputRejected, ModelCall, envelope
from guardrails.ids import DecisionIds
from guardrails.metrics import Metrics
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import FieldError, MalformedBody
from guardrails.scores import ScoreFields
from guardrails.upstream.caller import Upstream, UpstreamResult

log = logging.getLogger("guardrails.decisions")
JSON_BATCH_CONCURRENCY = 32  # json-protocol batches: one call per instance, this many at once


@dataclass(frozen=True, slots=True)
class LivePolicy:
    policy: CompiledPolicy
    upstream: Upstream
    loaded_at: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    decision_ids: tuple[str, ...] = ()


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    instances: list[Any]


_encode = msgspec.json.Encoder().encode
_batch_decoder = msgspec.json.Decoder(BatchRequest)


def error_answer(status: int, error: str, detail: str) -> Answer:
    return Answer(status, _encode(ErrorBody(error, detail)))


AUDIT_UNAVAILABLE = error_answer(
    503, "audit_unavailable", "the decision could not be recorded in the audit log, so it is not given; retry later"
)


def _raw_object(body: bytes) -> Any:
    """The body as decoded JSON, for the audit record of an input that failed validation."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


class DecisionService:
    def __init__(
        self,
        policies: Mapping[str, LivePolicy],
        metrics: Metrics,
        ids: DecisionIds,
        max_batch: int,
        recorder: AuditRecorder | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.policies = policies
        self.metrics = metrics
        self.ids = ids
        self.max_batch = max_batch
        self.recorder = recorder
        self.clock = clock

    def _live(self, name: str) -> LivePolicy | Answer:
        live = self.policies.get(name)
        if live is None:
            known = ", ".join(sorted(self.policies)) or "none"
            return error_answer(404, "unknown_policy", f"no policy named {name!r}; policies: {known}")
        return live

    async def decide(self, name: str, body: bytes, request_id: str | None) -> Answer:
        """Decide one request: POST /v1/decide/{policy}."""
        started = self.clock()
        live = self._live(name)
        if isinstance(live, Answer):
            return live
        policy = live.policy
        decision_id = self.ids.new()
        try:
            validated = policy.inputs.from_json(body)
        except MalformedBody as exc:
            return error_answer(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if isinstance(validated, list):
            self.metrics.record_input_errors(policy.name, validated)
            if policy.on_invalid == "reject":
                return await self._reject(policy, body, validated, decision_id, started, request_id)
        model, raw_output = ModelCall("skipped"), None
        try:
            if isinstance(validated, list):
                decision = fallback(policy, "input_invalid", errors=validated)
            else:
                result = await self._call(live, [validated])
                model, raw_output = _model_call(result), result.raw
                decision = _decide_result(policy, validated, result, 0)
        except Exception:
            log.exception("internal error deciding %s for policy %s", decision_id, policy.name)
            decision = fallback(policy, "internal_error", "an internal error occurred; see the server log")
        latency_ms = (self.clock() - started) * 1000
        if self.recorder is not None:
            values = validated if isinstance(validated, dict) else _raw_object(body)
            record = self.recorder.decision(
                policy,
                decision,
                decision_id=decision_id,
                endpoint="decide",
                values=values,
                model=model,
                model_output=raw_output,
                latency_ms=latency_ms,
                request_id=request_id,
            )
            if not await self.recorder.write([record]):
                return AUDIT_UNAVAILABLE
        self._observe(decision, "decide", latency_ms, decision_id)
        return Answer(200, _encode(envelope(decision, decision_id, model, latency_ms, request_id)), (decision_id,))

    async def _reject(
        self,
        policy: CompiledPolicy,
        body: bytes,
        errors: list[FieldError],
        decision_id: str,
        started: float,
        request_id: str | None,
    ) -> Answer:
        if self.recorder is not None:
            latency_ms = (self.clock() - started) * 1000
            record = self.recorder.rejection(
                policy,
                _raw_object(body),
                errors,
                decision_id=decision_id,
                endpoint="decide",
                latency_ms=latency_ms,
                request_id=request_id,
            )
            if not await self.recorder.write([record]):
                return AUDIT_UNAVAILABLE
        rejected = InputRejected(
            decision_id=decision_id,
            policy=policy.name,
            policy_version=policy.version_id,
            errors=errors,
            request_id=request_id,
        )
        return Answer(422, _encode(rejected), (decision_id,))

    async def decide_batch(self, name: str, body: bytes, request_id: str | None) -> Answer:
        """Decide many requests: POST /v1/decide/{policy}/batch, one model call where the protocol allows."""
        started = self.clock()
        live = self._live(name)
        if isinstance(live, Answer):
            return live
        instances = self._instances(body)
        if isinstance(instances, Answer):
            return instances
        policy = live.policy
        ids = [self.ids.new() for _ in instances]
        checked = [policy.inputs.from_mapping(item) for item in instances]
        invalid = [e for item in checked if isinstance(item, list) for e in item]
        if invalid:
            self.metrics.record_input_errors(policy.name, invalid)
            if policy.on_invalid == "reject":
                return await self._reject_batch(policy, instances, checked, ids, started, request_id)
        try:
            decisions, models, outputs = await self._decide_many(live, checked)
        except Exception:
            log.exception("internal error deciding a batch for policy %s", policy.name)
            internal = fallback(policy, "internal_error", "an internal error occurred; see the server log")
            decisions, models, outputs = [internal] * len(ids), [ModelCall("skipped")] * len(ids), [None] * len(ids)
        latency_ms = (self.clock() - started) * 1000
        if self.recorder is not None:
            records = [
                self.recorder.decision(
                    policy,
                    decision,
                    decision_id=decision_id,
                    endpoint="batch",
                    values=item if isinstance(item, dict) else raw,
                    model=model,
                    model_output=output,
                    latency_ms=latency_ms,
                    request_id=request_id,
                )
                for decision_id, decision, model, output, item, raw in zip(
                    ids, decisions, models, outputs, checked, instances, strict=True
                )
            ]
            if not await self.recorder.write(records):
                return AUDIT_UNAVAILABLE
        envelopes = []
        for decision_id, decision, model in zip(ids, decisions, models, strict=True):
            self._observe(decision, "batch", None, decision_id)
            envelopes.append(envelope(decision, decision_id, model, latency_ms, request_id))
        self.metrics.record_latency(policy.name, "batch", latency_ms / 1000)
        return Answer(200, _encode(BatchEnvelope(envelopes)), tuple(ids))

    async def _reject_batch(
        self,
        policy: CompiledPolicy,
        instances: list[Any],
        checked: list[dict[str, Any] | list[FieldError]],
        ids: list[str],
        started: float,
        request_id: str | None,
    ) -> Answer:
        """A batch with an invalid item is rejected whole; each item's record keeps its own errors."""
        if self.recorder is not None:
            latency_ms = (self.clock() - started) * 1000
            records = [
                self.recorder.rejection(
                    policy,
                    raw,
                    item if isinstance(item, list) else [],
                    decision_id=decision_id,
                    endpoint="batch",
                    latency_ms=latency_ms,
                    request_id=request_id,
                )
                for decision_id, raw, item in zip(ids, instances, checked, strict=True)
            ]
            if not await self.recorder.write(records):
                return AUDIT_UNAVAILABLE
        errors = [
            FieldError(f"instances[{i}].{e.field}", e.constraint, e.message)
            for i, item in enumerate(checked)
            if isinstance(item, list)
            for e in item
        ]
        rejected = InputRejected(
            decision_id=ids[0],
            policy=policy.name,
            policy_version=policy.version_id,
            errors=errors,
            request_id=request_id,
        )
        return Answer(422, _encode(rejected), tuple(ids))

    def _instances(self, body: bytes) -> list[Any] | Answer:
        try:
            instances = _batch_decoder.decode(body).instances
        except msgspec.ValidationError as exc:
            return error_answer(422, "bad_batch", f'the body must be {{"instances": [...]}}: {exc}')
        except msgspec.DecodeError as exc:
            return error_answer(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if not instances:
            return error_answer(422, "bad_batch", "`instances` is empty")
        if len(instances) > self.max_batch:
            return error_answer(422, "bad_batch", f"{len(instances)} instances; the limit is {self.max_batch}")
        return instances

    async def _decide_many(
        self, live: LivePolicy, checked: Sequence[dict[str, Any] | list[FieldError]]
    ) -> tuple[list[Decision], list[ModelCall], list[bytes | None]]:
        """Per item: its decision, its model call, and its own row of the model's output (JSON)."""
        policy = live.policy
        decisions: list[Decision | None] = [None] * len(checked)
        models = [ModelCall("skipped")] * len(checked)
        outputs: list[bytes | None] = [None] * len(checked)
        valid = [i for i, item in enumerate(checked) if isinstance(item, dict)]
        for i, item in enumerate(checked):
            if isinstance(item, list):
                decisions[i] = fallback(policy, "input_invalid", errors=item)
        results = await self._call_batch(live, [checked[i] for i in valid])  # type: ignore[misc]
        scored: list[tuple[int, dict[str, Any], ScoreFields]] = []
        for i, (result, row) in zip(valid, results, strict=True):
            models[i] = _model_call(result)
            if result.rows is None:
                outputs[i] = result.raw
                decisions[i] = fallback(policy, result.cause or "internal_error", result.detail)
                continue
            outputs[i] = _encode(result.rows[row])
            fields = policy.scores.read(result.rows[row])
            if isinstance(fields, str):
                decisions[i] = fallback(policy, "output_invalid", fields)
            else:
                scored.append((i, checked[i], fields))  # type: ignore[arg-type]
        if scored:
            columns = columns_from_records(policy, [s[1] for s in scored], [s[2] for s in scored])
            vector = decide_vector(policy, columns, len(scored))
            for row, (i, _, _) in enumerate(scored):
                decisions[i] = vector.decision(row)
        return [d for d in decisions if d is not None], models, outputs

    async def _call_batch(self, live: LivePolicy, instances: list[dict[str, Any]]) -> list[tuple[UpstreamResult, int]]:
        """Per instance, the call's result and the instance's row in it.

        v2 and mlflow send the whole batch in one call; json sends one call per instance,
        a bounded number at a time.
        """
        if not instances:
            return []
        if live.policy.upstream.protocol != "json":
            result = await self._call(live, instances)
            return [(result, row) for row in range(len(instances))]
        gate = asyncio.Semaphore(JSON_BATCH_CONCURRENCY)

        async def one(instance: dict[str, Any]) -> tuple[UpstreamResult, int]:
            async with gate:
                return await self._call(live, [instance]), 0

        return list(await asyncio.gather(*(one(instance) for instance in instances)))

    async def _call(self, live: LivePolicy, instances: list[dict[str, Any]]) -> UpstreamResult:
        result = await live.upstream.call(instances)
        self.metrics.record_upstream(live.policy.name, result, live.upstream.circuit_state())
        return result

    def _observe(self, decision: Decision, endpoint: str, latency_ms: float | None, decision_id: str) -> None:
        self.metrics.record_decision(decision)
        if latency_ms is not None:
            self.metrics.record_latency(decision.policy, endpoint, latency_ms / 1000)
        if decision.fallback is not None:
            log.warning(
                "fallback",
                extra={
                    "decision_id": decision_id,
                    "policy": decision.policy,
                    "cause": decision.fallback,
                    "detail": decision.fallback_detail,
                },
            )
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "decision",
                extra={
                    "decision_id": decision_id,
                    "policy": decision.policy,
                    "outcome": decision.outcome,
                    "reasons": decision.reasons,
                },
            )


def _model_call(result: UpstreamResult) -> ModelCall:
    latency = round(result.latency_ms, 3) if result.status != "circuit_open" else None
    return ModelCall(result.status, latency, result.http_status, result.attempts)


def _decide_result(policy: CompiledPolicy, values: dict[str, Any], result: UpstreamResult, row: int) -> Decision:
    if result.rows is None:
        cause: Cause = result.cause or "internal_error"
        return fallback(policy, cause, result.detail)
    return decide_row(policy, values, result.rows[row])
