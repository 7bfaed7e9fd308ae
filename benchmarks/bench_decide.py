"""Benchmark guardrails' decisions on policies/credit-risk.yaml against baselines measured in the same run.

    /work/venv/bin/python benchmarks/bench_decide.py [--quick]

Three figures, each beside its baseline: single decisions per second (validation, thresholds
and rules) against hand-written plain Python; the same against zen-engine, the rules engine a
user would pick instead; and rows per second of `decide_vector` against hand-written numpy.
Every contender is first checked to give the same decisions as ours. The machine is shared
and noisy, so the contenders take turns within each repeat and the figures are medians;
ratios are medians of the per-repeat ratios. See benchmarks/README.md for what each line means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import baselines
import msgspec
import numpy as np
import workload
from zen_graph import credit_risk_graph

from guardrails.decide import Decision, decide
from guardrails.decide_vector import Column, decide_vector
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_file
from guardrails.scores import ScoreFields

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "credit-risk.yaml"
SEED = 20261121

SINGLE_TARGET = 150_000  # decisions/s on one core, validation included
BASELINE_RATIO_TARGET = 0.5  # ours/hand-written: no slower than 2x
VECTOR_TARGET = 10_000_000  # rows/s


@dataclass(frozen=True, slots=True)
class Settings:
    repeats: int
    sample_seconds: float  # how long one contender runs in one repeat
    requests: int
    vector_rows: tuple[int, ...]


FULL = Settings(repeats=7, sample_seconds=0.3, requests=1000, vector_rows=(1_000_000, 100_000))
QUICK = Settings(repeats=3, sample_seconds=0.02, requests=1000, vector_rows=(100_000, 10_000))


@dataclass(frozen=True, slots=True)
class Case:
    """One request in every form a contender takes, prepared outside the timing."""

    raw: dict[str, Any]
    body: bytes
    fields: ScoreFields
    values: dict[str, Any]  # ours, validated
    zen_context: dict[str, Any]  # the validated values and the score fields


Run = Callable[[int], int]  # run `reps` passes; return how many decisions (or rows) were made


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    run: Run


Rates = dict[str, list[float]]  # contender -> one rate per repeat


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for a smoke test (noisier figures)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    try:
        import zen
    except ImportError:
        print("zen-engine is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    cpu = _pin_one_cpu()
    policy = load_policy_file(POLICY_FILE)
    _header(policy, settings, cpu)
    verdicts = _single(policy, settings, zen)
    verdicts += _vectorised(policy, settings)
    passed = sum(verdicts)
    print(f"\ntargets: {passed} of {len(verdicts)} PASS")
    return 0


def _pin_one_cpu() -> str:
    """Run on one core (zen-engine and numpy could otherwise use more): the figures are per core."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here)"
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[0]})
    return f"pinned to CPU {allowed[0]} (of {len(allowed)} allowed)"


def _header(policy: CompiledPolicy, settings: Settings, cpu: str) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"guardrails decision benchmark: {POLICY_FILE.name} (policy {policy.name}, id {policy.version_id})")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, msgspec {msgspec.__version__}, "
        f"zen-engine {version('zen-engine')}; {cpu}; load average {load:.2f}"
    )
    print(
        f"{settings.repeats} repeats, contenders interleaved; a figure is the median over repeats [min .. max]; "
        "a ratio is the median of per-repeat ratios"
    )


# 1 and 2: single decisions -------------------------------------------------------------------------------------


def _cases(policy: CompiledPolicy, rows: int) -> list[Case]:
    draw = workload.draw(rows, SEED)
    cases = []
    for raw, row in zip(workload.records(draw), workload.model_rows(draw), strict=True):
        fields = policy.scores.read(row)
        values = policy.inputs.from_mapping(raw)
        if isinstance(fields, str) or isinstance(values, list):
            raise AssertionError(f"the workload made an invalid request or model output: {raw} {row}")
        zen_context = {**values, "score": fields.score, "confidence": fields.confidence}
        zen_context.update(margin=fields.margin, label=fields.label)
        cases.append(Case(raw, msgspec.json.encode(raw), fields, values, zen_context))
    return cases


