"""Shadow policies: decided beside the live one on the same input and model output, recorded, never answered."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from guardrails.app import build_folder_app
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.demo.model import ModelServer
from guardrails.registry import PolicyRegistry
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CREDIT = (POLICIES / "credit-risk.yaml").read_text()
# The shadow declines from 0.02 up: nearly every approve of the live policy becomes a decline.
SHADOW = (
    CREDIT.replace("policy: credit-risk ", "policy: credit-risk-strict\nshadow_of: credit-risk ", 1)
    .replace("  - when: score >= 0.85\n", "  - when: score >= 0.02\n", 1)
    .split("\ntests:")[0]
)
LOW_RISK = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}
KEY = "test-audit-key"
REFERENCE = "credit-risk.reference.json"


@pytest.fixture
def model() -> Iterator[tuple[ModelServer, str]]:
    server = ModelServer()
    with ServerThread(server) as thread:
        yield server, thread.url + "/v2/models/credit/infer"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "policies"
    path.mkdir()
    (path / "credit-risk.yaml").write_text(CREDIT)
    (path / "credit-risk-strict.yaml").write_text(SHADOW)
    (path / REFERENCE).write_bytes((POLICIES / REFERENCE).read_bytes())
    return path


def test_a_shadow_is_decided_recorded_and_never_answered(
    folder: Path, model: tuple[ModelServer, str], tmp_path: Path
) -> None:
    server, url = model
    audit = SQLiteAuditStore(tmp_path / "audit.db")
    urls = {"credit-risk": url, "credit-risk-strict": "http://127.0.0.1:9/never-called"}
    app = build_folder_app(folder, ServerSettings(audit_key=KEY.encode(), reload_interval_s=None), urls, audit=audit)
    with ServerThread(app) as proxy, httpx.Client(base_url=proxy.url, timeout=5) as client:
        answer = client.post("/v1/decide/credit-risk", json=LOW_RISK)
        assert answer.status_code == 200
        live = answer.json()
        assert live["outcome"] == "approve" and live["policy"] == "credit-risk"
        assert server.requests == 1  # the shadow never calls a model
        batch = client.post("/v1/decide/credit-risk/batch", json={"instances": [LOW_RISK, LOW_RISK]})
        assert [d["outcome"] for d in batch.json()["decisions"]] == ["approve", "approve"]
        assert server.requests == 2
        assert client.post("/v1/decide/credit-risk-strict", json=LOW_RISK).status_code == 404
        listing = {p["name"]: p for p in client.get("/v1/policies").json()["policies"]}
        assert listing["credit-risk-strict"]["shadow_of"] == "credit-risk"
        metrics = client.get("/metrics").text
        assert (
            'guardrails_shadow_decisions_total{live_outcome="approve",policy="credit-risk",'
            'shadow="credit-risk-strict",shadow_outcome="decline"} 3.0'
        ) in metrics
    audit.close()
    rows = sqlite3.connect(tmp_path / "audit.db").execute("SELECT kind, policy, record FROM decisions ORDER BY seq")
    records = [(kind, policy, msgspec.json.decode(record)) for kind, policy, record in rows]
    live_ids = [r["decision_id"] for kind, _, r in records if kind == "decision"]
    shadows = [r for kind, _, r in records if kind == "shadow"]
    assert len(live_ids) == 3 and len(shadows) == 3
    assert sorted(s["live_decision_id"] for s in shadows) == sorted(live_ids)
    for shadow in shadows:
        assert shadow["policy"] == "credit-risk-strict" and shadow["shadow_of"] == "credit-risk"
        assert shadow["outcome"] == "decline" and shadow["reasons"] == ["HIGH_RISK"]
    first_live = next(r for kind, _, r in records if kind == "decision")
    first_shadow = next(s for s in shadows if s["live_decision_id"] == first_live["decision_id"])
    assert first_shadow["score"] == first_live["score"]  # the same model output


def test_a_shadow_falls_back_with_the_live_cause_when_the_model_fails(
    folder: Path, model: tuple[ModelServer, str], tmp_path: Path
) -> None:
    server, url = model
    server.mode = "error"
    audit = SQLiteAuditStore(tmp_path / "audit.db")
    app = build_folder_app(
        folder, ServerSettings(reload_interval_s=None, audit_key=KEY.encode()), {"credit-risk": url}, audit=audit
    )
    with ServerThread(app) as proxy:
        answer = httpx.post(proxy.url + "/v1/decide/credit-risk", json=LOW_RISK, timeout=5).json()
        assert answer["fallback"] == "upstream_error"
    audit.close()
    kinds = sqlite3.connect(tmp_path / "audit.db").execute("SELECT kind, fallback FROM decisions ORDER BY seq")
    assert list(kinds) == [("decision", "upstream_error"), ("shadow", "upstream_error")]


def test_a_shadow_of_an_unknown_policy_is_stale(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "strict.yaml").write_text(SHADOW)
    (folder / REFERENCE).write_bytes((POLICIES / REFERENCE).read_bytes())
    registry = PolicyRegistry(folder=folder)
    registry.reload()
    state = registry.states["credit-risk-strict"]
    assert state.status == "stale" and state.error == "shadow_of: no live policy named `credit-risk`"
    assert registry.served.live == {}
