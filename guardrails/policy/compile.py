"""Compile a checked `PolicySpec` into an immutable `CompiledPolicy`, once, at load.

Every semantic problem (outcomes, names, expressions, protocol settings) is collected and
returned together; a request only ever runs the compiled form. The version id is a hash
of the canonical content, so a whitespace or comment edit keeps it.

Imports the stdlib, msgspec, numpy (through expr_vector) and the policy modules only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.errors import ExpressionError
from guardrails.monitor.config import MonitorConfig
from guardrails.monitor.reference import Reference, check_reference, reference_hash
from guardrails.policy.expr import FUNCTION_ARITY, Expr, NameType, parse_condition
from guardrails.policy.expr_scalar import Scalar, compile_scalar
from guardrails.policy.expr_vector import Columns, compile_vector
from guardrails.policy.inputs import InputField, InputSchema
from guardrails.policy.spec import InputSpec, MonitorSpec, PolicySpec, PolicyTestSpec, UpstreamSpec
from guardrails.scores import ScoreReader

DERIVED_NAMES = ("score", "confidence", "margin", "label")
RESERVED_NAMES = frozenset((*DERIVED_NAMES, "outcome", "true", "false", "null", *FUNCTION_ARITY))
_INPUT_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_A_TYPE = {"int": "an int", "float": "a float", "bool": "a bool", "str": "a str"}

Problem = tuple[tuple[str | int, ...], str, int]  # (path in the file, message, column offset)


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled `when:`: its text, typed tree, and the scalar and vectorised forms."""

    text: str
    tree: Expr
    scalar: Scalar
    vector: Callable[[Columns, int], Any]


@dataclass(frozen=True, slots=True)
class Threshold:
    when: Condition | None
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Condition
    outcome: str
    reason: str
    final: bool
    shadow: bool


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    name: str
    version: str | None
    version_id: str
    owner: str
    description: str
    upstream: UpstreamSpec
    inputs: InputSchema
    on_invalid: str
    scores: ScoreReader
    thresholds: tuple[Threshold, ...]
    rules: tuple[Rule, ...]
    outcomes: tuple[str, ...]
    fallback_outcome: str
    fallback_reason: str
    tests: tuple[PolicyTestSpec, ...]
    source_text: str
    file: str
    shadow_of: str | None = None
    monitor: MonitorConfig | None = None


def version_id(data: Any) -> str:
    """A hash of the policy's canonical content: key order, whitespace and comments do not count."""
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()[:16]


def compile_policy(
    spec: PolicySpec,
    data: Any,
    source_text: str,
    file: str,
    reference: Reference | None = None,
    reference_file: str = "",
) -> tuple[CompiledPolicy | None, list[Problem]]:
    """The compiled policy, or every semantic problem found in `spec`.

    `reference` is the `monitor:` section's reference, already read (compiling does no I/O);
    without it, the section is checked but `monitor` is None.
    """
    problems: list[Problem] = []
    if spec.shadow_of == spec.policy:
        problems.append((("shadow_of",), "a policy cannot be its own shadow", 0))
    outcomes = _check_outcomes(spec, problems)
    fields = tuple(_input_field(name, item, problems) for name, item in spec.inputs.items())
    _check_scores(spec, problems)
    _check_upstream(spec, problems)
    names = _names(fields, spec)
    thresholds = _thresholds(spec, names, problems)
    rule_names = {**names, "outcome": NameType("str", domain=frozenset(outcomes))}
    rules = _rules(spec, rule_names, problems)
    if spec.monitor is not None:
        _check_monitor(spec.monitor, outcomes, fields, reference, problems)
    if problems:
        return None, problems
    compiled = CompiledPolicy(
        name=spec.policy,
        version=spec.version,
        version_id=version_id(data),
        owner=spec.owner,
        description=spec.description,
        upstream=spec.upstream,
        inputs=InputSchema(spec.policy, fields, reject_extra=spec.extra_fields == "reject"),
        on_invalid=spec.on_invalid,
        scores=ScoreReader(
            tuple(spec.score.labels) if spec.score.labels else None,
            spec.score.positive,
            spec.score.min,
            spec.score.max,
        ),
        thresholds=thresholds,
        rules=rules,
        outcomes=outcomes,
        fallback_outcome=spec.fallback.outcome,
        fallback_reason=spec.fallback.reason,
        tests=tuple(spec.tests),
        source_text=source_text,
        file=file,
        shadow_of=spec.shadow_of,
        monitor=_monitor_config(spec, reference, reference_file),
    )
    return compiled, []


