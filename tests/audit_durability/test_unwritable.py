"""A store that cannot write never makes the proxy fail open, and the proxy recovers when it can write again.

Real failures, nothing mocked:
- a full disk: the audit file on a small tmpfs that the test fills (needs root to mount; skipped
  otherwise), under `guardrails serve`;
- a write lock held by another connection past the store's busy timeout, in-process (a short
  timeout is the store's `busy_timeout_s`), which runs anywhere.

`sync`: the caller gets 503 `audit_unavailable` and no decision that was not recorded;
`async`: the caller is answered. Either way /health/ready turns 503 (audit "unavailable"),
and turns 200 again by itself once the store can write (the writer probes while it is down).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from guardrails.audit.store import Durability
from tests.audit_durability.support import (
    INVALID,
    POLICY,
    VALID,
    ServeFactory,
    app_server,
    chain_verdict,
    decide,
    decision_ids,
    ready,
    stored_ids,
    write_lock,
)

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MiB tmpfs: a disk the test can fill."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no `mount` command here")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full; deleting it frees the disk again."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for _ in range(2 * DISK_BYTES // len(chunk)):
            try:
                os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        else:
            pytest.fail("the disk never filled up")
    finally:
        os.close(fd)
    return filler


def wait_ready(url: str, status: int, timeout_s: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    response = ready(url)
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.1)
        response = ready(url)
    return response


def assert_not_ready(url: str) -> None:
    response = wait_ready(url, 503)
    assert response.status_code == 503
    assert response.json()["audit"] == "unavailable"
    assert response.json()["status"] == "not_ready"


def assert_ready(url: str) -> None:
    response = wait_ready(url, 200)
    assert response.status_code == 200, response.text
    assert response.json()["audit"] == "ok"


def decide_some(url: str, count: int) -> list[httpx.Response]:
    with httpx.Client(timeout=60) as client:
        return [decide(client, url, {**VALID, "amount": 300 + i}) for i in range(count)]


def refused(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.json()["error"] == "audit_unavailable"


def test_sync_full_disk_refuses_decisions_with_503_and_recovers(
    small_disk: Path, tmp_path: Path, serve: ServeFactory
) -> None:
    audit = small_disk / "audit.db"
    server = serve(audit)
    before = [i for r in decide_some(server.url, 3) for i in decision_ids(r)]
    assert_ready(server.url)

    filler = fill(small_disk)
    with httpx.Client(timeout=60) as client:
        during = [
            decide(client, server.url, VALID),
            decide(client, server.url, INVALID),  # a rejection is a decision too: not given unrecorded
            client.post(f"{server.url}/v1/decide/{POLICY}/batch", json={"instances": [VALID, VALID]}),
            *[decide(client, server.url, {**VALID, "amount": 10 + i}) for i in range(3)],
        ]
    assert [r.status_code for r in during] == [503] * len(during), [r.text for r in during]
    assert all(refused(r) for r in during)
    assert_not_ready(server.url)

    filler.unlink()
    assert_ready(server.url)  # the writer's probe: no traffic needed
    after = decide_some(server.url, 3)
    assert [r.status_code for r in after] == [200] * 3
    server.kill()

    answered = before + [i for r in after for i in decision_ids(r)]
    assert stored_ids(audit) == set(answered)  # every answered decision, and nothing else
    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem


def test_async_full_disk_answers_and_turns_not_ready(small_disk: Path, tmp_path: Path, serve: ServeFactory) -> None:
    audit = small_disk / "audit.db"
    server = serve(audit, durability="async")
    decide_some(server.url, 3)
    assert_ready(server.url)

    filler = fill(small_disk)
    during = decide_some(server.url, 5)
    assert [r.status_code for r in during] == [200] * 5  # answered at once; these records are lost
    assert_not_ready(server.url)

    filler.unlink()
    assert_ready(server.url)
    after = [i for r in decide_some(server.url, 3) for i in decision_ids(r)]
    server.terminate()
    assert set(after) <= stored_ids(audit)
    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem


@pytest.mark.parametrize(("durability", "waits"), [("sync", True), ("commit", True), ("async", False)])
def test_a_write_lock_held_elsewhere_makes_the_store_unavailable_until_released(
    tmp_path: Path, policies_dir: Path, durability: Durability, waits: bool
) -> None:
    audit = tmp_path / "audit.db"
    with app_server(audit, policies_dir, durability, busy_timeout_s=0.2) as (server, store):
        assert_ready(server.url)
        with write_lock(audit):
            during = decide_some(server.url, 2)
            if waits:  # the caller is answered only once the record is committed: here, never
                assert all(refused(r) for r in during), [r.text for r in during]
            else:
                assert [r.status_code for r in during] == [200, 200]
            assert_not_ready(server.url)
        assert_ready(server.url)
        after = [i for r in decide_some(server.url, 2) for i in decision_ids(r)]
        store.flush()
        assert set(after) <= stored_ids(audit)
    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem
