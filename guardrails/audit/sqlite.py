"""The embedded audit store: one SQLite file in WAL mode, one writer thread, group commit.

Decisions queue their records; the writer thread takes everything waiting (up to
BATCH_MAX records), writes it in one transaction, chains each record's hash to the one
before, commits, and only then tells the waiting requests. What a caller's record then
survives (SYNCHRONOUS):
- `sync`: the WAL is fsynced at every commit (`synchronous=FULL`): it survives `kill -9`
  of the server and, on a disk that honours fsync, power loss.
- `commit`: the commit has written it to the WAL file (`synchronous=NORMAL`), so it is the
  kernel's: it survives `kill -9` of the server. SQLite fsyncs the WAL before each
  checkpoint (about every 1000 pages), so power loss or a kernel crash can lose the commits
  since the last one; the file stays consistent and its chain verifiable.
- `async`: the caller is answered at once; a crash can lose the records of the last
  ASYNC_GROUP_WINDOW_S and the batch being written.

A commit costs about as much for one record as for twenty (every table and index a record
touches is a page written, in `sync` then an fsync), and left to itself the writer commits as
soon as anything is queued: under load that was two or three records a commit. So the event
loop gathers records while more are coming. Where callers wait (`sync`, `commit`), what was
gathered goes to the writer as soon as every decision under way is waiting for its commit
(checked once the loop has run what is ready, so the requests read in the same turn have
started; a caller alone never waits), and at the latest GROUP_WINDOW_S after the first
record. The service keeps the count of decisions under way (`deciding`). In `async`
durability nobody waits for the commit: records are gathered for ASYNC_GROUP_WINDOW_S.

A batch that cannot be committed (disk full, file unwritable, locked past the busy timeout)
is rolled back whole and `healthy()` turns False; while that lasts and nothing is queued,
the writer tries a write that leaves nothing behind every RETRY_S, so readiness comes back
once the file can be written again, without waiting for traffic.

Readers open their own connections; WAL lets them read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from guardrails.audit.chain import GENESIS, ChainRow, chain_hash, decision_columns
from guardrails.audit.record import AuditRecord, StoredRecord
from guardrails.audit.schema import create_schema
from guardrails.audit.store import WAITS_FOR_COMMIT, Durability
from guardrails.errors import AuditUnavailable
from guardrails.policy.compile import CompiledPolicy

log = logging.getLogger("guardrails.audit")
BATCH_MAX = 1024
GROUP_WINDOW_S = 0.002  # sync, commit: gather records at most this long while other decisions are under way
ASYNC_GROUP_WINDOW_S = 0.01  # async: nobody waits, so gather this long always; a crash can lose as much
RETRY_S = 1.0  # while the store cannot write and nothing is queued, a probe write this often
BUSY_TIMEOUT_S = 30.0  # how long a write waits for a lock held by another connection
SYNCHRONOUS: dict[Durability, str] = {"sync": "FULL", "commit": "NORMAL", "async": "NORMAL"}

_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(AuditRecord).decode


@dataclass
class _Job:
    records: Sequence[AuditRecord] = ()
    policy: tuple[str, str, str | None, str, int] | None = None
    feedback: Sequence[tuple[str, str, int]] = ()  # (decision_id, label, ts_ms)
    done: Sequence[asyncio.Future[None]] = ()  # the requests waiting for this job's commit
    loop: asyncio.AbstractEventLoop | None = None
    stop: bool = False
    flushed: threading.Event | None = None  # set once written; only `flush` waits on one


class SQLiteAuditStore:
    """Audit records in one SQLite file; `durability` says when `append` returns."""

    def __init__(
        self,
        path: str | Path,
        durability: Durability = "sync",
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        group_window_s: float = GROUP_WINDOW_S,
    ) -> None:
        self.path = Path(path)
        self.durability: Durability = durability
        self.busy_timeout_s = busy_timeout_s
        self.group_window_s = group_window_s
        self.deciding = 0  # decisions under way that will append, kept by the service
        self._gathering: list[AuditRecord] = []  # on the event loop, not yet handed to the writer
        self._gathered: list[asyncio.Future[None]] = []  # the requests waiting for them (sync, commit)
        self._gathering_loop: asyncio.AbstractEventLoop | None = None
        self._hand_off_timer: asyncio.TimerHandle | None = None
        self._check_scheduled = False
        self._waiting = 0  # requests waiting for their records' commit
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._healthy = True
        self.synchronous: int | None = None  # the writer connection's, read back once it runs: 1 NORMAL, 2 FULL
        self._last_error: str | None = None
        connection = connect(self.path, busy_timeout_s=busy_timeout_s)
        try:
            if create_schema(connection):
                log.warning("audit store moved to the current layout", extra={"path": str(self.path)})
            self._head_seq, self._head_hash, self._head_ts = _head(connection)
        finally:
            connection.close()
        self._thread = threading.Thread(target=self._run, name="guardrails-audit-writer", daemon=True)
        self._thread.start()

    # ---- writing ----------------------------------------------------------------------

    async def append(self, records: Sequence[AuditRecord]) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._gathering_loop:
            self._hand_off()  # what an earlier loop left (it closed without a flush)
            self._gathering_loop = loop
        self._gathering.extend(records)
        done: asyncio.Future[None] | None = None
        if self.durability in WAITS_FOR_COMMIT:
            done = loop.create_future()
            self._gathered.append(done)
        if len(self._gathering) >= BATCH_MAX:
            self._hand_off()
        else:
            if self._hand_off_timer is None:
                window = self.group_window_s if done is not None else ASYNC_GROUP_WINDOW_S
                self._hand_off_timer = loop.call_later(window, self._hand_off)
            if done is not None and not self._check_scheduled:
                self._check_scheduled = True
                loop.call_soon(self._hand_off_unless_more_is_coming)
        if done is None:
            return
        self._waiting += 1
        try:
            await done
        finally:
            self._waiting -= 1

    def _hand_off_unless_more_is_coming(self) -> None:
        """After the loop's current callbacks (every request read this turn has started): hand off now
        if every decision under way is waiting for a commit, since no other record is coming."""
        self._check_scheduled = False
        if self.deciding <= self._waiting:
            self._hand_off()

    def _hand_off(self) -> None:
        """Queue what the event loop gathered for the writer (on the loop's thread, or once it stopped)."""
        if self._hand_off_timer is not None:
            self._hand_off_timer.cancel()
            self._hand_off_timer = None
        if self._gathering:
            records, self._gathering = self._gathering, []
            done, self._gathered = self._gathered, []
            self._queue.put(_Job(records, done=done, loop=self._gathering_loop))

    def _hand_off_from_any_thread(self, timeout_s: float) -> None:
        loop = self._gathering_loop
        if loop is None or not self._gathering:
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop or not loop.is_running():
            self._hand_off()
            return
        handed = threading.Event()

        def hand_off() -> None:
            self._hand_off()
            handed.set()

        with contextlib.suppress(RuntimeError):  # closed meanwhile: then it is not running, and nothing is left
            loop.call_soon_threadsafe(hand_off)
            handed.wait(timeout_s)

    def add_policy(self, policy: CompiledPolicy, ts_ms: int) -> None:
        row = (policy.version_id, policy.name, policy.version, policy.source_text, ts_ms)
        self._queue.put(_Job(policy=row))

    async def add_feedback(self, labels: Sequence[tuple[str, str]], ts_ms: int) -> list[str]:
        """Store observed labels for recorded decisions, committed before returning; the unknown ids come back.

        Feedback is not part of the hash chain: it is what happened after a decision, not the decision.
        """
        ids = sorted({decision_id for decision_id, _ in labels})
        await self._written(_Job())  # a decision answered a moment ago (async durability) is known too
        known = await asyncio.to_thread(self._known, ids)
        rows = [(decision_id, label, ts_ms) for decision_id, label in labels if decision_id in known]
        if rows:
            await self._written(_Job(feedback=rows))
        return [decision_id for decision_id in ids if decision_id not in known]

    async def _written(self, job: _Job) -> None:
        """Queue `job` behind everything gathered so far; return once it is committed."""
        loop = asyncio.get_running_loop()
        if loop is self._gathering_loop:
            self._hand_off()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(dataclasses.replace(job, done=[done], loop=loop))
        await done

    def _known(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        with closing(self.reader()) as connection:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT decision_id FROM decisions WHERE decision_id IN ({marks}) AND kind != 'shadow'"
                known.update(row[0] for row in connection.execute(sql, chunk))
        return known

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything appended so far is written (for tests, CLI tools and shutdown)."""
        self._hand_off_from_any_thread(timeout_s)
        flushed = threading.Event()
        self._queue.put(_Job(flushed=flushed))
        flushed.wait(timeout_s)

    def healthy(self) -> bool:
        return self._healthy and self._thread.is_alive()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def close(self) -> None:
        self._hand_off_from_any_thread(30.0)
        if self._thread.is_alive():
            self._queue.put(_Job(stop=True))
            self._thread.join(30)

    def _run(self) -> None:
        connection = connect(self.path, busy_timeout_s=self.busy_timeout_s)
        connection.execute(f"PRAGMA synchronous={SYNCHRONOUS[self.durability]}")
        self.synchronous = int(connection.execute("PRAGMA synchronous").fetchone()[0])
        try:
            while True:
                jobs = self._take()
                if not jobs:
                    self._probe(connection)
                    continue
                self._write(connection, jobs)
                for job in jobs:
                    if job.flushed is not None:
                        job.flushed.set()
                if any(job.stop for job in jobs):
                    return
        finally:
            connection.close()

    def _take(self) -> list[_Job]:
        """What is queued (at least one job), or nothing when the store is unhealthy and RETRY_S passed idle."""
        try:
            jobs = [self._queue.get(timeout=None if self._healthy else RETRY_S)]
        except queue.Empty:
            return []
        count = len(jobs[0].records)
        while count < BATCH_MAX and not jobs[-1].stop:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            jobs.append(job)
            count += len(job.records)
        return jobs

    def _write(self, connection: sqlite3.Connection, jobs: list[_Job]) -> None:
        seq, prev, last_ts = self._head_seq, self._head_hash, self._head_ts
        rows = Rows()

        def write() -> None:
            nonlocal seq, prev
            for job in jobs:
                if job.policy is not None:
                    connection.execute("INSERT OR IGNORE INTO policy_versions VALUES (?, ?, ?, ?, ?)", job.policy)
                if job.feedback:
                    sql = "INSERT INTO feedback (decision_id, label, ts_ms) VALUES (?, ?, ?)"
                    connection.executemany(sql, job.feedback)
                for record in job.records:
                    seq += 1
                    prev = rows.add(seq, prev, record)
            rows.insert(connection, last_ts)

        error = _in_transaction(connection, write)
        if error is None:
            self._head_seq, self._head_hash = seq, prev
            self._head_ts = rows.decisions[-1][2] if rows.decisions else last_ts
        self._note(error)
        _settle(jobs, error)

    def _probe(self, connection: sqlite3.Connection) -> None:
        """Try a write that leaves nothing behind, so readiness comes back without waiting for traffic.

        The row is inserted and deleted in one transaction: its page is still written to the WAL
        at commit, so a full or unwritable file fails the probe as it fails a batch.
        """

        def probe() -> None:
            connection.execute("INSERT OR REPLACE INTO meta VALUES ('write_probe', '')")
            connection.execute("DELETE FROM meta WHERE key = 'write_probe'")

        error = _in_transaction(connection, probe)
        self._note(error)

    def _note(self, error: BaseException | None) -> None:
        """Whether the last write (a batch or a probe) committed: what `healthy` reports."""
        if error is None:
            if not self._healthy:
                log.warning("audit store writable again", extra={"path": str(self.path)})
            self._healthy, self._last_error = True, None
            return
        was_healthy = self._healthy
        self._healthy, self._last_error = False, f"{type(error).__name__}: {error}"
        if was_healthy:  # once per outage: a probe fails every RETRY_S while it lasts
            log.error("audit store cannot write", extra={"path": str(self.path), "error": self._last_error})

    # ---- reading ------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        return connect(self.path, readonly=True)

    def get(self, decision_id: str) -> StoredRecord | None:
        with closing(self.reader()) as connection:
            row = connection.execute(
                "SELECT seq, prev_hash, hash, record FROM decisions WHERE decision_id = ?", (decision_id,)
            ).fetchone()
        return None if row is None else stored(row)

    def policy_source(self, version_id: str) -> str | None:
        with closing(self.reader()) as connection:
            row = connection.execute(
                "SELECT source FROM policy_versions WHERE version_id = ?", (version_id,)
            ).fetchone()
        return None if row is None else str(row[0])


def _in_transaction(connection: sqlite3.Connection, write: Callable[[], None]) -> BaseException | None:
    """Run `write` in one immediate transaction; the failure, if any, rolled back and returned (never raised)."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        write()
        connection.execute("COMMIT")
    except Exception as exc:  # any failure must reach the waiting requests, never kill the writer
        if connection.in_transaction:
            with contextlib.suppress(Exception):
                connection.execute("ROLLBACK")
        return exc
    return None


def connect(path: Path, readonly: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    if readonly:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return connection


class closing:
    """`contextlib.closing` for sqlite3 connections, typed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        return self.connection

    def __exit__(self, *exc: object) -> None:
        self.connection.close()


def stored(row: tuple[Any, ...]) -> StoredRecord:
    seq, prev_hash, hash_, record = row
    return StoredRecord(seq, prev_hash, hash_, _decode_record(record))


def _head(connection: sqlite3.Connection) -> tuple[int, str, int | None]:
    """The newest record's seq, hash and timestamp (the anchor's seq and hash, no timestamp, when none is left)."""
    row = connection.execute("SELECT seq, hash, ts_ms FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), str(row[1]), int(row[2])
    return (*anchor_of(connection), None)


def anchor_of(connection: sqlite3.Connection) -> tuple[int, str]:
    """Where the kept chain starts: after the last pruned record, or at the beginning."""
    rows = dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('anchor_seq', 'anchor_hash')"))
    return int(rows.get("anchor_seq", 0)), str(rows.get("anchor_hash", GENESIS))


@dataclass
class Rows:
    """Records as the store's rows (record JSON, hash chain, queried columns, reasons, rules), ready to insert.

    The writer builds each batch with it; tests and benchmarks that bulk-load a log use it too, so
    their files are what the store would have written.
    """

    decisions: list[tuple[Any, ...]] = field(default_factory=list)
    reasons: list[tuple[int, str]] = field(default_factory=list)
    rules: list[tuple[int, str, str]] = field(default_factory=list)

    def add(self, seq: int, prev: str, record: AuditRecord) -> str:
        """Add `record` as number `seq` after the record hashed `prev`; its own hash."""
        record_json = _encode(record)
        hash_ = chain_hash(prev, seq, record_json)
        self.decisions.append((seq, *decision_columns(record), record_json, prev, hash_))
        for reason in record.reasons:
            self.reasons.append((seq, reason))
        for rule in record.rules:
            self.rules.append((seq, rule.name, rule.mode))
        return hash_

    def insert(self, connection: sqlite3.Connection, last_ts: int | None) -> None:
        # OR ROLLBACK: a conflict (a decision_id stored twice) ends the whole transaction, as a failed
        # batch does anyway. With the default ABORT, a statement of many rows that can fail midway
        # keeps a statement journal: a copy of every page it touches, which SQLite moves to a
        # temporary file (created, written, unlinked) past 64 KiB: half the commits of 32 records.
        _insert_rows(connection, "INSERT OR ROLLBACK INTO decisions", self.decisions)
        _insert_rows(connection, "INSERT OR IGNORE INTO decision_reasons", self.reasons)  # a reason given twice
        _insert_rows(connection, "INSERT OR IGNORE INTO decision_rules", self.rules)
        _note_time_order(connection, self.decisions, last_ts)


_ROWS_PER_STATEMENT = 256


def _insert_rows(connection: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> None:
    """`rows` in statements of many rows each: SQLite runs each in one step, without giving up the GIL per row."""
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        connection.execute(_values_sql(insert, len(chunk[0]), len(chunk)), [v for row in chunk for v in row])


@functools.lru_cache(maxsize=64)
def _values_sql(insert: str, width: int, count: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return f"{insert} VALUES {', '.join([row] * count)}"


def _note_time_order(connection: sqlite3.Connection, decisions: list[tuple[Any, ...]], last_ts: int | None) -> None:
    """Note in `meta` a record stamped before the one ahead of it (the wall clock stepped back).

    Queries turn time bounds into seq ranges while timestamps never fall along the log
    (guardrails.audit.query); once this is noted, they filter on the timestamps alone.
    """
    if not decisions:
        return
    last = decisions[0][2] if last_ts is None else last_ts  # the newest committed record's, kept by the writer
    for row in decisions:
        if row[2] < last:
            connection.execute("INSERT OR IGNORE INTO meta VALUES ('ts_out_of_order', ?)", (str(row[0]),))
            return
        last = row[2]


def _settle(jobs: list[_Job], error: BaseException | None) -> None:
    """Tell the waiting requests: one wake-up of each event loop per batch, not one per request."""
    waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for job in jobs:
        if job.done and job.loop is not None:
            waiting.setdefault(job.loop, []).extend(job.done)
    for loop, futures in waiting.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_futures, futures, error)


def _settle_futures(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for done in futures:
        if done.done():
            continue  # the request was cancelled meanwhile
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(AuditUnavailable(f"audit store cannot write: {error}"))


_CHAIN_QUERY = """
SELECT d.seq, d.decision_id, d.record, d.prev_hash, d.hash,
       d.ts_ms, d.policy, d.policy_version, d.kind, d.outcome, d.fallback, d.request_id,
       (SELECT group_concat(reason, char(31)) FROM decision_reasons r WHERE r.seq = d.seq),
       (SELECT group_concat(rule || ':' || mode, char(31)) FROM decision_rules u WHERE u.seq = d.seq)
FROM decisions d ORDER BY d.seq
"""


def chain_rows(connection: sqlite3.Connection) -> Generator[ChainRow, None, None]:
    """Every row in seq order, as chain verification reads it."""
    for row in connection.execute(_CHAIN_QUERY):
        seq, decision_id, record, prev_hash, hash_ = row[:5]
        reasons = tuple(sorted(set(row[12].split("\x1f")))) if row[12] else ()  # as chain.record_columns
        rules = tuple(sorted(set(row[13].split("\x1f")))) if row[13] else ()
        columns = (decision_id, *row[5:12], reasons, rules)
        yield ChainRow(seq, decision_id, bytes(record), prev_hash, hash_, columns)
