"""PSI against values computed by hand, the vectorised form against the scalar one, and the noise floor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.monitor.psi import (
    chi2_quantile,
    filled_bins,
    level,
    noise_floor,
    psi,
    psi_many,
    thresholds,
)


def test_identical_distributions_give_zero() -> None:
    assert psi([0.1] * 10, [200] * 10, 20_000) == 0.0
    assert psi([0.25, 0.25, 0.5, 0.0], [25, 25, 50, 0], 1000) == 0.0  # a bin empty on both sides is skipped


def test_a_hand_computed_shift() -> None:
    # (0.6 - 0.5) ln(0.6 / 0.5) + (0.4 - 0.5) ln(0.4 / 0.5) = 0.1 ln 1.2 + 0.1 ln 1.25
    assert psi([0.5, 0.5], [60, 40], 1000) == pytest.approx(0.1 * math.log(1.2) + 0.1 * math.log(1.25), rel=1e-12)
    assert psi([0.5, 0.5], [60, 40], 1000) == pytest.approx(0.040546, abs=1e-6)


def test_three_bins_by_hand() -> None:
    # q = 0.2, 0.3, 0.5 against p = 0.3, 0.3, 0.4
    expected = (0.2 - 0.3) * math.log(0.2 / 0.3) + 0 + (0.5 - 0.4) * math.log(0.5 / 0.4)
    assert psi([0.3, 0.3, 0.4], [20, 30, 50], 1000) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.062861, abs=1e-6)


def test_an_empty_window_bin_counts_as_half_an_observation() -> None:
    # 100 values all in the first bin: the empty second bin is q = 0.5 / 100
    value = psi([0.5, 0.5], [100, 0], 1000)
    assert value == pytest.approx((1.0 - 0.5) * math.log(2.0) + (0.005 - 0.5) * math.log(0.005 / 0.5), rel=1e-12)
    assert value == pytest.approx(2.626132, abs=1e-6)


def test_a_bin_the_reference_never_filled_counts_as_half_a_reference_row() -> None:
    # a new category: 10% of the window where the reference (1000 rows) had none: p = 0.5 / 1000
    value = psi([1.0, 0.0], [90, 10], 1000)
    assert value == pytest.approx((0.9 - 1.0) * math.log(0.9) + (0.1 - 0.0005) * math.log(0.1 / 0.0005), rel=1e-12)


def test_an_empty_window_has_zero_psi() -> None:
    assert psi([0.5, 0.5], [0, 0], 1000) == 0.0
    assert psi_many([0.5, 0.5], np.array([[0, 0]]), 1000).tolist() == [0.0]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=2, max_size=12).flatmap(
        lambda weights: st.tuples(
            st.just(weights),
            st.lists(
                st.lists(st.integers(0, 300), min_size=len(weights), max_size=len(weights)), min_size=1, max_size=5
            ),
        )
    )
)
def test_the_vectorised_form_agrees_with_the_scalar_one(case: tuple[list[int], list[list[int]]]) -> None:
    weights, windows = case
    total = sum(weights) or 1
    expected = [w / total for w in weights]
    many = psi_many(expected, np.array(windows), 500).tolist()
    assert many == pytest.approx([psi(expected, counts, 500) for counts in windows], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("dof", "upper", "value", "tolerance"),
    [
        (1, 0.05, 3.841459, 1e-5),  # exact for 1 and 2 degrees of freedom
        (2, 0.05, 5.991465, 1e-5),
        (1, 0.001, 10.827566, 1e-5),
        (9, 0.01, 21.665994, 0.05),  # Wilson-Hilferty: within a few hundredths
        (9, 0.000625, 29.5, 0.3),
        (10, 0.05, 18.307038, 0.05),
        (30, 0.01, 50.892181, 0.05),
    ],
)
def test_chi_square_quantiles(dof: int, upper: float, value: float, tolerance: float) -> None:
    assert chi2_quantile(dof, upper) == pytest.approx(value, abs=tolerance)


def test_the_noise_floor_is_the_chi_square_quantile_scaled_by_both_sample_sizes() -> None:
    assert noise_floor(10, 2000, 20_000, 0.01) == pytest.approx(chi2_quantile(9, 0.01) * (1 / 2000 + 1 / 20_000))
    assert noise_floor(1, 2000, 20_000, 0.01) == 0.0  # one filled bin: nothing can vary
    assert noise_floor(10, 0, 20_000, 0.01) == 0.0


def test_the_configured_bands_decide_at_the_default_window() -> None:
    assert thresholds(0.1, 0.25, bins=10, n=2000, reference_rows=20_000, monitored=8) == (0.1, 0.25)


def test_small_windows_raise_the_bands_to_the_noise_floor() -> None:
    warn_at, alert_at = thresholds(0.1, 0.25, bins=10, n=200, reference_rows=20_000, monitored=8)
    assert warn_at == pytest.approx(chi2_quantile(9, 0.005 / 8) * (1 / 200 + 1 / 20_000))
    assert 0.14 < warn_at < 0.16
    assert alert_at == 0.25  # the alert floor (0.0005 / 8) at n = 200 is about 0.19, below the band
    warn_at, alert_at = thresholds(0.1, 0.25, bins=10, n=100, reference_rows=20_000, monitored=8)
    assert warn_at == pytest.approx(0.2947, abs=1e-4) and alert_at == pytest.approx(0.3555, abs=1e-4)


def test_more_values_watched_raise_the_floor() -> None:
    one = thresholds(0.0, 0.0, bins=10, n=500, reference_rows=20_000, monitored=1)
    eight = thresholds(0.0, 0.0, bins=10, n=500, reference_rows=20_000, monitored=8)
    assert one[0] < eight[0] and one[1] < eight[1]


def test_filled_bins_and_levels() -> None:
    assert filled_bins([0.5, 0.0, 0.5, 0.0]) == 2
    assert [level(v, 0.1, 0.25) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "alert",
        "alert",
    ]
