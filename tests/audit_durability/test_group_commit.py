"""How the store gathers records into commits: at once for a decision alone, in a window while others are under way.

A real SQLite file and a real event loop; `deciding` is entered as the service enters it
(`AuditRecorder.deciding`), once per decision under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from guardrails.audit.record import AuditRecord
from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.sqlite import SQLiteAuditStore, closing, connect
from guardrails.audit.store import Durability
from guardrails.audit.verify import verify
from guardrails.errors import AuditUnavailable

T0 = 1_767_225_600_000


def record() -> AuditRecord:
    return AuditRecord(
        decision_id=str(uuid.uuid4()),
        ts_ms=T0,
        kind="decision",
        endpoint="decide",
        policy="credit",
        policy_version="0123456789abcdef",
        policy_label="1",
        input={"amount": 100.0},
        outcome="approve",
    )


def stored(path: Path) -> int:
    with closing(connect(path, readonly=True)) as connection:
        return int(connection.execute("SELECT count(*) FROM decisions").fetchone()[0])


@contextlib.contextmanager
def open_store(path: Path, durability: Durability, window_s: float) -> Iterator[SQLiteAuditStore]:
    store = SQLiteAuditStore(path, durability, group_window_s=window_s)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def deciding(recorder: AuditRecorder, count: int) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(recorder.deciding())
        yield


@pytest.mark.parametrize("durability", ["sync", "commit"])
@pytest.mark.parametrize("under_way", [1, 3], ids=["alone", "three"])
def test_a_group_goes_at_once_when_every_decision_under_way_waits_for_it(
    tmp_path: Path, under_way: int, durability: Durability
) -> None:
    """Nothing else is coming, so with a window of a minute the callers are still answered within seconds."""
    path = tmp_path / "audit.db"
    with open_store(path, durability, window_s=60.0) as store:
        recorder = AuditRecorder(store, None, lambda: T0)

        async def decide() -> None:
            with deciding(recorder, under_way):
                appends = [store.append([record()]) for _ in range(under_way)]
                await asyncio.wait_for(asyncio.gather(*appends), timeout=10)

        asyncio.run(decide())
        assert stored(path) == under_way


@pytest.mark.parametrize(("durability", "synchronous"), [("sync", 2), ("commit", 1), ("async", 1)])
def test_the_writer_fsyncs_every_commit_only_in_sync_durability(
    tmp_path: Path, durability: Durability, synchronous: int
) -> None:
    """SQLite's `synchronous` as the writer's connection reads it back: 1 NORMAL (WAL synced at checkpoints), 2 FULL."""
    with open_store(tmp_path / "audit.db", durability, window_s=0.0) as store:
        store.flush()
        assert store.synchronous == synchronous


def test_records_are_gathered_while_other_decisions_are_under_way(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    window_s = 0.5
    with open_store(path, "sync", window_s=window_s) as store:
        recorder = AuditRecorder(store, None, lambda: T0)

        async def decide() -> tuple[float, int]:
            with deciding(recorder, 3):  # three under way: two append, one is still waiting on its model
                started = time.monotonic()
                first = asyncio.ensure_future(store.append([record()]))
                second = asyncio.ensure_future(store.append([record(), record()]))
                await asyncio.sleep(window_s / 5)
                seen_meanwhile = stored(path)
                await asyncio.gather(first, second)
                return time.monotonic() - started, seen_meanwhile

        elapsed, seen_meanwhile = asyncio.run(decide())
        assert seen_meanwhile == 0  # gathered, not yet handed to the writer
        assert elapsed >= window_s * 0.9
        assert stored(path) == 3


def test_a_cancelled_caller_does_not_cancel_the_others_in_its_group(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_store(path, "sync", window_s=0.3) as store:
        recorder = AuditRecorder(store, None, lambda: T0)

        async def decide() -> None:
            with deciding(recorder, 3):
                gone = asyncio.ensure_future(store.append([record()]))
                kept = asyncio.ensure_future(store.append([record()]))
                await asyncio.sleep(0.05)
                gone.cancel()
                await asyncio.wait_for(kept, timeout=10)

        asyncio.run(decide())
        assert stored(path) == 2  # the cancelled caller's record was already given: it is kept


def test_async_records_still_gathered_when_the_loop_ends_are_written_by_flush(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_store(path, "async", window_s=0.002) as store:

        async def decide() -> None:
            for _ in range(5):
                await store.append([record()])  # answered at once; handed to the writer only after a window

        asyncio.run(decide())  # the loop is gone before its hand-off timer fires
        store.flush()
        assert stored(path) == 5


def test_async_records_still_gathered_are_written_by_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    store = SQLiteAuditStore(path, "async")

    async def serve_then_stop() -> None:
        for _ in range(4):
            await store.append([record()])
        store.close()  # as the server's shutdown does, on the loop

    asyncio.run(serve_then_stop())
    assert stored(path) == 4


def test_flush_from_another_thread_hands_off_what_the_running_loop_gathered(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_store(path, "async", window_s=0.002) as store:

        async def decide() -> int:
            await store.append([record(), record()])
            await asyncio.to_thread(store.flush)  # the loop keeps running meanwhile
            return stored(path)

        assert asyncio.run(decide()) == 2


def test_feedback_right_after_an_async_decision_finds_it(tmp_path: Path) -> None:
    """The decision's record may still be gathering when its feedback comes: feedback waits for it."""
    path = tmp_path / "audit.db"
    with open_store(path, "async", window_s=0.002) as store:
        decided = record()

        async def decide_then_label() -> list[str]:
            await store.append([decided])
            return await store.add_feedback([(decided.decision_id, "good"), ("no-such-decision", "bad")], T0)

        assert asyncio.run(decide_then_label()) == ["no-such-decision"]
    with closing(connect(path, readonly=True)) as connection:
        assert connection.execute("SELECT decision_id, label FROM feedback").fetchall() == [
            (decided.decision_id, "good")
        ]


def test_a_batch_that_breaks_a_constraint_is_rolled_back_whole_and_the_chain_goes_on(tmp_path: Path) -> None:
    """A decision_id stored twice fails its batch: no row of it kept, its callers told; the next batch chains on."""
    path = tmp_path / "audit.db"
    with open_store(path, "sync", window_s=0.0) as store:
        first = record()
        asyncio.run(store.append([first]))
        reasoned = [msgspec.structs.replace(record(), reasons=["LOW_RISK"]) for _ in range(300)]  # two statements
        clash = [*reasoned, msgspec.structs.replace(record(), decision_id=first.decision_id)]
        with pytest.raises(AuditUnavailable):
            asyncio.run(store.append(clash))
        assert not store.healthy()
        assert stored(path) == 1
        with closing(connect(path, readonly=True)) as connection:
            assert connection.execute("SELECT count(*) FROM decision_reasons").fetchone()[0] == 0
        asyncio.run(store.append([record(), record()]))
        assert store.healthy()
        assert stored(path) == 3
    assert verify(path).ok
