"""The `when:` expression language: values, error messages and hostile input, as tables.

Every value case runs through both compilers on the same three rows and is checked
against a value written here by hand.
"""

from __future__ import annotations

import builtins
import math
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from guardrails.errors import ExpressionError, GuardrailsError
from guardrails.policy.expr import In, NameType, parse_condition, parse_expression, referenced_names
from guardrails.policy.expr_scalar import compile_scalar
from guardrails.policy.expr_vector import Categorical, compile_vector

NAN = math.nan
INF = math.inf

NAMES: dict[str, NameType] = {
    "x": NameType("num"),
    "y": NameType("num", optional=True),
    "s": NameType("str", optional=True),
    "t": NameType("str", optional=True),
    "outcome": NameType("str", domain=frozenset({"approve", "decline", "review"})),
    "b": NameType("bool", optional=True),
    "c": NameType("bool", optional=True),
}

# Three rows; row 1 has y and s missing, row 2 has b missing and y == 0.
ROWS: list[dict[str, Any]] = [
    {"x": 4.0, "y": 2.0, "s": "abc", "t": "abc", "outcome": "approve", "b": True, "c": True},
    {"x": -2.0, "y": NAN, "s": None, "t": None, "outcome": "decline", "b": False, "c": None},
    {"x": 0.0, "y": 0.0, "s": "", "t": None, "outcome": "review", "b": None, "c": None},
]


def _columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name, info in NAMES.items():
        values = [row[name] for row in rows]
        if info.kind == "str":
            columns[name] = Categorical.from_values(values)
        elif info.kind == "bool":
            columns[name] = np.array([NAN if v is None else float(v) for v in values], dtype=np.float64)
        else:
            columns[name] = np.array(values, dtype=np.float64)
    return columns


COLUMNS = _columns(ROWS)


@dataclass(frozen=True)
class Approx:
    """An expected float that libm may round differently in the last place."""

    value: float


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _matches(actual: Any, expected: Any) -> bool:
    actual = _plain(actual)
    if isinstance(expected, Approx):
        return type(actual) is float and math.isclose(actual, expected.value, rel_tol=1e-15)
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        # Bitwise, except that every NaN is the same missing value: 0.0 and -0.0 differ.
        both_nan = math.isnan(actual) and math.isnan(expected)
        return both_nan or struct.pack("<d", actual) == struct.pack("<d", expected)
    return bool(actual == expected)


def _evaluate_both(text: str) -> tuple[list[Any], list[Any]]:
    expr = parse_expression(text, NAMES)
    scalar = compile_scalar(expr)
    vector = compile_vector(expr)
    return [scalar(row) for row in ROWS], list(vector(COLUMNS, len(ROWS)))


T, F = True, False

