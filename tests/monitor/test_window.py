"""The streaming window: running counts equal a recount after any inserts and evictions; the status rules, pinned."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.monitor.config import MonitorConfig
from guardrails.monitor.reference import (
    CategoricalProfile,
    NumericProfile,
    Reference,
    build_reference,
    reference_hash,
    shares,
)
from guardrails.monitor.report import MonitorReport
from guardrails.monitor.window import Window
from guardrails.policy.inputs import InputField
from guardrails.policy.spec import MonitorSpec, PsiBandsSpec

OUTCOMES = ("approve", "review", "decline")
FIELDS = [
    InputField("x", "float", True, None, None, None, None, None, "keep"),
    InputField("c", "str", False, None, None, None, ("a", "b"), None, "keep"),
    InputField("e", "str", False, None, None, None, None, None, "hash"),
]


def make_reference() -> Reference:
    """10,000 rows: x 0..99 (deciles {0..9}, {10..19}, ...); c half a, half b; e present half the time; score x/100."""
    rows = 10_000
    columns = {
        "x": [float(i % 100) for i in range(rows)],
        "c": ["a" if i % 2 else "b" for i in range(rows)],
        "e": ["someone" if i % 2 else None for i in range(rows)],
    }
    return build_reference("p", FIELDS, columns, scores=[(i % 100) / 100 for i in range(rows)], score_column="s")


REFERENCE = make_reference()


def make_config(window: int = 1000, **options: Any) -> MonitorConfig:
    spec = MonitorSpec(reference="p.reference.json", window=window, **options)
    return MonitorConfig("p", spec, REFERENCE, "p.reference.json", reference_hash(REFERENCE), OUTCOMES)


def unchanged(i: int) -> tuple[dict[str, Any], float]:
    """The i-th decision of traffic shaped exactly like the reference."""
    return {"x": float(i % 100), "c": "a" if i % 2 else "b", "e": "x" if i % 2 else None}, (i % 100) / 100


def feed(window: Window, count: int, start: int = 0, **override: Any) -> None:
    for i in range(start, start + count):
        values, score = unchanged(i)
        values.update(override.get("values", {}))
        window.observe(values, override.get("score", score), override.get("outcome", "approve"), False)


# ---- counts: streaming equals a recount -------------------------------------------------------------------


def layout(reference: Reference) -> list[tuple[str, Any, int]]:
    """(name, profile, first slot) of each monitored value, as the window lays them out."""
    result, at = [], 0
    for name, profile in reference.inputs.items():
        result.append((name, profile, at))
        at += len(shares(profile)) + 1
    assert reference.score is not None
    result.append(("score", reference.score, at))
    return result


def expected_row(values: dict[str, Any] | None, score: float | None, outcome: str, fallback: bool) -> list[int]:
    """The slots of one decision, computed independently of the window's vectorised binning."""
    row: list[int] = []
    end = 0
    for name, profile, at in layout(REFERENCE):
        used = len(shares(profile)) if name != "score" else len(profile.proportions)
        end = at + used + 1
        value = score if name == "score" else (None if values is None else values.get(name))
        if name != "score" and values is None:
            row.append(at + used)  # unobserved
        elif value is None:
            row.append(at + used - (name != "score"))  # missing (or, for the score, "no score")
        elif isinstance(profile, NumericProfile):
            row.append(at + bisect_left(profile.edges, value))
        elif isinstance(profile, CategoricalProfile):
            index = profile.categories.index(value) if value in profile.categories else len(profile.categories)
            row.append(at + index)
        else:
            row.append(at)  # present
    return [*row, end + OUTCOMES.index(outcome), end + len(OUTCOMES) + fallback]


