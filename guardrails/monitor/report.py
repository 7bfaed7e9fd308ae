"""The monitor report: a window's counts judged against the reference and the policy's `monitor:`.

`judge` is pure and takes plain counts, so the streaming window, the tests and the
false-alarm simulation all run the very same rules:

- **warming up**: below `warm_up(window)` decisions nothing is judged; the status is ok.
- **inputs and score**: PSI against the reference, warn or alert at the calibrated bands
  of `guardrails.monitor.psi` (a value with fewer than `warm_up` observations is not judged).
- **outcome rates**: an outcome whose share of the window's decisions is outside its
  configured `rates:` range: warn.
- **fallback rate**: above `fallback_rate_max`: alert (the model is failing the service).

The status is the worst of these; each warn or alert adds one reason, in that order.
`MonitorReport` is a msgspec Struct: `msgspec.json.encode(report)` is the HTTP response.

Pure: imports the stdlib, msgspec and the monitor modules only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from guardrails.monitor.config import MonitorConfig
from guardrails.monitor.psi import SEVERITY, Status, filled_bins, level, psi, thresholds
from guardrails.monitor.reference import shares

MIN_WARM_UP = 200


class InputDrift(msgspec.Struct, frozen=True, kw_only=True):
    psi: float
    warn_at: float  # the configured band, raised to this window's noise floor
    alert_at: float
    status: Status
    count: int  # values seen in the window
    missing_rate: float


class ScoreDrift(msgspec.Struct, frozen=True, kw_only=True):
    psi: float
    warn_at: float
    alert_at: float
    status: Status
    count: int  # decisions in the window with a score (fallbacks have none)


class OutcomeRate(msgspec.Struct, frozen=True, kw_only=True):
    rate: float
    count: int
    range: tuple[float, float] | None  # from `rates:`, when configured
    status: Status


class MonitorReport(msgspec.Struct, frozen=True, kw_only=True):
    """How the last `window` decisions of a policy compare with its reference."""

    policy: str
    reference: str  # the reference's content hash
    status: Status
    reasons: list[str]
    decisions: int  # in the window now
    window: int
    warm_up: int  # decisions needed before anything is judged
    inputs: dict[str, InputDrift]
    score: ScoreDrift | None
    outcomes: dict[str, OutcomeRate]
    fallback_rate: float
    fallback_rate_max: float | None
    on_alert: str


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """A window as counts: per input over its profile's shares (bins, other, missing), per score bin."""

    decisions: int
    inputs: Mapping[str, Sequence[int]]
    score: Sequence[int] | None
    outcomes: Sequence[int]  # in the policy's order
    fallbacks: int


def warm_up(window: int) -> int:
    """How many decisions a window needs before it is judged: 200, or a tenth of a large window."""
    return min(window, max(MIN_WARM_UP, window // 10))


def monitored(config: MonitorConfig) -> int:
    """How many values are watched for drift (every input, and the score): the Bonferroni family."""
    return len(config.reference.inputs) + (config.reference.score is not None)


def judge(config: MonitorConfig, counts: WindowCounts) -> MonitorReport:
    """The report of a window's counts."""
    spec, reference = config.spec, config.reference
    needed = warm_up(spec.window)
    judged = counts.decisions >= needed
    reasons: list[tuple[Status, str]] = []
    inputs: dict[str, InputDrift] = {}
    for name, profile in reference.inputs.items():
        seen = counts.inputs[name]
        drift = _drift(config, shares(profile), seen, needed if judged else None)
        missing = seen[-1] / drift.count if drift.count else 0.0
        inputs[name] = InputDrift(**drift.fields(), missing_rate=missing)
        _add_reason(reasons, drift, f"input `{name}`")
    score = None
    if reference.score is not None and counts.score is not None:
        drift = _drift(config, reference.score.proportions, counts.score, needed if judged else None)
        score = ScoreDrift(**drift.fields())
        _add_reason(reasons, drift, "score")
    outcomes = _outcomes(config, counts, judged, reasons)
    fallback_rate = counts.fallbacks / counts.decisions if counts.decisions else 0.0
    if judged and spec.fallback_rate_max is not None and fallback_rate > spec.fallback_rate_max:
        reasons.append(("alert", f"fallback rate {fallback_rate:.3g} above {spec.fallback_rate_max:g} (alert)"))
    if not judged:
        reasons.append(("ok", f"warming up: {counts.decisions} of {needed} decisions"))
    status: Status = max((s for s, _ in reasons), key=SEVERITY.__getitem__, default="ok")
    return MonitorReport(
        policy=config.policy,
        reference=config.reference_hash,
        status=status,
        reasons=[text for _, text in reasons],
        decisions=counts.decisions,
        window=spec.window,
        warm_up=needed,
        inputs=inputs,
        score=score,
        outcomes=outcomes,
        fallback_rate=fallback_rate,
        fallback_rate_max=spec.fallback_rate_max,
        on_alert=spec.on_alert,
    )


def score_status(config: MonitorConfig, decisions: int, counts: Sequence[int]) -> Status:
    """The score's drift status alone (what `on_alert: fallback` acts on)."""
    reference = config.reference.score
    needed = warm_up(config.spec.window)
    if reference is None or decisions < needed:
        return "ok"
    return _drift(config, reference.proportions, counts, needed).status


@dataclass(frozen=True, slots=True)
class _Drift:
    psi: float
    warn_at: float
    alert_at: float
    status: Status
    count: int

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _drift(config: MonitorConfig, expected: Sequence[float], seen: Sequence[int], needed: int | None) -> _Drift:
    """PSI of `seen` against `expected`, judged only when `needed` is given and reached."""
    bands, rows = config.spec.psi, config.reference.rows
    n = sum(seen)
    value = psi(expected, seen, rows)
    warn_at, alert_at = thresholds(bands.warn, bands.alert, filled_bins(expected), n, rows, monitored(config))
    status = level(value, warn_at, alert_at) if needed is not None and n >= needed else "ok"
    return _Drift(value, warn_at, alert_at, status, n)


def _add_reason(reasons: list[tuple[Status, str]], drift: _Drift, what: str) -> None:
    if drift.status != "ok":
        limit = drift.alert_at if drift.status == "alert" else drift.warn_at
        reasons.append((drift.status, f"{what} drifted: PSI {drift.psi:.3g} >= {limit:.3g} ({drift.status})"))


def _outcomes(
    config: MonitorConfig, counts: WindowCounts, judged: bool, reasons: list[tuple[Status, str]]
) -> dict[str, OutcomeRate]:
    result: dict[str, OutcomeRate] = {}
    for outcome, count in zip(config.outcomes, counts.outcomes, strict=True):
        rate = count / counts.decisions if counts.decisions else 0.0
        bounds = config.spec.rates.get(outcome)
        status: Status = "ok"
        if judged and bounds is not None and not bounds[0] <= rate <= bounds[1]:
            status = "warn"
            low, high = bounds
            reasons.append(("warn", f"outcome `{outcome}`: rate {rate:.3g} outside [{low:g}, {high:g}] (warn)"))
        result[outcome] = OutcomeRate(rate=rate, count=count, range=bounds, status=status)
    return result
