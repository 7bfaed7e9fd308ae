"""`guardrails diff OLD NEW`: each kind of change in meaning, pinned; formatting, comments and key order ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guardrails.cli import main
from guardrails.policy.diff import diff_policies, normalise
from guardrails.policy.load import load_policy_text

from .conftest import LOANS, edit

WriteFile = Callable[..., Path]

# LOANS written differently: block style, other key order, comments, quotes, spacing, brackets.
LOANS_RESTYLED = """\
# the same policy, written another way
policy: "loans"
owner: 'tests@example.com'
upstream:
  score_path: score
  protocol: json
  url: "http://127.0.0.1:9/score"
on_invalid: fallback   # not reject
inputs:
  phone:  {audit: drop, type: str, required: false}
  email:
    audit: hash
    required: false
    type: str
  amount: {min: 0.0, type: float}
thresholds:
  - outcome: decline
    when: "score>=0.8"
    reason: HIGH_RISK
  - {reason: UNCERTAIN, outcome: review, when: (score >= .5)}
  - {outcome: approve, reason: LOW_RISK}
rules:
  - name: big
    when: >
      amount > 10000
      and outcome == "approve"
    outcome: review
    reason: BIG
    final: false
    mode: enforce
outcomes: [approve, review, decline]
fallback:
  reason: MODEL_UNAVAILABLE
  outcome: review
