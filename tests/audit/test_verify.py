"""Tamper evidence: verify names the first record altered, deleted, inserted or reordered (each done with
sqlite3 directly); checkpoints catch a cut-off head; prune keeps the rest of the chain verifiable."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
import pytest

from guardrails.audit import render
from guardrails.audit.chain import chain_hash
from guardrails.audit.record import AuditRecord
from guardrails.audit.sqlite import SQLiteAuditStore, closing, connect
from guardrails.audit.verify import Checkpoint, Pruned, Report, checkpoint, prune, read_checkpoint, verify
from guardrails.errors import QueryError
from tests.audit.conftest import T0, SmallLog

COUNT = 14  # records in the small log; record i is stamped T0 + i seconds


def sql(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(connect(path)) as connection:
        connection.execute("BEGIN")
        for statement, params in statements:
            connection.execute(statement, params)
        connection.execute("COMMIT")


def row(path: Path, seq: int) -> tuple[str, str, bytes]:
    with closing(connect(path, readonly=True)) as connection:
        found = connection.execute("SELECT decision_id, hash, record FROM decisions WHERE seq = ?", (seq,)).fetchone()
    return str(found[0]), str(found[1]), bytes(found[2])


def failure(path: Path, checkpoint: Checkpoint | None = None) -> str:
    report = verify(path, checkpoint)
    assert not report.ok
    return render.verify_text(report)


def test_an_untouched_log_verifies(small_log: SmallLog) -> None:
    report = verify(small_log.path)
    assert report.ok
    assert (report.verdict.count, report.verdict.head_seq, report.anchor_seq) == (COUNT, COUNT, 0)
    assert render.verify_text(report) == f"ok: 14 records verified; head record 14, hash {row(small_log.path, 14)[1]}\n"


def test_an_edited_record_is_named(small_log: SmallLog) -> None:
    decision_id, _, record = row(small_log.path, 6)
    edited = record.replace(b'"LOW_RISK"', b'"UNCERTAIN"')
    assert edited != record
    sql(small_log.path, ("UPDATE decisions SET record = ? WHERE seq = 6", (edited,)))
    assert failure(small_log.path) == (
        f"FAILED: record 6 was altered: its content does not match its hash (decision {decision_id})\n"
    )


def test_an_edited_indexed_column_is_named(small_log: SmallLog) -> None:
    decision_id = row(small_log.path, 3)[0]
    sql(small_log.path, ("UPDATE decisions SET outcome = 'approve' WHERE seq = 3", ()))
    assert failure(small_log.path) == (
        f"FAILED: record 3 was altered: its indexed columns do not match its content (decision {decision_id})\n"
    )


def test_an_edited_reason_row_is_named(small_log: SmallLog) -> None:
    decision_id = row(small_log.path, 2)[0]
    edit = "UPDATE decision_reasons SET reason = 'APPROVED_BY_HAND' WHERE seq = 2 AND reason = "
    sql(small_log.path, (edit + "(SELECT min(reason) FROM decision_reasons WHERE seq = 2)", ()))
    assert failure(small_log.path) == (
        f"FAILED: record 2 was altered: its indexed columns do not match its content (decision {decision_id})\n"
    )


def test_a_deleted_record_is_named(small_log: SmallLog) -> None:
    next_id = row(small_log.path, 6)[0]
    sql(
        small_log.path,
        ("DELETE FROM decisions WHERE seq = 5", ()),
        ("DELETE FROM decision_reasons WHERE seq = 5", ()),
        ("DELETE FROM decision_rules WHERE seq = 5", ()),
    )
    assert failure(small_log.path) == (
        f"FAILED: record 5 is missing (records were deleted); found 6 instead (decision {next_id})\n"
    )


def test_a_forged_record_inserted_in_the_middle_is_caught(small_log: SmallLog) -> None:
    """The forger shifts every later record up one and chains the forgery correctly to record 7."""
    path = small_log.path
    _, hash_7, _ = row(path, 7)
    displaced_id = row(path, 8)[0]
    forged = msgspec.structs.replace(small_log.records[0], decision_id="forged", ts_ms=T0 + 7_500)
    forged_json = msgspec.json.encode(forged)
    statements: list[tuple[str, tuple[object, ...]]] = []
    for table in ("decisions", "decision_reasons", "decision_rules"):
        statements.append((f"UPDATE {table} SET seq = -seq WHERE seq >= 8", ()))
        statements.append((f"UPDATE {table} SET seq = 1 - seq WHERE seq < 0", ()))
    forged_row = (8, "forged", forged.ts_ms, forged.policy, forged.policy_version, "decision", forged.outcome)
    statements.append(
        (
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)",
            (*forged_row, forged.request_id, forged_json, hash_7, chain_hash(hash_7, 8, forged_json)),
        )
    )
    statements.append(("INSERT INTO decision_reasons VALUES (8, 'LOW_RISK')", ()))
    sql(path, *statements)
    assert failure(path) == (
        f"FAILED: record 9 does not follow record 8 (deleted, inserted or reordered) (decision {displaced_id})\n"
    )


def test_a_forged_record_appended_without_the_chain_is_caught(small_log: SmallLog) -> None:
    record_json = row(small_log.path, 14)[2]
    sql(
        small_log.path,
        (
            "INSERT INTO decisions SELECT 15, 'forged', ts_ms, policy, policy_version, kind, outcome, fallback, "
            "request_id, record, ?, ? FROM decisions WHERE seq = 14",
            ("f" * 64, chain_hash("f" * 64, 15, record_json)),
        ),
    )
    assert failure(small_log.path) == (
        "FAILED: record 15 does not follow record 14 (deleted, inserted or reordered) (decision forged)\n"
    )


def test_two_records_swapped_are_named(small_log: SmallLog) -> None:
    fifth_id = row(small_log.path, 5)[0]
    statements: list[tuple[str, tuple[object, ...]]] = []
    for table in ("decisions", "decision_reasons", "decision_rules"):
        statements += [
            (f"UPDATE {table} SET seq = -1 WHERE seq = 4", ()),
            (f"UPDATE {table} SET seq = 4 WHERE seq = 5", ()),
            (f"UPDATE {table} SET seq = 5 WHERE seq = -1", ()),
        ]
    sql(small_log.path, *statements)
    assert failure(small_log.path) == (
        f"FAILED: record 4 does not follow record 3 (deleted, inserted or reordered) (decision {fifth_id})\n"
    )


# ---- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_is_the_verified_head(small_log: SmallLog) -> None:
    head = checkpoint(small_log.path)
    assert head == Checkpoint(COUNT, row(small_log.path, COUNT)[1], COUNT)
    report = verify(small_log.path, head)
    assert report.ok
    assert render.verify_text(report).endswith("; the checkpoint's record 14 is in the log, unchanged\n")


def test_cutting_the_newest_records_fails_verify_with_a_checkpoint(small_log: SmallLog) -> None:
    head = checkpoint(small_log.path)
    assert isinstance(head, Checkpoint)
    sql(
        small_log.path,
        ("DELETE FROM decisions WHERE seq > 12", ()),
        ("DELETE FROM decision_reasons WHERE seq > 12", ()),
    )
    assert verify(small_log.path).ok  # a chain alone cannot see it
    assert failure(small_log.path, head) == (
        "FAILED: the log ends at record 12 but the checkpoint was taken at record 14: records 13 to 14 were cut off\n"
    )


def test_cutting_then_writing_past_the_checkpoint_fails_verify(small_log: SmallLog) -> None:
    head = checkpoint(small_log.path)
    assert isinstance(head, Checkpoint)
    sql(
        small_log.path,
        ("DELETE FROM decisions WHERE seq > 12", ()),
        ("DELETE FROM decision_reasons WHERE seq > 12", ()),
    )
    store = SQLiteAuditStore(small_log.path)  # a writer carries on from record 12
    replacements = [msgspec.structs.replace(r, decision_id=f"new-{i}") for i, r in enumerate(small_log.records[:3])]
    asyncio.run(store.append(replacements))
    store.close()
    new_hash = row(small_log.path, 14)[1]
    assert verify(small_log.path).ok
    assert failure(small_log.path, head) == (
        f"FAILED: record 14 is not the checkpoint's record: its hash is {new_hash}, the checkpoint's is {head.hash} "
        "(records were cut off and others written since)\n"
    )


def test_no_checkpoint_of_a_broken_chain(small_log: SmallLog) -> None:
    sql(small_log.path, ("UPDATE decisions SET outcome = 'x' WHERE seq = 2", ()))
    result = checkpoint(small_log.path)
    assert isinstance(result, Report) and result.verdict.seq == 2


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "JSON is malformed: invalid character (byte 4)"),
        ('{"seq": 1, "hash": "ab"}', "Object missing required field `count`"),
        ('{"seq": "1", "hash": "ab", "count": 1}', "Expected `int`, got `str` - at `$.seq`"),
    ],
)
def test_a_checkpoint_file_that_is_not_one(text: str, error: str) -> None:
    with pytest.raises(QueryError) as caught:
        read_checkpoint(text, "head.json")
    assert str(caught.value) == f"head.json is not a checkpoint ({error}); make one with `guardrails audit checkpoint`"


# ---- prune ----------------------------------------------------------------------------------


def counts(path: Path) -> tuple[int, int, int]:
    with closing(connect(path, readonly=True)) as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("decisions", "decision_reasons", "decision_rules")
        )


def test_prune_keeps_the_rest_of_the_chain_verifiable(small_log: SmallLog) -> None:
    path = small_log.path
    before = checkpoint(path)
    assert isinstance(before, Checkpoint)
    _, hash_5, _ = row(path, 5)
    result = prune(path, T0 + 5_500)
    assert result == Pruned(5, 5, hash_5)
    with closing(connect(path, readonly=True)) as connection:
        assert connection.execute("SELECT min(seq) FROM decisions").fetchone() == (6,)
        assert connection.execute("SELECT count(*) FROM decision_reasons WHERE seq <= 5").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM decision_rules WHERE seq <= 5").fetchone() == (0,)
        meta = dict(connection.execute("SELECT key, value FROM meta WHERE key LIKE 'anchor_%'"))
    assert meta == {"anchor_seq": "5", "anchor_hash": hash_5}
    report = verify(path, before)
    assert report.ok
    assert render.verify_text(report) == (
        f"ok: 9 records verified, after pruned record 5; head record 14, hash {before.hash}; "
        "the checkpoint's record 14 is in the log, unchanged\n"
    )
    assert prune(path, T0 + 5_500) == Pruned(0, 5, hash_5)  # nothing older is left


def test_checkpoints_at_or_before_the_prune_point(small_log: SmallLog) -> None:
    path = small_log.path
    old = Checkpoint(3, row(path, 3)[1], 3)
    at_anchor = Checkpoint(5, row(path, 5)[1], 5)
    assert isinstance(prune(path, T0 + 5_500), Pruned)
    assert render.verify_text(verify(path, old)).endswith(
        "; the checkpoint's record 3 has been pruned; the log reaches past it\n"
    )
    assert verify(path, at_anchor).ok
    wrong = Checkpoint(5, "0" * 64, 5)
    assert failure(path, wrong) == (
        f"FAILED: record 5 is not the checkpoint's record: its hash is {at_anchor.hash}, the checkpoint's is "
        f"{'0' * 64} (records were cut off and others written since)\n"
    )


def test_prune_everything_then_carry_on_writing(small_log: SmallLog) -> None:
    path = small_log.path
    head_hash = row(path, COUNT)[1]
    assert prune(path, T0 + 10**9, chunk=4) == Pruned(COUNT, COUNT, head_hash)  # four transactions
    assert counts(path) == (0, 0, 0)
    report = verify(path)
    assert report.ok and (report.verdict.count, report.verdict.head_seq) == (0, COUNT)
    store = SQLiteAuditStore(path)  # a restarted server starts from the anchor
    asyncio.run(store.append([msgspec.structs.replace(small_log.records[0], decision_id="after")]))
    store.close()
    report = verify(path)
    assert report.ok and (report.verdict.count, report.verdict.head_seq) == (1, COUNT + 1)


def test_prune_under_a_running_writer(small_log: SmallLog) -> None:
    """The writer keeps its head in memory; prune only takes the old end, so both stay consistent."""
    path = small_log.path
    store = SQLiteAuditStore(path)
    try:
        more = [msgspec.structs.replace(r, decision_id=f"more-{i}") for i, r in enumerate(small_log.records)]
        asyncio.run(store.append(more[:5]))
        hash_8 = row(path, 8)[1]
        assert prune(path, T0 + 8_500) == Pruned(8, 8, hash_8)
        asyncio.run(store.append(more[5:]))
    finally:
        store.close()
    report = verify(path)
    assert report.ok and report.verdict.count == 2 * COUNT - 8


def test_prune_refuses_to_delete_a_broken_chain(small_log: SmallLog) -> None:
    path = small_log.path
    decision_id, _, record = row(path, 2)
    sql(path, ("UPDATE decisions SET record = ? WHERE seq = 2", (record.replace(b"LOW_RISK", b"HIGH_RISK"),)))
    result = prune(path, T0 + 5_500)
    assert isinstance(result, Report)
    assert render.verify_text(result) == (
        f"FAILED: record 2 was altered: its content does not match its hash (decision {decision_id})\n"
    )
    assert counts(path)[0] == COUNT


def test_prune_stops_at_the_first_record_not_old_enough(tmp_path: Path, small_log: SmallLog) -> None:
    """Timestamps out of order (the clock stepped back): only the old end is pruned, never a hole."""
    path = tmp_path / "stepped.db"
    store = SQLiteAuditStore(path)
    stamps = [T0 + 1_000, T0 + 9_000, T0 + 2_000, T0 + 3_000]
    base: AuditRecord = small_log.records[0]
    asyncio.run(
        store.append([msgspec.structs.replace(base, decision_id=f"s{i}", ts_ms=ts) for i, ts in enumerate(stamps)])
    )
    store.close()
    hash_1 = row(path, 1)[1]
    assert prune(path, T0 + 5_000) == Pruned(1, 1, hash_1)
    assert verify(path).ok


def test_verify_reads_a_log_it_cannot_write(small_log: SmallLog) -> None:
    with pytest.raises(sqlite3.OperationalError), closing(connect(small_log.path, readonly=True)) as connection:
        connection.execute("DELETE FROM decisions")
    assert verify(small_log.path).ok
