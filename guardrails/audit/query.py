"""Audit queries over the SQLite store: filters, newest-first pages with cursors, and export.

The SQL is built by pure functions (`select_sql`, `where_clause`); the functions that run
it take an open sqlite3 connection (the store's `reader()`), so the CLI and the HTTP
handlers ask the same questions the same way.

How the indexes answer: every filter has an index ending in `seq` ((outcome, seq),
(reason, seq), ...), so a filtered, newest-first page is one backwards index range that
stops after `limit` rows. A time bound would need a second range on another column; instead
it becomes a seq range, found with two seeks on the (ts_ms) index, because timestamps never
fall along the log (one writer stamps and queues each record in order). The store notes
in `meta` a record stamped earlier than the one before it (the wall clock stepped back);
from then on time bounds are plain filters, still exact, only slower.
The time filters themselves are always applied, so the seq range only ever narrows the scan.

Imports the stdlib, msgspec and the audit modules only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.audit.record import StoredRecord
from guardrails.audit.sqlite import stored
from guardrails.audit.times import iso, parse_time
from guardrails.decide import CAUSES
from guardrails.errors import QueryError

ANY_FALLBACK = "any"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000  # over HTTP; the CLI takes any limit

Row = tuple[int, str, str, bytes]  # seq, prev_hash, hash, the record's JSON


@dataclass(frozen=True, slots=True)
class Filters:
    """What a query keeps; None keeps everything. Times are ms since the epoch, `until` exclusive."""

    policy: str | None = None
    outcome: str | None = None
    reason: str | None = None
    rule: str | None = None
    fallback: str | None = None  # a cause, or "any" for every fallback
    since_ms: int | None = None
    until_ms: int | None = None


def make_filters(
    *,
    now_ms: int,
    prefix: str = "--",
    policy: str | None = None,
    outcome: str | None = None,
    reason: str | None = None,
    rule: str | None = None,
    fallback: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Filters:
    """Filters from option text; errors name the option as `prefix` + name (`--since`, `since`)."""
    if fallback is not None and fallback != ANY_FALLBACK and fallback not in CAUSES:
        raise QueryError(f"{prefix}fallback: unknown cause {fallback!r}; use one of {', '.join(CAUSES)}, or any")
    since_ms = None if since is None else parse_time(since, now_ms, f"{prefix}since")
    until_ms = None if until is None else parse_time(until, now_ms, f"{prefix}until")
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise QueryError(f"{prefix}since ({iso(since_ms)}) must be before {prefix}until ({iso(until_ms)})")
    return Filters(policy, outcome, reason, rule, fallback, since_ms, until_ms)


def parse_limit(text: str, option: str, maximum: int = MAX_LIMIT) -> int:
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise QueryError(f"{option}: {text!r} is not a number from 1 to {maximum}")
    return int(text)


def parse_cursor(text: str, option: str = "cursor") -> int:
    """A cursor is the seq of the last record of the previous page; opaque to callers."""
    if not text.isdigit() or len(text) > 18:
        raise QueryError(f"{option}: {text!r} is not a cursor this server gave out")
    return int(text)


# ---- SQL, built purely ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeqRange:
    """The seq range the time bounds select; `empty` when no record can match."""

    low: int | None = None
    high: int | None = None
    empty: bool = False


_DRIVERS = {"reason": ("decision_reasons", "reason"), "rule": ("decision_rules", "rule")}


def _driver(filters: Filters) -> str | None:
    """A rule or reason filter drives the scan from its own (value, seq) index: a rule first,
    since most decisions fire none, while every decision has a reason."""
    if filters.rule is not None:
        return "rule"
    if filters.reason is not None:
        return "reason"
    return None


def where_clause(filters: Filters, seqs: SeqRange, driver: str | None) -> tuple[list[str], list[Any]]:
    """The conditions and their parameters; `driver` is the table aliased `x` that leads the scan, if any."""
    key = "x.seq" if driver else "d.seq"
    terms: list[str] = []
    params: list[Any] = []
    for name in ("reason", "rule"):
        value = getattr(filters, name)
        if value is None:
            continue
        table, column = _DRIVERS[name]
        if name == driver:
            terms.append(f"x.{column} = ?")
        else:
            terms.append(f"EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = ? AND t.seq = d.seq)")
        params.append(value)
    for column in ("policy", "outcome"):
        value = getattr(filters, column)
        if value is not None:
            terms.append(f"d.{column} = ?")
            params.append(value)
    if filters.fallback == ANY_FALLBACK:
        terms.append("d.fallback IS NOT NULL")
    elif filters.fallback is not None:
        terms.append("d.fallback = ?")
        params.append(filters.fallback)
    for term, value in (
        (f"{key} >= ?", seqs.low),
        (f"{key} <= ?", seqs.high),
        ("d.ts_ms >= ?", filters.since_ms),
        ("d.ts_ms < ?", filters.until_ms),
    ):
        if value is not None:
            terms.append(term)
            params.append(value)
    return terms, params


def select_sql(
    filters: Filters, seqs: SeqRange, *, newest_first: bool, limit: int | None = None, before: int | None = None
) -> tuple[str, list[Any]]:
    """SELECT seq, prev_hash, hash, record of the matching records, in seq order."""
    driver = _driver(filters)
    terms, params = where_clause(filters, seqs, driver)
    key = "x.seq" if driver else "d.seq"
    if before is not None:
        terms.append(f"{key} < ?")
        params.append(before)
    source = "decisions d"
    if driver is not None:
        # CROSS JOIN keeps the driver outermost; GROUP BY drops a record listing one reason twice.
        source = f"{_DRIVERS[driver][0]} x CROSS JOIN decisions d ON d.seq = x.seq"
    sql = f"SELECT d.seq, d.prev_hash, d.hash, d.record FROM {source}"
    if terms:
        sql += " WHERE " + " AND ".join(terms)
    if driver is not None:
        sql += f" GROUP BY {key}"
    sql += f" ORDER BY {key} {'DESC' if newest_first else 'ASC'}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


# ---- running it -------------------------------------------------------------------------


class Page(msgspec.Struct, frozen=True):
    """One page of records, newest first; `next_cursor` asks for the next (older) page."""

    records: list[StoredRecord]
    next_cursor: str | None


def times_ordered(connection: sqlite3.Connection) -> bool:
    """True when timestamps never fall along the log, so time bounds can be seq ranges."""
    return connection.execute("SELECT 1 FROM meta WHERE key = 'ts_out_of_order'").fetchone() is None


def seq_range(connection: sqlite3.Connection, filters: Filters) -> SeqRange:
    """The seqs of the records inside the time bounds, when timestamps are ordered (else no range)."""
    if (filters.since_ms is None and filters.until_ms is None) or not times_ordered(connection):
        return SeqRange()
    low = high = None
    if filters.since_ms is not None:
        row = connection.execute(
            "SELECT seq FROM decisions WHERE ts_ms >= ? ORDER BY ts_ms, seq LIMIT 1", (filters.since_ms,)
        ).fetchone()
        if row is None:
            return SeqRange(empty=True)
        low = int(row[0])
    if filters.until_ms is not None:
        row = connection.execute(
            "SELECT seq FROM decisions WHERE ts_ms < ? ORDER BY ts_ms DESC, seq DESC LIMIT 1", (filters.until_ms,)
        ).fetchone()
        if row is None:
            return SeqRange(empty=True)
        high = int(row[0])
    return SeqRange(low, high, empty=low is not None and high is not None and low > high)


def query(connection: sqlite3.Connection, filters: Filters, limit: int, cursor: int | None = None) -> Page:
    """The newest `limit` records matching `filters` older than the cursor (the seq of the last one seen)."""
    seqs = seq_range(connection, filters)
    if seqs.empty:
        return Page([], None)
    sql, params = select_sql(filters, seqs, newest_first=True, limit=limit + 1, before=cursor)
    rows = connection.execute(sql, params).fetchall()
    records = [stored(row) for row in rows[:limit]]
    more = len(rows) > limit
    return Page(records, str(records[-1].seq) if more else None)


def export_rows(connection: sqlite3.Connection, filters: Filters) -> Iterator[Row]:
    """Every matching record, oldest first, as stored (the record's JSON untouched)."""
    seqs = seq_range(connection, filters)
    if seqs.empty:
        return
    sql, params = select_sql(filters, seqs, newest_first=False)
    for seq, prev_hash, hash_, record in connection.execute(sql, params):
        yield int(seq), str(prev_hash), str(hash_), bytes(record)


def plan(connection: sqlite3.Connection, filters: Filters, limit: int = DEFAULT_LIMIT) -> list[str]:
    """EXPLAIN QUERY PLAN of a page query: which indexes answer it (for tests and curious operators)."""
    seqs = seq_range(connection, filters)
    if seqs.empty:
        return ["no record in the time range: nothing to scan"]
    sql, params = select_sql(filters, seqs, newest_first=True, limit=limit + 1)
    return [str(row[3]) for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params)]
