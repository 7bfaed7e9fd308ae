"""`benchmarks/bench_monitor.py --quick` runs and prints every figure (its verdicts depend on the machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
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
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_monitor.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    missing = [figure for figure in FIGURES if figure not in result.stdout]
    assert not missing, f"missing figures {missing} in:\n{result.stdout}"
