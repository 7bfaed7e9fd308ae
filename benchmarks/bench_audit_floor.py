"""How low the audit log's cost could go with any store: the proxy with its writer replaced by stand-ins.

    python benchmarks/bench_audit_floor.py           # about 4 minutes
    python benchmarks/bench_audit_floor.py --quick   # a smoke test, noisy figures

bench_audit.py's target is about the real store. This asks what a better store could reach at
best. It runs `guardrails serve` with audit off, with the real store in `sync` and in `commit`
(not fsynced: to set beside the `write` stand-in), and in `sync` with the store's writer
(`SQLiteAuditStore._write`, the part that runs on the writer thread) replaced by stand-ins
that each do a little more of what any store must do:

- `handoff`: answers the waiting requests at once, writing nothing. What is left is building
  the records on the event loop, gathering them, handing them to the writer thread and waiting.
- `encode`: also encodes every record and chains its hash, as the store does before writing.
- `write`: also writes the batch's records to a plain file, in one `pwrite` into space written
  before (as SQLite's WAL reuses its file): what survives `kill -9`, with no index to query.
- `fsync`: also `fdatasync`s that file before answering, as `sync` does: what survives power
  loss. No SQLite layout can cost less than this while it writes and fsyncs the same records.

Beside them, two other layouts of the real store, in `sync`:
- `table`: the `decisions` table alone: no index (not even `decision_id`'s), no reasons or
  rules rows. SQLite with nothing to query but the log in order.
- `deferred`: the same on every commit, and every DEFERRED_EVERY records, in bulk, what queries
  read: the queried columns copied into a side table carrying `decisions`' indexes, and the
  reasons and rules rows. What a store that indexes behind the log, in large batches, could reach.

Everything else is the real server: bench_proxy's placement (the proxy alone on one core), wrk
at 32 connections, the body with an `audit: hash` field, as bench_audit's proxy part. The
stand-ins and layouts are for measuring only: the server runs them through this file's
`--serve`, which replaces the writer (or the schema and `Rows.insert`) and then runs the
guardrails CLI in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sqlite3
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_proxy as bp  # noqa: E402
import harness as h  # noqa: E402
from bench_audit import BODY, CONNECTIONS, TARGET  # noqa: E402

STAND_INS = ("handoff", "encode", "write", "fsync")
STORE_VARIANTS = ("table", "deferred")  # the real writer on another layout
VARIANTS = (*STAND_INS, *STORE_VARIANTS)  # what `--serve` runs
DEFERRED_EVERY = 512  # `deferred`: records between two fillings of the side table and the reasons and rules
_SIDE_TABLE = """
CREATE TABLE IF NOT EXISTS decision_index (
    seq INTEGER PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE, ts_ms INTEGER NOT NULL, policy TEXT NOT NULL,
    outcome TEXT, fallback TEXT, request_id TEXT
);
"""
FILE_BYTES = 8 << 20  # the stand-in file's space, written once, then reused from the start like a WAL
RECORD_JSON = 9  # in a row of `Rows.decisions`: seq, the eight queried columns, the record's JSON, prev_hash, hash
FULL = h.Settings(rounds=12, seconds=2, warmup_seconds=1)
QUICK = h.Settings(rounds=1, seconds=1, warmup_seconds=1)


# ---- the stand-in writers and layouts (in the server's process) ----------------------------------------------


def stand_in(name: str) -> Callable[[Any, Any, list[Any]], None]:
    """A replacement for `SQLiteAuditStore._write(connection, jobs)` doing the steps up to `name`."""
    from guardrails.audit.sqlite import Rows, _settle

    steps = STAND_INS.index(name)
    space: dict[str, int] = {}
    counted = {"batches": 0, "records": 0}

    def write(store: Any, connection: Any, jobs: list[Any]) -> None:
        counted["batches"] += 1
        counted["records"] += sum(len(job.records) for job in jobs)
        if counted["batches"] % 64 == 0:  # for the report: how many records a batch carried
            Path(f"{store.path}.batches").write_text(f"{counted['batches']} {counted['records']}")
        if steps >= 1:
            rows, seq, prev = Rows(), store._head_seq, store._head_hash
            for job in jobs:
                for record in job.records:
                    seq += 1
                    prev = rows.add(seq, prev, record)
            store._head_seq, store._head_hash = seq, prev
            if steps >= 2 and rows.decisions:
                if not space:
                    space["fd"] = os.open(f"{store.path}.{name}", os.O_RDWR | os.O_CREAT, 0o600)
                    os.pwrite(space["fd"], bytes(FILE_BYTES), 0)
                    os.fsync(space["fd"])
                    space["at"] = 0
                data = b"\n".join(row[RECORD_JSON] for row in rows.decisions)
                if space["at"] + len(data) > FILE_BYTES:
                    space["at"] = 0
                os.pwrite(space["fd"], data, space["at"])
                space["at"] += len(data)
                if steps >= 3:
                    os.fdatasync(space["fd"])
        _settle(jobs, None)

    return write


def store_variant(name: str) -> None:
    """Make the real store write the `decisions` table alone (`table`), or index it in bulk (`deferred`).

    `table`: no index on `decisions` (not even `decision_id`'s), no reasons or rules rows.
    `deferred`: the same on every commit; then, in the commit that brings DEFERRED_EVERY records
    since the last filling, what queries read: the queried columns copied into a side table that
    carries `decisions`' indexes (one INSERT ... SELECT), and the reasons and rules rows kept
    since (in memory: enough to measure what the indexes cost in bulk, not a store).
    """
    from guardrails.audit import schema, sqlite

    unique = "decision_id TEXT NOT NULL UNIQUE,"
    if unique not in schema.SCHEMA or "ON decisions (" not in schema.SCHEMA:
        raise RuntimeError("the store's SCHEMA changed: update bench_audit_floor.store_variant")
    bare = schema.SCHEMA.replace(unique, "decision_id TEXT NOT NULL,")
    if name == "table":
        bare = re.sub(r"CREATE INDEX IF NOT EXISTS [^;]*;", "", bare)
    else:
        bare = _SIDE_TABLE + bare.replace("ON decisions (", "ON decision_index (")
    pending: dict[str, list[tuple[Any, ...]]] = {"reasons": [], "rules": []}
    indexed: list[int] = []  # `deferred`: the last seq in the side table, read from the file once, then kept here

    def create_schema(connection: sqlite3.Connection) -> bool:
        connection.executescript(bare)
        return False

    def insert(rows: sqlite.Rows, connection: sqlite3.Connection, last_ts: int | None) -> None:
        sqlite._insert_rows(connection, "INSERT OR ROLLBACK INTO decisions", rows.decisions)
        if name == "table":
            return
        pending["reasons"] += rows.reasons
        pending["rules"] += rows.rules
        if not indexed:
            indexed.append(connection.execute("SELECT coalesce(max(seq), 0) FROM decision_index").fetchone()[0])
        last = rows.decisions[-1][0]
        if last - indexed[0] < DEFERRED_EVERY:
            return
        columns = "seq, decision_id, ts_ms, policy, outcome, fallback, request_id"
        connection.execute(f"INSERT INTO decision_index SELECT {columns} FROM decisions WHERE seq > ?", indexed)
        sqlite._insert_rows(connection, "INSERT OR IGNORE INTO decision_reasons", pending["reasons"])
        sqlite._insert_rows(connection, "INSERT OR IGNORE INTO decision_rules", pending["rules"])
        pending["reasons"], pending["rules"], indexed[0] = [], [], last

    sqlite.create_schema = create_schema  # type: ignore[assignment]
    sqlite.Rows.insert = insert  # type: ignore[method-assign]


def serve(name: str, command: Sequence[str]) -> int:
    """Run `command` (`python -m guardrails ...`) in this process, with the store changed as `name` says."""
    if list(command[1:3]) != ["-m", "guardrails"]:
        raise SystemExit(f"--serve runs `python -m guardrails ...`, not {' '.join(command)}")
    from guardrails.audit.sqlite import SQLiteAuditStore
    from guardrails.cli import main

    if name in STORE_VARIANTS:
        store_variant(name)
    else:
        SQLiteAuditStore._write = stand_in(name)  # type: ignore[method-assign,assignment]
    return main(list(command[3:]))


# ---- the benchmark -------------------------------------------------------------------------------------------


def bench(settings: h.Settings) -> None:
    where = h.placement()
    with h.run_directory() as (tmp, processes):
        model = h.start_upstream(processes, where.upstream)
        targets = [
            dataclasses.replace(bp.start_guardrails(processes, tmp, model, mode, where.server), body=BODY)
            for mode in ("off", "sync", "commit")
        ]
        labels = {name: f"writer stand-in `{name}`" for name in STAND_INS}
        labels.update(table="`decisions` table alone", deferred=f"indexed every {DEFERRED_EVERY}")
        for name in VARIANTS:
            under = (h.PYTHON, str(Path(__file__).resolve()), "--serve", name, "--")
            target = bp.start_guardrails(processes, tmp, model, "sync", where.server, under=under, name=f"sync-{name}")
            targets.append(dataclasses.replace(target, body=BODY, label=f"sync, {labels[name]}"))
        gen = h.LoadGenerator(tmp, where.load)
        samples = h.measure(gen, processes, targets, [CONNECTIONS], settings)
        fallbacks = sum(h.fallback_count(h.metrics_url(t)) for t in targets)
        check_writers(tmp)
        per_batch = records_per_batch(tmp)
    print(f"Audit cost floor: POST /v1/decide/credit-risk, {gen.describe()}, {CONNECTIONS} connections")
    print(f"{where.describe()}; {settings.rounds} rounds x {settings.seconds} s, servers interleaved")
    print("a ratio is the median of per-round ratios to audit off [min .. max]; the CPU ratio is audit off's CPU")
    print("per request over this server's, per round: what the throughput ratio would be if CPU were all that moved")
    runs = {t.name: samples[(t.name, CONNECTIONS)] for t in targets}
    off = runs[targets[0].name]
    for target in targets:
        run = runs[target.name]
        ratios = [s.rps / o.rps for s, o in zip(run, off, strict=True)]
        cpu_ratios = [o.cpu_us / s.cpu_us for s, o in zip(run, off, strict=True)]
        rates = [s.rps for s in run]
        cpu = statistics.median(s.cpu_us for s in run)
        label = "audit off" if target is targets[0] else target.label.removeprefix("(c) guardrails serve, ")
        batch = per_batch.get(target.name.removeprefix("guardrails-"))
        print(
            f"  {label:<32} {statistics.median(rates):>8,.0f} requests/s  CPU {cpu:>4,.0f} us/request"
            f"  ratio {statistics.median(ratios):.2f} [{min(ratios):.2f} .. {max(ratios):.2f}]"
            + f"  CPU ratio {statistics.median(cpu_ratios):.2f}"
            + ("" if batch is None else f"  {batch:.1f} records a batch")
        )
    errors = sum(s.errors for run in runs.values() for s in run)
    if errors or fallbacks:
        print(f"  WARNING: {errors} answers were not 2xx, {fallbacks:.0f} were fallbacks")
    print(f"  bench_audit's target for sync: >= {TARGET}; the `fsync` stand-in bounds what any store can reach,")
    print("  `table` what SQLite can reach with no index to keep, `deferred` with the indexes kept in bulk")


def check_writers(tmp: Path) -> None:
    """Each server ran what it names: the real store wrote records in the layout it names, no stand-in wrote any."""
    layouts = {"sync": "as it is", "sync-table": "table", "sync-deferred": "deferred"}
    for name in (*layouts, *(f"sync-{n}" for n in STAND_INS)):
        audit = tmp / f"audit-{name}.db"
        with contextlib.closing(sqlite3.connect(f"file:{audit}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            stored, indexes, reasons = (connection.execute(f"SELECT {count}").fetchone()[0] for count in _COUNTS)
            side = "SELECT count(*) FROM decision_index"
            indexed = connection.execute(side).fetchone()[0] if "decision_index" in tables else None
        if (stored > 0) != (name in layouts):
            raise AssertionError(f"{audit.name} holds {stored} records: the server did not run the writer it names")
        if not _in_layout(name, stored, indexes, reasons, indexed):
            raise AssertionError(
                f"{audit.name} is not the `{layouts[name]}` layout: {stored} records, {indexes} indexes on them,"
                f" reasons rows for {reasons}, {indexed} in the side table"
            )


def _in_layout(name: str, stored: int, indexes: int, reasons: int, indexed: int | None) -> bool:
    """Whether a file's counts (see check_writers) fit the layout its server names."""
    if name == "sync-table":  # the table alone
        return not indexes and not reasons and indexed is None
    if name == "sync-deferred":  # no index on the table; the side table and the reasons rows at most a filling behind
        return (
            not indexes and indexed is not None and stored - indexed < DEFERRED_EVERY and bool(reasons or not indexed)
        )
    return True


_COUNTS = (  # what check_writers reads of a file: its records, the indexes on them, the records with reasons rows
    "count(*) FROM decisions",
    "count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decisions'",
    "count(DISTINCT seq) FROM decision_reasons",
)


def records_per_batch(tmp: Path) -> dict[str, float]:
    """Per stand-in, the records a batch carried, from the counts it writes every 64 batches."""
    per_batch: dict[str, float] = {}
    for name in STAND_INS:
        counts = tmp / f"audit-sync-{name}.db.batches"
        if counts.exists():  # absent after a very short run
            batches, records = map(int, counts.read_text().split())
            per_batch[f"sync-{name}"] = records / batches
    return per_batch


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--serve"]:
        if len(args) < 4 or args[1] not in VARIANTS or args[2] != "--":
            raise SystemExit(f"usage: --serve {{{','.join(VARIANTS)}}} -- python -m guardrails ...")
        return serve(args[1], args[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: one short round")
    bench(QUICK if parser.parse_args(args).quick else FULL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
