"""Call one policy's model: protocol, timeout, retries, circuit breaker; the result is a value.

Retries (with a short backoff) happen on connect errors and HTTP 502/503/504 only. A
timeout, a 5xx or a connect failure counts against the circuit breaker; while it is open
the call is refused at once with cause `upstream_unavailable`. Whatever happens, `call`
returns an `UpstreamResult`: rows to decide, or the cause of the fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from guardrails.decide import Cause
from guardrails.policy.spec import UpstreamSpec
from guardrails.protocols import decode_rows, request_body
from guardrails.upstream.breaker import CircuitBreaker, State
from guardrails.upstream.transport import Reply, Transport, TransportFailure

RETRY_STATUSES = frozenset({502, 503, 504})
BACKOFF_S = 0.01
ModelStatus = Literal["ok", "error", "timeout", "unavailable", "circuit_open", "invalid_output"]


@dataclass(frozen=True, slots=True)
class UpstreamResult:
    rows: list[Any] | None
    cause: Cause | None
    detail: str | None
    status: ModelStatus
    http_status: int | None
    latency_ms: float
    attempts: int
    raw: bytes | None = None


class Upstream:
    """One model endpoint, as a policy's `upstream:` describes it."""

    def __init__(self, spec: UpstreamSpec, transport: Transport, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self.transport = transport
        self.clock = clock
        self.breaker = CircuitBreaker(spec.circuit_breaker.failures, spec.circuit_breaker.reset_after_s)

    def circuit_state(self) -> State:
        return self.breaker.state(self.clock())

    async def call(self, instances: Sequence[Mapping[str, Any]]) -> UpstreamResult:
        """Send `instances` in one request and read one row per instance."""
        started = self.clock()
        if not self.breaker.allow(started):
            return UpstreamResult(None, "upstream_unavailable", "circuit open", "circuit_open", None, 0.0, 0)
        body = request_body(self.spec, instances)
        try:
            answer, attempts = await self._send(body)
        except BaseException:
            self.breaker.record_failure(self.clock())  # cancelled mid-call: never leave a probe hanging
            raise
        latency_ms = (self.clock() - started) * 1000
        return self._judge(answer, attempts, latency_ms, len(instances))

    async def _send(self, body: bytes) -> tuple[Reply | TransportFailure, int]:
        timeout_s = self.spec.timeout_ms / 1000
        attempts = 0
        while True:
            attempts += 1
            answer = await self.transport.post(self.spec.url, body, timeout_s, self.spec.max_response_bytes)
            retryable = (isinstance(answer, TransportFailure) and answer.kind == "connect") or (
                isinstance(answer, Reply) and answer.status in RETRY_STATUSES
            )
            if not retryable or attempts > self.spec.retries:
                return answer, attempts
            await asyncio.sleep(BACKOFF_S * attempts)

    def _judge(self, answer: Reply | TransportFailure, attempts: int, latency_ms: float, count: int) -> UpstreamResult:
        now = self.clock()
        if isinstance(answer, TransportFailure):
            if answer.kind == "too_large":
                self.breaker.record_success()
                return UpstreamResult(
                    None, "output_invalid", answer.detail, "invalid_output", None, latency_ms, attempts
                )
            self.breaker.record_failure(now)
            if answer.kind == "timeout":
                return UpstreamResult(None, "upstream_timeout", answer.detail, "timeout", None, latency_ms, attempts)
            cause: Cause = "upstream_unavailable" if answer.kind == "connect" else "upstream_error"
            status: ModelStatus = "unavailable" if answer.kind == "connect" else "error"
            return UpstreamResult(None, cause, answer.detail, status, None, latency_ms, attempts)
        if answer.status >= 500:
            self.breaker.record_failure(now)
        else:
            self.breaker.record_success()
        if not 200 <= answer.status < 300:
            detail = f"HTTP {answer.status}: {answer.body[:200].decode('utf-8', 'replace')}"
            return UpstreamResult(
                None, "upstream_error", detail, "error", answer.status, latency_ms, attempts, answer.body
            )
        rows = decode_rows(self.spec, answer.body, count)
        if isinstance(rows, str):
            return UpstreamResult(
                None, "output_invalid", rows, "invalid_output", answer.status, latency_ms, attempts, answer.body
            )
        return UpstreamResult(rows, None, None, "ok", answer.status, latency_ms, attempts, answer.body)