VALUE_CASES: list[tuple[str, tuple[Any, Any, Any]]] = [
    # literals
    ("1", (1.0, 1.0, 1.0)),
    ("2.5", (2.5, 2.5, 2.5)),
    ("0x10", (16.0, 16.0, 16.0)),
    ("1e999", (INF, INF, INF)),
    ("'hi'", ("hi", "hi", "hi")),
    ('"hi"', ("hi", "hi", "hi")),
    ("true", (T, T, T)),
    ("false", (F, F, F)),
    # names; a missing bool is false as a condition
    ("x", (4.0, -2.0, 0.0)),
    ("y", (2.0, NAN, 0.0)),
    ("s", ("abc", None, "")),
    ("outcome", ("approve", "decline", "review")),
    ("b", (T, F, F)),
    # numeric comparisons, either way round
    ("x > 0", (T, F, F)),
    ("x >= 0", (T, F, T)),
    ("x < 0", (F, T, F)),
    ("x <= 0", (F, T, T)),
    ("x == 4", (T, F, F)),
    ("x != 4", (F, T, T)),
    ("0 < x", (T, F, F)),
    ("4 == x", (T, F, F)),
    ("0 != x", (T, T, F)),
    ("1 < 2", (T, T, T)),
    # a comparison with a missing operand is false; != is `not ==`
    ("y > 1", (T, F, F)),
    ("y <= 1", (F, F, T)),
    ("y == 2", (T, F, F)),
    ("y != 2", (F, T, T)),
    ("y == y", (T, F, T)),
    ("y != y", (F, T, F)),
    ("x > y", (T, F, F)),
    ("x <= y", (F, F, T)),
    ("x != y", (T, T, F)),
    # chained comparisons
    ("0 <= x < 5", (T, F, T)),
    ("x > y > -1", (T, F, F)),
    ("-3 < x <= y", (F, F, T)),
    # strings; a missing string equals nothing, not even another missing string
    ("s == 'abc'", (T, F, F)),
    ("s != 'abc'", (F, T, T)),
    ("'abc' == s", (T, F, F)),
    ("s == ''", (F, F, T)),
    ("s != ''", (T, T, F)),
    ("s == 'zzz'", (F, F, F)),
    ("s != 'zzz'", (T, T, T)),
    ("s == t", (T, F, F)),
    ("s != t", (F, T, T)),
    ("outcome == 'approve'", (T, F, F)),
    ("outcome != 'review'", (T, T, F)),
    ("'a' == 'a'", (T, T, T)),
    ("'a' != 'b'", (T, T, T)),
    # bools compared as values
    ("b == true", (T, F, F)),
    ("b != true", (F, T, T)),
    ("b == false", (F, T, F)),
    ("b != false", (T, F, T)),
    ("true == b", (T, F, F)),
    ("b == c", (T, F, F)),
    ("b != c", (F, T, T)),
    ("b == (x > 0)", (T, T, F)),
    ("(x > 0) != b", (F, F, T)),
    ("true != false", (T, T, T)),
    # and, or, not
    ("b and x > 0", (T, F, F)),
    ("b or x == 0", (T, F, T)),
    ("b and c", (T, F, F)),
    ("b or c", (T, F, F)),
    ("not b", (F, T, T)),
    ("not not b", (T, F, F)),
    ("not x > 0", (F, T, T)),
    ("not (y > 1)", (F, T, T)),
    ("b and not b", (F, F, F)),
    ("b or not b", (T, T, T)),
    ("x > 0 and y > 0 or s == ''", (T, F, T)),
    ("x > 0 or y > 0 and s == ''", (T, F, F)),
    ("(x > 0 or y > 0) and s == ''", (F, F, F)),
    ("false or true and false", (F, F, F)),
    # in / not in; a missing operand is in nothing
    ("s in ['abc', '']", (T, F, T)),
    ("s not in ['abc', '']", (F, T, F)),
    ("s in ['zzz']", (F, F, F)),
    ("s not in ['zzz']", (T, T, T)),
    ("s in []", (F, F, F)),
    ("s not in []", (T, T, T)),
    ("outcome in ['approve', 'review']", (T, F, T)),
    ("x in [4, 0]", (T, F, T)),
    ("x not in [4, 0]", (F, T, F)),
    ("y in [2, 0]", (T, F, T)),
    ("y not in [2, 0]", (F, T, F)),
    ("-x in [0, 2]", (F, T, T)),
    ("y * 0 in [0]", (T, F, T)),
    ("b in [true]", (T, F, F)),
    ("b not in [true]", (F, T, T)),
    ("b in [true, false]", (T, T, F)),
    ("b not in [true, false]", (F, F, T)),
    ("(x > 0) in [true]", (T, F, F)),
    ("'a' in ['a', 'b']", (T, T, T)),
    ("1 in [2]", (F, F, F)),
    # arithmetic; x / 0 and x % 0 are missing
    ("x + y", (6.0, NAN, 0.0)),
    ("x - y", (2.0, NAN, 0.0)),
    ("x * y", (8.0, NAN, 0.0)),
    ("x / y", (2.0, NAN, NAN)),
    ("x % y", (0.0, NAN, NAN)),
    ("x / 0", (NAN, NAN, NAN)),
    ("x % 0", (NAN, NAN, NAN)),
    ("x / -0", (NAN, NAN, NAN)),
    ("x / 8", (0.5, -0.25, 0.0)),
    ("x % 3", (1.0, 1.0, 0.0)),
    ("x % -3", (-2.0, -2.0, -0.0)),
    ("x % 2.5", (1.5, 0.5, 0.0)),
    ("y - y", (0.0, NAN, 0.0)),
    ("x * 1e308 * 10", (INF, -INF, 0.0)),
    ("1e999 - 1e999", (NAN, NAN, NAN)),
    ("1 - 3 * 2", (-5.0, -5.0, -5.0)),
    ("(1 - 3) * 2", (-4.0, -4.0, -4.0)),
    ("10 - 4 - 3", (3.0, 3.0, 3.0)),
    ("8 / 4 / 2", (1.0, 1.0, 1.0)),
    ("x + y * 2", (8.0, NAN, 0.0)),
    ("(x + y) * 2", (12.0, NAN, 0.0)),
    ("((x))", (4.0, -2.0, 0.0)),
    # unary minus
    ("-x", (-4.0, 2.0, -0.0)),
    ("--x", (4.0, -2.0, 0.0)),
    ("-y", (-2.0, NAN, -0.0)),
    ("-(x - 1)", (-3.0, 3.0, 1.0)),
    # functions
    ("abs(x)", (4.0, 2.0, 0.0)),
    ("abs(-x)", (4.0, 2.0, 0.0)),
    ("abs(y)", (2.0, NAN, 0.0)),
    ("min(x, y)", (2.0, NAN, 0.0)),
    ("max(x, y)", (4.0, NAN, 0.0)),
    ("min(x, 1, 3)", (1.0, -2.0, 0.0)),
    ("max(x, 1, 3)", (4.0, 3.0, 3.0)),
    ("max(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, x)", (15.0, 15.0, 15.0)),
    ("clip(x, -1, 1)", (1.0, -1.0, 0.0)),
    ("clip(y, 0, 1)", (1.0, NAN, 0.0)),
    ("clip(x, 0, y)", (2.0, NAN, 0.0)),
    ("log(x)", (Approx(1.3862943611198906), NAN, -INF)),
    ("log(1)", (0.0, 0.0, 0.0)),
    ("log(-1)", (NAN, NAN, NAN)),
    ("log(1e999)", (INF, INF, INF)),
    ("log1p(x)", (Approx(1.6094379124341003), NAN, 0.0)),
    ("log1p(-1)", (-INF, -INF, -INF)),
    ("log1p(-x / 4)", (-INF, Approx(0.4054651081081644), -0.0)),
    ("exp(x)", (Approx(54.598150033144236), Approx(0.1353352832366127), 1.0)),
    ("exp(y)", (Approx(7.38905609893065), NAN, 1.0)),
    ("exp(1000)", (INF, INF, INF)),
    ("exp(-1000)", (0.0, 0.0, 0.0)),
    ("exp(-1e999)", (0.0, 0.0, 0.0)),
    ("exp(709.782712893384)", (Approx(1.7976931348622732e308),) * 3),
    ("exp(709.7827128933841)", (INF, INF, INF)),
    ("sqrt(x)", (2.0, NAN, 0.0)),
    ("sqrt(-x)", (NAN, Approx(1.4142135623730951), -0.0)),
    ("sqrt(2.25)", (1.5, 1.5, 1.5)),
    ("is_missing(x)", (F, F, F)),
    ("is_missing(y)", (F, T, F)),
    ("is_missing(s)", (F, T, F)),
    ("is_missing(t)", (F, T, T)),
    ("is_missing(b)", (F, F, T)),
    ("is_missing(not b)", (F, F, F)),
    ("is_missing(x / y)", (F, T, T)),
    ("is_missing(0 / 0)", (T, T, T)),
    ("is_missing(1)", (F, F, F)),
    ("is_missing('a')", (F, F, F)),
    ("is_missing(true)", (F, F, F)),
    ("is_missing(x > 0)", (F, F, F)),
    ("len(s)", (3.0, NAN, 0.0)),
    ("len(outcome)", (7.0, 7.0, 6.0)),
    ("len('hello')", (5.0, 5.0, 5.0)),
    ("len('héllo')", (5.0, 5.0, 5.0)),
    ("len(s) == null", (F, T, F)),
    ("max(abs(x - 5), sqrt(y))", (Approx(1.4142135623730951), NAN, 5.0)),
    ("max(abs(x - 5), sqrt(abs(x)))", (2.0, 7.0, 5.0)),
    # x == null is is_missing(x)
    ("y == null", (F, T, F)),
    ("y != null", (T, F, T)),
    ("null == y", (F, T, F)),
    ("s == null", (F, T, F)),
    ("s != null", (T, F, T)),
    ("t == null", (F, T, T)),
    ("b == null", (F, F, T)),
    ("null != b", (T, T, F)),
    ("x / y == null", (F, T, T)),
    ("(y == null) == is_missing(y)", (T, T, T)),
    ("(x > 0) == true", (T, F, F)),
]


