"""Prometheus metrics, one registry per app (no globals), in the text exposition format.

prometheus-client is the reference implementation of the format and writes the exposition,
registry and all. The families every decision touches (decisions, reasons, fallbacks, rule fires,
model calls, the two latency histograms) keep their values in plain dicts and reach the registry
as custom collectors at scrape time: prometheus-client's own Counter and Histogram take a lock
per increment, about eight times a decision. tests/proxy/test_metrics_families.py checks that
they expose byte for byte what prometheus-client's own types would.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

from guardrails.decide import Decision
from guardrails.policy.inputs import FieldError

if TYPE_CHECKING:
    from guardrails.monitor.report import MonitorReport
    from guardrails.registry import ReloadReport

from guardrails.upstream.caller import UpstreamResult

_STATUS_VALUES = {"ok": 0, "warn": 1, "alert": 2}
CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Counts:
    """A counter family kept in a plain dict by label values, read by prometheus-client at scrape time.

    prometheus-client's own Counter takes a lock per increment, and `labels()` checks every
    label value on each call; the series every decision touches pay that several times a
    request. These are incremented on the event loop's thread only, and registered as a custom
    collector, so the exposition is the same text. Label values come from policies (names,
    outcomes, reasons, rules) and a fixed set of statuses, never from a caller, so the dict
    stays as small as the metric's own series. Registered in `registry` as it is made, as
    prometheus-client's own types are.
    """

    def __init__(self, name: str, documentation: str, labels: Sequence[str], registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.values: dict[tuple[str, ...], float] = {}
        registry.register(self)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> list[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, value in self.values.copy().items():  # one C call: safe beside the loop's increments
            family.add_metric(labels, value)
        return [family]


class _Latencies:
    """A histogram family kept as bucket counts by label values, read at scrape time (see _Counts)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, list(labels)
        self.bounds = tuple(buckets)
        self._names = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self.values: dict[tuple[str, ...], list[float]] = {}  # per bucket (not cumulative), +Inf, then the sum
        registry.register(self)

    def observe(self, value: float, *labels: str) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.bounds) + 2)
        row[bisect.bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        row[-1] += value

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self) -> list[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, row in self.values.copy().items():
            counts = list(itertools.accumulate(row[:-1]))
            family.add_metric(labels, list(zip(self._names, counts, strict=True)), row[-1])
        return [family]


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series only double the output
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # the series every decision touches: plain dicts, read at scrape time
        self.decisions = _Counts("guardrails_decisions", "Decisions by policy and outcome", ["policy", "outcome"], r)
        self.reasons = _Counts("guardrails_decision_reasons", "Reasons given, by policy", ["policy", "reason"], r)
        self.fallbacks = _Counts("guardrails_fallbacks", "Fallback decisions by cause", ["policy", "cause"], r)
        self.rule_fires = _Counts("guardrails_rule_fires", "Rules that fired", ["policy", "rule", "mode"], r)
        self.input_errors = Counter(
            "guardrails_input_errors", "Input validation failures by field", ["policy", "field"], registry=r
        )
        self.upstream_requests = _Counts(
            "guardrails_upstream_requests", "Model calls by result", ["policy", "status"], r
        )
        self.upstream_retries = Counter("guardrails_upstream_retries", "Retried model calls", ["policy"], registry=r)
        self.upstream_latency = _Latencies(
            "guardrails_upstream_latency_seconds",
            "Model call latency, retries included",
            ["policy"],
            _LATENCY_BUCKETS,
            r,
        )
        self.request_latency = _Latencies(
            "guardrails_request_latency_seconds",
            "Decision request latency inside guardrails",
            ["policy", "endpoint"],
            _LATENCY_BUCKETS,
            r,
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
        self.decisions.inc(policy, decision.outcome)
        for reason in decision.reasons:
            self.reasons.inc(policy, reason)
        if decision.fallback is not None:
            self.fallbacks.inc(policy, decision.fallback)
        for rule in decision.rules:
            self.rule_fires.inc(policy, rule.name, rule.mode)

    def record_input_errors(self, policy: str, errors: list[FieldError]) -> None:
        # An unknown field's name comes from the caller: never let it become a label value.
        for field in {e.field if e.constraint not in ("unknown", "body") else f"({e.constraint})" for e in errors}:
            self.input_errors.labels(policy, field).inc()

    def record_upstream(self, policy: str, result: UpstreamResult) -> None:
        """One model call. The circuit state gauge is read from the breakers at scrape time instead."""
        self.upstream_requests.inc(policy, result.status)
        if result.attempts > 1:
            self.upstream_retries.labels(policy).inc(result.attempts - 1)
        if result.status != "circuit_open":
            self.upstream_latency.observe(result.latency_ms / 1000, policy)

    def record_latency(self, policy: str, endpoint: str, seconds: float) -> None:
        self.request_latency.observe(seconds, policy, endpoint)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
