"""Prometheus metrics, one registry per app (no globals), in the text exposition format.

prometheus-client is the reference implementation of the format and its histogram and
label handling; writing our own would only be a worse copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from guardrails.decide import Decision
from guardrails.policy.inputs import FieldError

if TYPE_CHECKING:
    from guardrails.monitor.report import MonitorReport
    from guardrails.registry import ReloadReport

from guardrails.upstream.caller import UpstreamResult

_STATUS_VALUES = {"ok": 0, "warn": 1, "alert": 2}
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Children:
    """`metric.labels(*values)`, remembered: prometheus-client takes a lock and checks every label on each call.

    Label values come from policies (names, outcomes, reasons, rules) and a fixed set of
    statuses, never from a caller, so the map stays as small as the metric's own series.
    """

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.known: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self.known.get(values)
        if child is None:
            child = self.known[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only double the output
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "guardrails_decisions", "Decisions by policy and outcome", ["policy", "outcome"], registry=r
        )
        self.reasons = Counter(
            "guardrails_decision_reasons", "Reasons given, by policy", ["policy", "reason"], registry=r
        )
        self.fallbacks = Counter("guardrails_fallbacks", "Fallback decisions by cause", ["policy", "cause"], registry=r)
        self.rule_fires = Counter("guardrails_rule_fires", "Rules that fired", ["policy", "rule", "mode"], registry=r)
        self.input_errors = Counter(
            "guardrails_input_errors", "Input validation failures by field", ["policy", "field"], registry=r
        )
        self.upstream_requests = Counter(
            "guardrails_upstream_requests", "Model calls by result", ["policy", "status"], registry=r
        )
        self.upstream_retries = Counter("guardrails_upstream_retries", "Retried model calls", ["policy"], registry=r)
        self.upstream_latency = Histogram(
            "guardrails_upstream_latency_seconds",
            "Model call latency, retries included",
            ["policy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_latency = Histogram(
            "guardrails_request_latency_seconds",
            "Decision request latency inside guardrails",
            ["policy", "endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.shadow_decisions = Counter(
            "guardrails_shadow_decisions",
            "Shadow policy decisions beside live ones, by live and shadow outcome",
            ["policy", "shadow", "live_outcome", "shadow_outcome"],
            registry=r,
        )
        self.reloads = Counter("guardrails_policy_reloads", "Reloads that changed the live policies", registry=r)
        self.reload_failures = Counter(
            "guardrails_policy_reload_failures", "Policy files refused by a reload", registry=r
        )
        self.policy_stale = Gauge(
            "guardrails_policy_stale",
            "1 while a policy's latest edit is refused (the last good version serves)",
            ["policy"],
            registry=r,
        )
        self.monitor_status = Gauge(
            "guardrails_monitor_status", "Drift monitor status: 0 ok, 1 warn, 2 alert", ["policy"], registry=r
        )
        self.monitor_psi = Gauge(
            "guardrails_monitor_psi", "PSI of an input (or `score`) over the window", ["policy", "value"], registry=r
        )
        self.monitor_missing = Gauge(
            "guardrails_monitor_missing_rate", "Share of the window missing an input", ["policy", "value"], registry=r
        )
        self.monitor_outcome_rate = Gauge(
            "guardrails_monitor_outcome_rate",
            "Share of each outcome over the window",
            ["policy", "outcome"],
            registry=r,
        )
        self.monitor_fallback_rate = Gauge(
            "guardrails_monitor_fallback_rate", "Share of fallbacks over the window", ["policy"], registry=r
        )
        self.circuit_state = Gauge(
            "guardrails_circuit_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["policy"], registry=r
        )
        # the series every decision touches
        self._decisions = _Children(self.decisions)
        self._reasons = _Children(self.reasons)
        self._fallbacks = _Children(self.fallbacks)
        self._rule_fires = _Children(self.rule_fires)
        self._upstream_requests = _Children(self.upstream_requests)
        self._upstream_latency = _Children(self.upstream_latency)
        self._request_latency = _Children(self.request_latency)

    def record_reload(self, report: ReloadReport) -> None:
        if report.failed:
            self.reload_failures.inc(len(report.failed))
        if report.added or report.updated or report.removed:
            self.reloads.inc()

    def record_shadow(self, live: str, shadow: str, live_outcome: str, shadow_outcome: str) -> None:
        self.shadow_decisions.labels(live, shadow, live_outcome, shadow_outcome).inc()

    def record_monitor(self, report: MonitorReport) -> None:
        policy = report.policy
        self.monitor_status.labels(policy).set(_STATUS_VALUES[report.status])
        for name, drift in report.inputs.items():
            self.monitor_psi.labels(policy, name).set(drift.psi)
            self.monitor_missing.labels(policy, name).set(drift.missing_rate)
        if report.score is not None:
            self.monitor_psi.labels(policy, "score").set(report.score.psi)
        for outcome, rate in report.outcomes.items():
            self.monitor_outcome_rate.labels(policy, outcome).set(rate.rate)
        self.monitor_fallback_rate.labels(policy).set(report.fallback_rate)

    def record_decision(self, decision: Decision) -> None:
        policy = decision.policy
        self._decisions(policy, decision.outcome).inc()
        for reason in decision.reasons:
            self._reasons(policy, reason).inc()
        if decision.fallback is not None:
            self._fallbacks(policy, decision.fallback).inc()
        for rule in decision.rules:
            self._rule_fires(policy, rule.name, rule.mode).inc()

    def record_input_errors(self, policy: str, errors: list[FieldError]) -> None:
        # An unknown field's name comes from the caller: never let it become a label value.
        for field in {e.field if e.constraint not in ("unknown", "body") else f"({e.constraint})" for e in errors}:
            self.input_errors.labels(policy, field).inc()

    def record_upstream(self, policy: str, result: UpstreamResult) -> None:
        """One model call. The circuit state gauge is read from the breakers at scrape time instead."""
        self._upstream_requests(policy, result.status).inc()
        if result.attempts > 1:
            self.upstream_retries.labels(policy).inc(result.attempts - 1)
        if result.status != "circuit_open":
            self._upstream_latency(policy).observe(result.latency_ms / 1000)

    def record_latency(self, policy: str, endpoint: str, seconds: float) -> None:
        self._request_latency(policy, endpoint).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
