"""Turn one row of model output into the score fields rules can read, or say why not.

A row is a single score or one probability per class. Derived fields:
`score` (the positive class's probability, or the single score), `confidence` (highest
class probability; max(s, 1 - s) for a single score), `margin` (top-1 minus top-2
probability) and `label` (the most probable class; missing without labels).
Missing, NaN, infinite or out-of-range output is reported, never guessed.

Pure: imports the stdlib and msgspec only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec


class ScoreFields(msgspec.Struct, frozen=True):
    score: float
    confidence: float
    margin: float
    label: str | None


@dataclass(frozen=True, slots=True)
class ScoreReader:
    """How a policy reads a row: class labels, which one is positive, the allowed range."""

    labels: tuple[str, ...] | None
    positive: str | None
    min: float
    max: float

    def read(self, row: Any) -> ScoreFields | str:
        """The score fields of `row`, or a message saying what is wrong with it."""
        if isinstance(row, list) and len(row) == 1 and (self.labels is None or len(self.labels) != 1):
            row = row[0]
        if _is_number(row):
            return self._single(_float(row))
        if isinstance(row, list) and row and all(_is_number(p) for p in row):
            return self._classes([_float(p) for p in row])
        return f"expected a score or a list of class probabilities, got {_describe(row)}"

    def _single(self, score: float) -> ScoreFields | str:
        problem = self._out_of_range(score)
        if problem:
            return problem
        if self.labels is not None and len(self.labels) > 2:
            return f"expected {len(self.labels)} class probabilities, got a single score"
        label = None
        if self.labels is not None and len(self.labels) == 2:
            positive = self.positive or self.labels[1]
            negative = self.labels[0] if positive == self.labels[1] else self.labels[1]
            label = positive if score >= 0.5 else negative
        other = 1.0 - score
        return ScoreFields(score, max(score, other), abs(score - other), label)

    def _classes(self, probabilities: list[float]) -> ScoreFields | str:
        if self.labels is None:
            return f"got {len(probabilities)} class probabilities but the policy names no `labels`"
        if len(probabilities) != len(self.labels):
            return f"expected {len(self.labels)} class probabilities, got {len(probabilities)}"
        for p in probabilities:
            problem = self._out_of_range(p)
            if problem:
                return problem
        ranked = sorted(probabilities, reverse=True)
        top = probabilities.index(ranked[0])
        score = probabilities[self.labels.index(self.positive)] if self.positive else ranked[0]
        return ScoreFields(score, ranked[0], ranked[0] - ranked[1], self.labels[top])

    def _out_of_range(self, value: float) -> str | None:
        if math.isnan(value):
            return "score is NaN"
        if math.isinf(value):
            return "score is infinite"
        if not self.min <= value <= self.max:
            return f"score {value} is outside [{self.min}, {self.max}]"
        return None


def _float(number: float) -> float:
    """`number` as a float; an integer past the float range (JSON allows it) is infinite."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an empty list" if not value else "a list with non-numbers"
    return f"{type(value).__name__} {str(value)[:40]!r}" if not isinstance(value, dict) else "an object"