def _check_monitor(
    monitor: MonitorSpec,
    outcomes: tuple[str, ...],
    fields: tuple[InputField, ...],
    reference: Reference | None,
    problems: list[Problem],
) -> None:
    if monitor.psi.warn > monitor.psi.alert:
        problems.append(
            (("monitor", "psi", "warn"), f"`warn` {monitor.psi.warn} is greater than `alert` {monitor.psi.alert}", 0)
        )
    for outcome, (low, high) in monitor.rates.items():
        path: tuple[str | int, ...] = ("monitor", "rates", outcome)
        if outcome not in outcomes:
            problems.append((path, f"outcome `{outcome}` is not in `outcomes` ({', '.join(outcomes)})", 0))
        if low > high:
            problems.append((path, f"the range of `{outcome}` runs from {low} down to {high}: write [low, high]", 0))
    mismatches = [] if reference is None else check_reference(reference, fields)
    if mismatches:
        message = f"the reference does not fit this policy's inputs: {'; '.join(mismatches)}"
        problems.append((("monitor", "reference"), f"{message}; rebuild it with `guardrails profile`", 0))


def _monitor_config(spec: PolicySpec, reference: Reference | None, reference_file: str) -> MonitorConfig | None:
    if spec.monitor is None or reference is None:
        return None
    return MonitorConfig(
        policy=spec.policy,
        spec=spec.monitor,
        reference=reference,
        reference_file=reference_file,
        reference_hash=reference_hash(reference),
        outcomes=tuple(spec.outcomes),
    )


def _check_outcomes(spec: PolicySpec, problems: list[Problem]) -> tuple[str, ...]:
    outcomes = tuple(spec.outcomes)
    seen: set[str] = set()
    for i, outcome in enumerate(outcomes):
        if outcome in seen:
            problems.append((("outcomes", i), f"outcome `{outcome}` is listed twice", 0))
        seen.add(outcome)
    used: list[tuple[tuple[str | int, ...], str]] = [(("fallback", "outcome"), spec.fallback.outcome)]
    used += [(("thresholds", i, "outcome"), t.outcome) for i, t in enumerate(spec.thresholds)]
    used += [(("rules", i, "outcome"), r.outcome) for i, r in enumerate(spec.rules)]
    for path, outcome in used:
        if outcome not in seen:
            problems.append((path, f"outcome `{outcome}` is not in `outcomes` ({', '.join(outcomes)})", 0))
    return outcomes


def _input_field(name: str, item: InputSpec, problems: list[Problem]) -> InputField:
    path: tuple[str | int, ...] = ("inputs", name)
    if not _INPUT_NAME.match(name):
        problems.append((path, f"input name `{name}` must match [a-z_][a-z0-9_]*", 0))
    elif name in RESERVED_NAMES:
        problems.append((path, f"input name `{name}` is reserved", 0))
    numeric = item.type in ("int", "float")
    for key, value in (("min", item.min), ("max", item.max)):
        if value is not None and not numeric:
            problems.append(((*path, key), f"`{key}` only applies to int and float inputs", 0))
    if item.min is not None and item.max is not None and item.min > item.max:
        problems.append(((*path, "min"), f"`min` {item.min} is greater than `max` {item.max}", 0))
    if item.max_length is not None and item.type != "str":
        problems.append(((*path, "max_length"), "`max_length` only applies to str inputs", 0))
    allowed = _allowed_values(item, path, problems)
    default = None if item.default is msgspec.UNSET else item.default
    if item.default is not msgspec.UNSET:
        _check_default(item, path, problems)
    if item.required and default is not None:
        problems.append(((*path, "required"), "a required input cannot have a `default`", 0))
    required = item.required if item.required is not None else default is None
    return InputField(name, item.type, required, default, item.min, item.max, allowed, item.max_length, item.audit)


def _allowed_values(item: InputSpec, path: tuple[str | int, ...], problems: list[Problem]) -> tuple[Any, ...] | None:
    if item.in_ is None:
        return None
    for i, value in enumerate(item.in_):
        if not _value_has_type(item.type, value):
            problems.append(((*path, "in", i), f"{value!r} is not {_A_TYPE[item.type]}", 0))
    return tuple(item.in_)


def _check_default(item: InputSpec, path: tuple[str | int, ...], problems: list[Problem]) -> None:
    value: Any = item.default
    where = (*path, "default")
    if value is None:
        problems.append((where, "`default` cannot be null; use `required: false` for an input that may be missing", 0))
    elif not _value_has_type(item.type, value):
        problems.append((where, f"default {value!r} is not {_A_TYPE[item.type]}", 0))
    elif item.in_ is not None and value not in item.in_:
        problems.append((where, f"default {value!r} is not one of the allowed values", 0))
    elif (item.min is not None and value < item.min) or (item.max is not None and value > item.max):
        problems.append((where, f"default {value!r} is outside [min, max]", 0))


def _value_has_type(kind: str, value: Any) -> bool:
    if kind == "bool" or isinstance(value, bool):
        return kind == "bool" and isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int | float)
    return isinstance(value, str)


