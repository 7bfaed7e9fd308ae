"""Reference profiles on small data whose quantiles and shares are known by hand; decoding and checking a reference."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from guardrails.monitor.reference import (
    CategoricalProfile,
    NumericProfile,
    PresenceProfile,
    Reference,
    bin_counts,
    build_reference,
    check_reference,
    decode_reference,
    encode_reference,
    numeric_profile,
    quantile_edges,
    reference_hash,
    shares,
)
from guardrails.policy.inputs import InputField


def field(name: str, kind: str, allowed: tuple[Any, ...] | None = None, audit: str = "keep") -> InputField:
    return InputField(name, kind, True, None, None, None, allowed, None, audit)  # type: ignore[arg-type]


def test_deciles_of_1_to_100() -> None:
    profile = numeric_profile(list(range(1, 101)))
    assert profile.edges == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert profile.proportions == [0.1] * 10
    assert profile.missing == 0.0


def test_quintiles_of_1_to_10() -> None:
    profile = numeric_profile(list(range(1, 11)), bins=5)
    assert profile.edges == [2.0, 4.0, 6.0, 8.0]  # bins {1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}
    assert profile.proportions == [0.2] * 5


def test_discrete_data_merges_equal_edges() -> None:
    profile = numeric_profile([0] * 80 + [1] * 15 + [2] * 5)
    assert profile.edges == [0.0, 1.0]  # deciles 1-8 are all 0, decile 9 is 1
    assert profile.proportions == [0.8, 0.15, 0.05]


def test_a_constant_column_has_one_edge_and_an_empty_upper_bin() -> None:
    profile = numeric_profile([7.5] * 10)
    assert profile.edges == [7.5]
    assert profile.proportions == [1.0, 0.0]


def test_missing_values_are_a_share_of_their_own() -> None:
    profile = numeric_profile([1, 2, 3, 4, None, None, 5, 6, 7, 8], bins=4)
    assert profile.missing == 0.2
    assert profile.edges == [2.0, 4.0, 6.0]
    assert profile.proportions == [0.2, 0.2, 0.2, 0.2]
    assert sum(shares(profile)) == pytest.approx(1.0)


def test_values_outside_the_reference_range_land_in_the_open_outer_bins() -> None:
    edges = quantile_edges(np.arange(1.0, 101.0), 10)
    assert bin_counts(edges, np.array([-1e9, 0.0, 10.0, 10.5, 90.0, 90.5, 1e9])) == [3, 1, 0, 0, 0, 0, 0, 0, 1, 2]


def test_every_value_of_an_allowed_list_is_a_category() -> None:
    country = field("country", "str", allowed=("US", "CA", "KP"))
    reference = build_reference("p", [country], {"country": ["US", "US", "CA", None]})
    assert reference.inputs["country"] == CategoricalProfile(
        categories=["US", "CA", "KP"], proportions=[0.5, 0.25, 0.0], other=0.0, missing=0.25
    )


def test_a_free_string_keeps_its_frequent_values_and_counts_the_rest_as_other() -> None:
    channel = field("channel", "str")
    column = ["web"] * 600 + ["app"] * 399 + ["fax"]  # "fax" is 0.1% of rows: just frequent enough
    profile = build_reference("p", [channel], {"channel": column}).inputs["channel"]
    assert profile == CategoricalProfile(
        categories=["web", "app", "fax"], proportions=[0.6, 0.399, 0.001], other=0.0, missing=0.0
    )
    column = ["web"] * 1000 + [f"user-{i}" for i in range(1000)]  # each seen once in 2000: below 0.1%
    profile = build_reference("p", [channel], {"channel": column}).inputs["channel"]
    assert profile == CategoricalProfile(categories=["web"], proportions=[0.5], other=0.5, missing=0.0)


def test_a_bool_has_two_categories() -> None:
    flag = field("flag", "bool")
    profile = build_reference("p", [flag], {"flag": [True, False, False, None]}).inputs["flag"]
    assert profile == CategoricalProfile(categories=[False, True], proportions=[0.5, 0.25], other=0.0, missing=0.25)


@pytest.mark.parametrize("audit", ["hash", "drop"])
def test_a_sensitive_input_is_profiled_for_presence_only(audit: str) -> None:
    email = field("email", "str", audit=audit)
    reference = build_reference("p", [email], {"email": ["a@x.org", None, "b@x.org", None]})
    assert reference.inputs["email"] == PresenceProfile(missing=0.5)
    assert b"x.org" not in encode_reference(reference)  # never a value


def test_the_score_profile_and_the_header() -> None:
    amount = field("amount", "float")
    reference = build_reference(
        "credit", [amount], {"amount": [1.0, 2.0, 3.0, 4.0]}, scores=[0.1, 0.2, 0.3, 0.4], score_column="p", bins=2
    )
    assert reference.version == 1
    assert (reference.policy, reference.rows, reference.score_column) == ("credit", 4, "p")
    assert reference.score == NumericProfile(edges=[0.2], proportions=[0.5, 0.5], missing=0.0)


def test_building_needs_rows_of_equal_length() -> None:
    with pytest.raises(ValueError, match=r"every column needs the same number of rows, at least one; got \[2, 3\]"):
        build_reference("p", [field("a", "int")], {"a": [1, 2]}, scores=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"got \[0\]"):
        build_reference("p", [field("a", "int")], {"a": []})


def small_reference() -> Reference:
    fields = [
        field("amount", "float"),
        field("country", "str", allowed=("US", "CA")),
        field("email", "str", audit="hash"),
    ]
    columns = {"amount": [1.0, 2.0, 3.0, 4.0], "country": ["US", "CA", "US", "US"], "email": [None, "a", None, None]}
    return build_reference("p", fields, columns, scores=[0.1, 0.5, 0.7, 0.9], score_column="s", bins=2)


def test_encoding_round_trips_and_the_hash_ignores_formatting() -> None:
    reference = small_reference()
    data = encode_reference(reference)
    assert decode_reference(data) == reference
    compact = msgspec.json.encode(reference)
    assert decode_reference(compact) == reference
    assert reference_hash(reference) == reference_hash(msgspec.json.decode(compact, type=Reference))
    assert len(reference_hash(reference)) == 16


def edited(change: dict[str, Any]) -> bytes:
    data = msgspec.to_builtins(small_reference())
    for path, value in change.items():
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value
    return msgspec.json.encode(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON (JSON is malformed: object keys must be strings (byte 1))"),
        (b"[1, 2]", "not a guardrails reference: no `version` (build one with `guardrails profile`)"),
        (edited({"version": 2}), "reference format version 2 is not supported (this guardrails reads 1)"),
        (edited({"rows": "many"}), "not a guardrails reference: Expected `int`, got `str` - at `$.rows`"),
        (
            edited({"inputs.amount.type": "histogram"}),
            "not a guardrails reference: Invalid value 'histogram' - at `$.inputs[...].type`",
        ),
        (
            edited({"inputs.amount.edges": [3.0, 2.0], "inputs.amount.proportions": [0.5, 0.25, 0.25]}),
            "input `amount`: `edges` must be finite and strictly increasing",
        ),
        (edited({"inputs.amount.edges": []}), "input `amount`: 0 edges need 1 proportions, got 2"),
        (edited({"inputs.amount.proportions": [0.5, 0.4]}), "input `amount`: shares add up to 0.9, not 1"),
        (edited({"inputs.email.missing": 1.5}), "input `email`: shares must be between 0 and 1"),
        (
            edited({"inputs.country.categories": ["US", "US"]}),
            "input `country`: a category is listed twice",
        ),
        (edited({"score.proportions": [1.0]}), "the score: 1 edges need 2 proportions, got 1"),
        (edited({"rows": 0}), "`rows` must be at least 1"),
    ],
)
def test_a_bad_reference_says_what_is_wrong(data: bytes, message: str) -> None:
    assert decode_reference(data) == message


def test_a_reference_for_other_inputs_is_refused() -> None:
    reference = small_reference()
    fields = [field("amount", "int"), field("country", "str"), field("email", "str"), field("income", "float")]
    assert check_reference(reference, fields) == [
        "input `email` (str) needs a categorical profile, not a presence one",
        "it has no profile of input `income`",
    ]
    fields = [field("amount", "float", audit="drop")]
    assert check_reference(reference, fields) == [
        "input `amount` (float, audit: drop) needs a presence profile, not a numeric one",
        "it profiles `country`, `email`, not inputs of this policy",
    ]
    ok = [field("amount", "float"), field("country", "str", allowed=("US", "CA")), field("email", "str", audit="hash")]
    assert check_reference(reference, ok) == []
