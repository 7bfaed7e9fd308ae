"""Pure: decide many requests at once over numpy columns, with `decide`'s semantics exactly.

Used by batch requests and by replay of recorded traffic. Thresholds become one pass of
`where` from the last to the first; each rule is one vectorised condition evaluated with
the outcome column as it stands after the rules before it. `VectorDecisions.decision(i)`
rebuilds row i as the `Decision` that `decide` returns, which is how the two are tested
against each other.

No I/O, no clock, no randomness: imports the stdlib, numpy and the policy modules only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from guardrails.decide import Decision, RuleFired
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.expr_vector import Categorical, Column
from guardrails.scores import ScoreFields


@dataclass(frozen=True, slots=True)
class VectorDecisions:
    """Decisions for `rows` requests: outcome codes into `policy.outcomes`, and what fired."""

    policy: CompiledPolicy
    columns: Mapping[str, Column]
    outcome_codes: npt.NDArray[np.int16]
    threshold: npt.NDArray[np.int16]
    enforced: npt.NDArray[np.bool_]  # [rule, row]: an enforced rule that applied
    shadow: npt.NDArray[np.bool_]  # [rule, row]: a shadow rule that matched

    @property
    def rows(self) -> int:
        return len(self.outcome_codes)

    def outcomes(self) -> list[str]:
        names = self.policy.outcomes
        return [names[code] for code in self.outcome_codes.tolist()]

    def decision(self, i: int) -> Decision:
        """Row `i` as the Decision `decide` gives for it."""
        policy = self.policy
        threshold = int(self.threshold[i])
        reasons = [policy.thresholds[threshold].reason]
        fired: list[RuleFired] = []
        for r, rule in enumerate(policy.rules):
            if rule.shadow and self.shadow[r, i]:
                fired.append(RuleFired(rule.name, "shadow", rule.outcome, rule.reason))
            elif not rule.shadow and self.enforced[r, i]:
                reasons.append(rule.reason)
                fired.append(RuleFired(rule.name, "enforce", rule.outcome, rule.reason))
        label = self.columns["label"]
        assert isinstance(label, Categorical)
        code = int(label.codes[i])
        return Decision(
            policy=policy.name,
            policy_version=policy.version_id,
            outcome=policy.outcomes[int(self.outcome_codes[i])],
            reasons=reasons,
            rules=fired,
            score=_float_at(self.columns["score"], i),
            confidence=_float_at(self.columns["confidence"], i),
            margin=_float_at(self.columns["margin"], i),
            label=None if code < 0 else label.categories[code],
            threshold=threshold,
        )


def _float_at(column: Column, i: int) -> float:
    assert isinstance(column, np.ndarray)
    return float(column[i])


def decide_vector(policy: CompiledPolicy, columns: Mapping[str, Column], rows: int) -> VectorDecisions:
    """Decide `rows` requests given input and score columns (see `columns_from_records`)."""
    cols: dict[str, Column] = dict(columns)
    codes_of = {name: i for i, name in enumerate(policy.outcomes)}
    last = len(policy.thresholds) - 1
    threshold = np.full(rows, last, dtype=np.int16)
    for i in range(last - 1, -1, -1):
        when = policy.thresholds[i].when
        assert when is not None
        threshold = np.where(when.vector(cols, rows), np.int16(i), threshold)
    threshold_codes = np.array([codes_of[t.outcome] for t in policy.thresholds], dtype=np.int16)
    outcome = threshold_codes[threshold]
    enforced = np.zeros((len(policy.rules), rows), dtype=np.bool_)
    shadow = np.zeros((len(policy.rules), rows), dtype=np.bool_)
    stopped = np.zeros(rows, dtype=np.bool_)
    for r, rule in enumerate(policy.rules):
        cols["outcome"] = Categorical(outcome.astype(np.int32), policy.outcomes)
        matched = rule.when.vector(cols, rows)
        if rule.shadow:
            shadow[r] = matched
            continue
        applied = matched & ~stopped
        enforced[r] = applied
        outcome = np.where(applied, np.int16(codes_of[rule.outcome]), outcome)
        if rule.final:
            stopped |= applied
    return VectorDecisions(policy, cols, outcome, threshold, enforced, shadow)


def columns_from_records(
    policy: CompiledPolicy,
    inputs: Sequence[Mapping[str, Any]],
    fields: Sequence[ScoreFields],
) -> dict[str, Column]:
    """Columns for `decide_vector` from validated inputs and their score fields."""
    columns: dict[str, Column] = {}
    for f in policy.inputs.fields:
        values = [record.get(f.name) for record in inputs]
        if f.type == "str":
            columns[f.name] = Categorical.from_values(values)
        else:
            columns[f.name] = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    columns["score"] = np.array([s.score for s in fields], dtype=np.float64)
    columns["confidence"] = np.array([s.confidence for s in fields], dtype=np.float64)
    columns["margin"] = np.array([s.margin for s in fields], dtype=np.float64)
    columns["label"] = label_column(policy, [s.label for s in fields])
    return columns


def label_column(policy: CompiledPolicy, labels: Sequence[str | None]) -> Categorical:
    """The `label` column, with the policy's labels as its categories."""
    categories = policy.scores.labels or ()
    index = {label: i for i, label in enumerate(categories)}
    codes = np.array([-1 if label is None else index[label] for label in labels], dtype=np.int32)
    return Categorical(codes, tuple(categories))
