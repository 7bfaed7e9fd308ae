"""The benchmark runs: `benchmarks/bench_decide.py --quick` exits 0 and prints every figure.

Only that it runs and what it prints: its PASS/FAIL verdicts depend on the machine and its
load, so they are not asserted here.
"""

from __future__ import annotations

import pytest

from tests.benchmark_runs import run_quick

FIGURES = (
    "ours      from_json(bytes) + decide",
    "baseline  msgspec.json.decode + ifs",
    "ours      from_mapping(dict) + decide",
    "baseline  ifs on the dict",
    "ratio ours/baseline, from_json",
    "ratio ours/baseline, from_mapping",
    "zen       decision.evaluate(dict), per call",
    "zen       engine.evaluate_batch(1,000 requests)",
    "ours      decide(validated dict) only",
    "ratio ours(from_json + decide)/zen per call",
    "ratio ours(from_json + decide)/zen batched",
    "ours      decide_vector, 100,000 rows",
    "baseline  numpy where/masks, 100,000 rows",
    "ratio ours/baseline, 100,000 rows",
    "targets: ",
)


def test_quick_benchmark_prints_every_figure() -> None:
    pytest.importorskip("zen", reason="zen-engine (in the `dev` extra) is not installed")
    output = run_quick("bench_decide.py", FIGURES)
    assert "verified:" in output
