"""POST /v1/feedback: the observed truth for decisions, kept in the audit log beside them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIType

from guardrails.audit.store import AuditStore, NullAuditStore
from guardrails.auth import Guard
from guardrails.envelope import ErrorBody
from guardrails.errors import AuditUnavailable

JSON = "application/json"
MAX_ITEMS = 10_000
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class Feedback(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    decision_id: Text
    label: Text


class FeedbackAnswer(msgspec.Struct, frozen=True):
    stored: int
    unknown: list[str]  # ids that match no recorded decision: reported, never dropped silently


_one = msgspec.json.Decoder(Feedback | list[Feedback])

_TEXT = Schema(type=OpenAPIType.STRING, min_length=1, max_length=128)
_ITEM = Schema(
    type=OpenAPIType.OBJECT,
    required=["decision_id", "label"],
    properties={"decision_id": _TEXT, "label": _TEXT},
    additional_properties=False,
)


@dataclass
class _FeedbackOperation(Operation):
    def __post_init__(self) -> None:
        body = Schema(one_of=[_ITEM, Schema(type=OpenAPIType.ARRAY, items=_ITEM, min_items=1, max_items=MAX_ITEMS)])
        self.request_body = RequestBody(
            content={JSON: OpenAPIMediaType(schema=body)}, required=True, description="one label, or a list"
        )


def _error(status: int, code: str, detail: str) -> Response[Any]:
    return Response(msgspec.json.encode(ErrorBody(code, detail)), status_code=status, media_type=JSON)


def feedback_routes(store: AuditStore, guards: list[Guard], wall_ms: Callable[[], int]) -> list[HTTPRouteHandler]:
    @post(
        "/v1/feedback",
        operation_class=_FeedbackOperation,
        summary="Store the observed label of one decision, or of a list of them",
        guards=list(guards),
        status_code=200,
        responses={
            400: ResponseSpec(ErrorBody, description="The body is not valid JSON"),
            422: ResponseSpec(ErrorBody, description="The body is not feedback"),
            404: ResponseSpec(ErrorBody, description="Auditing is off: there is no audit log to keep feedback in"),
            503: ResponseSpec(ErrorBody, description="The audit log cannot write"),
        },
    )
    async def feedback(request: Request[Any, Any, Any]) -> Response[FeedbackAnswer]:
        body = await request.body()
        try:
            given = _one.decode(body)
        except msgspec.ValidationError as exc:
            return _error(
                422, "bad_feedback", f'expected {{"decision_id": ..., "label": ...}} or a list of them: {exc}'
            )
        except (msgspec.DecodeError, RecursionError) as exc:
            return _error(400, "malformed_json", f"the body is not valid JSON: {exc}")
        if isinstance(store, NullAuditStore):
            return _error(404, "audit_off", "auditing is off on this server: feedback is kept in the audit log")
        items = given if isinstance(given, list) else [given]
        if not items or len(items) > MAX_ITEMS:
            return _error(422, "bad_feedback", f"send between 1 and {MAX_ITEMS} labels, got {len(items)}")
        try:
            unknown = await store.add_feedback([(i.decision_id, i.label) for i in items], wall_ms())
        except AuditUnavailable as exc:
            return _error(503, "audit_unavailable", str(exc))
        stored = sum(i.decision_id not in unknown for i in items)
        return Response(FeedbackAnswer(stored, unknown))

    return [feedback]
