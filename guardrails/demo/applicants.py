"""Synthetic credit applicants, seeded: the demo's traffic, and what the shipped credit-risk reference was built from.

Columns are drawn with numpy; an optional field a client may leave out is marked -1 (the
policy's default then applies, or the value is missing). The score is the demo model's,
so the demo's live traffic and the shipped reference agree when nothing is wrong.
(`tests/monitor/credit_data.py` rebuilds policies/credit-risk.reference.json from it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from guardrails.demo.model import credit_probability

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "KP")
COUNTRY_SHARE = (0.45, 0.15, 0.15, 0.12, 0.12, 0.01)
SEGMENTS = ("standard", "vip")

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Draw:
    amount: Floats
    account_age_days: Ints
    income: Floats
    prior_defaults: Ints  # -1: not sent (default 0)
    country: Ints  # index into COUNTRIES
    segment: Ints  # index into SEGMENTS; -1: not sent (default standard)
    email: Ints  # -1: not sent (missing)
    p_bad: Floats

    @property
    def rows(self) -> int:
        return len(self.amount)


def draw(rows: int, seed: int) -> Draw:
    """`rows` applicants and the model's p(bad) for each."""
    rng = np.random.default_rng(seed)
    new = rng.random(rows) < 0.15
    age = np.where(new, rng.integers(0, 90, rows), rng.integers(90, 3650, rows))
    amount = np.clip(np.round(rng.lognormal(8.5, 1.2, rows), 2), 1.0, 1_000_000.0)
    income = np.round(rng.lognormal(10.8, 0.5, rows), 2)
    prior = rng.poisson(0.3, rows)
    vip = rng.random(rows) < 0.08
    sent_prior = np.where(rng.random(rows) < 0.4, -1, prior)
    # The score is the demo model's (guardrails.demo.model), so the demo's live traffic and this
    # reference agree when nothing is wrong.
    features = np.column_stack([amount, age, income, np.maximum(sent_prior, 0)]).astype(np.float64)
    p_bad = credit_probability(features)
    return Draw(
        amount=amount,
        account_age_days=age,
        income=income,
        prior_defaults=sent_prior,
        country=rng.choice(len(COUNTRIES), rows, p=COUNTRY_SHARE),
        segment=np.where(vip, 1, np.where(rng.random(rows) < 0.5, -1, 0)),
        email=np.where(rng.random(rows) < 0.4, rng.integers(0, 100_000, rows), -1),
        p_bad=np.round(p_bad, 6),
    )


def values(d: Draw) -> list[dict[str, Any]]:
    """Each row as the policy's validated input: every input present, defaults applied."""
    amount, age, income = d.amount.tolist(), d.account_age_days.tolist(), d.income.tolist()
    prior, country, segment, email = d.prior_defaults.tolist(), d.country.tolist(), d.segment.tolist(), d.email.tolist()
    return [
        {
            "amount": amount[i],
            "account_age_days": age[i],
            "income": income[i],
            "prior_defaults": max(prior[i], 0),
            "country": COUNTRIES[country[i]],
            "segment": SEGMENTS[max(segment[i], 0)],
            "email": None if email[i] < 0 else f"user{email[i]}@example.com",
        }
        for i in range(d.rows)
    ]


def requests(d: Draw) -> list[dict[str, Any]]:
    """Each row as a caller sends it: fields the caller leaves out are absent."""
    rows = values(d)
    for row, prior, segment in zip(rows, d.prior_defaults.tolist(), d.segment.tolist(), strict=True):
        if prior < 0:
            del row["prior_defaults"]
        if segment < 0:
            del row["segment"]
        if row["email"] is None:
            del row["email"]
    return rows
