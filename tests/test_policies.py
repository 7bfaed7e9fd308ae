"""Every policy shipped in policies/ loads, and its own `tests:` pass (a new file is covered by itself)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.policy.cases import run_cases
from guardrails.policy.load import load_policies, load_policy_file, policy_files

POLICIES = Path(__file__).resolve().parent.parent / "policies"
FILES = policy_files([POLICIES])


def test_the_folder_holds_the_shipped_policies() -> None:
    names = [path.name for path in FILES]
    assert "credit-risk.yaml" in names
    assert "content-moderation.yaml" in names


def test_policy_names_are_unique_across_the_folder() -> None:
    policies, problems = load_policies([POLICIES])
    assert [str(problem) for problem in problems] == []
    assert len({policy.name for policy in policies}) == len(FILES)


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_policy_loads(path: Path) -> None:
    policy = load_policy_file(path)
    assert path.stem == policy.name  # the file is named after its policy


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_policy_cases_pass(path: Path) -> None:
    policy = load_policy_file(path)
    assert len(policy.tests) >= 8, "a shipped policy carries its own cases"
    results = run_cases(policy)
    failures = {result.name: list(result.mismatches) for result in results if not result.passed}
    assert failures == {}
    assert len(results) == len(policy.tests)


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_policy_cases_reach_every_threshold_and_rule(path: Path) -> None:
    policy = load_policy_file(path)
    results = run_cases(policy)
    thresholds = {r.decision.threshold for r in results if r.decision is not None and r.decision.fallback is None}
    fired = {rule.name for r in results if r.decision is not None for rule in r.decision.rules}
    assert thresholds == set(range(len(policy.thresholds)))
    assert fired == {rule.name for rule in policy.rules}
    assert any(r.decision is not None and r.decision.fallback == "output_invalid" for r in results)
    assert any(r.errors for r in results) or policy.on_invalid == "fallback"
