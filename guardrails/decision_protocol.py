"""uvicorn's httptools protocol, answering plain decision requests without building an ASGI cycle.

Measured at one connection (benchmarks/bench_proxy.py): uvicorn's per-request ASGI work (scope,
RequestResponseCycle, task, messages) cost about 0.15 ms at p50 here, a third of the 0.5 ms
guardrails may add. So a request this protocol can answer simply, it answers itself through
`DecisionFront.respond`: a `POST /v1/decide/...` over HTTP/1.1 with a Content-Length within the
body limit, no `Expect: 100-continue`, no upgrade, not pipelined behind another request. Every
other request, and every other route, takes uvicorn's own path to the ASGI app, unchanged.

While it answers, the connection's `cycle` is a stand-in that looks like an unfinished response
to uvicorn: a pipelined request queues behind it, a graceful shutdown lets it finish, a lost
connection is noted. This leans on uvicorn internals; pyproject pins uvicorn to versions it was
tested with, and tests/proxy/test_decision_protocol.py covers keep-alive, pipelining,
`Connection: close`, HTTP/1.0 and shutdown.
"""

from __future__ import annotations

import logging
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from guardrails.asgi_front import (
    PREFIX,
    DecisionFront,
    Response,
    decision_route,
    internal_error_body,
    request_headers,
    response_for,
)
from guardrails.service import Answer

log = logging.getLogger("guardrails.server")
_PREFIX_BYTES = PREFIX.encode()


class _Answering:
    """Stands in for uvicorn's RequestResponseCycle while a decision is answered here."""

    def __init__(self, keep_alive: bool) -> None:
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = keep_alive
        self.message_event = self  # uvicorn calls `cycle.message_event.set()` when the connection is lost

    def set(self) -> None:
        return None


class DecisionProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        self._front = app if isinstance(app, DecisionFront) and not self.root_path else None
        self._route: tuple[str, bool] | None = None  # the decision request being read here
        self._body: list[bytes] = []

    def on_headers_complete(self) -> None:
        route = self._own_route()
        if route is None:
            super().on_headers_complete()
            return
        self._route, self._body = route, []

    def _own_route(self) -> tuple[str, bool] | None:
        front, parser = self._front, self.parser
        if front is None or parser.get_method() != b"POST" or parser.get_http_version() != "1.1":
            return None
        if self.expect_100_continue or parser.should_upgrade() or self.limit_concurrency is not None:
            return None
        if self.cycle is not None and not self.cycle.response_complete:
            return None  # pipelined behind an unfinished response: uvicorn queues it
        if not self.url.startswith(_PREFIX_BYTES):
            return None
        path = httptools.parse_url(self.url).path
        if b"%" in path:
            return None
        length = next((value for name, value in self.headers if name == b"content-length"), None)
        if length is None or not length.isdigit() or int(length) > front.max_body_bytes:
            return None  # chunked, or over the limit: the ASGI path says so
        return decision_route(path.decode("ascii"))

    def on_body(self, body: bytes) -> None:
        if self._route is None:
            super().on_body(body)
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        route = self._route
        if route is None:
            super().on_message_complete()
            return
        self._route = None
        body = b"".join(self._body)
        self._body = []
        answering = _Answering(keep_alive=self.parser.should_keep_alive())
        self.cycle = answering  # type: ignore[assignment]
        headers = request_headers(self.headers)
        task = self.loop.create_task(self._answer(answering, route, headers, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(
        self, answering: _Answering, route: tuple[str, bool], headers: dict[str, str], body: bytes
    ) -> None:
        assert self._front is not None
        try:
            response = await self._front.respond(route, headers, body)
        except Exception:  # respond turns the service's failures into answers; this is a last guard
            log.exception("unexpected error on POST %s%s", PREFIX, route[0])
            response = response_for(Answer(500, internal_error_body()), None, [])
        if answering.disconnected or self.transport.is_closing():
            return
        self.transport.write(self._bytes(response, answering.keep_alive))
        answering.response_complete = True
        if not answering.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _bytes(self, response: Response, keep_alive: bool) -> bytes:
        status, headers, body = response
        out = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            out += [name, b": ", value, b"\r\n"]
        if not keep_alive:
            out.append(b"connection: close\r\n")
        out += [b"\r\n", body]
        return b"".join(out)
