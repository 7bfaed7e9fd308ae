"""What ships: the monitor modules stay pure, and the example reference is what its seeded data gives."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from guardrails.cli import main
from guardrails.policy.load import load_policy_file
from tests.monitor.credit_data import POLICY, REFERENCE, REFERENCE_ROWS, REFERENCE_SEED, SCORE_COLUMN, draw, write_csv

PACKAGE = Path(__file__).resolve().parents[2] / "guardrails" / "monitor"
PURE_ROOTS = {"__future__", "bisect", "collections", "dataclasses", "functools", "hashlib", "itertools", "math"}
PURE_ROOTS |= {"operator", "statistics", "typing", "msgspec", "numpy"}
ALLOWED_OURS = ("guardrails.monitor.", "guardrails.policy.inputs", "guardrails.policy.spec")
EDGE = {"datafile.py": {"csv", "re", "pathlib", "guardrails.errors"}}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_monitor_modules_import_the_stdlib_msgspec_and_numpy_only(path: Path) -> None:
    extra = EDGE.get(path.name, set())
    for name in imports(path):
        ours = name.startswith(ALLOWED_OURS) or name == "guardrails.monitor"
        assert ours or name.split(".")[0] in PURE_ROOTS or name in extra, f"{path.name} imports {name}"


def test_the_shipped_policy_watches_its_reference() -> None:
    policy = load_policy_file(POLICY)
    assert policy.monitor is not None
    assert policy.monitor.spec.on_alert == "flag"
    assert Path(policy.monitor.reference_file) == REFERENCE
    assert policy.monitor.reference.rows == REFERENCE_ROWS


def test_the_shipped_reference_is_rebuilt_exactly_from_its_seeded_data(tmp_path: Path) -> None:
    data = tmp_path / "validation.csv"
    write_csv(data, draw(REFERENCE_ROWS, REFERENCE_SEED))
    out = tmp_path / "credit-risk.reference.json"
    code = main(["profile", str(data), "--policy", str(POLICY), "--score-column", SCORE_COLUMN, "-o", str(out)])
    assert code == 0
    assert out.read_bytes() == REFERENCE.read_bytes(), "rebuild it: python -m tests.monitor.credit_data"
