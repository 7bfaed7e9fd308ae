"""Input validation compiled from a policy's `inputs:`: one msgspec pass for a valid request.

A request is decoded straight into a msgspec Struct built for the policy, which checks
types, ranges, allowed values and lengths in one pass. msgspec stops at the first
problem, so only a request that fails takes the slow path, which checks every field and
reports every violation with the field and the constraint it broke.

Imports the stdlib and msgspec only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

NAN = math.nan
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_MAX = sys.float_info.max
_PYTHON_TYPE: dict[str, type] = {"int": int, "float": float, "bool": bool, "str": str}
_TYPE_WORD = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
NESTED_TOO_DEEPLY = "JSON is nested too deeply"


class FieldError(msgspec.Struct, frozen=True):
    """One violation: the field, the constraint it broke, and a message naming both."""

    field: str
    constraint: Literal["type", "required", "min", "max", "in", "max_length", "unknown", "body"]
    message: str


class MalformedBody(Exception):
    """The body is not JSON at all (HTTP 400, not 422)."""


@dataclass(frozen=True, slots=True)
class InputField:
    name: str
    type: Literal["int", "float", "bool", "str"]
    required: bool
    default: Any
    min: float | None
    max: float | None
    allowed: tuple[Any, ...] | None
    max_length: int | None
    audit: Literal["keep", "hash", "drop"]

    @property
    def optional(self) -> bool:
        """True when the value can be missing when rules run (not required, no default)."""
        return not self.required and self.default is None


class InputSchema:
    """Validate a request's fields; compile once per policy, call per request."""

    def __init__(self, policy_name: str, fields: tuple[InputField, ...], reject_extra: bool) -> None:
        self.fields = fields
        self.reject_extra = reject_extra
        self._by_name = {f.name: f for f in fields}
        self._struct = msgspec.defstruct(
            f"Input_{policy_name.replace('-', '_')}",
            [_struct_field(f) for f in fields],
            forbid_unknown_fields=reject_extra,
            kw_only=True,
        )
        self._decoder = msgspec.json.Decoder(self._struct)
        self._post_checked = tuple(f for f in fields if _needs_post_check(f))
        self._int_fields = tuple(f.name for f in fields if f.type == "int")
        self._nan_when_missing = tuple(f.name for f in fields if f.type == "float" and f.optional)
        self.names = frozenset(self._by_name)
        self.audit_hashed = tuple(f.name for f in fields if f.audit == "hash")  # what the audit record keeps
        self.audit_dropped = tuple(f.name for f in fields if f.audit == "drop")

    def from_json(self, body: bytes) -> dict[str, Any] | list[FieldError]:
        """Decode and validate a JSON body; raise MalformedBody if it is not JSON."""
        try:
            values = msgspec.structs.asdict(self._decoder.decode(body))
        except msgspec.ValidationError:
            try:
                raw = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise MalformedBody(str(exc)) from None
            except RecursionError:
                raise MalformedBody(NESTED_TOO_DEEPLY) from None
            return self._slow_path(raw)
        except msgspec.DecodeError as exc:
            raise MalformedBody(str(exc)) from None
        except RecursionError:  # msgspec's depth limit is the interpreter's, and not a DecodeError
            raise MalformedBody(NESTED_TOO_DEEPLY) from None
        return values if self._passes_post_checks(values) else self.check_all(values)

    def from_mapping(self, raw: Any) -> dict[str, Any] | list[FieldError]:
        """Validate already-decoded data (a dict from YAML, the CLI or a batch item)."""
        try:
            values = msgspec.structs.asdict(msgspec.convert(raw, self._struct))
        except msgspec.ValidationError:
            return self._slow_path(raw)
        return values if self._passes_post_checks(values) else self.check_all(raw)

    def _slow_path(self, raw: Any) -> dict[str, Any] | list[FieldError]:
        """Every violation; or, when there is none, the struct refused a null given for an input
        with a default. Null means "not given", as `check_all` treats it: the default applies."""
        errors = self.check_all(raw)
        if errors:
            return errors
        given = {name: value for name, value in raw.items() if value is not None}
        if len(given) == len(raw):
            raise AssertionError("the input struct refused an input that check_all accepts")
        return self.from_mapping(given)

    def to_env(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The expression environment: numbers as floats, a missing number as NaN."""
        env = dict(values)
        for name in self._int_fields:
            value = env[name]
            env[name] = NAN if value is None else float(value)
        for name in self._nan_when_missing:
            if env[name] is None:
                env[name] = NAN
        return env

    def _passes_post_checks(self, values: Mapping[str, Any]) -> bool:
        for f in self._post_checked:  # runs on every valid request: a plain loop, no generator
            value = values[f.name]
            if value is not None and _field_errors(f, value):
                return False
        return True

    def check_all(self, raw: Any) -> list[FieldError]:
        """Every violation in `raw`, in field order (the slow path)."""
        if not isinstance(raw, dict):
            return [FieldError("$", "body", f"the body must be a JSON object of input fields, got {_json_type(raw)}")]
        errors: list[FieldError] = []
        for f in self.fields:
            value = raw.get(f.name)
            if value is None:
                if f.required:
                    errors.append(FieldError(f.name, "required", f"`{f.name}` is required"))
                continue
            errors.extend(_field_errors(f, value))
        if self.reject_extra:
            for name in raw:
                if name not in self._by_name:
                    errors.append(FieldError(name, "unknown", f"`{name}` is not an input of this policy"))
        return errors


def _struct_field(f: InputField) -> tuple[str, Any, Any] | tuple[str, Any]:
    annotated = _annotated_type(f)
    if f.default is not None:
        return (f.name, annotated, f.default)
    if not f.required:
        return (f.name, annotated | None, None)
    return (f.name, annotated)


def _annotated_type(f: InputField) -> Any:
    if f.allowed is not None and f.type in ("str", "int"):
        return Literal[f.allowed]  # msgspec checks str and int literals in the one pass
    if f.type == "int":  # always bounded: numbers past 64 bits cannot be held as the floats rules see
        low = INT64_MIN if f.min is None else max(math.ceil(f.min), INT64_MIN)
        high = INT64_MAX if f.max is None else min(math.floor(f.max), INT64_MAX)
        return Annotated[int, msgspec.Meta(ge=low, le=high)]
    if _float_checked_by_struct(f):  # always bounded, so that the struct refuses NaN and infinity too
        return Annotated[
            float, msgspec.Meta(ge=-FLOAT_MAX if f.min is None else f.min, le=FLOAT_MAX if f.max is None else f.max)
        ]
    if f.type == "float" and (f.min is not None or f.max is not None):
        return Annotated[float, msgspec.Meta(ge=f.min, le=f.max)]
    if f.type == "str" and f.max_length is not None:
        return Annotated[str, msgspec.Meta(max_length=f.max_length)]
    return _PYTHON_TYPE[f.type]


def _needs_post_check(f: InputField) -> bool:
    """Constraints the one-pass struct does not express fully: rechecked in Python."""
    if f.type == "float":  # NaN and infinity can arrive from YAML or Python callers
        return not _float_checked_by_struct(f)
    literal = f.allowed is not None and f.type in ("str", "int")
    if literal and (f.min is not None or f.max is not None or f.max_length is not None):
        return True
    return f.allowed is not None and not literal


def _float_checked_by_struct(f: InputField) -> bool:
    """A float input whose every check the struct makes exactly as `_field_errors` would, once its
    bounds default to +-FLOAT_MAX: no `in` list, bounds that are finite floats (msgspec compares
    with a bound as a float, so an integer bound past 2**53 would be rounded), and a default that
    passes the checks (msgspec does not check defaults). Such an input needs no check after."""
    if f.type != "float" or f.allowed is not None:
        return False
    if f.default is not None and _field_errors(f, f.default):
        return False
    return all(b is None or (-FLOAT_MAX <= b <= FLOAT_MAX and float(b) == b) for b in (f.min, f.max))


def _field_errors(f: InputField, value: Any) -> list[FieldError]:
    if not _has_type(f.type, value):
        return [FieldError(f.name, "type", _type_message(f, value))]
    errors: list[FieldError] = []
    if f.min is not None and value < f.min:
        errors.append(FieldError(f.name, "min", f"`{f.name}` must be >= {_number(f.min)}, got {_show(value)}"))
    if f.max is not None and value > f.max:
        errors.append(FieldError(f.name, "max", f"`{f.name}` must be <= {_number(f.max)}, got {_show(value)}"))
    if f.allowed is not None and value not in f.allowed:
        allowed = ", ".join(str(v) for v in f.allowed)
        errors.append(FieldError(f.name, "in", f"`{f.name}` must be one of {allowed}; got {_show(value)}"))
    if f.max_length is not None and len(value) > f.max_length:
        errors.append(
            FieldError(f.name, "max_length", f"`{f.name}` must be at most {f.max_length} characters, got {len(value)}")
        )
    return errors


def _type_message(f: InputField, value: Any) -> str:
    too_large = f.type in ("int", "float") and isinstance(value, int) and not isinstance(value, bool)
    if too_large:  # an integer that is the right kind of thing, only too large for the type
        size = "64 bits" if f.type == "int" else "a 64-bit float"
        return f"`{f.name}` must fit in {size}, got an integer of {value.bit_length()} bits"
    if isinstance(value, float) and f.type == "float":  # NaN or infinity
        return f"`{f.name}` must be a finite number, got {value}"
    shown = str(value) if isinstance(value, float) else _show(value)  # 1.0 for an int input is not "1"
    return f"`{f.name}` must be {_TYPE_WORD[f.type]}, got {_json_type(value)} {shown}".rstrip()


def _has_type(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int) and INT64_MIN <= value <= INT64_MAX
    if kind == "float":  # finite, and within float range (NaN fails both comparisons)
        return isinstance(value, int | float) and -FLOAT_MAX <= value <= FLOAT_MAX
    return isinstance(value, str)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "..."
        return msgspec.json.encode(shown).decode()
    if isinstance(value, list | dict):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return _number(value)


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else str(value)
