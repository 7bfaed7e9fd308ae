"""The drift monitor in the running proxy: a model that silently returns one score for everyone.

A real server in front of a real model server. The reference is built from the same model on
other rows of the same generator, so normal traffic is judged unchanged; then the model
switches to a constant score: the score's PSI alerts, decisions fall back with `score_drift`
(`on_alert: fallback`), and once the model recovers and the window refills they come back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from guardrails.app import build_folder_app
from guardrails.demo.model import ModelServer, credit_probability
from guardrails.monitor.reference import build_reference, encode_reference
from guardrails.policy.load import load_policy_text
from guardrails.runner import ServerThread
from guardrails.server import ServerSettings
from tests.monitor.credit_data import draw, values

POLICIES = Path(__file__).resolve().parents[2] / "policies"
WINDOW = 400
BATCH = 100


def credit_with_monitor() -> str:
    text = (POLICIES / "credit-risk.yaml").read_text()
    start, end = text.index("\nmonitor:"), text.index("\ntests:")
    monitor = f"\nmonitor:\n  reference: live.reference.json\n  window: {WINDOW}\n  on_alert: fallback\n"
    return text[:start] + monitor + text[end:]


def features(rows: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    names = ("amount", "account_age_days", "income", "prior_defaults")
    return np.array([[float(row[n]) for n in names] for row in rows])


def requests(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, ModelServer]]:
    text = credit_with_monitor()
    policy = load_policy_text(text, str(tmp_path / "credit-risk.yaml"), monitor=False)
    reference_rows = values(draw(3000, seed=101))
    columns = {f.name: [row[f.name] for row in reference_rows] for f in policy.inputs.fields}
    scores = credit_probability(features(reference_rows)).tolist()
    reference = build_reference(policy.name, policy.inputs.fields, columns, scores, "p_bad")
    (tmp_path / "live.reference.json").write_bytes(encode_reference(reference))
    (tmp_path / "credit-risk.yaml").write_text(text)
    model = ModelServer()
    with ServerThread(model) as upstream:
        urls = {"credit-risk": upstream.url + "/v2/models/credit/infer"}
        app = build_folder_app(tmp_path, ServerSettings(reload_interval_s=None), urls)
        with ServerThread(app) as server:
            yield server.url, model


def send(client: httpx.Client, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = client.post("/v1/decide/credit-risk/batch", json={"instances": requests(rows)})
    assert answer.status_code == 200, answer.text
    decisions: list[dict[str, Any]] = answer.json()["decisions"]
    return decisions


def drifted(decisions: list[dict[str, Any]]) -> int:
    return sum(d["fallback"] == "score_drift" for d in decisions)


def test_a_constant_score_alerts_falls_back_and_recovers(proxy: tuple[str, ModelServer]) -> None:
    url, model = proxy
    live = iter(values(draw(6000, seed=202)))
    with httpx.Client(base_url=url, timeout=10) as client:

        def next_batch() -> list[dict[str, Any]]:
            return [next(live) for _ in range(BATCH)]

        normal = [send(client, next_batch()) for _ in range(6)]
        assert sum(drifted(d) for d in normal) == 0
        report = client.get("/v1/policies/credit-risk/monitor").json()
        assert report["decisions"] == WINDOW and report["score"]["status"] == "ok", report

        model.mode, model.constant = "constant", 0.42
        seen = 0
        for _ in range(10):  # at most 1,000 decisions
            seen = drifted(send(client, next_batch()))
            if seen:
                break
        assert seen, "the constant score never put the monitor in alert"
        report = client.get("/v1/policies/credit-risk/monitor").json()
        assert report["status"] == "alert" and report["score"]["status"] == "alert"
        assert any(reason.startswith("score") for reason in report["reasons"]), report["reasons"]
        metrics = client.get("/metrics").text
        assert re.search(r'guardrails_monitor_status\{policy="credit-risk"\} 2\.0', metrics)
        assert 'guardrails_fallbacks_total{cause="score_drift",policy="credit-risk"}' in metrics

        model.mode = "ok"
        recovered = False
        for _ in range(20):  # the constant scores must leave the window: a few windows at most
            if drifted(send(client, next_batch())) == 0:
                recovered = True
                break
        assert recovered, "decisions kept falling back after the model recovered"
        assert drifted(send(client, next_batch())) == 0
        assert client.get("/v1/policies/credit-risk/monitor").json()["score"]["status"] != "alert"


def test_a_policy_without_a_monitor_says_so(tmp_path: Path) -> None:
    text = (POLICIES / "credit-risk.yaml").read_text()
    text = text[: text.index("\nmonitor:")] + text[text.index("\ntests:") :]
    (tmp_path / "credit-risk.yaml").write_text(text)
    app = build_folder_app(tmp_path, ServerSettings(reload_interval_s=None))
    with ServerThread(app) as server:
        answer = httpx.get(server.url + "/v1/policies/credit-risk/monitor")
        assert answer.status_code == 404
        assert answer.json() == {"error": "no_monitor", "detail": "policy 'credit-risk' has no `monitor:` section"}
        assert httpx.get(server.url + "/v1/policies/nope/monitor").status_code == 404
