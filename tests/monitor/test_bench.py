"""`benchmarks/bench_monitor.py --quick` runs and prints every figure (its verdicts depend on the machine)."""

from __future__ import annotations

from tests.benchmark_runs import run_quick

FIGURES = (
    "monitoring off: from_json(bytes) + decide",
    "monitoring on:  from_json(bytes) + decide + observe",
    "empty hook:     from_json(bytes) + decide + a no-op call",
    "ratio on/off, from_json(bytes) + decide",
    "monitoring off: decide(validated dict)",
    "monitoring on:  decide(validated dict) + observe",
    "ratio on/off, decide(validated dict)",
    "observe costs, per decision",
    "report() on a full window:",
    "targets: ",
)


def test_the_quick_monitoring_benchmark_prints_every_figure() -> None:
    run_quick("bench_monitor.py", FIGURES)
