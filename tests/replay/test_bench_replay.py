"""`benchmarks/bench_replay.py --quick` runs, checks its answers and prints every figure.

Its PASS/FAIL verdict depends on the machine and its load, so it is not asserted.
"""

from __future__ import annotations

from pathlib import Path

from tests.benchmark_runs import run_quick

FIGURES = (
    "checking: replay over columns and one by one give the same transitions ... same (",
    "   ours      replay, 5,000 rows ",
    "   baseline  one by one (decide), 5,000 rows ",
    "   floor     read + decode only, 5,000 rows ",
    "   ours      replay, 20,000 rows ",
    "   ratio ours/baseline, 5,000 rows ",
    "(--quick: 20,000 rows at ",
)


def test_the_quick_replay_benchmark_prints_every_figure(tmp_path: Path) -> None:
    run_quick("bench_replay.py", FIGURES, "--repeats", "1", "--keep", str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["audit-20000.db", "audit-5000.db"]
