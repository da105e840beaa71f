"""Local mixers: shapes, log densities, the collapsed moments, the GP pieces, recovery."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Predictive
from numpyro.infer.util import initialize_model, log_density

from lbmm.data import Dataset
from lbmm.inference import fit
from lbmm.mixers import get_mixer
from lbmm.mixers.kernels import se_kernel
from lbmm.mixers.local import _hsgp_sqrt_spd, hsgp_basis
from lbmm.mixers.predictive import posterior_predictive
from lbmm.predict import evaluate, predict


def _grid(nz=8, nn=10, step=2, z0=10, n0=12):
    Z, N = np.meshgrid(z0 + step * np.arange(nz), n0 + step * np.arange(nn), indexing="ij")
    return Z.ravel().astype(float), N.ravel().astype(float)


def _toy(seed=0, p=3, sigma=0.1, nz=8, nn=10):
    """A 2-D problem drawn from the GLD model itself: log α linear in standardised (Z, N),
    ω_i ~ Dirichlet(α(x_i)), y = ω·f + σε. Returns the true mean weights ā(x) = α/α₀."""
    rng = np.random.default_rng(seed)
    Z, N = _grid(nz, nn)
    z = (Z - Z.mean()) / Z.std()
    nn_ = (N - N.mean()) / N.std()
    log_alpha = np.stack([1.0 + 1.5 * z, 1.0 - 1.5 * z + 0.5 * nn_, 0.5 + 1.2 * nn_], 1)[:, :p]
    alpha = np.exp(log_alpha)
    omega = np.array([rng.dirichlet(a) for a in alpha])
    truth = 10 + 0.1 * (N - Z)
    F = truth[:, None] + rng.normal(0, 1.0, (Z.size, p))  # models wrong in different places
    y = (omega * F).sum(1) + rng.normal(0, sigma, Z.size)
    return Z, N, F, y, alpha / alpha.sum(1, keepdims=True)


def _dataset(Z, N, F, y, train_frac=0.7, seed=1):
    rng = np.random.default_rng(seed)
    idx = rng.permutation(Z.size)
    ntr = int(train_frac * Z.size)
    return Dataset.from_arrays(
        "toy",
        "S2n",
        tuple(f"m{k}" for k in range(F.shape[1])),
        Z.astype(int),
        N.astype(int),
        y,
        F,
        splits={"train": np.sort(idx[:ntr]), "test": np.sort(idx[ntr:])},
    )


CASES = [
    ("glm_dirichlet", {"omega": "collapsed"}),
    ("glm_dirichlet", {"omega": "latent"}),
    ("gp_dirichlet", {"omega": "collapsed", "gp": "hsgp", "hsgp_m": (6, 7)}),
    ("gp_dirichlet", {"omega": "latent", "gp": "hsgp", "hsgp_m": (6, 7)}),
    ("gp_dirichlet", {"omega": "collapsed", "gp": "exact"}),
    ("gp_dirichlet", {"omega": "collapsed", "gp": "exact", "rho": (3.0, 4.0)}),
    ("gp_dirichlet", {"omega": "collapsed", "gp": "hsgp", "hsgp_m": (6, 7), "rho": (3.0, 4.0)}),
]


# Every case with the mean likelihood; the density likelihood (the same weights, another
# observation site) once per way of computing log α: GLD, HSGP and the exact GP.
CONFORMANCE = [(*c, "mean") for c in CASES] + [(*CASES[i], "density") for i in (0, 2, 4)]


@pytest.mark.parametrize(("mixer", "options", "likelihood"), CONFORMANCE)
def test_conformance(mixer, options, likelihood):
    Z, N, F, y, _ = _toy()
    ds = _dataset(Z, N, F, y)
    spec = get_mixer(mixer)
    tr = ds.split("train")
    opts = spec.resolve_options(tr, options)
    extra = spec.precompute(tr.x, opts) if spec.precompute else {}
    args = (jnp.asarray(tr.F), jnp.asarray(tr.x), jnp.asarray(tr.y))
    kw = {"likelihood_kind": likelihood, **opts}
    # prior predictive: shapes
    prior = Predictive(spec.model, num_samples=5)(jax.random.PRNGKey(0), *args[:2], None, **kw)
    assert prior["y"].shape == (5, len(tr))
    # finite log density at an initial point; jit equals eager
    info = initialize_model(
        jax.random.PRNGKey(1), spec.model, model_args=args, model_kwargs={**kw, **extra}
    )
    z = info.param_info.z
    eager = info.potential_fn(z)
    jitted = jax.jit(info.potential_fn)(z)
    assert np.isfinite(eager)
    np.testing.assert_allclose(jitted, eager, rtol=1e-10)
    # the precomputed basis changes nothing
    if extra:
        kw_no = {"likelihood_kind": likelihood, **opts}
        params = {k: v[0] for k, v in prior.items() if k != "y"}
        ld1, _ = log_density(spec.model, args, {**kw_no, **extra}, params)
        ld2, _ = log_density(spec.model, args, kw_no, params)
        np.testing.assert_allclose(ld1, ld2, rtol=1e-10)
    # predictive at new nuclei: weights on the simplex, shapes
    samples = {k: v for k, v in prior.items() if k not in ("y",)}
    te = ds.split("test")
    out = posterior_predictive(
        mixer,
        samples,
        te.F,
        te.x,
        te.y,
        opts,
        likelihood,
        jax.random.PRNGKey(2),
        train=(tr.F, tr.x, tr.y),
    )
    assert out["y"].shape == (5, len(te))
    assert out["weights"].shape == (5, len(te), 3)
    assert (out["weights"] >= 0).all()
    assert np.isfinite(out["log_density"]).all()


def test_collapsed_moments_match_dirichlet_mc():
    """E and Var of y = ω·f + σε with ω ~ Dir(α): the collapsed formulas against 400k draws
    (MC standard error of the variance ≈ var·√(2/n) ≈ 0.2 %; tolerance 1.5 %)."""
    rng = np.random.default_rng(3)
    alpha = np.array([0.7, 2.0, 0.3, 1.1])
    f = np.array([1.0, -0.5, 2.5, 0.2])
    sigma = 0.3
    w = rng.dirichlet(alpha, 400_000)
    y = w @ f + sigma * rng.normal(size=w.shape[0])
    abar = alpha / alpha.sum()
    mu = abar @ f
    var = sigma**2 + abar @ (f - mu) ** 2 / (alpha.sum() + 1)
    assert abs(y.mean() - mu) < 5 * y.std() / np.sqrt(y.size)
    assert abs(y.var() / var - 1) < 0.015


def test_hsgp_approximates_kernel_and_vanishes_outside_box():
    Z, N = _grid(20, 25)
    x = np.stack([Z, N], 1)
    tr = _dataset(Z, N, np.zeros((Z.size, 1)), np.zeros(Z.size), train_frac=1.0)
    opts = get_mixer("gp_dirichlet").resolve_options(tr, {"hsgp_m": (30, 30), "hsgp_c": 1.5})
    phi = hsgp_basis(jnp.asarray(x), opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])
    rho = jnp.array([6.0, 8.0])
    s2 = _hsgp_sqrt_spd(rho, opts["hsgp_ell"], opts["hsgp_m"]) ** 2
    K_hs = (phi * s2) @ phi.T
    K = se_kernel(jnp.asarray(x), jnp.asarray(x), rho)
    assert float(jnp.max(jnp.abs(K_hs - K))) < 0.03  # measured 0.018 (at the box corners)
    far = hsgp_basis(jnp.array([[500.0, 500.0]]), opts["hsgp_center"], opts["hsgp_ell"], [30, 30])
    assert float(jnp.max(jnp.abs(far))) == 0.0


def test_exact_gp_conditional_reproduces_training_values():
    Z, N, F, y, _ = _toy()
    ds = _dataset(Z, N, F, y)
    tr = ds.split("train")
    spec = get_mixer("gp_dirichlet")
    opts = spec.resolve_options(tr, {"gp": "exact"})
    prior = Predictive(spec.model, num_samples=3)(
        jax.random.PRNGKey(0), jnp.asarray(tr.F), jnp.asarray(tr.x), None, **opts
    )
    from lbmm.mixers.local import log_alpha_at

    la = log_alpha_at("gp_dirichlet", prior, jnp.asarray(tr.x), opts, jax.random.PRNGKey(1))
    # the training values themselves: γ + √η L z
    u = jnp.asarray(tr.x)
    rho = jnp.stack([prior["rho_z"], prior["rho_n"]], -1)
    for s in range(3):
        L = jnp.linalg.cholesky(se_kernel(u, u, rho[s]) + 1e-6 * jnp.eye(len(tr)))
        direct = prior["gamma_inf"][s] + jnp.sqrt(prior["eta"][s]) * (L @ prior["gp_z"][s])
        # the conditional keeps the jitter variance (1e-6 · η): noise of order 1e-3 · √η
        np.testing.assert_allclose(la[s], direct, atol=2e-2)


@pytest.mark.parametrize("gp", ["exact", "hsgp"])
def test_fixed_rho_equals_conditioning_on_it(gp):
    """Fixing the length scales (option ``rho``, precomputed Cholesky or basis) gives the log
    density of the free model conditioned on them, less their prior terms."""
    from numpyro import handlers

    Z, N, F, y, _ = _toy()
    tr = _dataset(Z, N, F, y).split("train")
    spec = get_mixer("gp_dirichlet")
    rho = (3.0, 4.5)
    free = spec.resolve_options(tr, {"gp": gp, "hsgp_m": (6, 7)})
    fixed = spec.resolve_options(tr, {"gp": gp, "hsgp_m": (6, 7), "rho": rho})
    args = (jnp.asarray(tr.F), jnp.asarray(tr.x), jnp.asarray(tr.y))
    params = Predictive(spec.model, num_samples=1)(jax.random.PRNGKey(4), *args[:2], None, **free)
    params = {k: v[0] for k, v in params.items() if k not in ("y", "rho_z", "rho_n")}
    extra = spec.precompute(tr.x, fixed)
    assert set(extra) == {"chol" if gp == "exact" else "basis"}
    ld_fixed, _ = log_density(spec.model, args, {**fixed, **extra}, params)
    cond = handlers.condition(spec.model, {"rho_z": rho[0], "rho_n": rho[1]})
    ld_free, tr_free = log_density(cond, args, free, params)
    prior_rho = sum(
        float(tr_free[k]["fn"].log_prob(v)) for k, v in zip(("rho_z", "rho_n"), rho, strict=True)
    )
    np.testing.assert_allclose(float(ld_fixed), float(ld_free) - prior_rho, rtol=1e-9)
    # prediction: the fixed-ρ path (one factorisation) equals the per-draw path at that ρ
    from lbmm.mixers.local import log_alpha_at

    te = _dataset(Z, N, F, y).split("test")
    draws = {k: v[None] for k, v in params.items()}
    key = jax.random.PRNGKey(5)
    la_fixed = log_alpha_at("gp_dirichlet", draws, jnp.asarray(te.x), fixed, key)
    draws_free = {**draws, "rho_z": jnp.array([rho[0]]), "rho_n": jnp.array([rho[1]])}
    la_free = log_alpha_at("gp_dirichlet", draws_free, jnp.asarray(te.x), free, key)
    np.testing.assert_allclose(la_fixed, la_free, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="option rho"):
        spec.resolve_options(tr, {"gp": gp, "rho": (3.0, -1.0)})


def test_unknown_option_is_refused():
    Z, N, F, y, _ = _toy()
    ds = _dataset(Z, N, F, y)
    with pytest.raises(ValueError, match="unknown option"):
        fit(ds, "glm_dirichlet", options={"nope": 1}, num_warmup=5, num_samples=5, num_chains=1)


def test_gld_recovers_smooth_weights():
    """Synthetic 2-D recovery: 3 models, 168 nuclei on a grid, data drawn from the model.

    Posterior-mean weights at every nucleus within 0.10 mean absolute error of the true
    ā(x), and the test ECP within ±0.10 of nominal at 50 % and 90 % (51 test nuclei:
    binomial sd 0.07 and 0.04, so the bars are 1.4 and 2.4 sd; the seeds are fixed).
    """
    Z, N, F, y, w = _toy(seed=0, sigma=0.1, nz=12, nn=14)
    ds = _dataset(Z, N, F, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = fit(ds, "glm_dirichlet", num_warmup=500, num_samples=500, max_samples=2000,
                   num_chains=2, seed=0)  # fmt: skip
    pred = predict(post, None, seed=1)
    mae = np.mean(np.abs(pred.weights_mean() - w))
    assert mae < 0.10, mae
    ev = evaluate(predict(post, "test", seed=2))
    assert abs(ev["ecp"][0.5] - 0.5) <= 0.10 + 1e-9
    assert abs(ev["ecp"][0.9] - 0.9) <= 0.10 + 1e-9
    # the bars (R-hat <= 1.01, bulk ESS >= 400) are judged on the parameters, the predictive
    # mean at the test nuclei and the log density; the chains sample on (max_samples) until
    # they hold, and every check is recorded
    d = post.diagnostics
    assert set(d["groups"]) == {"params", "test_mean", "log_density"}
    assert d["converged"], d["problems"]
    for g in ("params", "test_mean", "log_density"):
        assert d["groups"][g]["rhat_max"] <= 1.01, (g, d["groups"][g])
        assert d["groups"][g]["ess_bulk_min"] >= 400, (g, d["groups"][g])
    checks = d["sampling"]["checks"]
    assert checks[-1]["converged"] and checks[-1]["draws_per_chain"] <= 2000
    assert all(not c["converged"] for c in checks[:-1])


@pytest.mark.parametrize("mixer", ["glm_dirichlet", "gp_dirichlet"])
def test_prediction_uses_the_fitted_model(mixer):
    """At the training nuclei, prediction's mixed mean ā·f and its Dirichlet variance are those
    the fitted model's likelihood uses (read from the model's own ``y`` site): the same
    weights, no noise added at prediction only. Outside the HSGP box the basis vanishes and
    the weights revert to softmax(γ∞), as in the model."""
    from numpyro import handlers

    from lbmm.mixers.predictive import fitted_moments, predictive_mean

    Z, N, F, y, _ = _toy()
    tr = _dataset(Z, N, F, y).split("train")
    spec = get_mixer(mixer)
    opts = spec.resolve_options(tr, {"hsgp_m": (6, 7)} if mixer == "gp_dirichlet" else {})
    args = (jnp.asarray(tr.F), jnp.asarray(tr.x), jnp.asarray(tr.y))
    draws = Predictive(spec.model, num_samples=3)(jax.random.PRNGKey(6), *args[:2], None, **opts)
    draws = {k: v for k, v in draws.items() if k != "y"}
    mean = predictive_mean(mixer, draws, tr.F, tr.x, opts, "mean")
    mu, var = fitted_moments(mixer, draws, tr.F, tr.x, opts)
    for s in range(3):
        one = {k: v[s] for k, v in draws.items()}
        site = handlers.trace(handlers.substitute(spec.model, one)).get_trace(*args, **opts)["y"]
        np.testing.assert_allclose(site["fn"].loc, mean[s], rtol=1e-10)
        np.testing.assert_allclose(site["fn"].loc, mu[s], rtol=1e-10)
        sd = np.sqrt(one["sigma"] ** 2 + var[s])
        np.testing.assert_allclose(site["fn"].scale, sd, rtol=1e-10)
    if mixer == "gp_dirichlet":
        far = np.array([[500.0, 700.0]])
        w = predictive_mean(mixer, draws, np.eye(3)[:1], far, opts, "mean")
        np.testing.assert_allclose(w[:, 0], jax.nn.softmax(draws["gamma_inf"], -1)[:, 0])


def test_hsgp_deficit_is_zero_for_long_scales_and_one_outside_the_box():
    from lbmm.mixers.local import hsgp_deficit

    Z, N = _grid(20, 25)
    tr = _dataset(Z, N, np.zeros((Z.size, 1)), np.zeros(Z.size), train_frac=1.0)
    opts = get_mixer("gp_dirichlet").resolve_options(tr, {"hsgp_m": (20, 30), "hsgp_c": 1.3})
    x = np.array([[Z.mean(), N.mean()], [900.0, 900.0]])
    d = hsgp_deficit(np.array([[12.0, 15.0], [0.5, 0.5]]), x, opts)
    assert abs(d[0, 0]) < 1e-3  # long length scales: the basis holds the whole kernel
    assert d[1, 0] > 0.5  # length scales far below the basis' resolution: most is missed
    np.testing.assert_allclose(d[:, 1], 1.0)  # outside the box nothing is represented


def test_unknown_omega_gets_one_message_from_the_model_and_from_prepare():
    from numpyro import handlers

    from lbmm.data.errors import OptionError
    from lbmm.mixers.local import glm_dirichlet

    Z, N, F, y, _ = _toy()
    tr = _dataset(Z, N, F, y).split("train")
    msg = r"option omega: expected one of \('collapsed', 'latent'\), got 'bad'"
    with pytest.raises(OptionError, match=msg):
        get_mixer("glm_dirichlet").resolve_options(tr, {"omega": "bad"})
    with pytest.raises(OptionError, match=msg):
        handlers.trace(handlers.seed(glm_dirichlet, 0)).get_trace(
            jnp.asarray(tr.F), jnp.asarray(tr.x), omega="bad"
        )
