"""Global mixers: log densities against SciPy, a conformance suite, and weight recovery."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer import Predictive
from numpyro.infer.util import log_density
from scipy import stats

from lbmm.data import OptionError
from lbmm.inference import fit
from lbmm.mixers import dirichlet, linear, project_simplex

RNG = np.random.default_rng(0)
F = RNG.normal(10.0, 2.0, size=(12, 3))
Y = F @ np.array([0.2, 0.5, 0.3]) + RNG.normal(0, 0.3, size=12)


def _logp(model, params, **kw):
    lp, _ = log_density(model, (jnp.asarray(F), None, jnp.asarray(Y)), kw, params)
    return float(lp)


def test_linear_mean_log_density_matches_scipy():
    w, s = np.array([0.2, 0.6, 0.4]), 0.37
    expected = (
        stats.uniform.logpdf(w).sum()
        + stats.gamma.logpdf(s, a=5, scale=1 / 10)
        + stats.norm.logpdf(Y, F @ w, s).sum()
    )
    got = _logp(linear, {"weights": jnp.asarray(w), "sigma": s})
    assert got == pytest.approx(expected, rel=1e-10)


def test_linear_density_log_density_matches_scipy():
    w, s = np.array([0.2, 0.6, 0.4]), np.array([0.3, 0.5, 0.8])
    wn = w / w.sum()
    mix = np.log((wn * stats.norm.pdf(Y[:, None], F, s)).sum(axis=1)).sum()
    expected = stats.uniform.logpdf(w).sum() + stats.gamma.logpdf(s, a=5, scale=0.1).sum() + mix
    got = _logp(linear, {"weights": jnp.asarray(w), "sigma": jnp.asarray(s)},
                likelihood_kind="density")  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-10)


def test_dirichlet_centered_log_density_matches_scipy():
    a, w, s = np.array([0.5, 1.5, 3.0]), np.array([0.1, 0.3, 0.6]), 0.4
    expected = (
        stats.halfnorm.logpdf(a, scale=2).sum()
        + stats.dirichlet.logpdf(w, a)
        + stats.gamma.logpdf(s, a=5, scale=0.1)
        + stats.norm.logpdf(Y, F @ w, s).sum()
    )
    got = _logp(dirichlet, {"alpha": jnp.asarray(a), "weights": jnp.asarray(w), "sigma": s},
                parameterization="centered")  # fmt: skip
    assert got == pytest.approx(expected, rel=1e-10)


def test_sum_simplex_prior_draws_are_the_uniform_box():
    """GBMM+L's ``sum_simplex`` samples ω = s π; its prior draws must be ω ~ U(0, 1)^K:
    each marginal uniform (KS p ≥ 0.01 on 20,000 draws) and the weights uncorrelated
    (|r| < 0.03: the sd of r is 0.007)."""

    def m():
        linear(jnp.asarray(F), None, None, parameterization="sum_simplex")

    w = np.asarray(Predictive(m, num_samples=20_000)(jax.random.PRNGKey(5))["weights"])
    for k in range(3):
        assert stats.kstest(w[:, k], "uniform").pvalue >= 0.01
    r = np.corrcoef(w.T)[np.triu_indices(3, 1)]
    assert np.abs(r).max() < 0.03


def test_sum_simplex_density_is_the_box_pushed_forward():
    """log p(s, π) = (K − 1) log s inside s max π ≤ 1 (the Jacobian of ω = s π times the
    unit box density), −∞ outside; the likelihood is that of ω = s π."""
    pi, s = np.array([0.2, 0.5, 0.3]), 1.4
    w = s * pi
    lp = _logp(linear, {"weight_shares": jnp.asarray(pi), "weight_total": s, "sigma": 0.37},
               parameterization="sum_simplex")  # fmt: skip
    expected = (2 * np.log(s) + stats.gamma.logpdf(0.37, a=5, scale=0.1)
                + stats.norm.logpdf(Y, F @ w, 0.37).sum())  # fmt: skip
    assert lp == pytest.approx(expected, rel=1e-10)
    out = _logp(linear, {"weight_shares": jnp.asarray(pi), "weight_total": 2.1, "sigma": 0.37},
                parameterization="sum_simplex")  # fmt: skip
    assert out == -np.inf  # 2.1 × 0.5 > 1: outside the box
    # a weights prior of the user's own is sampled on the box (the reparameterisation is
    # exact for the uniform box only)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(linear, 0)).get_trace(
        jnp.asarray(F),
        None,
        jnp.asarray(Y),
        parameterization="sum_simplex",
        priors={"weights": numpyro.distributions.Beta(2.0, 2.0)},
    )
    assert tr["weights"]["type"] == "sample" and "weight_shares" not in tr
    with pytest.raises(OptionError, match="parameterization"):
        fit(_orth_data(n=20)[0], "linear", options={"parameterization": "simplex"},
            num_warmup=5, num_samples=5, num_chains=1)  # fmt: skip


def test_sum_simplex_and_box_give_the_same_posterior():
    """The same GBMM+L posterior by both parameterisations (one true weight at the box's
    edge, 0): posterior means of every weight and of σ agree within 4 combined Monte Carlo
    errors (sd / √ESS each)."""
    ds, _ = _orth_data()
    posts = {p: fit(ds, "linear", options={"parameterization": p}, num_warmup=500,
                    num_samples=1000, num_chains=2, seed=3, warn=False)
             for p in ("box", "sum_simplex")}  # fmt: skip
    assert {"weight_shares", "weight_total"} <= set(posts["sum_simplex"].idata.posterior)
    for site in ("weights", "sigma"):
        a, b = (posts[p].samples(site).reshape(-1, 1 if site == "sigma" else 4) for p in posts)
        ea, eb = (posts[p].diagnostics["ess_bulk_min"] for p in posts)
        se = np.hypot(a.std(0) / np.sqrt(ea), b.std(0) / np.sqrt(eb))
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se), (site, a.mean(0), b.mean(0))


def test_noncentered_dirichlet_has_the_dirichlet_law():
    # Prior draws of the non-centred weights for fixed alpha vs Dirichlet moments.
    alpha = jnp.array([0.2, 1.0, 3.0])
    from lbmm.mixers.global_ import dirichlet_noncentered

    def m():
        numpyro.deterministic("w", dirichlet_noncentered(alpha))

    w = np.asarray(Predictive(m, num_samples=40_000)(jax.random.PRNGKey(3))["w"])
    a0 = float(alpha.sum())
    mean = np.asarray(alpha) / a0
    var = mean * (1 - mean) / (a0 + 1)
    # 40,000 draws: standard error of the mean <= sqrt(var/4e4) < 0.0025; allow 4 se.
    assert np.allclose(w.mean(0), mean, atol=4 * np.sqrt(var.max() / 4e4))
    assert np.allclose(w.var(0), var, rtol=0.05)
    # P(w_0 < 0.01) under Dir -> Beta(0.2, 4.0)
    p_small = stats.beta.cdf(0.01, 0.2, a0 - 0.2)
    assert (w[:, 0] < 0.01).mean() == pytest.approx(p_small, abs=0.01)


MIXERS = [
    (linear, {"likelihood_kind": "mean"}),
    (linear, {"likelihood_kind": "density"}),
    (dirichlet, {"likelihood_kind": "mean"}),
    (dirichlet, {"likelihood_kind": "density"}),
    (dirichlet, {"likelihood_kind": "mean", "parameterization": "centered"}),
]


@pytest.mark.parametrize(("model", "kw"), MIXERS)
def test_conformance(model, kw):
    Fj = jnp.asarray(F)
    prior = Predictive(model, num_samples=50)(jax.random.PRNGKey(0), Fj, None, None, **kw)
    assert prior["y"].shape == (50, F.shape[0])
    assert prior["weights"].shape == (50, F.shape[1])
    w = np.asarray(prior["weights"])
    if model is linear:  # ω_k ~ U(0, 1), independent: not on the simplex
        assert ((w > 0) & (w < 1)).all() and np.ptp(w.sum(-1)) > 0.1
    if kw["likelihood_kind"] == "mean":
        # y about the mixed mean with sd σ: standardised residuals of 600 prior draws are
        # N(0, 1) (KS test at the 0.1 % level: a wrong mean or scale fails it)
        z = (np.asarray(prior["y"]) - w @ F.T) / np.asarray(prior["sigma"])[:, None]
        assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    # finite log density at prior draws; jit equals eager
    latent = {k: v[0] for k, v in prior.items() if k not in ("y",)}
    if kw.get("parameterization", "noncentered") == "noncentered" and model is dirichlet:
        latent.pop("weights")

    def lp(params):
        return log_density(model, (Fj, None, jnp.asarray(Y)), kw, params)[0]

    eager = float(lp(latent))
    assert np.isfinite(eager)
    assert float(jax.jit(lp)(latent)) == pytest.approx(eager, rel=1e-12)
    # posterior predictive from draws: one y per draw, at new inputs of another size
    draws = {k: v for k, v in prior.items() if k != "y"}
    ypp = Predictive(model, posterior_samples=draws)(
        jax.random.PRNGKey(1), Fj[:4], None, None, **kw
    )
    assert ypp["y"].shape == (50, 4)


@pytest.mark.parametrize("model", [linear, dirichlet])
def test_unknown_likelihood(model):
    params = {"weights": jnp.ones(3) * 0.3, "alpha": jnp.ones(3), "sigma": 0.3}
    with pytest.raises(ValueError, match="unknown likelihood 'nope'"):
        log_density(model, (jnp.asarray(F), None, jnp.asarray(Y)), {"likelihood_kind": "nope"},
                    params)  # fmt: skip


def test_project_simplex_is_the_papers_eq4():
    """Eq. 4: negative weights are cut to zero, the rest rescaled to sum to one."""
    w = jnp.array([[0.2, -0.1, 0.6], [1.5, 0.5, 0.0]])
    np.testing.assert_allclose(project_simplex(w), [[0.25, 0.0, 0.75], [0.75, 0.25, 0.0]])


# ---------------------------------------------------------------------- orthogonalised models


def _orth_data(n=200, seed=0, duplicate=False):
    from lbmm.data import Dataset

    rng = np.random.default_rng(seed)
    truth = rng.uniform(5, 20, n)
    F = truth[:, None] + rng.normal(0, 1.0, size=(n, 4))
    if duplicate:
        F[:, 3] = F[:, 2]
    w = np.array([0.5, 0.3, 0.2, 0.0])
    y = F @ w + rng.normal(0, 0.1, n)
    Z, N = np.arange(n) // 20 * 2 + 8, np.arange(n) % 20 * 2 + 10
    ds = Dataset.from_arrays("o", "y", ("a", "b", "c", "d"), Z, N, y, F,
                             splits={"train": np.arange(n)})  # fmt: skip
    return ds, w


def test_orthogonal_basis_is_orthonormal_and_orthogonal_to_one():
    from lbmm.mixers import get_mixer

    ds, _ = _orth_data()
    opts = get_mixer("orthogonal").resolve_options(ds.split("train"), {"components": 3})
    V = np.asarray(opts["basis"])
    np.testing.assert_allclose(V.T @ V, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(V.sum(axis=0), 0.0, atol=1e-12)  # weights 1/K + Vγ sum to one
    # by the share of variance: the fewest leading directions explaining it
    s = np.linalg.svd(ds.F - ds.F.mean(axis=1, keepdims=True), compute_uv=False)
    share = np.cumsum(s**2) / np.sum(s**2)
    auto = get_mixer("orthogonal").resolve_options(ds.split("train"), {"explained": 0.8})
    assert auto["components"] == int(np.argmax(share >= 0.8) + 1)


def test_orthogonal_recovers_simplex_weights():
    """All K − 1 directions: the weights are the least-squares ones with Σω = 1; 200 nuclei
    with σ = 0.1 pin each to about ±0.01, so 0.05 is five posterior sds."""
    ds, w = _orth_data()
    post = fit(ds, "orthogonal", options={"components": 3}, num_warmup=300, num_samples=300,
               num_chains=2, seed=0, warn=False)  # fmt: skip
    draws = post.samples("weights")
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0, atol=1e-12)
    assert np.abs(draws.reshape(-1, 4).mean(axis=0) - w).max() < 0.05


def test_orthogonal_refuses_what_it_cannot_do():
    from lbmm.mixers import get_mixer

    ds, _ = _orth_data(duplicate=True)  # two identical models: the rank is 2, not 3
    with pytest.raises(OptionError, match="from 1 to 2"):
        get_mixer("orthogonal").resolve_options(ds.split("train"), {"components": 3})
    with pytest.raises(OptionError, match="likelihood 'mean' only"):
        fit(ds, "orthogonal", likelihood="density", num_warmup=10, num_samples=10)
