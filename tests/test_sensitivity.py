"""Prior sensitivity from stored draws (lbmm.inference.sensitivity): the log densities against
SciPy, a wider prior by importance weights against a refit under that prior, power-scaling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lbmm.data import Dataset
from lbmm.inference import fit
from lbmm.inference.sensitivity import log_densities, power_scaling, prior_scaled
from lbmm.study import parse_prior

SETTINGS = {"num_warmup": 500, "num_samples": 1000, "num_chains": 4, "warn": False}


@pytest.fixture(scope="module")
def small():
    """Three models, y = Σ w_k f_k + 0.2 ε; 12 training nuclei: few enough that σ's prior
    moves its posterior."""
    rng = np.random.default_rng(3)
    n = 24
    F = rng.uniform(5, 20, n)[:, None] + rng.normal(0, 1.0, size=(n, 3))
    y = F @ np.array([0.6, 0.3, 0.1]) + rng.normal(0, 0.2, n)
    Z, N = np.arange(n) // 6 * 2 + 8, np.arange(n) % 6 * 2 + 10
    return Dataset.from_arrays("small", "y", ("m1", "m2", "m3"), Z, N, y, F,
                               splits={"train": np.arange(0, n, 2)})  # fmt: skip


@pytest.fixture(scope="module")
def post(small):
    return fit(small, "linear", seed=0, **SETTINGS)


def test_log_densities_match_scipy(small, post):
    """GBMM+L as shipped samples ω = s π (``parameterization="sum_simplex"``): its weights are
    not a sample site, and the Jacobian's factor site is not part of the likelihood; with
    ``"box"`` the U(0, 1) prior of the weights is a site of its own."""
    train = small.split("train")
    for p, sites_expected in ((post, ["sigma"]), (None, ["weights", "sigma"])):
        if p is None:
            p = fit(small, "linear", seed=0, options={"parameterization": "box"},
                    **{**SETTINGS, "num_samples": 200})  # fmt: skip
        log_prior, log_lik, sites = log_densities(p)
        assert sites == sites_expected
        draws = p.idata.posterior
        sigma = draws["sigma"].values
        w = draws["weights"].values
        np.testing.assert_allclose(log_prior["sigma"], stats.gamma.logpdf(sigma, 5.0, scale=0.1),
                                   rtol=1e-10)  # fmt: skip
        if "weights" in sites:
            np.testing.assert_allclose(log_prior["weights"], 0.0, atol=1e-12)  # U(0, 1)³
        mean = np.einsum("nk,cdk->cdn", train.F, w)
        np.testing.assert_allclose(
            log_lik, stats.norm.logpdf(train.y, mean, sigma[..., None]), rtol=1e-10
        )


def test_wider_prior_by_weights_matches_a_refit(small, post):
    """σ ~ Gamma(5, 10) made twice as wide (Gamma(5, 5)): the reweighted posterior mean of σ
    against a refit with that prior. Each mean's Monte Carlo error is sd/√ESS (ESS ≥ 400 by
    the honesty bar and by R-hat/ESS of the refit); the test allows 4 combined errors, and
    checks that the shift itself is larger than that (else it would test nothing)."""
    r = prior_scaled(post, 2.0)
    assert r["honest"] and r["scaled"] == {"sigma": "Gamma(5.0, 5.0)"}
    refit = fit(small, "linear", seed=1, priors={"sigma": parse_prior("Gamma(5.0, 5.0)")},
                **SETTINGS)  # fmt: skip
    s_new = refit.samples("sigma")
    se = np.hypot(r["sd"]["sigma"] / np.sqrt(r["ess"]),
                  s_new.std() / np.sqrt(refit.diagnostics["ess_bulk_min"]))  # fmt: skip
    shift = s_new.mean() - post.samples("sigma").mean()
    assert abs(shift) > 4 * se
    assert r["mean"]["sigma"] == pytest.approx(s_new.mean(), abs=4 * se)


def test_narrower_prior_far_from_the_draws_is_not_honest(post):
    r = prior_scaled(post, 0.05)  # σ ~ Gamma(5, 200): mean 0.025, far below the draws
    assert not r["honest"] and r["khat"] > 0.7


def test_power_scaling_rows_for_every_prior_parameter(post):
    ps = power_scaling(post)
    # GBMM+L's weights are U(0, 1): not a sample site as shipped (``sum_simplex``), and a
    # uniform density is unchanged by power-scaling, so σ is its one scalable prior
    assert list(ps["parameter"]) == ["sigma"]
    assert (ps[["prior", "likelihood"]] >= 0).all().all()
    # the likelihood of 12 nuclei informs σ: its likelihood sensitivity is clearly non-zero
    assert ps.set_index("parameter").loc["sigma", "likelihood"] > 0.05
