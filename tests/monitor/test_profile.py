"""`guardrails profile`: CSV and JSON Lines in, a reference out; every bad file refused with a pinned message."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.cli import main
from guardrails.errors import DataError
from guardrails.monitor.datafile import read_sample
from guardrails.monitor.reference import CategoricalProfile, NumericProfile, PresenceProfile, decode_reference
from guardrails.policy.load import load_policy_file, load_policy_text

POLICY = """\
policy: loans
owner: tests@example.com
upstream: {url: "http://127.0.0.1:9/score", protocol: json, score_path: score}
inputs:
  amount:  {type: float, min: 0}
  age:     {type: int}
  country: {type: str, in: [US, CA]}
  vip:     {type: bool, default: false}
  email:   {type: str, required: false, audit: hash}
thresholds:
  - {when: score >= 0.5, outcome: decline, reason: RISK}
  - {outcome: approve, reason: OK}
outcomes: [approve, decline]
fallback: {outcome: decline, reason: DOWN}
"""
HEADER = "amount,age,country,vip,email,p\n"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "loans.yaml"
    path.write_text(POLICY)
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def profile(*args: str | Path) -> int:
    return main(["profile", *map(str, args)])


def test_a_csv_file_becomes_a_reference(tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path, "data.csv", HEADER + "10,30,US,true,a@x.org,0.1\n20,40,CA,,,0.9\n30,50,US,false,,0.5\n")
    out = tmp_path / "loans.reference.json"
    assert profile(data, "--policy", policy_file, "--score-column", "p", "--bins", "2", "-o", out) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: reference of 3 rows, 5 inputs, score `p` (hash ")
    reference = decode_reference(out.read_bytes())
    assert not isinstance(reference, str)
    # medians: 20 of 10, 20, 30; 40 of 30, 40, 50; bin 0 holds the values up to the edge, included
    assert reference.inputs["amount"] == NumericProfile(edges=[20.0], proportions=[2 / 3, 1 / 3], missing=0.0)
    assert reference.inputs["age"] == NumericProfile(edges=[40.0], proportions=[2 / 3, 1 / 3], missing=0.0)
    assert reference.inputs["country"] == CategoricalProfile(
        categories=["US", "CA"], proportions=[2 / 3, 1 / 3], other=0.0, missing=0.0
    )
    # an empty cell for `vip` takes the default, false, as a live request would
    assert reference.inputs["vip"] == CategoricalProfile(
        categories=[False, True], proportions=[2 / 3, 1 / 3], other=0.0, missing=0.0
    )
    assert reference.inputs["email"] == PresenceProfile(missing=2 / 3)
    assert reference.score == NumericProfile(edges=[0.5], proportions=[2 / 3, 1 / 3], missing=0.0)


def test_a_json_lines_file_gives_the_same_reference(tmp_path: Path, policy_file: Path) -> None:
    csv = write(tmp_path, "data.csv", HEADER + "10,30,US,true,a@x.org,0.1\n20,40,CA,,,0.9\n")
    jsonl = write(
        tmp_path,
        "data.jsonl",
        '{"amount": 10, "age": 30, "country": "US", "vip": true, "email": "a@x.org", "p": 0.1}\n'
        "\n"
        '{"amount": 20.0, "age": 40, "country": "CA", "p": 0.9, "unused": [1, 2]}\n',
    )
    schema = load_policy_file(policy_file).inputs
    assert read_sample(csv, schema, "loans", "p") == read_sample(jsonl, schema, "loans", "p")


def test_without_a_score_column_there_is_no_score_profile(tmp_path: Path, policy_file: Path) -> None:
    data = write(tmp_path, "data.csv", "amount,age,country,vip,email\n1,2,US,true,\n")
    out = tmp_path / "ref.json"
    assert profile(data, "--policy", policy_file, "-o", out) == 0
    reference = decode_reference(out.read_bytes())
    assert not isinstance(reference, str) and reference.score is None and reference.score_column is None


def test_the_policy_own_monitor_section_is_not_needed_to_build_its_reference(tmp_path: Path) -> None:
    policy = write(tmp_path, "loans.yaml", POLICY + "monitor: {reference: loans.reference.json}\n")
    data = write(tmp_path, "data.csv", "amount,age,country,vip,email\n1,2,US,true,\n")
    assert profile(data, "--policy", policy, "-o", tmp_path / "loans.reference.json") == 0
    monitor = load_policy_file(policy).monitor
    assert monitor is not None and monitor.reference.rows == 1


CSV_ERRORS = [
    ("empty.csv", "", "data: the file has no rows of data"),
    ("header.csv", HEADER, "data: the file has no rows of data"),
    (
        "columns.csv",
        "amount,country,p\n1,US,0.5\n",
        "data: no column `age`, `vip`, `email` (inputs of policy loans); the columns are: amount, country, p",
    ),
    (
        "one.csv",
        "amount,age,vip,email,p\n",
        "data: no column `country` (an input of policy loans); the columns are: age, amount, email, p, vip",
    ),
    ("type.csv", HEADER + "1,2,US,true,,0.5\n1,old,US,true,,0.5\n", 'data:3: `age` must be an integer, got "old"'),
    ("number.csv", HEADER + "lots,2,US,true,,0.5\n", 'data:2: `amount` must be a number, got "lots"'),
    ("bool.csv", HEADER + "1,2,US,yes,,0.5\n", 'data:2: `vip` must be true or false, got "yes"'),
    (
        "range.csv",
        HEADER + "-5,2,XX,true,,0.5\n",
        'data:2: `amount` must be >= 0, got -5; `country` must be one of US, CA; got "XX"',
    ),
    ("required.csv", HEADER + "1,,US,true,,0.5\n", "data:2: `age` is required"),
    ("nan.csv", HEADER + "nan,2,US,true,,0.5\n", "data:2: `amount` must be a finite number, got nan"),
    ("fields.csv", HEADER + "1,2,US\n", "data:2: 3 fields, the header has 6"),
    ("twice.csv", "amount,age,age,country,vip,email,p\n", "data:1: column `age` appears twice"),
    (
        "score.csv",
        "amount,age,country,vip,email\n1,2,US,true,\n",
        "data: no score column `p`; the columns are: age, amount, country, email, vip",
    ),
    ("text.csv", HEADER + "1,2,US,true,,high\n", 'data:2: the score `p` must be a number, got "high"'),
    ("blank.csv", HEADER + "1,2,US,true,,\n", "data:2: the score `p` is missing"),
    ("inf.csv", HEADER + "1,2,US,true,,inf\n", "data:2: the score `p` must be a finite number, got inf"),
]
JSONL_ERRORS = [
    ("empty.jsonl", "\n\n", "data: the file has no rows of data"),
    ("json.jsonl", '{"amount": 1,\n', "data:1: not valid JSON (Input data was truncated)"),
    ("array.jsonl", "[1, 2]\n", "data:1: each line must be a JSON object, got an array"),
    (
        "columns.jsonl",
        '{"amount": 1, "country": "US", "p": 0.5}\n',
        "data: no column `age`, `vip`, `email` (inputs of policy loans); the columns are: amount, country, p",
    ),
    (
        "type.jsonl",
        '{"amount": 1, "age": 2, "country": "US", "vip": true, "email": null, "p": 0.5}\n'
        '{"amount": "1", "age": 2.5, "country": "US", "vip": "yes", "p": 0.5}\n',
        'data:2: `amount` must be a number, got a string "1"; `age` must be an integer, got a number 2.5; '
        '`vip` must be true or false, got a string "yes"',
    ),
    (
        "score.jsonl",
        '{"amount": 1, "age": 2, "country": "US", "vip": true, "email": null, "p": true}\n',
        "data:1: the score `p` must be a number, got a bool",
    ),
    (
        "absent.jsonl",
        '{"amount": 1, "age": 2, "country": "US", "vip": true, "email": null, "p": 0.5}\n'
        '{"amount": 1, "age": 2, "country": "US", "vip": true, "email": null}\n',
        "data:2: the score `p` is missing",
    ),
    (
        "noscore.jsonl",
        '{"amount": 1, "age": 2, "country": "US", "vip": true, "email": null}\n',
        "data: no score column `p`; the columns are: age, amount, country, email, vip",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "message"), CSV_ERRORS + JSONL_ERRORS, ids=[c[0] for c in CSV_ERRORS + JSONL_ERRORS]
)
def test_a_bad_file_is_refused_with_the_line_and_column(
    tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    data = write(tmp_path, name, text)
    out = tmp_path / "ref.json"
    assert profile(data, "--policy", policy_file, "--score-column", "p", "-o", out) == 2
    expected = message.replace("data", str(data), 1)
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not out.exists()


def test_other_file_problems(tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = load_policy_text(POLICY).inputs
    with pytest.raises(DataError, match=r"^.*data\.txt: unknown file type `\.txt`; use a \.csv or \.jsonl file$"):
        read_sample(write(tmp_path, "data.txt", "x"), schema, "loans")
    with pytest.raises(DataError, match=r"^.*missing\.csv: cannot read: No such file or directory$"):
        read_sample(tmp_path / "missing.csv", schema, "loans")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"amount,age,country,vip,email\n1,2,\xe9,true,\n")
    with pytest.raises(DataError, match=r"latin\.csv: not UTF-8 text \(invalid continuation byte at byte \d+\)$"):
        read_sample(latin, schema, "loans")


def test_the_exit_codes(tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path, "data.csv", "amount,age,country,vip,email\n1,2,US,true,\n")
    broken = write(tmp_path, "broken.yaml", POLICY.replace("owner:", "ownr:"))
    assert profile(data, "--policy", broken, "-o", tmp_path / "r.json") == 1
    assert "unknown key `ownr`" in capsys.readouterr().err
    assert profile(data, "--policy", policy_file, "--bins", "1", "-o", tmp_path / "r.json") == 2
    assert capsys.readouterr().err == "error: --bins must be between 2 and 100, got 1\n"
    assert profile(data, "--policy", policy_file, "-o", tmp_path / "no" / "such" / "dir.json") == 2
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path / 'no' / 'such' / 'dir.json'}: cannot write: No such file or directory\n"
    )
