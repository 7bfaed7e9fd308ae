"""Times in audit queries: `15m`, `2h`, `7d` before now, or an ISO-8601 time; and back to text.

Pure: the current time is passed in as `now_ms`. Imports the stdlib only (and errors).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from guardrails.errors import QueryError

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^([0-9]{1,9})([smhd])$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def parse_duration(text: str, option: str) -> int:
    """`15m`, `2h`, `7d` (or `30s`) in milliseconds; `option` names the flag in the error."""
    match = _DURATION.match(text.strip())
    if match is None or int(match[1]) == 0:
        raise QueryError(f"{option}: {text!r} is not a duration; use a number and a unit (s, m, h, d), such as 15m")
    return int(match[1]) * UNIT_MS[match[2]]


def parse_time(text: str, now_ms: int, option: str) -> int:
    """A time in milliseconds since the epoch: a duration before `now_ms`, or ISO-8601 (UTC when no offset)."""
    stripped = text.strip()
    if _DURATION.match(stripped):
        return now_ms - parse_duration(stripped, option)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise QueryError(
            f"{option}: {text!r} is neither a duration before now (15m, 2h, 7d) "
            "nor an ISO-8601 time (2026-01-31, 2026-01-31T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def iso(ts_ms: int) -> str:
    """Milliseconds since the epoch as ISO-8601 UTC, to the millisecond: 2026-01-31T12:00:00.123Z."""
    moment = _EPOCH + timedelta(milliseconds=ts_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
