"""policies/credit-risk.yaml's thresholds and rules as a GoRules JDM decision graph, for zen-engine.

What a user of zen-engine would draw: a first-hit decision table for the thresholds, then
one first-hit table per rule, in file order, each passing its input through. Columns with
a field use unary tests (`>= 0.85`, `"KP"`). A table that matches nothing passes the
context on unchanged. `stopped` carries `final: true` to the later enforced rules; the
shadow rule writes to `shadow` and never to `outcome`. Validation is not part of the
graph: zen is given requests already validated (with defaults filled in).
"""

from __future__ import annotations

from typing import Any

NodeJson = dict[str, Any]


def _table(node_id: str, when: list[tuple[str, str]], then: list[str], rows: list[list[str]]) -> NodeJson:
    """A first-hit table: `when` columns (name, field), `then` output fields, and rows of cells."""
    inputs = [{"id": f"{node_id}-in-{i}", "name": name, "field": field} for i, (name, field) in enumerate(when)]
    outputs = [{"id": f"{node_id}-out-{i}", "name": field, "field": field} for i, field in enumerate(then)]
    rules = []
    for r, cells in enumerate(rows):
        rule = {"_id": f"{node_id}-rule-{r}"}
        for column, cell in zip([*inputs, *outputs], cells, strict=True):
            rule[column["id"]] = cell
        rules.append(rule)
    content = {"hitPolicy": "first", "inputs": inputs, "outputs": outputs, "rules": rules, "passThrough": True}
    return {
        "id": node_id,
        "type": "decisionTableNode",
        "name": node_id,
        "position": {"x": 0, "y": 0},
        "content": content,
    }


def _then(outcome: str, reason: str, rule: str) -> list[str]:
    """The output cells of an enforced rule: set the outcome, append its reason and its name."""
    return [f'"{outcome}"', f'flatten([reasons, ["{reason}"]])', f'flatten([rules, ["{rule}"]])']


THRESHOLDS = _table(
    "thresholds",
    [("score", "score"), ("confidence", "confidence")],
    ["outcome", "threshold", "reasons", "rules", "shadow", "stopped"],
    [
        [">= 0.85", "", '"decline"', "0", '["HIGH_RISK"]', "[]", "[]", "false"],
        [">= 0.5", "", '"review"', "1", '["UNCERTAIN"]', "[]", "[]", "false"],
        ["", "< 0.6", '"review"', "1", '["UNCERTAIN"]', "[]", "[]", "false"],
        ["", "", '"approve"', "2", '["LOW_RISK"]', "[]", "[]", "false"],
    ],
)
SANCTIONED_COUNTRY = _table(
    "sanctioned-country",
    [("country", "country")],
    ["outcome", "reasons", "rules", "stopped"],
    [['"KP"', *_then("decline", "SANCTIONED_COUNTRY", "sanctioned-country"), "true"]],
)
LARGE = "large-amount-new-account"
LARGE_AMOUNT_NEW_ACCOUNT = _table(
    LARGE,
    [("stopped", "stopped"), ("amount", "amount"), ("age", "account_age_days"), ("outcome", "outcome")],
    ["outcome", "reasons", "rules"],
    [["false", "> 50000", "< 90", '"approve"', *_then("review", "LARGE_AMOUNT_NEW_ACCOUNT", LARGE)]],
)
VIP_NEVER_AUTO_DECLINED = _table(
    "vip-never-auto-declined",
    [("stopped", "stopped"), ("segment", "segment"), ("outcome", "outcome")],
    ["outcome", "reasons", "rules"],
    [["false", '"vip"', '"decline"', *_then("review", "VIP_PROTECTION", "vip-never-auto-declined")]],
)
REPEAT_DEFAULTER = _table(
    "repeat-defaulter",
    [("prior_defaults", "prior_defaults")],
    ["shadow"],
    [[">= 2", '["repeat-defaulter"]']],
)


def credit_risk_graph() -> NodeJson:
    """The decision graph: request -> thresholds -> each rule in order -> response."""
    chain = [
        {"id": "request", "type": "inputNode", "name": "request", "position": {"x": 0, "y": 0}},
        THRESHOLDS,
        SANCTIONED_COUNTRY,
        LARGE_AMOUNT_NEW_ACCOUNT,
        VIP_NEVER_AUTO_DECLINED,
        REPEAT_DEFAULTER,
        {"id": "response", "type": "outputNode", "name": "response", "position": {"x": 0, "y": 0}},
    ]
    edges = [
        {"id": f"edge-{i}", "type": "edge", "sourceId": a["id"], "targetId": b["id"]}
        for i, (a, b) in enumerate(zip(chain, chain[1:], strict=False))
    ]
    return {"contentType": "application/vnd.gorules.decision", "nodes": chain, "edges": edges}
