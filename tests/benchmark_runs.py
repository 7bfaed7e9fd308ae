"""Running a benchmark script's quick mode from a test: it must exit 0 and print every figure.

Only that: the scripts' PASS/FAIL verdicts depend on the machine and its load, so no test asserts them.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_quick(script: str, figures: Sequence[str], *args: str, timeout_s: float = 600) -> str:
    """`benchmarks/<script> --quick <args>` from the project root; its output, once every figure is in it."""
    argv = [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, result.stderr
    missing = [figure for figure in figures if figure not in result.stdout]
    assert not missing, f"missing figures {missing} in:\n{result.stdout}"
    return result.stdout
