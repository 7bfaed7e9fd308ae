"""The circuit breaker, per policy: open after `failures` failures, one probe after `reset_after_s`.

Each test builds a fresh app: breakers live in the app.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from tests.proxy.conftest import LOW_RISK, V2_PATH, Proxy, RunningModel, StartProxy, credit_policy

RESET_S = 0.5
REFUSED_MODEL = {"status": "circuit_open", "latency_ms": None, "http_status": None, "attempts": 0}


def circuit_gauge(proxy: Proxy, policy: str = "credit") -> float:
    return proxy.metrics().value("guardrails_circuit_state", policy=policy)


def assert_refused(response: httpx.Response) -> None:
    body = response.json()
    assert response.status_code == 200
    assert (body["outcome"], body["reasons"]) == ("review", ["MODEL_UNAVAILABLE"])
    assert (body["fallback"], body["fallback_detail"]) == ("upstream_unavailable", "circuit open")
    assert body["model"] == REFUSED_MODEL


def test_circuit_opens_refuses_then_probes_and_closes(start_proxy: StartProxy, error_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", error_model.url + V2_PATH, failures=3, reset_after_s=RESET_S))
    assert (proxy.circuit("credit"), circuit_gauge(proxy)) == ("closed", 0)

    failed = [proxy.decide("credit", LOW_RISK).json() for _ in range(3)]
    opened_at = time.monotonic()
    assert [(b["fallback"], b["model"]["status"]) for b in failed] == [("upstream_error", "error")] * 3
    assert error_model.requests == 3

    refused = [proxy.decide("credit", LOW_RISK) for _ in range(3)]
    assert (proxy.circuit("credit"), circuit_gauge(proxy)) == ("open", 2)
    assert time.monotonic() - opened_at < RESET_S, "too slow to see the open circuit"
    for response in refused:
        assert_refused(response)
    assert error_model.requests == 3  # refused at once: the model never saw them

    time.sleep(RESET_S)
    assert (proxy.circuit("credit"), circuit_gauge(proxy)) == ("half_open", 1)
    error_model.app.mode = "ok"  # the model healed
    probe = proxy.decide("credit", LOW_RISK).json()
    assert (probe["outcome"], probe["fallback"], probe["model"]["attempts"]) == ("approve", None, 1)
    assert error_model.requests == 4
    assert (proxy.circuit("credit"), circuit_gauge(proxy)) == ("closed", 0)

    after = proxy.decide("credit", LOW_RISK).json()
    assert (after["fallback"], error_model.requests) == (None, 5)


def test_a_failed_probe_opens_the_circuit_again(start_proxy: StartProxy, error_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", error_model.url + V2_PATH, failures=2, reset_after_s=RESET_S))
    for _ in range(2):
        proxy.decide("credit", LOW_RISK)
    time.sleep(RESET_S)
    assert proxy.circuit("credit") == "half_open"

    probe = proxy.decide("credit", LOW_RISK).json()

    assert (probe["fallback"], probe["model"]["status"]) == ("upstream_error", "error")
    assert error_model.requests == 3
    assert proxy.circuit("credit") == "open"
    assert_refused(proxy.decide("credit", LOW_RISK))
    assert error_model.requests == 3


def test_half_open_lets_exactly_one_probe_through(start_proxy: StartProxy, error_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", error_model.url + V2_PATH, failures=1, reset_after_s=RESET_S))
    proxy.decide("credit", LOW_RISK)
    error_model.app.mode, error_model.app.delay_ms = "slow", 300  # healed, but slow: the probe stays in flight
    time.sleep(RESET_S)
    answers: list[dict[str, Any]] = []

    def send() -> None:
        with httpx.Client(base_url=proxy.url, timeout=10) as client:
            answers.append(client.post("/v1/decide/credit", json=LOW_RISK).json())

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer["model"]["status"] for answer in answers)
    assert statuses == ["circuit_open", "circuit_open", "circuit_open", "ok"]
    assert error_model.requests == 2  # the first failure, then the one probe
    assert proxy.circuit("credit") == "closed"


def test_connect_failures_and_timeouts_open_the_circuit(
    start_proxy: StartProxy, closed_url: str, slow_model: RunningModel
) -> None:
    proxy = start_proxy(
        credit_policy("closed", closed_url, failures=2, reset_after_s=60),
        credit_policy("slow", slow_model.url + V2_PATH, failures=2, reset_after_s=60, timeout_ms=100),
    )
    for name in ("closed", "slow"):
        for _ in range(2):
            assert proxy.decide(name, LOW_RISK).json()["model"]["status"] != "circuit_open"
        assert proxy.circuit(name) == "open"
        assert_refused(proxy.decide(name, LOW_RISK))
    assert slow_model.requests == 2


def test_answers_that_are_not_server_failures_keep_the_circuit_closed(
    start_proxy: StartProxy, ok_model: RunningModel, garbage_model: RunningModel
) -> None:
    proxy = start_proxy(
        credit_policy("missing", ok_model.url + "/v3/nothing", failures=2),  # HTTP 404
        credit_policy("garbage", garbage_model.url + V2_PATH, failures=2),  # HTTP 200, not JSON
    )
    for name, cause in (("missing", "upstream_error"), ("garbage", "output_invalid")):
        answers = [proxy.decide(name, LOW_RISK).json() for _ in range(3)]
        assert [a["fallback"] for a in answers] == [cause] * 3
        assert proxy.circuit(name) == "closed"


def test_circuits_are_per_policy(start_proxy: StartProxy, error_model: RunningModel) -> None:
    proxy = start_proxy(
        credit_policy("first", error_model.url + V2_PATH, failures=1, reset_after_s=60),
        credit_policy("second", error_model.url + V2_PATH, failures=1, reset_after_s=60),
    )

    proxy.decide("first", LOW_RISK)

    assert (proxy.circuit("first"), proxy.circuit("second")) == ("open", "closed")
    assert proxy.decide("second", LOW_RISK).json()["model"]["status"] == "error"
    assert (circuit_gauge(proxy, "first"), circuit_gauge(proxy, "second")) == (2, 2)
