"""Input validation on the credit-risk policy: the one-pass struct and the every-violation slow path.

Each table runs through `from_json` (request bytes) and `from_mapping` (decoded data), which
must agree: the same values with defaults filled, or the same violations, all at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guardrails.policy.inputs import FieldError, InputSchema, MalformedBody
from guardrails.policy.load import load_policy_file, load_policy_text

CREDIT = Path(__file__).resolve().parent.parent.parent / "policies" / "credit-risk.yaml"

VALID = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}


@pytest.fixture(scope="module")
def schema() -> InputSchema:
    return load_policy_file(CREDIT).inputs


def credit_variant(old: str, new: str) -> InputSchema:
    text = CREDIT.read_text()
    assert text.count(old) == 1
    return load_policy_text(text.replace(old, new), "credit-variant.yaml", monitor=False).inputs


Validate = Callable[[InputSchema, Any], dict[str, Any] | list[FieldError]]


def via_mapping(schema: InputSchema, raw: Any) -> dict[str, Any] | list[FieldError]:
    return schema.from_mapping(raw)


def via_json(schema: InputSchema, raw: Any) -> dict[str, Any] | list[FieldError]:
    return schema.from_json(msgspec.json.encode(raw))


BOTH = pytest.mark.parametrize("validate", [via_mapping, via_json], ids=["from_mapping", "from_json"])


def triples(result: dict[str, Any] | list[FieldError]) -> list[tuple[str, str, str]]:
    assert isinstance(result, list), f"expected violations, got values {result!r}"
    return [(e.field, e.constraint, e.message) for e in result]


# ---- valid input -------------------------------------------------------------------------


@BOTH
def test_valid_input_gets_its_defaults(schema: InputSchema, validate: Validate) -> None:
    assert validate(schema, VALID) == {
        "amount": 1200.0,
        "account_age_days": 800,
        "income": 52000.0,
        "prior_defaults": 0,
        "country": "US",
        "segment": "standard",
        "email": None,
    }


@BOTH
def test_given_values_replace_the_defaults(schema: InputSchema, validate: Validate) -> None:
    raw = {**VALID, "amount": 1200.5, "prior_defaults": 2, "segment": "vip", "email": "a@example.com"}
    assert validate(schema, raw) == {
        "amount": 1200.5,
        "account_age_days": 800,
        "income": 52000.0,
        "prior_defaults": 2,
        "country": "US",
        "segment": "vip",
        "email": "a@example.com",
    }


@BOTH
def test_an_int_for_a_float_is_fine_and_becomes_a_float(schema: InputSchema, validate: Validate) -> None:
    values = validate(schema, {**VALID, "amount": 7})
    assert isinstance(values, dict)
    assert values["amount"] == 7.0
    assert type(values["amount"]) is float


@BOTH
def test_boundaries_are_inclusive(schema: InputSchema, validate: Validate) -> None:
    values = validate(schema, {**VALID, "amount": 1_000_000, "account_age_days": 0, "income": 0})
    assert isinstance(values, dict)
    assert (values["amount"], values["account_age_days"], values["income"]) == (1_000_000.0, 0, 0.0)


@BOTH
def test_null_means_not_given(schema: InputSchema, validate: Validate) -> None:
    # For an optional input it stays missing; for an input with a default, the default applies.
    values = validate(schema, {**VALID, "email": None, "segment": None, "prior_defaults": None})
    assert isinstance(values, dict)
    assert (values["email"], values["segment"], values["prior_defaults"]) == (None, "standard", 0)


@BOTH
def test_email_at_its_max_length(schema: InputSchema, validate: Validate) -> None:
    values = validate(schema, {**VALID, "email": "x" * 254})
    assert isinstance(values, dict)
    assert values["email"] == "x" * 254


# ---- violations, every one at once -------------------------------------------------------


@BOTH
def test_every_violation_is_reported_at_once(schema: InputSchema, validate: Validate) -> None:
    raw = {
        "amount": "lots",
        "account_age_days": True,
        "income": None,
        "prior_defaults": 1.5,
        "country": "XX",
        "email": "x" * 300,
        "nickname": "al",
    }
    assert triples(validate(schema, raw)) == [
        ("amount", "type", '`amount` must be a number, got a string "lots"'),
        ("account_age_days", "type", "`account_age_days` must be an integer, got a bool true"),
        ("income", "required", "`income` is required"),
        ("prior_defaults", "type", "`prior_defaults` must be an integer, got a number 1.5"),
        ("country", "in", "`country` must be one of US, CA, GB, DE, FR, KP; got " + '"XX"'),
        ("email", "max_length", "`email` must be at most 254 characters, got 300"),
        ("nickname", "unknown", "`nickname` is not an input of this policy"),
    ]


VIOLATIONS = [
    ("string for a number", {"amount": "12"}, [("amount", "type", '`amount` must be a number, got a string "12"')]),
    (
        "bool for an int",
        {"account_age_days": False},
        [("account_age_days", "type", "`account_age_days` must be an integer, got a bool false")],
    ),
    (
        "float for an int",
        {"account_age_days": 1.0},
        [("account_age_days", "type", "`account_age_days` must be an integer, got a number 1.0")],
    ),
    (
        "array for a string",
        {"country": ["US"]},
        [("country", "type", "`country` must be a string, got an array")],
    ),
    ("null for a required input", {"income": None}, [("income", "required", "`income` is required")]),
    ("below min", {"amount": -0.5}, [("amount", "min", "`amount` must be >= 0, got -0.5")]),
    ("above max", {"amount": 1_000_001}, [("amount", "max", "`amount` must be <= 1000000, got 1000001")]),
    (
        "not one of the allowed values",
        {"segment": "gold"},
        [("segment", "in", '`segment` must be one of standard, vip; got "gold"')],
    ),
    (
        "too long",
        {"email": "e" * 255},
        [("email", "max_length", "`email` must be at most 254 characters, got 255")],
    ),
    ("unknown field", {"nickname": "al"}, [("nickname", "unknown", "`nickname` is not an input of this policy")]),
    (
        "an int past 64 bits",
        {"account_age_days": 2**63},
        [("account_age_days", "type", "`account_age_days` must fit in 64 bits, got an integer of 64 bits")],
    ),
    (
        "an int no float can hold",
        {"income": 10**400},
        [("income", "type", "`income` must fit in a 64-bit float, got an integer of 1329 bits")],
    ),
]


@BOTH
@pytest.mark.parametrize(("change", "expected"), [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_one_violation(
    schema: InputSchema, validate: Validate, change: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert triples(validate(schema, {**VALID, **change})) == expected


@BOTH
def test_missing_required_inputs(schema: InputSchema, validate: Validate) -> None:
    assert triples(validate(schema, {})) == [
        ("amount", "required", "`amount` is required"),
        ("account_age_days", "required", "`account_age_days` is required"),
        ("income", "required", "`income` is required"),
        ("country", "required", "`country` is required"),
    ]


@BOTH
def test_largest_int64_is_accepted(schema: InputSchema, validate: Validate) -> None:
    values = validate(schema, {**VALID, "account_age_days": 2**63 - 1})
    assert isinstance(values, dict)
    assert values["account_age_days"] == 9_223_372_036_854_775_807
    assert schema.to_env(values)["account_age_days"] == 9.223372036854776e18


@pytest.mark.parametrize(
    ("value", "shown"),
    [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")],
    ids=["nan", "inf", "-inf"],
)
def test_nan_and_infinity_from_a_mapping_are_rejected(schema: InputSchema, value: float, shown: str) -> None:
    assert triples(schema.from_mapping({**VALID, "income": value})) == [
        ("income", "type", f"`income` must be a finite number, got {shown}")
    ]


def test_nan_is_rejected_even_where_the_range_would_not_catch_it(schema: InputSchema) -> None:
    assert triples(schema.from_mapping({**VALID, "amount": math.nan, "income": math.inf})) == [
        ("amount", "type", "`amount` must be a finite number, got nan"),
        ("income", "type", "`income` must be a finite number, got inf"),
    ]


def test_unknown_fields_are_ignored_with_extra_fields_ignore() -> None:
    schema = credit_variant("extra_fields: reject ", "extra_fields: ignore ")
    assert schema.reject_extra is False
    for values in (
        schema.from_mapping({**VALID, "nickname": "al"}),
        schema.from_json(msgspec.json.encode({**VALID, "nickname": "al"})),
    ):
        assert isinstance(values, dict)
        assert "nickname" not in values
        assert values["amount"] == 1200.0
    # Ignored, but a real violation elsewhere is still reported, without the unknown field.
    assert triples(schema.from_mapping({**VALID, "amount": -1, "nickname": "al"})) == [
        ("amount", "min", "`amount` must be >= 0, got -1")
    ]


# ---- the body ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Input data was truncated"),
        (b"", "Input data was truncated"),
        (b"amount=5", "JSON is malformed: invalid character (byte 0)"),
        (b'{"amount": 1,}', "JSON is malformed: trailing comma in object (byte 13)"),
    ],
    ids=["truncated", "empty", "form-encoded", "trailing comma"],
)
def test_malformed_json_raises(schema: InputSchema, body: bytes, message: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        schema.from_json(body)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("body", "got"),
    [(b"[1, 2]", "an array"), (b"null", "null"), (b'"amount"', "a string"), (b"3", "a number")],
    ids=["array", "null", "string", "number"],
)
def test_a_body_that_is_not_an_object(schema: InputSchema, body: bytes, got: str) -> None:
    assert triples(schema.from_json(body)) == [
        ("$", "body", f"the body must be a JSON object of input fields, got {got}")
    ]


def test_a_mapping_that_is_not_a_dict(schema: InputSchema) -> None:
    assert triples(schema.from_mapping([VALID])) == [
        ("$", "body", "the body must be a JSON object of input fields, got an array")
    ]


# ---- the expression environment ---------------------------------------------------------


def test_to_env_gives_floats_for_numbers(schema: InputSchema) -> None:
    values = schema.from_mapping(VALID)
    assert isinstance(values, dict)
    env = schema.to_env(values)
    assert env == {
        "amount": 1200.0,
        "account_age_days": 800.0,
        "income": 52000.0,
        "prior_defaults": 0.0,
        "country": "US",
        "segment": "standard",
        "email": None,
    }
    assert type(env["account_age_days"]) is float
    assert type(env["prior_defaults"]) is float
    assert values["account_age_days"] == 800  # the validated values themselves are untouched
    assert type(values["account_age_days"]) is int


def test_to_env_gives_nan_for_missing_numbers() -> None:
    schema = credit_variant(
        "  email:",
        "  bureau_score:     {type: int, min: 300, max: 850, required: false}\n"
        "  other_income:     {type: float, min: 0, required: false}\n"
        "  email:",
    )
    values = schema.from_mapping(VALID)
    assert isinstance(values, dict)
    assert (values["bureau_score"], values["other_income"]) == (None, None)
    env = schema.to_env(values)
    assert math.isnan(env["bureau_score"])
    assert math.isnan(env["other_income"])
    assert env["email"] is None  # a missing string stays missing
    given = schema.from_mapping({**VALID, "bureau_score": 700, "other_income": 10})
    assert isinstance(given, dict)
    assert (schema.to_env(given)["bureau_score"], schema.to_env(given)["other_income"]) == (700.0, 10.0)
