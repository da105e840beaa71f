"""Posteriors as normalizing flows: the unconstrained scale recovered exactly, the flow's
density against a known one, the file round trip, prediction from a flow in a fresh
process without data files, and ``lbmm flow`` / ``lbmm predict --from-flow`` on a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from scipy import special, stats

import lbmm
from lbmm.cli import main
from lbmm.data import load_dataset
from lbmm.data.errors import OptionError
from lbmm.inference import Posterior, fit, make_idata
from lbmm.inference.flow import FlowError, fit_flow, load_flow, mmd_test, unconstrained_draws
from lbmm.predict import predict
from lbmm.run import run_study
from lbmm.study import study_from_dict

MODELS = ["DUZU", "FRDM95", "WS32010"]
# a known law on the unconstrained scale of GBMM+L (constant noise): logit ω (3), log σ
MEAN = np.array([0.3, -0.5, 1.0, np.log(0.2)])
COV = np.array([[0.20, 0.08, 0.00, 0.02],
                [0.08, 0.15, -0.05, 0.00],
                [0.00, -0.05, 0.30, 0.01],
                [0.02, 0.00, 0.01, 0.05]])  # fmt: skip


@pytest.fixture(scope="module")
def known():
    """A GBMM+L posterior whose draws are exact draws of N(MEAN, COV), unconstrained."""
    ds = load_dataset("default").select_models(MODELS)
    tiny = fit(ds, "linear", num_chains=1, num_warmup=5, num_samples=5, warn=False,
               options={"noise": "constant", "parameterization": "box"})  # fmt: skip
    z = np.random.default_rng(0).multivariate_normal(MEAN, COV, (4, 1000))
    samples = {"weights": special.expit(z[..., :3]), "sigma": np.exp(z[..., 3])}
    idata = make_idata(samples, ds, "train", None)
    post = Posterior("linear", idata, ds, tiny.settings, {})
    flow = fit_flow(post, key=jax.random.PRNGKey(0), options={"max_epochs": 150})
    return post, z, flow


def test_unconstrained_draws_are_the_known_ones(known):
    post, z, _ = known
    flat, layout, _ = unconstrained_draws(post)
    assert layout.sites == ("sigma", "weights")  # sorted site names: σ first
    np.testing.assert_allclose(flat[..., 0], z[..., 3], atol=1e-10)
    np.testing.assert_allclose(flat[..., 1:], z[..., :3], atol=1e-10)


def test_flow_density_matches_the_known_law(known):
    _, _, flow = known
    fresh = np.random.default_rng(1).multivariate_normal(MEAN, COV, 2000)
    flat = np.column_stack([fresh[:, 3], fresh[:, :3]])  # the flow's coordinate order
    exact = stats.multivariate_normal(
        np.r_[MEAN[3], MEAN[:3]], COV[np.ix_([3, 0, 1, 2], [3, 0, 1, 2])]
    ).logpdf(flat)
    lq = np.asarray(flow.log_prob(flat))
    # E_p[log q − log p] = −KL(p‖q): 0 for a perfect flow; measured −0.029 (seed 0; the
    # flow is fitted to 3,000 draws), with Monte Carlo sd 0.006 over these 2,000 draws.
    # Allow KL up to 0.08 nats; a flow can never beat the exact density by more than noise.
    assert -0.08 < (lq - exact).mean() <= 0.02
    # its draws against fresh exact draws: MMD two-sample test (measured p = 0.73)
    draws = np.asarray(flow.sample_unconstrained(jax.random.PRNGKey(3), 1000))
    assert mmd_test(draws, flat[:1000], key=jax.random.PRNGKey(4))["p_value"] > 0.01
    fitd = flow.meta["fit"]
    # medians within 0.2 held-out sds (measured 0.09; the held-out median itself has
    # sd ≈ 1.25/sqrt(1000) = 0.04 sd)
    assert fitd["quantiles_flow_coords"]["q50_max"] < 0.2


def test_flow_files_round_trip(known, tmp_path):
    post, _, flow = known
    path = flow.save(tmp_path / "linear")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "linear.data.nc", "linear.eqx", "linear.json",
    ]  # fmt: skip
    back = load_flow(path)
    k = jax.random.PRNGKey(9)
    a = np.asarray(flow.sample_unconstrained(k, 50))
    np.testing.assert_array_equal(a, np.asarray(back.sample_unconstrained(k, 50)))
    np.testing.assert_allclose(np.asarray(back.log_prob(a)), np.asarray(flow.log_prob(a)))
    meta = json.loads((tmp_path / "linear.json").read_text())
    site = meta["layout"]["sites"][1]
    assert site["name"] == "weights" and site["shape"] == [3]
    assert site["support"].startswith("Interval(lower_bound=0.0, upper_bound=1.0")
    assert meta["versions"]["flowjax"] and meta["source"]["held_out_draws"] == 1000
    p = back.posterior(jax.random.PRNGKey(2), 400, num_chains=2)
    w = p.idata.posterior["weights"]
    assert w.shape == (2, 200, 3) and float(w.min()) > 0 and float(w.max()) < 1
    np.testing.assert_array_equal(p.dataset.F, post.dataset.F)
    (tmp_path / "linear.json").unlink()
    with pytest.raises(FlowError, match=r"linear\.json is missing"):
        load_flow(path)
    # a mixer key may hold dots: the suffixes are added, never substituted
    dotted = flow.save(tmp_path / "gp.v2")
    assert dotted.name == "gp.v2.eqx" and (tmp_path / "gp.v2.json").is_file()
    assert load_flow(dotted).meta["mixer"] == "linear"


def test_prediction_from_a_flow_in_a_fresh_process_without_data(known, tmp_path):
    _, _, flow = known
    flow.save(tmp_path / "flows" / "linear")
    nuclei = [(50, 82), (82, 126)]
    mine = predict(flow.posterior(jax.random.PRNGKey(5), 300), nuclei, seed=7).mean
    code = (
        "import json, jax, lbmm\n"
        "from lbmm.predict import predict\n"
        "f = lbmm.load_flow('flows/linear.eqx')\n"
        "p = predict(f.posterior(jax.random.PRNGKey(5), 300), [(50, 82), (82, 126)], seed=7)\n"
        "print(json.dumps(p.mean.tolist()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LBMM_DATA_DIR"}
    env["HOME"] = str(tmp_path)  # no cache, no config of this user
    src = str(Path(lbmm.__file__).resolve().parents[1])  # this lbmm, installed or not
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    np.testing.assert_allclose(json.loads(out.strip().splitlines()[-1]), mine, rtol=1e-12)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    raw = {
        "name": "tiny",
        "seed": 3,
        "data": {"recipe": "default", "models": MODELS},
        "sampling": {"num_chains": 2, "num_warmup": 30, "num_samples": 60},
        "mixers": [{"mixer": "bma"}, {"mixer": "linear"}],
    }
    return run_study(study_from_dict(raw), output=tmp_path_factory.mktemp("r") / "run",
                     cache_dir=tmp_path_factory.mktemp("cache"), report=False)  # fmt: skip


def test_lbmm_flow_and_predict_from_flow(run, capsys):
    rc = main(["flow", str(run.path), "--option", "max_epochs=5", "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bma"] == {"skipped": "closed form: the stored posterior is exact"}
    assert out["linear"]["epochs"] >= 1 and (run.path / "flows" / "linear.eqx").is_file()
    assert main(["predict", str(run.path), "--nuclei", "50,82", "--mixers", "linear",
                 "--from-flow", "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["nucleus"] == "132Sn" and np.isfinite(rows[0]["mean"])
    # BMA is closed form: its stored posterior is exact and is what --from-flow uses
    exact = run.predict([(50, 82)], ["bma"])
    assert run.predict([(50, 82)], ["bma"], from_flow=True).equals(exact)
    (run.path / "flows" / "linear.eqx").rename(run.path / "flows" / "gone.eqx")
    with pytest.raises(FlowError, match="no flow for 'linear'"):
        run.flow("linear")
    (run.path / "flows" / "gone.eqx").rename(run.path / "flows" / "linear.eqx")
    side = run.path / "flows" / "linear.json"
    meta = json.loads(side.read_text())
    meta["source"]["sha256"] = "0" * 64
    side.write_text(json.dumps(meta))
    with pytest.raises(FlowError, match="fitted to another posterior"):
        run.flow("linear")


def test_flow_settings_are_checked(known):
    post, _, _ = known
    with pytest.raises(OptionError, match="unknown setting 'layers'"):
        fit_flow(post, key=jax.random.PRNGKey(0), options={"layers": 3})
    with pytest.raises(OptionError, match="held_out"):
        fit_flow(post, key=jax.random.PRNGKey(0), options={"held_out": 1.5})


def test_closed_form_bma_has_no_flow(tmp_path):
    ds = load_dataset("default").select_models(MODELS)
    bma = fit(ds, "bma", num_samples=50, warn=False)
    with pytest.raises(OptionError, match="closed form"):
        fit_flow(bma, key=jax.random.PRNGKey(0))


def test_latent_block_gaussian_conditional_matches_dense_formulas():
    """The Gaussian law of a latent block given the flow's coordinates (HSGP posteriors):
    its log density equals SciPy's with the dense covariance V diag(s²) Vᵀ + diag(d²), and
    its draws have that mean and covariance."""
    from lbmm.inference.flow import _cond_logpdf, _cond_sample, _conditional_fit

    rng = np.random.default_rng(3)
    n, dh, dz = 4000, 2, 6
    h = rng.normal(size=(n, dh))
    A = rng.normal(size=(dz, dh))
    L = rng.normal(size=(dz, 2)) * 0.5
    z = 1.0 + h @ A.T + rng.normal(size=(n, 2)) @ L.T + 0.1 * rng.normal(size=(n, dz))
    c = {k: jax.numpy.asarray(v) for k, v in _conditional_fit(h, z, rank=2).items()}
    mean = np.asarray(c["b"] + ((h[:5] - c["hm"]) / c["hs"]) @ c["A"].T)
    cov = np.asarray((c["V"] * c["s"]) @ (c["V"] * c["s"]).T + np.diag(c["d"] ** 2))
    # the fitted law is the truth up to estimation error from 4,000 draws: a covariance
    # entry near 1 has sd about sqrt(2/4000) = 0.022; allow 0.1 (measured largest 0.053)
    np.testing.assert_allclose(cov, L @ L.T + 0.01 * np.eye(dz), atol=0.1)
    exact = [stats.multivariate_normal(mean[i], cov).logpdf(z[i]) for i in range(5)]
    np.testing.assert_allclose(np.asarray(_cond_logpdf(c, h[:5], z[:5])), exact, rtol=1e-8)
    draws = np.asarray(_cond_sample(c, jax.random.PRNGKey(0), np.repeat(h[:1], 20000, 0)))
    # Monte Carlo: 20,000 draws -> sd of a mean <= 0.01, of a covariance entry <= 0.01
    np.testing.assert_allclose(draws.mean(0), mean[0], atol=0.05)
    np.testing.assert_allclose(np.cov(draws.T), cov, atol=0.05)
