"""Synthetic credit-risk data, seeded: what policies/credit-risk.reference.json was built from.

    python -m tests.monitor.credit_data   # rewrites policies/credit-risk.reference.json

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
from dataclasses import replace
from pathlib import Path

import numpy as np

from guardrails.demo.applicants import COUNTRIES, SEGMENTS, Draw, draw, values

__all__ = ["COUNTRIES", "SEGMENTS", "Draw", "draw", "values", "shifted", "constant_score", "write_csv"]

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "credit-risk.yaml"
REFERENCE = ROOT / "policies" / "credit-risk.reference.json"
REFERENCE_ROWS = 20_000
REFERENCE_SEED = 20261121
SCORE_COLUMN = "p_bad"


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