"""


def diff(capsys: pytest.CaptureFixture[str], old: Path, new: Path, *args: str) -> tuple[int, str, str]:
    code = main(["diff", str(old), str(new), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def changes(capsys: pytest.CaptureFixture[str], candidate_file: WriteFile, new_text: str) -> list[str]:
    old, new = candidate_file(LOANS, "old.yaml"), candidate_file(new_text, "new.yaml")
    code, out, err = diff(capsys, old, new)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[-1].endswith(" in meaning")
    return lines[2:-1]


def test_formatting_comments_and_key_order_are_no_change(
    capsys: pytest.CaptureFixture[str], candidate_file: WriteFile
) -> None:
    old, new = candidate_file(LOANS, "old.yaml"), candidate_file(LOANS_RESTYLED, "new.yaml")
    code, out, err = diff(capsys, old, new)
    assert (code, err) == (0, "")
    first = load_policy_text(LOANS)
    assert out.splitlines() == [
        f"--- {old} (id {first.version_id})",
        f"+++ {new} (id {load_policy_text(LOANS_RESTYLED).version_id})",
        "no changes in meaning",
    ]
    code, out, _ = diff(capsys, old, new, "--format", "json")
    assert code == 0
    assert msgspec.json.decode(out)["changes"] == []


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            [("score >= 0.8", "score >= 0.75")],
            ["thresholds:", "  ~ threshold 1 (decline HIGH_RISK): when `score >= 0.8` -> `score >= 0.75`"],
        ),
        (
            [("outcome: review, reason: UNCERTAIN", "outcome: decline, reason: UNSURE")],
            ["thresholds:", "  ~ threshold 2 (decline UNSURE): outcome review -> decline; reason UNCERTAIN -> UNSURE"],
        ),
        (
            [
                (
                    "  - {outcome: approve, reason: LOW_RISK}",
                    "  - {when: score >= 0.3, outcome: review, reason: MID}\n  - {outcome: approve, reason: LOW_RISK}",
                )
            ],
            ["thresholds:", "  + threshold 3 (review MID): when `score >= 0.3`; outcome review; reason MID"],
        ),
        (
            [("  - {when: score >= 0.5, outcome: review, reason: UNCERTAIN}\n", "")],
            [
                "thresholds:",
                "  - threshold 2 (review UNCERTAIN): when `score >= 0.5`; outcome review; reason UNCERTAIN",
            ],
        ),
        (
            [
                ("  - {when: score >= 0.8, outcome: decline, reason: HIGH_RISK}\n", ""),
                (
                    "  - {outcome: approve",
                    "  - {when: score >= 0.8, outcome: decline, reason: HIGH_RISK}\n  - {outcome: approve",
                ),
            ],
            [
                "thresholds:",
                "  ~ order [decline HIGH_RISK, review UNCERTAIN, approve LOW_RISK]"
                " -> [review UNCERTAIN, decline HIGH_RISK, approve LOW_RISK]",
            ],
        ),
        (
            [
                (
                    "  - {name: big,",
                    "  - {name: tiny, when: amount < 10, outcome: approve, reason: TINY, final: true}\n  - {name: big,",
                )
            ],
            ["rules:", "  + rule tiny: when `amount < 10`; outcome approve; reason TINY; final true"],
        ),
        (
            [("rules:\n  - {name: big, when: amount > 10000", "rules: []\n  # - {name: big, when: amount > 10000")],
            ["rules:", '  - rule big: when `amount > 10000 and outcome == "approve"`; outcome review; reason BIG'],
        ),
        (
            [("amount > 10000 and", "amount > 20000 and"), ("reason: BIG}", "reason: BIG, final: true}")],
            [
                "rules:",
                '  ~ rule big: when `amount > 10000 and outcome == "approve"`'
                ' -> `amount > 20000 and outcome == "approve"`; final false -> true',
            ],
        ),
        (
            [("reason: BIG}", "reason: BIG, mode: shadow}")],
            ["rules:", "  ~ rule big: mode enforce -> shadow"],
        ),
        (
            [
                ("rules:\n", "rules:\n  - {name: a, when: amount < 1, outcome: review, reason: A}\n"),
                ("reason: BIG}\n", "reason: BIG}\n  - {name: z, when: amount < 2, outcome: review, reason: Z}\n"),
            ],
            [
                "rules:",
                "  + rule a: when `amount < 1`; outcome review; reason A",
                "  + rule z: when `amount < 2`; outcome review; reason Z",
            ],
        ),
        (
            [("outcomes: [approve, review, decline]", "outcomes: [approve, decline, review, escalate]")],
            ["outcomes:", "  + outcome escalate", "  ~ order [approve, review, decline] -> [approve, decline, review]"],
        ),
        (
            [
                ("amount: {type: float, min: 0}", "amount: {type: float, min: 1, max: 100000}"),
                ("email:  {type: str, required: false, audit: hash}", "email:  {type: str, max_length: 99}"),
                (
                    "  phone:  {type: str, required: false, audit: drop}\n",
                    "  tier: {type: int, in: [1, 2], default: 1}\n",
                ),
            ],
            [
                "inputs:",
                "  ~ input amount: min 0 -> 1; max (none) -> 100000",
                "  ~ input email: required false -> true; max_length (none) -> 99; audit hash -> keep",
                "  + input tier: type int; default 1; in [1, 2]",
                "  - input phone: type str; required false; audit drop",
            ],
        ),
        (
            [
                (
                    "fallback: {outcome: review, reason: MODEL_UNAVAILABLE}",
                    "fallback: {outcome: decline, reason: DOWN}",
                ),
                ("on_invalid: fallback", "on_invalid: reject\nextra_fields: ignore\nscore: {min: -1}"),
                ("protocol: json,", "protocol: json, timeout_ms: 250,"),
            ],
            [
                "fallback:",
                "  ~ outcome review -> decline",
                "  ~ reason MODEL_UNAVAILABLE -> DOWN",
                "score:",
                "  ~ min 0 -> -1",
                "policy:",
                "  ~ on_invalid fallback -> reject",
                "  ~ extra_fields reject -> ignore",
                "upstream:",
                "  ~ timeout_ms 1000 -> 250",
            ],
        ),
    ],
)
def test_each_kind_of_change_is_listed(
    capsys: pytest.CaptureFixture[str], candidate_file: WriteFile, edits: list[tuple[str, str]], expected: list[str]
) -> None:
    assert changes(capsys, candidate_file, edit(LOANS, *edits)) == expected


def test_the_summary_counts_the_changes(capsys: pytest.CaptureFixture[str], candidate_file: WriteFile) -> None:
    old = candidate_file(LOANS, "old.yaml")
    new = candidate_file(edit(LOANS, ("score >= 0.8", "score >= 0.7"), ("score >= 0.5", "score >= 0.4")), "new.yaml")
    code, out, _ = diff(capsys, old, new)
    assert (code, out.splitlines()[-1]) == (1, "2 changes in meaning")
    single = candidate_file(edit(LOANS, ("score >= 0.8", "score >= 0.7")), "single.yaml")
    assert diff(capsys, old, single)[1].splitlines()[-1] == "1 change in meaning"


def test_metadata_alone_is_no_change_in_meaning(capsys: pytest.CaptureFixture[str], candidate_file: WriteFile) -> None:
    old = candidate_file(LOANS, "old.yaml")
    text = edit(LOANS, ("owner: tests@example.com", 'owner: risk@example.com\nversion: "2"\ndescription: Loans.'))
    text += "tests:\n  - {name: low, input: {amount: 1}, score: 0.1, expect: {outcome: approve}}\n"
    code, out, _ = diff(capsys, old, candidate_file(text, "new.yaml"))
    assert code == 0
    assert out.splitlines()[2:] == [
        "metadata (decides nothing):",
        "  ~ version (none) -> 2",
        "  ~ owner tests@example.com -> risk@example.com",
        "  ~ description  -> Loans.",
        "  ~ tests 0 cases -> 1 cases",
        "no changes in meaning",
    ]


def test_json_lists_each_change_with_old_and_new(capsys: pytest.CaptureFixture[str], candidate_file: WriteFile) -> None:
    old = candidate_file(LOANS, "old.yaml")
    new = candidate_file(
        edit(LOANS, ("score >= 0.8", "score >= 0.75"), ("amount > 10000", "amount > 9000")), "new.yaml"
    )
    code, out, _ = diff(capsys, old, new, "--format", "json")
    assert code == 1
    result: dict[str, Any] = msgspec.json.decode(out)
    assert result["changes"] == [
        {
            "section": "thresholds",
            "kind": "changed",
            "item": "1 (decline HIGH_RISK)",
            "fields": [{"field": "when", "old": "score >= 0.8", "new": "score >= 0.75"}],
        },
        {
            "section": "rules",
            "kind": "changed",
            "item": "big",
            "fields": [
                {
                    "field": "when",
                    "old": 'amount > 10000 and outcome == "approve"',
                    "new": 'amount > 9000 and outcome == "approve"',
                }
            ],
        },
    ]
    assert (result["old_file"], result["new_file"], result["metadata"]) == (str(old), str(new), [])


def test_a_file_that_does_not_load_exits_2(capsys: pytest.CaptureFixture[str], candidate_file: WriteFile) -> None:
    old = candidate_file(LOANS, "old.yaml")
    broken = candidate_file(edit(LOANS, ("outcomes: [approve", "outcomes: [maybe")), "broken.yaml")
    code, out, err = diff(capsys, old, broken)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == f"error: {broken} does not load (2 problems)"
    code, _, err = diff(capsys, old, candidate_file.__call__(LOANS, "x.yaml").with_name("missing.yaml"))
    assert code == 2 and "cannot read" in err


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("score>=0.85", "score >= 0.85", True),
        ("(score >= 0.85)", "score >= 0.85", True),
        ("score >= 1", "score >= 1.0", True),
        ("score >= .5", "score >= 0.5", True),
        ("a and b or c", "(a and b) or c", True),
        ("a and (b or c)", "a and b or c", False),
        ("score > 0.85", "score >= 0.85", False),
        ('country in ["KP"]', "country in ['KP']", True),
    ],
)
def test_expressions_compare_by_their_parsed_form(a: str, b: str, same: bool) -> None:
    assert (normalise(a) == normalise(b)) is same


def test_diff_of_a_policy_with_itself_is_empty() -> None:
    policy = load_policy_text(LOANS)
    result = diff_policies(policy, policy)
    assert result.same_meaning and result.changes == [] and result.metadata == []


def test_the_monitor_section_is_compared(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "policies"
    text = (shipped / "credit-risk.yaml").read_text()
    reference = (shipped / "credit-risk.reference.json").read_bytes()
    (tmp_path / "credit-risk.reference.json").write_bytes(reference)
    old, new, off = tmp_path / "old.yaml", tmp_path / "new.yaml", tmp_path / "off.yaml"
    old.write_text(text)
    new.write_text(edit(text, ("window: 2000", "window: 3000"), ("on_alert: flag", "on_alert: fallback")))
    off.write_text(text.split("\nmonitor:")[0] + "\ntests:" + text.split("\ntests:")[1])
    code, out, _ = diff(capsys, old, new)
    assert (code, out.splitlines()[2:]) == (
        1,
        ["monitor:", "  ~ window 2000 -> 3000", "  ~ on_alert flag -> fallback", "2 changes in meaning"],
    )
    code, out, _ = diff(capsys, old, off)
    lines = out.splitlines()[2:]
    assert (code, lines[0], lines[-1]) == (1, "monitor:", "1 change in meaning")
    assert lines[1].startswith("  - reference credit-risk.reference.json; window 2000; ")
