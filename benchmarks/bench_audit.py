"""What the audit log costs: records written per second by the store, and proxy throughput with audit off, async, sync.

1. The store: `SQLiteAuditStore.append` from many concurrent asyncio tasks, in `sync` and
   `async` durability, against plain sqlite3 (`executemany` of the same rows, one transaction)
   in the same run.
2. The proxy: `guardrails serve` (a subprocess) in front of the demo model server (another),
   started, pinned and loaded as bench_proxy.py does (harness.py) at 32 connections; audit off,
   async, commit and sync take turns in each round, and a figure is the median over rounds.
   Target: sync (the default: committed and fsynced before the answer) keeps at least 75% of
   the throughput with audit off. commit (committed, not fsynced) is measured beside it.

    python benchmarks/bench_audit.py           # about 2 minutes on a quiet machine
    python benchmarks/bench_audit.py --quick   # a smoke test, noisy figures

Every process it starts runs in its own session and is killed when the run ends, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_proxy as bp  # noqa: E402
import harness as h  # noqa: E402

from guardrails.audit.chain import GENESIS  # noqa: E402
from guardrails.audit.record import AuditRecord  # noqa: E402
from guardrails.audit.schema import SCHEMA  # noqa: E402
from guardrails.audit.sqlite import Rows as StoreRows  # noqa: E402
from guardrails.audit.sqlite import SQLiteAuditStore, connect  # noqa: E402
from guardrails.audit.store import Durability  # noqa: E402
from guardrails.decide import RuleFired  # noqa: E402
from guardrails.ids import DecisionIds  # noqa: E402

CONNECTIONS = 32
TASKS = 64
TARGET = 0.75  # sync / off
BODY = b'{"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US", "email": "a@example.com"}'


@dataclass(frozen=True, slots=True)
class Settings:
    records: int  # per store measurement
    single_records: int  # sync from one task: one fsync per record
    store_repeats: int
    rounds: int  # proxy rounds
    seconds: int  # one proxy measurement


FULL = Settings(records=10_000, single_records=200, store_repeats=5, rounds=5, seconds=4)
QUICK = Settings(records=3_000, single_records=50, store_repeats=2, rounds=1, seconds=2)


def median_range(values: Sequence[float]) -> str:
    return f"[{min(values):,.0f} .. {max(values):,.0f}]"


# ---- 1. the store ---------------------------------------------------------------------------------------------


def make_records(count: int) -> list[AuditRecord]:
    """Records shaped like the credit-risk policy's: seven input fields, a v2 output, a reason, sometimes a rule.

    Decision ids are the server's own (UUIDv7, increasing), so their index grows at one end as in
    the server; random ids would put every record on its own index page.
    """
    ids = DecisionIds()
    tensor = '{"name":"predict_proba","shape":[1,2],"datatype":"FP64","data":[0.93,0.07]}'
    output = '{"model_name":"credit","outputs":[' + tensor + "]}"
    now_ms = time.time_ns() // 1_000_000
    records = []
    for i in range(count):
        rules = (
            [RuleFired("large-amount-new-account", "enforce", "review", "LARGE_AMOUNT_NEW_ACCOUNT")]
            if i % 7 == 0
            else []
        )
        records.append(
            AuditRecord(
                decision_id=ids.new(),
                ts_ms=now_ms + i,
                kind="decision",
                endpoint="decide",
                policy="credit-risk",
                policy_version="0123456789abcdef",
                policy_label="2026-11-21.1",
                input={
                    "amount": 1200.0 + i,
                    "account_age_days": 800,
                    "income": 52000.0,
                    "prior_defaults": 0,
                    "country": "US",
                    "segment": "standard",
                    "email": "hmac-sha256:" + "ab" * 32,
                },
                model_output=output,
                score=0.07,
                confidence=0.93,
                margin=0.86,
                label="good",
                outcome="approve" if not rules else "review",
                reasons=["LOW_RISK"] if not rules else ["LOW_RISK", "LARGE_AMOUNT_NEW_ACCOUNT"],
                rules=rules,
                threshold=2,
                model_status="ok",
                model_http_status=200,
                model_latency_ms=0.8,
                model_attempts=1,
                latency_ms=1.4,
                request_id=f"req-{i}",
            )
        )
    return records


async def append_concurrently(store: SQLiteAuditStore, records: list[AuditRecord], tasks: int) -> None:
    """`tasks` tasks, each appending its share one record at a time, as concurrent requests do."""

    async def task(share: list[AuditRecord]) -> None:
        for record in share:
            await store.append([record])

    await asyncio.gather(*(task(records[t::tasks]) for t in range(tasks)))


def store_rate(folder: Path, records: list[AuditRecord], durability: Durability, tasks: int) -> float:
    """Records per second from the first append until the last is committed (async: flushed)."""
    path = folder / f"store-{uuid.uuid4().hex}.db"
    store = SQLiteAuditStore(path, durability)
    try:
        start = time.perf_counter()
        asyncio.run(append_concurrently(store, records, tasks))
        store.flush()
        elapsed = time.perf_counter() - start
    finally:
        store.close()
    with sqlite3.connect(path) as connection:
        written = connection.execute("SELECT count(*) FROM decisions").fetchone()[0]
    if written != len(records):
        raise AssertionError(f"{durability}: {written} records written of {len(records)}")
    return len(records) / elapsed


RowLists = tuple[list[tuple[Any, ...]], list[tuple[int, str]], list[tuple[int, str, str]]]


def baseline_rows(records: list[AuditRecord]) -> RowLists:
    """The rows the store writes for `records`, computed up front (JSON, hash chain) so only SQLite is timed."""
    rows, prev = StoreRows(), GENESIS
    for seq, record in enumerate(records, 1):
        prev = rows.add(seq, prev, record)
    return rows.decisions, rows.reasons, rows.rules


def baseline_rate(folder: Path, rows: RowLists) -> float:
    """Plain sqlite3: the same rows with executemany in one transaction, same schema, WAL, synchronous=FULL."""
    decisions, reasons, rules = rows
    connection = connect(folder / f"baseline-{uuid.uuid4().hex}.db")
    try:
        connection.executescript(SCHEMA)
        connection.execute("PRAGMA synchronous=FULL")
        start = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decisions)
        connection.executemany("INSERT OR IGNORE INTO decision_reasons VALUES (?, ?)", reasons)
        connection.executemany("INSERT OR IGNORE INTO decision_rules VALUES (?, ?, ?)", rules)
        connection.execute("COMMIT")
        return len(decisions) / (time.perf_counter() - start)
    finally:
        connection.close()


def bench_store(settings: Settings, folder: Path) -> None:
    records = make_records(settings.records)
    single = records[: settings.single_records]
    rows = baseline_rows(records)
    contenders: list[tuple[str, Callable[[], float]]] = [
        ("baseline  sqlite3 executemany, one transaction", lambda: baseline_rate(folder, rows)),
        (f"store     sync, {TASKS} tasks (group commit)", lambda: store_rate(folder, records, "sync", TASKS)),
        (f"store     commit, {TASKS} tasks (group commit)", lambda: store_rate(folder, records, "commit", TASKS)),
        (f"store     async, {TASKS} tasks (until flushed)", lambda: store_rate(folder, records, "async", TASKS)),
        ("store     sync, 1 task (a commit per record)", lambda: store_rate(folder, single, "sync", 1)),
        ("store     commit, 1 task (a commit per record, no fsync)", lambda: store_rate(folder, single, "commit", 1)),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for repeat in range(settings.store_repeats):
        shift = repeat % len(contenders)
        for name, run in contenders[shift:] + contenders[:shift]:
            rates[name].append(run())
    print(
        f"\n1. Audit store: records/s ({settings.records:,} records; median of {settings.store_repeats} [min .. max])"
    )
    for name, values in rates.items():
        print(f"  {name:<54} {statistics.median(values):>10,.0f} records/s  {median_range(values)}")
    base = rates[contenders[0][0]]
    for name, _ in contenders[1:4]:
        ratio = statistics.median(v / b for v, b in zip(rates[name], base, strict=True))
        print(f"  {'ratio ' + name.split(',')[0].split()[-1] + '/baseline':<54} {ratio:>10.2f}")


# ---- 2. the proxy ---------------------------------------------------------------------------------------------


MODES = ("off", "async", "commit", "sync")
AUDITED = ("async", "commit", "sync")


def bench_proxy(settings: Settings) -> None:
    """`guardrails serve` per mode (bench_proxy.py's placement and load generator), one model server."""
    where = h.placement()
    run = h.Settings(rounds=settings.rounds, seconds=settings.seconds, warmup_seconds=1)
    with h.run_directory() as (tmp, processes):
        model = h.start_upstream(processes, where.upstream)
        # with an input marked `audit: hash`, so every record pays for its HMAC
        targets = [
            dataclasses.replace(bp.start_guardrails(processes, tmp, model, mode, where.server), body=BODY)
            for mode in MODES
        ]
        gen = h.LoadGenerator(tmp, where.load)
        samples = h.measure(gen, processes, targets, [CONNECTIONS], run)
        fallbacks = sum(h.fallback_count(h.metrics_url(t)) for t in targets)
    print(f"\n2. Proxy throughput: POST /v1/decide/credit-risk, {gen.describe()}, {CONNECTIONS} connections")
    print(f"   {where.describe()}; median of {settings.rounds} rounds [min .. max], modes interleaved")
    runs = {mode: samples[(f"guardrails-{mode}", CONNECTIONS)] for mode in MODES}
    for mode in MODES:
        rates = [s.rps for s in runs[mode]]
        label = "audit off" if mode == "off" else f"audit {mode}"
        figure = f"{statistics.median(rates):>10,.0f} requests/s  {median_range(rates):<16}"
        print(f"  {label:<20} {figure}  proxy CPU {statistics.median(s.cpu_us for s in runs[mode]):,.0f} us/request")
    errors = sum(s.errors for mode in MODES for s in runs[mode])
    if errors or fallbacks:
        print(f"  WARNING: {errors} answers were not 2xx, {fallbacks:.0f} were fallbacks")
    for mode in AUDITED:
        cpu_ratio = statistics.median(m.cpu_us / o.cpu_us for m, o in zip(runs[mode], runs["off"], strict=True))
        print(f"  {'proxy CPU per request ' + mode + '/off':<36} {cpu_ratio:>6.2f}")
    for mode in AUDITED:
        ratio = statistics.median(m.rps / o.rps for m, o in zip(runs[mode], runs["off"], strict=True))
        line = f"  {'ratio ' + mode + '/off':<32} {ratio:>10.2f}"
        if mode == "sync":
            passed = ratio >= TARGET
            line += f"   target >= {TARGET} (sync costs at most 25%): {'PASS' if passed else 'FAIL'}"
        elif mode == "commit":
            line += "   (no target: committed, not fsynced)"
        print(line)


def header() -> None:
    load1 = os.getloadavg()[0]
    print(
        f"guardrails audit benchmark: python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{len(os.sched_getaffinity(0))} CPUs, load average {load1:.2f} at start"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer records, rounds and seconds")
    parser.add_argument("--only", choices=["store", "proxy"], help="run one part")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    header()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:  # on disk: fsync is real
        folder = Path(tmp)
        if args.only in (None, "store"):
            server_cpu = h.placement().server
            everything = os.sched_getaffinity(0)
            if server_cpu is not None:  # as in the server: the event loop and the writer thread on one core
                os.sched_setaffinity(0, {int(server_cpu)})
            try:
                bench_store(settings, folder)
            finally:
                os.sched_setaffinity(0, everything)
        if args.only in (None, "proxy"):
            bench_proxy(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
