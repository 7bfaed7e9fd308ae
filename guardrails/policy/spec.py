"""The shape of a policy file, as frozen msgspec Structs: the contract the rest builds on.

`to_spec` converts plain YAML data into a `PolicySpec` and reports every shape problem
at once (msgspec stops at the first), each with its path, e.g. `$.rules[2].when`.

Imports the stdlib and msgspec only.
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

PolicyName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Label = Annotated[str, Meta(min_length=1, max_length=128)]


class Spec(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every policy-file struct."""


class CircuitBreakerSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    failures: Annotated[int, Meta(ge=1)] = 5
    reset_after_s: Annotated[float, Meta(gt=0)] = 10.0


class TensorSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Label
    datatype: Literal["FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8"] = "FP64"
    features: Annotated[list[str], Meta(min_length=1)]


class UpstreamSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: Annotated[str, Meta(pattern=r"^https?://")]
    protocol: Literal["json", "v2", "mlflow"]
    timeout_ms: Annotated[int, Meta(ge=1, le=600_000)] = 1000
    retries: Annotated[int, Meta(ge=0, le=10)] = 0
    circuit_breaker: CircuitBreakerSpec = CircuitBreakerSpec()
    tensor: TensorSpec | None = None
    output: str | None = None
    score_path: str | None = None
    max_response_bytes: Annotated[int, Meta(ge=1)] = 4 * 1024 * 1024


class InputSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True, rename={"in_": "in"}):
    type: Literal["int", "float", "bool", "str"]
    min: float | None = None
    max: float | None = None
    in_: list[str | int | float | bool] | None = None
    max_length: Annotated[int, Meta(ge=0)] | None = None
    required: bool | None = None
    default: Any | UnsetType = UNSET
    audit: Literal["keep", "hash", "drop"] = "keep"


class ScoreSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    labels: list[Label] | None = None
    positive: str | None = None
    min: float = 0.0
    max: float = 1.0


class ThresholdSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    when: str | None = None
    outcome: Label
    reason: Label


class RuleSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Label
    when: str
    outcome: Label
    reason: Label
    final: bool = False
    mode: Literal["enforce", "shadow"] = "enforce"


class FallbackSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    outcome: Label
    reason: Label


class ExpectSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    outcome: str | None = None
    reasons: list[str] | None = None
    rules: list[str] | None = None
    shadow_rules: list[str] | None = None
    fallback: str | None | UnsetType = UNSET
    errors: list[str] | None = None


class PolicyTestSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: str
    input: dict[str, Any]
    score: float | list[float] | None = None
    model_output: Any | UnsetType = UNSET
    expect: ExpectSpec


class PsiBandsSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    warn: Annotated[float, Meta(gt=0)] = 0.1
    alert: Annotated[float, Meta(gt=0)] = 0.25


Share = Annotated[float, Meta(ge=0, le=1)]


class MonitorSpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    reference: Annotated[str, Meta(min_length=1)]  # a JSON file, relative to the policy file
    window: Annotated[int, Meta(ge=100, le=1_000_000)] = 2000
    psi: PsiBandsSpec = PsiBandsSpec()
    rates: dict[str, tuple[Share, Share]] = {}
    fallback_rate_max: Share | None = None
    on_alert: Literal["flag", "fallback"] = "flag"


class PolicySpec(Spec, frozen=True, forbid_unknown_fields=True, kw_only=True):
    policy: PolicyName
    shadow_of: PolicyName | None = None
    version: str | None = None
    owner: Label
    description: str = ""
    upstream: UpstreamSpec
    inputs: dict[str, InputSpec]
    on_invalid: Literal["reject", "fallback"] = "reject"
    extra_fields: Literal["reject", "ignore"] = "reject"
    score: ScoreSpec = ScoreSpec()
    thresholds: Annotated[list[ThresholdSpec], Meta(min_length=1)]
    rules: list[RuleSpec] = []
    outcomes: Annotated[list[Label], Meta(min_length=1)]
    fallback: FallbackSpec
    monitor: MonitorSpec | None = None
    tests: list[PolicyTestSpec] = []


SpecPath = tuple[str | int, ...]
ShapeProblem = tuple[SpecPath, str, bool]  # (path, message, located at the key rather than the value)


def to_spec(data: Any) -> tuple[PolicySpec | None, list[ShapeProblem]]:
    """Convert YAML data to a PolicySpec, or return every shape problem found."""
    problems: list[ShapeProblem] = []
    _collect(data, PolicySpec, (), problems)
    if problems:
        return None, problems
    try:
        return msgspec.convert(data, PolicySpec), []
    except msgspec.ValidationError as exc:  # a rule _collect does not walk into
        return None, [_from_validation_error(exc, ())]


def _collect(value: Any, target: Any, path: SpecPath, problems: list[ShapeProblem]) -> None:
    """Walk structs, lists and dicts ourselves so one bad field does not hide the others."""
    struct = _struct_of(target)
    if struct is not None and isinstance(value, dict):
        _collect_struct(value, struct, path, problems)
        return
    bare = get_args(target)[0] if get_origin(target) is Annotated else target
    origin, args = get_origin(bare), get_args(bare)
    if origin is list and isinstance(value, list) and _struct_of(args[0]) is not None:
        for i, item in enumerate(value):
            _collect(item, args[0], (*path, i), problems)
        return
    if origin is dict and isinstance(value, dict) and _struct_of(args[1]) is not None:
        for key, item in value.items():
            _collect(item, args[1], (*path, key), problems)
        return
    try:  # the whole value, with the constraints (e.g. min_length) that `bare` dropped
        msgspec.convert(value, target)
    except msgspec.ValidationError as exc:
        problems.append(_from_validation_error(exc, path))


def _collect_struct(value: dict[str, Any], struct: type[Struct], path: SpecPath, problems: list[ShapeProblem]) -> None:
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            known = ", ".join(fields)
            problems.append(((*path, key), f"unknown key `{key}`{hint}; allowed here: {known}", True))
            continue
        _collect(item, fields[key].type, (*path, key), problems)
    for name, info in fields.items():
        if info.required and name not in value:
            problems.append((path, f"missing required key `{name}`", False))


def _struct_of(target: Any) -> type[Struct] | None:
    """The Struct type in `target` (also through `Annotated` or `X | None`), if any."""
    if isinstance(target, type) and issubclass(target, Struct):
        return target
    origin = get_origin(target)
    if origin is Annotated:
        return _struct_of(get_args(target)[0])
    if origin in (Union, types.UnionType):
        members = [arg for arg in get_args(target) if arg is not type(None)]
        if len(members) == 1:
            return _struct_of(members[0])
    return None


_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[(?:'|\")(.*?)(?:'|\")\]")


def _from_validation_error(exc: msgspec.ValidationError, base: SpecPath) -> ShapeProblem:
    message, _, where = str(exc).rpartition(" - at `")
    if not message:
        return base, str(exc), False
    path: list[str | int] = list(base)
    for name, index, quoted in _PATH_PART.findall(where.rstrip("`").removeprefix("$")):
        path.append(int(index) if index else (name or quoted))
    return tuple(path), message, False
