"""Every way the model can fail gives HTTP 200 with the policy's fallback and the right cause."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from guardrails.policy.load import load_policy_text
from guardrails.registry import PolicyRegistry
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings, create_app
from guardrails.upstream.transport import Reply, TransportFailure
from tests.proxy.conftest import (
    LOW_RISK,
    SLOW_DELAY_MS,
    V2_PATH,
    Canned,
    Proxy,
    RunningCanned,
    RunningModel,
    StartProxy,
    credit_policy,
    moderation_policy,
)

INTERNAL_DETAIL = "an internal error occurred; see the server log"


def assert_fallback(response: Any, policy: str, cause: str, detail: str | None) -> dict[str, Any]:
    """The response is the credit policies' fallback with `cause`; returns its `model` part."""
    assert response.status_code == 200
    body = response.json()
    assert body["decision_id"] == response.headers["x-decision-id"]
    assert {k: body[k] for k in body if k not in ("decision_id", "policy_version", "latency_ms", "model")} == {
        "policy": policy,
        "outcome": "review",
        "reasons": ["MODEL_UNAVAILABLE"],
        "rules": [],
        "score": None,
        "confidence": None,
        "margin": None,
        "label": None,
        "fallback": cause,
        "fallback_detail": detail,
        "request_id": None,
        "errors": None,
    }
    model: dict[str, Any] = body["model"]
    return model


def test_closed_port_is_upstream_unavailable(proxy: Proxy, closed_url: str) -> None:
    response = proxy.decide("credit-closed", LOW_RISK)

    port = int(closed_url.split(":")[2].split("/")[0])
    detail = f"cannot connect to 127.0.0.1:{port}: Connection refused"
    model = assert_fallback(response, "credit-closed", "upstream_unavailable", detail)
    assert model == {"status": "unavailable", "latency_ms": model["latency_ms"], "http_status": None, "attempts": 1}


def test_slow_model_is_upstream_timeout(proxy: Proxy, slow_model: RunningModel) -> None:
    response = proxy.decide("credit-slow", LOW_RISK)

    model = assert_fallback(response, "credit-slow", "upstream_timeout", "no answer within 100 ms")
    assert model == {"status": "timeout", "latency_ms": model["latency_ms"], "http_status": None, "attempts": 1}
    assert 90 <= model["latency_ms"] < SLOW_DELAY_MS  # the client's timer may fire a hair early
    assert slow_model.requests == 1


def test_http_500_is_upstream_error(proxy: Proxy, error_model: RunningModel) -> None:
    response = proxy.decide("credit-error", LOW_RISK)

    model = assert_fallback(response, "credit-error", "upstream_error", 'HTTP 500: {"error":"model crashed"}')
    assert model == {"status": "error", "latency_ms": model["latency_ms"], "http_status": 500, "attempts": 1}
    assert error_model.requests == 1


def test_http_503_is_upstream_error(proxy: Proxy, unavailable_model: RunningModel) -> None:
    response = proxy.decide("credit-unavailable", LOW_RISK)

    model = assert_fallback(response, "credit-unavailable", "upstream_error", 'HTTP 503: {"error":"model overloaded"}')
    assert model == {"status": "error", "latency_ms": model["latency_ms"], "http_status": 503, "attempts": 1}


def test_http_404_is_upstream_error(start_proxy: StartProxy, ok_model: RunningModel) -> None:
    proxy = start_proxy(credit_policy("credit", ok_model.url + "/v3/nothing"))

    response = proxy.decide("credit", LOW_RISK)

    model = assert_fallback(response, "credit", "upstream_error", 'HTTP 404: {"error":"no such model"}')
    assert model["http_status"] == 404


def test_garbage_is_output_invalid(proxy: Proxy, garbage_model: RunningModel) -> None:
    response = proxy.decide("credit-garbage", LOW_RISK)

    detail = "response is not JSON: JSON is malformed: invalid character (byte 0)"
    model = assert_fallback(response, "credit-garbage", "output_invalid", detail)
    assert model == {"status": "invalid_output", "latency_ms": model["latency_ms"], "http_status": 200, "attempts": 1}


