"""The embedded audit store: one SQLite file in WAL mode, one writer thread, group commit.

Decisions queue their records; the writer thread takes everything waiting (up to
BATCH_MAX records), writes it in one transaction, chains each record's hash to the one
before, commits, and only then tells the waiting requests. In `sync` durability the
database runs with `synchronous=FULL`, so a record a caller was answered for has been
fsynced to the WAL: it survives `kill -9` and, on a disk that honours fsync, power loss.
In `async` durability the caller is answered at once and `synchronous=NORMAL` is used:
a crash can lose the last batch.

Readers open their own connections; WAL lets them read while the writer writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from guardrails.audit.chain import GENESIS, ChainRow, chain_hash
from guardrails.audit.record import AuditRecord, StoredRecord
from guardrails.audit.store import Durability
from guardrails.errors import AuditUnavailable
from guardrails.policy.compile import CompiledPolicy

log = logging.getLogger("guardrails.audit")
BATCH_MAX = 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    policy TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT,
    fallback TEXT,
    request_id TEXT,
    record BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_policy ON decisions (policy, seq);
CREATE INDEX IF NOT EXISTS decisions_outcome ON decisions (outcome, seq);
CREATE INDEX IF NOT EXISTS decisions_fallback ON decisions (fallback, seq);
CREATE INDEX IF NOT EXISTS decisions_version ON decisions (policy_version, seq);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts_ms);
CREATE INDEX IF NOT EXISTS decisions_request ON decisions (request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS decision_reasons (seq INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decision_reasons_reason ON decision_reasons (reason, seq);
CREATE INDEX IF NOT EXISTS decision_reasons_seq ON decision_reasons (seq);
CREATE TABLE IF NOT EXISTS decision_rules (seq INTEGER NOT NULL, rule TEXT NOT NULL, mode TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decision_rules_rule ON decision_rules (rule, seq);
CREATE INDEX IF NOT EXISTS decision_rules_seq ON decision_rules (seq);
CREATE TABLE IF NOT EXISTS policy_versions (
    version_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    label TEXT,
    source TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL
);
"""

_encode = msgspec.json.Encoder().encode
_decode_record = msgspec.json.Decoder(AuditRecord).decode


@dataclass
class _Job:
    records: Sequence[AuditRecord] = ()
    policy: tuple[str, str, str | None, str, int] | None = None
    done: asyncio.Future[None] | None = None
    loop: asyncio.AbstractEventLoop | None = None
    stop: bool = False
    flushed: threading.Event = field(default_factory=threading.Event)


class SQLiteAuditStore:
    """Audit records in one SQLite file; `durability` says when `append` returns."""

    def __init__(self, path: str | Path, durability: Durability = "sync") -> None:
        self.path = Path(path)
        self.durability: Durability = durability
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._healthy = True
        self._last_error: str | None = None
        connection = connect(self.path)
        try:
            connection.executescript(SCHEMA)
            self._head_seq, self._head_hash = _head(connection)
        finally:
            connection.close()
        self._thread = threading.Thread(target=self._run, name="guardrails-audit-writer", daemon=True)
        self._thread.start()

    # ---- writing ----------------------------------------------------------------------

    async def append(self, records: Sequence[AuditRecord]) -> None:
        if self.durability == "async":
            self._queue.put(_Job(records))
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Job(records, done=done, loop=loop))
        await done

    def add_policy(self, policy: CompiledPolicy, ts_ms: int) -> None:
        row = (policy.version_id, policy.name, policy.version, policy.source_text, ts_ms)
        self._queue.put(_Job(policy=row))

    def flush(self, timeout_s: float = 30.0) -> None:
        """Block until everything queued so far is written (for tests, CLI tools and shutdown)."""
        job = _Job()
        self._queue.put(job)
        job.flushed.wait(timeout_s)

    def healthy(self) -> bool:
        return self._healthy and self._thread.is_alive()

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_Job(stop=True))
            self._thread.join(30)

    def _run(self) -> None:
        connection = connect(self.path)
        connection.execute(f"PRAGMA synchronous={'FULL' if self.durability == 'sync' else 'NORMAL'}")
        try:
            while True:
                jobs = self._take()
                self._write(connection, jobs)
                for job in jobs:
                    job.flushed.set()
                if any(job.stop for job in jobs):
                    return
        finally:
            connection.close()

    def _take(self) -> list[_Job]:
        jobs = [self._queue.get()]
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
        seq, prev = self._head_seq, self._head_hash
        error: BaseException | None = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in jobs:
                if job.policy is not None:
                    connection.execute("INSERT OR IGNORE INTO policy_versions VALUES (?, ?, ?, ?, ?)", job.policy)
                for record in job.records:
                    seq += 1
                    prev = _insert(connection, seq, prev, record)
            connection.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            error = exc
            if connection.in_transaction:
                connection.execute("ROLLBACK")
        if error is None:
            self._head_seq, self._head_hash = seq, prev
            if not self._healthy:
                log.warning("audit store writable again", extra={"path": str(self.path)})
            self._healthy, self._last_error = True, None
        else:
            self._healthy, self._last_error = False, f"{type(error).__name__}: {error}"
            log.error("audit store cannot write", extra={"path": str(self.path), "error": self._last_error})
        for job in jobs:
            _settle(job, None if error is None else AuditUnavailable(f"audit store cannot write: {error}"))

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


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA busy_timeout=30000")
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


