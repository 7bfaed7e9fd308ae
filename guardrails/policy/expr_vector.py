"""Compile a typed expression into a function over numpy columns: many requests at once.

Columns: a number is a float64 array (NaN when missing); a bool is a float64 array of
1.0, 0.0 or NaN; a string is a `Categorical` (int32 codes into a tuple of categories, -1
when missing). Literals stay Python scalars and broadcast. The semantics are those of
`expr_scalar`, to the bit: a property test holds the two together.

Imports numpy, the stdlib and `expr_tree` only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from guardrails.policy.expr_tree import Arith, BoolOp, Call, Compare, Const, Expr, In, IsMissing, Name, Neg, Not

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Categorical:
    """A string column: `codes[i]` indexes `categories`, -1 is missing."""

    codes: npt.NDArray[np.int32]
    categories: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {value: i for i, value in enumerate(self.categories)})

    @classmethod
    def from_values(cls, values: Iterable[str | None]) -> Categorical:
        index: dict[str, int] = {}
        codes = [-1 if value is None else index.setdefault(value, len(index)) for value in values]
        return cls(np.asarray(codes, dtype=np.int32), tuple(index))

    def code_of(self, value: str) -> int:
        """The code of `value`, or -2 (matches nothing, not even missing) if it never occurs."""
        return self.index.get(value, -2)

    def to_objects(self) -> npt.NDArray[np.object_]:
        lookup = np.array([*self.categories, None], dtype=object)
        return lookup[self.codes]  # code -1 picks the trailing None


Column = FloatArray | Categorical
Columns = Mapping[str, Column]
Vector = Callable[[Columns], Any]


def compile_vector(expr: Expr) -> Callable[[Columns, int], Any]:
    """A function of (columns, row count) that returns the expression's value for every row."""
    inner = _compile(expr, as_condition=expr.kind == "bool")

    def evaluate(columns: Columns, rows: int) -> Any:
        with np.errstate(all="ignore"):
            value = inner(columns)
        if isinstance(value, Categorical):
            return value.to_objects()
        return np.broadcast_to(np.asarray(value), (rows,))

    return evaluate


def _compile(expr: Expr, as_condition: bool = False) -> Vector:
    if isinstance(expr, Const):
        value = expr.value
        return lambda cols: value
    if isinstance(expr, Name):
        key = expr.name
        if as_condition and expr.kind == "bool":
            return lambda cols: cols[key] == 1.0
        return lambda cols: cols[key]
    if isinstance(expr, Compare):
        return _compile_compare(expr)
    if isinstance(expr, In):
        return _compile_in(expr)
    if isinstance(expr, BoolOp):
        left = _compile(expr.left, as_condition=True)
        right = _compile(expr.right, as_condition=True)
        combine = np.logical_and if expr.op == "and" else np.logical_or
        return lambda cols: combine(left(cols), right(cols))
    if isinstance(expr, Not):
        operand = _compile(expr.operand, as_condition=True)
        return lambda cols: np.logical_not(operand(cols))
    if isinstance(expr, IsMissing):
        return _compile_is_missing(expr)
    if isinstance(expr, Neg):
        negated = _compile(expr.operand)
        return lambda cols: np.negative(negated(cols))
    if isinstance(expr, Arith):
        return _compile_arith(expr)
    if isinstance(expr, Call):
        return _compile_call(expr)
    raise TypeError(f"unknown expression node {type(expr).__name__}")


_NUMERIC_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _compile_compare(expr: Compare) -> Vector:
    left, right = _compile(expr.left), _compile(expr.right)
    if expr.left.kind == "str":
        return _compile_str_equality(expr.op == "!=", left, right)
    compare = _NUMERIC_COMPARE[expr.op]
    # Bools compare as their float columns (1.0, 0.0, NaN), so missing equals nothing.
    return lambda cols: compare(_as_float(left(cols)), _as_float(right(cols)))


def _as_float(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == np.bool_:
        return value.astype(np.float64)
    if isinstance(value, bool):
        return float(value)
    return value


def _compile_str_equality(negate: bool, left: Vector, right: Vector) -> Vector:
    def equal(cols: Columns) -> Any:
        a, b = left(cols), right(cols)
        result: Any
        if isinstance(a, str) and isinstance(b, Categorical):
            a, b = b, a
        if isinstance(a, Categorical) and isinstance(b, str):
            result = a.codes == a.code_of(b)
        elif isinstance(a, Categorical) and isinstance(b, Categorical):
            present = (a.codes >= 0) & (b.codes >= 0)
            result = (a.to_objects() == b.to_objects()) & present
        else:
            result = a == b
        return np.logical_not(result) if negate else result

    return equal


def _compile_in(expr: In) -> Vector:
    operand = _compile(expr.operand)
    values = list(expr.values)
    negate = expr.negate

    def member(cols: Columns) -> Any:
        value = operand(cols)
        result: Any
        if isinstance(value, Categorical):
            codes = [value.code_of(str(v)) for v in values]
            result = np.isin(value.codes, codes)
        elif isinstance(value, np.ndarray):
            result = np.isin(_as_float(value), [float(v) for v in values])
        else:
            result = value in values
        return np.logical_not(result) if negate else result

    return member


def _compile_is_missing(expr: IsMissing) -> Vector:
    operand = _compile(expr.operand)

    def missing(cols: Columns) -> Any:
        value = operand(cols)
        if isinstance(value, Categorical):
            return value.codes == -1
        if isinstance(value, np.ndarray) and value.dtype == np.float64:
            return np.isnan(value)
        if isinstance(value, float):
            return value != value
        return np.zeros_like(value, dtype=np.bool_) if isinstance(value, np.ndarray) else False

    return missing


def _divide(a: Any, b: Any) -> Any:
    return np.where(np.equal(b, 0), np.nan, np.divide(a, b))


def _modulo(a: Any, b: Any) -> Any:
    return np.remainder(np.asarray(a, dtype=np.float64), b)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": _divide,
    "%": _modulo,
}


def _compile_arith(expr: Arith) -> Vector:
    apply = _ARITH[expr.op]
    left, right = _compile(expr.left), _compile(expr.right)
    return lambda cols: apply(np.asarray(left(cols), dtype=np.float64), right(cols))


def _length(value: Any) -> Any:
    if isinstance(value, Categorical):
        lengths = np.array([float(len(c)) for c in value.categories] + [np.nan])
        return lengths[value.codes]
    return float(len(value))


_UNARY: dict[str, Callable[[Any], Any]] = {
    "abs": np.abs,
    "log": np.log,
    "log1p": np.log1p,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "len": _length,
}


def _compile_call(expr: Call) -> Vector:
    args = [_compile(arg) for arg in expr.args]
    if expr.func in _UNARY:
        apply, only = _UNARY[expr.func], args[0]
        if expr.func == "len":
            return lambda cols: apply(only(cols))
        return lambda cols: apply(np.asarray(only(cols), dtype=np.float64))
    if expr.func == "clip":
        value, low, high = args
        return lambda cols: np.minimum(np.maximum(np.asarray(value(cols), dtype=np.float64), low(cols)), high(cols))
    pair = np.minimum if expr.func == "min" else np.maximum
    first, rest = args[0], args[1:]

    def fold(cols: Columns) -> Any:
        result = np.asarray(first(cols), dtype=np.float64)
        for arg in rest:
            result = pair(result, arg(cols))
        return result

    return fold
