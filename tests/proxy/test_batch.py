"""POST /v1/decide/{policy}/batch: order, agreement with single decisions, calls per protocol, errors."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from guardrails.server import ServerSettings
from tests.proxy.conftest import (
    LOW_RISK,
    NEW_ACCOUNT_LARGE,
    REPEAT_DEFAULTER,
    SANCTIONED,
    V2_PATH,
    Proxy,
    RunningModel,
    StartProxy,
    credit_bad_probability,
    credit_policy,
)

HIGH_RISK = {"amount": 100_000, "account_age_days": 10, "income": 10_000, "country": "DE"}
UNCERTAIN = {"amount": 30_000, "account_age_days": 100, "income": 30_000, "country": "CA", "segment": "vip"}
CREDIT_INSTANCES = [LOW_RISK, NEW_ACCOUNT_LARGE, SANCTIONED, REPEAT_DEFAULTER, HIGH_RISK, UNCERTAIN]
MODERATION_INSTANCES = [
    {"text": "see you at the match", "channel": "comment", "author_account_age_days": 400},
    {"text": "BUY NOW http://a http://b http://c", "channel": "post", "author_account_age_days": 2},
    {"text": "an opinion", "channel": "post", "author_account_age_days": 400, "report_count": 12},
    {"text": "WHY WOULD YOU", "channel": "direct_message", "author_account_age_days": 5, "report_count": 30},
]
DECIDED = ("outcome", "reasons", "rules", "score", "confidence", "margin", "label", "fallback", "fallback_detail")


def decided(envelope: dict[str, Any]) -> dict[str, Any]:
    return {key: envelope[key] for key in DECIDED}


def test_v2_batch_matches_single_decisions_in_one_call(proxy: Proxy, ok_model: RunningModel) -> None:
    singles = [proxy.decide("credit", instance).json() for instance in CREDIT_INSTANCES]
    assert ok_model.requests == len(CREDIT_INSTANCES)

    response = proxy.batch("credit", {"instances": CREDIT_INSTANCES})

    assert response.status_code == 200
    assert ok_model.requests == len(CREDIT_INSTANCES) + 1  # the whole batch in one model call
    decisions = response.json()["decisions"]
    assert [decided(d) for d in decisions] == [decided(s) for s in singles]
    assert [d["outcome"] for d in decisions] == ["approve", "review", "decline", "approve", "decline", "review"]
    assert [d["score"] for d in decisions] == [credit_bad_probability(i) for i in CREDIT_INSTANCES]
    ids = [uuid.UUID(d["decision_id"]) for d in decisions]
    assert [i.version for i in ids] == [7] * len(ids)
    assert [i.int for i in ids] == sorted({i.int for i in ids})
    assert {d["policy_version"] for d in decisions} == {proxy.policies["credit"].version_id}
    assert {d["latency_ms"] for d in decisions} == {decisions[0]["latency_ms"]}
    models = [d["model"] for d in decisions]
    assert models == [{"status": "ok", "latency_ms": models[0]["latency_ms"], "http_status": 200, "attempts": 1}] * 6
    assert "x-decision-id" not in response.headers


def test_mlflow_batch_is_one_call(proxy: Proxy, ok_model: RunningModel) -> None:
    singles = [proxy.decide("credit-mlflow", instance).json() for instance in CREDIT_INSTANCES]

    response = proxy.batch("credit-mlflow", {"instances": CREDIT_INSTANCES})

    assert ok_model.requests == len(CREDIT_INSTANCES) + 1
    assert [decided(d) for d in response.json()["decisions"]] == [decided(s) for s in singles]


def test_json_batch_is_one_call_per_instance(proxy: Proxy, ok_model: RunningModel) -> None:
    singles = [proxy.decide("moderation", instance).json() for instance in MODERATION_INSTANCES]

    response = proxy.batch("moderation", {"instances": MODERATION_INSTANCES})

    assert response.status_code == 200
    assert ok_model.requests == 2 * len(MODERATION_INSTANCES)
    decisions = response.json()["decisions"]
    assert [decided(d) for d in decisions] == [decided(s) for s in singles]
    assert len({d["outcome"] for d in decisions}) > 1, "the instances should not all decide alike"


def test_a_batch_of_one_has_the_decision_id_header(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.batch("credit", {"instances": [LOW_RISK]}, headers={"X-Request-Id": "batch-1"})

    [decision] = response.json()["decisions"]
    assert response.headers["x-decision-id"] == decision["decision_id"]
    assert response.headers["x-request-id"] == decision["request_id"] == "batch-1"


def test_an_invalid_item_rejects_the_batch(proxy: Proxy, ok_model: RunningModel) -> None:
    instances = [LOW_RISK, {**LOW_RISK, "amount": -1}, {**LOW_RISK, "country": "XX", "nickname": "n"}]

    response = proxy.batch("credit", {"instances": instances})

    assert response.status_code == 422
    body = response.json()
    assert uuid.UUID(body.pop("decision_id")).version == 7
    assert body == {
        "error": "input_invalid",
        "policy": "credit",
        "policy_version": proxy.policies["credit"].version_id,
        "errors": [
            {"field": "instances[1].amount", "constraint": "min", "message": "`amount` must be >= 0, got -1"},
            {
                "field": "instances[2].country",
                "constraint": "in",
                "message": '`country` must be one of US, CA, GB, DE, FR, KP; got "XX"',
            },
            {
                "field": "instances[2].nickname",
                "constraint": "unknown",
                "message": "`nickname` is not an input of this policy",
            },
        ],
        "request_id": None,
    }
    assert ok_model.requests == 0


def test_an_invalid_item_gets_its_fallback(proxy: Proxy, ok_model: RunningModel) -> None:
    instances = [LOW_RISK, {**LOW_RISK, "amount": -1}, SANCTIONED, "not an object"]

    response = proxy.batch("credit-fallback", {"instances": instances})

    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [(d["outcome"], d["fallback"]) for d in decisions] == [
        ("approve", None),
        ("review", "input_invalid"),
        ("decline", None),
        ("review", "input_invalid"),
    ]
    assert decisions[1]["errors"] == [
        {"field": "amount", "constraint": "min", "message": "`amount` must be >= 0, got -1"}
    ]
    assert decisions[3]["errors"] == [
        {"field": "$", "constraint": "body", "message": "the body must be a JSON object of input fields, got a string"}
    ]
    assert decisions[1]["model"] == {"status": "skipped", "latency_ms": None, "http_status": None, "attempts": 0}
    assert decisions[0]["model"]["status"] == "ok"
    assert ok_model.requests == 1  # the two valid items, in one call


def test_batch_limit(start_proxy: StartProxy, ok_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", ok_model.url + V2_PATH), settings=ServerSettings(max_batch=3))

    at_limit = proxy.batch("credit", {"instances": [LOW_RISK] * 3})
    over = proxy.batch("credit", {"instances": [LOW_RISK] * 4})

    assert (at_limit.status_code, len(at_limit.json()["decisions"])) == (200, 3)
    assert (over.status_code, over.json()) == (422, {"error": "bad_batch", "detail": "4 instances; the limit is 3"})
    assert ok_model.requests == 1


SHAPE = 'the body must be {"instances": [...]}: '


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"instances": []}, "`instances` is empty"),
        ({"instances": {}}, SHAPE + "Expected `array`, got `object` - at `$.instances`"),
        ({}, SHAPE + "Object missing required field `instances`"),
        ({"instances": [LOW_RISK], "more": 1}, SHAPE + "Object contains unknown field `more`"),
        ([LOW_RISK], SHAPE + "Expected `object`, got `array`"),
    ],
    ids=["empty", "instances-not-a-list", "no-instances", "unknown-key", "bare-list"],
)
def test_a_batch_of_the_wrong_shape_is_422(proxy: Proxy, ok_model: RunningModel, body: Any, detail: str) -> None:
    response = proxy.batch("credit", body)

    assert (response.status_code, response.json()) == (422, {"error": "bad_batch", "detail": detail})
    assert ok_model.requests == 0


def test_a_malformed_batch_is_400(proxy: Proxy) -> None:
    response = proxy.batch("credit", content=b'{"instances": [')

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "detail": "the body is not valid JSON: Input data was truncated",
    }


def test_a_failing_upstream_gives_every_item_the_fallback(proxy: Proxy, error_model: RunningModel) -> None:
    response = proxy.batch("credit-error", {"instances": [LOW_RISK, SANCTIONED]})

    decisions = response.json()["decisions"]
    assert [(d["outcome"], d["fallback"], d["fallback_detail"]) for d in decisions] == [
        ("review", "upstream_error", 'HTTP 500: {"error":"model crashed"}')
    ] * 2
    assert [d["model"]["http_status"] for d in decisions] == [500, 500]
    assert error_model.requests == 1