def _head(connection: sqlite3.Connection) -> tuple[int, str]:
    row = connection.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return int(row[0]), str(row[1])
    anchor = anchor_of(connection)
    return anchor


def anchor_of(connection: sqlite3.Connection) -> tuple[int, str]:
    """Where the kept chain starts: after the last pruned record, or at the beginning."""
    rows = dict(connection.execute("SELECT key, value FROM meta WHERE key IN ('anchor_seq', 'anchor_hash')"))
    return int(rows.get("anchor_seq", 0)), str(rows.get("anchor_hash", GENESIS))


def _insert(connection: sqlite3.Connection, seq: int, prev: str, record: AuditRecord) -> str:
    record_json = _encode(record)
    hash_ = chain_hash(prev, seq, record_json)
    connection.execute(
        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seq,
            record.decision_id,
            record.ts_ms,
            record.policy,
            record.policy_version,
            record.kind,
            record.outcome,
            record.fallback,
            record.request_id,
            record_json,
            prev,
            hash_,
        ),
    )
    if record.reasons:
        connection.executemany("INSERT INTO decision_reasons VALUES (?, ?)", [(seq, r) for r in record.reasons])
    if record.rules:
        connection.executemany(
            "INSERT INTO decision_rules VALUES (?, ?, ?)", [(seq, r.name, r.mode) for r in record.rules]
        )
    return hash_


def _settle(job: _Job, error: BaseException | None) -> None:
    if job.done is None or job.loop is None:
        return
    done = job.done

    def settle() -> None:
        if done.done():
            return  # the request was cancelled meanwhile
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        job.loop.call_soon_threadsafe(settle)


_CHAIN_QUERY = """
SELECT d.seq, d.decision_id, d.record, d.prev_hash, d.hash,
       d.ts_ms, d.policy, d.policy_version, d.kind, d.outcome, d.fallback, d.request_id,
       (SELECT group_concat(reason, char(31)) FROM decision_reasons r WHERE r.seq = d.seq),
       (SELECT group_concat(rule || ':' || mode, char(31)) FROM decision_rules u WHERE u.seq = d.seq)
FROM decisions d ORDER BY d.seq
"""


def chain_rows(connection: sqlite3.Connection) -> Iterator[ChainRow]:
    """Every row in seq order, as chain verification reads it."""
    for row in connection.execute(_CHAIN_QUERY):
        seq, decision_id, record, prev_hash, hash_ = row[:5]
        reasons = tuple(sorted(row[12].split("\x1f"))) if row[12] else ()
        rules = tuple(sorted(row[13].split("\x1f"))) if row[13] else ()
        columns = (decision_id, *row[5:12], reasons, rules)
        yield ChainRow(seq, decision_id, bytes(record), prev_hash, hash_, columns)
