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


def _be_chain(n_min=20, n_max=40, seed=0):
    """Binding energies of one isotopic chain (Z = 20) and two imperfect models of them."""
    from lbmm.data import Dataset

    rng = np.random.default_rng(seed)
    N = np.arange(n_min, n_max + 1)
    Z = np.full_like(N, 20)
    A = Z + N
    truth = 15.5 * A - 17.2 * A ** (2 / 3) - 0.71 * Z**2 / A ** (1 / 3) - 23.3 * (N - Z) ** 2 / A
    F = np.stack([truth + rng.normal(0, 1.0, N.size), truth + 1.5 + rng.normal(0, 0.5, N.size)],
                 axis=1)  # fmt: skip
    y = truth + rng.normal(0, 0.3, N.size)
    idx = np.arange(N.size)
    return Dataset.from_arrays("chain", "BE", ("m1", "m2"), Z, N, y, F,
                               splits={"train": idx[::2], "test": idx[1::2]})  # fmt: skip


def test_derived_s2n_is_formed_draw_by_draw_from_joint_be_draws():
    from lbmm.data.errors import DataError
    from lbmm.inference import fit
    from lbmm.predict import derive, predict

    ds = _be_chain()
    post = fit(ds, "linear", num_warmup=200, num_samples=200, num_chains=2, seed=0, warn=False)
    s2n = derive(post, "S2n", seed=3)
    assert s2n.labels[0] == "42Ca" and len(s2n.labels) == 19  # N = 22 … 40 have N − 2
    be = predict(post, [(20, 30), (20, 28)], seed=3)
    i = s2n.labels.index("50Ca")
    # the same draws: BE(50Ca) − BE(48Ca), draw by draw (noise keyed by nucleus)
    np.testing.assert_allclose(s2n.y[:, i], be.y[:, 0] - be.y[:, 1], rtol=0, atol=1e-9)
    np.testing.assert_allclose(s2n.mu[:, i], be.mu[:, 0] - be.mu[:, 1], rtol=0, atol=1e-9)
    assert s2n.y_obs[i] == pytest.approx(ds.y[10] - ds.y[8])
    # the shared weights make the two energies' signals move together: the derived signal
    # varies far less than the two as if independent (variance ratio measured 0.04)
    indep = be.mu[:, 0].var() + be.mu[:, 1].var()
    assert s2n.mu[:, i].var() < 0.5 * indep
    only = derive(post, "Sn", ["50Ca"], seed=3)
    assert only.labels == ("50Ca",) and only.y.shape == (400, 1)
    with pytest.raises(DataError, match="needs BE of 39Ca"):
        derive(post, "S2n", [(20, 21)])
    with pytest.raises(DataError, match="not a combination of binding energies"):
        derive(post, "BE/A")
    s2n_ds = type(ds).from_arrays("c", "S2n", ds.models, ds.Z, ds.N, ds.y, ds.F,
                                  splits={"train": np.arange(0, 21, 2)})  # fmt: skip
    s2n_post = fit(s2n_ds, "linear", num_warmup=20, num_samples=20, num_chains=1, warn=False)
    with pytest.raises(DataError, match="observable is 'S2n'"):
        derive(s2n_post, "S2n")
