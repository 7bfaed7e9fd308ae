"""Synthetic credit-risk data, seeded: what policies/credit-risk.reference.json was built from.

    /work/venv/bin/python -m tests.monitor.credit_data   # rewrites policies/credit-risk.reference.json

The same generator, with other seeds, is the "unchanged" live traffic of the false-alarm
simulation; `shifted` variants are the drift it must catch. Columns are drawn with numpy;
an optional field a client may leave out is marked -1 (the policy's default then applies,
or the value is missing).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "credit-risk.yaml"
REFERENCE = ROOT / "policies" / "credit-risk.reference.json"
REFERENCE_ROWS = 20_000
REFERENCE_SEED = 20261121
SCORE_COLUMN = "p_bad"

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
    z = (
        -2.0
        + 0.8 * prior
        - 1.2 * (np.log(income) - 10.8)
        + 0.35 * (np.log(amount) - 8.5)
        + 0.6 * new
        + rng.normal(0.0, 1.8, rows)
    )
    return Draw(
        amount=amount,
        account_age_days=age,
        income=income,
        prior_defaults=np.where(rng.random(rows) < 0.4, -1, prior),
        country=rng.choice(len(COUNTRIES), rows, p=COUNTRY_SHARE),
        segment=np.where(vip, 1, np.where(rng.random(rows) < 0.5, -1, 0)),
        email=np.where(rng.random(rows) < 0.4, rng.integers(0, 100_000, rows), -1),
        p_bad=np.round(1.0 / (1.0 + np.exp(-z)), 6),
    )


def shifted(d: Draw, column: str, sds: float = 1.0) -> Draw:
    """`column` moved up by `sds` standard deviations of the reference's values (amount, account_age_days, income)."""
    sd = float(np.std(getattr(draw(REFERENCE_ROWS, REFERENCE_SEED), column)))
    moved = getattr(d, column) + sds * sd
    if column == "account_age_days":
        moved = np.round(moved).astype(np.int64)
    return replace(d, **{column: moved})


def constant_score(d: Draw, value: float = 0.3) -> Draw:
    """The model returning the same score for everyone."""
    return replace(d, p_bad=np.full(d.rows, value))


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


def write_csv(path: Path, d: Draw) -> None:
    """The draw as a CSV file with a score column; a field not sent is an empty cell."""
    with path.open("w", newline="") as file:
        out = csv.writer(file)
        out.writerow(["amount", "account_age_days", "income", "prior_defaults", "country", "segment", "email", "p_bad"])
        for i in range(d.rows):
            prior, segment, email = int(d.prior_defaults[i]), int(d.segment[i]), int(d.email[i])
            out.writerow(
                [
                    f"{d.amount[i]:.2f}",
                    int(d.account_age_days[i]),
                    f"{d.income[i]:.2f}",
                    "" if prior < 0 else prior,
                    COUNTRIES[d.country[i]],
                    "" if segment < 0 else SEGMENTS[segment],
                    "" if email < 0 else f"user{email}@example.com",
                    f"{d.p_bad[i]:.6f}",
                ]
            )


def main() -> int:
    """Rebuild the shipped reference with the real command, from the seeded draw."""
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "credit-risk-validation.csv"
        write_csv(data, draw(REFERENCE_ROWS, REFERENCE_SEED))
        command = [sys.executable, "-m", "guardrails", "profile", str(data), "--policy", str(POLICY)]
        command += ["--score-column", SCORE_COLUMN, "-o", str(REFERENCE)]
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