@pytest.mark.parametrize(("text", "expected"), VALUE_CASES, ids=[text for text, _ in VALUE_CASES])
def test_value(text: str, expected: tuple[Any, Any, Any]) -> None:
    scalar, vector = _evaluate_both(text)
    assert all(_matches(a, e) for a, e in zip(scalar, expected, strict=True)), (scalar, expected)
    assert all(_matches(a, e) for a, e in zip(vector, expected, strict=True)), (vector, expected)


SIGNED_ZERO_CASES = ["min(x, -x)", "min(-x, x)", "max(x, -x)", "max(-x, x)", "clip(-x, x, 1)", "clip(x, -1, -x)"]


@pytest.mark.parametrize("text", SIGNED_ZERO_CASES)
def test_min_max_tie_of_signed_zeros_agrees_to_the_bit(text: str) -> None:
    # Row 2 has x == 0.0, so both arguments are zeros of opposite sign; the sign chosen
    # is numpy's business, but scalar and vector must choose the same one.
    scalar, vector = _evaluate_both(text)
    assert [struct.pack("<d", v) for v in scalar] == [struct.pack("<d", _plain(v)) for v in vector]


def test_vector_result_types() -> None:
    rows = len(ROWS)
    assert compile_vector(parse_expression("x + 1", NAMES))(COLUMNS, rows).dtype == np.float64
    assert compile_vector(parse_expression("x > 1", NAMES))(COLUMNS, rows).dtype == np.bool_
    assert compile_vector(parse_expression("true", NAMES))(COLUMNS, rows).shape == (rows,)
    assert list(compile_vector(parse_expression("s", NAMES))(COLUMNS, rows)) == ["abc", None, ""]


