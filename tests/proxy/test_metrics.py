"""GET /metrics moves with the traffic: read it before and after, and check the deltas."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests.proxy.conftest import (
    LOW_RISK,
    NEW_ACCOUNT_LARGE,
    REPEAT_DEFAULTER,
    SANCTIONED,
    MetricsSnapshot,
    Proxy,
    RunningModel,
)


def deltas(before: MetricsSnapshot, after: MetricsSnapshot, name: str, *labels: dict[str, str]) -> list[float]:
    return [after.value(name, **label) - before.value(name, **label) for label in labels]


def test_metrics_follow_the_traffic(proxy: Proxy, ok_model: RunningModel, error_model: RunningModel) -> None:
    before = proxy.metrics()

    proxy.decide("credit", LOW_RISK)  # approve
    proxy.decide("credit", NEW_ACCOUNT_LARGE)  # review, by an enforced rule
    proxy.decide("credit", REPEAT_DEFAULTER)  # approve, a shadow rule fires
    proxy.decide("credit", {**LOW_RISK, "amount": -1, "country": "XX", "nickname": "n"})  # 422
    proxy.decide("credit", {**LOW_RISK, "amount": -2})  # 422
    proxy.decide("credit-error", LOW_RISK)  # fallback: upstream_error
    proxy.batch("credit", {"instances": [LOW_RISK, SANCTIONED]})  # approve; decline by a final rule

    after = proxy.metrics()
    credit, failing = {"policy": "credit"}, {"policy": "credit-error"}
    assert deltas(
        before,
        after,
        "guardrails_decisions_total",
        {**credit, "outcome": "approve"},
        {**credit, "outcome": "review"},
        {**credit, "outcome": "decline"},
        {**failing, "outcome": "review"},
    ) == [3, 1, 1, 1]
    assert deltas(
        before,
        after,
        "guardrails_decision_reasons_total",
        {**credit, "reason": "LOW_RISK"},
        {**credit, "reason": "LARGE_AMOUNT_NEW_ACCOUNT"},
        {**credit, "reason": "SANCTIONED_COUNTRY"},
        {**credit, "reason": "REPEAT_DEFAULTER"},  # a shadow rule never adds its reason
        {**failing, "reason": "MODEL_UNAVAILABLE"},
    ) == [5, 1, 1, 0, 1]
    assert deltas(
        before,
        after,
        "guardrails_fallbacks_total",
        {**failing, "cause": "upstream_error"},
        {**credit, "cause": "upstream_error"},
    ) == [1, 0]
    assert deltas(
        before,
        after,
        "guardrails_rule_fires_total",
        {**credit, "rule": "large-amount-new-account", "mode": "enforce"},
        {**credit, "rule": "repeat-defaulter", "mode": "shadow"},
        {**credit, "rule": "sanctioned-country", "mode": "enforce"},
    ) == [1, 1, 1]
    assert deltas(
        before,
        after,
        "guardrails_input_errors_total",
        {**credit, "field": "amount"},
        {**credit, "field": "country"},
        {**credit, "field": "(unknown)"},  # a caller's field name never becomes a label
        {**credit, "field": "nickname"},
    ) == [2, 1, 1, 0]
    assert deltas(
        before,
        after,
        "guardrails_upstream_requests_total",
        {**credit, "status": "ok"},
        {**failing, "status": "error"},
    ) == [4, 1]
    assert deltas(
        before,
        after,
        "guardrails_upstream_latency_seconds_count",
        credit,
        failing,
    ) == [4, 1]
    assert deltas(
        before,
        after,
        "guardrails_request_latency_seconds_count",
        {**credit, "endpoint": "decide"},  # rejected inputs (422) are not decisions
        {**credit, "endpoint": "batch"},
        {**failing, "endpoint": "decide"},
    ) == [3, 1, 1]
    assert ok_model.requests == 4
    assert error_model.requests == 1


def test_metrics_are_prometheus_text(proxy: Proxy) -> None:
    response = proxy.request("GET", "/metrics")

    assert response.status_code == 200
    # one charset parameter: Prometheus refuses a content type with a duplicate parameter
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert CONTENT_TYPE_LATEST.count("charset=") == 1
    assert "# TYPE guardrails_decisions_total counter" in response.text
    assert "# TYPE guardrails_upstream_latency_seconds histogram" in response.text
