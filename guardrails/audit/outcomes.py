"""How recorded outcomes compare: with a shadow policy's, and with the labels fed back later.

- `compare_shadow`: live outcome -> shadow outcome counts, and the share that agree.
- `feedback_figures`: per outcome, how many decisions have a label and the label mix; and,
  for each boundary between outcomes (least to most restrictive), precision and recall of
  the positive class when everything past the boundary counts as flagged.

The figures themselves are pure (guardrails.audit.figures), shared with `guardrails replay`
(a candidate's outcomes on the labelled records); here they are read with SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from guardrails.audit.figures import FeedbackFigures, ShadowComparison, Transition, label_figures
from guardrails.audit.query import Filters

LATEST_LABELS = """
SELECT f.decision_id, f.label FROM feedback f
WHERE f.seq = (SELECT max(g.seq) FROM feedback g WHERE g.decision_id = f.decision_id)
"""


def _window(filters: Filters, column: str) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if filters.since_ms is not None:
        clauses.append(f"{column} >= ?")
        params.append(filters.since_ms)
    if filters.until_ms is not None:
        clauses.append(f"{column} < ?")
        params.append(filters.until_ms)
    return "".join(f" AND {c}" for c in clauses), params


def compare_shadow(connection: sqlite3.Connection, policy: str, shadow: str, filters: Filters) -> ShadowComparison:
    where, params = _window(filters, "s.ts_ms")
    sql = f"""
        SELECT l.outcome, s.outcome, count(*) FROM decisions s
        JOIN decisions l ON l.decision_id = json_extract(s.record, '$.live_decision_id')
        WHERE s.kind = 'shadow' AND s.policy = ? AND l.policy = ?{where}
        GROUP BY l.outcome, s.outcome ORDER BY count(*) DESC, l.outcome, s.outcome
    """
    rows = connection.execute(sql, [shadow, policy, *params]).fetchall()
    transitions = [Transition(live, shade, count) for live, shade, count in rows]
    total = sum(t.count for t in transitions)
    agree = sum(t.count for t in transitions if t.live == t.shadow)
    return ShadowComparison(
        policy=policy,
        shadow=shadow,
        compared=total,
        agreement=agree / total if total else None,
        transitions=transitions,
    )


def feedback_figures(
    connection: sqlite3.Connection, policy: str, outcomes: Sequence[str], positive: str, filters: Filters
) -> FeedbackFigures:
    where, params = _window(filters, "d.ts_ms")
    totals = dict(
        connection.execute(
            f"SELECT d.outcome, count(*) FROM decisions d WHERE d.kind = 'decision' AND d.policy = ?{where} "
            "GROUP BY d.outcome",
            [policy, *params],
        ).fetchall()
    )
    labelled = connection.execute(
        f"SELECT d.outcome, l.label FROM decisions d JOIN ({LATEST_LABELS}) l ON l.decision_id = d.decision_id "
        f"WHERE d.kind = 'decision' AND d.policy = ?{where}",
        [policy, *params],
    ).fetchall()
    return label_figures(policy, outcomes, positive, totals, labelled)