decision = st.tuples(
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {
                "x": st.one_of(st.none(), st.floats(-50, 150, allow_nan=False)),
                "c": st.sampled_from(["a", "b", "zzz", None]),
                "e": st.sampled_from(["someone", None]),
            }
        ),
    ),
    st.one_of(st.none(), st.floats(0, 1)),
    st.sampled_from(OUTCOMES),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 12),
    batch=st.integers(1, 12),
    decisions=st.lists(decision, max_size=60),
    checks=st.sets(st.integers(0, 60)),
)
def test_running_counts_equal_a_recount(
    size: int, batch: int, decisions: list[tuple[Any, Any, str, bool]], checks: set[int]
) -> None:
    window = Window(make_config(window=size), batch=batch)
    for i, (values, score, outcome, fallback) in enumerate(decisions):
        window.observe(values, score, outcome, fallback)
        if i in checks:  # a report part-way takes the queue in early: batches then end at other places
            window.report()
    last = decisions[-size:] if decisions else []
    assert window.ring() == [expected_row(*d) for d in last]
    recount = Counter(slot for row in window.ring() for slot in row)
    assert window.counts() == [recount.get(slot, 0) for slot in range(len(window.counts()))]
    assert window.report().decisions == len(last)


def test_the_ring_wraps_many_times() -> None:
    window = Window(make_config(window=100), batch=7)
    feed(window, 1234)
    rows = [expected_row(*unchanged(i), "approve", False) for i in range(1134, 1234)]
    assert window.ring() == rows
    assert window.counts() == [
        Counter(s for row in rows for s in row).get(slot, 0) for slot in range(len(window.counts()))
    ]


# ---- the report --------------------------------------------------------------------------------------------


def test_warming_up() -> None:
    window = Window(make_config())
    feed(window, 150, score=0.5)  # drifted, but too few to judge
    report = window.report()
    assert (report.status, report.reasons, report.decisions, report.warm_up) == (
        "ok",
        ["warming up: 150 of 200 decisions"],
        150,
        200,
    )
    assert report.score is not None and report.score.status == "ok" and report.score.psi > 1


def test_traffic_like_the_reference_is_ok_with_zero_psi() -> None:
    window = Window(make_config())
    feed(window, 1000)
    report = window.report()
    assert (report.status, report.reasons) == ("ok", [])
    assert {name: drift.psi for name, drift in report.inputs.items()} == {"x": 0.0, "c": 0.0, "e": 0.0}
    assert report.score is not None and report.score.psi == 0.0
    assert report.inputs["e"].missing_rate == 0.5
    assert report.outcomes["approve"].rate == 1.0


def test_a_moderate_shift_warns_and_a_large_one_alerts() -> None:
    window = Window(make_config())
    feed(window, 800)
    feed(
        window, 200, values={"x": 5.0}
    )  # the first bin 28%, the others 8%: (0.28 - 0.1) ln 2.8 + 9 (0.08 - 0.1) ln 0.8
    report = window.report()
    assert report.status == "warn"
    assert report.reasons == ["input `x` drifted: PSI 0.225 >= 0.1 (warn)"]
    assert report.inputs["x"].status == "warn"
    feed(window, 1000, values={"c": "zzz"})  # a category the reference never saw, for everyone:
    # a and b empty (q = 0.5 / 1000), other 1 where p = 0.5 / 10,000: 2 (0.0005 - 0.5) ln 0.001 + 0.99995 ln 20000
    report = window.report()
    assert report.status == "alert"
    assert report.reasons == ["input `c` drifted: PSI 16.8 >= 0.25 (alert)"]


def test_the_score_collapsing_to_a_constant_alerts_and_recovers() -> None:
    window = Window(make_config(on_alert="fallback"), batch=50)
    feed(window, 1000)
    assert not window.score_in_alert()
    feed(window, 600, score=0.42)  # bin 5 (0.39 < s <= 0.49) 64%, the others 4%: 0.54 ln 6.4 + 9 (0.04 - 0.1) ln 0.4
    assert window.score_in_alert()
    report = window.report()
    assert report.reasons == ["score drifted: PSI 1.5 >= 0.25 (alert)"]
    assert report.on_alert == "fallback"
    feed(window, 1000, start=1600)  # the model recovers: the window fills with good scores again
    assert not window.score_in_alert()
    assert window.report().status == "ok"


def test_outcome_rates_outside_their_range_warn() -> None:
    window = Window(make_config(rates={"decline": (0.01, 0.15), "review": (0.0, 0.5)}))
    feed(window, 600)
    feed(window, 400, outcome="decline")
    report = window.report()
    assert report.status == "warn"
    assert report.reasons == ["outcome `decline`: rate 0.4 outside [0.01, 0.15] (warn)"]
    assert report.outcomes["decline"].status == "warn"
    assert report.outcomes["decline"].range == (0.01, 0.15)
    assert report.outcomes["review"].status == "ok" and report.outcomes["review"].rate == 0.0
    assert report.outcomes["approve"].range is None


