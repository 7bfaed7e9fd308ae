"""The hash chain that makes the audit log tamper-evident, and its verification.

hash(n) = SHA-256(prev_hash(n) | seq(n) | canonical JSON of record n), and prev_hash(n)
is hash(n - 1) (the anchor after a prune, GENESIS at the start). Editing, deleting,
inserting or reordering a record breaks the chain at that record. A chain cannot see its
newest records cut off: a checkpoint (seq and hash kept elsewhere) can.

Pure: imports the stdlib and msgspec only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.audit.record import AuditRecord

GENESIS = "0" * 64
_decode_record = msgspec.json.Decoder(AuditRecord).decode


def chain_hash(prev_hash: str, seq: int, record_json: bytes) -> str:
    return hashlib.sha256(b"%s|%d|%s" % (prev_hash.encode(), seq, record_json)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One stored row as verification reads it."""

    seq: int
    decision_id: str
    record_json: bytes
    prev_hash: str
    hash: str
    columns: tuple[Any, ...]  # what queries read: must say what the record says


def decision_columns(record: AuditRecord) -> tuple[Any, ...]:
    """The `decisions` table's queried columns, in its order: what the store writes beside the record."""
    r = record
    return (r.decision_id, r.ts_ms, r.policy, r.policy_version, r.kind, r.outcome, r.fallback, r.request_id)


def record_columns(record: AuditRecord) -> tuple[Any, ...]:
    """The queried columns a record implies (decisions columns, then reasons and rules, sorted)."""
    return (
        *decision_columns(record),
        tuple(sorted(set(record.reasons))),  # stored once each, however often the record lists one
        tuple(sorted({f"{rule.name}:{rule.mode}" for rule in record.rules})),
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    count: int
    head_seq: int | None
    head_hash: str
    problem: str | None = None
    seq: int | None = None
    decision_id: str | None = None


def verify_rows(rows: Iterable[ChainRow], anchor_seq: int, anchor_hash: str) -> Verdict:
    """Walk the rows in seq order from the anchor; stop at the first that breaks the chain."""
    expected_seq, expected_prev = anchor_seq + 1, anchor_hash
    count = 0
    for row in rows:
        problem = _problem(row, expected_seq, expected_prev)
        if problem is not None:
            return Verdict(False, count, expected_seq - 1, expected_prev, problem, row.seq, row.decision_id)
        count += 1
        expected_seq, expected_prev = row.seq + 1, row.hash
    return Verdict(True, count, expected_seq - 1 if count or anchor_seq else None, expected_prev)


def _problem(row: ChainRow, expected_seq: int, expected_prev: str) -> str | None:
    if row.seq != expected_seq:
        what = "deleted" if row.seq > expected_seq else "inserted or reordered"
        return f"record {expected_seq} is missing (records were {what}); found {row.seq} instead"
    if row.prev_hash != expected_prev:
        return f"record {row.seq} does not follow record {row.seq - 1} (deleted, inserted or reordered)"
    if chain_hash(row.prev_hash, row.seq, row.record_json) != row.hash:
        return f"record {row.seq} was altered: its content does not match its hash"
    if _columns_of(row.record_json) != row.columns:
        return f"record {row.seq} was altered: its indexed columns do not match its content"
    return None


def _columns_of(record_json: bytes) -> tuple[Any, ...] | None:
    try:
        return record_columns(_decode_record(record_json))
    except msgspec.DecodeError:
        return None
