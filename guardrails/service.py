"""The proxy's orchestration: body bytes in, an HTTP status and JSON bytes out.

validate (one msgspec pass) -> call the model -> read the score -> decide -> envelope.
Every failure after the input is known becomes the policy's fallback with its cause; an
unexpected exception becomes the fallback with `internal_error`, logged with its
traceback here and never sent to the caller. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.audit.record import AuditRecord
from guardrails.audit.recorder import AuditRecorder, Endpoint
from guardrails.decide import Cause, Decision, decide_row, decide_shadow, fallback
from guardrails.decide_vector import columns_from_records, decide_vector
from guardrails.envelope import BatchEnvelope, ErrorBody, InputRejected, ModelCall, envelope
from guardrails.ids import DecisionIds
from guardrails.live import LivePolicy, Served
from guardrails.metrics import Metrics
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.inputs import NESTED_TOO_DEEPLY, FieldError, MalformedBody
from guardrails.scores import ScoreFields
from guardrails.upstream.caller import UpstreamResult

log = logging.getLogger("guardrails.decisions")
JSON_BATCH_CONCURRENCY = 32  # json-protocol batches: one call per instance, this many at once


@dataclass(frozen=True, slots=True)
class _Item:
    """One decided instance, with what its audit record and its shadows need."""

    decision_id: str
    decision: Decision
    model: ModelCall
    output: bytes | None  # the model's raw output for this instance
    row: Any  # its row of model output, None when there was none
    values: dict[str, Any] | None  # its validated input, None when invalid


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
        served: Callable[[], Served],
        metrics: Metrics,
        ids: DecisionIds,
        max_batch: int,
        recorder: AuditRecorder | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.served = served
        self.metrics = metrics
        self.ids = ids
        self.max_batch = max_batch
        self.recorder = recorder
        self.clock = clock
        # entered around every decision: with the log on, the store counts the decisions under way
        self._under_way: AbstractContextManager[None] = (
            contextlib.nullcontext() if recorder is None else recorder.deciding()
        )

    def _live(self, name: str) -> tuple[LivePolicy, tuple[LivePolicy, ...]] | Answer:
        """The live policy named `name` and its shadows, from one snapshot (a reload cannot split them)."""
        served = self.served()
        live = served.live.get(name)
        if live is None:
            known = ", ".join(sorted(served.live)) or "none"
            return error_answer(404, "unknown_policy", f"no policy named {name!r}; policies: {known}")
        return live, served.shadows.get(name, ())

    async def decide(self, name: str, body: bytes, request_id: str | None) -> Answer:
        """Decide one request: POST /v1/decide/{policy}."""
        with self._under_way:
            return await self._decide(name, body, request_id)

    async def decide_batch(self, name: str, body: bytes, request_id: str | None) -> Answer:
        """Decide many requests: POST /v1/decide/{policy}/batch, one model call where the protocol allows."""
        with self._under_way:
            return await self._decide_batch(name, body, request_id)

    async def _decide(self, name: str, body: bytes, request_id: str | None) -> Answer:
        started = self.clock()
        found = self._live(name)
        if isinstance(found, Answer):
            return found
        live, shadows = found
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
        model, raw_output, row = ModelCall("skipped"), None, None
        try:
            if isinstance(validated, list):
                decision = fallback(policy, "input_invalid", errors=validated)
            else:
                result = await self._call(live, [validated])
                model, raw_output = _model_call(result), result.raw
                row = result.rows[0] if result.rows else None
                decision = _decide_result(policy, validated, result)
        except Exception:
            log.exception("internal error deciding %s for policy %s", decision_id, policy.name)
            decision = fallback(policy, "internal_error", "an internal error occurred; see the server log")
        item = _Item(decision_id, decision, model, raw_output, row, validated if isinstance(validated, dict) else None)
        if live.monitor is not None:
            item = _watched(live, item)
        decision = item.decision
        latency_ms = (self.clock() - started) * 1000
        if self.recorder is not None:
            raw = item.values if item.values is not None else _raw_object(body)
            records = [self._record(policy, item, "decide", raw, latency_ms, request_id)]
            records += self._shadow_records(policy, shadows, [item], "decide", request_id)
            if not await self.recorder.write(records):
                return AUDIT_UNAVAILABLE
        else:
            self._shadow_records(policy, shadows, [item], "decide", request_id)
        self._observe(decision, "decide", latency_ms, decision_id)
        return Answer(200, _encode(envelope(decision, decision_id, model, latency_ms, request_id)), (decision_id,))

    def _record(
        self,
        policy: CompiledPolicy,
        item: _Item,
        endpoint: Endpoint,
        raw: Any,
        latency_ms: float | None,
        request_id: str | None,
    ) -> AuditRecord:
        assert self.recorder is not None
        return self.recorder.decision(
            policy,
            item.decision,
            decision_id=item.decision_id,
            endpoint=endpoint,
            values=raw,
            model=item.model,
            model_output=item.output,
            latency_ms=latency_ms,
            request_id=request_id,
        )

    def _shadow_records(
        self,
        policy: CompiledPolicy,
        shadows: tuple[LivePolicy, ...],
        items: list[_Item],
        endpoint: Endpoint,
        request_id: str | None,
    ) -> list[AuditRecord]:
        """Decide every shadow beside each live item; a shadow's failure never touches the live answer."""
        records: list[AuditRecord] = []
        for shadow in shadows:
            for item in items:
                try:
                    decision = decide_shadow(shadow.policy, item.decision, item.values, item.row)
                except Exception:
                    log.exception("shadow policy %s failed beside %s", shadow.policy.name, item.decision_id)
                    continue
                self.metrics.record_shadow(policy.name, shadow.policy.name, item.decision.outcome, decision.outcome)
                if self.recorder is not None:
                    records.append(
                        self.recorder.decision(
                            shadow.policy,
                            decision,
                            decision_id=self.ids.new(),
                            endpoint=endpoint,
                            values=item.values or {},
                            model=item.model,
                            model_output=item.output,
                            latency_ms=None,
                            request_id=request_id,
                            shadow_of=policy.name,
                            live_decision_id=item.decision_id,
                        )
                    )
        return records

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

    async def _decide_batch(self, name: str, body: bytes, request_id: str | None) -> Answer:
        started = self.clock()
        found = self._live(name)
        if isinstance(found, Answer):
            return found
        live, shadows = found
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
            items = await self._decide_many(live, checked, ids)
        except Exception:
            log.exception("internal error deciding a batch for policy %s", policy.name)
            internal = fallback(policy, "internal_error", "an internal error occurred; see the server log")
            items = [_Item(i, internal, ModelCall("skipped"), None, None, None) for i in ids]
        if live.monitor is not None:
            items = [_watched(live, item) for item in items]
        latency_ms = (self.clock() - started) * 1000
        if self.recorder is not None:
            records = [
                self._record(
                    policy, item, "batch", item.values if item.values is not None else raw, latency_ms, request_id
                )
                for item, raw in zip(items, instances, strict=True)
            ]
            records += self._shadow_records(policy, shadows, items, "batch", request_id)
            if not await self.recorder.write(records):
                return AUDIT_UNAVAILABLE
        else:
            self._shadow_records(policy, shadows, items, "batch", request_id)
        envelopes = []
        for item in items:
            self._observe(item.decision, "batch", None, item.decision_id)
            envelopes.append(envelope(item.decision, item.decision_id, item.model, latency_ms, request_id))
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
        except RecursionError:
            return error_answer(400, "malformed_json", f"the body is not valid JSON: {NESTED_TOO_DEEPLY}")
        if not instances:
            return error_answer(422, "bad_batch", "`instances` is empty")
        if len(instances) > self.max_batch:
            return error_answer(422, "bad_batch", f"{len(instances)} instances; the limit is {self.max_batch}")
        return instances

    async def _decide_many(
        self, live: LivePolicy, checked: Sequence[dict[str, Any] | list[FieldError]], ids: Sequence[str]
    ) -> list[_Item]:
        """Each item decided: valid ones scored from the model's rows and decided together, vectorised."""
        policy = live.policy
        items: list[_Item | None] = [None] * len(checked)
        valid = [i for i, item in enumerate(checked) if isinstance(item, dict)]
        for i, item in enumerate(checked):
            if isinstance(item, list):
                items[i] = _Item(
                    ids[i], fallback(policy, "input_invalid", errors=item), ModelCall("skipped"), None, None, None
                )
        results = await self._call_batch(live, [checked[i] for i in valid])  # type: ignore[misc]
        scored: list[tuple[int, dict[str, Any], ScoreFields, ModelCall, Any]] = []
        for i, (result, row) in zip(valid, results, strict=True):
            model, values = _model_call(result), checked[i]
            assert isinstance(values, dict)
            if result.rows is None:
                decision = fallback(policy, result.cause or "internal_error", result.detail)
                items[i] = _Item(ids[i], decision, model, result.raw, None, values)
                continue
            fields = policy.scores.read(result.rows[row])
            if isinstance(fields, str):
                decision = fallback(policy, "output_invalid", fields)
                items[i] = _Item(ids[i], decision, model, _encode(result.rows[row]), result.rows[row], values)
            else:
                scored.append((i, values, fields, model, result.rows[row]))
        if scored:
            columns = columns_from_records(policy, [s[1] for s in scored], [s[2] for s in scored])
            vector = decide_vector(policy, columns, len(scored))
            for position, (i, values, _, model, raw_row) in enumerate(scored):
                items[i] = _Item(ids[i], vector.decision(position), model, _encode(raw_row), raw_row, values)
        return [item for item in items if item is not None]

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
        self.metrics.record_upstream(live.policy.name, result)
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


def _watched(live: LivePolicy, item: _Item) -> _Item:
    """Count the decision in the policy's drift window; with `on_alert: fallback`, fall back while the score drifts."""
    window, config = live.monitor, live.policy.monitor
    assert window is not None and config is not None
    decision = item.decision
    score = decision.score  # a score_drift fallback still shows the window the score, to see it recover
    if decision.fallback is None and config.spec.on_alert == "fallback" and window.score_in_alert():
        detail = f"the score distribution is in alert: see /v1/policies/{live.policy.name}/monitor"
        decision = fallback(live.policy, "score_drift", detail)
        item = dataclasses.replace(item, decision=decision)
    window.observe(item.values, score, decision.outcome, decision.fallback is not None)
    return item


def _model_call(result: UpstreamResult) -> ModelCall:
    latency = round(result.latency_ms, 3) if result.status != "circuit_open" else None
    return ModelCall(result.status, latency, result.http_status, result.attempts)


def _decide_result(policy: CompiledPolicy, values: dict[str, Any], result: UpstreamResult) -> Decision:
    if result.rows is None:
        cause: Cause = result.cause or "internal_error"
        return fallback(policy, cause, result.detail)
    return decide_row(policy, values, result.rows[0])
