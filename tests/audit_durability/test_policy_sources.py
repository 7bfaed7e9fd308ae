"""Each policy version served is kept once in `policy_versions`, with its exact source text."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.audit_durability.support import VALID, ServeFactory, decide, open_audit

OLD_LABEL, NEW_LABEL = 'version: "2026-11-21.1"', 'version: "2026-11-21.2"'


def decided_version(client: httpx.Client, url: str) -> str:
    response = decide(client, url, VALID)
    assert response.status_code == 200, response.text
    version: str = response.json()["policy_version"]
    return version


def served_after_reload(client: httpx.Client, url: str, current: str) -> str:
    """The version decisions are made with once the server has picked up a changed file."""
    deadline = time.monotonic() + 15
    served = current
    while served == current and time.monotonic() < deadline:
        time.sleep(0.2)
        served = decided_version(client, url)
    assert served != current, "the changed policy was never served"
    return served


def test_every_version_served_is_stored_once_with_its_source(
    tmp_path: Path, policies_dir: Path, serve: ServeFactory
) -> None:
    audit = tmp_path / "audit.db"
    policy_file = policies_dir / "credit-risk.yaml"
    first_source = policy_file.read_text()
    assert OLD_LABEL in first_source
    second_source = first_source.replace(OLD_LABEL, NEW_LABEL)

    server = serve(audit)
    with httpx.Client(timeout=10) as client:
        first = decided_version(client, server.url)
        policy_file.write_text(second_source)  # hot-reloaded: a new version is served
        second = served_after_reload(client, server.url, first)
        policy_file.write_text(first_source)  # and back: the first version again, not stored twice
        assert served_after_reload(client, server.url, second) == first
    server.terminate()

    connection = open_audit(audit)
    try:
        versions = connection.execute("SELECT version_id, policy, label, source FROM policy_versions").fetchall()
        decided = {row[0] for row in connection.execute("SELECT DISTINCT policy_version FROM decisions")}
    finally:
        connection.close()
    assert sorted(versions) == sorted(
        [
            (first, "credit-risk", "2026-11-21.1", first_source),
            (second, "credit-risk", "2026-11-21.2", second_source),
        ]
    )
    assert decided == {first, second}
