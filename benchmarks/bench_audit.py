"""What the audit log costs: records written per second by the store, and proxy throughput with audit off, async, sync.

1. The store: `SQLiteAuditStore.append` from many concurrent asyncio tasks, in `sync` and
   `async` durability, against plain sqlite3 (`executemany` of the same rows, one transaction)
   in the same run.
2. The proxy: `guardrails serve` (a subprocess) in front of the demo model server (another),
   loaded by wrk (else an aiohttp client process) at 32 connections; audit off, async and sync
   take turns in each round, and a figure is the median over rounds. Target: sync keeps at
   least 75% of the throughput with audit off.

    python benchmarks/bench_audit.py           # about 2 minutes on a quiet machine
    python benchmarks/bench_audit.py --quick   # a smoke test, noisy figures

Every process it starts runs in its own session and is killed when the run ends, however it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardrails.audit.chain import GENESIS  # noqa: E402
from guardrails.audit.record import AuditRecord  # noqa: E402
from guardrails.audit.schema import SCHEMA  # noqa: E402
from guardrails.audit.sqlite import Rows as StoreRows  # noqa: E402
from guardrails.audit.sqlite import SQLiteAuditStore, connect  # noqa: E402
from guardrails.audit.store import Durability  # noqa: E402
from guardrails.decide import RuleFired  # noqa: E402

HOST = "127.0.0.1"
CONNECTIONS = 32
TASKS = 64
TARGET = 0.75  # sync / off
AUDIT_KEY = "bench-audit-key"
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
    """Records shaped like the credit-risk policy's: seven input fields, a v2 output, a reason, sometimes a rule."""
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
                decision_id=str(uuid.uuid4()),
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
        (f"store     async, {TASKS} tasks (until flushed)", lambda: store_rate(folder, records, "async", TASKS)),
        ("store     sync, 1 task (a commit per record)", lambda: store_rate(folder, single, "sync", 1)),
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
        print(f"  {name:<50} {statistics.median(values):>10,.0f} records/s  {median_range(values)}")
    base = rates[contenders[0][0]]
    for name, _ in contenders[1:3]:
        ratio = statistics.median(v / b for v, b in zip(rates[name], base, strict=True))
        print(f"  ratio {name.split(',')[0].split()[-1]}/baseline{'':<37} {ratio:>10.2f}")


# ---- 2. the proxy ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


class Processes:
    """Every process the run starts, each in its own session, killed with its group at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        with (self.folder / f"{name}.log").open("wb") as log:
            self.running[name] = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT
            )

    def cpu_seconds(self, name: str) -> float:
        """User and system CPU time of the process so far, all its threads (Linux)."""
        fields = Path(f"/proc/{self.running[name].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, name: str) -> str:
        return "\n".join((self.folder / f"{name}.log").read_text(errors="replace").splitlines()[-20:])

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        self.running.clear()


@contextmanager
def processes(folder: Path) -> Iterator[Processes]:
    started = Processes(folder)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # SIGTERM: still clean up
    try:
        yield started
    finally:
        started.stop()
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True, slots=True)
class Placement:
    server: str | None  # the proxy under test
    others: str | None  # the model server and the load generator

    def pin(self, cpus: str | None, argv: list[str]) -> list[str]:
        return ["taskset", "-c", cpus, *argv] if cpus is not None else argv

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (needs taskset and 2 CPUs)"
        return f"taskset: proxy on CPU {self.server}; model server and load generator on CPU {self.others}"


def placement() -> Placement:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return Placement(None, None)
    return Placement(str(cpus[-1]), ",".join(str(c) for c in cpus[:-1]))


def wait_http(url: str, name: str, started: Processes, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if started.running[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{started.log_tail(name)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} not ready at {url}:\n{started.log_tail(name)}")


def post_once(url: str) -> int:
    request = urllib.request.Request(url, BODY, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        status: int = response.status
        return status


class Load:
    """wrk (one thread, a Lua script for the POST body) when installed, else an aiohttp client process."""

    def __init__(self, folder: Path, place: Placement) -> None:
        self.place = place
        self.wrk = shutil.which("wrk")
        self.script = folder / "post.lua"
        body = BODY.decode().replace("\\", "\\\\").replace("'", "\\'")
        self.script.write_text(
            f"wrk.method = 'POST'\nwrk.body = '{body}'\nwrk.headers['Content-Type'] = 'application/json'\n"
        )

    def describe(self) -> str:
        return f"wrk -t1 -c{CONNECTIONS}" if self.wrk else f"aiohttp client process, {CONNECTIONS} connections"

    def run(self, url: str, seconds: int) -> tuple[float, int, int]:
        """Requests per second, how many requests were answered, and how many answers were not 2xx."""
        if self.wrk:
            argv = [self.wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(self.script), url]
        else:
            argv = [sys.executable, "-c", AIOHTTP_LOAD, url, str(CONNECTIONS), str(seconds), BODY.decode()]
        done = subprocess.run(
            self.place.pin(self.place.others, argv), capture_output=True, text=True, timeout=seconds + 60, check=True
        )
        rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
        if rate is None:
            raise RuntimeError(f"no rate in the load generator's output:\n{done.stdout}\n{done.stderr}")
        count = re.search(r"(\d+) requests in", done.stdout)
        errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
        return float(rate.group(1)), int(count.group(1)) if count else 0, int(errors.group(1)) if errors else 0


AIOHTTP_LOAD = """
import asyncio, sys, time
import aiohttp
url, connections, seconds, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4].encode()
async def main():
    done = bad = 0
    stop = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def worker():
            nonlocal done, bad
            while time.perf_counter() < stop:
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    done += 1
                    bad += r.status >= 300
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
    print(f"{done} requests in {time.perf_counter() - start:.2f}s")
    print(f"Requests/sec: {done / (time.perf_counter() - start):.2f}")
    print(f"Non-2xx or 3xx responses: {bad}")
