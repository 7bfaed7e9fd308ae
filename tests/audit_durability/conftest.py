"""Fixtures of the audit durability tests: a real model, the shipped policy, `guardrails serve` subprocesses.

- `model`: a `ModelServer` on a loopback port (in this process), for the whole session.
- `policies_dir`: the shipped credit-risk policy pointed at that model, plus an `audit: drop` field.
- `serve`: starts `python -m guardrails serve --port 0 ...` in its own session and kills every
  process it started when the test ends, however it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardrails.demo.model import ModelServer
from guardrails.runner import ServerThread
from tests.audit_durability.support import AUDIT_KEY, Serve, ServeFactory, credit_policy_text


@pytest.fixture(scope="session")
def model() -> Iterator[ServerThread]:
    with ServerThread(ModelServer()) as server:
        yield server


@pytest.fixture
def policies_dir(tmp_path: Path, model: ServerThread) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "credit-risk.yaml").write_text(credit_policy_text(model.url))
    return folder


@pytest.fixture
def serve(tmp_path: Path, policies_dir: Path) -> Iterator[ServeFactory]:
    """`serve(audit=PATH, durability="sync", key=AUDIT_KEY, start=True)`: a running server."""
    started: list[Serve] = []

    def make(
        audit: Path,
        durability: str = "sync",
        key: str | None = AUDIT_KEY,
        start: bool = True,
        policies: Path = policies_dir,
    ) -> Serve:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GUARDRAILS_")}
        if key is not None:
            env["GUARDRAILS_AUDIT_KEY"] = key
        args = ["--policies", str(policies), "--audit", str(audit), "--audit-durability", durability]
        server = Serve([*args, "--log-level", "warning"], env, tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        for server in started:
            server.close()
