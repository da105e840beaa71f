"""Draws keyed by nucleus: the host-side log-Gamma sampler behind the local mixers' weights."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import special, stats

from lbmm.mixers.draws import log_gamma_per_nucleus

KEY = jax.random.PRNGKey(7)


def _x(n: int) -> np.ndarray:
    return np.stack([np.full(n, 50.0), 60.0 + 2 * np.arange(n)], 1)


@pytest.mark.parametrize("alpha", [0.05, 0.7, 3.0, 40.0])
def test_log_gamma_has_the_gamma_law(alpha):
    """exp of the draws against SciPy's Gamma(α) CDF (KS test on 20,000 draws at one seed;
    a correct sampler fails at p < 1e-3 once in a thousand seeds), and their mean against
    E[log G] = ψ(α) within 4 Monte Carlo standard errors (sd of log G = sqrt(ψ'(α)))."""
    S = 20_000
    lg = log_gamma_per_nucleus(KEY, _x(1), 0, np.full((S, 1, 1), alpha))[:, 0, 0]
    assert stats.kstest(np.exp(lg), stats.gamma(alpha).cdf).pvalue > 1e-3
    se = np.sqrt(special.polygamma(1, alpha) / S)
    assert abs(lg.mean() - special.digamma(alpha)) < 4 * se


def test_tiny_alpha_stays_finite_on_the_log_scale():
    """At α = 1e-4 G itself underflows to 0 in most draws; log G stays finite and keeps its
    mean ψ(α) ≈ −1/α (4 Monte Carlo standard errors, sd sqrt(ψ'(α)) ≈ 1/α)."""
    alpha, S = 1e-4, 20_000
    lg = log_gamma_per_nucleus(KEY, _x(1), 0, np.full((S, 1, 1), alpha))[:, 0, 0]
    assert np.isfinite(lg).all()
    assert np.mean(np.exp(lg) == 0.0) > 0.5  # what a draw of G itself would give
    se = np.sqrt(special.polygamma(1, alpha) / S)
    assert abs(lg.mean() - special.digamma(alpha)) < 4 * se


def test_draws_at_a_nucleus_do_not_depend_on_the_others():
    """The same key gives the same draws at a nucleus whichever nuclei come with it; other
    keys, purposes and nuclei give other draws."""
    alpha = np.full((50, 4, 3), 2.0)
    x = _x(4)
    all4 = log_gamma_per_nucleus(KEY, x, 2, alpha)
    one = log_gamma_per_nucleus(KEY, x[2:3], 2, alpha[:, 2:3])
    np.testing.assert_array_equal(all4[:, 2], one[:, 0])
    assert not np.allclose(all4[:, 0], all4[:, 1])
    assert not np.allclose(all4, log_gamma_per_nucleus(KEY, x, 3, alpha))
    assert not np.allclose(all4, log_gamma_per_nucleus(jax.random.PRNGKey(8), x, 2, alpha))
