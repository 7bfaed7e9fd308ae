"""HTTP routes over the audit log: GET /v1/audit, /v1/audit/stats and /v1/audit/{decision_id}.

Each needs the admin token (`admin_guard`: 403 saying how to enable them when none is
configured, 401 without the right one). The SQLite reads run in a worker thread (sync
handlers, `sync_to_thread=True`), each on its own read-only connection, so the event loop
never waits on the disk. With auditing off they answer 404 saying so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import FromPath

from guardrails.audit.explain import Explanation, explain
from guardrails.audit.query import DEFAULT_LIMIT, MAX_LIMIT, Page, make_filters, parse_cursor, parse_limit, query
from guardrails.audit.sqlite import SQLiteAuditStore, closing
from guardrails.audit.stats import BY_KEYS, Stats, stats
from guardrails.audit.store import AuditStore
from guardrails.audit.times import parse_duration
from guardrails.auth import Guard
from guardrails.envelope import ErrorBody
from guardrails.errors import QueryError

JSON = "application/json"
FILTERS = ("policy", "outcome", "reason", "rule", "fallback", "since", "until")
QUERY_PARAMS = frozenset((*FILTERS, "limit", "cursor"))
STATS_PARAMS = frozenset(("policy", "by", "since", "until", "interval"))
_encode = msgspec.json.Encoder().encode


def _error(status: int, error: str, detail: str) -> Response[bytes]:
    return Response(_encode(ErrorBody(error, detail)), status_code=status, media_type=JSON)


AUDIT_OFF = ("audit_off", "auditing is off on this server, so there is no audit log to read")
_ERRORS = {
    400: ResponseSpec(ErrorBody, description="A query parameter is not understood"),
    401: ResponseSpec(ErrorBody, description="No admin token, or the wrong one"),
    403: ResponseSpec(ErrorBody, description="No admin token is configured (GUARDRAILS_ADMIN_TOKEN)"),
    404: ResponseSpec(ErrorBody, description="Auditing is off, or no such decision"),
}


def _params(request: Request[Any, Any, Any], known: frozenset[str]) -> dict[str, str]:
    params = request.query_params
    for name in params:
        if name not in known:
            raise QueryError(f"unknown query parameter {name!r}; known: {', '.join(sorted(known))}")
    return {name: str(params.get(name)) for name in params}


def audit_routes(store: AuditStore, admin: Guard, wall_ms: Callable[[], int]) -> list[HTTPRouteHandler]:
    reader: Callable[[], sqlite3.Connection] | None = store.reader if isinstance(store, SQLiteAuditStore) else None

    def answer(ask: Callable[[sqlite3.Connection], msgspec.Struct | None], missing: str = "") -> Response[bytes]:
        if reader is None:
            return _error(404, *AUDIT_OFF)
        try:
            with closing(reader()) as connection:
                result = ask(connection)
        except QueryError as exc:
            return _error(400, "bad_query", str(exc))
        if result is None:
            return _error(404, "unknown_decision", missing)
        return Response(_encode(result), media_type=JSON)

    @get("/v1/audit", guards=[admin], sync_to_thread=True, summary="Decisions, newest first", responses=_ERRORS)
    def records(request: Request[Any, Any, Any]) -> Response[Page]:
        def ask(connection: sqlite3.Connection) -> Page:
            params = _params(request, QUERY_PARAMS)
            filters = make_filters(now_ms=wall_ms(), prefix="", **{k: v for k, v in params.items() if k in FILTERS})
            limit = parse_limit(params["limit"], "limit", MAX_LIMIT) if "limit" in params else DEFAULT_LIMIT
            cursor = parse_cursor(params["cursor"]) if "cursor" in params else None
            return query(connection, filters, limit, cursor)

        return answer(ask)  # type: ignore[return-value]

    @get("/v1/audit/stats", guards=[admin], sync_to_thread=True, summary="Counts and rates", responses=_ERRORS)
    def audit_stats(request: Request[Any, Any, Any]) -> Response[Stats]:
        def ask(connection: sqlite3.Connection) -> Stats:
            params = _params(request, STATS_PARAMS)
            by = params.get("by", "outcome")
            if by not in BY_KEYS:
                raise QueryError(f"by: {by!r} is not one of {', '.join(BY_KEYS)}")
            interval = parse_duration(params["interval"], "interval") if "interval" in params else None
            times = {k: v for k, v in params.items() if k in ("policy", "since", "until")}
            filters = make_filters(now_ms=wall_ms(), prefix="", **times)
            return stats(connection, by, filters, interval)

        return answer(ask)  # type: ignore[return-value]

    @get(
        "/v1/audit/{decision_id:str}",
        guards=[admin],
        sync_to_thread=True,
        summary="The explanation of one decision",
        responses=_ERRORS,
    )
    def explanation(decision_id: FromPath[str]) -> Response[Explanation]:
        missing = f"no decision {decision_id!r} in the audit log"
        return answer(lambda connection: explain(connection, decision_id), missing)  # type: ignore[return-value]

    return [records, audit_stats, explanation]