def _summary(decision: Decision) -> tuple[Any, ...]:
    """What a decision says: outcome, threshold, reasons and the rules that fired (name, mode)."""
    return decision.outcome, decision.threshold, decision.reasons, [(r.name, r.mode) for r in decision.rules]


def _zen_summary(result: dict[str, Any]) -> tuple[Any, ...]:
    rules = [(name, "enforce") for name in result["rules"]] + [(name, "shadow") for name in result["shadow"]]
    return result["outcome"], result["threshold"], result["reasons"], rules


def _first_mismatch(what: str, ours: list[Any], theirs: list[Any], cases: list[Case]) -> None:
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        if a != b:
            raise AssertionError(f"{what} disagrees on request {i} {cases[i].raw}:\n  ours   {a}\n  theirs {b}")


def _verify_single(policy: CompiledPolicy, cases: list[Case], zen_decision: Any, zen_engine: Any) -> list[Any]:
    ours_json = [_summary(decide(policy, policy.inputs.from_json(c.body), c.fields)) for c in cases]  # type: ignore[arg-type]
    ours = [_summary(decide(policy, c.values, c.fields)) for c in cases]
    _first_mismatch("from_json and from_mapping", ours, ours_json, cases)
    _first_mismatch("the baseline's validation", [c.values for c in cases], [baselines.from_json(c.body) for c in cases], cases)
    base = [baselines.decide(c.values, c.fields.score, c.fields.confidence) for c in cases]
    _first_mismatch("the hand-written baseline", ours, [tuple(b) for b in base], cases)
    zen_calls = [_zen_summary(zen_decision.evaluate(c.zen_context)["result"]) for c in cases]
    _first_mismatch("zen-engine (per call)", ours, zen_calls, cases)
    batch = zen_engine.evaluate_batch([{"key": "credit-risk", "context": c.zen_context} for c in cases])
    _first_mismatch("zen-engine (batched)", ours, [_zen_summary(b["data"]["result"]) for b in batch], cases)
    return ours


def _mix(policy: CompiledPolicy, summaries: list[Any]) -> str:
    outcomes = Counter(s[0] for s in summaries)
    fired = Counter(name for s in summaries for name, _mode in s[3])
    missing = [rule.name for rule in policy.rules if not fired[rule.name]]
    if missing:
        raise AssertionError(f"the workload never fires {missing}: the comparison would not cover them")
    shown = ", ".join(f"{r.name}{' (shadow)' if r.shadow else ''} {fired[r.name]}" for r in policy.rules)
    return f"{', '.join(f'{o} {outcomes[o]}' for o in policy.outcomes)}; rules fired: {shown}"


def _single_contenders(policy: CompiledPolicy, cases: list[Case], zen_decision: Any, zen_engine: Any) -> list[Contender]:
    from_json, from_mapping = policy.inputs.from_json, policy.inputs.from_mapping
    base_from_json, base_validate, base_decide = baselines.from_json, baselines.validate, baselines.decide
    by_bytes = [(c.body, c.fields) for c in cases]
    by_dict = [(c.raw, c.fields) for c in cases]
    validated = [(c.values, c.fields) for c in cases]
    contexts = [c.zen_context for c in cases]
    batch = [{"key": "credit-risk", "context": c} for c in contexts]
    evaluate, evaluate_batch = zen_decision.evaluate, zen_engine.evaluate_batch

    def ours_json(reps: int) -> int:
        for _ in range(reps):
            for body, fields in by_bytes:
                values = from_json(body)
                if not isinstance(values, list):
                    decide(policy, values, fields)
        return reps * len(by_bytes)

    def ours_mapping(reps: int) -> int:
        for _ in range(reps):
            for raw, fields in by_dict:
                values = from_mapping(raw)
                if not isinstance(values, list):
                    decide(policy, values, fields)
        return reps * len(by_dict)

    def ours_decide(reps: int) -> int:
        for _ in range(reps):
            for values, fields in validated:
                decide(policy, values, fields)
        return reps * len(validated)

    def base_json(reps: int) -> int:
        for _ in range(reps):
            for body, fields in by_bytes:
                values = base_from_json(body)
                if not isinstance(values, list):
                    base_decide(values, fields.score, fields.confidence)
        return reps * len(by_bytes)

    def base_mapping(reps: int) -> int:
        for _ in range(reps):
            for raw, fields in by_dict:
                values = base_validate(raw)
                if not isinstance(values, list):
                    base_decide(values, fields.score, fields.confidence)
        return reps * len(by_dict)

    def zen_call(reps: int) -> int:
        for _ in range(reps):
            for context in contexts:
                evaluate(context)
        return reps * len(contexts)

    def zen_batch(reps: int) -> int:
        for _ in range(reps):
            evaluate_batch(batch)
        return reps * len(batch)

    runs = [ours_json, base_json, ours_mapping, base_mapping, ours_decide, zen_call, zen_batch]
    return [Contender(run.__name__, run) for run in runs]


