"""Times, filters, limits and cursors from option text: pure parsing, messages pinned."""

from __future__ import annotations

import pytest

from guardrails.audit.query import Filters, make_filters, parse_cursor, parse_limit
from guardrails.audit.times import iso, parse_duration, parse_time
from guardrails.errors import QueryError
from tests.audit.conftest import T0

NOW = T0 + 10 * 86_400_000  # 2026-01-11T00:00:00Z


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("15m", 900_000), ("2h", 7_200_000), ("7d", 604_800_000), (" 90d ", 7_776_000_000)],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text, "--interval") == ms


@pytest.mark.parametrize("text", ["0m", "15", "m", "1.5h", "-2h", "2w", "2 h", "", "9999999999d"])
def test_bad_durations_name_the_option_and_the_value(text: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_duration(text, "--interval")
    assert str(caught.value) == (
        f"--interval: {text!r} is not a duration; use a number and a unit (s, m, h, d), such as 15m"
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15m", NOW - 900_000),
        ("7d", NOW - 7 * 86_400_000),
        ("2026-01-01", T0),
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T00:00:00", T0),  # no offset: UTC
        ("2026-01-01T01:00:00+01:00", T0),
        ("2026-01-01T00:00:00.250Z", T0 + 250),
    ],
)
def test_times_relative_to_now_or_iso(text: str, ms: int) -> None:
    assert parse_time(text, NOW, "--since") == ms


def test_a_time_that_is_neither_is_named() -> None:
    with pytest.raises(QueryError) as caught:
        parse_time("yesterday", NOW, "--since")
    assert str(caught.value) == (
        "--since: 'yesterday' is neither a duration before now (15m, 2h, 7d) "
        "nor an ISO-8601 time (2026-01-31, 2026-01-31T12:00:00Z)"
    )


def test_iso_round_trips_to_the_millisecond() -> None:
    assert iso(T0) == "2026-01-01T00:00:00.000Z"
    assert iso(T0 + 86_399_999) == "2026-01-01T23:59:59.999Z"
    assert parse_time(iso(T0 + 123_456), NOW, "--since") == T0 + 123_456


def test_filters_from_text() -> None:
    filters = make_filters(
        now_ms=NOW, policy="p", outcome="decline", reason="R", rule="r", fallback="any", since="1d", until="1h"
    )
    assert filters == Filters("p", "decline", "R", "r", "any", NOW - 86_400_000, NOW - 3_600_000)
    assert make_filters(now_ms=NOW) == Filters()
    assert make_filters(now_ms=NOW, fallback="upstream_timeout").fallback == "upstream_timeout"


def test_an_unknown_fallback_cause_lists_the_causes() -> None:
    with pytest.raises(QueryError) as caught:
        make_filters(now_ms=NOW, fallback="timeout")
    assert str(caught.value) == (
        "--fallback: unknown cause 'timeout'; use one of input_invalid, upstream_timeout, upstream_error, "
        "upstream_unavailable, output_invalid, internal_error, score_drift, or any"
    )


def test_since_must_come_before_until() -> None:
    with pytest.raises(QueryError) as caught:
        make_filters(now_ms=NOW, prefix="", since="1h", until="2h")
    assert str(caught.value) == "since (2026-01-10T23:00:00.000Z) must be before until (2026-01-10T22:00:00.000Z)"


def test_limits_and_cursors() -> None:
    assert parse_limit("1", "limit") == 1
    assert parse_limit("1000", "limit") == 1000
    for text in ("0", "1001", "-1", "ten", ""):
        with pytest.raises(QueryError) as caught:
            parse_limit(text, "limit")
        assert str(caught.value) == f"limit: {text!r} is not a number from 1 to 1000"
    assert parse_cursor("12345") == 12345
    for text in ("abc", "-5", "1" * 19):
        with pytest.raises(QueryError) as caught:
            parse_cursor(text)
        assert str(caught.value) == f"cursor: {text!r} is not a cursor this server gave out"
