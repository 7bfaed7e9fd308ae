"""The typed tree of a `when:` expression: what `expr` produces and the two compilers read.

Imports the stdlib only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

Kind = Literal["num", "str", "bool"]


@dataclass(frozen=True, slots=True)
class Expr:
    kind: Kind


@dataclass(frozen=True, slots=True)
class Const(Expr):
    value: float | str | bool


@dataclass(frozen=True, slots=True)
class Name(Expr):
    name: str
    optional: bool


@dataclass(frozen=True, slots=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True, slots=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True, slots=True)
class Arith(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class BoolOp(Expr):
    op: Literal["and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class In(Expr):
    operand: Expr
    values: tuple[float | str | bool, ...]
    negate: bool


@dataclass(frozen=True, slots=True)
class IsMissing(Expr):
    operand: Expr


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class ListLiteral:
    """Only valid on the right of `in`; never a value on its own."""

    values: tuple[float | str | bool, ...]
    kind: Kind | None


def referenced_names(expr: Expr) -> set[str]:
    """Every name the expression reads."""
    return {node.name for node in walk(expr) if isinstance(node, Name)}


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of the typed tree, parents before children."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Neg | Not | IsMissing | In):
            stack.append(node.operand)
        elif isinstance(node, Arith | BoolOp | Compare):
            stack.extend((node.right, node.left))
        elif isinstance(node, Call):
            stack.extend(reversed(node.args))
