"""`create_app`: thin litestar handlers over `DecisionService`; no module-level app, no globals.

Every error a caller can meet is JSON with an `error` code and a `detail` sentence:
400 malformed JSON, 404 unknown policy or route, 413 body over the limit, 422 invalid
input; an unexpected exception is a 500 with no stack trace (decisions never get one:
the service turns it into the fallback).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import FromPath

from guardrails.asgi_front import DecisionFront, body_too_large, id_headers, internal_error_body, request_id
from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.store import AuditStore, NullAuditStore
from guardrails.audit_routes import audit_routes
from guardrails.auth import Guard, admin_guard, api_guards, api_tokens
from guardrails.envelope import BatchEnvelope, DecisionEnvelope, ErrorBody, InputRejected
from guardrails.feedback_routes import feedback_routes
from guardrails.ids import DecisionIds
from guardrails.live import LivePolicy
from guardrails.metrics import CONTENT_TYPE, Metrics
from guardrails.policy_routes import close_all, monitoring, policy_routes, watching
from guardrails.registry import PolicyRegistry
from guardrails.service import Answer, DecisionService
from guardrails.upstream.breaker import STATE_VALUES

log = logging.getLogger("guardrails.server")
JSON = "application/json"


def wall_ms() -> int:
    """Milliseconds since the epoch: the timestamp of audit records."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ServerSettings:
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    title: str = "guardrails"
    admin_token: str | None = None  # GUARDRAILS_ADMIN_TOKEN: audit and admin endpoints
    api_token: str | None = None  # GUARDRAILS_API_TOKEN: decision endpoints, when set
    audit_key: bytes | None = field(default=None, repr=False)  # GUARDRAILS_AUDIT_KEY: HMAC for `audit: hash`
    reload_interval_s: float | None = 1.0  # how often a policy folder is checked for changes


class Health(msgspec.Struct, frozen=True):
    status: str
    policies: int
    audit: Literal["ok", "unavailable", "off"]


def _audit_state(store: AuditStore) -> Literal["ok", "unavailable", "off"]:
    if isinstance(store, NullAuditStore):
        return "off"
    return "ok" if store.healthy() else "unavailable"


def _json_body(schema: Schema, description: str) -> RequestBody:
    return RequestBody(content={JSON: OpenAPIMediaType(schema=schema)}, required=True, description=description)


_FIELDS = Schema(type=OpenAPIType.OBJECT, additional_properties=True)
_INSTANCES = Schema(
    type=OpenAPIType.OBJECT,
    required=["instances"],
    properties={"instances": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT), min_items=1)},
    additional_properties=False,  # the service refuses other keys (422 bad_batch)
)


@dataclass
class _DecideOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(_FIELDS, "The input fields the policy declares, as one JSON object.")


@dataclass
class _BatchOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _json_body(_INSTANCES, '{"instances": [ {input fields}, ... ]}')


_ERRORS = {
    400: ResponseSpec(ErrorBody, description="The body is not valid JSON"),
    401: ResponseSpec(ErrorBody, description="GUARDRAILS_API_TOKEN is set and the request has no valid bearer token"),
    404: ResponseSpec(ErrorBody, description="No such policy"),
    413: ResponseSpec(ErrorBody, description="The body is over the size limit"),
    422: ResponseSpec(InputRejected, description="The input broke the policy; every violation is listed"),
}
_BATCH_ERRORS = {
    **_ERRORS,
    422: ResponseSpec(
        InputRejected | ErrorBody,  # type: ignore[arg-type]
        description="An instance broke the policy (every violation is listed), or the batch is empty, "
        'too large or not {"instances": [...]} (an ErrorBody with error `bad_batch`)',
    ),
}


