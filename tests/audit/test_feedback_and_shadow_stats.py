"""Outcomes fed back (POST /v1/feedback, `audit stats --feedback`) and shadow comparison (`--compare`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from guardrails.app import build_folder_app
from guardrails.audit.figures import Boundary, label_figures
from guardrails.audit.sqlite import SQLiteAuditStore
from guardrails.demo.model import ModelServer
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings

POLICIES = Path(__file__).resolve().parents[2] / "policies"
CREDIT = (POLICIES / "credit-risk.yaml").read_text()
REFERENCE = "credit-risk.reference.json"
SHADOW = (
    CREDIT.replace("policy: credit-risk ", "policy: credit-risk-strict\nshadow_of: credit-risk ", 1)
    .replace("  - when: score >= 0.85\n", "  - when: score >= 0.02\n", 1)
    .split("\ntests:")[0]
)
LOW = {"amount": 1200, "account_age_days": 800, "income": 52000, "country": "US"}
HIGH = {"amount": 90000, "account_age_days": 800, "income": 20000, "country": "US"}  # P(bad) near 1
KEY = "feedback-test-key"


def test_label_figures_by_hand() -> None:
    totals = {"approve": 10, "review": 5, "decline": 5}
    labelled = [("approve", "good")] * 6 + [("approve", "bad")] * 2 + [("review", "bad")] * 2
    labelled += [("review", "good")] + [("decline", "bad")] * 3
    figures = label_figures("p", ["approve", "review", "decline"], "bad", totals, labelled)
    assert figures.labelled == 14
    assert [(o.outcome, o.decisions, o.labelled, o.labels) for o in figures.outcomes] == [
        ("approve", 10, 8, {"bad": 2, "good": 6}),
        ("review", 5, 3, {"bad": 2, "good": 1}),
        ("decline", 5, 3, {"bad": 3}),
    ]
    # flagged from review: review + decline = 6 labelled, 5 bad; 7 bad in all
    assert figures.boundaries == [
        Boundary(flagged_from="review", precision=5 / 6, recall=5 / 7),
        Boundary(flagged_from="decline", precision=1.0, recall=3 / 7),
    ]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "credit-risk.yaml").write_text(CREDIT)
    (folder / "credit-risk-strict.yaml").write_text(SHADOW)
    (folder / REFERENCE).write_bytes((POLICIES / REFERENCE).read_bytes())
    audit_path = tmp_path / "audit.db"
    model = ModelServer()
    with ServerThread(model) as upstream:
        urls = {"credit-risk": upstream.url + "/v2/models/credit/infer"}
        settings = ServerSettings(audit_key=KEY.encode(), reload_interval_s=None)
        app = build_folder_app(folder, settings, urls, audit=SQLiteAuditStore(audit_path))
        with ServerThread(app) as server:
            yield server.url, audit_path


def decide(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/decide/credit-risk", json=body)
    assert answer.status_code == 200, answer.text
    decision: dict[str, Any] = answer.json()
    return decision


def audit_cli(*args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "guardrails", "audit", *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout)


def test_feedback_round_trip_and_figures(served: tuple[str, Path]) -> None:
    url, audit_path = served
    with httpx.Client(base_url=url, timeout=5) as client:
        low = [decide(client, LOW) for _ in range(3)]
        high = [decide(client, HIGH) for _ in range(2)]
        assert {d["outcome"] for d in low} == {"approve"} and {d["outcome"] for d in high} == {"decline"}
        one = client.post("/v1/feedback", json={"decision_id": low[0]["decision_id"], "label": "good"})
        assert one.status_code == 200 and one.json() == {"stored": 1, "unknown": []}
        batch = [
            {"decision_id": low[1]["decision_id"], "label": "bad"},
            {"decision_id": high[0]["decision_id"], "label": "bad"},
            {"decision_id": high[1]["decision_id"], "label": "good"},
            {"decision_id": "no-such-decision", "label": "bad"},
        ]
        answer = client.post("/v1/feedback", json=batch)
        assert answer.status_code == 200 and answer.json() == {"stored": 3, "unknown": ["no-such-decision"]}
        relabel = client.post("/v1/feedback", json={"decision_id": high[1]["decision_id"], "label": "bad"})
        assert relabel.json() == {"stored": 1, "unknown": []}  # the latest label counts
        bad = client.post("/v1/feedback", json={"decision_id": "x"})
        assert bad.status_code == 422 and bad.json()["error"] == "bad_feedback"
        assert client.post("/v1/feedback", content=b"{nope").status_code == 400
    figures = audit_cli(
        "stats", "--audit", str(audit_path), "--policy", "credit-risk", "--feedback", "--format", "json"
    )
    assert figures["positive"] == "bad" and figures["labelled"] == 4
    by_outcome = {o["outcome"]: o for o in figures["outcomes"]}
    assert by_outcome["approve"] == {
        "outcome": "approve",
        "decisions": 3,
        "labelled": 2,
        "labels": {"bad": 1, "good": 1},
    }
    assert by_outcome["decline"] == {"outcome": "decline", "decisions": 2, "labelled": 2, "labels": {"bad": 2}}
    # bad labels: 1 approve + 2 decline = 3. Flagged from review: 2 labelled, both bad.
    assert figures["boundaries"] == [
        {"flagged_from": "review", "precision": 1.0, "recall": 2 / 3},
        {"flagged_from": "decline", "precision": 1.0, "recall": 2 / 3},
    ]


def test_shadow_comparison(served: tuple[str, Path]) -> None:
    url, audit_path = served
    with httpx.Client(base_url=url, timeout=5) as client:
        for body in (LOW, LOW, HIGH):
            decide(client, body)
    result = audit_cli(
        "stats",
        "--audit",
        str(audit_path),
        "--policy",
        "credit-risk",
        "--compare",
        "credit-risk-strict",
        "--format",
        "json",
    )
    assert result["compared"] == 3 and result["agreement"] == pytest.approx(1 / 3)
    assert result["transitions"] == [
        {"live": "approve", "shadow": "decline", "count": 2},
        {"live": "decline", "shadow": "decline", "count": 1},
    ]


def test_feedback_with_auditing_off(tmp_path: Path) -> None:
    (tmp_path / "credit-risk.yaml").write_text(CREDIT)
    (tmp_path / REFERENCE).write_bytes((POLICIES / REFERENCE).read_bytes())
    with ServerThread(build_folder_app(tmp_path, ServerSettings(reload_interval_s=None))) as server:
        answer = httpx.post(server.url + "/v1/feedback", json={"decision_id": "x", "label": "bad"})
    assert answer.status_code == 404
    assert answer.json() == {
        "error": "audit_off",
        "detail": "auditing is off on this server: feedback is kept in the audit log",
    }


def test_replay_shows_the_feedback_figures_of_a_candidate(served: tuple[str, Path]) -> None:
    url, audit_path = served
    with httpx.Client(base_url=url, timeout=5) as client:
        low = [decide(client, LOW) for _ in range(3)]
        high = [decide(client, HIGH) for _ in range(2)]
        labels = [("good", low[0]), ("bad", low[1]), ("bad", high[0]), ("bad", high[1])]
        for label, decision in labels:
            client.post("/v1/feedback", json={"decision_id": decision["decision_id"], "label": label})
    candidate = audit_path.parent / "policies" / "candidate.yaml"
    candidate.write_text(
        CREDIT.replace("  - when: score >= 0.85\n", "  - when: score >= 0.02\n", 1).split("\ntests:")[0]
    )
    done = subprocess.run(
        [sys.executable, "-m", "guardrails", "replay", str(candidate), "--audit", str(audit_path), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    feedback = msgspec.json.decode(done.stdout)["feedback"]
    # recorded: approve 3 (good, bad), decline 2 (bad, bad); the candidate declines all five
    assert feedback["recorded"]["boundaries"] == [
        {"flagged_from": "review", "precision": 1.0, "recall": 2 / 3},
        {"flagged_from": "decline", "precision": 1.0, "recall": 2 / 3},
    ]
    assert feedback["candidate"]["boundaries"] == [
        {"flagged_from": "review", "precision": 0.75, "recall": 1.0},
        {"flagged_from": "decline", "precision": 0.75, "recall": 1.0},
    ]
    by_outcome = {o["outcome"]: o for o in feedback["candidate"]["outcomes"]}
    assert by_outcome["decline"] == {
        "outcome": "decline",
        "decisions": 5,
        "labelled": 4,
        "labels": {"bad": 3, "good": 1},
    }
