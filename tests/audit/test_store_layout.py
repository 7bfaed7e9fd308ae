"""A store file written in the first layout is moved to the current one when opened, and keeps working.

The first layout kept reasons and rules in rowid tables with an index on `seq`, indexed every
record's `policy_version` and every `fallback` (NULL included). The current one drops what no
query needs, since every b-tree a record touches costs a page per commit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from guardrails.audit.query import Filters, query
from guardrails.audit.sqlite import SQLiteAuditStore, closing, connect
from guardrails.audit.verify import verify
from tests.audit.conftest import SmallLog

FIRST_LAYOUT = """
ALTER TABLE decision_reasons RENAME TO current_reasons;
ALTER TABLE decision_rules RENAME TO current_rules;
DROP INDEX decision_reasons_reason;
DROP INDEX decision_rules_rule;
CREATE TABLE decision_reasons (seq INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE INDEX decision_reasons_reason ON decision_reasons (reason, seq);
CREATE INDEX decision_reasons_seq ON decision_reasons (seq);
CREATE TABLE decision_rules (seq INTEGER NOT NULL, rule TEXT NOT NULL, mode TEXT NOT NULL);
CREATE INDEX decision_rules_rule ON decision_rules (rule, seq);
CREATE INDEX decision_rules_seq ON decision_rules (seq);
INSERT INTO decision_reasons SELECT seq, reason FROM current_reasons;
INSERT INTO decision_rules SELECT seq, rule, mode FROM current_rules;
DROP TABLE current_reasons;
DROP TABLE current_rules;
DROP INDEX decisions_fallback;
CREATE INDEX decisions_fallback ON decisions (fallback, seq);
CREATE INDEX decisions_version ON decisions (policy_version, seq);
"""


def _layout(path: Path) -> dict[str, str]:
    with closing(connect(path, readonly=True)) as connection:
        rows = connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    return {str(name): " ".join(str(sql).split()) for name, sql in rows}


def _rows(path: Path, table: str) -> list[tuple[object, ...]]:
    with closing(connect(path, readonly=True)) as connection:
        return sorted(connection.execute(f"SELECT * FROM {table}").fetchall())


def test_a_first_layout_file_is_moved_over_and_still_verifies(small_log: SmallLog) -> None:
    current = _layout(small_log.path)
    reasons, rules = _rows(small_log.path, "decision_reasons"), _rows(small_log.path, "decision_rules")
    assert rules, "the small log must fire a rule for this test to mean anything"
    twice = reasons[0]
    with closing(connect(small_log.path)) as connection:
        connection.executescript(FIRST_LAYOUT)
        connection.execute("INSERT INTO decision_reasons VALUES (?, ?)", twice)  # the first layout allowed a repeat
    old = _layout(small_log.path)
    assert "decisions_version" in old and "WITHOUT ROWID" not in old["decision_reasons"]
    assert verify(small_log.path).ok

    first = small_log.records[0]
    newer = msgspec.structs.replace(first, decision_id="0190c0de-0000-7000-8000-000000000001", ts_ms=10**13)
    store = SQLiteAuditStore(small_log.path)  # opening it moves it over
    asyncio.run(store.append([newer]))
    store.close()

    assert _layout(small_log.path) == current
    new_seq = len(small_log.records) + 1
    assert _rows(small_log.path, "decision_reasons") == sorted(reasons + [(new_seq, r) for r in set(newer.reasons)])
    assert _rows(small_log.path, "decision_rules") == sorted(rules + [(new_seq, u.name, u.mode) for u in newer.rules])
    assert verify(small_log.path).ok
    with closing(connect(small_log.path, readonly=True)) as connection:
        found = query(connection, Filters(reason=first.reasons[0]), limit=100).records
    assert [r.record.decision_id for r in found][:1] == [newer.decision_id]
    assert first.decision_id in [r.record.decision_id for r in found]
