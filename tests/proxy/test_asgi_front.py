"""The bare ASGI front answers the decision routes exactly as the litestar handlers behind it would.

Two servers over the same policy and model: the app as `create_app` returns it (the front
answers POST /v1/decide/...), and the litestar app alone (`.app`, whose handlers the OpenAPI
schema documents). Every request below must get the same status, the same headers that
matter and the same body, apart from decision ids and latencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from guardrails.app import build_app
from guardrails.asgi_front import DecisionFront
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings
from tests.proxy.conftest import LOW_RISK, V2_PATH, RunningModel, credit_policy

API_TOKEN = "api-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
VARYING = {"decision_id", "latency_ms"}  # differ from one decision to the next, whoever answers


def _comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k in ("content-type", "x-request-id", "www-authenticate")}
    if "x-decision-id" in response.headers:
        headers["x-decision-id"] = "present"
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.text
    return response.status_code, headers, _without_varying(body)


def _without_varying(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_varying(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [_without_varying(v) for v in value]
    return value


@pytest.fixture(scope="module")
def both(models: dict[str, RunningModel]) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(the front, litestar alone), each on its own loopback port, with the API token set."""
    url = models["ok"].url + V2_PATH
    settings = ServerSettings(max_body_bytes=2048, api_token=API_TOKEN, admin_token=ADMIN_TOKEN, reload_interval_s=None)
    front = build_app([load_policy_text(credit_policy("credit", url))], settings)
    behind = build_app([load_policy_text(credit_policy("credit", url))], settings)
    assert isinstance(front, DecisionFront)
    with (
        ServerThread(front) as a,
        ServerThread(behind.app) as b,
        httpx.Client(base_url=a.url, timeout=10) as ca,
        httpx.Client(base_url=b.url, timeout=10) as cb,
    ):
        yield ca, cb


AUTH = {"authorization": f"Bearer {API_TOKEN}"}
CASES: dict[str, dict[str, Any]] = {
    "decision": {"url": "/v1/decide/credit", "json": LOW_RISK, "headers": AUTH},
    "admin token accepted": {
        "url": "/v1/decide/credit",
        "json": LOW_RISK,
        "headers": {"authorization": f"bearer {ADMIN_TOKEN}"},
    },
    "request id echoed": {"url": "/v1/decide/credit", "json": LOW_RISK, "headers": {**AUTH, "x-request-id": "r-1"}},
    "request id not printable": {
        "url": "/v1/decide/credit",
        "json": LOW_RISK,
        "headers": {**AUTH, "x-request-id": "a\tb"},
    },
    "invalid input": {"url": "/v1/decide/credit", "json": {"amount": -1}, "headers": AUTH},
    "malformed json": {"url": "/v1/decide/credit", "content": b"{nope", "headers": AUTH},
    "empty body": {"url": "/v1/decide/credit", "content": b"", "headers": AUTH},
    "unknown policy": {"url": "/v1/decide/nope", "json": LOW_RISK, "headers": AUTH},
    "over the limit": {"url": "/v1/decide/credit", "content": b" " * 4096, "headers": AUTH},
    "streamed over the limit": {
        "url": "/v1/decide/credit",
        "content": iter([b" " * 1500, b" " * 1500]),
        "headers": AUTH,
    },
    "no token": {"url": "/v1/decide/credit", "json": LOW_RISK},
    "wrong token": {"url": "/v1/decide/credit", "json": LOW_RISK, "headers": {"authorization": "Bearer nope"}},
    "not bearer": {"url": "/v1/decide/credit", "json": LOW_RISK, "headers": {"authorization": f"Basic {API_TOKEN}"}},
    "batch": {"url": "/v1/decide/credit/batch", "json": {"instances": [LOW_RISK, LOW_RISK]}, "headers": AUTH},
    "batch not instances": {"url": "/v1/decide/credit/batch", "json": {"items": []}, "headers": AUTH},
    "batch without token": {"url": "/v1/decide/credit/batch", "json": {"instances": [LOW_RISK]}},
    "get on a decision route": {"method": "GET", "url": "/v1/decide/credit", "headers": AUTH},
    "a deeper path": {"url": "/v1/decide/credit/batch/more", "json": LOW_RISK, "headers": AUTH},
    "no policy name": {"url": "/v1/decide/", "json": LOW_RISK, "headers": AUTH},
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_front_answers_as_litestar_would(both: tuple[httpx.Client, httpx.Client], case: str) -> None:
    options = dict(CASES[case])
    method = options.pop("method", "POST")
    content = options.get("content")
    if content is not None and not isinstance(content, bytes):  # a generator is used up by one request
        chunks = list(content)
        front = both[0].request(method, **{**options, "content": iter(chunks)})
        behind = both[1].request(method, **{**options, "content": iter(chunks)})
    else:
        front = both[0].request(method, **options)
        behind = both[1].request(method, **options)

    assert _comparable(front) == _comparable(behind)
    assert "Traceback" not in front.text


def test_the_cases_cover_every_status(both: tuple[httpx.Client, httpx.Client]) -> None:
    """The parity above means something only if the cases reach every answer the routes give."""
    statuses = set()
    for case in ("decision", "malformed json", "no token", "unknown policy", "get on a decision route"):
        statuses.add(both[0].request(CASES[case].get("method", "POST"), **_no_method(CASES[case])).status_code)
    statuses.add(both[0].post("/v1/decide/credit", content=b" " * 4096, headers=AUTH).status_code)
    statuses.add(both[0].post("/v1/decide/credit", json={"amount": -1}, headers=AUTH).status_code)
    assert statuses == {200, 400, 401, 404, 405, 413, 422}


def _no_method(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k != "method"}
