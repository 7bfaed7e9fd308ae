"""Guardrails in front of MLServer (the Open Inference Protocol) serving a scikit-learn pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.proxy.conftest import (
    CREDIT_FEATURES,
    LOW_RISK,
    NEW_ACCOUNT_LARGE,
    REPEAT_DEFAULTER,
    SANCTIONED,
    V2_PATH,
    MLServer,
    StartProxy,
    credit_policy,
)

INSTANCES = [
    LOW_RISK,
    NEW_ACCOUNT_LARGE,
    SANCTIONED,
    REPEAT_DEFAULTER,
    {"amount": 75_000, "account_age_days": 20, "income": 12_000, "country": "FR", "prior_defaults": 3},
    {"amount": 20_000, "account_age_days": 400, "income": 40_000, "country": "US", "prior_defaults": 1},
]


def features(instances: list[dict[str, Any]]) -> np.ndarray[Any, Any]:
    return np.array([[float(i.get(name, 0)) for name in CREDIT_FEATURES] for i in instances], dtype=np.float64)


def expected_label(bad: float) -> str:
    return "bad" if bad >= 0.5 else "good"


def test_decisions_through_mlserver(start_proxy: StartProxy, mlserver: MLServer) -> None:
    proxy = start_proxy(credit_policy("credit", mlserver.url + V2_PATH, timeout_ms=5000))
    bad = mlserver.model.predict_proba(features(INSTANCES))[:, 1]

    answers = [proxy.decide("credit", instance).json() for instance in INSTANCES]

    for answer, p_bad in zip(answers, bad.tolist(), strict=True):
        assert answer["fallback"] is None, answer["fallback_detail"]
        assert answer["model"]["status"] == "ok"
        assert (answer["model"]["http_status"], answer["model"]["attempts"]) == (200, 1)
        assert abs(answer["score"] - p_bad) <= 1e-9
        assert abs(answer["confidence"] - max(p_bad, 1 - p_bad)) <= 1e-9
        assert answer["label"] == expected_label(p_bad)
    assert len({round(p, 6) for p in bad.tolist()}) == len(INSTANCES), "the model should tell the rows apart"
    assert answers[2]["outcome"] == "decline"  # sanctioned, whatever the model says


def test_a_batch_through_mlserver(start_proxy: StartProxy, mlserver: MLServer) -> None:
    proxy = start_proxy(credit_policy("credit", mlserver.url + V2_PATH, timeout_ms=5000))
    bad = mlserver.model.predict_proba(features(INSTANCES))[:, 1]
    singles = [proxy.decide("credit", instance).json() for instance in INSTANCES]

    response = proxy.batch("credit", {"instances": INSTANCES})

    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [d["fallback"] for d in decisions] == [None] * len(INSTANCES)
    assert np.abs(np.array([d["score"] for d in decisions]) - bad).max() <= 1e-9
    for decision, single in zip(decisions, singles, strict=True):
        assert (decision["outcome"], decision["reasons"], decision["rules"], decision["label"]) == (
            single["outcome"],
            single["reasons"],
            single["rules"],
            single["label"],
        )
        assert abs(decision["score"] - single["score"]) <= 1e-9
