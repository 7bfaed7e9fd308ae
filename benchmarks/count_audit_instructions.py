"""What the audit log costs the proxy, counted in instructions, which this machine's noise barely moves.

    python benchmarks/count_audit_instructions.py [--modes off,sync,async] [--seconds 30]

bench_audit.py's ratios are wall-clock throughput on a shared machine, whose speed moves by up
to 1.4x between rounds. This runs the same servers (`bench_proxy.start_guardrails`, the body
with an `audit: hash` field, wrk at 32 connections, the same placement) under valgrind's
callgrind, one mode after the other, and counts the instructions each thread executes per
decision while wrk loads it. Three runs of this script gave `off / sync` 0.662 to 0.666, and
`off / async` 0.679 to 0.684, where bench_audit's wall-clock ratio for the same code moved
between 0.61 and 0.69 over five runs.

They are not time: the kernel's work is not counted (and the log adds writes and fsyncs),
nor are cache misses or the cost of two threads taking turns on one core. And valgrind does not
run the CPU's SHA instructions, so OpenSSL's SHA-256 (the hash chain, and the HMAC of hashed
inputs) runs its plain code there: on this machine that code takes three times as long as the
SHA instructions (6.3 against 2.1 us for 1,000 bytes). So the instructions in libcrypto are
printed apart, with the ratio without them beside the ratio of all: the throughput ratio
without the kernel's work lies between the two, near the second. Either shows what a change
to the code saves, without the noise.

Needs valgrind and wrk (Debian: `apt-get install valgrind wrk`). Under callgrind the server
runs about 50 times slower: each mode takes about a minute and a half.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import bench_proxy as bp
import harness as h
from bench_audit import BODY, CONNECTIONS

WARMUP_S = 10
IDLE_S = 10
DECISIONS = "guardrails_decisions_total"  # every outcome, fallbacks included


@dataclasses.dataclass(frozen=True, slots=True)
class Count:
    mode: str
    decisions: int
    per_thread: list[int]  # instructions per decision, thread 1 (the event loop) first
    crypto: int  # of which in libcrypto (SHA-256), all threads

    @property
    def total(self) -> int:
        return sum(self.per_thread)


def count(mode: str, seconds: int, where: h.Placement) -> Count:
    """Start one server under callgrind with instrumentation off, load it, and count one window of load.

    The server also works on timers, and under callgrind a decision takes 50 times longer, so
    they would weigh 50 times more per decision than in a real run. The policy folder is not
    checked (`--reload-interval 0`); for the rest (the drift windows judged every five seconds,
    the server's clock), an idle window is counted after the loaded one, and its instructions
    per second are taken off, for each thread.
    """
    with h.run_directory() as (tmp, processes):
        model = h.start_upstream(processes, where.upstream)
        out = tmp / "callgrind.out"
        under = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes"]
        under.append(f"--callgrind-out-file={out}")
        options = ["--reload-interval", "0"]
        target = bp.start_guardrails(processes, tmp, model, mode, where.server, under, options, ready_timeout_s=300)
        target = dataclasses.replace(target, body=BODY)
        pid = str(processes.pid(target.name))
        metrics = h.metrics_url(target)
        gen = h.LoadGenerator(tmp, where.load)
        gen.run(target, CONNECTIONS, WARMUP_S)
        time.sleep(1)  # idle again: the window holds whole decisions only
        before = h.counter_total(metrics, DECISIONS)
        subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
        started = time.monotonic()
        gen.run(target, CONNECTIONS, seconds)
        time.sleep(1)
        loaded_s = _dump(pid) - started
        decisions = round(h.counter_total(metrics, DECISIONS) - before)
        time.sleep(IDLE_S)
        idle_s = _dump(pid) - started - loaded_s
        subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
        loaded, idle = _per_thread(tmp, 1), _per_thread(tmp, 2)
        idle = (idle + [0] * len(loaded))[: len(loaded)]  # a thread idle throughout was not written out
        per_thread = [round((n - i * loaded_s / idle_s) / decisions) for n, i in zip(loaded, idle, strict=True)]
        crypto = sum(_in_libcrypto(path) for path in tmp.glob("callgrind.out.1-*")) // decisions
        return Count(mode, decisions, per_thread, crypto)


def _dump(pid: str) -> float:
    """Write out the counts so far and start from zero; when it was done."""
    subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
    return time.monotonic()


def _per_thread(folder: Path, dump: int) -> list[int]:
    return [_instructions(path) for path in sorted(folder.glob(f"callgrind.out.{dump}-*"))]


def _in_libcrypto(path: Path) -> int:
    """Instructions in libcrypto's functions, from callgrind_annotate's list of every function."""
    listing = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(path)], check=True, capture_output=True, text=True
    ).stdout
    counts = re.findall(r"^\s*([\d,]+) .*\[\S*libcrypto\.so[^\]]*\]$", listing, re.MULTILINE)
    return sum(int(n.replace(",", "")) for n in counts)


def _instructions(path: Path) -> int:
    match = re.search(r"^totals: (\d+)", path.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{path}: no totals line; did callgrind dump?")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="off,sync,async", help="comma-separated, from off, sync, commit, async")
    parser.add_argument("--seconds", type=int, default=30, help="the counted window of load, per mode")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_control", "wrk") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"needs {', '.join(missing)}: apt-get install valgrind wrk")
    modes = args.modes.split(",")
    unknown = [mode for mode in modes if mode not in bp.AUDIT_MODES]
    if unknown or "off" not in modes:
        sys.exit(f"--modes: {', '.join(unknown) or 'off is missing'}; choose from {', '.join(bp.AUDIT_MODES)}")
    where = h.placement()
    print(f"instructions per decision, callgrind, wrk -c{CONNECTIONS}, {args.seconds} s counted per mode")
    print(f"   {where.describe()}")
    counts = {mode: count(mode, args.seconds, where) for mode in modes}
    off = counts["off"].total
    off_plain = off - counts["off"].crypto
    for c in counts.values():
        threads = "  ".join(f"thread {i}: {n:>9,}" for i, n in enumerate(c.per_thread, 1))
        print(f"  {c.mode:<7} {c.total:>9,} total ({c.decisions:,} decisions)  {threads}  libcrypto: {c.crypto:,}")
    print("  thread 1 is the event loop; with the log on, the next largest is the audit writer")
    for c in counts.values():
        if c.mode != "off":
            loop = c.per_thread[0] - counts["off"].per_thread[0]
            others = c.total - off - loop
            plain = off_plain / (c.total - c.crypto)
            print(
                f"  ratio off/{c.mode:<7} {off / c.total:.3f}, without libcrypto {plain:.3f}"
                f"   (event loop +{loop:,}, other threads +{others:,})"
            )


if __name__ == "__main__":
    main()
