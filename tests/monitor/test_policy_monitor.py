"""The `monitor:` key: loaded with its reference beside the policy; every problem a load error at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.errors import PolicyError
from guardrails.monitor.reference import build_reference, encode_reference, reference_hash
from guardrails.policy.load import load_policy_file, load_policy_text
from guardrails.policy.spec import MonitorSpec, PsiBandsSpec

BASE = """\
policy: loans
owner: tests@example.com
upstream: {url: "http://127.0.0.1:9/score", protocol: json, score_path: score}
inputs:
  amount:  {type: float, min: 0}
  country: {type: str, in: [US, CA]}
thresholds:
  - {when: score >= 0.5, outcome: decline, reason: RISK}
  - {outcome: approve, reason: OK}
outcomes: [approve, decline]
fallback: {outcome: decline, reason: DOWN}
"""
MONITOR = """\
monitor:
  reference: loans.reference.json
  window: 500
  psi: {warn: 0.05, alert: 0.2}
  rates: {decline: [0.01, 0.3]}
  fallback_rate_max: 0.1
  on_alert: fallback
"""


def write_reference(folder: Path, inputs: tuple[str, ...] = ("amount", "country")) -> bytes:
    policy = load_policy_text(BASE)
    fields = [f for f in policy.inputs.fields if f.name in inputs]
    columns = {"amount": [1.0, 2.0, 3.0, 4.0], "country": ["US", "CA", "US", "US"]}
    data = encode_reference(build_reference("loans", fields, columns, scores=[0.1, 0.2, 0.6, 0.9], score_column="p"))
    (folder / "loans.reference.json").write_bytes(data)
    return data


def write_policy(folder: Path, monitor: str = MONITOR) -> Path:
    path = folder / "loans.yaml"
    path.write_text(BASE + monitor)
    return path


def messages(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    return [str(problem) for problem in caught.value.problems]


def test_the_monitor_section_and_its_reference_are_loaded(tmp_path: Path) -> None:
    write_reference(tmp_path)
    policy = load_policy_file(write_policy(tmp_path))
    monitor = policy.monitor
    assert monitor is not None
    assert monitor.spec == MonitorSpec(
        reference="loans.reference.json",
        window=500,
        psi=PsiBandsSpec(warn=0.05, alert=0.2),
        rates={"decline": (0.01, 0.3)},
        fallback_rate_max=0.1,
        on_alert="fallback",
    )
    assert monitor.policy == "loans"
    assert monitor.outcomes == ("approve", "decline")
    assert monitor.reference.rows == 4
    assert monitor.reference_file == str(tmp_path / "loans.reference.json")
    assert monitor.reference_hash == reference_hash(monitor.reference)


def test_the_defaults(tmp_path: Path) -> None:
    write_reference(tmp_path)
    monitor = load_policy_file(write_policy(tmp_path, "monitor: {reference: loans.reference.json}\n")).monitor
    assert monitor is not None
    assert monitor.spec == MonitorSpec(reference="loans.reference.json")
    assert (monitor.spec.window, monitor.spec.psi.warn, monitor.spec.psi.alert) == (2000, 0.1, 0.25)
    assert (monitor.spec.rates, monitor.spec.fallback_rate_max, monitor.spec.on_alert) == ({}, None, "flag")


def test_the_version_id_is_the_policy_alone(tmp_path: Path) -> None:
    write_reference(tmp_path)
    path = write_policy(tmp_path)
    first = load_policy_file(path)
    write_reference(tmp_path, inputs=("amount", "country"))
    (tmp_path / "loans.reference.json").write_bytes(
        (tmp_path / "loans.reference.json").read_bytes().replace(b'"rows": 4', b'"rows": 5')
    )
    second = load_policy_file(path)
    assert first.version_id == second.version_id
    assert first.monitor is not None and second.monitor is not None
    assert first.monitor.reference_hash != second.monitor.reference_hash


def test_a_reference_is_read_from_the_folder_given(tmp_path: Path) -> None:
    write_reference(tmp_path)
    text = BASE + MONITOR
    assert load_policy_text(text, "<policy>").monitor is None  # names no file: the section is checked, not loaded
    loaded = load_policy_text(text, "<policy>", folder=tmp_path).monitor
    assert loaded is not None and loaded.reference.rows == 4
    assert load_policy_file(write_policy(tmp_path), monitor=False).monitor is None


def test_a_missing_reference(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    assert messages(path) == [
        f"{path}:13:14: reference `loans.reference.json` not found in {tmp_path}; build it with `guardrails profile`"
    ]


def test_a_reference_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "loans.reference.json").write_text("{")
    path = write_policy(tmp_path)
    assert messages(path) == [
        f"{path}:13:14: reference `loans.reference.json` is not usable: not valid JSON (Input data was truncated)"
    ]


def test_a_reference_built_for_other_inputs(tmp_path: Path) -> None:
    write_reference(tmp_path, inputs=("amount",))
    path = write_policy(tmp_path)
    assert messages(path) == [
        f"{path}:13:14: the reference does not fit this policy's inputs: it has no profile of input `country`; "
        "rebuild it with `guardrails profile`"
    ]


def test_a_reference_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "loans.reference.json").mkdir()
    path = write_policy(tmp_path)
    assert messages(path) == [f"{path}:13:14: reference `loans.reference.json` cannot be read: Is a directory"]


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        (
            MONITOR.replace("rates: {decline: [0.01, 0.3]}", "rates: {declined: [0.01, 0.3]}"),
            ["16:21: outcome `declined` is not in `outcomes` (approve, decline)"],
        ),
        (
            MONITOR.replace("[0.01, 0.3]", "[0.3, 0.01]"),
            ["16:20: the range of `decline` runs from 0.3 down to 0.01: write [low, high]"],
        ),
        (
            MONITOR.replace("[0.01, 0.3]", "[0.01, 1.5]"),
            ["16:10: Expected `float` <= 1.0"],  # msgspec names no path into a dict,
        ),
        (
            MONITOR.replace("[0.01, 0.3]", "[0.01]"),
            ["16:10: Expected `array` of length 2, got 1"],
        ),
        (
            MONITOR.replace("psi: {warn: 0.05, alert: 0.2}", "psi: {warn: 0.3, alert: 0.2}"),
            ["15:15: `warn` 0.3 is greater than `alert` 0.2"],
        ),
        (MONITOR.replace("window: 500", "window: 10"), ["14:11: Expected `int` >= 100"]),
        (MONITOR.replace("on_alert: fallback", "on_alert: page"), ["18:13: Invalid enum value 'page'"]),
        (
            MONITOR.replace("window: 500", "windw: 500"),
            [
                "14:3: unknown key `windw` (did you mean `window`?); allowed here: reference, window, psi, rates, "
                "fallback_rate_max, on_alert"
            ],
        ),
        ("monitor: {window: 500}\n", ["12:10: missing required key `reference`"]),
    ],
)
def test_a_bad_monitor_section(tmp_path: Path, monitor: str, expected: list[str]) -> None:
    write_reference(tmp_path)
    path = write_policy(tmp_path, monitor)
    assert messages(path) == [f"{path}:{message}" for message in expected]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    monitor = MONITOR.replace("psi: {warn: 0.05, alert: 0.2}", "psi: {warn: 0.3, alert: 0.2}")
    path = write_policy(tmp_path, monitor.replace("rates: {decline:", "rates: {review:"))
    assert messages(path) == [
        f"{path}:13:14: reference `loans.reference.json` not found in {tmp_path}; build it with `guardrails profile`",
        f"{path}:15:15: `warn` 0.3 is greater than `alert` 0.2",
        f"{path}:16:19: outcome `review` is not in `outcomes` (approve, decline)",
    ]
