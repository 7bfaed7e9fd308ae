"""Timing and reporting for the benchmarks: pin to one core, interleave contenders, print medians and ratios.

A shared machine is noisy: other work comes and goes within seconds. So every contender runs
once per repeat, in turn (the order rotating), and each figure is the median over repeats;
a ratio is the median of the per-repeat ratios, which compares runs made moments apart.
Time is this process's CPU time (all its threads, on the one core it is pinned to), so the
moments the scheduler gives the core to other work do not count against a contender.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Run = Callable[[int], int]  # run `reps` passes; return how many decisions (or rows) were made


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    run: Run


Rates = dict[str, list[float]]  # contender -> one rate per repeat
CLOCK = time.process_time  # CPU seconds of this process: waiting for the core does not count


def pin_one_cpu() -> str:
    """Run on one core (zen-engine and numpy could otherwise use more): the figures are per core.

    The machine is shared, so the core is the one that was idlest over the last moment.
    """
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    try:
        before = _idle_ticks()
        time.sleep(0.2)
        after = _idle_ticks()
    except (OSError, ValueError, IndexError):
        before = after = {}
    cpu = max(allowed, key=lambda c: (after.get(c, 0) - before.get(c, 0), -c))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}, the idlest of {len(allowed)} allowed"


def _idle_ticks() -> dict[int, int]:
    """Idle plus iowait ticks of each CPU so far, from /proc/stat (Linux)."""
    ticks: dict[int, int] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *counts = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks[int(name[3:])] = int(counts[3]) + int(counts[4])
    return ticks


def measure(contenders: list[Contender], repeats: int, sample_seconds: float) -> Rates:
    """Each contender's rate in each repeat; within a repeat they take turns, in a rotating order."""
    reps = {}
    for c in contenders:  # one pass each, to warm up and to size a sample
        start = CLOCK()
        c.run(1)
        reps[c.name] = max(1, round(sample_seconds / max(CLOCK() - start, 1e-6)))
    rates: Rates = {c.name: [] for c in contenders}
    for r in range(repeats):
        shift = r % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            gc.collect()
            start = CLOCK()
            made = c.run(reps[c.name])
            rates[c.name].append(made / (CLOCK() - start))
    return rates


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def figure(label: str, rates: list[float], unit: str, target: float | None = None) -> bool:
    """Print the median rate [min .. max], and the verdict if there is a target; return whether it passed."""
    median = statistics.median(rates)
    line = f"   {label:<50} {median:>13,.0f} {unit:<11} [{min(rates):,.0f} .. {max(rates):,.0f}]"
    if unit == "decisions/s":
        line += f"  {1e6 / median:.2f} us each"
    passed = target is None or median >= target
    if target is not None:
        line += f"  target >= {target:,.0f}: {_verdict(passed)}"
    print(line)
    return passed


def ratio(
    label: str, ours: list[float], theirs: list[float], target: float | None = None, strict: bool = False
) -> bool:
    """Print the median of per-repeat ratios ours/theirs [min .. max], and the verdict; return whether it passed."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    median = statistics.median(ratios)
    line = f"   {label:<50} {median:>13.2f}x  [{min(ratios):.2f} .. {max(ratios):.2f}]"
    passed = target is None or (median > target if strict else median >= target)
    if target is not None:
        line += f"  target {'>' if strict else '>='} {target:g}: {_verdict(passed)}"
    print(line)
    return passed
