"""Hand-written baselines for policies/credit-risk.yaml: what a team would write without guardrails.

The same checks, thresholds and rules as the YAML, copied by hand: plain Python with if
statements for one request, and numpy for a column of requests. They know nothing about
the policy file, so they are as fast as this logic gets in plain Python and plain numpy.
If the YAML changes, these must change with it (the benchmark checks they still agree).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from guardrails.policy.expr_vector import Categorical, Column

FIELDS = frozenset(("amount", "account_age_days", "income", "prior_defaults", "country", "segment", "email"))
COUNTRIES = frozenset(("US", "CA", "GB", "DE", "FR", "KP"))
SEGMENTS = frozenset(("standard", "vip"))
NUMBER = (int, float)  # `type(x) in NUMBER` leaves out bool, as JSON and the policy do
INF = math.inf

Outcome = tuple[str, int, list[str], list[tuple[str, str]]]  # outcome, threshold, reasons, (rule, mode)


def validate(raw: Any) -> dict[str, Any] | list[str]:
    """The `inputs:` checks by hand: the validated values with defaults, or the names of the bad fields."""
    if not isinstance(raw, dict):
        return ["$"]
    bad = [name for name in raw if name not in FIELDS]
    amount: Any = raw.get("amount")
    if type(amount) not in NUMBER or not 0 <= amount <= 1_000_000:
        bad.append("amount")
    age: Any = raw.get("account_age_days")
    if type(age) is not int or age < 0:
        bad.append("account_age_days")
    income: Any = raw.get("income")
    if type(income) not in NUMBER or not 0 <= income < INF:
        bad.append("income")
    prior: Any = raw.get("prior_defaults")
    if prior is None:
        prior = 0
    elif type(prior) is not int or prior < 0:
        bad.append("prior_defaults")
    country: Any = raw.get("country")
    if type(country) is not str or country not in COUNTRIES:
        bad.append("country")
    segment: Any = raw.get("segment")
    if segment is None:
        segment = "standard"
    elif type(segment) is not str or segment not in SEGMENTS:
        bad.append("segment")
    email: Any = raw.get("email")
    if email is not None and (type(email) is not str or len(email) > 254):
        bad.append("email")
    if bad:
        return bad
    return {
        "amount": float(amount),
        "account_age_days": age,
        "income": float(income),
        "prior_defaults": prior,
        "country": country,
        "segment": segment,
        "email": email,
    }


def from_json(body: bytes) -> dict[str, Any] | list[str]:
    """Decode with the fastest generic decoder (msgspec, to a dict), then check by hand."""
    return validate(msgspec.json.decode(body))


def decide(values: dict[str, Any], score: float, confidence: float) -> Outcome:
    """The thresholds (first match) and the rules (in order; the first is final; the last is shadow)."""
    if score >= 0.85:
        outcome, threshold, reasons = "decline", 0, ["HIGH_RISK"]
    elif score >= 0.5 or confidence < 0.6:
        outcome, threshold, reasons = "review", 1, ["UNCERTAIN"]
    else:
        outcome, threshold, reasons = "approve", 2, ["LOW_RISK"]
    rules: list[tuple[str, str]] = []
    if values["country"] == "KP":
        outcome = "decline"
        reasons.append("SANCTIONED_COUNTRY")
        rules.append(("sanctioned-country", "enforce"))
    else:  # sanctioned-country is final: the enforced rules after it run only when it did not apply
        if values["amount"] > 50000 and values["account_age_days"] < 90 and outcome == "approve":
            outcome = "review"
            reasons.append("LARGE_AMOUNT_NEW_ACCOUNT")
            rules.append(("large-amount-new-account", "enforce"))
        if values["segment"] == "vip" and outcome == "decline":
            outcome = "review"
            reasons.append("VIP_PROTECTION")
            rules.append(("vip-never-auto-declined", "enforce"))
    if values["prior_defaults"] >= 2:
        rules.append(("repeat-defaulter", "shadow"))
    return outcome, threshold, reasons, rules


APPROVE, REVIEW, DECLINE = 0, 1, 2  # codes into the policy's `outcomes`
Int16Array = npt.NDArray[np.int16]
BoolArray = npt.NDArray[np.bool_]


def decide_columns(cols: dict[str, Column]) -> tuple[Int16Array, Int16Array, list[BoolArray]]:
    """Outcome codes, threshold indices and, per rule, where it applied (enforced) or matched (shadow)."""
    score, confidence = _numbers(cols, "score"), _numbers(cols, "confidence")
    country, segment = _strings(cols, "country"), _strings(cols, "segment")
    threshold = np.full(len(score), 2, dtype=np.int16)  # first match wins: assign the last threshold first
    threshold[(score >= 0.5) | (confidence < 0.6)] = 1
    threshold[score >= 0.85] = 0
    outcome = np.array([DECLINE, REVIEW, APPROVE], dtype=np.int16)[threshold]
    sanctioned = country.codes == country.code_of("KP")
    outcome[sanctioned] = DECLINE
    amount, age = _numbers(cols, "amount"), _numbers(cols, "account_age_days")
    large = (amount > 50000) & (age < 90) & (outcome == APPROVE) & ~sanctioned
    outcome[large] = REVIEW
    vip = (segment.codes == segment.code_of("vip")) & (outcome == DECLINE) & ~sanctioned
    outcome[vip] = REVIEW
    repeat = _numbers(cols, "prior_defaults") >= 2
    return outcome, threshold, [sanctioned, large, vip, repeat]


def _numbers(cols: dict[str, Column], name: str) -> npt.NDArray[np.float64]:
    column = cols[name]
    assert isinstance(column, np.ndarray)
    return column


def _strings(cols: dict[str, Column], name: str) -> Categorical:
    column = cols[name]
    assert isinstance(column, Categorical)
    return column
