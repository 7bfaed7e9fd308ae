"""Benchmark guardrails' decisions on policies/credit-risk.yaml against baselines measured in the same run.

    python benchmarks/bench_decide.py [--quick]

Three figures, each beside its baseline: single decisions per second (validation, thresholds
and rules) against hand-written plain Python; the same against zen-engine, the rules engine a
user would pick instead; and rows per second of `decide_vector` against hand-written numpy.
Every contender is first checked to give the same decisions as ours. The machine is shared
and noisy, so the contenders take turns within each repeat and the figures are medians;
ratios are medians of the per-repeat ratios. See benchmarks/README.md for what each line means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
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
from timing import Contender, Run, figure, measure, pin_one_cpu, ratio
from zen_graph import credit_risk_graph

from guardrails.decide import Decision, decide
from guardrails.decide_vector import decide_vector
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.expr_vector import Column
from guardrails.policy.load import load_policy_file
from guardrails.scores import ScoreFields

POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "credit-risk.yaml"
SEED = 20261121

SINGLE_TARGET = 150_000  # decisions/s on one core, validation included
BASELINE_TARGET = 0.5  # ours/hand-written: no slower than 2x
VECTOR_TARGET = 10_000_000  # rows/s


@dataclass(frozen=True, slots=True)
class Settings:
    repeats: int
    sample_seconds: float  # how long one contender runs in one repeat
    requests: int
    vector_rows: tuple[int, ...]


FULL = Settings(repeats=7, sample_seconds=0.2, requests=1000, vector_rows=(1_000_000, 100_000))
QUICK = Settings(repeats=3, sample_seconds=0.02, requests=1000, vector_rows=(100_000, 10_000))


@dataclass(frozen=True, slots=True)
class Case:
    """One request in every form a contender takes, prepared outside the timing."""

    raw: dict[str, Any]
    body: bytes
    fields: ScoreFields
    values: dict[str, Any]  # ours, validated
    zen_context: dict[str, Any]  # the validated values and the score fields


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few seconds, for a smoke test (noisier figures)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    try:
        import zen
    except ImportError:
        print("zen-engine is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    cpu = pin_one_cpu()
    policy = load_policy_file(POLICY_FILE)
    _header(policy, settings, cpu)
    verdicts = _single(policy, settings, zen)
    verdicts += _vectorised(policy, settings)
    passed = sum(verdicts)
    print(f"\ntargets: {passed} of {len(verdicts)} PASS")
    return 0


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
    values = [c.values for c in cases]
    _first_mismatch("from_json and from_mapping", values, [policy.inputs.from_json(c.body) for c in cases], cases)
    ours = [_summary(decide(policy, c.values, c.fields)) for c in cases]
    base_values = [baselines.from_json(c.body) for c in cases]
    _first_mismatch("the baseline's validation", values, base_values, cases)
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


def _ours(policy: CompiledPolicy, validate: Callable[[Any], Any], items: list[tuple[Any, ScoreFields]]) -> Run:
    """Validate (bytes or a dict) then decide, as a request handler does."""

    def run(reps: int) -> int:
        for _ in range(reps):
            for given, fields in items:
                values = validate(given)
                if not isinstance(values, list):
                    decide(policy, values, fields)
        return reps * len(items)

    return run


def _ours_decide_only(policy: CompiledPolicy, items: list[tuple[dict[str, Any], ScoreFields]]) -> Run:
    def run(reps: int) -> int:
        for _ in range(reps):
            for values, fields in items:
                decide(policy, values, fields)
        return reps * len(items)

    return run


def _baseline(validate: Callable[[Any], Any], items: list[tuple[Any, ScoreFields]]) -> Run:
    base_decide = baselines.decide

    def run(reps: int) -> int:
        for _ in range(reps):
            for given, fields in items:
                values = validate(given)
                if not isinstance(values, list):
                    base_decide(values, fields.score, fields.confidence)
        return reps * len(items)

    return run


def _zen_calls(decision: Any, contexts: list[dict[str, Any]]) -> Run:
    evaluate = decision.evaluate

    def run(reps: int) -> int:
        for _ in range(reps):
            for context in contexts:
                evaluate(context)
        return reps * len(contexts)

    return run


def _zen_batches(engine: Any, contexts: list[dict[str, Any]]) -> Run:
    batch = [{"key": "credit-risk", "context": context} for context in contexts]
    evaluate_batch = engine.evaluate_batch

    def run(reps: int) -> int:
        for _ in range(reps):
            evaluate_batch(batch)
        return reps * len(batch)

    return run


def _single_contenders(
    policy: CompiledPolicy, cases: list[Case], zen_decision: Any, zen_engine: Any
) -> list[Contender]:
    by_bytes: list[tuple[Any, ScoreFields]] = [(c.body, c.fields) for c in cases]
    by_dict: list[tuple[Any, ScoreFields]] = [(c.raw, c.fields) for c in cases]
    contexts = [c.zen_context for c in cases]
    return [
        Contender("ours_json", _ours(policy, policy.inputs.from_json, by_bytes)),
        Contender("base_json", _baseline(baselines.from_json, by_bytes)),
        Contender("ours_mapping", _ours(policy, policy.inputs.from_mapping, by_dict)),
        Contender("base_mapping", _baseline(baselines.validate, by_dict)),
        Contender("ours_decide", _ours_decide_only(policy, [(c.values, c.fields) for c in cases])),
        Contender("zen_call", _zen_calls(zen_decision, contexts)),
        Contender("zen_batch", _zen_batches(zen_engine, contexts)),
    ]


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
    rates = measure(
        _single_contenders(policy, cases, zen_decision, zen_engine), settings.repeats, settings.sample_seconds
    )
    unit = "decisions/s"
    verdicts = [
        figure("ours      from_json(bytes) + decide", rates["ours_json"], unit, SINGLE_TARGET),
        figure("baseline  msgspec.json.decode + ifs", rates["base_json"], unit),
        figure("ours      from_mapping(dict) + decide", rates["ours_mapping"], unit, SINGLE_TARGET),
        figure("baseline  ifs on the dict", rates["base_mapping"], unit),
        ratio("ratio ours/baseline, from_json", rates["ours_json"], rates["base_json"], BASELINE_TARGET),
        ratio("ratio ours/baseline, from_mapping", rates["ours_mapping"], rates["base_mapping"], BASELINE_TARGET),
    ]
    print(f"\n2. zen-engine {version('zen-engine')}: the same thresholds and rules as a JDM graph (first-hit tables)")
    print("   zen is given the already-validated dict plus the score fields: it does no validation; ours does")
    print(f"   verified: zen == ours on all {len(cases):,} (outcome, threshold, reasons, rules fired),")
    print("   per call and batched")
    figure("zen       decision.evaluate(dict), per call", rates["zen_call"], unit)
    figure(f"zen       engine.evaluate_batch({len(cases):,} requests)", rates["zen_batch"], unit)
    figure("ours      decide(validated dict) only", rates["ours_decide"], unit)
    verdicts += [
        ratio("ratio ours(from_json + decide)/zen per call", rates["ours_json"], rates["zen_call"], 1.0, strict=True),
        ratio("ratio ours(from_json + decide)/zen batched", rates["ours_json"], rates["zen_batch"], 1.0, strict=True),
    ]
    ratio("ratio ours(decide only)/zen per call", rates["ours_decide"], rates["zen_call"])
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
        if isinstance(values, list) or isinstance(fields, str) or vector.decision(i) != decide(policy, values, fields):
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
    rates = measure(contenders, settings.repeats, settings.sample_seconds)
    verdicts = []
    for i, rows in enumerate(settings.vector_rows):
        target = VECTOR_TARGET if i == 0 else None
        verdict = figure(f"ours      decide_vector, {rows:,} rows", rates[f"ours_{rows}"], "rows/s", target)
        verdicts += [verdict] if target else []
        figure(f"baseline  numpy where/masks, {rows:,} rows", rates[f"base_{rows}"], "rows/s")
        ratio(f"ratio ours/baseline, {rows:,} rows", rates[f"ours_{rows}"], rates[f"base_{rows}"])
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
