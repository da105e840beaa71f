"""NUTS fits: recovery of known global weights, diagnostics, the Posterior NetCDF round trip."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lbmm.data import Dataset
from lbmm.inference import ConvergenceWarning, Posterior, fit
from lbmm.predict import evaluate, predict

TRUE_W = np.array([0.6, 0.3, 0.1])


def synthetic(n=300, sigma=0.2, seed=0) -> Dataset:
    """Three models with distinct errors; y = Σ w_k f_k + σ ε with known w."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(5, 20, n)
    F = truth[:, None] + rng.normal(0, 1.0, size=(n, 3))
    y = F @ TRUE_W + rng.normal(0, sigma, n)
    Z = np.arange(n) // 20 * 2 + 8
    N = np.arange(n) % 20 * 2 + 10
    return Dataset.from_arrays(
        "synthetic", "y", ("m1", "m2", "m3"), Z, N, y, F,
        splits={"train": np.arange(0, n, 2), "test": np.arange(1, n, 2),
                "evidence": np.arange(1, 15, 2)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def ds():
    return synthetic()


@pytest.mark.parametrize("mixer", ["linear", "dirichlet"])
def test_recovers_known_weights(ds, mixer):
    post = fit(ds, mixer, num_warmup=300, num_samples=300, num_chains=2, seed=1, warn=False)
    w = np.array(list(post.weights_mean().values()))
    # 150 training points with sigma 0.2 pin each weight to about ±0.015 (posterior sd);
    # 0.05 is over three posterior sds.
    assert np.abs(w - TRUE_W).max() < 0.05
    assert post.samples("sigma").mean() == pytest.approx(0.2, abs=0.04)
    assert post.diagnostics["rhat_max"] < 1.05
    ev = evaluate(predict(post, "test"))
    assert ev["ecp"][0.9] == pytest.approx(0.9, abs=0.08)  # 150 test points: sd 0.025


def test_posterior_netcdf_round_trip(ds, tmp_path):
    post = fit(ds, "dirichlet", num_warmup=50, num_samples=50, num_chains=2, seed=0, warn=False)
    path = post.save(tmp_path / "post.nc")
    back = Posterior.load(path)
    assert back.mixer == "dirichlet" and back.settings == post.settings
    for v in post.idata.posterior.data_vars:
        np.testing.assert_array_equal(back.idata.posterior[v].values,
                                      post.idata.posterior[v].values)  # fmt: skip
    assert back.idata.posterior["weights"].dims == ("chain", "draw", "model")
    np.testing.assert_array_equal(back.dataset.F, ds.F)
    np.testing.assert_array_equal(back.dataset.y, ds.y)
    assert back.dataset.models == ds.models
    assert {k: v.tolist() for k, v in back.dataset.splits.items()} == {
        k: v.tolist() for k, v in ds.splits.items()
    }
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left behind


def test_same_seed_same_draws(ds):
    a = fit(ds, "linear", num_warmup=30, num_samples=30, num_chains=1, seed=5, warn=False)
    b = fit(ds, "linear", num_warmup=30, num_samples=30, num_chains=1, seed=5, warn=False)
    np.testing.assert_array_equal(a.samples("weights"), b.samples("weights"))


def test_thinning_keeps_every_kth_draw(ds):
    full = fit(ds, "linear", num_warmup=30, num_samples=30, num_chains=1, seed=5, warn=False)
    thin = fit(
        ds, "linear", num_warmup=30, num_samples=30, num_chains=1, seed=5, thinning=3, warn=False
    )
    assert thin.idata.posterior.sizes["draw"] == 10
    np.testing.assert_array_equal(thin.samples("weights"), full.samples("weights")[2::3])
    assert thin.settings["thinning"] == 3


def test_vectorized_chains_sample_each_chain_and_count_every_step(ds):
    """Chains run as one vmapped chunk: each chain keeps its own draws, both find the known
    weights, and the gradient count equals the leapfrog steps of the kept draws."""
    post = fit(ds, "linear", num_warmup=200, num_samples=200, num_chains=2, seed=3,
               chain_method="vectorized", warn=False)  # fmt: skip
    w = post.idata.posterior["weights"].values
    assert w.shape == (2, 200, 3)
    assert not np.array_equal(w[0], w[1])
    # per chain 200 draws; posterior sd about 0.015 per weight (test above): 0.05 is > 3 sd
    assert np.abs(w.mean(axis=1) - TRUE_W).max() < 0.05
    rec = post.diagnostics["sampling"]
    steps = post.idata.sample_stats["n_steps"].values
    assert rec["chain_method"] == "vectorized"
    assert rec["grad_evals_sampling"] == int(steps.sum())
    assert rec["grad_evals_warmup"] > 0


def test_the_last_draws_are_judged_once(ds, monkeypatch):
    """The sampler's last convergence check and the fit's final one see the same draws:
    the diagnostics are computed once."""
    import importlib

    fit_module = importlib.import_module("lbmm.inference.fit")  # the module, not the function
    calls = []
    real = fit_module.diagnostics
    monkeypatch.setattr(fit_module, "diagnostics", lambda *a, **k: calls.append(1) or real(*a, **k))
    post = fit(ds, "linear", num_warmup=30, num_samples=30, num_chains=2, seed=5, warn=False)
    assert len(calls) == 1 and len(post.diagnostics["sampling"]["checks"]) == 1
    assert "rhat_max" in post.diagnostics and "wall_s" in post.diagnostics


def test_init_median_and_unknown_init(ds):
    post = fit(
        ds, "dirichlet", num_warmup=20, num_samples=20, num_chains=1, init="median", warn=False
    )
    assert post.settings["init"] == "median"
    post = fit(ds, "dirichlet", num_warmup=20, num_samples=20, num_chains=2, init="map", warn=False)
    assert len(post.settings["map_init"]["starts"]) == 8
    with pytest.raises(ValueError, match="init: expected one of"):
        fit(ds, "dirichlet", num_warmup=5, num_samples=5, num_chains=1, init="prior")


def test_warns_when_not_converged(ds):
    with pytest.warns(ConvergenceWarning, match="R-hat|ESS"):
        fit(ds, "dirichlet", num_warmup=5, num_samples=10, num_chains=2, seed=0)
    # with a mixer's own advice where one is known
    with pytest.warns(ConvergenceWarning, match="8000 draws per chain"):
        fit(ds, "dirichlet", likelihood="density", num_warmup=5, num_samples=10, num_chains=2)


def test_bma_fit_and_predict(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        post = fit(ds, "bma", num_samples=500, num_chains=2)
    w = post.settings["bma_weights"]
    for m in ("mc", "laplace"):
        assert np.abs(np.array(w[m]) - np.array(w["exact"])).max() < 0.03
    pr = predict(post, "test")
    assert pr.y.shape == (1000, len(ds.split_indices("test")))
    assert np.isfinite(evaluate(pr)["mlpd"])


def test_unknown_mixer(ds):
    with pytest.raises(ValueError, match="unknown mixer 'gpx'"):
        fit(ds, "gpx")


def test_map_init_finds_a_known_mode():
    """y_i ~ N(μ, 1), μ ~ N(0, 10²): the posterior mode is Σy / (n + 1/100), and every chain
    starts there (jitter 0)."""
    import numpyro
    import numpyro.distributions as dist
    from scipy import stats

    from lbmm.inference import map_init

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    y = jnp.asarray(np.random.default_rng(0).normal(3.0, 1.0, 20))
    mode = float(y.sum() / (y.size + 1e-2))
    inits, info = map_init(model, jax.random.PRNGKey(0), (y,), {}, num_chains=3, jitter=0.0)
    np.testing.assert_allclose(inits["mu"], [mode] * 3, atol=1e-5)
    expected = stats.norm(0, 10).logpdf(mode) + stats.norm(mode, 1).logpdf(np.asarray(y)).sum()
    assert info["log_density"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("mixer", ["linear", "glm_dirichlet"])
def test_posteriors_written_under_arviz0_still_load(mixer):
    """``tests/fixtures/arviz0``: posteriors saved by lbmm on ArviZ 0.23 (InferenceData), with
    their small variables' draws as JSON beside them (taken from the arrays in memory before
    saving). They load as DataTree with the same draws, dataset and settings, and predict."""
    import json
    from pathlib import Path

    folder = Path(__file__).parent / "fixtures" / "arviz0"
    ref = json.loads((folder / "draws.json").read_text())
    assert ref["arviz"].startswith("0.")
    post = Posterior.load(folder / f"{mixer}.nc")
    assert post.mixer == mixer and post.dataset.counts()["train"] == 519
    for name, draws in ref[mixer].items():
        np.testing.assert_array_equal(post.samples(name), np.asarray(draws), err_msg=name)
    pred = predict(post, "test", seed=0)
    assert pred.y.shape == (20, 39) and np.isfinite(pred.y).all()


def test_latent_blocks_are_recorded_not_judged_and_summarised_on_demand():
    """The latent sites (HSGP coefficients) are left out of the bars and of the fit's
    summaries (their size is recorded); ``latent_diagnostics`` gives ArviZ's R-hat and ESS
    of them when asked."""
    from types import SimpleNamespace

    import arviz as az
    import xarray as xr

    from lbmm.inference import diagnostics, latent_diagnostics

    rng = np.random.default_rng(0)
    sigma = rng.normal(1.0, 0.1, size=(4, 500))  # four chains of one well-mixed parameter
    coef = rng.normal(size=(4, 500, 6, 2)) + np.arange(4)[:, None, None, None]  # chains apart
    d = diagnostics({"sigma": sigma, "gp_coef": coef}, latent=("gp_coef",))
    assert d["latent"] == {"sites": ["gp_coef"], "coordinates": 12}
    assert set(d["groups"]) == {"params"} and set(d["per_variable"]) == {"sigma"}
    assert d["rhat_max"] < 1.01 and d["converged"]  # the stuck coefficients are not judged
    post = SimpleNamespace(idata=SimpleNamespace(posterior=xr.Dataset({
        "sigma": (("chain", "draw"), sigma),
        "gp_coef": (("chain", "draw", "basis", "model"), coef),
    })))  # fmt: skip
    lat = latent_diagnostics(post)
    ref = az.rhat(xr.Dataset({"gp_coef": (("chain", "draw", "b", "m"), coef)}))["gp_coef"]
    assert lat["rhat_max"] == pytest.approx(float(ref.max()), rel=1e-12)
    assert lat["rhat_max"] > 1.3  # chain means 0, 1, 2, 3 with sd 1: the block did not mix
    assert set(lat["per_variable"]) == {"gp_coef"}


def test_nuts_draw_budget_extends_and_thins():
    """``run_nuts``: while the check says no, every chain draws on by half the first draws,
    up to ``max_samples``; more than ``max_kept`` draws are thinned by two, chains aligned."""
    import numpyro
    import numpyro.distributions as dist

    from lbmm.inference.nuts import next_target, run_nuts

    def model():
        numpyro.sample("mu", dist.Normal(0.0, 1.0))

    seen = []

    def never(samples, stats):
        seen.append(samples["mu"].shape)
        return {"converged": False}

    res = run_nuts(model, (), {}, key=jax.random.PRNGKey(0), num_warmup=50, num_samples=100,
                   num_chains=2, max_samples=300, check=never)  # fmt: skip
    rec = res.record
    assert [c["draws_per_chain"] for c in rec["checks"]] == [100, 150, 200, 250, 300]
    assert rec["extended"] and rec["draws_per_chain"] == 300 and rec["thinning"] == 2
    assert res.samples["mu"].shape == (2, 150) and seen[-1] == (2, 150)
    # with thinning 4 the next target is a multiple of 4 further on, within the budget
    assert next_target(100, 4, 100, 300) == 148 and next_target(280, 4, 100, 300) == 300
