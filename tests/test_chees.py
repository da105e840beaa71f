"""ChEES-HMC (lbmm.inference.chees): the posterior of a conjugate model, the draw budget and
thinning, known weights through ``fit``, refused settings and the study's ``method``."""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from lbmm.data import Dataset
from lbmm.data.errors import OptionError
from lbmm.inference import fit
from lbmm.inference.chees import check_chees_options, run_chees
from lbmm.study import StudyError, load_study, study_from_dict

S, T = 0.5, 2.0
TRUE_W = np.array([0.6, 0.3, 0.1])


def synthetic(n=300) -> Dataset:
    """Three models; y = Σ w_k f_k + 0.2 ε with known weights w."""
    rng = np.random.default_rng(0)
    F = rng.uniform(5, 20, n)[:, None] + rng.normal(0, 1.0, size=(n, 3))
    y = F @ TRUE_W + rng.normal(0, 0.2, n)
    Z, N = np.arange(n) // 20 * 2 + 8, np.arange(n) % 20 * 2 + 10
    splits = {"train": np.arange(0, n, 2), "test": np.arange(1, n, 2)}
    return Dataset.from_arrays("synthetic", "y", ("m1", "m2", "m3"), Z, N, y, F, splits=splits)


def _model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, T))
    numpyro.sample("log_s", dist.Normal(0.0, 1.0))  # independent of y: a second coordinate
    numpyro.sample("y", dist.Normal(mu, S), obs=y)


def _y():
    return np.random.default_rng(0).normal(1.3, S, 20)


def test_conjugate_posterior_and_gradient_count():
    # mu | y ~ N(m, v) with 1/v = n/S² + 1/T², m = v Σy/S²; log_s keeps its N(0, 1) prior
    y = _y()
    v = 1.0 / (len(y) / S**2 + 1.0 / T**2)
    m = v * y.sum() / S**2
    res = run_chees(_model, (y,), {}, key=jax.random.PRNGKey(0), num_warmup=300,
                    num_samples=500, num_chains=8)  # fmt: skip
    mu = res.samples["mu"]
    assert mu.shape == (8, 500) and res.stats["lp"].shape == (8, 500)
    # 4,000 draws of a Gaussian whose ESS is well above 1,000 (HMC on a near-isotropic
    # target): the MC sd of the mean is below 0.03 sd and of the sd below 0.03 sd, so
    # 0.1 sd is over three of them
    assert mu.mean() == pytest.approx(m, abs=0.1 * np.sqrt(v))
    assert mu.std() == pytest.approx(np.sqrt(v), rel=0.1)
    assert res.samples["log_s"].std() == pytest.approx(1.0, rel=0.1)
    rec = res.record
    assert rec["grad_evals"] == rec["grad_evals_warmup"] + int(res.stats["n_steps"].sum())
    assert rec["grad_evals_warmup"] >= 8 * 300  # at least one leapfrog step per iteration
    assert rec["chain_method"] == "vectorized" and 0 < rec["step_size"] < 10
    # chains start apart and stay their own
    assert not np.array_equal(mu[0], mu[1])
    again = run_chees(_model, (y,), {}, key=jax.random.PRNGKey(0), num_warmup=300,
                      num_samples=500, num_chains=8)  # fmt: skip
    np.testing.assert_array_equal(again.samples["mu"], mu)


def test_draw_budget_extends_and_thins_like_nuts():
    seen = []

    def never(samples, stats):
        seen.append(samples["mu"].shape)
        return {"converged": False}

    res = run_chees(_model, (_y(),), {}, key=jax.random.PRNGKey(1), num_warmup=100,
                    num_samples=100, num_chains=2, max_samples=300, check=never)  # fmt: skip
    rec = res.record
    # checks after 100, 150, 200, 250, 300 draws; more than 200 kept: thinned by two
    assert [c["draws_per_chain"] for c in rec["checks"]] == [100, 150, 200, 250, 300]
    assert rec["extended"] and rec["draws_per_chain"] == 300 and rec["thinning"] == 2
    assert res.samples["mu"].shape == (2, 150) and seen[-1] == (2, 150)
    assert rec["grad_evals_sampling"] >= 2 * 300


def test_fit_with_chees_finds_known_weights():
    ds = synthetic()
    post = fit(ds, "dirichlet", method="chees", num_warmup=300, num_samples=300,
               num_chains=4, seed=1, warn=False)  # fmt: skip
    w = post.idata.posterior["weights"].values
    assert w.shape == (4, 300, 3)
    # 150 training points, σ 0.2: each weight's posterior sd is about 0.015; 0.05 > 3 sd
    assert np.abs(w.mean(axis=(0, 1)) - TRUE_W).max() < 0.05
    d = post.diagnostics
    assert d["sampler"].startswith("ChEES") and d["rhat_max"] < 1.05
    assert post.settings["method"] == "chees" and "target_accept" not in post.settings
    assert post.settings["chees"]["target_accept"] == pytest.approx(0.651)


