"""How bytes reach a model server: one small interface, one pooled client per upstream.

`guardrails.upstream.http1.Http1Transport` is the hot path's client (see
benchmarks/bench_http_client.py for the measurement behind the choice); `AiohttpTransport`
and `HttpxTransport` implement the same interface, for comparison and for callers that
prefer those libraries. Failures are values (`TransportFailure`), never exceptions, so the
caller can map each to a fallback cause.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, Protocol

import aiohttp
import httpx


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class TransportFailure:
    kind: Literal["connect", "timeout", "too_large", "protocol"]
    detail: str


class Transport(Protocol):
    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure: ...

    async def close(self) -> None: ...


_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}


class AiohttpTransport:
    """A pooled aiohttp session; created lazily inside the running event loop."""

    def __init__(self, pool_size: int = 256) -> None:
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=_JSON_HEADERS, auto_decompress=True)
        return self._session

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._client().post(url, data=body, timeout=timeout) as response:
                length = response.content_length
                if length is not None and length > max_bytes:
                    return TransportFailure("too_large", f"response of {length} bytes is over {max_bytes}")
                payload = await _read_capped(response, max_bytes)
                if payload is None:
                    return TransportFailure("too_large", f"response is over {max_bytes} bytes")
                return Reply(response.status, payload)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            return TransportFailure("timeout", f"no answer within {timeout_s * 1000:.0f} ms")
        except aiohttp.ClientConnectorError as exc:
            return TransportFailure("connect", f"cannot connect: {exc.os_error or exc}")
        except aiohttp.ClientError as exc:
            return TransportFailure("protocol", f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes | None:
    if response.content_length is not None and "Content-Encoding" not in response.headers:
        return await response.read()  # the length was checked; a compressed body is capped as it inflates
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class HttpxTransport:
    """The same interface over a pooled `httpx.AsyncClient`."""

    def __init__(self, pool_size: int = 256, transport: httpx.AsyncBaseTransport | None = None) -> None:
        limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        self._client = httpx.AsyncClient(limits=limits, headers=_JSON_HEADERS, transport=transport)

    async def post(self, url: str, body: bytes, timeout_s: float, max_bytes: int) -> Reply | TransportFailure:
        try:
            async with self._client.stream("POST", url, content=body, timeout=timeout_s) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return TransportFailure("too_large", f"response is over {max_bytes} bytes")
                    chunks.append(chunk)
                return Reply(response.status_code, b"".join(chunks))
        except httpx.TimeoutException:
            return TransportFailure("timeout", f"no answer within {timeout_s * 1000:.0f} ms")
        except httpx.ConnectError as exc:
            return TransportFailure("connect", f"cannot connect: {exc}")
        except httpx.HTTPError as exc:
            return TransportFailure("protocol", f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        await self._client.aclose()


async def close_all(transports: list[Transport]) -> None:
    await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)
