"""The `guardrails` command, run as a real subprocess: check, test, decide, and no command at all."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from guardrails.policy.load import load_policy_file

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CREDIT = POLICIES / "credit-risk.yaml"
MODERATION = POLICIES / "content-moderation.yaml"
CREDIT_INPUT = '{"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}'


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrails", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def credit_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = CREDIT.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "credit-variant.yaml"
    path.write_text(text.replace(old, new))
    shutil.copy(POLICIES / "credit-risk.reference.json", tmp_path)  # its `monitor:` reference
    return path


# ---- no command --------------------------------------------------------------------------


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: guardrails [-h] COMMAND ...\n")
    for line in (
        "    check     load policies and report every problem",
        "    test      run the tests: cases of policies",
        "    decide    decide one input offline and print the decision as JSON",
    ):
        assert line in result.stdout.splitlines()
    assert result.stderr == ""


def test_unknown_command_exits_2() -> None:
    result = run("launch")
    assert result.returncode == 2
    assert "argument COMMAND: invalid choice: 'launch'" in result.stderr


# ---- check -------------------------------------------------------------------------------


def test_check_prints_an_ok_line() -> None:
    result = run("check", CREDIT)
    version_id = load_policy_file(CREDIT).version_id
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        f"{CREDIT}: ok credit-risk version 2026-11-21.1 (id {version_id}): "
        "7 inputs, 3 thresholds, 4 rules (1 shadow), 11 tests\n"
    )


def test_check_a_folder_checks_every_policy_in_name_order() -> None:
    result = run("check", "policies")
    assert (result.returncode, result.stderr) == (0, "")
    files = [line.split(": ok ")[0] for line in result.stdout.splitlines()]
    assert files == sorted(str(Path("policies") / p.name) for p in POLICIES.glob("*.yaml"))
    assert "policies/content-moderation.yaml" in files
    assert "policies/credit-risk.yaml" in files


def test_check_a_broken_file_reports_every_problem_with_its_position(tmp_path: Path) -> None:
    path = credit_variant(
        tmp_path, "  outcome: review\n  reason: MODEL_UNAVAILABLE", "  outcome: refer\n  reason: MODEL_UNAVAILABLE"
    )
    path.write_text(path.read_text().replace('when: country in ["KP"]', 'when: country in ["KP"] and amout > 0'))
    result = run("check", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:44:33: unknown name `amout` (did you mean `amount`?)",
        f"{path}:65:12: outcome `refer` is not in `outcomes` (approve, review, decline)",
    ]


def test_check_reports_good_and_bad_files_together(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: Bad Name\n")
    result = run("check", CREDIT, bad)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{CREDIT}: ok credit-risk")
    assert result.stderr.splitlines() == [
        f"{bad}:1:1: missing required key `owner`",
        f"{bad}:1:1: missing required key `upstream`",
        f"{bad}:1:1: missing required key `inputs`",
        f"{bad}:1:1: missing required key `thresholds`",
        f"{bad}:1:1: missing required key `outcomes`",
        f"{bad}:1:1: missing required key `fallback`",
        f"{bad}:1:9: Expected `str` matching regex '^[a-z0-9][a-z0-9-]*$'",
    ]


def test_check_an_empty_folder_fails(tmp_path: Path) -> None:
    result = run("check", tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"{tmp_path}:1:1: no policy files (*.yaml, *.yml) found\n"


# ---- test --------------------------------------------------------------------------------


def test_test_runs_every_case_of_a_policy() -> None:
    result = run("test", CREDIT)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[0] == f"credit-risk ({CREDIT})"
    assert lines[1] == "  PASS  low risk approves"
    assert len(lines) == 13
    assert lines[-1] == "11 passed, 0 failed"


def test_test_a_folder_sums_every_policy() -> None:
    result = run("test", "policies")
    cases = sum(len(load_policy_file(path).tests) for path in POLICIES.glob("*.yaml"))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[-1] == f"{cases} passed, 0 failed"
    assert "content-moderation (policies/content-moderation.yaml)" in result.stdout.splitlines()


def test_a_failing_case_shows_expected_and_actual(tmp_path: Path) -> None:
    path = credit_variant(
        tmp_path,
        "expect: {outcome: approve, reasons: [LOW_RISK]}",
        "expect: {outcome: decline, reasons: [HIGH_RISK]}",
    )
    result = run("test", path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[1:4] == [
        "  FAIL  low risk approves",
        "        outcome: expected 'decline', got 'approve'",
        "        reasons: expected ['HIGH_RISK'], got ['LOW_RISK']",
    ]
    assert lines[-1] == "10 passed, 1 failed"


def test_a_failing_rejection_case_names_the_fields(tmp_path: Path) -> None:
    path = credit_variant(
        tmp_path,
        "expect: {errors: [amount, account_age_days, income, country]}",
        "expect: {errors: [amount]}",
    )
    result = run("test", path)
    assert result.returncode == 1
    assert (
        "        errors: expected fields ['amount'], got ['amount', 'account_age_days', 'income', 'country']"
        in result.stdout.splitlines()
    )


def test_test_with_a_broken_policy_fails(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("policy: [\n")
    result = run("test", path)
    assert result.returncode == 1
    assert result.stdout == "0 passed, 0 failed\n"
    assert result.stderr.startswith(f"{path}:2:1: YAML: ")


# ---- decide ------------------------------------------------------------------------------


def decision_of(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    decision = msgspec.json.decode(result.stdout)
    assert isinstance(decision, dict)
    return decision


def test_decide_prints_the_decision_as_json() -> None:
    result = run("decide", CREDIT, "--input", CREDIT_INPUT, "--score", "0.25")
    assert (result.returncode, result.stderr) == (0, "")
    assert decision_of(result) == {
        "policy": "credit-risk",
        "policy_version": load_policy_file(CREDIT).version_id,
        "outcome": "approve",
        "reasons": ["LOW_RISK"],
        "rules": [],
        "score": 0.25,
        "confidence": 0.75,
        "margin": 0.5,
        "label": "good",
        "fallback": None,
        "fallback_detail": None,
        "threshold": 2,
        "errors": None,
    }
    assert result.stdout.startswith('{\n  "policy": "credit-risk",\n')  # indented for people


def test_decide_with_class_probabilities_and_a_rule() -> None:
    given = '{"amount": 100, "account_age_days": 800, "income": 52000, "country": "US", "segment": "vip"}'
    result = run("decide", CREDIT, "--input", given, "--score", "[0.125, 0.875]")
    assert result.returncode == 0
    decision = decision_of(result)
    assert (decision["outcome"], decision["reasons"], decision["score"], decision["label"]) == (
        "review",
        ["HIGH_RISK", "VIP_PROTECTION"],
        0.875,
        "bad",
    )
    assert decision["rules"] == [
        {"name": "vip-never-auto-declined", "mode": "enforce", "outcome": "review", "reason": "VIP_PROTECTION"}
    ]


def test_decide_with_model_output_in_the_policy_protocol() -> None:
    output = '{"outputs": [{"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.125, 0.875]}]}'
    result = run("decide", CREDIT, "--input", CREDIT_INPUT, "--model-output", output)
    assert result.returncode == 0
    decision = decision_of(result)
    assert (decision["outcome"], decision["reasons"], decision["fallback"]) == ("decline", ["HIGH_RISK"], None)


def test_decide_with_json_model_output() -> None:
    given = '{"text": "hello", "channel": "comment", "author_account_age_days": 400}'
    output = '{"probabilities": [0.03, 0.95, 0.01, 0.01]}'
    result = run("decide", MODERATION, "--input", given, "--model-output", output)
    assert result.returncode == 0
    decision = decision_of(result)
    assert (decision["outcome"], decision["label"], decision["score"]) == ("block", "spam", 0.95)


def test_decide_with_unusable_model_output_falls_back() -> None:
    result = run("decide", CREDIT, "--input", CREDIT_INPUT, "--model-output", '{"outputs": []}')
    assert result.returncode == 0
    decision = decision_of(result)
    assert (decision["outcome"], decision["reasons"], decision["fallback"], decision["fallback_detail"]) == (
        "review",
        ["MODEL_UNAVAILABLE"],
        "output_invalid",
        "response has no `outputs`",
    )
    assert decision["score"] is None


def test_decide_with_invalid_input_exits_2_naming_every_field() -> None:
    result = run("decide", CREDIT, "--input", '{"amount": -5, "country": "XX", "pet": "cat"}', "--score", "0.1")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "invalid input: `amount` must be >= 0, got -5",
        "invalid input: `account_age_days` is required",
        "invalid input: `income` is required",
        'invalid input: `country` must be one of US, CA, GB, DE, FR, KP; got "XX"',
        "invalid input: `pet` is not an input of this policy",
    ]


def test_decide_with_invalid_input_and_on_invalid_fallback_prints_the_fallback(tmp_path: Path) -> None:
    path = credit_variant(tmp_path, "on_invalid: reject ", "on_invalid: fallback ")
    result = run("decide", path, "--input", '{"amount": -5}', "--score", "0.1")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == "invalid input: `amount` must be >= 0, got -5"
    decision = decision_of(result)
    assert (decision["outcome"], decision["fallback"]) == ("review", "input_invalid")
    assert decision["errors"] == [
        {"field": "amount", "constraint": "min", "message": "`amount` must be >= 0, got -5"},
        {"field": "account_age_days", "constraint": "required", "message": "`account_age_days` is required"},
        {"field": "income", "constraint": "required", "message": "`income` is required"},
        {"field": "country", "constraint": "required", "message": "`country` is required"},
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--input", "{amount: 5}", "--score", "0.1"],
            "error: --input is not valid JSON (JSON is malformed: object keys must be strings (byte 1)): '{amount: 5}'",
        ),
        (
            ["--input", CREDIT_INPUT, "--score", "high"],
            "error: --score is not valid JSON (JSON is malformed: invalid character (byte 0)): 'high'",
        ),
        (
            ["--input", CREDIT_INPUT, "--model-output", '{"outputs": ['],
            "error: --model-output is not valid JSON (Input data was truncated): '{\"outputs\": ['",
        ),
    ],
    ids=["input", "score", "model-output"],
)
def test_decide_with_a_bad_json_argument_exits_2(args: list[str], message: str) -> None:
    result = run("decide", CREDIT, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == message + "\n"


def test_decide_needs_a_score_or_model_output() -> None:
    result = run("decide", CREDIT, "--input", CREDIT_INPUT)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "guardrails decide: error: one of the arguments --score --model-output is required"
    )


def test_decide_with_a_policy_that_does_not_load_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    result = run("decide", path, "--input", CREDIT_INPUT, "--score", "0.1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{path}:1:1: cannot read: [Errno 2] No such file or directory: '{path}'\n"


def test_serve_refuses_to_start_when_a_policy_fails_its_own_tests(tmp_path: Path) -> None:
    for source in (ROOT / "policies").iterdir():
        (tmp_path / source.name).write_bytes(source.read_bytes())
    credit = tmp_path / "credit-risk.yaml"
    text = credit.read_text()
    credit.write_text(
        text.replace("    expect: {outcome: approve, reasons: [LOW_RISK]}", "    expect: {outcome: decline}", 1)
    )
    done = subprocess.run(
        [sys.executable, "-m", "guardrails", "serve", "--policies", str(tmp_path), "--no-audit", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert f"{credit}: tests failed: low risk approves: outcome: expected 'decline', got 'approve'\n" in done.stderr
