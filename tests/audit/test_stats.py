"""Counts and rates by each key, over the whole range and per interval, against a brute-force count."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

import pytest

from guardrails.audit import render
from guardrails.audit.query import Filters
from guardrails.audit.sqlite import closing, connect
from guardrails.audit.stats import BY_KEYS, Stats, stats
from guardrails.audit.times import iso
from tests.audit.conftest import T0, BigLog, SmallLog, Summary

DAY = 86_400_000


def keys(row: Summary, by: str) -> set[str]:
    """The keys a record counts under (once each)."""
    if by == "outcome":
        return {"(rejected)" if row.kind == "rejected" else str(row.outcome)}
    if by == "fallback":
        return {row.fallback or "(none)"}
    if by == "policy_version":
        return {row.policy_version}
    if by == "reason":
        return set(row.reasons) or {"(none)"}
    return {f"{name} (shadow)" if mode == "shadow" else name for name, mode in row.rules} or {"(none)"}


def brute(rows: list[Summary], by: str, f: Filters, interval: int | None) -> dict[int | None, tuple[int, Counter[str]]]:
    totals: Counter[int | None] = Counter()
    counts: dict[int | None, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if f.policy is None and row.kind == "shadow":
            continue
        if f.policy is not None and row.policy != f.policy:
            continue
        if (f.since_ms is not None and row.ts_ms < f.since_ms) or (f.until_ms is not None and row.ts_ms >= f.until_ms):
            continue
        bucket = None if interval is None else row.ts_ms // interval * interval
        totals[bucket] += 1
        counts[bucket].update(keys(row, by))
    return {bucket: (total, counts[bucket]) for bucket, total in totals.items()}


def as_dict(result: Stats) -> dict[int | None, tuple[int, Counter[str]]]:
    found = {}
    for bucket in result.buckets:
        found[bucket.start_ms] = (bucket.total, Counter({g.key: g.count for g in bucket.groups}))
        for group in bucket.groups:
            assert group.rate == round(group.count / bucket.total, 6)
        assert [g.count for g in bucket.groups] == sorted((g.count for g in bucket.groups), reverse=True)
    return found


@pytest.mark.parametrize("by", BY_KEYS)
@pytest.mark.parametrize(
    ("filters", "interval"),
    [
        (Filters(), None),
        (Filters(since_ms=T0 + 7 * DAY, until_ms=T0 + 14 * DAY), DAY),
        (Filters(policy="credit-risk", since_ms=T0 + 20 * DAY), 3_600_000),
        (Filters(policy="credit-risk-next"), 5 * 60_000),
    ],
    ids=["everything", "a week by day", "a policy by hour", "a shadow policy by 5m"],
)
def test_stats_count_every_key_per_bucket(big_log: BigLog, by: str, filters: Filters, interval: int | None) -> None:
    with closing(connect(big_log.path, readonly=True)) as connection:
        started = time.perf_counter()
        result = stats(connection, by, filters, interval)
        elapsed = time.perf_counter() - started
    assert as_dict(result) == brute(big_log.rows, by, filters, interval)
    assert result.total == sum(bucket.total for bucket in result.buckets)
    starts = [b.start_ms or 0 for b in result.buckets]
    assert starts == sorted(starts)
    for bucket in result.buckets:
        assert bucket.start == (None if bucket.start_ms is None else iso(bucket.start_ms))
    assert elapsed < 5.0  # stats read every record in the range: linear, unlike a page of a query


def test_shadow_decisions_count_only_under_their_own_policy(big_log: BigLog) -> None:
    shadows = sum(row.kind == "shadow" for row in big_log.rows)
    assert shadows > 1000
    with closing(connect(big_log.path, readonly=True)) as connection:
        assert stats(connection, "outcome", Filters()).total == len(big_log.rows) - shadows
        mine = stats(connection, "outcome", Filters(policy="credit-risk-next")).total
    assert mine == sum(row.policy == "credit-risk-next" for row in big_log.rows)  # its shadows and rejections


def test_stats_of_the_small_log_as_a_table(small_log: SmallLog) -> None:
    with closing(connect(small_log.path, readonly=True)) as connection:
        result = stats(connection, "outcome", Filters())
        empty = stats(connection, "outcome", Filters(since_ms=T0 + 400 * DAY))
    assert render.stats_table(result) == (
        "OUTCOME     COUNT  RATE\n"
        "review      6      42.9%\n"
        "approve     5      35.7%\n"
        "decline     2      14.3%\n"
        "(rejected)  1      7.1%\n"
        "(all)       14\n"
    )
    assert empty.total == 0 and empty.buckets == []
    assert render.stats_table(empty) == "no matching records\n"
