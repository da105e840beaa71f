"""run_study: the run folder, its manifest, reproducibility, atomicity (errors and Ctrl-C leave
nothing), refusal of foreign or incomplete folders, Run.predict, and the tutorial script.

Sampling settings are tiny (2 chains × 30 + 30 on three models): these tests check the
plumbing, not convergence.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import lbmm
from lbmm.run import RunError, check_run, enable_compilation_cache, load_run, run_study
from lbmm.study import study_from_dict

REPO = Path(__file__).resolve().parents[1]
MODELS = ["DUZU", "FRDM95", "WS32010"]


def tiny_study(name: str = "tiny", mixers=("bma", "linear"), **extra) -> dict:
    raw = {
        "name": name,
        "seed": 3,
        "data": {"recipe": "default", "models": MODELS},
        "sampling": {"num_chains": 2, "num_warmup": 30, "num_samples": 30},
        "mixers": [{"mixer": m} for m in mixers],
    }
    raw.update(extra)
    return raw


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jaxcache")


@pytest.fixture(scope="module")
def run(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return run_study(study_from_dict(tiny_study()), output=out, cache_dir=cache_dir)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


# ---------------------------------------------------------------------- the folder


def test_run_folder_has_every_file(run):
    p = run.path
    for f in ("manifest.json", "study.toml", "dataset.csv", "predictions.csv", "metrics.json",
              "posterior/bma.nc", "posterior/linear.nc", "report.html", "tables/table1.md",
              "tables/table1.csv", "tables/table2.md", "tables/table2.csv",
              "tables/diagnostics.md", "tables/diagnostics.csv", "figures/ecp.png"):  # fmt: skip
        assert (p / f).is_file(), f
    assert not (p / "weights.csv").exists()  # no local mixer in this study
    assert _leftovers(p.parent) == []
    # GBMM+L's convergence figures were drawn as soon as it was fitted, and moved in
    assert (p / "figures" / "trace_linear.png").is_file()
    assert (p / "figures" / "rank_linear.png").is_file()
    assert not (p / ".figures-early").exists()
    assert not [f for f in run.manifest["files"] if f.startswith(".")]
    assert run.manifest["mixers"]["linear"]["figures_s"] > 0
    assert run.manifest["mixers"]["bma"]["figures_s"] is None  # closed form: no chains


def test_manifest_records_the_run(run):
    m = run.manifest
    assert m["format"] == "lbmm-run" and m["complete"] is True
    assert m["study"]["name"] == "tiny" and m["seed"] == 3
    assert m["dataset"]["models"] == MODELS
    for t in m["dataset"]["tables"].values():
        assert len(t["sha256"]) == 64 and Path(t["path"]).is_file()
    assert {"python", "lbmm", "jax", "numpyro", "arviz", "numpy"} <= set(m["versions"])
    assert m["versions"]["lbmm"] == lbmm.__version__
    assert m["platform"]["cpu_count"] >= 1 and m["platform"]["jax_backend"]
    assert m["started"] <= m["finished"] and m["wall_s"] > 0
    assert m["jax_compilation_cache"]["used"] is True
    for key in ("bma", "linear"):
        rec = m["mixers"][key]
        assert rec["fit_s"] > 0 and rec["predict_s"] >= 0
        assert rec["seed"] == 3
    # BMA is closed form: no made-up R-hat or ESS
    bma = m["mixers"]["bma"]
    assert bma["diagnostics"]["sampler"] == "closed form" and bma["converged"] is True
    assert "rhat_max" not in bma["diagnostics"]
    # NUTS: the bars over the parameters include σ's R-hat as ArviZ computes it
    d = m["mixers"]["linear"]["diagnostics"]
    sigma = run.posterior("linear").idata.posterior.to_dataset()[["sigma"]]
    rhat_sigma = float(az.rhat(sigma)["sigma"])
    assert d["rhat_max"] >= rhat_sigma - 1e-12
    assert d["groups"]["params"]["rhat_max"] >= rhat_sigma - 1e-12
    # every result file is recorded, the report's too (apart: it can be rebuilt)
    assert {"predictions.csv", "metrics.json", "posterior/linear.nc"} <= set(m["files"])
    assert {"report.html", "tables/table1.csv", "figures/ecp.png"} <= set(m["report_files"])
    for rel, info in (m["files"] | m["report_files"]).items():
        assert (run.path / rel).stat().st_size == info["bytes"]


def test_compilation_cache_is_filled(run, cache_dir):
    assert any(cache_dir.iterdir())
    assert run.manifest["jax_compilation_cache"]["dir"] == str(cache_dir)


def test_compilation_cache_can_be_turned_off(monkeypatch):
    assert enable_compilation_cache("off")["used"] is False
    monkeypatch.setenv("LBMM_CACHE_DIR", "off")
    assert enable_compilation_cache()["used"] is False


def test_predictions_cover_the_domain_for_every_mixer(run):
    df = run.predictions()
    ds = lbmm.load_dataset("default")
    assert len(df) == 2 * ds.counts()["domain"]
    assert list(df["mixer"].unique()) == ["bma", "linear"]
    for col in ("nucleus", "Z", "N", "in_train", "in_test", "y_obs", "mean", "sd", "lo68",
                "hi68", "lo95", "hi95", "p_exist"):  # fmt: skip
        assert col in df
    assert (df["lo95"] <= df["lo68"]).all() and (df["lo68"] <= df["hi68"]).all()
    assert (df["hi68"] <= df["hi95"]).all()
    assert df["p_exist"].between(0, 1).all()
    lin = df[df["mixer"] == "linear"]
    assert lin["in_train"].sum() == ds.counts()["train"]
    assert lin["in_test"].sum() == ds.counts()["test"]


def test_metrics_match_predictions(run):
    """Table 1's test rms is that of the predictive means in predictions.csv, over the test
    nuclei the fit did not see (BMA: less its evidence nuclei); σ_k of a raw model is its
    train rms, computed here from dataset.csv."""
    met = run.metrics()
    df = run.predictions()
    evidence = set(run.posterior("bma").settings["fitted_nuclei"])
    for key in ("bma", "linear"):
        d = df[(df["mixer"] == key) & df["in_test"]]
        if key == "bma":
            assert sorted(met["mixers"][key]["test"]["excluded"]) == sorted(
                set(d["nucleus"]) & evidence
            )
            d = d[~d["nucleus"].isin(evidence)]
        else:
            assert "excluded" not in met["mixers"][key]["test"]
        rms = float(np.sqrt(np.mean((d["mean"] - d["y_obs"]) ** 2)))
        assert met["mixers"][key]["test"]["rms"] == pytest.approx(rms, rel=1e-12)
        assert met["mixers"][key]["test"]["n"] == len(d)
    data = run.dataset_frame()
    tr = data[data["in_train"]]
    for m in MODELS:
        sig = float(np.sqrt(np.mean((tr[m] - tr["y"]) ** 2)))
        assert met["models"]["raw"][m]["sigma"] == pytest.approx(sig, rel=1e-12)


def test_same_seed_same_numbers(run, tmp_path, cache_dir):
    again = run_study(run.study, output=tmp_path / "again", cache_dir=cache_dir, report=False)
    assert again.metrics() == run.metrics()
    pd.testing.assert_frame_equal(again.predictions(), run.predictions())


def test_two_jobs_give_the_numbers_of_one(run, tmp_path, cache_dir, monkeypatch):
    """Entries fitted at once in worker processes: the same draws, metrics and predictions
    as one after the other (every entry has its own seed), the manifest in study order; the
    first entry to finish has its own figures drawn while the other runs, the same figures."""
    import matplotlib.image

    import lbmm.report.figures as figmod

    early = []
    real = figmod.mixer_figures
    monkeypatch.setattr(figmod, "mixer_figures",
                        lambda key, *a: early.append(key) or real(key, *a))  # fmt: skip
    lines = []
    two = run_study(run.study, output=tmp_path / "two", cache_dir=cache_dir, jobs=2,
                    progress=lines.append)  # fmt: skip
    assert len(early) == 1 and early[0] in ("bma", "linear")  # not the last to finish
    figures = [sorted(p.name for p in (r.path / "figures").iterdir()) for r in (run, two)]
    assert figures[0] == figures[1] and f"chains_{early[0]}.png" in figures[1]
    assert not (two.path / ".figures-early").exists()
    for name in (f"chains_{early[0]}.png", "residuals_models.png"):  # drawn early, in two
        a = matplotlib.image.imread(run.path / "figures" / name)
        b = matplotlib.image.imread(two.path / "figures" / name)
        np.testing.assert_array_equal(a, b, err_msg=name)  # the same numbers, the same pixels
    assert two.manifest["jobs"] == 2 and run.manifest["jobs"] == 1
    assert list(two.manifest["mixers"]) == list(run.manifest["mixers"]) == ["bma", "linear"]
    assert two.metrics() == run.metrics()
    pd.testing.assert_frame_equal(two.predictions(), run.predictions())
    for key in ("bma", "linear"):
        a, b = run.posterior(key).idata.posterior, two.posterior(key).idata.posterior
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values)
        # the workers' progress lines come back, each told apart by its entry's key
        assert any(line.startswith(f"  {key}: done: ") for line in lines), lines


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True, "2"])
def test_bad_jobs_are_refused(tmp_path, jobs):
    with pytest.raises(RunError, match="jobs must be a whole number >= 1"):
        run_study(study_from_dict(tiny_study()), output=tmp_path / "x", jobs=jobs)
    assert list(tmp_path.iterdir()) == []


def test_run_predict_from_stored_posteriors(run):
    """``Run.predict`` (``lbmm predict``) gives the numbers of predictions.csv: the same
    thinned draws and random draws keyed by nucleus, whichever nuclei are asked together."""
    df = run.predict([(50, 82), "208Pb"], ["linear", "bma"])
    assert list(df["nucleus"]) == ["132Sn", "208Pb"] * 2
    stored = run.predictions().set_index(["mixer", "nucleus"])
    for r in df.itertuples():
        s = stored.loc[(r.mixer, r.nucleus)]
        for col in ("mean", "median", "sd", "lo68", "hi68", "lo95", "hi95", "p_exist"):
            assert getattr(r, col) == pytest.approx(s[col], rel=1e-9, abs=1e-12), col
    alone = run.predict(["208Pb"], ["linear"]).iloc[0]
    assert alone["sd"] == pytest.approx(stored.loc[("linear", "208Pb"), "sd"], rel=1e-9)
    assert run.posterior("bma").mixer == "bma"
    with pytest.raises(RunError, match="no mixer 'nope'"):
        run.posterior("nope")


def test_run_study_reads_back_as_the_same_study(run):
    assert run.study.to_dict() == study_from_dict(tiny_study()).to_dict() | {
        "output": run.study.output
    }


# ---------------------------------------------------------------------- refusals


def test_existing_output_is_refused_then_replaced(run, tmp_path, cache_dir):
    st = study_from_dict(tiny_study(mixers=("bma",)))
    target = tmp_path / "r"
    run_study(st, output=target, cache_dir=cache_dir, report=False)
    with pytest.raises(RunError, match="already exists; pass --overwrite"):
        run_study(st, output=target, cache_dir=cache_dir, report=False)
    first = (target / "manifest.json").read_text()
    run_study(st, output=target, cache_dir=cache_dir, report=False, overwrite=True)
    assert (target / "manifest.json").read_text() != first  # new start time
    assert _leftovers(tmp_path) == []
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not an lbmm run folder"):
        run_study(st, output=foreign, cache_dir=cache_dir, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_an_error_during_the_run_leaves_nothing(tmp_path, monkeypatch, cache_dir):
    import lbmm.run as runmod

    real = runmod._run_mixer
    calls = []

    def second_fails(entry, *args, **kw):
        calls.append(entry.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(entry, *args, **kw)

    monkeypatch.setattr(runmod, "_run_mixer", second_fails)
    with pytest.raises(KeyboardInterrupt):
        run_study(study_from_dict(tiny_study()), output=tmp_path / "x", cache_dir=cache_dir)
    assert calls == ["bma", "linear"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_during_sampling_leaves_no_folder(tmp_path, jobs):
    """A real SIGINT to ``lbmm run`` while the second mixer samples, in the process itself
    (``--jobs 1``) or in a worker process (``--jobs 2``: the parent stops its workers).

    The second mixer (GBMM+L) is asked for 10⁶ draws: it cannot finish, so the run ends only
    if the SIGINT stops it (NUTS runs in chunks that return to Python about twice a second).
    The signal is sent once BMA's posterior is written (measured: the run stops 1.7–2 s
    after it); it is repeated 15 s apart while the run goes on, at most 8 times.
    """
    study = tmp_path / "s.toml"
    raw = tiny_study()
    raw["mixers"][1]["sampling"] = {"num_chains": 1, "num_warmup": 20, "num_samples": 1_000_000}
    from lbmm.study import dumps_toml

    study.write_text(dumps_toml(raw))
    out = tmp_path / "runs" / "s"
    env = {**os.environ, "LBMM_CACHE_DIR": "off"}
    # `lbmm run` as from a terminal, where Ctrl-C raises KeyboardInterrupt: a test runner
    # started in the background may ignore SIGINT, and an ignored signal stays ignored in its
    # children, so the child restores Python's handler before it starts the CLI
    argv = ["lbmm", "run", str(study), "--out", str(out), "--no-report", "--jobs", jobs]
    code = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
            f" sys.argv = {argv!r}; runpy.run_module('lbmm.cli', run_name='__main__')")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if list((tmp_path / "runs").glob(".s.partial-*/posterior/bma.nc")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        # Ctrl-C as a user presses it: again if the run goes on (a signal that lands while
        # JAX compiles the next mixer can be lost); 15 s apart, so that a second one never
        # lands in the clean-up of the first
        err = "the run did not stop"
        for _ in range(8):
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; no run folder was written" in err
    assert list((tmp_path / "runs").iterdir()) == []


def test_check_run_refuses_foreign_and_partial_folders(run, tmp_path):
    with pytest.raises(RunError, match=r"has no manifest\.json"):
        check_run(tmp_path)
    with pytest.raises(RunError, match="is not a folder"):
        check_run(tmp_path / "nope")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="not readable JSON"):
        check_run(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "something else"}))
    with pytest.raises(RunError, match="not an lbmm run manifest"):
        check_run(tmp_path)
    man = dict(run.manifest)
    (tmp_path / "manifest.json").write_text(json.dumps({**man, "complete": False}))
    with pytest.raises(RunError, match="incomplete run"):
        check_run(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**man, "format_version": 99}))
    with pytest.raises(RunError, match="format version 99"):
        check_run(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(RunError, match="is missing"):
        check_run(tmp_path)


def test_check_run_detects_changed_files(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run.path, copy)
    assert load_run(copy).keys == ["bma", "linear"]
    df = pd.read_csv(copy / "predictions.csv")
    df.loc[0, "mean"] += 1.0
    df.to_csv(copy / "predictions.csv", index=False)
    with pytest.raises(RunError, match=r"predictions\.csv changed since the run"):
        load_run(copy)
    (copy / "posterior" / "linear.nc").unlink()
    with pytest.raises(RunError, match=r"posterior/linear\.nc"):
        load_run(copy)


# ---------------------------------------------------------------------- corrections


def test_corrected_entries_run_on_corrected_models(tmp_path, monkeypatch, cache_dir):
    """The plumbing of ``corrected = true`` (the GP fit itself is tested with lbmm.corrections;
    a constant shift stands in for it here, to keep this test fast)."""
    from dataclasses import replace

    from lbmm import corrections

    def shift(ds, split="train"):
        idx = ds.split_indices(split)
        bias = np.mean(ds.y[idx, None] - ds.F[idx], axis=0)
        return replace(ds, F=ds.F + bias)

    monkeypatch.setattr(corrections, "correct", shift)
    raw = tiny_study(mixers=("bma",))
    raw["mixers"].append({"mixer": "bma", "corrected": True})
    r = run_study(study_from_dict(raw), output=tmp_path / "c", cache_dir=cache_dir)
    assert r.keys == ["bma", "bma_corrected"]
    assert (r.path / "dataset_corrected.csv").is_file()
    met = r.metrics()
    assert set(met["models"]["corrected"]) == set(MODELS)
    assert met["mixers"]["bma_corrected"]["corrected"] is True
    ds = lbmm.load_dataset("default").select_models(MODELS)
    post = r.posterior("bma_corrected")
    np.testing.assert_allclose(post.dataset.F, shift(ds).F)
    t1 = (r.path / "tables" / "table1.md").read_text()
    assert "DUZU (corr.)" in t1 and "BMA (corr.)" in t1


# ---------------------------------------------------------------------- tutorial


def test_tutorial_runs_with_tiny_settings(tmp_path):
    out = tmp_path / "tutorial"
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "tutorial.py"), "--num-chains", "1",
         "--num-warmup", "30", "--num-samples", "30", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "LBMM_CACHE_DIR": "off"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "weights.png").is_file()
    assert "test rms" in proc.stdout


def test_predictions_can_use_thinned_draws(tmp_path, cache_dir):
    raw = tiny_study(mixers=("bma",), predict={"max_draws": 20})
    r = run_study(study_from_dict(raw), output=tmp_path / "t", cache_dir=cache_dir, report=False)
    assert r.manifest["mixers"]["bma"]["predict_draws"] == 20
    assert r.manifest["study"]["predict"] == {"max_draws": 20}
    assert r.posterior("bma").samples("sigma").shape[0] == 60  # stored posterior keeps all


def test_an_entry_sampled_by_chees(tmp_path, cache_dir):
    """A study entry with ``method = "chees"`` runs beside NUTS entries (the study's NUTS
    settings are not handed to it) and records its sampler."""
    raw = tiny_study(mixers=())
    chees = {"method": "chees", "num_chains": 4}
    raw["mixers"] = [{"mixer": "linear"}, {"mixer": "dirichlet", "sampling": chees}]
    r = run_study(study_from_dict(raw), output=tmp_path / "ch", cache_dir=cache_dir, report=False)
    d = r.manifest["mixers"]["dirichlet"]["diagnostics"]
    assert d["sampler"].startswith("ChEES") and d["sampling"]["chain_method"] == "vectorized"
    assert r.posterior("dirichlet").idata.posterior.sizes["chain"] == 4
    assert r.manifest["mixers"]["linear"]["diagnostics"]["sampler"].startswith("NUTS")


def test_thin_keeps_every_chain_alike(run):
    from lbmm.run import thin

    post = run.posterior("linear")
    assert thin(post, 0) is post and thin(post, 1000) is post
    t = thin(post, 25)
    assert t.idata.posterior.sizes["chain"] == 2
    assert t.idata.posterior.sizes["draw"] == 10  # every 3rd of 30: 20 in all, <= 25
    np.testing.assert_array_equal(t.samples("sigma")[:10], post.samples("sigma")[:30:3])


def test_validation_folds_are_fitted_and_scored(tmp_path, cache_dir):
    """``[validation] folds``: each entry is fitted on the fold's training nuclei and scored
    on what it holds out (BMA too, without its held-out evidence); the scores reach
    metrics.json, the manifest and the calibration table."""
    from lbmm.data import make_folds
    from lbmm.report.tables import calibration_table

    raw = tiny_study(mixers=("linear",), validation={"folds": ["neutron_rich"]})
    r = run_study(study_from_dict(raw), output=tmp_path / "f", cache_dir=cache_dir, report=False)
    ds = lbmm.load_dataset("default").select_models(MODELS)
    (fold,) = make_folds(ds, "neutron_rich")
    sc = r.metrics()["mixers"]["linear"]["folds"]["neutron_rich"]
    assert sc["n"] == fold.held.size
    assert sorted(sc["nuclei"]) == sorted(np.asarray(ds.labels)[fold.held].tolist())
    assert 0 <= sc["pit_ks_p"] <= 1 and len(sc["pit"]) == fold.held.size
    assert r.manifest["validation_folds"]["neutron_rich"]["held_out"] == fold.held.size
    assert "test" in r.metrics()["mixers"]["linear"]  # the test split is scored as before
    tc = calibration_table(r.metrics())
    assert list(tc["scored on"]) == ["test", "neutron_rich"]


def test_binding_energy_run_derives_s2n_and_sn(tmp_path, cache_dir):
    """A run of binding energies writes derived.csv: S2n and Sn formed draw by draw from the
    same BE draws as predictions.csv, so their means are the differences of its means."""
    from lbmm.report.figures import drip_line, drip_lines_figure
    from lbmm.report.tables import sigma_k_table

    raw = tiny_study("be", mixers=("linear",), data={"recipe": "masses", "models": MODELS})
    r = run_study(study_from_dict(raw), output=tmp_path / "be", cache_dir=cache_dir,
                  report=False)  # fmt: skip
    d, p = r.derived(), r.predictions()
    assert set(d["quantity"]) == {"S2n", "Sn"}
    be = p.set_index(["Z", "N"])["mean"]
    for q, dn in (("S2n", 2), ("Sn", 1)):
        rows = d[d["quantity"] == q]
        expect = be.loc[list(zip(rows["Z"], rows["N"], strict=True))].to_numpy() - be.loc[
            list(zip(rows["Z"], rows["N"] - dn, strict=True))].to_numpy()  # fmt: skip
        np.testing.assert_allclose(rows["mean"].to_numpy(), expect, atol=1e-8)
    # observed S2n of 208Pb from AME2012's energies: the default dataset's value
    pb = d[(d["quantity"] == "S2n") & (d["nucleus"] == "208Pb")]
    (i,) = lbmm.load_dataset("default").index_of(["208Pb"])
    assert pb["y_obs"].item() == pytest.approx(lbmm.load_dataset("default").y[i], abs=1e-9)
    sn = d[(d["quantity"] == "Sn") & (d["mixer"] == "linear")]
    zs, nd = drip_line(sn["Z"].to_numpy(), sn["N"].to_numpy(), sn["p_exist"].to_numpy())
    assert zs.size > 50 and (nd > zs).all()  # past N = Z on every chain
    assert drip_lines_figure(d, [("linear", "GBMM+L")], tmp_path / "e.png").stat().st_size > 0
    assert sigma_k_table(r.metrics()).empty  # no density mixer here


def test_reuse_takes_matching_posteriors_and_says_why_not_others(run, tmp_path, cache_dir,
                                                                  monkeypatch):  # fmt: skip
    import lbmm.run as run_module
    from lbmm.results import sha256

    again = run_study(study_from_dict(tiny_study()), output=tmp_path / "again",
                      cache_dir=cache_dir, report=False, reuse=run.path)  # fmt: skip
    entries = again.manifest["reuse"]["entries"]
    assert all(e["reused"] for e in entries.values()) and set(entries) == {"bma", "linear"}
    rec = again.manifest["mixers"]["linear"]
    assert rec["fit_s"] == 0 and rec["reused_from"].endswith("posterior/linear.nc")
    assert sha256(again.path / "posterior/linear.nc") == sha256(run.path / "posterior/linear.nc")
    pd.testing.assert_frame_equal(again.predictions(), run.predictions())
    # another seed: the entry differs, so it is sampled, and the manifest says why
    other = run_study(study_from_dict(tiny_study(mixers=("linear",), seed=4)),
                      output=tmp_path / "other", cache_dir=cache_dir, report=False,
                      reuse=run.path)  # fmt: skip
    why = other.manifest["reuse"]["entries"]["linear"]
    assert not why["reused"] and "seed" in why["why"]
    assert other.manifest["mixers"]["linear"]["fit_s"] > 0
    # other package versions: refitted too
    real = run_module.package_versions
    monkeypatch.setattr(run_module, "package_versions", lambda: {**real(), "jax": "0.0.1"})
    newer = run_study(study_from_dict(tiny_study(mixers=("bma",))), output=tmp_path / "newer",
                      cache_dir=cache_dir, report=False, reuse=run.path)  # fmt: skip
    why = newer.manifest["reuse"]["entries"]["bma"]
    assert not why["reused"] and "jax" in why["why"] and "0.0.1" in why["why"]


def test_workers_take_the_costliest_entries_first():
    """With ``jobs > 1`` the GP-weighted local mixer starts first, then the other local
    mixers (more iterations first), the global samplers, and the closed forms last."""
    from lbmm.run import _start_order
    from lbmm.study import load_study

    st = load_study("kejzlar2023")
    order = [st.mixers[j].key for j in _start_order(st.mixers)]
    assert order[:3] == ["gp_dirichlet", "glm_dirichlet", "glm_dirichlet_spread"]
    assert set(order[-2:]) == {"bma", "bma_corrected"}
    st = load_study("default")
    assert [st.mixers[j].key for j in _start_order(st.mixers)] == [
        "gp_dirichlet_spread", "glm_dirichlet_spread", "dirichlet_spread", "linear_spread", "bma",
    ]  # fmt: skip


def test_workers_take_the_parents_device_count():
    """A worker of ``jobs > 1`` gets the parent's number of CPU devices, not its own guess:
    ChEES-HMC's draws depend on it, and must be those of ``jobs=1``."""
    import subprocess
    import sys

    probe = (
        "import os, queue\n"
        "os.sched_getaffinity = lambda pid: {0, 1, 2, 3}\n"
        "import lbmm.run, jax\n"
        "lbmm.run._worker_init(queue.Queue(), None, 1)\n"
        "print(len(jax.devices('cpu')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "1"
