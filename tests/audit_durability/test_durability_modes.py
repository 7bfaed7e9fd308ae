"""When a caller is answered, in each durability, while another connection holds the audit file's write lock.

A write lock held from outside (sqlite3's `BEGIN IMMEDIATE`) stalls the server's writer
without failing it (it waits up to its busy timeout, 30 s), so what the server does before
its records can be committed is visible: `async` answers at once and writes everything on a
clean shutdown (`guardrails serve`, SIGTERM); `sync` answers only once the record is committed.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.audit_durability.support import (
    INVALID,
    VALID,
    ServeFactory,
    app_server,
    chain_verdict,
    decide,
    decision_ids,
    stored_ids,
    write_lock,
)

REQUESTS = 200
CONCURRENCY = 8


def decide_many(url: str, count: int) -> list[httpx.Response]:
    with httpx.Client(timeout=10, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

        def one(i: int) -> httpx.Response:
            return decide(client, url, {**VALID, "amount": 100 + i} if i % 10 else INVALID)

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            return list(pool.map(one, range(count)))


def test_async_answers_at_once_and_a_clean_shutdown_writes_every_record(tmp_path: Path, serve: ServeFactory) -> None:
    audit = tmp_path / "audit.db"
    server = serve(audit, durability="async")
    with write_lock(audit) as locked:
        responses = decide_many(server.url, REQUESTS)
        answered = [i for r in responses for i in decision_ids(r)]
        assert sorted({r.status_code for r in responses}) == [200, 422]
        assert len(answered) == REQUESTS
        # Answered, and not one record committed yet: the writer is waiting for the lock.
        assert locked.execute("SELECT count(*) FROM decisions").fetchone() == (0,)
        stopping = threading.Thread(target=server.terminate, daemon=True)
        stopping.start()
        time.sleep(0.5)  # SIGTERM arrives while every record is still queued
    stopping.join(30)
    assert server.process is not None
    assert server.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
    assert set(answered) <= stored_ids(audit)
    verdict = chain_verdict(audit)
    assert verdict.ok, verdict.problem
    assert verdict.count == REQUESTS


def test_sync_answers_only_once_the_record_is_committed(tmp_path: Path, policies_dir: Path) -> None:
    audit = tmp_path / "audit.db"
    with app_server(audit, policies_dir) as (server, _), httpx.Client(timeout=60) as client:
        with ThreadPoolExecutor(1) as pool, write_lock(audit):
            pending = pool.submit(decide, client, server.url, VALID)
            time.sleep(1.0)
            assert not pending.done(), "a sync decision was answered before its record could be committed"
        response = pending.result(timeout=60)
        assert response.status_code == 200, response.text
        assert set(decision_ids(response)) <= stored_ids(audit)