def _single(policy: CompiledPolicy, settings: Settings, zen: Any) -> list[bool]:
    cases = _cases(policy, settings.requests)
    graph = credit_risk_graph()
    zen_decision = zen.ZenEngine().create_decision(json.dumps(graph))
    zen_engine = zen.ZenEngine({"loader": {"type": "static", "content": {"credit-risk": graph}}})
    summaries = _verify_single(policy, cases, zen_decision, zen_engine)
    print(f"\n1. Single decisions on one core: validation + thresholds + rules ({len(cases):,} varied valid requests)")
    print(f"   mix: {_mix(policy, summaries)}")
    print(f"   verified: ours == hand-written baseline on all {len(cases):,} (validated values, outcome, threshold,")
    print("   reasons, rules fired); from_json == from_mapping")
    rates = _measure(_single_contenders(policy, cases, zen_decision, zen_engine), settings)
    unit = "decisions/s"
    verdicts = [
        _figure("ours      from_json(bytes) + decide", rates["ours_json"], unit, SINGLE_TARGET),
        _figure("baseline  msgspec.json.decode + ifs", rates["base_json"], unit),
        _figure("ours      from_mapping(dict) + decide", rates["ours_mapping"], unit, SINGLE_TARGET),
        _figure("baseline  ifs on the dict", rates["base_mapping"], unit),
        _ratio("ratio ours/baseline, from_json", rates["ours_json"], rates["base_json"], BASELINE_RATIO_TARGET),
        _ratio("ratio ours/baseline, from_mapping", rates["ours_mapping"], rates["base_mapping"], BASELINE_RATIO_TARGET),
    ]
    print(f"\n2. zen-engine {version('zen-engine')}: the same thresholds and rules as a JDM graph (first-hit tables)")
    print("   zen is given the already-validated dict plus the score fields: it does no validation; ours does")
    print(f"   verified: zen == ours on all {len(cases):,} (outcome, threshold, reasons, rules fired), per call and batched")
    _figure("zen       decision.evaluate(dict), per call", rates["zen_call"], unit)
    _figure("zen       engine.evaluate_batch(1,000 requests)", rates["zen_batch"], unit)
    _figure("ours      decide(validated dict) only", rates["ours_decide"], unit)
    verdicts += [
        _ratio("ratio ours(from_json + decide)/zen per call", rates["ours_json"], rates["zen_call"], 1.0, strict=True),
        _ratio("ratio ours(from_json + decide)/zen batched", rates["ours_json"], rates["zen_batch"], 1.0, strict=True),
    ]
    _ratio("ratio ours(decide only)/zen per call", rates["ours_decide"], rates["zen_call"])
    return verdicts


# 3: vectorised --------------------------------------------------------------------------------------------------


def _verify_vector(policy: CompiledPolicy, cols: dict[str, Column], rows: int) -> None:
    ours = decide_vector(policy, cols, rows)
    outcome, threshold, per_rule = baselines.decide_columns(cols)
    same = np.array_equal(ours.outcome_codes, outcome) and np.array_equal(ours.threshold, threshold)
    for r, rule in enumerate(policy.rules):
        same = same and np.array_equal(ours.shadow[r] if rule.shadow else ours.enforced[r], per_rule[r])
    if not same:
        raise AssertionError(f"decide_vector and the numpy baseline disagree on {rows:,} rows")


