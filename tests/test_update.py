"""Updating a posterior with new measurements: PSIS reweighting and data-tempered SMC against
the exact conjugate posterior; measurement files refused row by row; ``lbmm update`` writes a
complete run that names its parent and says which method each entry took."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lbmm.cli import main
from lbmm.data import DataError, Measurements, add_measurements, read_measurements
from lbmm.data.errors import OptionError
from lbmm.inference.update import update_draws, update_posterior
from lbmm.results import check_run
from lbmm.run import run_study
from lbmm.study import study_from_dict

MODELS = ["DUZU", "FRDM95", "WS32010"]


def tiny_study(mixers) -> dict:
    """2 chains × (30 + 30) on three models: plumbing, not convergence."""
    return {
        "name": "tiny",
        "seed": 3,
        "data": {"recipe": "default", "models": MODELS},
        "sampling": {"num_chains": 2, "num_warmup": 30, "num_samples": 30},
        "mixers": [{"mixer": m} for m in mixers],
    }


# ------------------------------------------------------------ conjugate normal, exact answer

RNG = np.random.default_rng(11)
Y_OLD = RNG.normal(0.7, 1.0, 5)


def _posterior(y):
    """μ ~ N(0, 1), y_i ~ N(μ, 1): μ | y ~ N(Σy / (n + 1), 1 / (n + 1))."""
    return y.sum() / (y.size + 1), 1.0 / np.sqrt(y.size + 1)


def _densities(y_new):
    def joint_old(v):
        return jnp.sum(jax.scipy.stats.norm.logpdf(v, 0.0, 1.0)) + jnp.sum(
            jax.scipy.stats.norm.logpdf(jnp.asarray(Y_OLD), v[0], 1.0)
        )

    def delta(v):
        return jnp.sum(jax.scipy.stats.norm.logpdf(jnp.asarray(y_new), v[0], 1.0))

    return joint_old, delta


def _old_draws(chains=4, draws=500, seed=0):
    m, s = _posterior(Y_OLD)
    return np.random.default_rng(seed).normal(m, s, (chains, draws, 1))


@pytest.mark.parametrize("n_new, method", [(2, "psis"), (1000, "smc")])
def test_update_recovers_the_exact_conjugate_posterior(n_new, method):
    # two new points move the posterior a little (PSIS); a thousand shrink its sd by a
    # factor 13: the weights are bounded (k̂ < 0) but fall on few of the 2,000 draws
    # (importance ESS about 200 < 400), so the draws are tempered by SMC
    y_new = np.random.default_rng(5).normal(0.7, 1.0, n_new)
    joint_old, delta = _densities(y_new)
    out, rec = update_draws(_old_draws(), joint_old, delta, key=jax.random.PRNGKey(1),
                            smc={"mcmc_steps": 5})  # fmt: skip
    assert rec["method"] == method
    assert (rec["importance_ess"] >= 400) == (method == "psis")
    m, s = _posterior(np.concatenate([Y_OLD, y_new]))
    x = np.asarray(out).ravel()
    # Monte Carlo error: the new draws hold at least 400 effective ones of 2,000 (PSIS: its
    # importance ESS, asserted; SMC: 4 populations × 500 particles after HMC moves) -> sd of
    # the mean <= s/sqrt(400) = 0.05 s, sd of the sd <= s/sqrt(800) = 0.035 s. Tolerances
    # are 5 of those.
    assert abs(x.mean() - m) < 0.25 * s
    assert abs(x.std() - s) < 0.18 * s
    # and the whole law: a KS test against the exact normal on every 4th draw (500)
    assert stats.kstest(x[::4], stats.norm(m, s).cdf).pvalue > 0.001


def test_psis_is_refused_where_the_weights_fail():
    y_new = np.random.default_rng(5).normal(0.7, 1.0, 1000)
    joint_old, delta = _densities(y_new)
    with pytest.raises(OptionError, match="importance ESS"):
        update_draws(_old_draws(), joint_old, delta, key=jax.random.PRNGKey(1), method="psis")


# ------------------------------------------------------------------- measurement files


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jaxcache")
    raw = tiny_study(mixers=("bma", "linear"))
    return run_study(study_from_dict(raw), output=tmp_path_factory.mktemp("p") / "run",
                     cache_dir=cache)  # fmt: skip


def _write(tmp_path, text, name="new.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_measurement_files_are_checked_row_by_row(parent, tmp_path):
    ds = parent.posterior("linear").dataset
    tr, te = ds.split_indices("train"), ds.split_indices("test")
    z, n = ds.Z[te[0]], ds.N[te[0]]
    with pytest.raises(DataError, match="expected columns Z, N and S2n"):
        read_measurements(_write(tmp_path, "Z,N,BE\n50,82,1\n"), "S2n")
    with pytest.raises(DataError, match=r"unknown column\(s\) \['note'\]"):
        read_measurements(_write(tmp_path, "Z,N,S2n,note\n50,82,1,x\n"), "S2n")
    with pytest.raises(DataError, match=r"row 3: column S2n: expected a number"):
        read_measurements(_write(tmp_path, "Z,N,S2n\n50,82,1\n50,84,abc\n"), "S2n")
    with pytest.raises(DataError, match=r"row 3: .* listed twice"):
        read_measurements(_write(tmp_path, f"Z,N,S2n\n{z},{n},1\n{z},{n},2\n"), "S2n")
    m = read_measurements(_write(tmp_path, "Z,N,S2n\n3,300,1\n"), "S2n")
    with pytest.raises(DataError, match=r"row 2 .*not a nucleus of dataset"):
        add_measurements(ds, m)
    zt, nt = ds.Z[tr[0]], ds.N[tr[0]]
    m = read_measurements(_write(tmp_path, f"Z,N,S2n\n{z},{n},1.5\n{zt},{nt},2\n"), "S2n")
    with pytest.raises(DataError, match=r"row 3 .*already in the 'train' split"):
        add_measurements(ds, m)
    m = read_measurements(_write(tmp_path, f"Z,N,uS2n,S2n\n{z},{n},0.1,1.5\n"), "S2n")
    new, rec = add_measurements(ds, m)
    i = new.index_of([(int(z), int(n))])[0]
    assert rec == {"source": m.source, "added": 1, "split": "train", "left": {"test": 1}}
    assert i in new.split_indices("train") and i not in new.split_indices("test")
    assert new.y[i] == 1.5 and new.y_uncertainty[i] == 0.1
    assert len(new.split_indices("train")) == len(tr) + 1


def test_update_posterior_refuses_unknown_methods_and_refits_bma(parent):
    post = parent.posterior("linear")
    with pytest.raises(OptionError, match="method 'nope'"):
        update_posterior(post, post.dataset, method="nope")
    ds = post.dataset
    i = ds.split_indices("test")[0]
    one = Measurements(ds.Z[[i]], ds.N[[i]], ds.y[[i]], np.zeros(1))
    res = update_posterior(parent.posterior("bma"), add_measurements(ds, one)[0])
    assert res.posterior is None and res.record["method"] == "refit"
    with pytest.raises(OptionError, match="nothing to update"):
        update_posterior(post, post.dataset)
    with pytest.raises(OptionError, match="fallback 'warm'"):
        update_posterior(post, post.dataset, fallback="warm")


def test_lbmm_update_writes_a_complete_child_run(parent, tmp_path, capsys):
    ds = parent.posterior("linear").dataset
    te = ds.split_indices("test")[::3]
    pd.DataFrame({"Z": ds.Z[te], "N": ds.N[te], "S2n": ds.y[te]}).to_csv(
        tmp_path / "new.csv", index=False
    )
    out = tmp_path / "child"
    rc = main(["update", str(parent.path), "--observed", str(tmp_path / "new.csv"),
               "--out", str(out), "--no-report", "--quiet"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    man = check_run(out)
    up = man["update"]
    assert up["parent"] == str(parent.path.absolute())
    assert up["observed"]["added"] == te.size and up["observed"]["left"] == {"test": te.size}
    assert up["entries"]["bma"]["method"] == "refit"
    lin = up["entries"]["linear"]
    # NUTS entries: PSIS where it holds, else NUTS from the stored draws (not tempering:
    # costlier than NUTS)
    assert lin["method"] in ("psis", "warm refit") and np.isfinite(lin["khat"])
    assert (lin["method"] == "psis") == (lin["khat"] < 0.7 and lin["importance_ess"] >= 400)
    assert man["mixers"]["linear"]["update"]["method"] == lin["method"]
    assert f"{lin['method']}" in printed and "bma" in printed
    counts = man["dataset"]["counts"]
    old = parent.manifest["dataset"]["counts"]
    assert counts["train"] == old["train"] + te.size
    assert counts["test"] == old["test"] - te.size
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mixers"]["linear"]["test"]["n"] == old["test"] - te.size


def test_update_with_every_test_nucleus_leaves_an_empty_test_split(parent, tmp_path):
    from lbmm.update import update_run

    ds = parent.posterior("linear").dataset
    te = ds.split_indices("test")
    pd.DataFrame({"Z": ds.Z[te], "N": ds.N[te], "S2n": ds.y[te]}).to_csv(
        tmp_path / "all.csv", index=False
    )
    child = update_run(parent, tmp_path / "all.csv", output=tmp_path / "child", method="refit")
    assert child.manifest["dataset"]["counts"]["test"] == 0
    assert "test" not in child.metrics()["mixers"]["linear"]
    assert (child.path / "report.html").is_file()


def test_fit_starts_where_it_is_told(parent):
    from lbmm.inference import fit
    from lbmm.inference.flow import _unflatten, unconstrained_draws

    post = parent.posterior("linear")
    flat, layout, _ = unconstrained_draws(post)
    start = {k: np.asarray(v) for k, v in _unflatten(layout, flat[:, -1]).items()}
    opts = {"noise": post.options["noise"]}
    again = fit(post.dataset, "linear", num_chains=2, num_warmup=0, num_samples=2, seed=4,
                init_params=start, warn=False, options=opts)  # fmt: skip
    assert again.settings["init"] == "given"
    # the first NUTS transition from the given points stays near them (within the
    # posterior's own spread, 5 sd)
    moved, _, _ = unconstrained_draws(again)
    sd = flat.reshape(-1, flat.shape[-1]).std(0)
    assert np.all(np.abs(moved[:, 0] - flat[:, -1]) < 5 * sd)