def create_app(
    settings: ServerSettings,
    policies: PolicyRegistry | Mapping[str, LivePolicy],
    metrics: Metrics | None = None,
    audit: AuditStore | None = None,
) -> DecisionFront:
    """The guardrails HTTP app serving `policies` (a registry, or a fixed name -> LivePolicy map).

    With an `audit` store every decision is recorded (see guardrails.audit); without one,
    auditing is off. A registry with a folder is watched and hot-reloaded every
    `settings.reload_interval_s` seconds. The decision routes are answered by a bare ASGI
    front (see asgi_front.py), every other route by litestar (`.app` of the result).
    """
    metrics = metrics or Metrics()
    registry = policies if isinstance(policies, PolicyRegistry) else PolicyRegistry.of(policies)
    store: AuditStore = audit if audit is not None else NullAuditStore()
    registry.on_new_version = lambda policy: store.add_policy(policy, wall_ms())
    for live_policy in registry.served.all():
        store.add_policy(live_policy.policy, wall_ms())
    recorder = AuditRecorder(audit, settings.audit_key, wall_ms) if audit is not None else None
    service = DecisionService(lambda: registry.served, metrics, DecisionIds(), settings.max_batch, recorder)
    admin = admin_guard(settings.admin_token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with watching(registry, metrics, settings.reload_interval_s), monitoring(registry, metrics):
            yield
        await close_all(registry)
        store.close()

    app = Litestar(
        route_handlers=[
            *_decision_routes(service, api_guards(settings.api_token, settings.admin_token)),
            *_operation_routes(registry, metrics, store),
            *policy_routes(registry, metrics, admin),
            *feedback_routes(store, api_guards(settings.api_token, settings.admin_token), wall_ms),
            *audit_routes(store, admin, wall_ms),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title=settings.title, version="1"),
        lifespan=[lifespan],
        logging_config=None,
    )
    return DecisionFront(app, service, settings.max_body_bytes, api_tokens(settings.api_token, settings.admin_token))


def _respond(answer: Answer, request: Request[Any, Any, Any]) -> Response[bytes]:
    headers = {name.decode(): value.decode("latin-1") for name, value in id_headers(answer, _request_id(request))}
    return Response(answer.body, status_code=answer.status, media_type=JSON, headers=headers)


def _decision_routes(service: DecisionService, guards: list[Guard]) -> list[HTTPRouteHandler]:
    @post(
        "/v1/decide/{policy:str}",
        operation_class=_DecideOperation,
        status_code=200,
        responses=_ERRORS,
        summary="Decide one request",
        guards=list(guards),
    )
    async def decide(request: Request[Any, Any, Any], policy: FromPath[str]) -> Response[DecisionEnvelope]:
        body = await request.body()
        return _respond(await service.decide(policy, body, _request_id(request)), request)  # type: ignore[return-value]

    @post(
        "/v1/decide/{policy:str}/batch",
        operation_class=_BatchOperation,
        status_code=200,
        responses=_BATCH_ERRORS,
        summary="Decide many requests, in one model call where the protocol allows",
        guards=list(guards),
    )
    async def decide_batch(request: Request[Any, Any, Any], policy: FromPath[str]) -> Response[BatchEnvelope]:
        body = await request.body()
        answer = await service.decide_batch(policy, body, _request_id(request))
        return _respond(answer, request)  # type: ignore[return-value]

    return [decide, decide_batch]


def _operation_routes(registry: PolicyRegistry, metrics: Metrics, store: AuditStore) -> list[HTTPRouteHandler]:
    @get("/health/live", summary="The process is up")
    async def live() -> Health:
        return Health("ok", len(registry.served.live), _audit_state(store))

    @get("/health/ready", summary="Policies are loaded and the audit store (if any) can write")
    async def ready() -> Response[Health]:
        count = len(registry.served.live)
        audit = _audit_state(store)
        ok = count > 0 and audit != "unavailable"
        health = Health("ok" if ok else "not_ready", count, audit)
        return Response(health, status_code=200 if ok else 503)

    @get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE, include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        for live_policy in registry.served.all():
            circuit = STATE_VALUES[live_policy.upstream.circuit_state()]
            metrics.circuit_state.labels(live_policy.policy.name).set(circuit)
        for name, state in registry.states.items():
            metrics.policy_stale.labels(name).set(1 if state.status == "stale" else 0)
        # CONTENT_TYPE already names its charset; as `media_type` litestar would append a second one
        return Response(metrics.exposition(), headers={"content-type": CONTENT_TYPE})

    return [live, ready, metrics_endpoint]


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    return request_id(request.headers.get("x-request-id"))


_STATUS_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = _STATUS_ERRORS.get(exc.status_code, "http_error")
    detail = exc.detail if exc.status_code != 413 else body_too_large(request.app.request_max_body_size)
    body = msgspec.json.encode(ErrorBody(code, str(detail)))
    return Response(body, status_code=exc.status_code, media_type=JSON, headers=exc.headers or None)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return Response(internal_error_body(), status_code=500, media_type=JSON)
