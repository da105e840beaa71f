"""Adaptive tempered SMC: evidence of a conjugate model, mode masses of a bimodal target, the
exchange of two identical models, and its plumbing through ``fit`` and studies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from scipy import stats

from lbmm.data import Dataset
from lbmm.data.errors import OptionError
from lbmm.inference import fit
from lbmm.inference.smc import check_smc_options, run_smc
from lbmm.study import StudyError, load_study, study_from_dict

FAST = {"mcmc_steps": 5, "integration_steps": 8}


def test_evidence_and_posterior_of_a_conjugate_model():
    # y_i ~ N(mu, s²), mu ~ N(0, t²): p(y) is a multivariate normal, the posterior normal
    rng = np.random.default_rng(0)
    s, t, y = 0.5, 2.0, rng.normal(1.3, 0.5, 20)

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, t))
        numpyro.sample("y", dist.Normal(mu, s), obs=y)

    n = len(y)
    exact = stats.multivariate_normal(np.zeros(n), t**2 + s**2 * np.eye(n)).logpdf(y)
    var = 1 / (1 / t**2 + n / s**2)
    res = run_smc(model, (jnp.asarray(y),), {}, key=jax.random.PRNGKey(0), num_particles=500,
                  num_populations=4, options=FAST)  # fmt: skip
    ev = np.array([p["log_evidence"] for p in res.record["populations"]])
    # The spread of the four estimates (about 0.07 with 1000 particles) sizes the Monte
    # Carlo error of their combination; 0.15 is over four standard errors of it at 500.
    assert res.record["log_evidence"] == pytest.approx(exact, abs=0.15)
    assert ev.std() < 0.2
    mu = res.samples["mu"]
    assert mu.shape == (4, 500)
    # 2000 particles: the posterior mean to ±sd/√2000 ≈ 0.0025 (copies count less: 0.01)
    assert mu.mean() == pytest.approx(var * y.sum() / s**2, abs=0.01)
    assert mu.std() == pytest.approx(np.sqrt(var), rel=0.08)
    assert res.stats["lp"].shape == (4, 500)
    assert all(p["lambdas"][-1] == 1.0 for p in res.record["populations"])


def test_mode_masses_of_a_bimodal_target():
    # x ~ N(0, 5²), likelihood 0.3 N(x; −3, 0.5²) + 0.7 N(x; 3, 0.5²): the modes' masses are
    # w_j N(m_j; 0, 5² + 0.5²) normalised, and their sum is the evidence
    w, m = np.array([0.3, 0.7]), np.array([-3.0, 3.0])

    def model():
        x = numpyro.sample("x", dist.Normal(0.0, 5.0))
        mix = dist.MixtureSameFamily(dist.Categorical(probs=jnp.asarray(w)),
                                     dist.Normal(jnp.asarray(m), 0.5))  # fmt: skip
        numpyro.factor("lik", mix.log_prob(x))

    mass = w * stats.norm(0, np.hypot(5, 0.5)).pdf(m)
    res = run_smc(model, (), {}, key=jax.random.PRNGKey(1), num_particles=1000,
                  num_populations=4, options=FAST)  # fmt: skip
    share = (res.samples["x"] < 0).mean(axis=1)
    # Per population the left mode's share spreads by about 0.05 (measured: 0.27–0.38 over
    # four populations); the mean of four to about 0.025, so 0.08 is over three of those.
    assert share.mean() == pytest.approx(mass[0] / mass.sum(), abs=0.08)
    assert (share > 0.1).all() and (share < 0.6).all()  # every population holds both modes
    assert res.record["log_evidence"] == pytest.approx(np.log(mass.sum()), abs=0.2)


def identical_models(n=100, seed=0) -> Dataset:
    """Two identical models; the residuals half narrow (0.1), half broad (1.0): the density
    mixture's posterior has two modes that exchange the models' roles, of equal mass."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(5, 20, n)
    y = f + np.where(rng.random(n) < 0.5, 1.0, 0.1) * rng.normal(size=n)
    Z, N = np.arange(n) // 20 * 2 + 8, np.arange(n) % 20 * 2 + 10
    return Dataset.from_arrays(
        "identical",
        "y",
        ("a", "b"),
        Z,
        N,
        y,
        np.stack([f, f], 1),
        splits={"train": np.arange(n), "test": np.arange(0, n, 10)},
    )


