"""The credit-risk workload: varied valid requests and model outputs, drawn once with a fixed seed.

The same draw gives request dicts (for the single-decision benchmarks) and numpy columns (for
the vectorised ones): the columns are built with numpy only, never by looping over dicts, so
a million rows take a fraction of a second. Optional fields are sometimes left out of a
request; their columns then hold the policy's default (or missing, for `email`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from guardrails.policy.compile import CompiledPolicy
from guardrails.policy.expr_vector import Categorical, Column

COUNTRIES = ("US", "CA", "GB", "DE", "FR", "KP")
COUNTRY_SHARE = (0.40, 0.15, 0.15, 0.12, 0.15, 0.03)
SEGMENTS = ("standard", "vip")
EMAILS = tuple(f"user{i}@example.com" for i in range(1000))

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Draw:
    """`n` requests: raw values, which optional fields each request sends, and the model's p(bad)."""

    amount: FloatArray
    account_age_days: IntArray
    income: FloatArray
    prior_defaults: IntArray
    sends_prior_defaults: BoolArray
    country: IntArray  # index into COUNTRIES
    segment: IntArray  # index into SEGMENTS
    sends_segment: BoolArray
    email: IntArray  # index into EMAILS, -1 when the request sends none
    p_bad: FloatArray

    @property
    def rows(self) -> int:
        return len(self.amount)


def draw(rows: int, seed: int) -> Draw:
    """A realistic mix: mostly small amounts and old accounts, a few new accounts, large loans, vips and KP."""
    rng = np.random.default_rng(seed)
    new_account = rng.random(rows) < 0.15
    age = np.where(new_account, rng.integers(0, 90, rows), rng.integers(90, 3650, rows))
    amount = np.minimum(np.round(rng.lognormal(9.0, 1.6, rows), 2), 1_000_000.0)
    email = np.where(rng.random(rows) < 0.4, rng.integers(0, len(EMAILS), rows), -1)
    segment = np.where(rng.random(rows) < 0.1, 1, 0)
    return Draw(
        amount=amount,
        account_age_days=age,
        income=np.round(rng.lognormal(10.8, 0.6, rows), 2),
        prior_defaults=rng.poisson(0.4, rows),
        sends_prior_defaults=rng.random(rows) < 0.6,
        country=rng.choice(len(COUNTRIES), rows, p=COUNTRY_SHARE),
        segment=segment,
        sends_segment=(rng.random(rows) < 0.5) | (segment == 1),
        email=email,
        # Most applicants look safe; one in twelve comes from a high-risk population.
        p_bad=np.where(rng.random(rows) < 0.08, rng.beta(5.0, 1.0, rows), rng.beta(0.8, 2.5, rows)),
    )


def records(d: Draw) -> list[dict[str, Any]]:
    """The requests as dicts, as a client would send them (optional fields sometimes left out)."""
    amount, age, income = d.amount.tolist(), d.account_age_days.tolist(), d.income.tolist()
    prior, sends_prior = d.prior_defaults.tolist(), d.sends_prior_defaults.tolist()
    country, segment, sends_segment = d.country.tolist(), d.segment.tolist(), d.sends_segment.tolist()
    email = d.email.tolist()
    result: list[dict[str, Any]] = []
    for i in range(d.rows):
        record: dict[str, Any] = {
            "amount": amount[i],
            "account_age_days": age[i],
            "income": income[i],
            "country": COUNTRIES[country[i]],
        }
        if sends_prior[i]:
            record["prior_defaults"] = prior[i]
        if sends_segment[i]:
            record["segment"] = SEGMENTS[segment[i]]
        if email[i] >= 0:
            record["email"] = EMAILS[email[i]]
        result.append(record)
    return result


def model_rows(d: Draw) -> list[list[float]]:
    """What the model returns for each request: [p(good), p(bad)]."""
    p_bad = d.p_bad.tolist()
    p_good = (1.0 - d.p_bad).tolist()
    return [[good, bad] for good, bad in zip(p_good, p_bad, strict=True)]


def columns(policy: CompiledPolicy, d: Draw) -> dict[str, Column]:
    """`decide_vector`'s columns for the draw, with numpy only (what `ScoreReader.read` derives, per row)."""
    p_bad = d.p_bad
    p_good = 1.0 - p_bad
    labels = policy.scores.labels or ()
    return {
        "amount": d.amount.astype(np.float64),
        "account_age_days": d.account_age_days.astype(np.float64),
        "income": d.income.astype(np.float64),
        "prior_defaults": np.where(d.sends_prior_defaults, d.prior_defaults, 0).astype(np.float64),
        "country": Categorical(d.country.astype(np.int32), COUNTRIES),
        "segment": Categorical(np.where(d.sends_segment, d.segment, 0).astype(np.int32), SEGMENTS),
        "email": Categorical(d.email.astype(np.int32), EMAILS),
        "score": p_bad.copy(),
        "confidence": np.maximum(p_good, p_bad),
        "margin": np.abs(p_good - p_bad),
        # The most probable class; a tie goes to the first label, as in ScoreReader.
        "label": Categorical(
            np.where(p_bad > p_good, labels.index("bad"), labels.index("good")).astype(np.int32), labels
        ),
    }
