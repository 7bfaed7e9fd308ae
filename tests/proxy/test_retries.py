"""Retries: connect errors and HTTP 502/503/504 are retried `retries` times; nothing else is."""

from __future__ import annotations

from tests.proxy.conftest import (
    LOW_RISK,
    V2_PATH,
    Canned,
    RunningCanned,
    RunningModel,
    StartProxy,
    credit_policy,
)


def test_503_is_retried(start_proxy: StartProxy, unavailable_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", unavailable_model.url + V2_PATH, retries=2))
    before = proxy.metrics()

    response = proxy.decide("credit", LOW_RISK)

    after = proxy.metrics()
    body = response.json()
    assert (response.status_code, body["fallback"]) == (200, "upstream_error")
    assert body["fallback_detail"] == 'HTTP 503: {"error":"model overloaded"}'
    assert body["model"] == {
        "status": "error",
        "latency_ms": body["model"]["latency_ms"],
        "http_status": 503,
        "attempts": 3,
    }
    assert unavailable_model.requests == 3
    retries = "guardrails_upstream_retries_total"
    assert after.value(retries, policy="credit") - before.value(retries, policy="credit") == 2
    calls = "guardrails_upstream_requests_total"
    assert (
        after.value(calls, policy="credit", status="error") - before.value(calls, policy="credit", status="error") == 1
    )


def test_500_is_not_retried(start_proxy: StartProxy, error_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", error_model.url + V2_PATH, retries=2))

    body = proxy.decide("credit", LOW_RISK).json()

    assert (body["fallback"], body["model"]["http_status"], body["model"]["attempts"]) == ("upstream_error", 500, 1)
    assert error_model.requests == 1
    assert proxy.metrics().value("guardrails_upstream_retries_total", policy="credit") == 0


def test_a_timeout_is_not_retried(start_proxy: StartProxy, slow_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", slow_model.url + V2_PATH, retries=2, timeout_ms=100))

    body = proxy.decide("credit", LOW_RISK).json()

    assert (body["fallback"], body["model"]["status"], body["model"]["attempts"]) == ("upstream_timeout", "timeout", 1)
    assert slow_model.requests == 1


def test_connect_errors_are_retried(start_proxy: StartProxy, closed_url: str) -> None:
    proxy = start_proxy(credit_policy("credit", closed_url, retries=2))

    body = proxy.decide("credit", LOW_RISK).json()

    assert (body["fallback"], body["model"]["status"], body["model"]["attempts"]) == (
        "upstream_unavailable",
        "unavailable",
        3,
    )
    assert proxy.metrics().value("guardrails_upstream_retries_total", policy="credit") == 2


def test_a_retry_that_succeeds_gives_a_real_decision(start_proxy: StartProxy, canned: RunningCanned) -> None:
    proxy = start_proxy(credit_policy("credit", canned.url + V2_PATH, retries=3))
    answer = b'{"outputs": [{"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.9, 0.1]}]}'
    canned.answer(
        Canned(502, b"bad gateway"), Canned(503, b"busy"), Canned(504, b"gateway timeout"), Canned(200, answer)
    )

    body = proxy.decide("credit", LOW_RISK).json()

    assert (body["outcome"], body["reasons"], body["score"], body["fallback"]) == ("approve", ["LOW_RISK"], 0.1, None)
    assert body["model"] == {
        "status": "ok",
        "latency_ms": body["model"]["latency_ms"],
        "http_status": 200,
        "attempts": 4,
    }
    assert canned.requests == 4


def test_retries_stop_at_the_limit(start_proxy: StartProxy, unavailable_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", unavailable_model.url + V2_PATH, retries=1))

    body = proxy.decide("credit", LOW_RISK).json()

    assert body["model"]["attempts"] == 2
    assert unavailable_model.requests == 2
