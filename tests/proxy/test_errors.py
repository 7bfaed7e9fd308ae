"""What a caller gets for a bad request: 422, 400, 404, 405 and 413, always as JSON, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from guardrails.server import ServerSettings
from tests.proxy.conftest import LOW_RISK, V2_PATH, Proxy, RunningModel, StartProxy, credit_policy

EVERY_PROBLEM = {"amount": -5, "account_age_days": "old", "country": "XX", "prior_defaults": True, "nickname": "x"}
EVERY_ERROR = [
    {"field": "amount", "constraint": "min", "message": "`amount` must be >= 0, got -5"},
    {
        "field": "account_age_days",
        "constraint": "type",
        "message": '`account_age_days` must be an integer, got a string "old"',
    },
    {"field": "income", "constraint": "required", "message": "`income` is required"},
    {
        "field": "prior_defaults",
        "constraint": "type",
        "message": "`prior_defaults` must be an integer, got a bool true",
    },
    {"field": "country", "constraint": "in", "message": '`country` must be one of US, CA, GB, DE, FR, KP; got "XX"'},
    {"field": "nickname", "constraint": "unknown", "message": "`nickname` is not an input of this policy"},
]


def test_invalid_input_is_422_with_every_field_error(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.decide("credit", EVERY_PROBLEM)

    assert response.status_code == 422
    body = response.json()
    decision_id = body.pop("decision_id")
    assert body == {
        "error": "input_invalid",
        "policy": "credit",
        "policy_version": proxy.policies["credit"].version_id,
        "errors": EVERY_ERROR,
        "request_id": None,
    }
    assert response.headers["x-decision-id"] == decision_id
    assert ok_model.requests == 0


def test_more_field_errors(proxy: Proxy) -> None:
    response = proxy.decide("credit", {**LOW_RISK, "amount": 2_000_000, "segment": "gold", "income": "lots"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "amount", "constraint": "max", "message": "`amount` must be <= 1000000, got 2000000"},
        {"field": "income", "constraint": "type", "message": '`income` must be a number, got a string "lots"'},
        {"field": "segment", "constraint": "in", "message": '`segment` must be one of standard, vip; got "gold"'},
    ]


def test_a_body_that_is_not_an_object_is_422(proxy: Proxy) -> None:
    response = proxy.decide("credit", [1, 2])

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "$", "constraint": "body", "message": "the body must be a JSON object of input fields, got an array"}
    ]


def test_on_invalid_fallback_gives_the_fallback_with_the_errors(proxy: Proxy, ok_model: RunningModel) -> None:
    response = proxy.decide("credit-fallback", EVERY_PROBLEM)

    assert response.status_code == 200
    body = response.json()
    assert body["decision_id"] == response.headers["x-decision-id"]
    assert {k: body[k] for k in body if k not in ("decision_id", "latency_ms")} == {
        "policy": "credit-fallback",
        "policy_version": proxy.policies["credit-fallback"].version_id,
        "outcome": "review",
        "reasons": ["MODEL_UNAVAILABLE"],
        "rules": [],
        "score": None,
        "confidence": None,
        "margin": None,
        "label": None,
        "fallback": "input_invalid",
        "fallback_detail": None,
        "model": {"status": "skipped", "latency_ms": None, "http_status": None, "attempts": 0},
        "request_id": None,
        "errors": EVERY_ERROR,
    }
    assert ok_model.requests == 0


def test_malformed_json_is_400(proxy: Proxy) -> None:
    for path in ("/v1/decide/credit", "/v1/decide/credit/batch"):
        response = proxy.request("POST", path, content=b"{bad")

        assert response.status_code == 400
        assert response.json() == {
            "error": "malformed_json",
            "detail": "the body is not valid JSON: JSON is malformed: object keys must be strings (byte 1)",
        }


def test_an_empty_body_is_400(proxy: Proxy) -> None:
    response = proxy.request("POST", "/v1/decide/credit", content=b"")

    assert response.status_code == 400
    assert response.json() == {
        "error": "malformed_json",
        "detail": "the body is not valid JSON: Input data was truncated",
    }


def deeply_nested(depth: int = 100_000) -> bytes:
    return b"[" * depth + b"]" * depth


def test_json_nested_too_deeply_is_400(proxy: Proxy, ok_model: RunningModel) -> None:
    # msgspec raises RecursionError (not DecodeError) past the interpreter's recursion limit.
    expected = {"error": "malformed_json", "detail": "the body is not valid JSON: JSON is nested too deeply"}
    for body in (deeply_nested(), b'{"amount": ' + deeply_nested() + b"}"):
        response = proxy.request("POST", "/v1/decide/credit", content=body)

        assert (response.status_code, response.json()) == (400, expected)
    batch = proxy.request("POST", "/v1/decide/credit/batch", content=b'{"instances": ' + deeply_nested() + b"}")
    assert (batch.status_code, batch.json()) == (400, expected)
    assert ok_model.requests == 0


def test_unknown_policy_is_404(proxy: Proxy) -> None:
    known = ", ".join(sorted(proxy.policies))
    for path in ("/v1/decide/nope", "/v1/decide/nope/batch"):
        response = proxy.request("POST", path, json={"instances": [LOW_RISK]})

        assert response.status_code == 404
        assert response.json() == {"error": "unknown_policy", "detail": f"no policy named 'nope'; policies: {known}"}


def test_unknown_route_is_404_json(proxy: Proxy) -> None:
    for method, path in (("GET", "/nowhere"), ("POST", "/v1/decide"), ("GET", "/v1/decide/credit/batch/extra")):
        response = proxy.request(method, path)

        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": "not_found", "detail": "Not Found"}


def test_wrong_method_is_405_json(proxy: Proxy) -> None:
    for method, path in (("GET", "/v1/decide/credit"), ("DELETE", "/v1/policies"), ("POST", "/health/live")):
        response = proxy.request(method, path)

        assert response.status_code == 405, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"error": "method_not_allowed", "detail": "Method Not Allowed"}


def padded(value: object, size: int) -> bytes:
    """`value` as JSON, padded with whitespace to exactly `size` bytes."""
    body = msgspec.json.encode(value)
    return body + b" " * (size - len(body))


def test_body_over_the_limit_is_413(start_proxy: StartProxy, ok_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", ok_model.url + V2_PATH), settings=ServerSettings(max_body_bytes=1000))
    expected = {"error": "body_too_large", "detail": "the body is over the limit of 1000 bytes"}

    at_limit = proxy.request("POST", "/v1/decide/credit", content=padded(LOW_RISK, 1000))
    over = proxy.request("POST", "/v1/decide/credit", content=padded(LOW_RISK, 1001))
    batch_over = proxy.request("POST", "/v1/decide/credit/batch", content=padded({"instances": [LOW_RISK]}, 1001))

    assert (at_limit.status_code, at_limit.json()["outcome"]) == (200, "approve")
    assert (over.status_code, over.json()) == (413, expected)
    assert (batch_over.status_code, batch_over.json()) == (413, expected)
    assert ok_model.requests == 1


def test_streamed_body_over_the_limit_is_413(start_proxy: StartProxy, ok_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", ok_model.url + V2_PATH), settings=ServerSettings(max_body_bytes=1000))

    def chunks() -> Iterator[bytes]:  # no content-length: the limit must hold while reading
        yield padded(LOW_RISK, 600)
        yield b" " * 600

    response = proxy.request("POST", "/v1/decide/credit", content=chunks())

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == {"error": "body_too_large", "detail": "the body is over the limit of 1000 bytes"}
    assert ok_model.requests == 0
