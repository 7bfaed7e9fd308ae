"""`guardrails replay`: what it prints, which records it reads, and how it fails.

The audit log is `loans_audit` (conftest): ten decisions of `loans` whose answers are known,
so a candidate that moves a threshold has known transitions.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guardrails.cli import main
from guardrails.cli_replay import since_ms
from guardrails.policy.load import load_policy_text
from guardrails.replay import ReplayError, replay_audit

from .conftest import LOANS, LOANS_TRAFFIC, T0, edit, write_decisions

ROOT = Path(__file__).resolve().parents[2]
MOVED = edit(LOANS, ("score >= 0.8", "score >= 0.75"))
READS_EMAIL = edit(
    LOANS, ("outcomes: [", '  - {name: mail, when: email == "x", outcome: decline, reason: MAIL}\noutcomes: [')
)
READS_PHONE = edit(
    LOANS, ("outcomes: [", "  - {name: tel, when: is_missing(phone), outcome: decline, reason: TEL}\noutcomes: [")
)

WriteFile = Callable[..., Path]


def replay(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["replay", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def replay_json(capsys: pytest.CaptureFixture[str], *args: str | Path) -> dict[str, Any]:
    code, out, err = replay(capsys, *args, "--format", "json")
    assert (code, err) == (0, ""), err
    report: dict[str, Any] = msgspec.json.decode(out)
    return report


def test_a_moved_threshold_gives_the_expected_transitions(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    candidate = candidate_file(MOVED)
    code, out, err = replay(capsys, candidate, "--audit", loans_audit)
    assert (code, err) == (0, "")
    assert out.splitlines()[1:] == [
        f"recorded decisions from {loans_audit}: 10 read",
        "",
        "  replayed                    10",
        "  changed outcome              2  (20.00%)",
        "  rejected (422)               0",
        "  not replayable               0",
        "",
        "transitions (recorded -> candidate):",
        "  review  -> review             4  (40.00%)",
        "  approve -> approve            2  (20.00%)",
        "  decline -> decline            2  (20.00%)",
        "  review  -> decline            2  (20.00%)  *",
        "",
        "rules:",
        "  rule              recorded    candidate",
        "  big (enforce)            1            1",
        "",
        "reasons:",
        "  reason                recorded    candidate",
        "  HIGH_RISK                    2            4",
        "  LOW_RISK                     3            3",
        "  MODEL_UNAVAILABLE            2            2",
        "  UNCERTAIN                    3            1",
        "  BIG                          1            1",
        "",
        "changed decisions (first 2 of 2):",
        "  d-000003  review -> decline  reasons [UNCERTAIN] -> [HIGH_RISK]",
        "  d-000004  review -> decline  reasons [UNCERTAIN] -> [HIGH_RISK]",
    ]
    policy = load_policy_text(MOVED, str(candidate))
    assert out.splitlines()[0] == f"replay of policy loans: candidate {candidate} (id {policy.version_id})"


def test_json_has_the_documented_shape(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    report = replay_json(capsys, candidate_file(MOVED), "--audit", loans_audit)
    assert (report["replayed"], report["changed"], report["not_replayable"], report["rejected"]) == (10, 2, 0, 0)
    assert report["transitions"] == [
        {"from": "review", "to": "review", "count": 4},
        {"from": "approve", "to": "approve", "count": 2},
        {"from": "decline", "to": "decline", "count": 2},
        {"from": "review", "to": "decline", "count": 2},
    ]
    assert report["rules"] == [{"rule": "big", "mode": "enforce", "recorded": 1, "candidate": 1}]
    assert {"reason": "HIGH_RISK", "recorded": 2, "candidate": 4} in report["reasons"]
    assert report["changed_sample"][0] == {
        "decision_id": "d-000003",
        "seq": 4,
        "recorded_outcome": "review",
        "outcome": "decline",
        "recorded_reasons": ["UNCERTAIN"],
        "reasons": ["HIGH_RISK"],
        "rules": [],
        "fallback": None,
    }
    assert report["not_replayable_inputs"] == []
    assert report["policy"] == "loans" and report["read"] == 10 and report["recorded_versions"][0]["count"] == 10


def test_a_hashed_input_the_candidate_reads_is_not_replayable(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    report = replay_json(capsys, candidate_file(READS_EMAIL), "--audit", loans_audit)
    assert (report["replayed"], report["not_replayable"], report["changed"]) == (9, 1, 0)
    assert report["not_replayable_inputs"] == [{"field": "email", "hashed": 1, "dropped": 0}]
    code, out, _ = replay(capsys, candidate_file(READS_EMAIL), "--audit", loans_audit)
    assert "    1 read `email`, which the record holds hashed (audit: hash)" in out.splitlines()


def test_a_dropped_input_the_candidate_reads_is_not_replayable(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    report = replay_json(capsys, candidate_file(READS_PHONE), "--audit", loans_audit)
    # Only the two fallbacks replay: the timeout (the candidate's fallback), the invalid input (invalid again).
    assert (report["replayed"], report["not_replayable"]) == (2, 8)
    assert report["not_replayable_inputs"] == [{"field": "phone", "hashed": 0, "dropped": 8}]
    assert report["transitions"] == [{"from": "review", "to": "review", "count": 2}]
    code, out, _ = replay(capsys, candidate_file(READS_PHONE), "--audit", loans_audit)
    line = "    8 read `phone`, which the record does not hold (audit: drop, or not an input then)"
    assert line in out.splitlines()


def test_an_input_the_candidate_refuses_is_a_rejection_or_its_fallback(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    stricter = edit(LOANS, ("amount: {type: float, min: 0}", "amount: {type: float, min: 0, max: 10000}"))
    report = replay_json(capsys, candidate_file(stricter), "--audit", loans_audit)
    assert {"from": "review", "to": "review", "count": 6} in report["transitions"]  # d-000001 now invalid: fallback
    assert report["rejected"] == 0
    rejecting = edit(stricter, ("on_invalid: fallback", "on_invalid: reject"))
    report = replay_json(capsys, candidate_file(rejecting), "--audit", loans_audit)
    assert report["rejected"] == 2  # d-000001 (amount 20000) and d-000008 (amount -1)
    assert {"from": "review", "to": "(rejected)", "count": 2} in report["transitions"]
    assert report["changed"] == 2


@pytest.mark.parametrize(
    ("args", "read", "changed"),
    [
        (["--limit", "3"], 3, [7, 8, 9]),
        (["--limit", "30"], 10, [0, 1, 2, 3, 4, 7, 8, 9]),
        (["--since", datetime.fromtimestamp((T0 + 3000) / 1000, UTC).isoformat()], 7, [3, 4, 7, 8, 9]),
        (["--since", "2023-11-14T22:13:26", "--limit", "2"], 2, [8, 9]),  # T0 + 6 s, then the last two
    ],
)
def test_since_and_limit_choose_the_records(
    capsys: pytest.CaptureFixture[str],
    loans_audit: Path,
    candidate_file: WriteFile,
    args: list[str],
    read: int,
    changed: list[int],
) -> None:
    declines = edit(
        LOANS, ("score >= 0.8", "score >= 0"), ("fallback: {outcome: review", "fallback: {outcome: decline")
    )
    report = replay_json(capsys, candidate_file(declines), "--audit", loans_audit, *args)
    assert report["read"] == report["replayed"] == read
    assert [c["decision_id"] for c in report["changed_sample"]] == [f"d-{n:06d}" for n in changed]


def test_since_reads_ages_and_times() -> None:
    now = T0 + 10 * 86_400_000
    assert since_ms("7d", now) == now - 7 * 86_400_000
    assert since_ms("12h", now) == now - 12 * 3_600_000
    assert since_ms("30m", now) == now - 30 * 60_000
    assert since_ms("2023-11-14T22:13:20Z", now) == T0
    assert since_ms("2023-11-14T22:13:20", now) == T0  # no zone: UTC
    with pytest.raises(ValueError, match=r"^--since 'yesterday' is neither an age \(7d, 12h, 30m\) nor an ISO time"):
        since_ms("yesterday", now)


def test_a_missing_audit_log_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, candidate_file: WriteFile
) -> None:
    code, out, err = replay(capsys, candidate_file(LOANS), "--audit", tmp_path / "nothing.db")
    assert (code, out, err) == (2, "", f"error: no audit log at {tmp_path / 'nothing.db'}\n")


def test_a_candidate_that_does_not_load_exits_2_with_its_problems(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    broken = candidate_file(edit(LOANS, ("score >= 0.8, outcome: decline", "score >= , outcome: nope")))
    code, out, err = replay(capsys, broken, "--audit", loans_audit)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"{broken}:10:12: syntax error: invalid syntax",
        f"{broken}:10:32: outcome `nope` is not in `outcomes` (approve, review, decline)",
        f"error: {broken} does not load (2 problems)",
    ]


def test_no_recorded_decisions_of_the_policy_exits_2(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    other = candidate_file(edit(LOANS, ("policy: loans", "policy: leases")))
    code, out, err = replay(capsys, other, "--audit", loans_audit)
    assert (code, out, err) == (2, "", f"error: no recorded decisions of policy `leases` in {loans_audit}\n")
    code, out, err = replay(capsys, candidate_file(LOANS), "--audit", loans_audit, "--since", "2030-01-01")
    assert (code, out) == (2, "")
    assert err == f"error: no recorded decisions of policy `loans` in {loans_audit} in that window\n"
    code, _, err = replay(capsys, candidate_file(LOANS), "--audit", loans_audit, "--since", "soon")
    assert code == 2 and err.startswith("error: --since 'soon' is neither")


def test_a_file_that_is_not_an_audit_log_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, candidate_file: WriteFile
) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    code, out, err = replay(capsys, candidate_file(LOANS), "--audit", junk)
    assert (code, out) == (2, "")
    assert err == f"error: cannot read the audit log {junk}: file is not a database\n"


def test_replay_error_is_raised_by_the_library(loans_audit: Path, tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="^no audit log at"):
        replay_audit(load_policy_text(LOANS), tmp_path / "none.db")


def test_the_command_runs_as_a_subprocess(loans_audit: Path, candidate_file: WriteFile) -> None:
    args = [sys.executable, "-m", "guardrails", "replay", str(candidate_file(MOVED)), "--audit", str(loans_audit)]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert (result.returncode, result.stderr) == (0, "")
    assert "  review  -> decline            2  (20.00%)  *" in result.stdout.splitlines()


def test_a_record_that_cannot_be_read_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], loans_audit: Path, candidate_file: WriteFile
) -> None:
    with sqlite3.connect(loans_audit) as connection:
        connection.execute("UPDATE decisions SET record = ? WHERE seq = 4", (b'{"input": {"amount": 1}, "score": "x"',))
    code, out, err = replay(capsys, candidate_file(LOANS), "--audit", loans_audit)
    assert (code, out) == (2, "")
    assert err.startswith("error: recorded decision 4 cannot be read: ")


def test_inputs_no_known_version_declares_are_learned_while_reading(tmp_path: Path) -> None:
    """Without the recorded source, the decoder meets `email` and `phone` only in the records."""
    path = tmp_path / "no-source.db"
    write_decisions(path, load_policy_text(LOANS), LOANS_TRAFFIC, keep_source=False)
    bare = edit(
        LOANS,
        ("  email:  {type: str, required: false, audit: hash}\n", ""),
        ("  phone:  {type: str, required: false, audit: drop}\n", "extra_fields: ignore\n"),
    )
    report = replay_audit(load_policy_text(bare), path, chunk_rows=3)
    assert (report.read, report.replayed, report.changed) == (10, 10, 0)
    report = replay_audit(load_policy_text(READS_PHONE), path, chunk_rows=3)
    assert [(u.field, u.hashed, u.dropped) for u in report.not_replayable_inputs] == [("phone", 0, 8)]