def test_categorical_missing_is_code_minus_one() -> None:
    column = Categorical.from_values(["a", None, "b", "a"])
    assert list(column.codes) == [0, -1, 1, 0]
    assert column.categories == ("a", "b")
    assert column.code_of("zzz") == -2
    assert list(column.to_objects()) == ["a", None, "b", "a"]


def test_condition_accepts_a_bool() -> None:
    assert parse_condition("x > 1 and b", NAMES).kind == "bool"


@pytest.mark.parametrize(
    ("text", "names"),
    [("x > y and s == t or b", {"b", "s", "t", "x", "y"}), ("1 < 2", set()), ("len(s) + abs(-x)", {"s", "x"})],
)
def test_referenced_names(text: str, names: set[str]) -> None:
    assert referenced_names(parse_expression(text, NAMES)) == names


FUNCTIONS = "abs, clip, exp, is_missing, len, log, log1p, max, min, sqrt"
NULL_MISUSE = "null can only be compared with == or != (or use is_missing)"
NOT_A_LIST = "a list can only stand on the right of `in` or `not in`"
NEVER_APROVE = "`outcome` is never 'aprove'; its values are: approve, decline, review"

ERROR_CASES: list[tuple[str, str]] = [
    # names and functions
    ("xx", "unknown name `xx` (did you mean `x`?)"),
    ("outcom == 'approve'", "unknown name `outcom` (did you mean `outcome`?)"),
    ("qqqq > 1", "unknown name `qqqq`"),
    ("open('f')", f"unknown function `open`; the functions are: {FUNCTIONS}"),
    ("x(1)", f"unknown function `x`; the functions are: {FUNCTIONS}"),
    ("abs(1)(2)", "only the listed functions can be called"),
    ("abs()", "`abs` takes 1 argument, got 0"),
    ("abs(x, y)", "`abs` takes 1 argument, got 2"),
    ("is_missing()", "`is_missing` takes 1 argument, got 0"),
    ("min(x)", "`min` takes 2 to 16 arguments, got 1"),
    ("max(" + ", ".join(["x"] * 17) + ")", "`max` takes 2 to 16 arguments, got 17"),
    ("clip(x, 1)", "`clip` takes 3 arguments, got 2"),
    ("abs(x=1)", "`abs` takes no keyword arguments"),
    ("min(x, y, key=x)", "`min` takes no keyword arguments"),
    ("abs(**x)", "`abs` takes no keyword arguments"),
    # kinds
    ("x == 'a'", "cannot compare a number with a string"),
    ("b == 1", "cannot compare a true/false value with a number"),
    ("s != b", "cannot compare a string with a true/false value"),
    ("s > 'a'", "`>` needs numbers, got strings"),
    ("b < true", "`<` needs numbers, got true/false values"),
    ("x + s", "`+` needs a number, got a string"),
    ("s % 2", "`%` needs a number, got a string"),
    ("b * 2", "`*` needs a number, got a true/false value"),
    ("'a' * 1000", "`*` needs a number, got a string"),
    ("-s", "unary - needs a number, got a string"),
    ("-b", "unary - needs a number, got a true/false value"),
    ("not x", "`not` needs a true/false value, got a number"),
    ("x and b", "`and` needs a true/false value, got a number"),
    ("b or s", "`or` needs a true/false value, got a string"),
    ("len(x)", "`len` needs a string, got a number"),
    ("sqrt(s)", "`sqrt` needs a number, got a string"),
    ("clip(x, 0, b)", "`clip` needs a number, got a true/false value"),
    # lists
    ("[1, 2]", NOT_A_LIST),
    ("x == [1]", NOT_A_LIST),
    ("abs([1])", NOT_A_LIST),
    ("[1] in [1]", NOT_A_LIST),
    ("x in y", 'the right of `in` must be a list such as ["a", "b"]'),
    ("x not in y", 'the right of `not in` must be a list such as ["a", "b"]'),
    ("x in ['a']", "cannot look for a number in a list of strings"),
    ("s in [1, 2]", "cannot look for a string in a list of numbers"),
    ("b in ['a']", "cannot look for a true/false value in a list of strings"),
    ("x in [1, 'a']", "list items must all be of one kind"),
    ("x in [1, true]", "list items must all be of one kind"),
    ("x in [y]", "list items must be literal values"),
    ("x in [-y]", "list items must be literal values"),
    # domains
    ("outcome == 'aprove'", NEVER_APROVE),
    ("'aprove' != outcome", NEVER_APROVE),
    ("outcome in ['approve', 'aprove']", NEVER_APROVE),
    ("outcome not in ['aprove']", NEVER_APROVE),
    # null
    ("null", NULL_MISUSE),
    ("x < null", NULL_MISUSE),
    ("null + 1", NULL_MISUSE),
    ("x in [null]", NULL_MISUSE),
    ("is_missing(null)", NULL_MISUSE),
    ("null == null", "comparing null with null is always the same"),
    ("x == null == null", "comparing null with null is always the same"),
    # syntax and size
    ("", "expression is empty"),
    ("  \n ", "expression is empty"),
    ("x +", "syntax error: invalid syntax"),
    ("x = 1", "syntax error: invalid syntax"),
    ("x; y", "syntax error: invalid syntax"),
    ("yield x", "syntax error: invalid syntax"),
    ("(x", "syntax error: '(' was never closed"),
    ("x)", "syntax error: unmatched ')'"),
    ("'abc", "syntax error: unterminated string literal (detected at line 1)"),
    ("x\x00", "syntax error: source code string cannot contain null bytes"),
    ("s == '\ud800'", "expression cannot be parsed: UnicodeEncodeError"),
    ("x" * 2001, "expression is 2001 characters long; the limit is 2000"),
    ("(" * 33 + "x" + ")" * 33, "brackets nested deeper than 32"),
    ("not " * 31 + "b", "expression nested deeper than 32"),
    ("b and " * 200 + "b", "expression has more than 400 parts"),
    ("9" * 400, "number is too large"),
    # forbidden constructs
    ("s.upper()", "attribute access not allowed"),
    ("x.real", "attribute access not allowed"),
    ("s[0]", "subscripts not allowed"),
    ("lambda: 1", "lambda not allowed"),
    ("(lambda: 1)()", "lambda not allowed"),
    ("(y := 1)", "assignment expressions (:=) not allowed"),
    ("f'{x}'", "f-strings not allowed"),
    ("[a for a in s]", "comprehensions not allowed"),
    ("{a for a in s}", "comprehensions not allowed"),
    ("{a: 1 for a in s}", "comprehensions not allowed"),
    ("(a for a in s)", "comprehensions not allowed"),
    ("x ** 2", "the ** operator not allowed"),
    ("x // 2", "the // operator not allowed"),
    ("x if b else y", "conditional expressions not allowed"),
    ("x is None", "`is` (use == or is_missing) not allowed"),
    ("x is not None", "`is not` (use != or is_missing) not allowed"),
    ("x in (1, 2)", "tuples not allowed"),
    ("x, y", "tuples not allowed"),
    ("{1: 2}", "dicts not allowed"),
    ("x in {1, 2}", "sets not allowed"),
    ("min(*s)", "starred arguments not allowed"),
    ("await x", "await not allowed"),
    ("+x", "unary + not allowed"),
    ("~x", "the ~ operator not allowed"),
    ("x @ y", "`MatMult` not allowed"),
    ("x << 1", "`LShift` not allowed"),
    ("x & 1", "`BitAnd` not allowed"),
    ("b'x'", "bytes literals are not allowed"),
    ("1j", "complex literals are not allowed"),
    ("...", "ellipsis literals are not allowed"),
]


