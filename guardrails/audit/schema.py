"""The audit store's tables and indexes, and moving a file written in an earlier layout to this one.

Every b-tree a record touches (a table, an index) costs a page written per commit, so the
layout keeps only what a query needs: indexes ending in `seq` for each filter (newest-first
pages are one backwards range), partial indexes for what is rare (fallbacks, request ids),
and reasons and rules clustered by `seq` (WITHOUT ROWID), with a (value, seq) index each.

Imports the stdlib only.
"""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    policy TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT,
    fallback TEXT,
    request_id TEXT,
    record BLOB NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_policy ON decisions (policy, seq);
CREATE INDEX IF NOT EXISTS decisions_outcome ON decisions (outcome, seq);
CREATE INDEX IF NOT EXISTS decisions_fallback ON decisions (fallback, seq) WHERE fallback IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts_ms);
CREATE INDEX IF NOT EXISTS decisions_request ON decisions (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS decisions_any_fallback ON decisions (seq) WHERE fallback IS NOT NULL;
CREATE TABLE IF NOT EXISTS decision_reasons (
    seq INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (seq, reason)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decision_reasons_reason ON decision_reasons (reason, seq);
CREATE TABLE IF NOT EXISTS decision_rules (
    seq INTEGER NOT NULL, rule TEXT NOT NULL, mode TEXT NOT NULL, PRIMARY KEY (seq, rule, mode)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decision_rules_rule ON decision_rules (rule, seq);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY,
    decision_id TEXT NOT NULL,
    label TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_decision ON feedback (decision_id, seq);
CREATE TABLE IF NOT EXISTS policy_versions (
    version_id TEXT PRIMARY KEY,
    policy TEXT NOT NULL,
    label TEXT,
    source TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL
);
"""

# The first layout also indexed every record's policy_version and every fallback (NULL included),
# and kept reasons and rules in rowid tables with an index on seq; moved over in one transaction.
_SET_ASIDE_LAYOUT_1 = """
DROP INDEX IF EXISTS decisions_version;
DROP INDEX IF EXISTS decisions_fallback;
ALTER TABLE decision_reasons RENAME TO decision_reasons_v1;
ALTER TABLE decision_rules RENAME TO decision_rules_v1;
DROP INDEX IF EXISTS decision_reasons_reason;
DROP INDEX IF EXISTS decision_rules_rule;
"""
_COPY_FROM_LAYOUT_1 = """
INSERT OR IGNORE INTO decision_reasons SELECT seq, reason FROM decision_reasons_v1;
INSERT OR IGNORE INTO decision_rules SELECT seq, rule, mode FROM decision_rules_v1;
DROP TABLE decision_reasons_v1;
DROP TABLE decision_rules_v1;
"""


def create_schema(connection: sqlite3.Connection) -> bool:
    """Create what is missing; True when a file in the first layout was moved to this one."""
    row = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'decision_reasons'").fetchone()
    if row is None or "WITHOUT ROWID" in row[0]:
        connection.executescript(SCHEMA)
        return False
    connection.executescript(f"BEGIN IMMEDIATE; {_SET_ASIDE_LAYOUT_1} {SCHEMA} {_COPY_FROM_LAYOUT_1} COMMIT;")
    return True
