"""The audit endpoints through a real server (uvicorn on loopback) in front of a real model server,
writing a real SQLite audit log: access control, a decision found and explained, paging, stats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from guardrails.app import build_app
from guardrails.audit.explain import Explanation
from guardrails.audit.query import Page
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.audit.stats import Stats
from guardrails.demo.model import ModelServer
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings
from tests.audit.conftest import AUDIT_KEY, LOW_RISK, NEW_ACCOUNT_LARGE, SANCTIONED_VIP, policy_text

ADMIN = "admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
DECIDE = "/v1/decide/credit-audit"


@pytest.fixture(scope="module")
def model() -> Iterator[ServerThread]:
    with ServerThread(ModelServer()) as server:
        yield server


def start(model: ServerThread, settings: ServerSettings, audit: SQLiteAuditStore | None) -> ServerThread:
    policy = load_policy_text(policy_text(model.url + "/v2/models/credit/infer"))
    return ServerThread(build_app([policy], settings, audit=audit)).start()


@pytest.fixture(scope="module")
def proxy(model: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    store = SQLiteAuditStore(tmp_path_factory.mktemp("http") / "audit.db")
    server = start(model, ServerSettings(admin_token=ADMIN, audit_key=AUDIT_KEY), store)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    server.stop()


def decide(client: httpx.Client, body: dict[str, Any], request_id: str | None = None) -> str:
    headers = {"X-Request-Id": request_id} if request_id else {}
    response = client.post(DECIDE, json=body, headers=headers)
    assert response.status_code == 200, response.text
    decision_id: str = response.json()["decision_id"]
    return decision_id


def page(client: httpx.Client, **params: Any) -> Page:
    response = client.get("/v1/audit", params=params, headers=AUTH)
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=Page)


def test_a_decision_is_found_and_explained(proxy: httpx.Client) -> None:
    decision_id = decide(proxy, LOW_RISK, request_id="find-me")
    found = page(proxy, policy="credit-audit", outcome="approve", limit=1)
    assert [r.record.decision_id for r in found.records] == [decision_id]
    assert found.records[0].record.request_id == "find-me"
    response = proxy.get(f"/v1/audit/{decision_id}", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    e = msgspec.json.decode(response.content, type=Explanation)
    assert (e.decision_id, e.outcome, e.reasons, e.request_id) == (decision_id, "approve", ["LOW_RISK"], "find-me")
    assert e.redacted == {"email": "hashed", "note": "dropped"}
    assert str(e.input["email"]).startswith("hmac-sha256:")
    assert e.model.status == "ok" and e.model.output is not None and '"predict_proba"' in e.model.output
    assert [check.result for check in e.rules][3] == "unknown (field hashed/dropped)"
    assert e.recomputed.agrees is True
    assert e.recomputed.summary.endswith(
        ": outcome 'approve', reasons LOW_RISK: the same as recorded; "
        "2 conditions read hashed or dropped fields, and for those the record's result was taken"
    )


def test_filters_and_cursor_paging(proxy: httpx.Client) -> None:
    made = [decide(proxy, body) for body in (NEW_ACCOUNT_LARGE, SANCTIONED_VIP, LOW_RISK, NEW_ACCOUNT_LARGE)]
    declined = page(proxy, reason="SANCTIONED_COUNTRY")
    assert declined.records[0].record.decision_id == made[1]
    assert page(proxy, rule="large-amount-new-account", limit=2).records[0].record.decision_id == made[3]
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        result = page(proxy, **params)
        seen.extend(r.record.decision_id for r in result.records)
        if result.next_cursor is None:
            break
        params["cursor"] = result.next_cursor
    assert seen[:4] == made[::-1]
    assert len(seen) == len(set(seen)) == len(page(proxy, limit=1000).records)


def test_a_fallback_is_found_by_its_cause(proxy: httpx.Client, model: ServerThread) -> None:
    httpx.post(model.url + "/admin/mode", json={"mode": "error"}).raise_for_status()
    try:
        decision_id = decide(proxy, LOW_RISK)
    finally:
        httpx.post(model.url + "/admin/mode", json={"mode": "ok"}).raise_for_status()
    assert page(proxy, fallback="any").records[0].record.decision_id == decision_id
    assert page(proxy, fallback="upstream_error").records[0].record.decision_id == decision_id
    e = msgspec.json.decode(proxy.get(f"/v1/audit/{decision_id}", headers=AUTH).content, type=Explanation)
    assert e.fallback == "upstream_error" and e.recomputed.agrees is True


def test_stats(proxy: httpx.Client) -> None:
    decide(proxy, LOW_RISK)
    response = proxy.get("/v1/audit/stats", params={"by": "outcome", "interval": "1h"}, headers=AUTH)
    assert response.status_code == 200
    stats = msgspec.json.decode(response.content, type=Stats)
    assert stats.total == len(page(proxy, limit=1000).records)
    assert sum(group.count for bucket in stats.buckets for group in bucket.groups) == stats.total
    by_reason = msgspec.json.decode(
        proxy.get("/v1/audit/stats", params={"by": "reason", "policy": "credit-audit"}, headers=AUTH).content,
        type=Stats,
    )
    assert {g.key for g in by_reason.buckets[0].groups} >= {"LOW_RISK", "SANCTIONED_COUNTRY"}


@pytest.mark.parametrize(
    ("path", "params", "detail"),
    [
        (
            "/v1/audit",
            {"since": "soon"},
            "since: 'soon' is neither a duration before now (15m, 2h, 7d) nor an ISO-8601 time "
            "(2026-01-31, 2026-01-31T12:00:00Z)",
        ),
        (
            "/v1/audit",
            {"colour": "red"},
            "unknown query parameter 'colour'; known: cursor, fallback, limit, outcome, policy, reason, rule, since, "
            "until",
        ),
        ("/v1/audit", {"limit": "5000"}, "limit: '5000' is not a number from 1 to 1000"),
        ("/v1/audit", {"cursor": "next"}, "cursor: 'next' is not a cursor this server gave out"),
        (
            "/v1/audit",
            {"fallback": "oops"},
            "fallback: unknown cause 'oops'; use one of input_invalid, upstream_timeout, upstream_error, "
            "upstream_unavailable, output_invalid, internal_error, score_drift, or any",
        ),
        (
            "/v1/audit/stats",
            {"by": "colour"},
            "by: 'colour' is not one of outcome, reason, rule, fallback, policy_version",
        ),
        (
            "/v1/audit/stats",
            {"interval": "1y"},
            "interval: '1y' is not a duration; use a number and a unit (s, m, h, d), such as 15m",
        ),
    ],
)
def test_bad_parameters_are_400_naming_them(
    proxy: httpx.Client, path: str, params: dict[str, str], detail: str
) -> None:
    response = proxy.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == {"error": "bad_query", "detail": detail}


def test_an_unknown_decision_is_404(proxy: httpx.Client) -> None:
    response = proxy.get("/v1/audit/no-such-decision", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown_decision", "detail": "no decision 'no-such-decision' in the audit log"}


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/audit/stats", "/v1/audit/some-id"])
def test_a_wrong_or_missing_token_is_401(proxy: httpx.Client, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ADMIN}"}):
        response = proxy.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == "this endpoint needs `Authorization: Bearer <admin token>`"
        assert response.headers["www-authenticate"] == 'Bearer realm="guardrails"'


def test_without_an_admin_token_the_endpoints_are_403(model: ServerThread, tmp_path: Path) -> None:
    server = start(model, ServerSettings(audit_key=AUDIT_KEY), SQLiteAuditStore(tmp_path / "audit.db"))
    try:
        for path in ("/v1/audit", "/v1/audit/stats", "/v1/audit/some-id"):
            response = httpx.get(server.url + path, headers=AUTH)
            assert response.status_code == 403
            assert response.json()["detail"] == (
                "audit and admin endpoints are disabled: set GUARDRAILS_ADMIN_TOKEN to enable them"
            )
    finally:
        server.stop()


def test_with_auditing_off_the_endpoints_say_so(model: ServerThread) -> None:
    server = start(model, ServerSettings(admin_token=ADMIN, audit_key=AUDIT_KEY), None)
    try:
        for path in ("/v1/audit", "/v1/audit/stats", "/v1/audit/some-id"):
            response = httpx.get(server.url + path, headers=AUTH)
            assert response.status_code == 404
            assert response.json() == {
                "error": "audit_off",
                "detail": "auditing is off on this server, so there is no audit log to read",
            }
    finally:
        server.stop()
