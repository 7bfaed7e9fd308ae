"""The service keeps the audit store's count of decisions under way: up while deciding, back to zero after.

The store gathers records while the count says others are coming (see
tests/audit_durability/test_group_commit.py); a count that drifted up would make every
caller wait out the window, one that drifted down would commit records one by one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx

from guardrails.app import build_app
from guardrails.audit.sqlite import SQLiteAuditStore, closing, connect
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread
from tests.proxy.conftest import LOW_RISK, SLOW_DELAY_MS, V2_PATH, RunningModel, credit_policy


def test_every_kind_of_answer_leaves_the_count_at_zero(tmp_path: Path, models: dict[str, RunningModel]) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.db", "sync", group_window_s=0.05)
    app = build_app([load_policy_text(credit_policy("credit", models["ok"].url + V2_PATH))], audit=store)
    requests = [
        ("/v1/decide/credit", LOW_RISK, 200),
        ("/v1/decide/credit", {"amount": -1}, 422),
        ("/v1/decide/credit", b"{nope", 400),
        ("/v1/decide/unknown", LOW_RISK, 404),
        ("/v1/decide/credit/batch", {"instances": [LOW_RISK, LOW_RISK]}, 200),
        ("/v1/decide/credit/batch", {"instances": "no"}, 422),
    ]

    async def send_all(url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            sent = [
                client.post(path, content=body) if isinstance(body, bytes) else client.post(path, json=body)
                for path, body, _ in requests * 4  # all at once: they overlap inside the service
            ]
            return [response.status_code for response in await asyncio.gather(*sent)]

    try:
        with ServerThread(app) as server:
            statuses = asyncio.run(send_all(server.url))
            assert statuses == [status for _, _, status in requests] * 4
            assert store.deciding == 0
    finally:
        store.close()
    with closing(connect(tmp_path / "audit.db", readonly=True)) as connection:
        kinds = dict(connection.execute("SELECT kind, count(*) FROM decisions GROUP BY kind").fetchall())
    assert kinds == {"decision": 4 * 3, "rejected": 4}


def test_the_count_is_up_while_a_decision_and_a_batch_wait_for_their_model(
    tmp_path: Path, models: dict[str, RunningModel]
) -> None:
    """Without it the store would hand each record to the writer alone: counted for both endpoints."""
    store = SQLiteAuditStore(tmp_path / "audit.db", "sync")
    slow = credit_policy("credit", models["slow"].reset().url + V2_PATH, timeout_ms=int(SLOW_DELAY_MS * 5))
    app = build_app([load_policy_text(slow)], audit=store)
    seen: list[int] = []

    def send(server_url: str, path: str, body: object) -> None:
        httpx.post(server_url + path, json=body, timeout=10).raise_for_status()

    try:
        with ServerThread(app) as server:
            senders = [
                threading.Thread(target=send, args=(server.url, "/v1/decide/credit", LOW_RISK)),
                threading.Thread(target=send, args=(server.url, "/v1/decide/credit/batch", {"instances": [LOW_RISK]})),
            ]
            for sender in senders:
                sender.start()
            deadline = time.monotonic() + SLOW_DELAY_MS / 1000 * 0.8  # both are still waiting on the model
            while time.monotonic() < deadline and store.deciding < 2:
                time.sleep(0.01)
            seen.append(store.deciding)
            for sender in senders:
                sender.join(10)
            seen.append(store.deciding)
    finally:
        store.close()
    assert seen == [2, 0]
