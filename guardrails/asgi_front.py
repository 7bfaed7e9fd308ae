"""The decision routes answered straight from ASGI, in front of the litestar app.

`POST /v1/decide/{policy}` and `POST /v1/decide/{policy}/batch` carry every model call, so
they are the hot path. Measured at one connection (benchmarks/bench_proxy.py), litestar's
request and response machinery alone added about 0.29 ms at p50 to a passthrough, over half
of the 0.5 ms guardrails may add in total. These two routes are therefore answered here, by
the same `DecisionService` call with the same token check, body limit and error bodies as
the litestar handlers in server.py. Every other request, including any other method on these
paths, goes to litestar, which also keeps documenting the decision routes in the OpenAPI
schema; tests/proxy/test_asgi_front.py checks that both answer alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

import msgspec

from guardrails.auth import API_TOKEN_NEEDED, CHALLENGE_HEADER, bearer_matches
from guardrails.envelope import ErrorBody
from guardrails.service import Answer, DecisionService

log = logging.getLogger("guardrails.server")

Scope = MutableMapping[str, Any]  # ASGI, as uvicorn gives it
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # litestar types its own scope and messages more narrowly
Response = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body

PREFIX = "/v1/decide/"
BATCH_SUFFIX = "/batch"
MAX_REQUEST_ID = 200
_JSON_HEADER = (b"content-type", b"application/json")
_READ_HEADERS = frozenset({b"authorization", b"content-length", b"x-request-id"})
_encode = msgspec.json.Encoder().encode


def request_id(value: str | None) -> str | None:
    """A caller's X-Request-Id as kept with the decision: at most 200 printable characters, else none."""
    if value is None:
        return None
    value = value[:MAX_REQUEST_ID]
    return value if value.isprintable() else None


def body_too_large(limit: object) -> str:
    return f"the body is over the limit of {limit} bytes"


def internal_error_body() -> bytes:
    return _encode(ErrorBody("internal_error", "an internal error occurred; see the server log"))


def decision_route(path: str) -> tuple[str, bool] | None:
    """(policy name, is batch) when `path` is a decision route."""
    if not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX) :]
    batch = rest.endswith(BATCH_SUFFIX)
    name = rest[: -len(BATCH_SUFFIX)] if batch else rest
    return (name, batch) if name and "/" not in name else None


class _Disconnected(Exception):
    """The caller went away before its body arrived: nothing is answered."""


class _TooLarge(Exception):
    pass


class DecisionFront:
    """An ASGI app: the decision routes answered by `service`, everything else by `app`."""

    def __init__(
        self, app: ASGIApp, service: DecisionService, max_body_bytes: int, tokens: Sequence[str] | None
    ) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.tokens = list(tokens) if tokens is not None else None  # None: the decision routes are open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = decision_route(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope["headers"])
        try:
            status, response_headers, body = await self._answer(route, headers, receive)
        except _Disconnected:
            return
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _answer(self, route: tuple[str, bool], headers: dict[str, str], receive: Receive) -> Response:
        refused = self.refusal(headers)
        if refused is not None:
            return refused
        try:
            body = await self._body(headers.get("content-length"), receive)
        except _TooLarge:
            answer = Answer(413, _encode(ErrorBody("body_too_large", body_too_large(self.max_body_bytes))))
            return response_for(answer, request_id(headers.get("x-request-id")), [])
        return await self._decide(route, headers, body)

    async def respond(self, route: tuple[str, bool], headers: dict[str, str], body: bytes) -> Response:
        """The answer to a decision request whose body has been read: status, headers, body.

        What `DecisionProtocol` calls, without ASGI, for the requests it answers itself.
        """
        refused = self.refusal(headers)
        return refused if refused is not None else await self._decide(route, headers, body)

    def refusal(self, headers: dict[str, str]) -> Response | None:
        """401 when GUARDRAILS_API_TOKEN is set and the request does not carry it (or the admin token)."""
        if self.tokens is None or bearer_matches(headers.get("authorization"), self.tokens):
            return None
        answer = Answer(401, _encode(ErrorBody("http_error", API_TOKEN_NEEDED)))
        return response_for(answer, request_id(headers.get("x-request-id")), [CHALLENGE_HEADER])

    async def _decide(self, route: tuple[str, bool], headers: dict[str, str], body: bytes) -> Response:
        caller_id = request_id(headers.get("x-request-id"))
        name, batch = route
        decide: Callable[[str, bytes, str | None], Awaitable[Answer]]
        decide = self.service.decide_batch if batch else self.service.decide
        try:
            answer = await decide(name, body, caller_id)
        except Exception:
            log.exception("unexpected error on POST %s%s", PREFIX, name)
            answer = Answer(500, internal_error_body())
        return response_for(answer, caller_id, [])

    async def _body(self, length: str | None, receive: Receive) -> bytes:
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers this front reads, by lower-case name (the last value wins, as in litestar)."""
    found = ((name.lower(), value) for name, value in raw)
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in found if name in _READ_HEADERS}


def response_for(answer: Answer, caller_id: str | None, extra: list[tuple[bytes, bytes]]) -> Response:
    """An answer as status, headers and body: JSON, with the caller's request id and the decision's id."""
    headers = [_JSON_HEADER, (b"content-length", str(len(answer.body)).encode()), *extra]
    return answer.status, headers + id_headers(answer, caller_id), answer.body


def id_headers(answer: Answer, caller_id: str | None) -> list[tuple[bytes, bytes]]:
    """X-Request-Id (the caller's, echoed) and X-Decision-Id (for a single decision)."""
    headers = []
    if caller_id is not None:
        headers.append((b"x-request-id", caller_id.encode("latin-1")))
    if len(answer.decision_ids) == 1:
        headers.append((b"x-decision-id", answer.decision_ids[0].encode()))
    return headers
