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
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="guardrails"'}


def _bearer(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(given: str | None, tokens: list[str]) -> bool:
    if given is None:
        return False
    # Compare against every token, always, so timing says nothing about which matched.
    results = [hmac.compare_digest(given.encode(), token.encode()) for token in tokens]
    return any(results)


def admin_guard(admin_token: str | None) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if admin_token is None:
            raise PermissionDeniedException(
                "audit and admin endpoints are disabled: set GUARDRAILS_ADMIN_TOKEN to enable them"
            )
        if not _matches(_bearer(connection), [admin_token]):
            raise NotAuthorizedException(
                "this endpoint needs `Authorization: Bearer <admin token>`", headers=_CHALLENGE
            )

    return guard


def api_guards(api_token: str | None, admin_token: str | None) -> list[Guard]:
    """The decision routes' guards: none at all while no API token is set (they are open)."""
    if api_token is None:
        return []
    tokens = [t for t in (api_token, admin_token) if t]

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not _matches(_bearer(connection), tokens):
            raise NotAuthorizedException("this endpoint needs `Authorization: Bearer <API token>`", headers=_CHALLENGE)

    return [guard]
