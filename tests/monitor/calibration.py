"""The false-alarm simulation: many windows of unchanged credit-risk traffic, judged as the monitor judges.

    python -m tests.monitor.calibration   # the table in docs/policy-format.md (about 2 minutes)

Each window is a fresh draw from the generator the shipped reference was built from (other
seeds): unchanged data. Its rows are binned with numpy by the rule the streaming window uses
(checked equal in test_calibration.py), counted, and judged by `judge`, the function behind
`Window.report()`. Only drift is judged here (the inputs and the score, the family the
calibration covers): `rates` and `fallback_rate_max` are left out of the policy's monitor.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Iterator

import msgspec
import numpy as np
import numpy.typing as npt

from guardrails.monitor.config import MonitorConfig
from guardrails.monitor.reference import CategoricalProfile, InputProfile, NumericProfile, shares
from guardrails.monitor.report import MonitorReport, WindowCounts, judge
from guardrails.policy.load import load_policy_file
from tests.monitor.credit_data import COUNTRIES, POLICY, SEGMENTS, Draw, draw

Codes = npt.NDArray[np.int64]
CHUNK_ROWS = 400_000


def drift_only(config: MonitorConfig, window: int | None = None, warn: float | None = None) -> MonitorConfig:
    """`config` without rates or a fallback limit; optionally another window size or bands."""
    psi = config.spec.psi
    if warn is not None:
        psi = msgspec.structs.replace(psi, warn=warn, alert=2.5 * warn)
    spec = msgspec.structs.replace(
        config.spec, rates={}, fallback_rate_max=None, window=window or config.spec.window, psi=psi
    )
    return dataclasses.replace(config, spec=spec)


def credit_config() -> MonitorConfig:
    monitor = load_policy_file(POLICY).monitor
    assert monitor is not None
    return monitor


def codes(profile: InputProfile, column: npt.NDArray[np.int64] | npt.NDArray[np.float64], name: str) -> Codes:
    """Each row's position in `shares(profile)`, as the window bins it."""
    if isinstance(profile, NumericProfile):
        return np.searchsorted(np.asarray(profile.edges), column, side="left").astype(np.int64)
    if isinstance(profile, CategoricalProfile):
        labels = COUNTRIES if name == "country" else SEGMENTS
        index = {category: i for i, category in enumerate(profile.categories)}
        table = np.array([index.get(label, len(profile.categories)) for label in labels])
        return table[column].astype(np.int64)
    return (column < 0).astype(np.int64)  # presence: 0 present, 1 missing


def input_columns(d: Draw) -> dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]:
    """The draw's columns as validated inputs (defaults applied; email -1 when missing)."""
    return {
        "amount": d.amount,
        "account_age_days": d.account_age_days,
        "income": d.income,
        "prior_defaults": np.maximum(d.prior_defaults, 0),
        "country": d.country,
        "segment": np.maximum(d.segment, 0),
        "email": d.email,
    }


def window_counts(config: MonitorConfig, d: Draw, n: int) -> Iterator[WindowCounts]:
    """The draw cut into windows of `n` decisions, each as the counts the window would hold."""
    windows = d.rows // n
    columns = input_columns(d)
    per_input: dict[str, list[list[int]]] = {}
    for name, profile in config.reference.inputs.items():
        per_input[name] = _per_window(codes(profile, columns[name], name), len(shares(profile)), windows, n)
    score = config.reference.score
    assert score is not None
    scores = _per_window(codes(score, d.p_bad, "score"), len(score.proportions), windows, n)
    outcomes = [n] + [0] * (len(config.outcomes) - 1)
    for w in range(windows):
        yield WindowCounts(n, {name: counts[w] for name, counts in per_input.items()}, scores[w], outcomes, 0)


def _per_window(code: Codes, bins: int, windows: int, n: int) -> list[list[int]]:
    which = np.repeat(np.arange(windows), n) * bins + code[: windows * n]
    counts: list[list[int]] = np.bincount(which, minlength=windows * bins).reshape(windows, bins).tolist()
    return counts


def simulate(configs: list[MonitorConfig], n: int, windows: int, seed: int) -> list[Counter[str]]:
    """For each config, how many of `windows` unchanged windows of `n` decisions end ok, warn or alert (and why)."""
    tallies: list[Counter[str]] = [Counter() for _ in configs]
    per_chunk = max(1, CHUNK_ROWS // n)
    done = 0
    while done < windows:
        count = min(per_chunk, windows - done)
        for counts in window_counts(configs[0], draw(count * n, seed + done), n):
            for config, tally in zip(configs, tallies, strict=True):
                report = judge(config, counts)
                tally[report.status] += 1
                tally.update(_culprits(report))
                tally["fixed band"] += _fixed_band_fires(report, config.spec.psi.warn)
        done += count
    return tallies


def _fixed_band_fires(report: MonitorReport, band: float) -> bool:
    """Whether the configured warn band alone, without the noise floor, would have warned."""
    drifts = [*report.inputs.values(), *([report.score] if report.score is not None else [])]
    return any(drift.psi >= band for drift in drifts)


def _culprits(report: MonitorReport) -> list[str]:
    found = [f"  {name}" for name, drift in report.inputs.items() if drift.status != "ok"]
    if report.score is not None and report.score.status != "ok":
        found.append("  score")
    return found


def main() -> int:
    base = credit_config()
    family = len(base.reference.inputs) + 1
    print(f"unchanged credit-risk windows; reference of {base.reference.rows} rows; {family} values watched")
    print(
        f"{'window':>7} {'bands':>12} {'windows':>8} {'warn':>6} {'alert':>6} {'false alarms':>13} "
        f"{'fixed band alone':>17}  seconds"
    )
    runs = ((2000, None, 5000), (2000, 0.001, 5000), (1000, None, 5000), (500, None, 5000), (200, None, 5000))
    for n, warn, windows in runs:
        config = drift_only(base, window=n, warn=warn)
        start = time.perf_counter()
        (tally,) = simulate([config], n, windows, seed=1000)
        alarms = tally["warn"] + tally["alert"]
        bands = f"{config.spec.psi.warn:g}/{config.spec.psi.alert:g}"
        print(
            f"{n:>7} {bands:>12} {windows:>8} {tally['warn']:>6} {tally['alert']:>6} "
            f"{alarms / windows:>13.2%} {tally['fixed band'] / windows:>17.2%}  {time.perf_counter() - start:.1f}"
        )
        for key, value in sorted(tally.items()):
            if key.startswith("  "):
                print(f"{'':>8}{key.strip()}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
