"""Prediction summaries and metrics against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lbmm.predict import Prediction, crps_samples, ecp, evaluate


def test_crps_of_gaussian_draws_matches_closed_form():
    rng = np.random.default_rng(0)
    y = np.array([0.0, 0.5, -1.2])
    draws = rng.normal(0, 1, size=(40_000, 3))
    z = y
    exact = z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi)
    # Monte Carlo error of the sample CRPS with 40,000 draws is about 0.005.
    np.testing.assert_allclose(crps_samples(draws, y), exact, atol=0.02)


def test_ecp_is_calibrated_for_the_true_law():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 2000)
    draws = rng.normal(0, 1, size=(4000, 2000))
    cov = ecp(draws, y, [0.1, 0.5, 0.9])
    # 2000 points: binomial sd <= 0.011
    for level, c in cov.items():
        assert c == pytest.approx(level, abs=0.04)


def test_prediction_summaries():
    rng = np.random.default_rng(2)
    y = rng.normal([1.0, -1.0], 0.5, size=(8000, 2))
    pr = Prediction("x", np.array([8, 8]), np.array([10, 12]), ("18O", "20O"), y, y,
                    np.full((8000, 2, 1), 1.0), np.array([1.0, np.nan]),
                    stats.norm.logpdf(1.0, y, 0.5), ("m",))  # fmt: skip
    assert pr.existence_probability() == pytest.approx(
        [stats.norm.sf(0, 1, 0.5), stats.norm.sf(0, -1, 0.5)], abs=0.015
    )
    lo, hi = pr.interval(0.68)
    assert hi[0] - lo[0] == pytest.approx(2 * 0.5 * stats.norm.ppf(0.84), abs=0.05)
    assert pr.map() == pytest.approx([1.0, -1.0], abs=0.15)
    df = pr.summary()
    assert list(df.columns[-5:]) == ["lo68", "hi68", "lo95", "hi95", "p_exist"]
    ev = evaluate(pr)
    assert ev["n"] == 1
