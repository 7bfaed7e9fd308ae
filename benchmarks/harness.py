"""Shared machinery of the HTTP benchmarks: servers in pinned processes, a load generator, medians.

Every server runs in its own process on 127.0.0.1, in its own session, so it and any worker it
forks are stopped together by process group; `Processes` stops each one it started when the
run ends, however it ends. The load generator is wrk (one thread; a Lua script sets the POST
body and reports exact percentiles) when installed, else pyload.py, an aiohttp client in its
own process, which is much slower than wrk: the output says which one ran. Targets take turns
within each round in a rotating order, and a figure is the median over rounds; a ratio is the
median of the per-round ratios, so slow spells on this shared machine hit both sides alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
POLICY_FILE = ROOT / "policies" / "credit-risk.yaml"
POLICY_NAME = "credit-risk"
PYTHON = sys.executable
HOST = "127.0.0.1"
DECIDE_REQUEST = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}


@dataclass(frozen=True, slots=True)
class Settings:
    rounds: int
    seconds: int  # one measurement
    warmup_seconds: int


FULL = Settings(rounds=3, seconds=3, warmup_seconds=1)
QUICK = Settings(rounds=1, seconds=1, warmup_seconds=1)


# placement ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """CPU lists for taskset: the load generator, the upstream model server, the server under test."""

    load: str | None
    upstream: str | None
    server: str | None

    def describe(self) -> str:
        if self.server is None:
            return "not pinned (taskset or a second CPU is missing): figures are less comparable"
        return (
            f"load generator and upstream share CPU {self.load}; the server under test has CPU {self.server} "
            "to itself (one process, one worker); the direct call keeps the same placement, CPU "
            f"{self.server} idle"
        )


def placement() -> Placement:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return Placement(None, None, None)
    return Placement(str(cpus[0]), str(cpus[0]), str(cpus[1]))


def pinned(cpu: str | None, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if cpu is not None else list(argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# processes ------------------------------------------------------------------------------------------------------


class Processes:
    """The servers of one run, each in its own session; `stop` ends them by process group, in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._started: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self, name: str, argv: Sequence[str], cpu: str | None, env: dict[str, str] | None = None) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        merged = {**os.environ, **(env or {})}
        proc = subprocess.Popen(
            pinned(cpu, argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=merged,
            start_new_session=True,  # its own process group: stopped with the workers it forks
        )
        self._started.append((name, proc, log))

    def check(self, name: str) -> None:
        """Raise with the tail of its log if the process `name` has exited."""
        for started, proc, _ in self._started:
            if started == name and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        text = (self.workdir / f"{name}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def pid(self, name: str) -> int:
        return next(proc.pid for started, proc, _ in self._started if started == name)

    def cpu_seconds(self, name: str) -> float:
        """CPU time (user + system) used so far by the process `name` and every process of its group."""
        group = self.pid(name)
        ticks = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # the process ended meanwhile
            if int(fields[2]) == group:  # pgrp; utime and stime follow at 11 and 12
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for _, proc, _ in reversed(self._started):
            _signal_group(proc, signal.SIGTERM)
        for _, proc, log in reversed(self._started):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
            _signal_group(proc, signal.SIGKILL)  # workers the server forked, if they outlived it
            log.close()
        self._started.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the session leader's pid is the group id


@contextmanager
def run_directory() -> Iterator[tuple[Path, Processes]]:
    """A temporary folder and the processes of one run; both are cleaned up on exit, SIGTERM included."""

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="guardrails-bench-") as tmp:
        processes = Processes(Path(tmp))
        try:
            yield Path(tmp), processes
        finally:
            processes.stop()
            signal.signal(signal.SIGTERM, previous)


def post(url: str, body: bytes, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """One POST with the standard library (no proxy settings consulted: loopback only)."""
    parts = urlsplit(url)
    assert parts.hostname == HOST, f"benchmarks talk to {HOST} only, not {parts.hostname}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("POST", parts.path, body, {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    parts = urlsplit(url)
    assert parts.hostname == HOST, f"benchmarks talk to {HOST} only, not {parts.hostname}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(processes: Processes, name: str, url: str, body: bytes, timeout_s: float = 30.0) -> bytes:
    """Poll with the benchmark's own request until it answers 200; the answer, for the caller to check."""
    deadline = time.monotonic() + timeout_s
    while True:
        processes.check(name)
        try:
            status, answer = post(url, body, timeout_s=2.0)
            if status == 200:
                return answer
        except OSError:
            pass
        if time.monotonic() > deadline:
            tail = processes.log_tail(name)
            raise RuntimeError(f"{name} did not answer 200 on {url} within {timeout_s:.0f} s:\n{tail}")
        time.sleep(0.05)


def start_upstream(processes: Processes, cpu: str | None) -> Target:
    """The demo ModelServer (bare ASGI, numpy; v2 credit endpoint) under uvicorn, uvloop + httptools."""
    port = free_port()
    processes.start("direct", uvicorn_argv("guardrails.demo.model:ModelServer", port, "uvicorn"), cpu)
    target = Target("direct", "(a) direct to the upstream", f"http://{HOST}:{port}{v2_path()}", v2_body())
    wait_ready(processes, "direct", target.url, target.body)
    return target


def start_app(
    processes: Processes,
    target: Target,
    argv: Sequence[str],
    cpu: str | None,
    env: dict[str, str],
    ready_timeout_s: float = 30.0,
) -> bytes:
    """Start the server of `target` and wait until it answers the target's request; its answer."""
    processes.start(target.name, argv, cpu, env)
    return wait_ready(processes, target.name, target.url, target.body, ready_timeout_s)


def decide_body() -> bytes:
    return json.dumps(DECIDE_REQUEST).encode()


SERVERS = {
    "uvicorn": "uvicorn, uvloop + httptools (as serve)",
    "uvicorn-h11": "uvicorn, asyncio + h11",
    "granian": "granian, 1 worker/thread, uvloop",
}


def uvicorn_argv(factory: str, port: int, server: str) -> list[str]:
    loop, http = ("uvloop", "httptools") if server == "uvicorn" else ("asyncio", "h11")
    return [
        PYTHON, "-m", "uvicorn", factory, "--factory", "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--loop", loop, "--http", http, "--no-access-log", "--log-level", "warning", "--lifespan", "on",
    ]  # fmt: skip


def server_argv(factory: str, port: int, server: str) -> list[str]:
    """The command serving the app `factory` ("module:function", importable from benchmarks/) with `server`."""
    if server in ("uvicorn", "uvicorn-h11"):
        return uvicorn_argv(factory, port, server)
    if server == "granian":
        return [
            PYTHON, "-m", "granian", "--interface", "asgi", "--factory", "--working-dir", str(BENCH_DIR),
            "--host", HOST, "--port", str(port), "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop",
            "--http", "1", "--no-ws", "--log-level", "warning", factory,
        ]  # fmt: skip
    raise ValueError(f"unknown server {server!r}; one of {', '.join(SERVERS)}")


def v2_body() -> bytes:
    """What guardrails sends the model for DECIDE_REQUEST: the baseline targets are sent the same bytes."""
    from guardrails.policy.load import load_policy_file
    from guardrails.protocols import request_body

    policy = load_policy_file(POLICY_FILE)
    values = policy.inputs.from_mapping(DECIDE_REQUEST)
    assert isinstance(values, dict), values
    return request_body(policy.upstream, [values])


def v2_path() -> str:
    from guardrails.policy.load import load_policy_file

    return urlsplit(load_policy_file(POLICY_FILE).upstream.url).path


def check_decision(answer: bytes) -> None:
    """A guardrails answer must be a real decision (the model was called and read), not a fallback."""
    decision = json.loads(answer)
    if decision.get("fallback") is not None or decision.get("model", {}).get("status") != "ok":
        raise RuntimeError(f"guardrails did not decide from the model: {answer[:300]!r}")


def metrics_url(target: Target) -> str:
    """The /metrics of the guardrails server behind `target`."""
    return target.url.replace(f"/v1/decide/{POLICY_NAME}", "/metrics")


def counter_total(url: str, name: str) -> float:
    """The sum of a counter's series (every label set), read from the server's /metrics at `url`."""
    _, text = get(url)
    prefix = name + "{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines() if line.startswith(prefix))


def fallback_count(url: str) -> float:
    """Fallback decisions so far, read from the server's /metrics at `url`."""
    return counter_total(url, "guardrails_fallbacks_total")


# load generation ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # also the name of the process serving it
    label: str
    url: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Sample:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors, timeouts and answers other than 2xx/3xx
    cpu_us: float = float("nan")  # CPU time of the serving process(es) per request: immune to waiting for a CPU


_WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %.0f, \\"duration_us\\": %.0f, \\"p50_us\\": %.1f, \\"p99_us\\": %.1f, "
    .. "\\"errors\\": %.0f}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


class LoadGenerator:
    """wrk with a Lua script per target, or pyload.py where wrk is not installed; pinned to `cpu`."""

    def __init__(self, workdir: Path, cpu: str | None) -> None:
        self.workdir = workdir
        self.cpu = cpu
        self.wrk = shutil.which("wrk")

    def describe(self) -> str:
        if self.wrk:
            version = subprocess.run([self.wrk, "--version"], capture_output=True, text=True).stdout.split(" [")[0]
            return f"{version.strip()}, 1 thread, keep-alive, POST bodies from a Lua script"
        return "pyload.py (aiohttp client in its own process; wrk is not installed, so figures are capped lower)"

    def run(self, target: Target, connections: int, seconds: int) -> Sample:
        if self.wrk:
            argv = [self.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s"]
            argv += ["-s", str(self._script(target)), target.url]
        else:
            body = self.workdir / f"{target.name}.body"
            body.write_bytes(target.body)
            argv = [PYTHON, str(BENCH_DIR / "pyload.py"), target.url, str(body), str(connections), str(seconds)]
        done = subprocess.run(pinned(self.cpu, argv), capture_output=True, text=True, timeout=seconds + 60)
        line = next((line for line in done.stdout.splitlines() if line.startswith("BENCH ")), None)
        if done.returncode != 0 or line is None:
            raise RuntimeError(f"load generator failed on {target.url}:\n{done.stdout}\n{done.stderr}")
        result = json.loads(line[6:])
        return Sample(
            rps=result["requests"] / (result["duration_us"] / 1e6),
            p50_ms=result["p50_us"] / 1000,
            p99_ms=result["p99_us"] / 1000,
            requests=int(result["requests"]),
            errors=int(result["errors"]),
        )

    def _script(self, target: Target) -> Path:
        path = self.workdir / f"{target.name}.lua"
        if not path.exists():
            body = "".join(f"\\{byte:03d}" for byte in target.body)  # a Lua string literal of any bytes
            header = f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n'
            path.write_text(header + _WRK_DONE)
        return path


Samples = dict[tuple[str, int], list[Sample]]  # (target name, connections) -> one sample per round


def measure(
    gen: LoadGenerator, processes: Processes, targets: Sequence[Target], levels: Sequence[int], settings: Settings
) -> Samples:
    """Every target at every level, once per round; within a round the targets take turns in a rotating order."""
    for target in targets:  # warm up: pools filled, code paths hot; discarded
        gen.run(target, max(levels), settings.warmup_seconds)
    samples: Samples = {(t.name, c): [] for t in targets for c in levels}
    for r in range(settings.rounds):
        shift = r % len(targets)
        for connections in levels:
            for target in [*targets[shift:], *targets[:shift]]:
                before = processes.cpu_seconds(target.name)
                sample = gen.run(target, connections, settings.seconds)
                cpu_us = (processes.cpu_seconds(target.name) - before) / max(sample.requests, 1) * 1e6
                samples[(target.name, connections)].append(dataclasses.replace(sample, cpu_us=cpu_us))
    return samples


# reporting ------------------------------------------------------------------------------------------------------


def header(title: str, gen: LoadGenerator, where: Placement, settings: Settings, extra: Sequence[str] = ()) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(title)
    print(f"python {sys.version.split()[0]}; load average {load:.2f} at start; {os.cpu_count()} CPUs")
    print(f"load generator: {gen.describe()}")
    print(f"placement (taskset): {where.describe()}")
    for line in extra:
        print(line)
    print(
        f"{settings.rounds} rounds x {settings.seconds} s per measurement after a {settings.warmup_seconds} s warm-up; "
        "targets take turns in a rotating order; a figure is the median over rounds [min .. max]; "
        "a ratio is the median of per-round ratios"
    )


def _span(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}} .. {max(values):{fmt}}]"


def table(targets: Sequence[Target], samples: Samples, connections: int) -> None:
    width = max(62, *(len(t.label) for t in targets))
    print(f"\n   {'':<{width}} {'requests/s':>24}  {'p50 ms':>22}  {'p99 ms':>24}  {'server CPU us/request':>21}")
    for t in targets:
        runs = samples[(t.name, connections)]
        rps = _span([s.rps for s in runs], ",.0f")
        p50 = _span([s.p50_ms for s in runs], ".3f")
        p99 = _span([s.p99_ms for s in runs], ".3f")
        errors = sum(s.errors for s in runs)
        flag = f"  ({errors:,} errors or non-2xx of {sum(s.requests for s in runs):,})" if errors else ""
        cpu = statistics.median(s.cpu_us for s in runs)
        print(f"   {t.label:<{width}} {rps:>24}  {p50:>22}  {p99:>24}  {cpu:>21,.0f}{flag}")


Pair = Callable[[Sample, Sample], float]


def per_round(samples: Samples, a: str, b: str, connections: int, pair: Pair) -> list[float]:
    return [pair(x, y) for x, y in zip(samples[(a, connections)], samples[(b, connections)], strict=True)]


def compare(
    label: str, values: list[float], unit: str, check: Callable[[float], bool] | None = None, goal: str = ""
) -> bool:
    """Print one per-round comparison (median [min .. max]) with its target's PASS/FAIL when it has one."""
    fmt = ".2f" if unit == "x" else "+.3f"
    line = f"   {label:<62} {_span(values, fmt)} {unit}"
    passed = check is None or check(statistics.median(values))
    if check is not None:
        line += f"   target {goal}: {'PASS' if passed else 'FAIL'}"
    print(line)
    return passed


def throughput_ratio(x: Sample, y: Sample) -> float:
    return x.rps / y.rps


def p50_difference(x: Sample, y: Sample) -> float:
    return x.p50_ms - y.p50_ms


def cpu_ratio(x: Sample, y: Sample) -> float:
    return x.cpu_us / y.cpu_us


def cpu_difference(x: Sample, y: Sample) -> float:
    return (x.cpu_us - y.cpu_us) / 1000  # ms, as the other differences
