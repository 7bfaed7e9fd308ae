"""`kill -9` of the real server under concurrent load: every decision a caller was given is in the audit file.

In `sync` durability (the default) a decision is answered only once its record is committed
and fsynced to the WAL; in `commit` once it is committed, without the fsync, which a crash of
the process does not need. Either way whatever the clients received (200s, batch items, 422
rejections) must be in the file after the kill, and the hash chain must verify; restarted on
the same file, the server continues the chain where it stopped.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardrails.audit.store import Durability
from tests.audit_durability.support import (
    INVALID,
    POLICY,
    VALID,
    ServeFactory,
    chain_verdict,
    cli_verify,
    decide,
    decision_ids,
    seqs,
    stored_ids,
)

CLIENTS = 8
REQUESTS_PER_CLIENT = 80  # an upper bound: the server is killed long before
KILL_AFTER_ANSWERS = 150


def request_for(client_no: int, i: int) -> tuple[str, dict[str, Any]]:
    """A varied mix: single decisions, rejected inputs (422) and batches of three."""
    n = client_no * REQUESTS_PER_CLIENT + i
    if n % 5 == 0:
        return "", INVALID
    item = {**VALID, "amount": 100 + n * 37 % 90_000, "account_age_days": n % 900}
    if n % 7 == 3:
        return "/batch", {"instances": [item, {**item, "country": "KP"}, {**item, "segment": "vip"}]}
    return "", item


@dataclass
class Load:
    """What the clients saw: every decision id they were answered with, and anything unexpected."""

    url: str
    answered: list[str] = field(default_factory=list)
    responses: int = 0
    unexpected: list[str] = field(default_factory=list)
    cut_off: int = 0  # clients whose connection died under them
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, client_no: int) -> None:
        with httpx.Client(timeout=10) as client:
            for i in range(REQUESTS_PER_CLIENT):
                suffix, body = request_for(client_no, i)
                try:
                    response = client.post(f"{self.url}/v1/decide/{POLICY}{suffix}", json=body)
                except httpx.TransportError:
                    with self.lock:
                        self.cut_off += 1
                    return
                self.record(response)

    def record(self, response: httpx.Response) -> None:
        with self.lock:
            self.responses += 1
            if response.status_code in (200, 422):
                self.answered.extend(decision_ids(response))
            else:
                self.unexpected.append(f"{response.status_code} {response.text}")


def run_load_and_kill(server_url: str, kill: Any) -> Load:
    load = Load(server_url)
    threads = [threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while load.responses < KILL_AFTER_ANSWERS and time.monotonic() < deadline:
        time.sleep(0.005)
    kill()
    for thread in threads:
        thread.join(30)
    return load


@pytest.mark.parametrize("durability", ["sync", "commit"])
def test_every_answered_decision_survives_kill_9_and_the_chain_continues_after_restart(
    tmp_path: Path, serve: ServeFactory, durability: Durability
) -> None:
    audit = tmp_path / "audit.db"
    server = serve(audit, durability=durability)
    load = run_load_and_kill(server.url, server.kill)

    assert load.unexpected == []
    assert load.cut_off > 0, "the server was not killed mid-stream"
    assert len(load.answered) >= KILL_AFTER_ANSWERS
    assert len(set(load.answered)) == len(load.answered)
    missing = set(load.answered) - stored_ids(audit)
    assert missing == set(), f"{len(missing)} answered decisions are not in the audit file"
    verified = cli_verify(audit)  # the file as the crash left it
    assert verified.returncode == 0, verified.stdout + verified.stderr
    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem
    before = seqs(audit)
    assert before == list(range(1, len(before) + 1))

    restarted = serve(audit)
    later: list[str] = []
    with httpx.Client(timeout=10) as client:
        for i in range(20):
            response = decide(client, restarted.url, {**VALID, "amount": 500 + i} if i % 4 else INVALID)
            assert response.status_code in (200, 422), response.text
            later.extend(decision_ids(response))
    assert restarted.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down

    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem
    assert verdict.count == len(before) + len(later)
    assert seqs(audit) == list(range(1, len(before) + len(later) + 1))
    assert set(later) <= stored_ids(audit)