asyncio.run(main())
"""

MODES = ("off", "async", "sync")


def start_proxies(started: Processes, folder: Path, place: Placement, model_url: str) -> dict[str, str]:
    """One `guardrails serve` per mode, all pinned to the same CPU (only the one under load does any work)."""
    policies = folder / "policies"
    policies.mkdir()
    for companion in (ROOT / "policies").glob("credit-risk.*"):  # files the policy refers to (its drift reference)
        if companion.suffix != ".yaml":
            shutil.copy(companion, policies / companion.name)
    text = (ROOT / "policies" / "credit-risk.yaml").read_text()
    text = text.replace("http://127.0.0.1:8081", model_url).replace("timeout_ms: 300", "timeout_ms: 2000")
    (policies / "credit-risk.yaml").write_text(text)
    env = {**os.environ, "GUARDRAILS_AUDIT_KEY": AUDIT_KEY}
    env = {k: v for k, v in env.items() if k not in ("GUARDRAILS_API_TOKEN", "GUARDRAILS_ADMIN_TOKEN")}
    urls = {}
    for mode in MODES:
        port = free_port()
        audit = ["--no-audit"] if mode == "off" else ["--audit", str(folder / f"{mode}.db"), "--audit-durability", mode]
        argv = [sys.executable, "-m", "guardrails", "serve", "--policies", str(policies), "--port", str(port)]
        argv += [*audit, "--log-level", "warning", "--reload-interval", "0"]
        started.start(f"proxy-{mode}", place.pin(place.server, argv), env)
        urls[mode] = f"http://{HOST}:{port}"
    for mode, url in urls.items():
        wait_http(f"{url}/health/ready", f"proxy-{mode}", started)
        status = post_once(f"{url}/v1/decide/credit-risk")
        if status != 200:
            raise RuntimeError(f"proxy {mode} answered {status}")
    return {mode: f"{url}/v1/decide/credit-risk" for mode, url in urls.items()}


def bench_proxy(settings: Settings, folder: Path) -> None:
    place = placement()
    load = Load(folder, place)
    with processes(folder) as started:
        port = free_port()
        model = [sys.executable, "-m", "uvicorn", "--factory", "guardrails.demo.model:ModelServer"]
        model += ["--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log"]
        started.start("model", place.pin(place.others, model))
        model_url = f"http://{HOST}:{port}"
        wait_http(f"{model_url}/v2/health/ready", "model", started)
        targets = start_proxies(started, folder, place, model_url)
        for url in targets.values():  # warm up: connection pools, caches, the WAL
            load.run(url, 1)
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu_us: dict[str, list[float]] = {mode: [] for mode in MODES}  # the proxy's CPU per request
        failures = 0
        for r in range(settings.rounds):
            shift = r % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                cpu_before = started.cpu_seconds(f"proxy-{mode}")
                rate, count, errors = load.run(targets[mode], settings.seconds)
                cpu = started.cpu_seconds(f"proxy-{mode}") - cpu_before
                rates[mode].append(rate)
                cpu_us[mode].append(cpu / max(count, 1) * 1e6)
                failures += errors
    print(f"\n2. Proxy throughput: POST /v1/decide/credit-risk, {load.describe()}, {settings.seconds} s each")
    print(f"   {place.describe()}; median of {settings.rounds} rounds [min .. max], modes interleaved")
    for mode in MODES:
        label = "audit off" if mode == "off" else f"audit {mode}"
        figure = f"{statistics.median(rates[mode]):>10,.0f} requests/s  {median_range(rates[mode]):<16}"
        print(f"  {label:<20} {figure}  proxy CPU {statistics.median(cpu_us[mode]):,.0f} us/request")
    if failures:
        print(f"  WARNING: {failures} answers were not 2xx")
    for mode in ("async", "sync"):
        cpu_ratio = statistics.median(m / o for m, o in zip(cpu_us[mode], cpu_us["off"], strict=True))
        print(f"  proxy CPU per request {mode}/off {cpu_ratio:>6.2f}")
    for mode in ("async", "sync"):
        ratio = statistics.median(m / o for m, o in zip(rates[mode], rates["off"], strict=True))
        line = f"  ratio {mode}/off{'':<11} {ratio:>10.2f}"
        if mode == "sync":
            passed = ratio >= TARGET
            line += f"   target >= {TARGET} (sync costs at most 25%): {'PASS' if passed else 'FAIL'}"
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
            place = placement()
            everything = os.sched_getaffinity(0)
            if place.server is not None:  # as in the server: the event loop and the writer thread on one core
                os.sched_setaffinity(0, {int(place.server)})
            try:
                bench_store(settings, folder)
            finally:
                os.sched_setaffinity(0, everything)
        if args.only in (None, "proxy"):
            bench_proxy(settings, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
