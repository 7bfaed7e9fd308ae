"""`benchmarks/bench_replay.py --quick` runs, checks its answers and prints every figure.

Its PASS/FAIL verdict depends on the machine and its load, so it is not asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    script = ROOT / "benchmarks" / "bench_replay.py"
    args = [sys.executable, str(script), "--quick", "--repeats", "1", "--keep", str(tmp_path)]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    missing = [figure for figure in FIGURES if figure not in result.stdout]
    assert not missing, f"missing {missing} in:\n{result.stdout}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["audit-20000.db", "audit-5000.db"]
