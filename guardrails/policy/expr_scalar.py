"""Compile a typed expression into nested closures that evaluate one request.

An environment maps each name to its value: numbers as `float` (NaN when missing),
strings as `str` or `None`, bools as `bool` or `None`. The common shapes (a name against a
literal) get their own closures, since a decision runs a dozen of them.

exp, log, log1p and sqrt call numpy's ufuncs on the scalar, so that results agree to the
last bit with `expr_vector` (numpy's SIMD kernels and libm differ in the last ulp).

Imports the stdlib, numpy and `expr_tree` only.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from guardrails.policy.expr_tree import Arith, BoolOp, Call, Compare, Const, Expr, In, IsMissing, Name, Neg, Not

Env = Mapping[str, Any]
Scalar = Callable[[Env], Any]

NAN = math.nan
_EXP_MAX = 709.782712893384  # the largest x whose exp is finite

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compile_scalar(expr: Expr) -> Scalar:
    """A function of an environment that returns the expression's value."""
    return _compile(expr, as_condition=expr.kind == "bool")


def _compile(expr: Expr, as_condition: bool = False) -> Scalar:
    if isinstance(expr, Const):
        value = expr.value
        return lambda env: value
    if isinstance(expr, Name):
        return _compile_name(expr, as_condition)
    if isinstance(expr, Compare):
        return _compile_compare(expr)
    if isinstance(expr, In):
        return _compile_in(expr)
    if isinstance(expr, BoolOp):
        return _compile_bool(expr)
    if isinstance(expr, Not):
        operand = _compile(expr.operand, as_condition=True)
        return lambda env: not operand(env)
    if isinstance(expr, IsMissing):
        return _compile_is_missing(expr)
    if isinstance(expr, Neg):
        negated = _compile(expr.operand)
        return lambda env: -negated(env)
    if isinstance(expr, Arith):
        return _compile_arith(expr)
    if isinstance(expr, Call):
        return _compile_call(expr)
    raise TypeError(f"unknown expression node {type(expr).__name__}")


def _compile_name(expr: Name, as_condition: bool) -> Scalar:
    key = expr.name
    if as_condition and expr.kind == "bool":
        # A missing bool is false where a condition is expected.
        return lambda env: env[key] is True
    return lambda env: env[key]


def _compile_compare(expr: Compare) -> Scalar:
    compare = _COMPARE[expr.op]
    left, right = expr.left, expr.right
    if isinstance(left, Name) and isinstance(right, Const):
        return _name_const(expr.op, left.name, right.value)
    if isinstance(left, Const) and isinstance(right, Name):
        return _name_const(_MIRROR[expr.op], right.name, left.value)
    left_f, right_f = _compile(left), _compile(right)
    if left.kind != "num":
        # None == None is true in Python; here a missing operand equals nothing.
        equal = _present_equal
        if expr.op == "==":
            return lambda env: equal(left_f(env), right_f(env))
        return lambda env: not equal(left_f(env), right_f(env))
    return lambda env: compare(left_f(env), right_f(env))


def _present_equal(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a == b


_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _name_const(op: str, key: str, value: Any) -> Scalar:
    # One closure per operator: no dispatch at call time.
    if op == "==":
        return lambda env: env[key] == value
    if op == "!=":
        return lambda env: env[key] != value
    if op == "<":
        return lambda env: env[key] < value
    if op == "<=":
        return lambda env: env[key] <= value
    if op == ">":
        return lambda env: env[key] > value
    return lambda env: env[key] >= value


def _compile_in(expr: In) -> Scalar:
    # A missing string or bool is None and a missing number NaN: neither is ever in the set.
    values = frozenset(expr.values)
    negate = expr.negate
    if isinstance(expr.operand, Name):
        key = expr.operand.name
        if negate:
            return lambda env: env[key] not in values
        return lambda env: env[key] in values
    operand = _compile(expr.operand)
    if negate:
        return lambda env: operand(env) not in values
    return lambda env: operand(env) in values


def _compile_bool(expr: BoolOp) -> Scalar:
    left = _compile(expr.left, as_condition=True)
    right = _compile(expr.right, as_condition=True)
    if expr.op == "and":
        return lambda env: left(env) and right(env)
    return lambda env: left(env) or right(env)


def _compile_is_missing(expr: IsMissing) -> Scalar:
    operand = _compile(expr.operand)
    if expr.operand.kind == "num":
        return lambda env: math.isnan(operand(env))
    return lambda env: operand(env) is None


def _divide(a: float, b: float) -> float:
    return a / b if b != 0 else NAN


def _modulo(a: float, b: float) -> float:
    # Python's float % and numpy's remainder share one algorithm; only % 0 differs.
    return a % b if b != 0 else NAN


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
    "%": _modulo,
}


def _compile_arith(expr: Arith) -> Scalar:
    left, right = _compile(expr.left), _compile(expr.right)
    if expr.op == "+":
        return lambda env: left(env) + right(env)
    if expr.op == "-":
        return lambda env: left(env) - right(env)
    if expr.op == "*":
        return lambda env: left(env) * right(env)
    apply = _ARITH[expr.op]
    return lambda env: apply(left(env), right(env))


def _nan_min(a: float, b: float) -> float:
    # NaN in, NaN out, like numpy.minimum. A tie goes to numpy itself: 0.0 and -0.0
    # compare equal, and which of the two it returns is numpy's choice (the second, on x86).
    if a < b:
        return a
    if b < a:
        return b
    return float(np.minimum(a, b)) if a == b else NAN


def _nan_max(a: float, b: float) -> float:
    if a > b:
        return a
    if b > a:
        return b
    return float(np.maximum(a, b)) if a == b else NAN


def _log(x: float) -> float:
    if x > 0:
        return float(np.log(x))
    return -math.inf if x == 0 else NAN


def _log1p(x: float) -> float:
    if x > -1:
        return float(np.log1p(x))
    return -math.inf if x == -1 else NAN


def _exp(x: float) -> float:
    return math.inf if x > _EXP_MAX else float(np.exp(x))


def _sqrt(x: float) -> float:
    return float(np.sqrt(x)) if x >= 0 else NAN


def _length(text: str | None) -> float:
    return NAN if text is None else float(len(text))


_UNARY: dict[str, Callable[[Any], float]] = {
    "abs": abs,
    "log": _log,
    "log1p": _log1p,
    "exp": _exp,
    "sqrt": _sqrt,
    "len": _length,
}


def _compile_call(expr: Call) -> Scalar:
    args = [_compile(arg) for arg in expr.args]
    if expr.func in _UNARY:
        apply, only = _UNARY[expr.func], args[0]
        return lambda env: apply(only(env))
    if expr.func == "clip":
        value, low, high = args
        return lambda env: _nan_min(_nan_max(value(env), low(env)), high(env))
    pair = _nan_min if expr.func == "min" else _nan_max
    first, rest = args[0], args[1:]

    def fold(env: Env) -> float:
        result: float = first(env)
        for arg in rest:
            result = pair(result, arg(env))
        return result

    return fold
