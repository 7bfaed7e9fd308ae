"""`create_app`: thin litestar handlers over `DecisionService`; no module-level app, no globals.

Every error a caller can meet is JSON with an `error` code and a `detail` sentence:
400 malformed JSON, 404 unknown policy or route, 413 body over the limit, 422 invalid
input; an unexpected exception is a 500 with no stack trace (decisions never get one:
the service turns it into the fallback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from guardrails.audit.recorder import AuditRecorder
from guardrails.audit.store import AuditStore, NullAuditStore
from guardrails.auth import Guard, api_guard
from guardrails.envelope import BatchEnvelope, DecisionEnvelope, ErrorBody, InputRejected
from guardrails.ids import DecisionIds
from guardrails.metrics import CONTENT_TYPE, Metrics
from guardrails.service import Answer, DecisionService, LivePolicy, error_answer
from guardrails.upstream.breaker import STATE_VALUES

log = logging.getLogger("guardrails.server")
JSON = "application/json"


def wall_ms() -> int:
    """Milliseconds since the epoch: the timestamp of audit records."""
    return time.time_ns() // 1_000_000


MAX_REQUEST_ID = 200


@dataclass(frozen=True, slots=True)
class ServerSettings:
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    title: str = "guardrails"
    admin_token: str | None = None  # GUARDRAILS_ADMIN_TOKEN: audit and admin endpoints
    api_token: str | None = None  # GUARDRAILS_API_TOKEN: decision endpoints, when set
    audit_key: bytes | None = field(default=None, repr=False)  # GUARDRAILS_AUDIT_KEY: HMAC for `audit: hash`


class UpstreamInfo(msgspec.Struct, frozen=True):
    url: str
    protocol: str
    circuit: str


class PolicyInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str | None
    version_id: str
    owner: str
    description: str
    upstream: UpstreamInfo
    loaded_at: str
    file: str


class PolicyList(msgspec.Struct, frozen=True):
    policies: list[PolicyInfo]


class Health(msgspec.Struct, frozen=True):
    status: str
    policies: int
    audit: Literal["ok", "unavailable", "off"]


def _audit_state(store: AuditStore) -> Literal["ok", "unavailable", "off"]:
    if isinstance(store, NullAuditStore):
        return "off"
    return "ok" if store.healthy() else "unavailable"


def _object_body(description: str, example_key: str) -> RequestBody:
    schema = Schema(type=OpenAPIType.OBJECT, additional_properties=True, description=description)
    if example_key == "instances":
        schema = Schema(
            type=OpenAPIType.OBJECT,
            required=["instances"],
            properties={"instances": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT))},
            description=description,
        )
    return RequestBody(content={JSON: OpenAPIMediaType(schema=schema)}, required=True, description=description)


@dataclass
class _DecideOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _object_body("The input fields the policy declares, as one JSON object.", "fields")


@dataclass
class _BatchOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = _object_body('{"instances": [ {input fields}, ... ]}', "instances")


_ERRORS = {
    400: ResponseSpec(ErrorBody, description="The body is not valid JSON"),
    404: ResponseSpec(ErrorBody, description="No such policy"),
    413: ResponseSpec(ErrorBody, description="The body is over the size limit"),
    422: ResponseSpec(InputRejected, description="The input broke the policy; every violation is listed"),
}


def create_app(
    settings: ServerSettings,
    policies: Mapping[str, LivePolicy],
    metrics: Metrics | None = None,
    audit: AuditStore | None = None,
) -> Litestar:
    """The guardrails HTTP app serving `policies` (name -> compiled policy and its upstream).

    With an `audit` store every decision is recorded (see guardrails.audit); without one,
    auditing is off.
    """
    metrics = metrics or Metrics()
    recorder = AuditRecorder(audit, settings.audit_key, wall_ms) if audit is not None else None
    service = DecisionService(policies, metrics, DecisionIds(), settings.max_batch, recorder)
    store: AuditStore = audit if audit is not None else NullAuditStore()
    for live_policy in policies.values():
        store.add_policy(live_policy.policy, wall_ms())

    async def close_upstreams() -> None:
        for live_policy in policies.values():
            await live_policy.upstream.transport.close()
        store.close()

    return Litestar(
        route_handlers=[
            *_decision_routes(service, api_guard(settings.api_token, settings.admin_token)),
            *_operation_routes(policies, metrics, store),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unexpected_error},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(title=settings.title, version="1"),
        on_shutdown=[close_upstreams],
        logging_config=None,
    )


def _respond(answer: Answer, request: Request[Any, Any, Any]) -> Response[bytes]:
    headers = {}
    request_id = _request_id(request)
    if request_id is not None:
        headers["x-request-id"] = request_id
    if len(answer.decision_ids) == 1:
        headers["x-decision-id"] = answer.decision_ids[0]
    return Response(answer.body, status_code=answer.status, media_type=JSON, headers=headers)


def _decision_routes(service: DecisionService, guard: Guard) -> list[HTTPRouteHandler]:
    @post(
        "/v1/decide/{policy:str}",
        operation_class=_DecideOperation,
        status_code=200,
        responses=_ERRORS,
        summary="Decide one request",
        guards=[guard],
    )
    async def decide(request: Request[Any, Any, Any], policy: str) -> Response[DecisionEnvelope]:
        body = await request.body()
        return _respond(await service.decide(policy, body, _request_id(request)), request)  # type: ignore[return-value]

    @post(
        "/v1/decide/{policy:str}/batch",
        operation_class=_BatchOperation,
        status_code=200,
        responses=_ERRORS,
        summary="Decide many requests, in one model call where the protocol allows",
        guards=[guard],
    )
    async def decide_batch(request: Request[Any, Any, Any], policy: str) -> Response[BatchEnvelope]:
        body = await request.body()
        answer = await service.decide_batch(policy, body, _request_id(request))
        return _respond(answer, request)  # type: ignore[return-value]

    return [decide, decide_batch]


def _operation_routes(
    policies: Mapping[str, LivePolicy], metrics: Metrics, store: AuditStore
) -> list[HTTPRouteHandler]:
    @get("/health/live", summary="The process is up")
    async def live() -> Health:
        return Health("ok", len(policies), _audit_state(store))

    @get("/health/ready", summary="Policies are loaded and the audit store (if any) can write")
    async def ready() -> Response[Health]:
        audit = _audit_state(store)
        ok = bool(policies) and audit != "unavailable"
        health = Health("ok" if ok else "not_ready", len(policies), audit)
        return Response(health, status_code=200 if ok else 503)

    @get("/v1/policies", summary="The policies being served")
    async def list_policies() -> PolicyList:
        return PolicyList([_policy_info(p) for p in policies.values()])

    @get("/v1/policies/{name:str}", summary="One policy", responses={404: ResponseSpec(ErrorBody)})
    async def one_policy(name: str) -> Response[PolicyInfo]:
        live_policy = policies.get(name)
        if live_policy is None:
            answer = error_answer(404, "unknown_policy", f"no policy named {name!r}")
            return Response(answer.body, status_code=404, media_type=JSON)  # type: ignore[arg-type]
        return Response(_policy_info(live_policy))

    @get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE, include_in_schema=False)
    async def metrics_endpoint() -> Response[bytes]:
        for name, live_policy in policies.items():
            metrics.circuit_state.labels(name).set(_circuit_value(live_policy))
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return [live, ready, list_policies, one_policy, metrics_endpoint]


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.headers.get("x-request-id")
    if value is None:
        return None
    value = value[:MAX_REQUEST_ID]
    return value if value.isprintable() else None


def _policy_info(live: LivePolicy) -> PolicyInfo:
    policy = live.policy
    return PolicyInfo(
        name=policy.name,
        version=policy.version,
        version_id=policy.version_id,
        owner=policy.owner,
        description=policy.description,
        upstream=UpstreamInfo(live.upstream.spec.url, policy.upstream.protocol, live.upstream.circuit_state()),
        loaded_at=live.loaded_at,
        file=policy.file,
    )


def _circuit_value(live: LivePolicy) -> int:
    return STATE_VALUES[live.upstream.circuit_state()]


_STATUS_ERRORS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = _STATUS_ERRORS.get(exc.status_code, "http_error")
    detail = (
        exc.detail
        if exc.status_code != 413
        else f"the body is over the limit of {request.app.request_max_body_size} bytes"
    )
    body = msgspec.json.encode(ErrorBody(code, str(detail)))
    return Response(body, status_code=exc.status_code, media_type=JSON, headers=exc.headers or None)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    body = msgspec.json.encode(ErrorBody("internal_error", "an internal error occurred; see the server log"))
    return Response(body, status_code=500, media_type=JSON)