def test_identical_models_share_the_exchange_equally():
    ds = identical_models()
    post = fit(ds, "dirichlet", likelihood="density", method="smc", num_samples=400,
               num_chains=2, seed=0, smc=FAST, warn=False)  # fmt: skip
    sig = post.idata.posterior["sigma"].values  # (population, particle, model)
    share = (sig[..., 0] < sig[..., 1]).mean(axis=1)
    # Exact share 1/2 by symmetry. Measured spread per population 0.03 with 1000 particles,
    # so about 0.05 with 400 and 0.035 for the mean of two: 0.12 is over three of those.
    assert share.mean() == pytest.approx(0.5, abs=0.12)
    assert (share > 0.25).all() and (share < 0.75).all()
    # the broad and the narrow component are found, whichever model plays which
    assert np.median(sig.min(-1)) == pytest.approx(0.1, rel=0.35)
    assert np.median(sig.max(-1)) == pytest.approx(1.0, rel=0.35)
    d = post.diagnostics
    assert np.isfinite(d["log_evidence"]) and d["sampler"].startswith("SMC")
    assert post.settings["method"] == "smc" and "num_warmup" not in post.settings
    # NUTS with every chain started at the same optimum stays in one mode: its share is 0
    # or 1 in every chain, the failure the tempering removes
    nuts = fit(ds, "dirichlet", likelihood="density", num_warmup=200, num_samples=200,
               num_chains=2, seed=0, init="map", warn=False)  # fmt: skip
    sig = nuts.idata.posterior["sigma"].values
    assert np.isin((sig[..., 0] < sig[..., 1]).mean(axis=1), [0.0, 1.0]).all()


def test_fit_refuses_settings_smc_does_not_read():
    ds = identical_models(40)
    with pytest.raises(OptionError, match="max_samples"):
        fit(ds, "dirichlet", method="smc", num_samples=10, max_samples=20)
    with pytest.raises(OptionError, match="method is 'nuts'"):
        fit(ds, "dirichlet", smc={"mcmc_steps": 3})
    with pytest.raises(OptionError, match="expected one of"):
        fit(ds, "dirichlet", method="gibbs")
    with pytest.raises(OptionError, match="closed form"):
        fit(ds, "bma", method="smc")
    with pytest.raises(OptionError, match="unknown setting 'steps'"):
        check_smc_options({"steps": 3})
    with pytest.raises(OptionError, match="target_ess"):
        check_smc_options({"target_ess": 1.5})


def _study(mixer_sampling, sampling=None):
    raw = {"name": "s", "data": {"recipe": "default"},
           "mixers": [{"key": "d", "mixer": "dirichlet", "likelihood": "density",
                       "sampling": mixer_sampling}]}  # fmt: skip
    if sampling:
        raw["sampling"] = sampling
    return study_from_dict(raw, source="t.toml")


def test_study_method_smc():
    st = _study({"method": "smc", "num_samples": 300, "smc": {"mcmc_steps": 4}},
                sampling={"max_samples": 4000, "num_warmup": 500})  # fmt: skip
    s = st.mixer("d").sampling
    assert (s.method, s.num_samples, s.max_samples, dict(s.smc)) == (
        "smc",
        300,
        None,
        {"mcmc_steps": 4},
    )
    # the overrides of `lbmm run --draws` reach it without NUTS-only keys; TOML round trip
    quick = st.with_overrides(sampling={"num_samples": 50})
    assert quick.mixer("d").sampling.num_samples == 50
    assert quick.mixer("d").sampling.method == "smc"
    back = st.with_overrides(sampling={"method": "nuts"})  # its SMC settings go with it
    assert back.mixer("d").sampling.method == "nuts" and dict(back.mixer("d").sampling.smc) == {}
    again = study_from_dict(__import__("tomllib").loads(st.to_toml()), source="again")
    assert again.mixer("d").sampling == s
    with pytest.raises(StudyError, match=r"mixers\[0\].sampling.num_warmup' is a NUTS setting"):
        _study({"method": "smc", "num_warmup": 10})
    with pytest.raises(StudyError, match="need method = 'smc'"):
        _study({"smc": {"mcmc_steps": 4}})
    with pytest.raises(StudyError, match="unknown setting 'step'"):
        _study({"method": "smc", "smc": {"step": 4}})
    assert "smc" not in {m.sampling.method for m in load_study("default").mixers}