def test_fit_refuses_settings_chees_does_not_read():
    ds = synthetic(40)
    with pytest.raises(OptionError, match="method is 'nuts'"):
        fit(ds, "dirichlet", chees={"learning_rate": 0.1})
    with pytest.raises(OptionError, match="num_warmup: method 'chees'"):
        fit(ds, "dirichlet", method="chees", num_warmup=0)
    with pytest.raises(OptionError, match="init 'map'"):
        fit(ds, "dirichlet", method="chees", init="map")
    with pytest.raises(OptionError, match="init 'median'"):
        fit(ds, "dirichlet", method="chees", init="median")
    with pytest.raises(OptionError, match="chain_method is a NUTS setting"):
        fit(ds, "dirichlet", method="chees", chain_method="vectorized")
    with pytest.raises(OptionError, match="dense_mass is a NUTS setting"):
        fit(ds, "dirichlet", method="chees", dense_mass=True)
    with pytest.raises(OptionError, match="init_params"):
        fit(ds, "dirichlet", method="chees", init_params={"sigma": np.zeros(4)})
    with pytest.raises(OptionError, match="closed form"):
        fit(ds, "bma", method="chees")
    with pytest.raises(OptionError, match="unknown setting 'rate'"):
        check_chees_options({"rate": 0.1})
    with pytest.raises(OptionError, match=r"chees.target_accept"):
        check_chees_options({"target_accept": 1.2})
    with pytest.raises(OptionError, match=r"chees.max_leapfrog_steps"):
        check_chees_options({"max_leapfrog_steps": 0})


def _study(mixer_sampling, sampling=None):
    raw = {"name": "s", "data": {"recipe": "default"},
           "mixers": [{"key": "d", "mixer": "dirichlet", "sampling": mixer_sampling}]}  # fmt: skip
    if sampling:
        raw["sampling"] = sampling
    return study_from_dict(raw, source="t.toml")


def test_study_method_chees():
    st = _study({"method": "chees", "num_chains": 8, "chees": {"learning_rate": 0.05}},
                sampling={"target_accept": 0.99, "max_samples": 4000})  # fmt: skip
    s = st.mixer("d").sampling
    assert (s.method, s.num_chains, s.max_samples) == ("chees", 8, 4000)
    assert dict(s.chees) == {"learning_rate": 0.05}
    assert s.target_accept == 0.95  # the study's NUTS setting is not inherited
    quick = st.with_overrides(sampling={"num_samples": 50})
    assert quick.mixer("d").sampling.num_samples == 50
    assert quick.mixer("d").sampling.method == "chees"
    back = st.with_overrides(sampling={"method": "nuts"})  # its ChEES settings go with it
    assert back.mixer("d").sampling.method == "nuts" and dict(back.mixer("d").sampling.chees) == {}
    again = study_from_dict(__import__("tomllib").loads(st.to_toml()), source="again")
    assert again.mixer("d").sampling == s
    with pytest.raises(StudyError, match=r"sampling.target_accept' is a NUTS setting"):
        _study({"method": "chees", "target_accept": 0.9})
    with pytest.raises(StudyError, match="need method = 'chees'"):
        _study({"chees": {"learning_rate": 0.1}})
    with pytest.raises(StudyError, match="unknown setting 'rate'"):
        _study({"method": "chees", "chees": {"rate": 0.1}})
    with pytest.raises(StudyError, match="'map' starts every chain"):
        _study({"method": "chees", "init": "map"})
    # inherited NUTS settings are reset, not refused: they were not written for this mixer
    inherited = _study({"method": "chees"}, sampling={"init": "median", "dense_mass": True})
    s = inherited.mixer("d").sampling
    assert (s.init, s.dense_mass, s.method) == ("uniform", None, "chees")
    # switching a NUTS study to ChEES drops the settings ChEES does not read
    nuts = _study({"target_accept": 0.99, "max_tree_depth": 8})
    to_chees = nuts.with_overrides(sampling={"method": "chees"}).mixer("d").sampling
    assert to_chees.method == "chees" and to_chees.max_tree_depth == 10
    gpd = load_study("default").mixer("gp_dirichlet_spread").sampling
    assert (gpd.method, gpd.num_chains, gpd.num_warmup) == ("chees", 8, 600)


_TWO_DEVICES = r"""
import json, jax, numpy as np
from lbmm.inference.chees import chain_devices, run_chees
import numpyro, numpyro.distributions as dist

def model(y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    numpyro.sample("log_s", dist.Normal(0.0, 1.0))
    numpyro.sample("y", dist.Normal(mu, 0.5), obs=y)

y = np.random.default_rng(0).normal(1.3, 0.5, 20)
run = lambda: run_chees(model, (y,), {}, key=jax.random.PRNGKey(0), num_warmup=300,
                        num_samples=500, num_chains=8)
res, again = run(), run()
print(json.dumps({"devices": len(jax.devices()), "odd": chain_devices(3),
                  "used": res.record["chain_devices"], "mu_mean": float(res.samples["mu"].mean()),
                  "mu_sd": float(res.samples["mu"].std()),
                  "log_s_sd": float(res.samples["log_s"].std()),
                  "same": bool(np.array_equal(res.samples["mu"], again.samples["mu"]))}))
"""


def test_draws_spread_over_two_devices():
    """With two host devices (set for a fresh process, whatever this machine's cores), eight
    chains draw on both; the posterior is the conjugate one and a seed gives the same draws."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "2"}
    env.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], env=env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["devices"] == 2 and got["used"] == 2 and got["odd"] == 1
    y = _y()
    v = 1.0 / (len(y) / S**2 + 1.0 / T**2)
    # the tolerances of test_conjugate_posterior_and_gradient_count (same draws' count)
    assert got["mu_mean"] == pytest.approx(v * y.sum() / S**2, abs=0.1 * np.sqrt(v))
    assert got["mu_sd"] == pytest.approx(np.sqrt(v), rel=0.1)
    assert got["log_s_sd"] == pytest.approx(1.0, rel=0.1)
    assert got["same"]