def _verify_columns(policy: CompiledPolicy) -> int:
    """Columns built with numpy decide exactly as `decide` does on the same requests as dicts."""
    draw = workload.draw(1000, SEED)
    vector = decide_vector(policy, workload.columns(policy, draw), draw.rows)
    for i, (raw, row) in enumerate(zip(workload.records(draw), workload.model_rows(draw), strict=True)):
        values, fields = policy.inputs.from_mapping(raw), policy.scores.read(row)
        assert not isinstance(values, list) and not isinstance(fields, str)
        if vector.decision(i) != decide(policy, values, fields):
            raise AssertionError(f"decide_vector and decide disagree on row {i}: {raw} {row}")
    return draw.rows


def _vector_contenders(policy: CompiledPolicy, rows: int, cols: dict[str, Column]) -> list[Contender]:
    def ours(reps: int) -> int:
        for _ in range(reps):
            decide_vector(policy, cols, rows)
        return reps * rows

    def base(reps: int) -> int:
        for _ in range(reps):
            baselines.decide_columns(cols)
        return reps * rows

    return [Contender(f"ours_{rows}", ours), Contender(f"base_{rows}", base)]


def _vectorised(policy: CompiledPolicy, settings: Settings) -> list[bool]:
    checked = _verify_columns(policy)
    contenders: list[Contender] = []
    for rows in settings.vector_rows:
        cols = workload.columns(policy, workload.draw(rows, SEED))
        _verify_vector(policy, cols, rows)
        contenders += _vector_contenders(policy, rows, cols)
    print("\n3. Vectorised: decide_vector over numpy columns (built once with numpy, outside the timing)")
    sizes = " and ".join(f"{rows:,}" for rows in settings.vector_rows)
    print(f"   verified: == hand-written numpy on all rows at {sizes} (outcome codes, thresholds, rules);")
    print(f"   == decide on {checked:,} rows (the whole Decision)")
    rates = _measure(contenders, settings)
    verdicts = []
    for i, rows in enumerate(settings.vector_rows):
        target = VECTOR_TARGET if i == 0 else None
        verdict = _figure(f"ours      decide_vector, {rows:,} rows", rates[f"ours_{rows}"], "rows/s", target)
        verdicts += [verdict] if target else []
        _figure(f"baseline  numpy where/masks, {rows:,} rows", rates[f"base_{rows}"], "rows/s")
        _ratio(f"ratio ours/baseline, {rows:,} rows", rates[f"ours_{rows}"], rates[f"base_{rows}"])
    return verdicts


# timing and reporting -------------------------------------------------------------------------------------------


def _measure(contenders: list[Contender], settings: Settings) -> Rates:
    """Each contender's rate in each repeat; within a repeat they take turns, in a rotating order."""
    reps = {}
    for c in contenders:  # one pass each, to warm up and to size a sample
        start = time.perf_counter()
        c.run(1)
        reps[c.name] = max(1, round(settings.sample_seconds / max(time.perf_counter() - start, 1e-9)))
    rates: Rates = {c.name: [] for c in contenders}
    for r in range(settings.repeats):
        shift = r % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            gc.collect()
            start = time.perf_counter()
            made = c.run(reps[c.name])
            rates[c.name].append(made / (time.perf_counter() - start))
    return rates


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _figure(label: str, rates: list[float], unit: str, target: float | None = None) -> bool:
    median = statistics.median(rates)
    line = f"   {label:<50} {median:>13,.0f} {unit:<11} [{min(rates):,.0f} .. {max(rates):,.0f}]"
    if unit == "decisions/s":
        line += f"  {1e6 / median:.2f} us each"
    passed = target is None or median >= target
    if target is not None:
        line += f"  target >= {target:,.0f}: {_verdict(passed)}"
    print(line)
    return passed


def _ratio(label: str, ours: list[float], theirs: list[float], target: float | None = None, strict: bool = False) -> bool:
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    median = statistics.median(ratios)
    line = f"   {label:<50} {median:>13.2f}x  [{min(ratios):.2f} .. {max(ratios):.2f}]"
    passed = target is None or (median > target if strict else median >= target)
    if target is not None:
        line += f"  target {'>' if strict else '>='} {target:g}: {_verdict(passed)}"
    print(line)
    return passed


if __name__ == "__main__":
    sys.exit(main())
