"""Smoke test of the benchmark harness (``benchmarks/run.py --smoke``): it runs end to end and
writes every field, finite. Nothing is timed here; speed is measured in BENCHMARKS.md.

The harness runs as a subprocess (it must set up JAX's host devices before JAX starts), with
XLA's cheapest CPU optimisation level so that compiling the NUTS loops stays short.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "benchmarks" / "run.py"
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"

LBMM_FIELDS = [
    "time_grad_first_call_s", "time_compile_s", "time_warmup_s", "time_sampling_s",
    "time_total_s", "ess_bulk_min", "ess_tail_min", "hyper_ess_bulk_min", "hyper_ess_tail_min",
    "ess_bulk_per_s", "hyper_ess_bulk_per_s", "ess_bulk_per_s_warmup_sampling",
    "grad_evals_per_s", "train_rms", "test_rms", "sigma_mean",
]  # fmt: skip
GRAD_FIELDS = [
    "first_call_s",
    "median_ms",
    "loop_ms",
    "flops",
    "gflops_achieved",
    "fraction_of_matmul",
]


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


@pytest.fixture(scope="module")
def smoke(massexplorer_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = {**os.environ, "LBMM_DATA_DIR": str(massexplorer_dir)}
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
    r = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--data-dir", str(massexplorer_dir),
         "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| lbmm | GBMM+L |" in r.stdout  # the printed table
    return json.loads(out.read_text())


def test_smoke_mixers_and_fields(smoke):
    assert list(smoke["lbmm"]) == ["linear", "glm_dirichlet"]
    for mixer, r in smoke["lbmm"].items():
        assert r["num_chains"] == 1 and r["num_warmup"] == 20 and r["num_samples"] == 20
        for k in LBMM_FIELDS:
            assert _finite(r[k]), (mixer, k, r[k])
        assert r["rhat_max"] is None  # one chain: R-hat undefined, written as null
        assert isinstance(r["divergences"], int) and r["divergences"] >= 0
        assert r["grad_evals_sampling"] > 0 and r["time_sampling_s"] > 0
        assert "sigma" in r["hyper_vars"]
        assert r["ess_bulk_min"] <= r["hyper_ess_bulk_min"] + 1e-9


def test_smoke_grad_cost_and_machine(smoke):
    assert smoke["matmul"]["gflops_median"] > 0
    (g,) = smoke["grad_cost"]
    assert g["mixer"] == "glm_dirichlet"
    for k in GRAD_FIELDS:
        assert _finite(g[k]) and g[k] > 0, (k, g[k])
    assert smoke["machine"]["cpu_count"] >= 1 and smoke["versions"]["jax"]
    assert "peer" not in smoke and "ratios" not in smoke


def test_gradients_per_effective_draw_table(tmp_path):
    """``benchmarks/grads_per_ess.py`` divides each sampled entry's gradients by its smallest
    bulk ESS, and leaves the closed forms out."""
    run = tmp_path / "run"
    run.mkdir()
    diag = {"grad_evals": 600_000, "ess_bulk_min": 1200.0, "rhat_max": 1.004,
            "sampler": "NUTS", "sampling": {"draws_per_chain": 1000}}  # fmt: skip
    man = {"study": {"name": "toy"}, "mixers": {
        "linear": {"fit_s": 12.5, "seed": 3, "converged": True, "diagnostics": diag},
        "bma": {"fit_s": 1.0, "converged": True, "diagnostics": {"sampler": "closed form"}},
    }}  # fmt: skip
    (run / "manifest.json").write_text(json.dumps(man))
    dens = tmp_path / "density.jsonl"
    line = {"dataset": "toy", "mixer": "dirichlet", "method": "smc", "wall_s": 3.0,
            "grad_evals": 90_000, "ess_bulk_min": 45.0, "rhat_max": 1.2, "converged": False,
            "particles": 250}  # fmt: skip
    dens.write_text(json.dumps(line) + "\n")
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "grads_per_ess.py"),
                          str(run), "--density", str(dens)], capture_output=True, text=True,
                         check=True).stdout.splitlines()  # fmt: skip
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out[2:]]
    assert len(rows) == 2  # BMA has no gradients
    assert rows[0][:2] == ["toy", "linear"] and rows[0][7] == "500" and rows[0][9] == "yes"
    assert rows[1][1] == "dirichlet (density)" and rows[1][7] == "2,000" and rows[1][9] == "no"