def test_wrong_shape_is_output_invalid(proxy: Proxy, wrong_shape_model: RunningModel) -> None:
    response = proxy.decide("credit-wrong-shape", LOW_RISK)

    model = assert_fallback(
        response, "credit-wrong-shape", "output_invalid", "output tensor has 2 values for shape [1, 3]"
    )
    assert model["status"] == "invalid_output"


def test_out_of_range_score_is_output_invalid(proxy: Proxy, out_of_range_model: RunningModel) -> None:
    response = proxy.decide("credit-out-of-range", LOW_RISK)

    # The model answers [1 - 1.5, 1.5] for (good, bad): the first class is already out of range.
    model = assert_fallback(response, "credit-out-of-range", "output_invalid", "score -0.5 is outside [0.0, 1.0]")
    assert model == {"status": "ok", "latency_ms": model["latency_ms"], "http_status": 200, "attempts": 1}


def test_nan_score_is_output_invalid(proxy: Proxy, out_of_range_model: RunningModel) -> None:
    out_of_range_model.app.constant = math.nan  # JSON has no NaN: the model's encoder sends null

    response = proxy.decide("credit-out-of-range", LOW_RISK)

    detail = "expected a score or a list of class probabilities, got a list with non-numbers"
    assert_fallback(response, "credit-out-of-range", "output_invalid", detail)


def v2_answer(*data: Any) -> bytes:
    """A v2 body whose `predict_proba` tensor (one row) holds `data` as written."""
    tensor = b'{"name":"predict_proba","shape":[1,%d],"datatype":"FP64","data":[%s]}' % (
        len(data),
        b",".join(str(d).encode() for d in data),
    )
    return b'{"outputs":[' + tensor + b"]}"


UNREADABLE_V2 = {
    # id: (body, model status, detail); "ok" when the protocol read rows but the score check refused them
    "no-outputs": (b"{}", "invalid_output", "response has no `outputs`"),
    "no-tensor": (
        b'{"outputs": [{"name": "other"}]}',
        "invalid_output",
        "response has no output tensor `predict_proba`",
    ),
    "float-overflow": (
        v2_answer("0.5", "1e999"),
        "invalid_output",
        "response is not JSON: Number out of range - at `$[...][0][...][1]`",
    ),
    "huge-integer": (v2_answer("0.5", "1" + "0" * 400), "ok", "score is infinite"),
    "huge-negative-integer": (v2_answer("0.5", "-1" + "0" * 400), "ok", "score is infinite"),
    "string": (
        v2_answer("0.5", '"0.5"'),
        "ok",
        "expected a score or a list of class probabilities, got a list with non-numbers",
    ),
    "3-classes": (v2_answer("0.2", "0.3", "0.5"), "ok", "expected 2 class probabilities, got 3"),
}


@pytest.mark.parametrize(("body", "status", "detail"), UNREADABLE_V2.values(), ids=UNREADABLE_V2.keys())
def test_unreadable_v2_answers_are_output_invalid(
    start_proxy: StartProxy, canned: RunningCanned, body: bytes, status: str, detail: str
) -> None:
    proxy = start_proxy(credit_policy("credit", canned.url + V2_PATH))
    canned.answer(Canned(200, body))

    response = proxy.decide("credit", LOW_RISK)

    model = assert_fallback(response, "credit", "output_invalid", detail)
    assert model == {"status": status, "latency_ms": model["latency_ms"], "http_status": 200, "attempts": 1}


def test_json_answer_without_the_score_path_is_output_invalid(start_proxy: StartProxy, canned: RunningCanned) -> None:
    proxy = start_proxy(moderation_policy("moderation", canned.url))
    canned.answer(Canned(200, b'{"error": "overloaded"}'))

    response = proxy.decide("moderation", {"text": "hi", "channel": "post", "author_account_age_days": 3})

    body = response.json()
    assert (response.status_code, body["outcome"], body["reasons"]) == (200, "escalate", ["MODERATION_UNAVAILABLE"])
    assert (body["fallback"], body["fallback_detail"]) == (
        "output_invalid",
        "response has no `probabilities` (stopped at `probabilities`)",
    )


