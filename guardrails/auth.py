"""Bearer tokens for the HTTP API, compared in constant time.

- Audit and admin endpoints need `Authorization: Bearer <GUARDRAILS_ADMIN_TOKEN>`; with
  no admin token configured they answer 403 and say how to enable them.
- Decision endpoints are open unless GUARDRAILS_API_TOKEN is set; then they need it (the
  admin token is accepted too).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

# Guards are coroutines: litestar runs a plain function guard in a worker thread, per request.
Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]
CHALLENGE_HEADER = (b"www-authenticate", b'Bearer realm="guardrails"')
_CHALLENGE = {CHALLENGE_HEADER[0].decode(): CHALLENGE_HEADER[1].decode()}  # as litestar takes headers
API_TOKEN_NEEDED = "this endpoint needs `Authorization: Bearer <API token>`"


def bearer_matches(authorization: str | None, tokens: list[str]) -> bool:
    """Whether an Authorization header value is `Bearer <one of tokens>`."""
    scheme, _, token = (authorization or "").partition(" ")
    given = token.strip()
    if scheme.lower() != "bearer" or not given:
        return False
    # Compare against every token, always, so timing says nothing about which matched.
    results = [hmac.compare_digest(given.encode(), expected.encode()) for expected in tokens]
    return any(results)


def admin_guard(admin_token: str | None) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if admin_token is None:
            raise PermissionDeniedException(
                "audit and admin endpoints are disabled: set GUARDRAILS_ADMIN_TOKEN to enable them"
            )
        if not bearer_matches(connection.headers.get("authorization"), [admin_token]):
            raise NotAuthorizedException(
                "this endpoint needs `Authorization: Bearer <admin token>`", headers=_CHALLENGE
            )

    return guard


def api_tokens(api_token: str | None, admin_token: str | None) -> list[str] | None:
    """The tokens the decision routes accept; None while no API token is set (they are open)."""
    return None if api_token is None else [t for t in (api_token, admin_token) if t]


def api_guards(api_token: str | None, admin_token: str | None) -> list[Guard]:
    """The decision routes' guards: none at all while no API token is set (they are open)."""
    tokens = api_tokens(api_token, admin_token)
    if tokens is None:
        return []

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not bearer_matches(connection.headers.get("authorization"), tokens):
            raise NotAuthorizedException(API_TOKEN_NEEDED, headers=_CHALLENGE)

    return [guard]
