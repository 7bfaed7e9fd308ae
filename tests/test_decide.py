"""`decide` and its neighbours on the credit-risk policy, as tables; and the protocol transforms.

Credit-risk, for reading the tables: labels [good, bad], positive `bad`; thresholds
score >= 0.85 -> decline HIGH_RISK, score >= 0.5 or confidence < 0.6 -> review UNCERTAIN,
else approve LOW_RISK; rules sanctioned-country (final), large-amount-new-account,
vip-never-auto-declined, and repeat-defaulter (shadow); fallback review MODEL_UNAVAILABLE.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guardrails.decide import CAUSES, Cause, Decision, RuleFired, decide, decide_response, decide_row, fallback
from guardrails.decide_vector import columns_from_records, decide_vector
from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.load import load_policy_file
from guardrails.policy.spec import TensorSpec, UpstreamSpec
from guardrails.protocols import decode_rows, read_rows, request_body
from guardrails.scores import ScoreFields, ScoreReader

POLICIES = Path(__file__).resolve().parent.parent / "policies"
CREDIT: CompiledPolicy = load_policy_file(POLICIES / "credit-risk.yaml")
BASE_INPUT = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}

SANCTIONED = RuleFired("sanctioned-country", "enforce", "decline", "SANCTIONED_COUNTRY")
LARGE_NEW = RuleFired("large-amount-new-account", "enforce", "review", "LARGE_AMOUNT_NEW_ACCOUNT")
VIP = RuleFired("vip-never-auto-declined", "enforce", "review", "VIP_PROTECTION")
REPEAT = RuleFired("repeat-defaulter", "shadow", "decline", "REPEAT_DEFAULTER")


def valid(**changes: Any) -> dict[str, Any]:
    values = CREDIT.inputs.from_mapping({**BASE_INPUT, **changes})
    assert isinstance(values, dict), values
    return values


def vector_decision(values: dict[str, Any], decision: Decision) -> Decision:
    assert decision.score is not None and decision.confidence is not None and decision.margin is not None
    fields = ScoreFields(decision.score, decision.confidence, decision.margin, decision.label)
    return decide_vector(CREDIT, columns_from_records(CREDIT, [values], [fields]), 1).decision(0)


# ---- thresholds ----------------------------------------------------------------------------

THRESHOLD_CASES = [
    # (id, score, outcome, reasons, threshold index)
    ("low score approves", 0.10, "approve", ["LOW_RISK"], 2),
    ("exactly 0.85 declines", 0.85, "decline", ["HIGH_RISK"], 0),
    ("above 0.85 matches both, the first wins", 0.95, "decline", ["HIGH_RISK"], 0),
    ("just under 0.85 reviews", 0.8499, "review", ["UNCERTAIN"], 1),
    ("exactly 0.5 reviews", 0.5, "review", ["UNCERTAIN"], 1),
    ("low confidence reviews", 0.41, "review", ["UNCERTAIN"], 1),
    ("confidence 0.61 approves", 0.39, "approve", ["LOW_RISK"], 2),
    ("zero approves", 0.0, "approve", ["LOW_RISK"], 2),
    ("one declines", 1.0, "decline", ["HIGH_RISK"], 0),
]


@pytest.mark.parametrize(
    ("score", "outcome", "reasons", "threshold"),
    [case[1:] for case in THRESHOLD_CASES],
    ids=[case[0] for case in THRESHOLD_CASES],
)
def test_thresholds_in_order(score: float, outcome: str, reasons: list[str], threshold: int) -> None:
    values = valid()
    decision = decide_row(CREDIT, values, score)
    assert (decision.outcome, decision.reasons, decision.threshold, decision.rules) == (
        outcome,
        reasons,
        threshold,
        [],
    )
    assert decision.fallback is None
    assert vector_decision(values, decision) == decision


# ---- rules ---------------------------------------------------------------------------------

RULE_CASES = [
    # (id, input changes, score, outcome, reasons, rules fired in order)
    (
        "a large amount on a new account is reviewed",
        {"amount": 60000, "account_age_days": 30},
        0.10,
        "review",
        ["LOW_RISK", "LARGE_AMOUNT_NEW_ACCOUNT"],
        [LARGE_NEW],
    ),
    (
        "the large-amount rule only turns approvals into reviews",
        {"amount": 60000, "account_age_days": 30},
        0.90,
        "decline",
        ["HIGH_RISK"],
        [],
    ),
    (
        "an old account is not a new account",
        {"amount": 60000, "account_age_days": 90},
        0.10,
        "approve",
        ["LOW_RISK"],
        [],
    ),
    (
        "a vip is reviewed instead of declined",
        {"segment": "vip"},
        0.90,
        "review",
        ["HIGH_RISK", "VIP_PROTECTION"],
        [VIP],
    ),
    (
        "a sanctioned country declines whatever the score",
        {"country": "KP"},
        0.01,
        "decline",
        ["LOW_RISK", "SANCTIONED_COUNTRY"],
        [SANCTIONED],
    ),
    (
        "final stops the vip rule that would otherwise apply",
        {"country": "KP", "segment": "vip"},
        0.90,
        "decline",
        ["HIGH_RISK", "SANCTIONED_COUNTRY"],
        [SANCTIONED],
    ),
    (
        "final does not stop a shadow rule",
        {"country": "KP", "prior_defaults": 3},
        0.10,
        "decline",
        ["LOW_RISK", "SANCTIONED_COUNTRY"],
        [SANCTIONED, REPEAT],
    ),
    (
        "a shadow rule never changes the outcome or the reasons",
        {"prior_defaults": 2},
        0.10,
        "approve",
        ["LOW_RISK"],
        [REPEAT],
    ),
    (
        "a shadow rule is listed next to enforced ones, in file order",
        {"amount": 60000, "account_age_days": 30, "prior_defaults": 5},
        0.10,
        "review",
        ["LOW_RISK", "LARGE_AMOUNT_NEW_ACCOUNT"],
        [LARGE_NEW, REPEAT],
    ),
    (
        "one default is not a repeat",
        {"prior_defaults": 1},
        0.10,
        "approve",
        ["LOW_RISK"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("changes", "score", "outcome", "reasons", "rules"),
    [case[1:] for case in RULE_CASES],
    ids=[case[0] for case in RULE_CASES],
)
def test_rules(changes: dict[str, Any], score: float, outcome: str, reasons: list[str], rules: list[RuleFired]) -> None:
    values = valid(**changes)
    decision = decide_row(CREDIT, values, score)
    assert (decision.outcome, decision.reasons, decision.rules) == (outcome, reasons, rules)
    assert vector_decision(values, decision) == decision


def test_a_whole_decision() -> None:
    values = valid(segment="vip")
    decision = decide(CREDIT, values, ScoreFields(0.875, 0.875, 0.75, "bad"))
    assert decision == Decision(
        policy="credit-risk",
        policy_version=CREDIT.version_id,
        outcome="review",
        reasons=["HIGH_RISK", "VIP_PROTECTION"],
        rules=[VIP],
        score=0.875,
        confidence=0.875,
        margin=0.75,
        label="bad",
        fallback=None,
        fallback_detail=None,
        threshold=0,
        errors=None,
    )
    assert values == valid(segment="vip")  # decide does not touch its input


# ---- score fields --------------------------------------------------------------------------

SCORE_FIELD_CASES = [
    # (id, row, score, confidence, margin, label)
    ("single score below one half", 0.25, 0.25, 0.75, 0.5, "good"),
    ("single score above one half", 0.75, 0.75, 0.75, 0.5, "bad"),
    ("single score of one half is the positive class", 0.5, 0.5, 0.5, 0.0, "bad"),
    ("an int score", 1, 1.0, 1.0, 1.0, "bad"),
    ("a one-item list is a single score", [0.25], 0.25, 0.75, 0.5, "good"),
    ("class probabilities, positive on top", [0.25, 0.75], 0.75, 0.75, 0.5, "bad"),
    ("class probabilities, negative on top", [0.875, 0.125], 0.125, 0.875, 0.75, "good"),
    ("a tie goes to the first class", [0.5, 0.5], 0.5, 0.5, 0.0, "good"),
    ("a one-row nested list", [[0.25, 0.75]], 0.75, 0.75, 0.5, "bad"),
]


@pytest.mark.parametrize(
    ("row", "score", "confidence", "margin", "label"),
    [case[1:] for case in SCORE_FIELD_CASES],
    ids=[case[0] for case in SCORE_FIELD_CASES],
)
def test_score_fields_from_a_row(row: Any, score: float, confidence: float, margin: float, label: str) -> None:
    assert CREDIT.scores.read(row) == ScoreFields(score, confidence, margin, label)
    decision = decide_row(CREDIT, valid(), row)
    assert (decision.score, decision.confidence, decision.margin, decision.label) == (score, confidence, margin, label)


MULTI_CLASS = ScoreReader(("ok", "spam", "harassment", "violence"), None, 0.0, 1.0)


@pytest.mark.parametrize(
    ("reader", "row", "fields"),
    [
        (MULTI_CLASS, [0.125, 0.5, 0.25, 0.125], ScoreFields(0.5, 0.5, 0.25, "spam")),
        (MULTI_CLASS, [0.0, 0.0, 0.0, 1.0], ScoreFields(1.0, 1.0, 1.0, "violence")),
        (
            ScoreReader(("ok", "spam", "harassment", "violence"), "violence", 0.0, 1.0),
            [0.625, 0.125, 0.125, 0.125],
            ScoreFields(0.125, 0.625, 0.5, "ok"),
        ),
        (ScoreReader(None, None, 0.0, 1.0), 0.25, ScoreFields(0.25, 0.75, 0.5, None)),
        (ScoreReader(("good", "bad"), None, 0.0, 1.0), 0.75, ScoreFields(0.75, 0.75, 0.5, "bad")),
        (ScoreReader(("bad", "good"), "bad", 0.0, 1.0), 0.75, ScoreFields(0.75, 0.75, 0.5, "bad")),
        (ScoreReader(("bad", "good"), "bad", 0.0, 1.0), 0.25, ScoreFields(0.25, 0.75, 0.5, "good")),
    ],
    ids=[
        "top class without positive",
        "certain violence",
        "positive class that is not on top",
        "no labels: no label",
        "two labels, no positive: the second is positive",
        "positive listed first",
        "positive listed first, below one half",
    ],
)
def test_score_reader(reader: ScoreReader, row: Any, fields: ScoreFields) -> None:
    assert reader.read(row) == fields


# ---- model output that cannot be used ----------------------------------------------------

NOT_A_SCORE = "expected a score or a list of class probabilities, got"

INVALID_OUTPUT_CASES = [
    ("NaN", math.nan, "score is NaN"),
    ("infinity", math.inf, "score is infinite"),
    ("minus infinity", -math.inf, "score is infinite"),
    ("above max", 1.5, "score 1.5 is outside [0.0, 1.0]"),
    ("below min", -0.1, "score -0.1 is outside [0.0, 1.0]"),
    ("NaN among the classes", [0.5, math.nan], "score is NaN"),
    ("a class above max", [0.5, 1.5], "score 1.5 is outside [0.0, 1.0]"),
    ("too many classes", [0.25, 0.25, 0.5], "expected 2 class probabilities, got 3"),
    ("a string", "0.5", f"{NOT_A_SCORE} str '0.5'"),
    ("a bool", True, f"{NOT_A_SCORE} bool 'True'"),
    ("null", None, f"{NOT_A_SCORE} null"),
    ("an empty list", [], f"{NOT_A_SCORE} an empty list"),
    ("a list with a string", [0.5, "0.5"], f"{NOT_A_SCORE} a list with non-numbers"),
    ("a list with a bool", [0.5, False], f"{NOT_A_SCORE} a list with non-numbers"),
    ("an object", {"score": 0.5}, f"{NOT_A_SCORE} an object"),
]


@pytest.mark.parametrize(
    ("row", "detail"), [case[1:] for case in INVALID_OUTPUT_CASES], ids=[case[0] for case in INVALID_OUTPUT_CASES]
)
def test_unusable_output_falls_back(row: Any, detail: str) -> None:
    assert decide_row(CREDIT, valid(), row) == Decision(
        policy="credit-risk",
        policy_version=CREDIT.version_id,
        outcome="review",
        reasons=["MODEL_UNAVAILABLE"],
        rules=[],
        fallback="output_invalid",
        fallback_detail=detail,
    )


@pytest.mark.parametrize(
    ("reader", "row", "detail"),
    [
        (MULTI_CLASS, 0.5, "expected 4 class probabilities, got a single score"),
        (MULTI_CLASS, [0.5, 0.5], "expected 4 class probabilities, got 2"),
        (ScoreReader(None, None, 0.0, 1.0), [0.25, 0.75], "got 2 class probabilities but the policy names no `labels`"),
        (ScoreReader(None, None, -1.0, 1.0), -1.5, "score -1.5 is outside [-1.0, 1.0]"),
    ],
    ids=["single score for four classes", "two of four classes", "classes without labels", "a custom range"],
)
def test_score_reader_problems(reader: ScoreReader, row: Any, detail: str) -> None:
    assert reader.read(row) == detail


@pytest.mark.parametrize("cause", CAUSES)
def test_fallback_carries_its_cause(cause: Cause) -> None:
    decision = fallback(CREDIT, cause, "what went wrong")
    assert decision == Decision(
        policy="credit-risk",
        policy_version=CREDIT.version_id,
        outcome="review",
        reasons=["MODEL_UNAVAILABLE"],
        rules=[],
        fallback=cause,
        fallback_detail="what went wrong",
    )


def test_fallback_for_invalid_input_carries_the_errors() -> None:
    errors = CREDIT.inputs.from_mapping({**BASE_INPUT, "amount": -1})
    assert isinstance(errors, list)
    decision = fallback(CREDIT, "input_invalid", errors=errors)
    assert decision.errors == errors
    assert decision.fallback_detail is None
    assert (decision.outcome, decision.score, decision.threshold) == ("review", None, None)


def test_the_causes() -> None:
    assert CAUSES == (
        "input_invalid",
        "upstream_timeout",
        "upstream_error",
        "upstream_unavailable",
        "output_invalid",
        "internal_error",
        "score_drift",
    )


# ---- decide_response: the credit policy speaks v2 -----------------------------------------


def v2_output(data: Any, shape: Any = (1, 2), name: str = "predict_proba") -> dict[str, Any]:
    return {"outputs": [{"name": name, "shape": list(shape), "datatype": "FP64", "data": data}]}


RESPONSE_CASES = [
    ("flat data", v2_output([0.125, 0.875]), "decline", None),
    ("nested data", v2_output([[0.125, 0.875]]), "decline", None),
    ("one score per row, shape [n]", v2_output([0.125], shape=[1]), "approve", None),
    ("one score per row, shape [n, 1]", v2_output([[0.125]], shape=[1, 1]), "approve", None),
    (
        "the named tensor among others",
        {"outputs": [{"name": "label", "shape": [1], "data": [1]}, *v2_output([0.75, 0.25])["outputs"]]},
        "approve",
        None,
    ),
    ("no outputs", {"outputs": []}, "review", "response has no `outputs`"),
    ("not an object", [0.1, 0.9], "review", "response has no `outputs`"),
    ("another tensor", v2_output([0.1, 0.9], name="label"), "review", "response has no output tensor `predict_proba`"),
    ("wrong number of values", v2_output([0.1, 0.8, 0.1]), "review", "output tensor has 3 values for shape [1, 2]"),
    (
        "two rows for one instance",
        v2_output([0.1, 0.9, 0.2, 0.8], shape=[2, 2]),
        "review",
        "expected 1 rows, the output tensor has 2",
    ),
    (
        "no shape",
        {"outputs": [{"name": "predict_proba", "data": [0.1]}]},
        "review",
        "output tensor has no valid `shape`",
    ),
    ("a negative dimension", v2_output([0.1, 0.9], shape=[-1, 2]), "review", "output tensor has no valid `shape`"),
    (
        "no data",
        {"outputs": [{"name": "predict_proba", "shape": [1, 2]}]},
        "review",
        "output tensor has no `data` list",
    ),
    ("data that is not numbers", v2_output(["a", "b"]), "review", f"{NOT_A_SCORE} a list with non-numbers"),
    ("three classes", v2_output([0.2, 0.2, 0.6], shape=[1, 3]), "review", "expected 2 class probabilities, got 3"),
]


@pytest.mark.parametrize(
    ("body", "outcome", "detail"), [case[1:] for case in RESPONSE_CASES], ids=[case[0] for case in RESPONSE_CASES]
)
def test_decide_response_v2(body: Any, outcome: str, detail: str | None) -> None:
    decision = decide_response(CREDIT, valid(), body)
    assert (decision.outcome, decision.fallback_detail) == (outcome, detail)
    assert decision.fallback == (None if detail is None else "output_invalid")


# ---- protocols: request bodies --------------------------------------------------------------

V2 = UpstreamSpec(
    url="http://127.0.0.1:9/v2/models/m/infer",
    protocol="v2",
    tensor=TensorSpec(name="x", datatype="FP32", features=["amount", "flag"]),
)
MLFLOW = UpstreamSpec(url="http://127.0.0.1:9/invocations", protocol="mlflow")


def json_upstream(score_path: str) -> UpstreamSpec:
    return UpstreamSpec(url="http://127.0.0.1:9/score", protocol="json", score_path=score_path)


def test_v2_request_body_for_the_credit_policy() -> None:
    body = msgspec.json.decode(request_body(CREDIT.upstream, [valid(), valid(amount=5, prior_defaults=1)]))
    assert body == {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP64",
                "data": [1200.0, 800, 52000.0, 0, 5.0, 800, 52000.0, 1],
            }
        ],
        "outputs": [{"name": "predict_proba"}],
    }


def test_v2_request_body_sends_bools_as_numbers_and_no_outputs_unless_named() -> None:
    body = msgspec.json.decode(request_body(V2, [{"amount": 2.5, "flag": True}, {"amount": 1.0, "flag": False}]))
    assert body == {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [2.5, 1.0, 1.0, 0.0]}]}


def test_mlflow_request_body() -> None:
    body = request_body(MLFLOW, [{"amount": 1.5, "country": "US"}, {"amount": 2.0, "country": "CA"}])
    assert msgspec.json.decode(body) == {
        "dataframe_records": [{"amount": 1.5, "country": "US"}, {"amount": 2.0, "country": "CA"}]
    }


def test_json_request_body_is_the_one_instance() -> None:
    assert msgspec.json.decode(request_body(json_upstream("score"), [{"amount": 1.5}])) == {"amount": 1.5}


def test_json_request_body_refuses_several_instances() -> None:
    with pytest.raises(ValueError, match="^the json protocol sends one instance per request$"):
        request_body(json_upstream("score"), [{"amount": 1.5}, {"amount": 2.5}])


# ---- protocols: reading rows -----------------------------------------------------------------

V2_ROWS = [
    (
        "[n, 2] flat",
        {"outputs": [{"name": "p", "shape": [2, 2], "data": [0.1, 0.9, 0.8, 0.2]}]},
        [[0.1, 0.9], [0.8, 0.2]],
    ),
    (
        "[n, 2] nested",
        {"outputs": [{"name": "p", "shape": [2, 2], "data": [[0.1, 0.9], [0.8, 0.2]]}]},
        [[0.1, 0.9], [0.8, 0.2]],
    ),
    ("[n]", {"outputs": [{"name": "p", "shape": [2], "data": [0.9, 0.2]}]}, [0.9, 0.2]),
    ("[n, 1] nested", {"outputs": [{"name": "p", "shape": [2, 1], "data": [[0.9], [0.2]]}]}, [0.9, 0.2]),
    ("[n, 3]", {"outputs": [{"name": "p", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}]}, [[1, 2, 3], [4, 5, 6]]),
    (
        "the first tensor when no output is named",
        {
            "outputs": [
                "junk",
                {"name": "a", "shape": [2], "data": [0.5, 0.6]},
                {"name": "b", "shape": [2], "data": [0, 0]},
            ]
        },
        [0.5, 0.6],
    ),
    (
        "count mismatch",
        {"outputs": [{"name": "p", "shape": [1, 2], "data": [0.1, 0.9]}]},
        "expected 2 rows, the output tensor has 1",
    ),
    (
        "shape not a list",
        {"outputs": [{"name": "p", "shape": "2", "data": [0.1, 0.9]}]},
        "output tensor has no valid `shape`",
    ),
    ("empty shape", {"outputs": [{"name": "p", "shape": [], "data": []}]}, "output tensor has no valid `shape`"),
    (
        "data an object",
        {"outputs": [{"name": "p", "shape": [2], "data": {"a": 1}}]},
        "output tensor has no `data` list",
    ),
    ("deeply nested data", {"outputs": [{"name": "p", "shape": [2, 1], "data": [[[0.9]], [[0.2]]]}]}, [0.9, 0.2]),
    ("outputs not a list", {"outputs": {"name": "p"}}, "response has no `outputs`"),
]


@pytest.mark.parametrize(("body", "rows"), [case[1:] for case in V2_ROWS], ids=[case[0] for case in V2_ROWS])
def test_read_rows_v2(body: Any, rows: Any) -> None:
    unnamed = UpstreamSpec(url="http://127.0.0.1:9/v2", protocol="v2", tensor=TensorSpec(name="x", features=["a"]))
    assert read_rows(unnamed, body, 2) == rows


MLFLOW_ROWS = [
    ("predictions", {"predictions": [0.1, 0.9]}, [0.1, 0.9]),
    ("class probabilities", {"predictions": [[0.9, 0.1], [0.2, 0.8]]}, [[0.9, 0.1], [0.2, 0.8]]),
    ("a bare list (MLflow 1)", [0.1, 0.9], [0.1, 0.9]),
    ("wrong count", {"predictions": [0.1]}, "expected 2 predictions, got 1"),
    ("no predictions", {"outputs": [0.1, 0.9]}, "response has no `predictions` list"),
    ("predictions not a list", {"predictions": 0.1}, "response has no `predictions` list"),
    ("not an object", "0.1", "response has no `predictions` list"),
]


@pytest.mark.parametrize(("body", "rows"), [case[1:] for case in MLFLOW_ROWS], ids=[case[0] for case in MLFLOW_ROWS])
def test_read_rows_mlflow(body: Any, rows: Any) -> None:
    assert read_rows(MLFLOW, body, 2) == rows


JSON_ROWS = [
    ("a top-level key", "score", {"score": 0.7}, [0.7]),
    ("through a list and a dict", "predictions.0.probability", {"predictions": [{"probability": 0.7}]}, [0.7]),
    ("a later list item", "predictions.1.probability", {"predictions": [{}, {"probability": 0.2}]}, [0.2]),
    ("a list of class probabilities", "probabilities", {"probabilities": [0.1, 0.9]}, [[0.1, 0.9]]),
    ("into a nested list", "out.0.1", {"out": [[0.1, 0.9]]}, [0.9]),
    ("a digit key in a dict", "by_class.1", {"by_class": {"1": 0.4}}, [0.4]),
    (
        "missing key",
        "predictions.0.probability",
        {"predictions": [{"score": 0.7}]},
        "response has no `predictions.0.probability` (stopped at `probability`)",
    ),
    (
        "index past the end",
        "predictions.1.probability",
        {"predictions": [{"probability": 0.7}]},
        "response has no `predictions.1.probability` (stopped at `1`)",
    ),
    (
        "a name where a list is",
        "predictions.first",
        {"predictions": [0.7]},
        "response has no `predictions.first` (stopped at `first`)",
    ),
    (
        "a negative index",
        "predictions.-1",
        {"predictions": [0.7]},
        "response has no `predictions.-1` (stopped at `-1`)",
    ),
    ("into a number", "score.value", {"score": 0.7}, "response has no `score.value` (stopped at `value`)"),
    ("not an object", "score", [0.7], "response has no `score` (stopped at `score`)"),
]


@pytest.mark.parametrize(
    ("score_path", "body", "rows"), [case[1:] for case in JSON_ROWS], ids=[case[0] for case in JSON_ROWS]
)
def test_read_rows_json(score_path: str, body: Any, rows: Any) -> None:
    assert read_rows(json_upstream(score_path), body, 1) == rows


def test_read_rows_json_answers_one_instance_only() -> None:
    assert read_rows(json_upstream("score"), {"score": 0.7}, 2) == "the json protocol answers one instance, 2 were sent"


def test_decode_rows_reports_bytes_that_are_not_json() -> None:
    assert decode_rows(MLFLOW, b"<html>busy</html>", 1) == (
        "response is not JSON: JSON is malformed: invalid character (byte 0)"
    )
    assert decode_rows(MLFLOW, b'{"predictions": [0.25]}', 1) == [0.25]
