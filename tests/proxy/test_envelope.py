"""The decision envelope, the ids and headers, the policy listing and the health checks."""

from __future__ import annotations

import uuid
from datetime import datetime

from tests.proxy.conftest import (
    LOW_RISK,
    NEW_ACCOUNT_LARGE,
    REPEAT_DEFAULTER,
    SANCTIONED,
    V2_PATH,
    Proxy,
    RunningModel,
    credit_bad_probability,
)


def test_envelope_of_a_decision(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.decide("credit", LOW_RISK)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    bad = credit_bad_probability(LOW_RISK)
    good = 1.0 - bad
    model = body.pop("model")
    latency_ms = body.pop("latency_ms")
    decision_id = body.pop("decision_id")
    assert body == {
        "policy": "credit",
        "policy_version": proxy.policies["credit"].version_id,
        "outcome": "approve",
        "reasons": ["LOW_RISK"],
        "rules": [],
        "score": bad,
        "confidence": good,
        "margin": good - bad,
        "label": "good",
        "fallback": None,
        "fallback_detail": None,
        "request_id": None,
        "errors": None,
    }
    assert model == {"status": "ok", "latency_ms": model["latency_ms"], "http_status": 200, "attempts": 1}
    assert 0 < model["latency_ms"] <= latency_ms
    assert uuid.UUID(decision_id).version == 7
    assert uuid.UUID(decision_id).variant == uuid.RFC_4122
    assert response.headers["x-decision-id"] == decision_id
    assert "x-request-id" not in response.headers
    assert ok_model.requests == 1


def test_rules_in_the_envelope(proxy: Proxy, ok_model: RunningModel) -> None:
    enforced = proxy.decide("credit", NEW_ACCOUNT_LARGE).json()
    final = proxy.decide("credit", SANCTIONED).json()
    shadow = proxy.decide("credit", REPEAT_DEFAULTER).json()

    assert (enforced["outcome"], enforced["reasons"]) == ("review", ["LOW_RISK", "LARGE_AMOUNT_NEW_ACCOUNT"])
    assert enforced["rules"] == [
        {
            "name": "large-amount-new-account",
            "mode": "enforce",
            "outcome": "review",
            "reason": "LARGE_AMOUNT_NEW_ACCOUNT",
        }
    ]
    assert enforced["score"] == credit_bad_probability(NEW_ACCOUNT_LARGE)
    assert (final["outcome"], final["reasons"]) == ("decline", ["LOW_RISK", "SANCTIONED_COUNTRY"])
    assert final["rules"] == [
        {"name": "sanctioned-country", "mode": "enforce", "outcome": "decline", "reason": "SANCTIONED_COUNTRY"}
    ]
    assert (shadow["outcome"], shadow["reasons"]) == ("approve", ["LOW_RISK"])
    assert shadow["rules"] == [
        {"name": "repeat-defaulter", "mode": "shadow", "outcome": "decline", "reason": "REPEAT_DEFAULTER"}
    ]
    assert ok_model.requests == 3


def test_decision_ids_are_uuid7_and_increase(proxy: Proxy, ok_model: RunningModel) -> None:
    ids = [proxy.decide("credit", LOW_RISK).json()["decision_id"] for _ in range(5)]

    assert [uuid.UUID(i).version for i in ids] == [7] * 5
    assert [uuid.UUID(i).int for i in ids] == sorted({uuid.UUID(i).int for i in ids})


def test_request_id_is_echoed(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.decide("credit", LOW_RISK, headers={"X-Request-Id": "req-42 from caller"})

    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42 from caller"
    assert response.json()["request_id"] == "req-42 from caller"
    assert response.headers["x-decision-id"] == response.json()["decision_id"]


def test_a_long_request_id_is_cut_to_200_characters(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.decide("credit", LOW_RISK, headers={"X-Request-Id": "r" * 300})

    assert response.headers["x-request-id"] == "r" * 200
    assert response.json()["request_id"] == "r" * 200


def test_request_id_is_echoed_on_a_rejected_input(proxy: Proxy) -> None:
    response = proxy.decide("credit", {**LOW_RISK, "amount": -1}, headers={"X-Request-Id": "req-7"})

    assert response.status_code == 422
    assert response.headers["x-request-id"] == "req-7"
    assert response.json()["request_id"] == "req-7"
    assert response.headers["x-decision-id"] == response.json()["decision_id"]


def test_policy_list(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.request("GET", "/v1/policies")

    assert response.status_code == 200
    listed = {item["name"]: item for item in response.json()["policies"]}
    assert sorted(listed) == sorted(proxy.policies)
    for name, item in listed.items():
        policy = proxy.policies[name]
        assert item["version_id"] == policy.version_id
        assert item["upstream"]["protocol"] == policy.upstream.protocol
        assert item["upstream"]["circuit"] == "closed"
    assert listed["credit-mlflow"]["upstream"] == {
        "url": ok_model.url + "/invocations",
        "protocol": "mlflow",
        "circuit": "closed",
    }


POLICY_INFO = ("name", "version", "version_id", "owner", "description", "upstream", "file")


def test_one_policy(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.request("GET", "/v1/policies/credit")

    assert response.status_code == 200
    body = response.json()
    loaded_at = body["loaded_at"]
    assert {key: body[key] for key in POLICY_INFO} == {
        "name": "credit",
        "version": "test-1",
        "version_id": proxy.policies["credit"].version_id,
        "owner": "tests@example.com",
        "description": "Credit decisions in the proxy tests.",
        # `build_app(urls=...)` replaced the policy's own address
        "upstream": {"url": ok_model.url + V2_PATH, "protocol": "v2", "circuit": "closed"},
        "file": "<policy>",
    }
    assert datetime.fromisoformat(loaded_at).utcoffset() is not None
    assert proxy.request("GET", "/v1/policies").json()["policies"][0]["loaded_at"] == loaded_at


def test_unknown_policy_info_is_404(proxy: Proxy) -> None:
    response = proxy.request("GET", "/v1/policies/nope")

    assert response.status_code == 404
    assert response.json() == {"error": "unknown_policy", "detail": "no policy named 'nope'"}


def test_health(proxy: Proxy) -> None:
    live = proxy.request("GET", "/health/live")
    ready = proxy.request("GET", "/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok", "policies": len(proxy.policies), "audit": "off"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "policies": len(proxy.policies), "audit": "off"})
