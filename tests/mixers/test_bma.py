"""BMA evidences: closed form against quadrature, Monte Carlo and Laplace."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import integrate, stats

from lbmm.mixers.bma import BMAPrior, bma, bma_evidence

D = np.array([0.31, -0.12, 0.45, 0.08, 0.27])  # residuals y - f of a small problem
PRIOR = BMAPrior(a=2.0, b=0.5, mu=0.0)  # a prior with light tails, for quadrature


def _quad_evidence(d, prior, discrepancy):
    def lik(lam, delta):
        return np.prod(stats.norm.pdf(d, delta, 1 / np.sqrt(lam)))

    def prior_lam(lam):
        return stats.gamma.pdf(lam, prior.a, scale=1 / prior.b)

    if not discrepancy:
        val, _ = integrate.quad(lambda lam: lik(lam, 0.0) * prior_lam(lam), 0, np.inf, limit=200)
        return np.log(val)
    val, _ = integrate.dblquad(
        lambda delta, lam: lik(lam, delta) * stats.norm.pdf(delta, prior.mu, 1 / np.sqrt(lam))
        * prior_lam(lam),
        0, 200, -5, 5, epsabs=1e-14,
    )  # fmt: skip
    return np.log(val)


@pytest.mark.parametrize("discrepancy", [True, False])
def test_exact_matches_quadrature(discrepancy):
    exact = bma_evidence(D, prior=PRIOR, discrepancy=discrepancy)
    assert exact == pytest.approx(_quad_evidence(D, PRIOR, discrepancy), abs=1e-6)


@pytest.mark.parametrize("discrepancy", [True, False])
def test_exact_matches_monte_carlo(discrepancy):
    # 400,000 prior draws; the delta-method standard error of log Z is below 0.01 here,
    # so 0.03 is three standard errors.
    mc = bma_evidence(D, prior=PRIOR, discrepancy=discrepancy, method="mc",
                      key=jax.random.PRNGKey(1))  # fmt: skip
    assert mc == pytest.approx(bma_evidence(D, prior=PRIOR, discrepancy=discrepancy), abs=0.03)


def test_laplace_close_to_exact():
    lap = bma_evidence(D, prior=PRIOR, method="laplace")
    assert lap == pytest.approx(bma_evidence(D, prior=PRIOR), abs=0.1)


def test_weights_agree_across_methods():
    rng = np.random.default_rng(2)
    truth = rng.normal(12, 3, size=7)
    F = truth[:, None] + rng.normal(0, [0.2, 0.5, 1.0], size=(7, 3)) + [0.0, 0.3, -0.5]
    res = bma(F, truth, ("a", "b", "c"), key=jax.random.PRNGKey(0))
    for m in ("mc", "laplace"):
        assert np.abs(res.weights[m] - res.weights["exact"]).max() < 0.03
    assert res.weights["exact"].sum() == pytest.approx(1.0)
    assert np.argmax(res.weights["exact"]) == 0


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown evidence method"):
        bma_evidence(D, method="nested")