def _check_scores(spec: PolicySpec, problems: list[Problem]) -> None:
    labels = spec.score.labels
    if labels is not None:
        if len(labels) < 2:
            problems.append((("score", "labels"), "`labels` needs at least two classes", 0))
        if len(set(labels)) != len(labels):
            problems.append((("score", "labels"), "`labels` lists a class twice", 0))
    if spec.score.positive is not None and (labels is None or spec.score.positive not in labels):
        problems.append((("score", "positive"), f"`positive` class `{spec.score.positive}` is not in `labels`", 0))
    if spec.score.min > spec.score.max:
        problems.append((("score", "min"), "`score.min` is greater than `score.max`", 0))


def _check_upstream(spec: PolicySpec, problems: list[Problem]) -> None:
    upstream = spec.upstream
    if upstream.protocol == "v2":
        if upstream.tensor is None:
            problems.append((("upstream",), "the v2 protocol needs `tensor` (name, datatype, features)", 0))
        else:
            for i, feature in enumerate(upstream.tensor.features):
                _check_feature(spec, feature, ("upstream", "tensor", "features", i), problems)
    elif upstream.tensor is not None:
        problems.append((("upstream", "tensor"), "`tensor` only applies to the v2 protocol", 0))
    if upstream.protocol == "json" and not upstream.score_path:
        problems.append((("upstream",), "the json protocol needs `score_path` (e.g. predictions.0.probability)", 0))
    if upstream.protocol != "json" and upstream.score_path:
        problems.append((("upstream", "score_path"), "`score_path` only applies to the json protocol", 0))
    if upstream.protocol != "v2" and upstream.output:
        problems.append((("upstream", "output"), "`output` only applies to the v2 protocol", 0))


def _check_feature(spec: PolicySpec, feature: str, path: tuple[str | int, ...], problems: list[Problem]) -> None:
    item = spec.inputs.get(feature)
    if item is None:
        problems.append((path, f"tensor feature `{feature}` is not a declared input", 0))
    elif item.type == "str":
        problems.append((path, f"tensor feature `{feature}` is a string; a tensor holds numbers", 0))
    elif item.required is False and item.default is msgspec.UNSET:
        problems.append((path, f"tensor feature `{feature}` may be missing; give it a `default`", 0))


def _names(fields: tuple[InputField, ...], spec: PolicySpec) -> dict[str, NameType]:
    names: dict[str, NameType] = {}
    for f in fields:
        domain = frozenset(str(v) for v in f.allowed) if f.allowed is not None and f.type == "str" else None
        kind = "num" if f.type in ("int", "float") else f.type
        names[f.name] = NameType(kind, optional=f.optional, domain=domain)  # type: ignore[arg-type]
    for derived in ("score", "confidence", "margin"):
        names[derived] = NameType("num")
    labels = spec.score.labels
    names["label"] = NameType("str", optional=labels is None, domain=frozenset(labels) if labels else None)
    return names


def _condition(
    text: str, names: dict[str, NameType], path: tuple[str | int, ...], problems: list[Problem]
) -> Condition | None:
    try:
        tree = parse_condition(text, names)
    except ExpressionError as exc:
        message = exc.message
        if message.startswith("unknown name `outcome`"):
            message = "thresholds come before any outcome: `outcome` can only be used in rules"
        problems.append((path, message, exc.col))
        return None
    return Condition(text, tree, compile_scalar(tree), compile_vector(tree))


def _thresholds(spec: PolicySpec, names: dict[str, NameType], problems: list[Problem]) -> tuple[Threshold, ...]:
    result: list[Threshold] = []
    last = len(spec.thresholds) - 1
    for i, item in enumerate(spec.thresholds):
        path: tuple[str | int, ...] = ("thresholds", i)
        if item.when is None and i != last:
            problems.append((path, "only the last threshold may leave out `when`; the ones after it never match", 0))
        if item.when is not None and i == last:
            problems.append(
                ((*path, "when"), "the last threshold must have no `when`, so every score gets an outcome", 0)
            )
        condition = _condition(item.when, names, (*path, "when"), problems) if item.when is not None else None
        result.append(Threshold(condition, item.outcome, item.reason))
    return tuple(result)


def _rules(spec: PolicySpec, names: dict[str, NameType], problems: list[Problem]) -> tuple[Rule, ...]:
    result: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(spec.rules):
        path: tuple[str | int, ...] = ("rules", i)
        if item.name in seen:
            problems.append(((*path, "name"), f"rule name `{item.name}` is used twice", 0))
        seen.add(item.name)
        if item.final and item.mode == "shadow":
            problems.append(((*path, "final"), "`final` has no effect on a shadow rule", 0))
        condition = _condition(item.when, names, (*path, "when"), problems)
        if condition is not None:
            shadow = item.mode == "shadow"
            result.append(Rule(item.name, condition, item.outcome, item.reason, item.final, shadow))
    return tuple(result)
