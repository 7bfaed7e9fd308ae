"""Audit statistics: counts and rates by outcome, reason, rule, fallback or policy version, optionally per interval.

A rate is a count over all the records of its bucket (the whole range when there is no
interval). A record can carry several reasons and fire several rules, so rates by reason
or rule can add up to more than 1; `(none)` counts the records with none. Rejected inputs
count under outcome `(rejected)`. A shadow policy's records count only when `--policy`
names it: otherwise every request would be counted once per policy that decided it.

Imports the stdlib, msgspec and the audit modules only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from guardrails.audit.query import Filters, SeqRange, seq_range, where_clause
from guardrails.audit.times import iso

BY_KEYS = ("outcome", "reason", "rule", "fallback", "policy_version")
NONE_KEY = "(none)"

# --by -> (a join, the group key, the count): a record counts once per key
_GROUPS: dict[str, tuple[str, str, str]] = {
    "outcome": ("", "CASE WHEN d.kind = 'rejected' THEN '(rejected)' ELSE d.outcome END", "count(*)"),
    "fallback": ("", f"coalesce(d.fallback, '{NONE_KEY}')", "count(*)"),
    "policy_version": ("", "d.policy_version", "count(*)"),
    "reason": (
        " LEFT JOIN decision_reasons x ON x.seq = d.seq",
        f"coalesce(x.reason, '{NONE_KEY}')",
        "count(DISTINCT d.seq)",
    ),
    "rule": (
        " LEFT JOIN decision_rules x ON x.seq = d.seq",
        f"CASE WHEN x.rule IS NULL THEN '{NONE_KEY}' WHEN x.mode = 'shadow' THEN x.rule || ' (shadow)' ELSE x.rule END",
        "count(DISTINCT d.seq)",
    ),
}


class Group(msgspec.Struct, frozen=True):
    key: str
    count: int
    rate: float


class Bucket(msgspec.Struct, frozen=True):
    """The records from `start` for one interval (the whole range when there is no interval)."""

    start: str | None
    start_ms: int | None
    total: int
    groups: list[Group]


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    by: str
    interval_ms: int | None
    policy: str | None
    since: str | None
    until: str | None
    total: int
    buckets: list[Bucket]


def stats_sql(by: str, filters: Filters, seqs: SeqRange, interval_ms: int | None) -> tuple[str, str, list[Any]]:
    """The grouped counts query, the bucket totals query, and their shared parameters."""
    join, key, count = _GROUPS[by]
    terms, params = where_clause(filters, seqs, None)
    if filters.policy is None:
        terms.append("d.kind != 'shadow'")
    where = (" WHERE " + " AND ".join(terms)) if terms else ""
    bucket = f"(d.ts_ms / {interval_ms}) * {interval_ms}" if interval_ms else "NULL"
    grouped = f"SELECT {bucket} AS bucket, {key} AS key, {count} FROM decisions d{join}{where} GROUP BY bucket, key"
    totals = f"SELECT {bucket} AS bucket, count(*) FROM decisions d{where} GROUP BY bucket"
    return grouped, totals, params


def stats(connection: sqlite3.Connection, by: str, filters: Filters, interval_ms: int | None = None) -> Stats:
    """Counts and rates of `by` among the records matching `filters`, per interval if given."""
    if by not in _GROUPS:
        raise ValueError(f"cannot group by {by!r}")
    seqs = seq_range(connection, filters)
    totals: dict[int | None, int] = {}
    counts: dict[int | None, list[tuple[str, int]]] = {}
    if not seqs.empty:
        grouped, totals_sql, params = stats_sql(by, filters, seqs, interval_ms)
        totals = {bucket: int(total) for bucket, total in connection.execute(totals_sql, params)}
        for bucket, key, count in connection.execute(grouped, params):
            counts.setdefault(bucket, []).append((str(key), int(count)))
    buckets = []
    for start in sorted(totals, key=lambda b: -1 if b is None else b):
        total = totals[start]
        groups = sorted(counts.get(start, []), key=lambda item: (-item[1], item[0]))
        buckets.append(
            Bucket(
                None if start is None else iso(start),
                start,
                total,
                [Group(key, count, round(count / total, 6)) for key, count in groups],
            )
        )
    return Stats(
        by=by,
        interval_ms=interval_ms,
        policy=filters.policy,
        since=None if filters.since_ms is None else iso(filters.since_ms),
        until=None if filters.until_ms is None else iso(filters.until_ms),
        total=sum(totals.values()),
        buckets=buckets,
    )
