"""Raw loopback servers that write exact bytes, and every transport to point at them.

- `RawServer`: an asyncio server on a free 127.0.0.1 port, in the test's own event loop. Each
  request it reads gets the next `Say` of its script (the last one repeats): bytes to write,
  then keep the connection, close it, or never answer. It counts accepted connections, so a
  test sees whether a client reused one.
- `clients`: makes transports of one kind and closes them after the test; a test that takes
  it runs once per kind and loop in CLIENT_LOOPS.
- Tests are `async def`, run by anyio's pytest plugin (`anyio_backend` picks the loop).
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from guardrails.upstream.http1 import Http1Transport
from guardrails.upstream.transport import AiohttpTransport, HttpxTransport, Transport

PATH = "/v2/models/credit/infer?trace=1"
BODY = b'{"outputs":[{"name":"predict_proba","data":[0.9,0.1]}]}'
IDLE_S = 0.05  # long enough for a client's loop to see a close or stray bytes on loopback

TRANSPORTS: dict[str, Callable[[int], Transport]] = {
    "http1": Http1Transport,
    "aiohttp": AiohttpTransport,
    "httpx": HttpxTransport,
}


# ---------------------------------------------------------------- answers as bytes


def response(body: bytes = BODY, *headers: str, status: str = "200 OK", version: str = "1.1") -> bytes:
    """A response head with exactly `headers`, then `body` (no Content-Length unless given)."""
    head = "".join(f"{line}\r\n" for line in (f"HTTP/{version} {status}", *headers))
    return f"{head}\r\n".encode() + body


def sized(body: bytes = BODY, *headers: str, status: str = "200 OK", version: str = "1.1") -> bytes:
    return response(body, f"Content-Length: {len(body)}", *headers, status=status, version=version)


def chunked(body: bytes = BODY, size: int = 7, *headers: str) -> bytes:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    return response(encoded, "Transfer-Encoding: chunked", *headers)


def gzipped(body: bytes) -> bytes:
    return gzip.compress(body, mtime=0)


@dataclass(frozen=True)
class Say:
    """What the server does with one request."""

    data: bytes = b""  # written at once (after `delay_s`)
    close: bool = False  # then close the connection
    hang: bool = False  # never answer; hold the connection until the client closes it
    delay_s: float = 0.0
    later: bytes = b""  # written IDLE_S / 2 after `data`, when the connection should be idle


class RawServer:
    """`async with RawServer(Say(...), ...) as server`: serving on `server.url` inside the block."""

    def __init__(self, *script: Say, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.accepted = 0  # connections
        self.requests: list[bytes] = []  # each as read: head and body
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: list[asyncio.Task[None]] = []

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{PATH}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # a handler that waits on its connection sees the end, and returns
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def wait_for_requests(self, count: int) -> None:
        while len(self.requests) < count:
            await asyncio.sleep(0.001)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        try:
            while await self._answer(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client closed the connection
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request and do what the script says; False once the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")), 0
        )
        say = self.script[min(len(self.requests), len(self.script) - 1)]
        self.requests.append(head + await reader.readexactly(length))
        if say.hang:
            await reader.read()  # until the client gives up
            return False
        await asyncio.sleep(say.delay_s)
        writer.write(say.data)
        await writer.drain()
        if say.later:
            await asyncio.sleep(IDLE_S / 2)
            writer.write(say.later)
        return not say.close


# ---------------------------------------------------------------- event loops and transports


LOOPS = {"asyncio": ("asyncio", {"use_uvloop": False}), "uvloop": ("asyncio", {"use_uvloop": True})}
# Ours runs on both loops the proxy runs on (uvloop when installed, as `serve` has it; asyncio
# otherwise); aiohttp and httpx, whose loop handling is theirs, on uvloop only: half the time.
CLIENT_LOOPS = [("http1", "asyncio"), ("http1", "uvloop"), ("aiohttp", "uvloop"), ("httpx", "uvloop")]


@pytest.fixture
def anyio_backend() -> Any:
    return LOOPS["asyncio"]  # replaced by pytest_generate_tests' parameters


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test runs on both loops; one that takes `clients`, once per (transport, loop) in CLIENT_LOOPS."""
    if "clients" in metafunc.fixturenames:
        cases = [pytest.param(kind, LOOPS[loop], id=f"{kind}-{loop}") for kind, loop in CLIENT_LOOPS]
        metafunc.parametrize(("client_kind", "anyio_backend"), cases)
    elif "anyio_backend" in metafunc.fixturenames:
        metafunc.parametrize("anyio_backend", [pytest.param(backend, id=name) for name, backend in LOOPS.items()])


@dataclass
class Clients:
    """Makes transports of one kind; `kind` names it for the cases where the kinds differ."""

    kind: str
    made: list[Transport] = field(default_factory=list)

    def __call__(self, pool_size: int = 256) -> Transport:
        transport = TRANSPORTS[self.kind](pool_size)
        self.made.append(transport)
        return transport


@pytest.fixture
async def clients(client_kind: str) -> AsyncIterator[Clients]:
    made = Clients(client_kind)
    yield made
    for transport in made.made:
        await transport.close()
