"""The `when:` expression language: parse and type-check text into a small typed tree.

The text is parsed with the stdlib `ast` module and every node is checked against a
whitelist before anything else looks at it; nothing here (or anywhere) passes user text to
`eval`, `exec` or `compile`. Length, bracket depth, tree depth and node count are capped
before any recursive step, so hostile input is a clear `ExpressionError`, never a
`RecursionError`, a hang or a huge allocation.

The typed tree (`Expr` and its subclasses) is what `expr_scalar` and `expr_vector`
compile; both follow the same semantics:

- numbers are 64-bit floats; a missing number is NaN, and so is any undefined result
  (`x / 0`, `x % 0`, `sqrt(-1)`, `log(-1)`);
- an ordering comparison (`<`, `<=`, `>`, `>=`) or `==` with a missing operand is false;
  `!=` is `not ==` and `not in` is `not in`, so they are true for a missing operand;
- a missing bool is false where a condition is expected;
- `x == null` is `is_missing(x)`.

Imports the stdlib only.
"""

from __future__ import annotations

import ast
import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from guardrails.errors import ExpressionError
from guardrails.policy.expr_tree import (
    Arith,
    BoolOp,
    Call,
    Compare,
    Const,
    Expr,
    In,
    IsMissing,
    Kind,
    ListLiteral,
    Name,
    Neg,
    Not,
    referenced_names,
    walk,
)

__all__ = [  # the typed tree is re-exported: callers import it from here
    "Arith",
    "BoolOp",
    "Call",
    "Compare",
    "Const",
    "Expr",
    "In",
    "IsMissing",
    "Kind",
    "ListLiteral",
    "Name",
    "NameType",
    "Neg",
    "Not",
    "parse_condition",
    "parse_expression",
    "referenced_names",
    "walk",
]


MAX_LENGTH = 2000
MAX_DEPTH = 32
MAX_NODES = 400

FUNCTION_ARITY: dict[str, tuple[int, int]] = {
    "abs": (1, 1),
    "min": (2, 16),
    "max": (2, 16),
    "log": (1, 1),
    "log1p": (1, 1),
    "exp": (1, 1),
    "sqrt": (1, 1),
    "clip": (3, 3),
    "is_missing": (1, 1),
    "len": (1, 1),
}
CONSTANT_NAMES: dict[str, bool | None] = {"true": True, "false": False, "null": None}

_COMPARE_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
_ARITH_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.Mod: "%",
}
_ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.BinOp,
    ast.Compare,
    ast.Call,
    ast.keyword,  # so that `_Typer` can say "takes no keyword arguments"
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.List,
    *_COMPARE_OPS,
    *_ARITH_OPS,
)
_NODE_WORDS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambda",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.JoinedStr: "f-strings",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Pow: "the ** operator",
    ast.FloorDiv: "the // operator",
    ast.IfExp: "conditional expressions",
    ast.Tuple: "tuples",
    ast.Dict: "dicts",
    ast.Set: "sets",
    ast.Starred: "starred arguments",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.Is: "`is` (use == or is_missing)",
    ast.IsNot: "`is not` (use != or is_missing)",
    ast.UAdd: "unary +",
    ast.Invert: "the ~ operator",
}


@dataclass(frozen=True, slots=True)
class NameType:
    """What the compiler knows of a name: its kind, allowed values, and whether it can be missing."""

    kind: Kind
    optional: bool = False
    domain: frozenset[str] | None = None


# ---- parsing ----------------------------------------------------------------------------


def parse_condition(text: str, names: Mapping[str, NameType]) -> Expr:
    """Parse and type-check `text` as a condition (a bool expression) over `names`."""
    expr = parse_expression(text, names)
    if expr.kind != "bool":
        raise ExpressionError(f"a condition must be true or false, but this is a {_KIND_WORD[expr.kind]}")
    return expr


def parse_expression(text: str, names: Mapping[str, NameType]) -> Expr:
    """Parse and type-check `text` as an expression of any kind over `names`."""
    flat = text.replace("\r", " ").replace("\n", " ")  # a YAML block scalar keeps its line breaks
    leading = len(flat) - len(flat.lstrip())
    try:
        tree = _parse_checked(flat.strip())
        result = _Typer(names).visit(tree.body)
    except ExpressionError as exc:
        raise ExpressionError(exc.message, exc.col + leading) from None
    if isinstance(result, ListLiteral):
        raise ExpressionError("a list can only stand on the right of `in` or `not in`")
    return result


