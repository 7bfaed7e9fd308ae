"""What monitoring costs: decisions per second with the drift window's `observe()` on versus off, in one run.

    python benchmarks/bench_monitor.py [--quick]

The policy is policies/credit-risk.yaml with its `monitor:` section (window 2000, the shipped
reference). Both contenders decide the same 1,000 varied requests (benchmarks/workload.py);
"on" also calls `Window.observe(values, score, outcome, fallback)` after each decision, as the
service will; "empty hook" calls a function with the same arguments that does nothing: the
floor of any per-decision hook in Python. They take turns within each repeat; figures are
medians, a ratio is the median of per-repeat ratios. Target (issue 6): monitoring costs at
most 10%, i.e. on/off >= 0.90. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import workload
from timing import Contender, Run, figure, measure, pin_one_cpu, ratio

from guardrails.decide import decide
from guardrails.monitor.window import Window
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_file
from guardrails.scores import ScoreFields

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "credit-risk.yaml"
SEED = 20261121
REQUESTS = 1000
TARGET = 0.90  # on/off: monitoring costs at most 10%

Item = tuple[bytes, dict[str, Any], ScoreFields]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for a smoke test (noisier figures)")
    args = parser.parse_args(argv)
    repeats, sample_seconds = (3, 0.05) if args.quick else (9, 0.4)
    cpu = pin_one_cpu()
    policy = load_policy_file(POLICY_FILE)
    if policy.monitor is None:
        print(f"{POLICY_FILE} has no `monitor:` section", file=sys.stderr)
        return 2
    items = _items(policy)
    _header(policy, repeats, cpu)
    verdicts = _request_path(policy, items, repeats, sample_seconds)
    verdicts += _decide_only(policy, items, repeats, sample_seconds)
    _report_cost(policy, items)
    print(f"\ntargets: {sum(verdicts)} of {len(verdicts)} PASS")
    return 0


def _items(policy: CompiledPolicy) -> list[Item]:
    draw = workload.draw(REQUESTS, SEED)
    items: list[Item] = []
    for raw, row in zip(workload.records(draw), workload.model_rows(draw), strict=True):
        fields = policy.scores.read(row)
        values = policy.inputs.from_mapping(raw)
        if isinstance(fields, str) or isinstance(values, list):
            raise AssertionError(f"the workload made an invalid request or model output: {raw} {row}")
        items.append((msgspec.json.encode(raw), values, fields))
    return items


def _header(policy: CompiledPolicy, repeats: int, cpu: str) -> None:
    assert policy.monitor is not None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    spec = policy.monitor.spec
    print(f"guardrails monitoring benchmark: {POLICY_FILE.name} (id {policy.version_id})")
    print(
        f"window {spec.window}, {len(policy.monitor.reference.inputs)} inputs + the score watched, "
        f"batch {Window(policy.monitor).batch}; reference {policy.monitor.reference_hash}"
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}, msgspec {msgspec.__version__}; {cpu}")
    print(f"load average {load:.2f}; {repeats} repeats, contenders interleaved; medians [min .. max]")


def _window(policy: CompiledPolicy) -> Window:
    assert policy.monitor is not None
    return Window(policy.monitor)


Hook = Callable[[Any, float | None, str, bool], None]


def _empty_hook(values: Any, score: float | None, outcome: str, fallback: bool) -> None:
    """What any per-decision hook costs at the least: a call with four arguments."""


def _request_path(policy: CompiledPolicy, items: list[Item], repeats: int, sample_seconds: float) -> list[bool]:
    """from_json(bytes) + decide, as a request handler does (minus HTTP and the model call)."""
    from_json = policy.inputs.from_json

    def contender(hook: Hook | None) -> Run:
        def run(reps: int) -> int:
            for _ in range(reps):
                for body, _values, fields in items:
                    values = from_json(body)
                    d = decide(policy, values, fields)  # type: ignore[arg-type]
                    if hook is not None:
                        hook(values, d.score, d.outcome, d.fallback is not None)
            return reps * len(items)

        return run

    return _compare("from_json(bytes) + decide", contender, _window(policy), repeats, sample_seconds)


def _decide_only(policy: CompiledPolicy, items: list[Item], repeats: int, sample_seconds: float) -> list[bool]:
    """decide(validated dict) alone: the strictest comparison, where observe's share is largest."""

    def contender(hook: Hook | None) -> Run:
        def run(reps: int) -> int:
            for _ in range(reps):
                for _body, values, fields in items:
                    d = decide(policy, values, fields)
                    if hook is not None:
                        hook(values, d.score, d.outcome, d.fallback is not None)
            return reps * len(items)

        return run

    return _compare("decide(validated dict)", contender, _window(policy), repeats, sample_seconds)


def _compare(
    label: str, contender: Callable[[Hook | None], Run], window: Window, repeats: int, sample_seconds: float
) -> list[bool]:
    print(f"\n{label}")
    contenders = [
        Contender("off", contender(None)),
        Contender("on", contender(window.observe)),
        Contender("empty", contender(_empty_hook)),
    ]
    rates = measure(contenders, repeats, sample_seconds)
    figure(f"monitoring off: {label}", rates["off"], "decisions/s")
    figure(f"monitoring on:  {label} + observe", rates["on"], "decisions/s")
    figure(f"empty hook:     {label} + a no-op call", rates["empty"], "decisions/s")
    costs = [1e6 / on - 1e6 / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    print(f"   {'observe costs, per decision':<50} {statistics.median(costs):>13.2f} us")
    ratio(f"ratio empty hook/off, {label}", rates["empty"], rates["off"])
    return [ratio(f"ratio on/off, {label}", rates["on"], rates["off"], target=TARGET)]


def _report_cost(policy: CompiledPolicy, items: list[Item]) -> None:
    """How long `report()` takes on a full window (the HTTP endpoint and the gauges call it)."""
    window = _window(policy)
    for _ in range(3):
        for _body, values, fields in items:
            d = decide(policy, values, fields)
            window.observe(values, d.score, d.outcome, d.fallback is not None)
    timed: Callable[[], object] = window.report
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3:
        timed()
        calls += 1
    report = window.report()
    print(f"\nreport() on a full window: {1e6 * (time.perf_counter() - start) / calls:,.0f} us per call")
    print(f"   status on this workload against the synthetic reference: {report.status}; {report.reasons}")


if __name__ == "__main__":
    sys.exit(main())
