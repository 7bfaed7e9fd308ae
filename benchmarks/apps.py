"""The apps the HTTP benchmarks serve, as factories an ASGI server imports by name from benchmarks/.

- `apps:make_passthrough`: a bare litestar app that POSTs the body it gets to the upstream and
  answers what the upstream answered; no guard logic. The client is chosen by name.
- `apps:make_guardrails`: the real app, `build_app` with policies/credit-risk.yaml pointed at the upstream.

A server's command line can pass no arguments to a factory, so both read the environment:
BENCH_UPSTREAM (the model's url) and, for the passthrough, BENCH_CLIENT (a key of CLIENTS).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from litestar import Litestar, Request, Response, post

from guardrails.app import build_app
from guardrails.asgi_front import DecisionFront
from guardrails.policy.load import load_policy_file
from guardrails.upstream.http1 import Http1Transport
from guardrails.upstream.transport import AiohttpTransport, HttpxTransport, Reply, Transport, TransportFailure

POLICY_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "policies", "credit-risk.yaml")
POOL = 256  # as the transports' default
TIMEOUT_S = 0.3  # as credit-risk.yaml's timeout_ms
MAX_BYTES = 4 * 1024 * 1024  # as the policy's default max_response_bytes
JSON = "application/json"


class RawHttpx:
    """httpx.AsyncClient.post as a caller would write it, for a view of our wrapper's cost."""

    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._client = httpx.AsyncClient(limits=limits, headers={"content-type": JSON})

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        response = await self._client.post(url, content=body, timeout=timeout_s)
        return Reply(response.status_code, response.content)

    async def close(self) -> None:
        await self._client.aclose()


class RawAiohttp:
    """aiohttp.ClientSession.post as a caller would write it, for a view of our wrapper's cost."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=POOL, limit_per_host=0)
            self._session = aiohttp.ClientSession(connector=connector, headers={"content-type": JSON})
        async with self._session.post(url, data=body, timeout=self._timeout) as response:
            return Reply(response.status, await response.read())

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _httpx_over_aiohttp() -> Transport:
    from httpx_aiohttp import AiohttpTransport as HttpxAiohttp

    limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
    return HttpxTransport(POOL, transport=HttpxAiohttp(limits=limits))


CLIENTS: dict[str, tuple[str, Callable[[], Transport]]] = {
    "httpx": ("httpx.AsyncClient, pooled (our HttpxTransport)", HttpxTransport),
    "httpx-aiohttp": ("httpx over httpx-aiohttp (our HttpxTransport)", _httpx_over_aiohttp),
    "aiohttp": ("aiohttp.ClientSession (our AiohttpTransport)", AiohttpTransport),
    "http1": ("our Http1Transport (httptools)", Http1Transport),
    "httpx-raw": ("httpx.AsyncClient.post, no wrapper", RawHttpx),
    "aiohttp-raw": ("aiohttp.ClientSession.post, no wrapper", RawAiohttp),
}


def passthrough_app(upstream: str, transport: Transport) -> Litestar:
    """POST `path-of-upstream` -> the upstream, answer as it answered; 502 if it could not be reached."""

    async def forward(request: Request[Any, Any, Any]) -> Response[bytes]:
        reply = await transport.post(upstream, await request.body(), TIMEOUT_S, MAX_BYTES)
        if isinstance(reply, TransportFailure):
            return Response(reply.detail.encode(), status_code=502, media_type="text/plain")
        return Response(reply.body, status_code=reply.status, media_type=JSON)

    handler = post(urlsplit(upstream).path, status_code=200, name="forward")(forward)
    return Litestar(route_handlers=[handler], on_shutdown=[transport.close], logging_config=None, openapi_config=None)


def make_passthrough() -> Litestar:
    _, make = CLIENTS[os.environ["BENCH_CLIENT"]]
    return passthrough_app(os.environ["BENCH_UPSTREAM"], make())


def make_guardrails() -> DecisionFront:
    policy = load_policy_file(POLICY_FILE)
    return build_app([policy], urls={policy.name: os.environ["BENCH_UPSTREAM"]})