@pytest.mark.parametrize(("text", "message"), ERROR_CASES, ids=[text[:40] for text, _ in ERROR_CASES])
def test_error_message(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text, NAMES)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert isinstance(caught.value, GuardrailsError)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x + 1", "a condition must be true or false, but this is a number"),
        ("s", "a condition must be true or false, but this is a string"),
        ("'yes'", "a condition must be true or false, but this is a string"),
    ],
)
def test_condition_must_be_a_bool(text: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_condition(text, NAMES)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("text", "col"),
    [
        ("outcome == 'aprove'", 11),
        ("x + 1 < 'a'", 0),
        ("x > 1 and s.upper", 10),
        ("(" * 33 + "x" + ")" * 33, 32),
        ("x = 1", 2),
        ("x in [1, y]", 9),
    ],
)
def test_error_column(text: str, col: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text, NAMES)
    assert caught.value.col == col


@pytest.mark.parametrize(
    "text",
    [
        "x" + " " * 1999,  # exactly the length limit
        "(" * 32 + "x" + ")" * 32,  # exactly the bracket limit
        "not " * 30 + "b",  # exactly the tree-depth limit
        "b and " * 190 + "b",  # just under the node limit
        "9" * 308,  # a large integer that is still a finite float
        "x in [" + ", ".join(["1"] * 150) + "]",
    ],
    ids=["length", "brackets", "depth", "nodes", "big-int", "long-list"],
)
def test_limits_are_inclusive(text: str) -> None:
    parse_expression(text, NAMES)


