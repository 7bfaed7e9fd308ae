"""Replay recorded traffic under a candidate policy: what would have changed, before it goes live.

Reads the audit log's recorded decisions of the candidate's policy name (any version) in
seq order, in chunks, on a read-only connection; decodes each stored record into a narrow
struct with one reused decoder; replays each chunk over columns (`replay_vector`) and counts
(`replay_report`). The model is never called: the recorded score fields are used.

The edge of replay: it reads SQLite. `replay_record`, `replay_vector` and `replay_report`
are pure.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from guardrails.audit.outcomes import LATEST_LABELS
from guardrails.audit.sqlite import closing, connect
from guardrails.errors import GuardrailsError, PolicyError
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_text
from guardrails.replay_record import make_plan
from guardrails.replay_report import ReplayReport, Tally
from guardrails.replay_vector import record_type, replay_chunk

CHUNK_ROWS = 50_000
MMAP_BYTES = 1 << 34  # read the file through the OS page cache, not copies in SQLite's
_SELECT = "SELECT seq, record FROM decisions WHERE policy = ? AND kind = 'decision' AND seq >= ?"
_generic = msgspec.json.Decoder()


class ReplayError(GuardrailsError):
    """Nothing to replay: no audit log there, or no recorded decisions of the policy."""


def replay_audit(
    candidate: CompiledPolicy,
    audit: str | Path,
    *,
    since_ms: int | None = None,
    limit: int | None = None,
    sample: int = 10,
    chunk_rows: int = CHUNK_ROWS,
) -> ReplayReport:
    """Replay the recorded decisions of `candidate.name` in the audit log `audit` under `candidate`.

    `since_ms`: only decisions recorded at or after it; `limit`: only the most recent ones.
    """
    path = Path(audit)
    if not path.is_file():
        raise ReplayError(f"no audit log at {path}")
    try:
        connection = connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise ReplayError(f"cannot open the audit log {path}: {exc}") from None
    with closing(connection):
        try:
            return _replay(connection, candidate, str(path), since_ms, limit, sample, chunk_rows)
        except sqlite3.DatabaseError as exc:
            raise ReplayError(f"cannot read the audit log {path}: {exc}") from None


def _replay(
    connection: sqlite3.Connection,
    candidate: CompiledPolicy,
    audit: str,
    since_ms: int | None,
    limit: int | None,
    sample: int,
    chunk_rows: int,
) -> ReplayReport:
    connection.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    recorded = recorded_versions(connection, candidate.name)
    plan = make_plan(candidate, recorded)
    decoder = RecordDecoder([*plan.names, *(f.name for p in recorded.values() for f in p.inputs.fields)])
    tally = Tally(candidate, sample, _labels(connection, candidate.name))
    sql, params = _query(connection, candidate.name, since_ms, limit)
    with contextlib.closing(_prefetched(connection, sql, params, chunk_rows)) as chunks:
        for rows in chunks:
            seqs, blobs = zip(*rows, strict=True)
            records = decoder.decode_all(blobs, seqs)
            tally.add(replay_chunk(plan, records, decoder.names), seqs)
    if tally.read == 0:
        window = " in that window" if since_ms is not None else ""
        raise ReplayError(f"no recorded decisions of policy `{candidate.name}` in {audit}{window}")
    ids = _decision_ids(connection, [seq for seq, *_ in tally.sample])
    return tally.report(
        audit=audit, since_ms=since_ms, limit=limit, decision_ids=ids, notes=_notes(candidate, recorded)
    )


def _labels(connection: sqlite3.Connection, name: str) -> dict[int, str]:
    """seq -> the latest label fed back, for the recorded decisions of policy `name`."""
    sql = (
        f"SELECT d.seq, l.label FROM decisions d JOIN ({LATEST_LABELS}) l ON l.decision_id = d.decision_id "
        "WHERE d.policy = ? AND d.kind = 'decision'"
    )
    return {int(seq): str(label) for seq, label in connection.execute(sql, (name,))}


def recorded_versions(connection: sqlite3.Connection, name: str) -> dict[str, CompiledPolicy]:
    """The versions of policy `name` whose source the audit log keeps and that still compile, by id."""
    found: dict[str, CompiledPolicy] = {}
    rows = connection.execute("SELECT version_id, source FROM policy_versions WHERE policy = ?", (name,))
    for version_id, source in rows.fetchall():
        try:
            found[str(version_id)] = load_policy_text(str(source), f"<recorded version {version_id}>")
        except PolicyError:
            continue
    return found


def _query(
    connection: sqlite3.Connection, name: str, since_ms: int | None, limit: int | None
) -> tuple[str, tuple[Any, ...]]:
    """The scan, in seq order; `+ts_ms` keeps SQLite on the (policy, seq) index."""
    where, since = ("", ()) if since_ms is None else (" AND +ts_ms >= ?", (since_ms,))
    start = 0
    if limit is not None:
        row = connection.execute(
            f"SELECT seq FROM decisions WHERE policy = ? AND kind = 'decision'{where} "
            "ORDER BY seq DESC LIMIT 1 OFFSET ?",
            (name, *since, max(limit, 1) - 1),
        ).fetchone()
        start = int(row[0]) if row is not None else 0
    sql = f"{_SELECT}{where} ORDER BY seq" + (" LIMIT ?" if limit is not None else "")
    return sql, (name, start, *since, *(() if limit is None else (limit,)))


def _prefetched(
    connection: sqlite3.Connection, sql: str, params: tuple[Any, ...], chunk_rows: int
) -> Generator[list[tuple[int, bytes]]]:
    """The rows in chunks, read one chunk ahead on a thread: SQLite reads while we decode."""
    chunks: queue.Queue[list[tuple[int, bytes]] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def read() -> None:
        try:
            cursor = connection.execute(sql, params)
            while not stop.is_set():
                rows = cursor.fetchmany(chunk_rows)
                if not rows:
                    break
                chunks.put(rows)
            cursor.close()
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            chunks.put(exc)

    reader = threading.Thread(target=read, name="guardrails-replay-reader", daemon=True)
    reader.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.05)
        reader.join()


class RecordDecoder:
    """Decode stored records into the narrow struct; learn the input fields the struct does not name yet."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names: tuple[str, ...] = tuple(dict.fromkeys(names))
        self._decode = msgspec.json.Decoder(record_type(self.names)).decode

    def decode_all(self, blobs: Sequence[bytes], seqs: Sequence[int]) -> list[Any]:
        while True:
            decode = self._decode
            try:
                return [decode(blob) for blob in blobs]
            except msgspec.DecodeError:
                self._learn(blobs, seqs)

    def _learn(self, blobs: Sequence[bytes], seqs: Sequence[int]) -> None:
        """Find the first record the struct cannot hold; add its unseen inputs, or say why it cannot be read."""
        for blob, seq in zip(blobs, seqs, strict=True):
            try:
                self._decode(blob)
            except msgspec.DecodeError as exc:
                extra = [name for name in _input_names(blob) if name not in self.names]
                if not extra:
                    raise ReplayError(f"recorded decision {seq} cannot be read: {exc}") from None
                self.names = (*self.names, *extra)
                self._decode = msgspec.json.Decoder(record_type(self.names)).decode
                return


def _input_names(blob: bytes) -> list[str]:
    try:
        data = _generic.decode(blob)
    except msgspec.DecodeError:
        return []
    inputs = data.get("input") if isinstance(data, dict) else None
    return [str(name) for name in inputs] if isinstance(inputs, dict) else []


def _decision_ids(connection: sqlite3.Connection, seqs: list[int]) -> dict[int, str]:
    if not seqs:
        return {}
    marks = ", ".join("?" * len(seqs))
    rows = connection.execute(f"SELECT seq, decision_id FROM decisions WHERE seq IN ({marks})", seqs).fetchall()
    return {int(seq): str(decision_id) for seq, decision_id in rows}


def _notes(candidate: CompiledPolicy, recorded: dict[str, CompiledPolicy]) -> list[str]:
    """What a reader of the figures should know: where the recorded score fields may not be the candidate's."""
    return [
        f"recorded version {version_id} reads the model's output differently (`score:`); "
        "replay uses the score fields as recorded"
        for version_id, policy in recorded.items()
        if policy.scores != candidate.scores
    ]
