"""Study grids (lbmm.grid): cells from axes, scaled priors, and the grid run on Dask — a
LocalCluster, an external scheduler with two worker processes (identical results table), and
a worker killed mid-cell."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from lbmm.data import make_folds
from lbmm.grid import (
    WORKER_ENV,
    GridError,
    grid_from_dict,
    load_grid,
    load_grid_result,
    run_grid,
)
from lbmm.run import build_dataset
from lbmm.study import load_study, parse_prior, scale_prior

# tiny fits: the grid machinery is under test here, not convergence
TINY = {"num_chains": 2, "num_warmup": 100, "num_samples": 100}


def _grid(axes, **base):
    return {
        "name": "t",
        "study": "default",
        "base": {"mixers": ["linear_spread"], "sampling": TINY, **base},
        "axes": axes,
    }


# ---------------------------------------------------------------------- priors


@pytest.mark.parametrize(
    "text, positive",
    [
        ("HalfNormal(2.0)", True),
        ("HalfCauchy(0.5)", True),
        ("Exponential(3.0)", True),
        ("Gamma(5.0, 10.0)", True),
        ("InverseGamma(3.0, 2.0)", True),
        ("LogNormal(0.3, 0.7)", True),
        ("Normal(1.0, 2.0)", False),
        ("Cauchy(-1.0, 0.5)", False),
        ("Laplace(0.0, 1.5)", False),
        ("StudentT(4.0, 1.0, 2.0)", False),
    ],
)
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_scaled_prior_is_the_law_of_c_theta(text, positive, c):
    """Change of variables: θ' = cθ (positive families) or loc + c(θ − loc) has density
    p(θ)/c at the image of θ; checked at several points (exact, no Monte Carlo)."""
    d = parse_prior(text)
    s = parse_prior(scale_prior(text, c))
    loc = 0.0 if positive else float(np.asarray(d.loc))
    x = np.array([0.1, 0.7, 1.3, 2.9]) if positive else np.array([-2.0, 0.3, 1.1, 4.0])
    image = loc + c * (x - loc)
    np.testing.assert_allclose(
        np.asarray(s.log_prob(image)), np.asarray(d.log_prob(x)) - math.log(c), rtol=1e-10
    )


def test_unscalable_prior_is_left_and_bad_scale_refused():
    assert scale_prior("Uniform(0.0, 1.0)", 2.0) is None
    with pytest.raises(ValueError, match="positive"):
        scale_prior("Gamma(5, 10)", -1.0)


# ---------------------------------------------------------------------- cells


def test_axes_make_the_product_of_cells():
    g = grid_from_dict(_grid({"seed": [0, 1, 2], "prior_scale": [0.5, 2.0]}))
    assert len(g.cells) == 6 and len({c.id for c in g.cells}) == 6
    by = {(c.axes["seed"], c.axes["prior_scale"]): c for c in g.cells}
    cell = by[("2", "0.5")]
    entry = cell.study["mixers"][0]
    assert cell.study["seed"] == 2 and entry["seed"] == 2
    # σ ~ Gamma(5, 10) by default: half as wide is Gamma(5, 20); U(0, 1) weights are kept
    assert parse_prior(entry["priors"]["sigma"]).rate == pytest.approx(20.0)
    assert "weights" not in entry["priors"]
    assert entry["sampling"]["num_samples"] == TINY["num_samples"]


def test_models_axis_every_subset_of_a_size():
    ds = build_dataset(load_study("default"))
    g = grid_from_dict(_grid({"models": {"size": 2}}))
    n = len(ds.models)
    assert len(g.cells) == n * (n - 1) // 2
    chosen = {tuple(c.study["data"]["models"]) for c in g.cells}
    assert all(len(m) == 2 and set(m) <= set(ds.models) for m in chosen)


def test_fold_axis_trains_on_the_fold_and_tests_on_its_held_out_nuclei():
    st = load_study("default")
    ds = build_dataset(st)
    g = grid_from_dict(_grid({"fold": ["regions"]}))
    folds = make_folds(ds, "regions")
    assert [c.axes["fold"] for c in g.cells] == [f.name for f in folds]
    for cell, fold in zip(g.cells, folds, strict=True):
        cs = build_dataset(load_study_from(cell))
        assert sorted(cs.labels[i] for i in cs.split_indices("test")) == sorted(
            ds.labels[i] for i in fold.held
        )
        assert sorted(cs.labels[i] for i in cs.split_indices("train")) == sorted(
            ds.labels[i] for i in fold.train
        )


def load_study_from(cell):
    from lbmm.study import study_from_dict

    return study_from_dict(cell.study)


def test_option_and_sampling_axes():
    g = grid_from_dict(
        _grid({"options.noise": ["constant", "spread"], "sampling.target_accept": [0.9]})
    )
    noises = [c.study["mixers"][0]["options"]["noise"] for c in g.cells]
    assert noises == ["constant", "spread"]
    assert all(c.study["mixers"][0]["sampling"]["target_accept"] == 0.9 for c in g.cells)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"axes": {"seeds": [0, 1]}}, r"axes\.seeds is not an axis"),
        ({"axes": {"models": [["DUZU", "FRDM2O12"]]}}, r"axes\.models names no model 'FRDM2O12'"),
        ({"axes": {"models": {"size": 99}}}, r"axes\.models\.size must be an integer"),
        ({"axes": {"seed": [0, 0]}}, r"axes\.seed repeats a value"),
        ({"axes": {"seed": []}}, r"axes\.seed must be a non-empty list"),
        ({"axes": {"prior_scale": [0.0]}}, r"axes\.prior_scale must hold positive"),
        ({"axes": {"mixers": ["linera"]}}, r"axes\.mixers names no entry 'linera'"),
        ({"axes": {"options.noize": ["spread"]}}, r"axes\.options\.noize is not an option"),
        ({"axes": {"fold": ["neutron_poor"]}}, r"axes\.fold names no fold kind"),
        ({"axes": {}}, r"axes must be a table with at least one axis"),
        ({"outptu": "x"}, r"outptu is not a grid setting"),
        ({"base": {"mixer": ["linear"]}}, r"base\.mixer is not known"),
        ({"axes": {"sampling.num_samples": [1]}}, r"cell sampling\.num_samples=1"),
    ],
)
def test_bad_grids_are_refused_naming_the_key(change, match):
    spec = _grid({"seed": [0]})
    spec.update(change)
    with pytest.raises(GridError, match=match):
        grid_from_dict(spec)


def test_prior_scale_applies_after_the_other_axes():
    """Whatever the axes' order, prior_scale scales the priors the other axes chose."""
    for axes in (
        {"prior_scale": [2.0], "priors.sigma": ["Gamma(5.0, 20.0)"]},
        {"priors.sigma": ["Gamma(5.0, 20.0)"], "prior_scale": [2.0]},
    ):
        (cell,) = grid_from_dict(_grid(axes)).cells
        assert parse_prior(cell.study["mixers"][0]["priors"]["sigma"]).rate == pytest.approx(10)
    spec = _grid({"prior_scale": [2.0], "options.noise": ["constant"]})
    (cell,) = grid_from_dict(spec).cells  # the spread prior of the base entry is not kept
    assert set(cell.study["mixers"][0]["priors"]) == {"sigma"}


