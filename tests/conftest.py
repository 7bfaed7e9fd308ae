"""Shared fixtures: paths to the shipped policies."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


@pytest.fixture
def credit_policy_path() -> Path:
    return POLICIES / "credit-risk.yaml"
