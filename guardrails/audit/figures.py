"""Pure: label figures of decisions with outcomes fed back, and shadow comparison results; their text.

Shared by `guardrails audit stats --feedback/--compare` (guardrails.audit.outcomes reads the
audit log) and by `guardrails replay` (a candidate's outcomes on the labelled records).
Imports the stdlib and msgspec only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec


class Transition(msgspec.Struct, frozen=True):
    live: str
    shadow: str
    count: int


class ShadowComparison(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    shadow: str
    compared: int
    agreement: float | None
    transitions: list[Transition]


class OutcomeLabels(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    decisions: int
    labelled: int
    labels: dict[str, int]


class Boundary(msgspec.Struct, frozen=True, kw_only=True):
    flagged_from: str  # this outcome and every more restrictive one count as flagged
    precision: float | None
    recall: float | None


class FeedbackFigures(msgspec.Struct, frozen=True, kw_only=True):
    policy: str
    positive: str
    labelled: int
    outcomes: list[OutcomeLabels]
    boundaries: list[Boundary]


def label_figures(
    policy: str,
    outcomes: Sequence[str],
    positive: str,
    totals: dict[str, int],
    labelled: Iterable[tuple[str, str]],
) -> FeedbackFigures:
    """The figures from per-outcome totals and (outcome, label) pairs of the labelled decisions."""
    pairs = Counter(labelled)
    order = list(outcomes) + sorted(set(totals) - set(outcomes))
    per_outcome = [
        OutcomeLabels(
            outcome=outcome,
            decisions=totals.get(outcome, 0),
            labelled=sum(n for (o, _), n in pairs.items() if o == outcome),
            labels={label: n for (o, label), n in sorted(pairs.items()) if o == outcome},
        )
        for outcome in order
    ]
    positives = sum(n for (_, label), n in pairs.items() if label == positive)
    boundaries = []
    for k in range(1, len(outcomes)):
        flagged = set(outcomes[k:])
        flagged_count = sum(n for (o, _), n in pairs.items() if o in flagged)
        hits = sum(n for (o, label), n in pairs.items() if o in flagged and label == positive)
        boundaries.append(
            Boundary(
                flagged_from=outcomes[k],
                precision=hits / flagged_count if flagged_count else None,
                recall=hits / positives if positives else None,
            )
        )
    return FeedbackFigures(
        policy=policy,
        positive=positive,
        labelled=sum(pairs.values()),
        outcomes=per_outcome,
        boundaries=boundaries,
    )


def comparison_text(result: ShadowComparison) -> str:
    share = "n/a" if result.agreement is None else f"{result.agreement:.1%}"
    lines = [f"{result.policy} vs shadow {result.shadow}: {result.compared} decisions compared, {share} agree"]
    lines.append(f"  {'live':<16}{'shadow':<16}{'count':>8}")
    lines += [f"  {t.live:<16}{t.shadow:<16}{t.count:>8}" for t in result.transitions]
    return "\n".join(lines) + "\n"


def figures_text(result: FeedbackFigures) -> str:
    lines = [f"{result.policy}: {result.labelled} labelled decisions (positive class: {result.positive})"]
    lines.append(f"  {'outcome':<16}{'decisions':>10}{'labelled':>10}  labels")
    for row in result.outcomes:
        mix = ", ".join(f"{label}: {n}" for label, n in row.labels.items()) or "-"
        lines.append(f"  {row.outcome:<16}{row.decisions:>10}{row.labelled:>10}  {mix}")
    for b in result.boundaries:
        precision = "n/a" if b.precision is None else f"{b.precision:.3f}"
        recall = "n/a" if b.recall is None else f"{b.recall:.3f}"
        lines.append(f"  flagged from {b.flagged_from}: precision {precision}, recall {recall}")
    return "\n".join(lines) + "\n"
