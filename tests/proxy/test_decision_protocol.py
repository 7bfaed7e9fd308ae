"""`DecisionProtocol`: plain decision requests are answered without ASGI; HTTP stays HTTP.

The app is a `DecisionFront` that counts the requests it is called with through ASGI, so a test
can see which path answered. Raw sockets check what an HTTP client relies on: keep-alive,
pipelined requests answered in order, `Connection: close`, HTTP/1.0.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest

from guardrails.app import build_app
from guardrails.asgi_front import DecisionFront
from guardrails.decision_protocol import DecisionProtocol
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread, uvicorn_config
from guardrails.server import ServerSettings
from tests.proxy.conftest import LOW_RISK, V2_PATH, RunningModel, credit_policy

BODY = msgspec.json.encode(LOW_RISK)


class CountingFront(DecisionFront):
    """The real front, counting the HTTP requests that reach it through ASGI."""

    asgi_requests = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.asgi_requests += 1
        await super().__call__(scope, receive, send)


@pytest.fixture(scope="module")
def served(models: dict[str, RunningModel]) -> Iterator[tuple[CountingFront, str]]:
    settings = ServerSettings(max_body_bytes=4096, reload_interval_s=None)
    built = build_app([load_policy_text(credit_policy("credit", models["ok"].url + V2_PATH))], settings)
    front = CountingFront(built.app, built.service, built.max_body_bytes, built.tokens)
    with ServerThread(front) as server:
        yield front, server.url


def test_serve_uses_the_decision_protocol() -> None:
    assert uvicorn_config(object()).http is DecisionProtocol


def test_a_plain_decision_request_skips_asgi_and_the_rest_does_not(served: tuple[CountingFront, str]) -> None:
    front, url = served
    before = front.asgi_requests
    with httpx.Client(base_url=url) as client:
        plain = client.post("/v1/decide/credit", content=BODY, headers={"x-request-id": "r-1"})
        batch = client.post("/v1/decide/credit/batch", json={"instances": [LOW_RISK]})
        assert front.asgi_requests == before

        chunked = client.post("/v1/decide/credit", content=iter([BODY]))  # no Content-Length
        health = client.get("/health/live")
        assert front.asgi_requests == before + 2

    assert (plain.status_code, plain.headers["x-request-id"], plain.json()["outcome"]) == (200, "r-1", "approve")
    assert plain.headers["x-decision-id"] == plain.json()["decision_id"]
    assert plain.headers["content-type"] == "application/json"
    assert batch.status_code == 200 and len(batch.json()["decisions"]) == 1
    assert chunked.status_code == 200 and health.status_code == 200


def _request(path: str, body: bytes, *extra: str, version: str = "1.1") -> bytes:
    head = [f"POST {path} HTTP/{version}", "Host: test", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _read_responses(sock: socket.socket, count: int) -> tuple[list[tuple[str, dict[str, str], bytes]], bytes]:
    """`count` responses read off `sock` (each sized by Content-Length), and whatever came after them."""
    data, responses = b"", []
    while len(responses) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            end = head_end + 4 + int(headers["content-length"])
            if len(data) >= end:
                responses.append((head[0], headers, data[head_end + 4 : end]))
                data = data[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return responses, data


def _connect(url: str) -> socket.socket:
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()  # type: ignore[union-attr]
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def test_pipelined_requests_are_answered_in_order_on_one_connection(served: tuple[CountingFront, str]) -> None:
    _, url = served
    with _connect(url) as sock:
        sock.sendall(
            _request("/v1/decide/credit", BODY, "X-Request-Id: first")
            + _request("/v1/decide/credit", b'{"amount": -1}', "X-Request-Id: second")
            + b"GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n"
            + _request("/v1/decide/credit", BODY, "X-Request-Id: fourth")
        )
        responses, rest = _read_responses(sock, 4)

    assert [(status, headers.get("x-request-id")) for status, headers, _ in responses] == [
        ("HTTP/1.1 200 OK", "first"),
        ("HTTP/1.1 422 Unprocessable Entity", "second"),
        ("HTTP/1.1 200 OK", None),
        ("HTTP/1.1 200 OK", "fourth"),
    ]
    assert rest == b""


def test_keep_alive_serves_many_requests_on_one_connection(served: tuple[CountingFront, str]) -> None:
    _, url = served
    with _connect(url) as sock:
        for i in range(5):
            sock.sendall(_request("/v1/decide/credit", BODY, f"X-Request-Id: r{i}"))
            ((status, headers, body),) = _read_responses(sock, 1)[0]
            assert (status, headers["x-request-id"]) == ("HTTP/1.1 200 OK", f"r{i}")
            assert "connection" not in headers
            assert msgspec.json.decode(body)["outcome"] == "approve"


@pytest.mark.parametrize(
    "request_bytes",
    [_request("/v1/decide/credit", BODY, "Connection: close"), _request("/v1/decide/credit", BODY, version="1.0")],
    ids=["connection-close", "http-1.0"],
)
def test_a_request_that_ends_the_connection_gets_its_answer_then_the_close(
    served: tuple[CountingFront, str], request_bytes: bytes
) -> None:
    _, url = served
    with _connect(url) as sock:
        sock.sendall(request_bytes)
        responses, rest = _read_responses(sock, 1)
        assert sock.recv(1) == b""  # closed by the server
    ((status, headers, body),) = responses
    assert status.endswith("200 OK") and headers["connection"] == "close"
    assert msgspec.json.decode(body)["outcome"] == "approve"
    assert rest == b""