def test_fold_axis_and_validation_folds_do_not_mix():
    with pytest.raises(GridError, match=r"base\.folds"):
        grid_from_dict(_grid({"fold": ["neutron_rich"]}, folds=["neutron_rich"]))


def test_a_folder_another_grid_is_writing_is_refused(tmp_path):
    from lbmm.grid import _locked

    out = tmp_path / "g"
    out.mkdir()
    with _locked(out), pytest.raises(GridError, match="another lbmm grid is writing"):
        run_grid(grid_from_dict(_grid({"seed": [0]})), output=out)


def test_grid_file_errors_name_the_file(tmp_path):
    with pytest.raises(GridError, match="no such grid file"):
        load_grid(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = 'x'\n[axes\n")
    with pytest.raises(GridError, match=r"bad\.toml: not a readable TOML"):
        load_grid(bad)


# ---------------------------------------------------------------------- on Dask


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jaxcache")


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory, cache):
    """4 cells (2 seeds × 2 prior scales) on a 2-worker LocalCluster."""
    out = tmp_path_factory.mktemp("grid") / "local"
    spec = _grid({"seed": [0, 1], "prior_scale": [0.5, 2.0]})
    lines = []
    res = run_grid(grid_from_dict(spec), output=out, n_workers=2, cache_dir=cache,
                   progress=lines.append)  # fmt: skip
    return spec, res, lines


def test_local_cluster_grid_writes_every_cell(local_grid):
    _, res, lines = local_grid
    man = res.manifest
    assert man["engine"]["cluster"] == "LocalCluster" and man["engine"]["workers"] == 2
    assert {c["status"] for c in man["cells"].values()} == {"ran"}
    table = pd.read_csv(res.path / "results.csv", dtype={"cell": str})
    assert len(table) == 4 and set(table["split"]) == {"test"}
    assert table[["rms", "crps", "ecp_mean_abs", "rhat_max"]].notna().all().all()
    for cid in man["cells"]:
        run_man = json.loads((res.path / "cells" / cid / "manifest.json").read_text())
        assert run_man["grid"]["cell"] == cid and run_man["complete"] is True
        st = run_man["study"]
        row = table[table["cell"] == cid].iloc[0]
        assert st["seed"] == int(row["seed"])
    # the two prior scales gave different σ priors, and so (the same seed) other draws
    a = table[table["seed"] == 0].sort_values("prior_scale")
    assert a["rms"].iloc[0] != a["rms"].iloc[1]
    assert (res.path / "report.html").is_file() and (res.path / "figures" / "rms.png").is_file()
    assert not [p for p in (res.path / "cells").iterdir() if p.name.startswith(".")]
    assert any(line.startswith("[4/4] cell") for line in lines)


def test_a_finished_grid_is_resumed_without_work(local_grid, cache):
    spec, res, _ = local_grid
    before = (res.path / "results.csv").read_text()
    again = run_grid(grid_from_dict(spec), output=res.path, n_workers=2, cache_dir=cache)
    assert {c["status"] for c in again.manifest["cells"].values()} == {"skipped"}
    assert again.manifest["engine"] == {}  # no cluster was started
    assert (res.path / "results.csv").read_text() == before
    back = load_grid_result(res.path)  # cell IDs read back as text, not numbers
    assert list(back.results["cell"]) == list(res.results["cell"])


def test_grid_folder_of_another_kind_is_refused(local_grid, tmp_path):
    spec, res, _ = local_grid
    other = dict(spec, name="other")
    with pytest.raises(GridError, match="holds grid 't'"):
        run_grid(grid_from_dict(other), output=res.path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(GridError, match="not an lbmm grid folder"):
        run_grid(grid_from_dict(spec), output=tmp_path / "x")


def _start(cmd, log):
    env = {**os.environ, **WORKER_ENV}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _address(sfile):
    """The scheduler's address once its file is written whole (it is not written
    atomically)."""
    try:
        return json.loads(sfile.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


def _wait(cond, what, limit=600.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def test_external_cluster_gives_the_same_table_and_survives_a_killed_worker(
    local_grid, tmp_path, cache
):
    """A separately started scheduler and two worker processes, reached by address; one
    worker is killed (SIGKILL) while it runs a cell: Dask reschedules the cell, the retry
    clears the partial folder, the grid completes, and its table is the LocalCluster's."""
    from distributed import Client

    spec, res, _ = local_grid
    sfile = tmp_path / "scheduler.json"
    logs = open(tmp_path / "cluster.log", "w")
    dask = [sys.executable, "-m"]
    procs = [_start([*dask, "distributed.cli.dask_scheduler", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sfile)], logs)]  # fmt: skip
    grid = None
    try:
        _wait(lambda: _address(sfile) is not None, "the scheduler file")
        for _ in range(2):
            worker = [*dask, "distributed.cli.dask_worker", "--scheduler-file", str(sfile),
                      "--nthreads", "1", "--no-dashboard"]  # fmt: skip
            procs.append(_start(worker, logs))
        address = _address(sfile)
        client = Client(address, timeout="60s")
        client.wait_for_workers(2, timeout=120)
        gfile = tmp_path / "g.toml"
        from lbmm.study import dumps_toml

        gfile.write_text(dumps_toml(spec))
        out = tmp_path / "ext"
        grid = subprocess.Popen(
            [sys.executable, "-m", "lbmm.cli", "grid", str(gfile), "--out", str(out),
             "--scheduler", address, "--cache-dir", str(cache)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        cells = out / "cells"
        found = {}

        def under_way() -> bool:
            """A cell with a partial folder, and the worker that is running it."""
            if not cells.is_dir():
                return False
            ids = [p.name[1:13] for p in cells.iterdir() if ".partial-" in p.name]
            for w, keys in client.processing().items():
                for cid in ids:
                    if any(k.startswith(f"lbmm-cell-{cid}-") for k in keys):
                        found.update(cell=cid, worker=w)
                        return True
            return False

        _wait(under_way, "a cell under way")
        victim = client.run(os.getpid)[found["worker"]]
        os.kill(victim, signal.SIGKILL)
        text, _ = grid.communicate(timeout=600)
        assert grid.returncode == 0, text
        client.close()
    finally:
        if grid is not None and grid.poll() is None:
            grid.kill()
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        logs.close()
    man = json.loads((out / "manifest.json").read_text())
    assert man["engine"]["cluster"] == "external"
    assert {c["status"] for c in man["cells"].values()} == {"ran"}
    assert all(c["pid"] != victim for c in man["cells"].values() if c["status"] == "ran")
    # the killed cell ran again elsewhere, and that attempt removed the dead one's folder
    assert man["cells"][found["cell"]]["cleared_partials"] >= 1
    assert not [p for p in cells.iterdir() if p.name.startswith(".")]  # nothing half-written
    assert (out / "results.csv").read_text() == (res.path / "results.csv").read_text()