def _parse_checked(text: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ExpressionError("expression is empty")
    _check_bracket_depth(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. an invalid escape: refused everywhere, not only under -W error
            tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        col = max((exc.offset or 1) - 1, 0)
        raise ExpressionError(f"syntax error: {exc.msg}", col) from None
    except (MemoryError, RecursionError, ValueError, Warning) as exc:
        raise ExpressionError(f"expression cannot be parsed: {type(exc).__name__}") from None
    _check_nodes(tree)
    return tree


def _check_bracket_depth(text: str) -> None:
    depth = 0
    for col, char in enumerate(text):
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(f"brackets nested deeper than {MAX_DEPTH}", col)
        elif char in ")]}":
            depth -= 1


def _check_nodes(tree: ast.Expression) -> None:
    """Walk iteratively: every node allowed, tree depth and node count capped."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}", _col(node))
        if not isinstance(node, _ALLOWED_NODES):
            raise ExpressionError(f"{_describe(node)} not allowed", _col(node))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _describe(node: ast.AST) -> str:
    for node_type, words in _NODE_WORDS.items():
        if isinstance(node, node_type):
            return words
    return f"`{type(node).__name__}`"


def _col(node: ast.AST) -> int:
    return int(getattr(node, "col_offset", 0))


_KIND_WORD: dict[str, str] = {"num": "number", "str": "string", "bool": "true/false value"}


class _Typer:
    """Turn a whitelisted `ast` tree into the typed tree, checking kinds and names.

    Recursion is safe here: `_check_nodes` has already capped the depth at MAX_DEPTH.
    """

    def __init__(self, names: Mapping[str, NameType]) -> None:
        self.names = names

    def visit(self, node: ast.expr) -> Expr | ListLiteral:
        method = getattr(self, f"_visit_{type(node).__name__}")
        result: Expr | ListLiteral = method(node)
        return result

    def expr(self, node: ast.expr) -> Expr:
        result = self.visit(node)
        if isinstance(result, ListLiteral):
            raise ExpressionError("a list can only stand on the right of `in` or `not in`", _col(node))
        return result

    def expect(self, node: ast.expr, kind: Kind, what: str) -> Expr:
        result = self.expr(node)
        if result.kind != kind:
            raise ExpressionError(f"{what} needs a {_KIND_WORD[kind]}, got a {_KIND_WORD[result.kind]}", _col(node))
        return result

    def _visit_Constant(self, node: ast.Constant) -> Expr:
        value = node.value
        if value is None:
            raise ExpressionError("null can only be compared with == or != (or use is_missing)", _col(node))
        if isinstance(value, bool):
            return Const("bool", value)
        if isinstance(value, int | float) and not isinstance(value, complex):
            try:
                number = float(value)
            except OverflowError:
                raise ExpressionError("number is too large", _col(node)) from None
            return Const("num", number)
        if isinstance(value, str):
            return Const("str", value)
        raise ExpressionError(f"{type(value).__name__} literals are not allowed", _col(node))

    def _visit_Name(self, node: ast.Name) -> Expr:
        if node.id in CONSTANT_NAMES:
            value = CONSTANT_NAMES[node.id]
            if value is None:
                raise ExpressionError("null can only be compared with == or != (or use is_missing)", _col(node))
            return Const("bool", value)
        info = self.names.get(node.id)
        if info is None:
            raise ExpressionError(_unknown_name_message(node.id, self.names), _col(node))
        return Name(info.kind, node.id, info.optional)

    def _visit_List(self, node: ast.List) -> ListLiteral:
        values: list[float | str | bool] = []
        kinds: set[Kind] = set()
        for element in node.elts:
            item = self.expr(element)
            if isinstance(item, Neg) and isinstance(item.operand, Const) and item.operand.kind == "num":
                item = Const("num", -float(item.operand.value))  # `-1` parses as minus applied to 1
            if not isinstance(item, Const):
                raise ExpressionError("list items must be literal values", _col(element))
            values.append(item.value)
            kinds.add(item.kind)
        if len(kinds) > 1:
            raise ExpressionError("list items must all be of one kind", _col(node))
        return ListLiteral(tuple(values), kinds.pop() if kinds else None)

    def _visit_UnaryOp(self, node: ast.UnaryOp) -> Expr:
        if isinstance(node.op, ast.Not):
            return Not("bool", self.expect(node.operand, "bool", "`not`"))
        return Neg("num", self.expect(node.operand, "num", "unary -"))

    def _visit_BinOp(self, node: ast.BinOp) -> Expr:
        op = _ARITH_OPS[type(node.op)]
        left = self.expect(node.left, "num", f"`{op}`")
        right = self.expect(node.right, "num", f"`{op}`")
        return Arith("num", op, left, right)

    def _visit_BoolOp(self, node: ast.BoolOp) -> Expr:
        op: Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
        operands = [self.expect(value, "bool", f"`{op}`") for value in node.values]
        # Fold right: a and (b and c), so the short-circuit order is the text's order.
        result = operands[-1]
        for operand in reversed(operands[:-1]):
            result = BoolOp("bool", op, operand, result)
        return result

    def _visit_Compare(self, node: ast.Compare) -> Expr:
        parts: list[Expr] = []
        left_node = node.left
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self._comparison(_COMPARE_OPS[type(op_node)], left_node, right_node))
            left_node = right_node
        result = parts[-1]
        for part in reversed(parts[:-1]):
            result = BoolOp("bool", "and", part, result)
        return result

    def _comparison(self, op: str, left_node: ast.expr, right_node: ast.expr) -> Expr:
        if op in ("in", "not in"):
            return self._membership(op, left_node, right_node)
        if op in ("==", "!=") and (_is_null(left_node) or _is_null(right_node)):
            other = right_node if _is_null(left_node) else left_node
            if _is_null(other):
                raise ExpressionError("comparing null with null is always the same", _col(left_node))
            missing = IsMissing("bool", self.expr(other))
            return missing if op == "==" else Not("bool", missing)
        left, right = self.expr(left_node), self.expr(right_node)
        if left.kind != right.kind:
            raise ExpressionError(
                f"cannot compare a {_KIND_WORD[left.kind]} with a {_KIND_WORD[right.kind]}",
                _col(left_node),
            )
        if op not in ("==", "!=") and left.kind != "num":
            raise ExpressionError(f"`{op}` needs numbers, got {_KIND_WORD[left.kind]}s", _col(left_node))
        self._check_domain(left, right, right_node)
        self._check_domain(right, left, left_node)
        return Compare("bool", op, left, right)

    def _membership(self, op: str, left_node: ast.expr, right_node: ast.expr) -> Expr:
        operand = self.expr(left_node)
        values = self.visit(right_node)
        if not isinstance(values, ListLiteral):
            raise ExpressionError(f'the right of `{op}` must be a list such as ["a", "b"]', _col(right_node))
        if values.kind is not None and values.kind != operand.kind:
            raise ExpressionError(
                f"cannot look for a {_KIND_WORD[operand.kind]} in a list of {_KIND_WORD[values.kind]}s",
                _col(right_node),
            )
        for value in values.values:
            self._check_domain(operand, Const("str", value), right_node)
        return In("bool", operand, values.values, op == "not in")

    def _check_domain(self, name: Expr, other: Expr, at: ast.expr) -> None:
        """`outcome == "aprove"` can never be true: say so at load time."""
        if not (isinstance(name, Name) and isinstance(other, Const) and isinstance(other.value, str)):
            return
        domain = self.names[name.name].domain
        if domain is not None and other.value not in domain:
            allowed = ", ".join(sorted(domain))
            raise ExpressionError(f"`{name.name}` is never {other.value!r}; its values are: {allowed}", _col(at))

    def _visit_Call(self, node: ast.Call) -> Expr:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError("only the listed functions can be called", _col(node))
        func = node.func.id
        if func not in FUNCTION_ARITY:
            known = ", ".join(sorted(FUNCTION_ARITY))
            raise ExpressionError(f"unknown function `{func}`; the functions are: {known}", _col(node))
        if node.keywords:
            raise ExpressionError(f"`{func}` takes no keyword arguments", _col(node))
        low, high = FUNCTION_ARITY[func]
        if not low <= len(node.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            noun = "argument" if wanted == "1" else "arguments"
            raise ExpressionError(f"`{func}` takes {wanted} {noun}, got {len(node.args)}", _col(node))
        if func == "is_missing":
            return IsMissing("bool", self.expr(node.args[0]))
        if func == "len":
            return Call("num", func, (self.expect(node.args[0], "str", "`len`"),))
        args = tuple(self.expect(arg, "num", f"`{func}`") for arg in node.args)
        return Call("num", func, args)


def _is_null(node: ast.expr) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (isinstance(node, ast.Name) and node.id == "null")


def _unknown_name_message(name: str, names: Mapping[str, NameType]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown name `{name}`{hint}"
