"""The dict-kept metric families expose exactly what prometheus-client's Counter and Histogram would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest

from guardrails.metrics import _LATENCY_BUCKETS, _Counts, _Latencies

LABEL = st.sampled_from(["credit", "fraud", "a b", 'quote"d', "back\\slash"])
AMOUNT = st.floats(min_value=0, max_value=1e6, allow_nan=False)
# bucket bounds themselves, either side of them, and anything else
LATENCY = st.one_of(
    st.sampled_from(_LATENCY_BUCKETS),
    st.sampled_from(_LATENCY_BUCKETS).map(lambda b: b * (1 + 1e-12)),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(LABEL, LABEL, AMOUNT), max_size=30))
def test_counts_expose_what_a_counter_would(increments: list[tuple[str, str, float]]) -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as Metrics does
    reference, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("things", "Things by a and b", ["a", "b"], registry=reference)
    counts = _Counts("things", "Things by a and b", ["a", "b"], ours)
    for a, b, amount in increments:
        counter.labels(a, b).inc(amount)
        counts.inc(a, b, amount=amount)
    assert generate_latest(ours) == generate_latest(reference)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(LABEL, LATENCY), max_size=30))
def test_latencies_expose_what_a_histogram_would(observations: list[tuple[str, float]]) -> None:
    disable_created_metrics()  # type: ignore[no-untyped-call]
    reference, ours = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("wait_seconds", "Waits", ["policy"], buckets=_LATENCY_BUCKETS, registry=reference)
    latencies = _Latencies("wait_seconds", "Waits", ["policy"], _LATENCY_BUCKETS, ours)
    for policy, seconds in observations:
        histogram.labels(policy).observe(seconds)
        latencies.observe(seconds, policy)
    assert generate_latest(ours) == generate_latest(reference)
