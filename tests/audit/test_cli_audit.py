"""`guardrails audit ...` against real audit files: each command once as a real subprocess (`run`), and
the finer cases in-process through the same `main` (`cli`), since each subprocess pays for the imports."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from guardrails.audit.explain import Explanation
from guardrails.audit.record import AuditRecord, StoredRecord
from guardrails.audit.sqlite import SQLiteAuditStore, closing, connect
from guardrails.audit.stats import Stats
from guardrails.cli import main
from tests.audit.conftest import SmallLog

ROOT = Path(__file__).resolve().parent.parent.parent
DAY = 86_400_000


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrails", "audit", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def call(*args: str | Path) -> Result:
        code = main(["audit", *map(str, args)])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def test_audit_alone_prints_its_commands(tmp_path: Path) -> None:
    result = run()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: guardrails audit [-h] COMMAND ...\n")
    for command in ("query", "show", "stats", "export", "verify", "checkpoint", "prune"):
        assert f"    {command}" in result.stdout


def test_a_missing_or_foreign_file_is_a_clear_error(tmp_path: Path, cli: Callable[..., Result]) -> None:
    missing = tmp_path / "nowhere.db"
    result = run("query", "--audit", missing)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: no audit log at {missing} (`guardrails serve --audit {missing}` creates one)\n"
    garbage = tmp_path / "notes.txt"
    garbage.write_text("these are not the records you are looking for\n" * 100)
    result = cli("verify", "--audit", garbage)
    assert (result.returncode, result.stderr) == (
        2,
        f"error: {garbage} is not a guardrails audit log (file is not a database)\n",
    )
    other = tmp_path / "other.db"
    with closing(sqlite3_connect(other)) as connection:
        connection.execute("CREATE TABLE t (x)")
    result = cli("stats", "--audit", other)
    assert (result.returncode, result.stderr) == (
        2,
        f"error: {other} is not a guardrails audit log (no such table: decisions)\n",
    )


def sqlite3_connect(path: Path):  # type: ignore[no-untyped-def]
    return connect(path)


def test_query_as_a_table(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    result = run("query", "--audit", small_log.path)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TIME", "(UTC)", "DECISION", "ID", "POLICY", "OUTCOME", "REASONS", "FALLBACK", "SCORE"]
    assert len(lines) == 1 + len(small_log.records)
    assert lines[1].split()[:5] == [
        "2026-01-01T00:00:14.000Z",
        small_log.records[-1].decision_id,
        "credit-audit",
        "review",
        "UNCERTAIN",
    ]
    assert lines[-1].split() == [
        "2026-01-01T00:00:01.000Z",
        small_log.low_risk,
        "credit-audit",
        "approve",
        "LOW_RISK",
        "-",
        "0.05",
    ]
    empty = cli("query", "--audit", small_log.path, "--outcome", "escalate")
    assert (empty.returncode, empty.stdout) == (0, "no matching records\n")


def test_query_filters_as_json(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    def ids(*args: str) -> list[str]:
        result = cli("query", "--audit", small_log.path, "--format", "json", *args)
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
        return [r.record.decision_id for r in msgspec.json.decode(result.stdout, type=list[StoredRecord])]

    assert ids("--outcome", "decline") == [small_log.blocked_email, small_log.sanctioned_vip]
    assert ids("--reason", "VIP_PROTECTION") == [small_log.vip_protected]
    assert ids("--rule", "repeat-defaulter", "--policy", "credit-audit") == [small_log.long_note]
    assert ids("--fallback", "any") == ids("--fallback", "upstream_timeout") == [small_log.timeout]
    assert ids("--since", "2026-01-01T00:00:05Z", "--until", "2026-01-01T00:00:08Z") == [
        small_log.timeout,
        small_log.long_note,
        small_log.blocked_email,
    ]
    assert ids("--limit", "2") == [small_log.records[-1].decision_id, small_log.records[-2].decision_id]


def test_query_as_csv(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    result = cli("query", "--audit", small_log.path, "--format", "csv", "--reason", "SANCTIONED_COUNTRY")
    assert result.returncode == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["seq"], r["decision_id"], r["outcome"]) for r in rows] == [("3", small_log.sanctioned_vip, "decline")]
    assert rows[0]["reasons"] == '["HIGH_RISK","SANCTIONED_COUNTRY"]'


def test_bad_options_exit_2_naming_the_value(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    for args, message in [
        (
            ("--since", "soon"),
            "error: --since: 'soon' is neither a duration before now (15m, 2h, 7d) nor an ISO-8601 time "
            "(2026-01-31, 2026-01-31T12:00:00Z)\n",
        ),
        (
            ("--fallback", "broken"),
            "error: --fallback: unknown cause 'broken'; use one of input_invalid, upstream_timeout, upstream_error, "
            "upstream_unavailable, output_invalid, internal_error, score_drift, or any\n",
        ),
        (("--limit", "0"), "error: --limit: 0 is not a number of records (1 or more)\n"),
    ]:
        result = cli("query", "--audit", small_log.path, *args)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", message)
    result = cli("stats", "--audit", small_log.path, "--interval", "hourly")
    assert (result.returncode, result.stderr) == (
        2,
        "error: --interval: 'hourly' is not a duration; use a number and a unit (s, m, h, d), such as 15m\n",
    )


def test_show_explains_a_decision(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    result = run("show", small_log.new_account, "--audit", small_log.path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"decision {small_log.new_account} (record 2, hash ")
    assert (
        '  large-amount-new-account [enforce]: amount > 50000 and account_age_days < 90 and outcome == "approve"\n'
        in result.stdout
    )
    assert result.stdout.splitlines()[-1].startswith("check: OK: recomputed with the stored policy")
    as_json = cli("show", small_log.new_account, "--audit", small_log.path, "--format", "json")
    explanation = msgspec.json.decode(as_json.stdout, type=Explanation)
    assert (explanation.outcome, explanation.recomputed.agrees) == ("review", True)
    unknown = cli("show", "nope", "--audit", small_log.path)
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (
        1,
        "",
        f"error: no decision nope in {small_log.path}\n",
    )


def test_stats_as_a_table_and_json(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    result = run("stats", "--audit", small_log.path, "--by", "fallback")
    assert (result.returncode, result.stdout) == (
        0,
        "FALLBACK          COUNT  RATE\n"
        "(none)            13     92.9%\n"
        "upstream_timeout  1      7.1%\n"
        "(all)             14\n",
    )
    as_json = cli("stats", "--audit", small_log.path, "--by", "rule", "--interval", "5s", "--format", "json")
    stats = msgspec.json.decode(as_json.stdout, type=Stats)
    assert (stats.by, stats.interval_ms, stats.total, len(stats.buckets)) == ("rule", 5000, 14, 3)
    assert [b.start for b in stats.buckets] == [
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:05.000Z",
        "2026-01-01T00:00:10.000Z",
    ]


def test_export_jsonl_and_csv(small_log: SmallLog, cli: Callable[..., Result]) -> None:
    jsonl = run("export", "--audit", small_log.path)
    lines = jsonl.stdout.splitlines()
    assert len(lines) == len(small_log.records)
    first = msgspec.json.decode(lines[0], type=StoredRecord)
    assert (first.seq, first.record) == (1, small_log.records[0])
    as_csv = cli("export", "--audit", small_log.path, "--format", "csv", "--since", "2026-01-01T00:00:10Z")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["seq"] for r in rows] == ["10", "11", "12", "13", "14"]


def test_verify_checkpoint_and_tampering(small_log: SmallLog, tmp_path: Path, cli: Callable[..., Result]) -> None:
    ok = run("verify", "--audit", small_log.path)
    assert ok.returncode == 0
    assert ok.stdout.startswith("ok: 14 records verified; head record 14, hash ")
    head = run("checkpoint", "--audit", small_log.path)
    assert head.returncode == 0
    saved = tmp_path / "head.json"
    saved.write_text(head.stdout)
    assert msgspec.json.decode(head.stdout)["count"] == 14
    assert cli("verify", "--audit", small_log.path, "--checkpoint", saved).returncode == 0
    with closing(connect(small_log.path)) as connection:
        connection.execute("DELETE FROM decisions WHERE seq = 14")
    cut = run("verify", "--audit", small_log.path, "--checkpoint", saved)
    assert (cut.returncode, cut.stdout) == (
        1,
        "FAILED: the log ends at record 13 but the checkpoint was taken at record 14: records 14 to 14 were cut off\n",
    )
    with closing(connect(small_log.path)) as connection:
        connection.execute("UPDATE decisions SET outcome = 'approve' WHERE seq = 3")
    tampered = cli("verify", "--audit", small_log.path)
    assert (tampered.returncode, tampered.stdout) == (
        1,
        "FAILED: record 3 was altered: its indexed columns do not match its content "
        f"(decision {small_log.sanctioned_vip})\n",
    )
    refused = cli("checkpoint", "--audit", small_log.path)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr.startswith("no checkpoint of a broken chain: FAILED: record 3 was altered")
    missing = cli("verify", "--audit", small_log.path, "--checkpoint", tmp_path / "none.json")
    assert (missing.returncode, missing.stderr) == (
        2,
        f"error: --checkpoint: cannot read {tmp_path / 'none.json'}: [Errno 2] No such file or directory: "
        f"'{tmp_path / 'none.json'}'\n",
    )


def test_prune_older_than(tmp_path: Path, small_log: SmallLog, cli: Callable[..., Result]) -> None:
    path = tmp_path / "recent.db"
    now = time.time_ns() // 1_000_000
    ages = [120, 100, 95, 30, 1]  # days
    store = SQLiteAuditStore(path)
    base: AuditRecord = small_log.records[0]
    records = [msgspec.structs.replace(base, decision_id=f"r{age}", ts_ms=now - age * DAY) for age in ages]
    asyncio.run(store.append(records))
    store.close()
    result = run("prune", "--audit", path, "--older-than", "90d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pruned 3 records stamped before ")
    assert "; the kept chain starts after record 3 (hash " in result.stdout
    assert cli("verify", "--audit", path).stdout.startswith(
        "ok: 2 records verified, after pruned record 3; head record 5"
    )
    again = cli("prune", "--audit", path, "--older-than", "90d")
    assert again.stdout.startswith("nothing to prune: no record before ")
    bad = cli("prune", "--audit", path, "--older-than", "ninety days")
    assert (bad.returncode, bad.stderr) == (
        2,
        "error: --older-than: 'ninety days' is not a duration; use a number and a unit (s, m, h, d), such as 15m\n",
    )