def test_response_over_max_response_bytes_is_output_invalid(proxy: Proxy, ok_model: RunningModel) -> None:
    # ModelServer sends a content-length: the size is refused before the body is read.
    response = proxy.decide("credit-too-large", LOW_RISK)

    detail = response.json()["fallback_detail"]
    model = assert_fallback(response, "credit-too-large", "output_invalid", detail)
    assert detail.startswith("response of ") and detail.endswith(" bytes is over 10")
    assert int(detail.split()[2]) > 10
    assert model == {"status": "invalid_output", "latency_ms": model["latency_ms"], "http_status": None, "attempts": 1}


def test_streamed_response_over_max_response_bytes_is_output_invalid(
    start_proxy: StartProxy, canned: RunningCanned
) -> None:
    proxy = start_proxy(credit_policy("credit", canned.url + V2_PATH, max_response_bytes=100_000))
    huge = b'{"outputs": [{"name": "predict_proba", "data": [' + b"0.5, " * 100_000 + b"0.5]}]}"
    canned.answer(Canned(200, huge, chunk_size=16 * 1024))  # chunked: no content-length to check first

    response = proxy.decide("credit", LOW_RISK)

    model = assert_fallback(response, "credit", "output_invalid", "response is over 100000 bytes")
    assert model["status"] == "invalid_output"


def nested_too_deeply(depth: int = 100_000) -> bytes:
    return b'{"outputs": ' + b"[" * depth + b"]" * depth + b"}"


def test_an_answer_nested_too_deeply_is_output_invalid(start_proxy: StartProxy, canned: RunningCanned) -> None:
    proxy = start_proxy(credit_policy("credit", canned.url + V2_PATH))
    canned.answer(Canned(200, nested_too_deeply()))

    response = proxy.decide("credit", LOW_RISK)

    model = assert_fallback(response, "credit", "output_invalid", "response is not JSON we can read: nested too deeply")
    assert model["status"] == "invalid_output" and canned.requests == 1


class ExplodingTransport:
    """A transport with a bug: the injected seam (the Transport interface), not a mock of our code."""

    calls = 0

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        ExplodingTransport.calls += 1
        raise RuntimeError("a bug in a transport")

    async def close(self) -> None:
        return None


@pytest.fixture
def exploding_proxy() -> Iterator[str]:
    policy = load_policy_text(credit_policy("credit", "http://127.0.0.1:9" + V2_PATH))
    registry = PolicyRegistry.of([policy], transport=ExplodingTransport)
    with ServerThread(create_app(ServerSettings(reload_interval_s=None), registry)) as server:
        yield server.url


def test_an_unexpected_exception_gives_the_internal_error_fallback(
    exploding_proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="guardrails.decisions"):
        response = httpx.post(exploding_proxy + "/v1/decide/credit", json=LOW_RISK, timeout=5)

    model = assert_fallback(response, "credit", "internal_error", INTERNAL_DETAIL)
    assert model == {"status": "skipped", "latency_ms": None, "http_status": None, "attempts": 0}
    [record] = [r for r in caplog.records if r.name == "guardrails.decisions" and r.levelno == logging.ERROR]
    assert record.getMessage().startswith("internal error deciding ")
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "Traceback" not in response.text and "a bug in a transport" not in response.text


def test_an_unexpected_exception_in_a_batch_gives_each_item_the_internal_error_fallback(
    exploding_proxy: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="guardrails.decisions"):
        response = httpx.post(
            exploding_proxy + "/v1/decide/credit/batch", json={"instances": [LOW_RISK] * 2}, timeout=5
        )

    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [(d["outcome"], d["fallback"], d["fallback_detail"]) for d in decisions] == [
        ("review", "internal_error", INTERNAL_DETAIL)
    ] * 2
    assert "a bug in a transport" not in response.text
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_failures_of_the_mlflow_protocol(start_proxy: StartProxy, canned: RunningCanned) -> None:
    proxy = start_proxy(credit_policy("credit", canned.url + "/invocations", protocol="mlflow"))
    canned.answer(Canned(200, msgspec.json.encode({"predictions": [[0.9, 0.1], [0.8, 0.2]]})))

    response = proxy.decide("credit", LOW_RISK)

    assert_fallback(response, "credit", "output_invalid", "expected 1 predictions, got 2")