HOSTILE: list[tuple[str, str]] = [
    ('__import__("os").system("id")', "attribute access not allowed"),
    ("().__class__.__bases__", "attribute access not allowed"),
    ("().__class__.__bases__[0].__subclasses__()", "attribute access not allowed"),
    ("__import__('os')", f"unknown function `__import__`; the functions are: {FUNCTIONS}"),
    ("eval('1')", f"unknown function `eval`; the functions are: {FUNCTIONS}"),
    ("9**9**9", "the ** operator not allowed"),
    ('"a" * 10**9', "the ** operator not allowed"),
    ("(" * 10_000 + "x" + ")" * 10_000, "expression is 20001 characters long; the limit is 2000"),
    ("(" * 900 + "x" + ")" * 900, "brackets nested deeper than 32"),
    ("1" * (1 << 20), "expression is 1048576 characters long; the limit is 2000"),
    ("x + " * (1 << 18) + "x", "expression is 1048577 characters long; the limit is 2000"),
    ("lambda: __import__('os').system('id')", "lambda not allowed"),
    ("(z := __import__('os'))", "assignment expressions (:=) not allowed"),
    ("not " * 475 + "b", "expression nested deeper than 32"),
    ("-(" * 600 + "x" + ")" * 600, "brackets nested deeper than 32"),
    ("-" * 1999 + "x", "expression nested deeper than 32"),
    ("- " * 999 + "x", "expression nested deeper than 32"),
    ("x" + " + x" * 499, "expression nested deeper than 32"),
    ("min(" + "x, " * 600 + "x)", "expression has more than 400 parts"),
    # closing brackets inside a string let the bracket count go negative; the parser
    # and the tree-depth check still stop it
    ("')" + ")" * 300 + "' == s or " + "(" * 300 + "b" + ")" * 300, "syntax error: too many nested parentheses"),
    ("')" + ")" * 400 + "' == s or " + "-(" * 150 + "x" + ")" * 150 + " > 0", "expression nested deeper than 32"),
    ("9" * 1999, "number is too large"),
    ("1" + "0" * 400, "number is too large"),
    ("0x" + "f" * 1990, "number is too large"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE, ids=[f"{text[:30]}...{len(text)}" for text, _ in HOSTILE])
def test_hostile_expression_is_rejected_quickly(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text, NAMES)
    assert time.perf_counter() - start < 1.0
    assert caught.value.message == message


def _would_create(path: Path) -> list[str]:
    p = str(path)
    return [
        f"open({p!r}, 'w')",
        f"open({p!r}, 'w').write('x')",
        f"__import__('pathlib').Path({p!r}).touch()",
        f"exec(\"open({p!r}, 'w')\")",
        f"(lambda: open({p!r}, 'w'))()",
        f"[open({p!r}, 'w') for _ in [1]]",
        f"__builtins__['open']({p!r}, 'w')",
        f"x > 0 and open({p!r}, 'w')",
        f"abs(open({p!r}, 'w'))",
    ]


def test_rejected_expressions_run_nothing(tmp_path: Path) -> None:
    sentinel = tmp_path / "sentinel"
    for text in _would_create(sentinel):
        with pytest.raises(ExpressionError):
            parse_condition(text, NAMES)
        assert not sentinel.exists(), text


def test_no_function_of_the_host_is_ever_called(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def sentinel(*args: object) -> bool:
        calls.append(args)
        return True

    monkeypatch.setattr(builtins, "guardrails_sentinel", sentinel, raising=False)
    names = {**NAMES, "guardrails_sentinel": NameType("num")}
    for text in ["guardrails_sentinel()", "guardrails_sentinel(1) == 1", "x > 0 or guardrails_sentinel(x)"]:
        with pytest.raises(ExpressionError):
            parse_condition(text, names)
    # A name that shadows a host function is only ever read from the environment.
    expr = parse_condition("guardrails_sentinel > 1", names)
    assert compile_scalar(expr)({"guardrails_sentinel": 2.0}) is True
    assert list(compile_vector(expr)({"guardrails_sentinel": np.array([2.0, 0.0])}, 2)) == [True, False]
    assert calls == []


def test_negative_numbers_can_stand_in_a_list() -> None:
    tree = parse_condition("x in [-1, 2.5]", {"x": NameType("num")})
    assert isinstance(tree, In) and tree.values == (-1.0, 2.5)
