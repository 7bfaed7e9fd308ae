"""PSI, and the rule that turns it into ok, warn or alert whatever the size of the window.

**PSI** (population stability index) compares the reference's shares `p` with a window's
counts `c` (n values, q = c / n), over the same bins:

    PSI = sum over bins of (q - p) * ln(q / p)

A bin empty on one side would make it infinite, so an empty bin counts as **half an
observation**: q = 0.5 / n for an empty window bin, p = 0.5 / N for a bin the reference's N
rows never filled. A bin empty on both sides says nothing and is skipped, so identical
distributions give exactly 0.

**Calibration.** On unchanged data PSI is not 0 but noise that shrinks with the window:
for large n, n * PSI follows a chi-square distribution with k - 1 degrees of freedom (k:
the bins the reference fills), and because the reference is itself a sample of N rows the
scale is (1/n + 1/N); so E[PSI] is about (k - 1)(1/n + 1/N): 0.045 for 10 bins at n = 200,
where a fixed band of 0.1 warns on one unchanged credit-risk window in ten. So a value
drifts (warn, or alert) only when its PSI reaches both

- the configured band (`psi: {warn, alert}`): the smallest change worth reporting, and
- the **noise floor**: the PSI an unchanged window of this size exceeds with probability
  a / m, where m is the number of values monitored (every input and the score) and a is
  `FALSE_ALARM` (0.5%) for warn and `FALSE_ALARM_ALERT` (0.05%) for alert. By Bonferroni,
  an unchanged window then raises any warning with probability at most about 0.5%, all
  inputs and the score counted together: half the goal of 1%, a margin for the
  approximations (chi-square, Wilson-Hilferty, the reference's own sampling error).

    warn_at  = max(warn,  chi2_quantile(k - 1, 1 - 0.005 / m)  * (1/n + 1/N))
    alert_at = max(alert, chi2_quantile(k - 1, 1 - 0.0005 / m) * (1/n + 1/N))

At the default window (2000) with 10-bin inputs the floor is about 0.016: the configured
bands decide. Below a few hundred values the floor rises above them, so a small window does
not cry wolf. Measured on unchanged credit-risk windows (tests/monitor/calibration.py, 5,000
windows each): no false alarm at 2000 with the default bands; 0.70% with the floor alone;
0.50% at a window of 200 (where the fixed band alone fires 10.2%). docs/policy-format.md
has the table; tests/monitor/test_calibration.py fails above 1%.

Pure: imports the stdlib and numpy only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Status = Literal["ok", "warn", "alert"]
SEVERITY: dict[Status, int] = {"ok": 0, "warn": 1, "alert": 2}
FALSE_ALARM = 0.005  # design rate of a warn, family-wise per check: half the 1% goal, a margin for approximations
FALSE_ALARM_ALERT = 0.0005  # the same for an alert
EMPTY = 0.5  # an empty bin counts as this many observations

_NORMAL = NormalDist()


def psi(expected: Sequence[float], counts: Sequence[int], reference_rows: int) -> float:
    """The PSI of window `counts` against the reference shares `expected` (of `reference_rows` rows)."""
    n = sum(counts)
    if n == 0:
        return 0.0
    total = 0.0
    for p, c in zip(expected, counts, strict=True):
        if c == 0 and p == 0.0:
            continue
        q = c / n if c else EMPTY / n
        p = p or EMPTY / reference_rows
        total += (q - p) * math.log(q / p)
    return total


def psi_many(
    expected: Sequence[float], counts: npt.NDArray[np.integer[Any]], reference_rows: int
) -> npt.NDArray[np.float64]:
    """`psi` of each row of `counts` (windows x bins), vectorised."""
    counts = np.asarray(counts)
    n = counts.sum(axis=1, keepdims=True).astype(np.float64)
    p_raw = np.asarray(expected, dtype=np.float64)
    both_empty = (counts == 0) & (p_raw == 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(counts > 0, counts / n, EMPTY / n)
        p = np.where(p_raw > 0.0, p_raw, EMPTY / reference_rows)
        terms = np.where(both_empty, 0.0, (q - p) * np.log(q / p))
    result: npt.NDArray[np.float64] = np.where(n[:, 0] > 0, terms.sum(axis=1), 0.0)
    return result


@functools.lru_cache(maxsize=1024)
def chi2_quantile(dof: int, upper: float) -> float:
    """x with P(chi-square(dof) > x) = `upper`: exact for 1 and 2 degrees of freedom, else Wilson-Hilferty."""
    if dof == 1:
        return _NORMAL.inv_cdf(1.0 - upper / 2.0) ** 2
    if dof == 2:
        return -2.0 * math.log(upper)
    z = _NORMAL.inv_cdf(1.0 - upper)
    h = 2.0 / (9.0 * dof)
    return float(dof * (1.0 - h + z * math.sqrt(h)) ** 3)


def noise_floor(bins: int, n: int, reference_rows: int, false_alarm: float) -> float:
    """The PSI that an unchanged window of `n` values exceeds with probability about `false_alarm`.

    `bins` counts the bins the reference fills; with fewer than two nothing can vary.
    """
    if bins < 2 or n <= 0:
        return 0.0
    return chi2_quantile(bins - 1, false_alarm) * (1.0 / n + 1.0 / reference_rows)


def thresholds(
    warn: float, alert: float, bins: int, n: int, reference_rows: int, monitored: int
) -> tuple[float, float]:
    """(warn_at, alert_at): the configured bands raised to the noise floor of a window of `n`."""
    family = max(monitored, 1)
    return (
        max(warn, noise_floor(bins, n, reference_rows, FALSE_ALARM / family)),
        max(alert, noise_floor(bins, n, reference_rows, FALSE_ALARM_ALERT / family)),
    )


def filled_bins(expected: Sequence[float]) -> int:
    """The bins the reference fills: the degrees of freedom of the noise, plus one."""
    return sum(p > 0.0 for p in expected)


def level(value: float, warn_at: float, alert_at: float) -> Status:
    if value >= alert_at:
        return "alert"
    if value >= warn_at:
        return "warn"
    return "ok"
