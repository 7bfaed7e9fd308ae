"""The replay core and the policy diff are pure: no SQLite, no HTTP, no clock, no environment.

Only `guardrails/replay.py` (reading the audit log) and `guardrails/cli_replay.py` are edges.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "guardrails"
PURE = ["replay_record.py", "replay_vector.py", "replay_report.py", "policy/diff.py"]
OURS = (
    "guardrails.decide",
    "guardrails.decide_vector",
    "guardrails.policy.",
    "guardrails.scores",
    "guardrails.errors",
    "guardrails.audit.record",
    "guardrails.audit.figures",
    "guardrails.replay_",
)
FORBIDDEN = {"sqlite3", "os", "time", "datetime", "random", "socket", "threading", "subprocess"}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", PURE)
def test_the_core_imports_the_stdlib_msgspec_numpy_and_the_core_only(name: str) -> None:
    for module in imports(PACKAGE / name):
        root = module.split(".")[0]
        if module.startswith("guardrails"):
            assert module.startswith(OURS), f"{name} imports {module}"
        else:
            allowed = root in sys.stdlib_module_names or root in ("msgspec", "numpy")
            assert allowed and root not in FORBIDDEN, f"{name} imports {module}"