def test_a_fallback_rate_above_the_limit_alerts_and_fallbacks_have_no_score() -> None:
    window = Window(make_config(fallback_rate_max=0.05))
    for i in range(1000):
        values, score = unchanged(i)
        fallback = i % 10 == 0
        window.observe(values, None if fallback else score, "review" if fallback else "approve", fallback)
    report = window.report()
    assert report.status == "alert"
    assert report.reasons == ["fallback rate 0.1 above 0.05 (alert)"]
    assert report.fallback_rate == 0.1
    assert report.score is not None and report.score.count == 900  # fallbacks are not in the score's distribution
    assert report.inputs["x"].count == 1000


def test_an_invalid_input_is_not_observed() -> None:
    window = Window(make_config())
    feed(window, 1000)
    for _ in range(100):
        window.observe(None, None, "review", True)
    report = window.report()
    assert report.inputs["x"].count == 900 and report.inputs["x"].psi == pytest.approx(0.0, abs=1e-3)
    assert report.fallback_rate == 0.1


def test_every_reason_in_order() -> None:
    window = Window(make_config(rates={"approve": (0.9, 1.0)}, fallback_rate_max=0.01, psi=PsiBandsSpec(warn=0.1)))
    for i in range(1000):
        values, _ = unchanged(i)
        values["c"] = "zzz" if i % 5 == 0 else values["c"]
        window.observe(values, 0.42 if i % 2 else None, "approve" if i % 2 else "review", i % 2 == 0)
    # c: a 40%, b 40%, other 20% where the reference's 10,000 rows had none (p = 0.5 / 10,000):
    #   2 (0.4 - 0.5) ln 0.8 + (0.2 - 0.00005) ln 4000 = 1.70
    # score: 500 decisions all in one bin, the other nine empty (q = 0.5 / 500): 0.9 ln 10 + 9 (0.001 - 0.1) ln 0.01
    assert window.report().reasons == [
        "input `c` drifted: PSI 1.7 >= 0.25 (alert)",
        "score drifted: PSI 6.18 >= 0.25 (alert)",
        "outcome `approve`: rate 0.5 outside [0.9, 1] (warn)",
        "fallback rate 0.5 above 0.01 (alert)",
    ]


def test_an_unknown_outcome_is_a_programming_error() -> None:
    window = Window(make_config(), batch=1)
    with pytest.raises(
        ValueError, match=r"^outcome 'maybe' is not an outcome of policy p \(approve, review, decline\)$"
    ):
        window.observe({"x": 1.0, "c": "a", "e": None}, 0.5, "maybe", False)
    window.observe({"x": 1.0, "c": "a", "e": None}, 0.5, "approve", False)  # the window is still usable
    assert window.report().decisions == 1


def test_a_mapping_without_an_input_counts_it_missing() -> None:
    window = Window(make_config(), batch=2)
    window.observe({"x": 1.0}, 0.5, "approve", False)
    window.observe({"x": 2.0, "c": "a", "e": "y"}, 0.5, "approve", False)
    report = window.report()
    assert report.inputs["c"].missing_rate == 0.5 and report.inputs["e"].missing_rate == 0.5


def test_the_report_is_json() -> None:
    window = Window(make_config(rates={"decline": (0.0, 0.1)}))
    feed(window, 300)
    report = window.report()
    data = msgspec.json.encode(report)
    assert msgspec.json.decode(data, type=MonitorReport) == report
    plain = msgspec.json.decode(data)
    assert plain["status"] == "ok" and plain["outcomes"]["decline"]["range"] == [0.0, 0.1]
    assert set(plain) == {
        "policy",
        "reference",
        "status",
        "reasons",
        "decisions",
        "window",
        "warm_up",
        "inputs",
        "score",
        "outcomes",
        "fallback_rate",
        "fallback_rate_max",
        "on_alert",
    }


def test_decisions_counts_the_queue_too() -> None:
    window = Window(make_config(window=100), batch=10)
    feed(window, 5)
    assert window.decisions == 5
    feed(window, 200)
    assert window.decisions == 100
