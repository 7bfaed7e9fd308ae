"""Tamper evidence over a SQLite audit log: verify the chain, take a checkpoint, prune old records.

- `verify` walks the chain from its anchor (GENESIS, or the last pruned record) with
  `chain.verify_rows`: the first record altered, deleted, inserted or reordered is named.
  Given a checkpoint (a head kept elsewhere), it also fails when the log no longer reaches
  that head: a chain alone cannot see its newest records cut off.
- `prune` deletes the oldest records, and their reasons and rules, and records in `meta`
  the seq and hash of the last one deleted (the anchor), so the kept chain still verifies.
  It first verifies what it is about to delete: evidence of tampering is never pruned away.
  It deletes in chunks of PRUNE_CHUNK records, one transaction each (the delete and its
  anchor together), so a running server's writer never waits long for the write lock.
  Pruning only ever removes the old end of the log, while the writer only appends at the
  head it keeps in memory, so a running server stays consistent.

The edge of the audit package for these commands: it opens the file.
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import msgspec

from guardrails.audit.chain import Verdict, verify_rows
from guardrails.audit.sqlite import anchor_of, chain_rows, closing, connect
from guardrails.errors import QueryError

PRUNE_CHUNK = 50_000


class Checkpoint(msgspec.Struct, frozen=True):
    """A verified head of the log, to keep somewhere the log's writers cannot reach."""

    seq: int
    hash: str
    count: int


@dataclass(frozen=True, slots=True)
class Report:
    """What `verify` found: the chain's verdict, and whether the log reaches the checkpoint given."""

    verdict: Verdict
    anchor_seq: int
    checkpoint_problem: str | None = None
    checkpoint_note: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict.ok and self.checkpoint_problem is None


@dataclass(frozen=True, slots=True)
class Pruned:
    deleted: int
    anchor_seq: int
    anchor_hash: str


def read_checkpoint(text: str, source: str) -> Checkpoint:
    try:
        return msgspec.json.decode(text, type=Checkpoint)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise QueryError(f"{source} is not a checkpoint ({exc}); make one with `guardrails audit checkpoint`") from None


def verify(path: str | Path, checkpoint: Checkpoint | None = None) -> Report:
    """Verify the whole chain (and that it reaches `checkpoint`), in one read snapshot."""
    with closing(connect(Path(path), readonly=True)) as connection:
        connection.execute("BEGIN")  # the anchor and the rows from the same snapshot
        try:
            anchor_seq, anchor_hash = anchor_of(connection)
            rows = chain_rows(connection)
            try:
                verdict = verify_rows(rows, anchor_seq, anchor_hash)
            finally:
                rows.close()
            if checkpoint is None or not verdict.ok:
                return Report(verdict, anchor_seq)
            problem, note = _reaches(connection, verdict, anchor_seq, anchor_hash, checkpoint)
            return Report(verdict, anchor_seq, problem, note)
        finally:
            connection.execute("ROLLBACK")


def _reaches(
    connection: sqlite3.Connection, verdict: Verdict, anchor_seq: int, anchor_hash: str, checkpoint: Checkpoint
) -> tuple[str | None, str | None]:
    """(a problem, a note): does the verified log still hold the checkpoint's head?"""
    head = verdict.head_seq or 0
    if checkpoint.seq > head:
        return (
            f"the log ends at record {head} but the checkpoint was taken at record {checkpoint.seq}: "
            f"records {head + 1} to {checkpoint.seq} were cut off",
            None,
        )
    if checkpoint.seq < anchor_seq:
        return None, f"the checkpoint's record {checkpoint.seq} has been pruned; the log reaches past it"
    if checkpoint.seq == anchor_seq:
        found = anchor_hash
    else:
        row = connection.execute("SELECT hash FROM decisions WHERE seq = ?", (checkpoint.seq,)).fetchone()
        found = str(row[0])  # the chain verified, so every seq from the anchor to the head is there
    if found != checkpoint.hash:
        return (
            f"record {checkpoint.seq} is not the checkpoint's record: its hash is {found}, "
            f"the checkpoint's is {checkpoint.hash} (records were cut off and others written since)",
            None,
        )
    return None, f"the checkpoint's record {checkpoint.seq} is in the log, unchanged"


def checkpoint(path: str | Path) -> Checkpoint | Report:
    """The verified head of the log; or, when the chain does not verify, the report saying why."""
    report = verify(path)
    if not report.ok:
        return report
    verdict = report.verdict
    return Checkpoint(verdict.head_seq or 0, verdict.head_hash, verdict.count)


def prune(path: str | Path, cut_ms: int, chunk: int = PRUNE_CHUNK) -> Pruned | Report:
    """Delete the records older than `cut_ms` from the old end; the report instead when they do not verify."""
    with closing(connect(Path(path))) as connection:
        anchor_seq, anchor_hash = anchor_of(connection)
        last = _last_to_prune(connection, cut_ms)
        if last <= anchor_seq:
            return Pruned(0, anchor_seq, anchor_hash)
        rows = chain_rows(connection)
        try:
            verdict = verify_rows(itertools.takewhile(lambda row: row.seq <= last, rows), anchor_seq, anchor_hash)
        finally:
            rows.close()
        if not verdict.ok:
            return Report(verdict, anchor_seq)
        deleted = 0
        while anchor_seq < last:
            upto = min(last, anchor_seq + chunk)
            deleted += upto - anchor_seq
            anchor_seq, anchor_hash = _delete_through(connection, upto)
        return Pruned(deleted, anchor_seq, anchor_hash)


def _last_to_prune(connection: sqlite3.Connection, cut_ms: int) -> int:
    """The last seq of the oldest stretch of records all stamped before `cut_ms`."""
    # `+ts_ms`: walk the log from its old end and stop at the first record to keep, rather than
    # sort every record after the cut out of the (ts_ms) index.
    row = connection.execute("SELECT seq FROM decisions WHERE +ts_ms >= ? ORDER BY seq LIMIT 1", (cut_ms,)).fetchone()
    if row is not None:
        return int(row[0]) - 1
    row = connection.execute("SELECT max(seq) FROM decisions").fetchone()
    return 0 if row[0] is None else int(row[0])


def _delete_through(connection: sqlite3.Connection, upto: int) -> tuple[int, str]:
    """Delete every record up to seq `upto` and make it the anchor, in one transaction."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        anchor_hash = str(connection.execute("SELECT hash FROM decisions WHERE seq = ?", (upto,)).fetchone()[0])
        for table in ("decision_reasons", "decision_rules", "decisions"):
            connection.execute(f"DELETE FROM {table} WHERE seq <= ?", (upto,))
        connection.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("anchor_seq", str(upto)), ("anchor_hash", anchor_hash)]
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return upto, anchor_hash
