"""Side-by-side benchmarks of lbmm's mixers on kejzlar2023, optionally against the PyMC peer.

Usage::

    python benchmarks/run.py [--peer] [--mixers linear dirichlet glm_dirichlet gp_dirichlet]
        [--num-chains 2 --num-warmup 1000 --num-samples 1000] [--smoke] [--out results.json]

Per mixer (NUTS built exactly as :func:`lbmm.inference.fit` builds it; warm-up and sampling
are timed apart with ``MCMC.warmup`` then ``MCMC.run``):

- wall time split into JAX compilation (tracing, lowering and XLA compilation inside the fit,
  summed from ``jax.monitoring`` events), warm-up and sampling (each without its compilation),
  and the first call of a jitted log-density + gradient (its compile time on its own);
- min bulk and tail ESS and max R-hat over all parameters and over the hyperparameters (all but
  the latent blocks ``gp_coef``, ``gp_z``, ``gamma_aux``, ``exp_aux``); ESS per second of
  sampling; divergences; gradient evaluations per second of sampling (sum of ``num_steps``);
- train and test rms of the posterior-predictive mean (:func:`lbmm.predict.predict`,
  :func:`lbmm.predict.evaluate`).

Cost per gradient (``--grad-mixers``): median steady-state time of one jitted log-density +
gradient, its floating-point operations (XLA cost analysis) and the fraction of this machine's
float64 matrix-multiply rate (1024 × 1024 ``jnp.dot``, same run) that it achieves.

``--peer`` builds the PyMC peer's own venv (``benchmarks/.peer-venv``) from its requirements,
exports the train/test split as the CSVs it reads, runs it on the same mixers with the same
chains/warm-up/draws, and prints the ratios lbmm/PyMC of ESS/s and of the time to a converged
result. ``--peer-mixers`` limits which mixers the peer is run for; the others are quoted from
the peer's stored ``results/*.json`` (labelled "stored").

``--smoke``: 1 chain × (20 + 20), GBMM+L and GLD only, few gradient repetitions.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# isort: off
import lbmm._jax  # noqa: F401  (first: float64, one XLA host device per core)

# isort: on
import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import initialize_model

import lbmm.inference as inference
from lbmm import __version__ as lbmm_version
from lbmm._util import jsonable
from lbmm.data import load_dataset
from lbmm.mixers import get_mixer
from lbmm.predict import evaluate, predict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer as peer_mod  # benchmarks/peer.py

ALL_MIXERS = ("linear", "dirichlet", "glm_dirichlet", "gp_dirichlet")
LABEL = {"linear": "GBMM+L", "dirichlet": "GBMM+D", "glm_dirichlet": "LBMM+GLD",
         "gp_dirichlet": "LBMM+GPD"}  # fmt: skip
# Options and mass matrix per mixer. lbmm's default is a dense mass matrix; for GPD it is
# block-dense over the hyperparameters (the 5400 GP coefficients keep a diagonal).
OPTIONS: dict[str, dict[str, Any]] = {"gp_dirichlet": {"gp": "hsgp", "hsgp_m": [20, 30]}}
DENSE_MASS: dict[str, Any] = {"gp_dirichlet": [("gamma_inf", "eta", "rho_z", "rho_n", "sigma")]}
LATENT = ("gp_coef", "gp_z", "gamma_aux", "exp_aux")
EXTRA_FIELDS = ("diverging", "num_steps", "adapt_state.step_size")
TARGET_ACCEPT = 0.95
RHAT_MAX, ESS_MIN = inference.RHAT_MAX, inference.ESS_MIN
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


# ---------------------------------------------------------------------- clocks and machine


class CompileClock:
    """Seconds JAX spent tracing, lowering and compiling since the last ``reset``."""

    def __init__(self) -> None:
        self.total = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on)

    def _on(self, event: str, duration: float, **_: Any) -> None:
        if event in COMPILE_EVENTS:
            self.total += duration

    def reset(self) -> None:
        self.total = 0.0


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_gib": mem,
        "platform": platform.platform(),
        "jax_devices": [str(d) for d in jax.devices()],
        "loadavg_start": list(os.getloadavg()),
    }


def versions() -> dict[str, str]:
    import jaxlib

    return {"python": platform.python_version(), "lbmm": lbmm_version,
            "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "numpyro": numpyro.__version__, "arviz": az.__version__,
            "numpy": np.__version__}  # fmt: skip


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


# ---------------------------------------------------------------------- the model of a mixer


def model_inputs(ds, mixer: str, options: dict[str, Any]):
    """The model function, positional and keyword arguments ``fit`` gives NumPyro."""
    spec = get_mixer(mixer)
    train = ds.split("train", require_observed=True)
    opts = spec.resolve_options(train, options)
    args = (jnp.asarray(train.F), jnp.asarray(train.x), jnp.asarray(train.y))
    kwargs = {"likelihood_kind": "mean", "priors": None, **opts}
    if spec.precompute:
        kwargs.update(spec.precompute(train.x, opts))
    return spec, opts, args, kwargs


def potential(spec, args, kwargs, seed: int = 0):
    """Potential energy (−log density, unconstrained) and NumPyro's initial point."""
    info = initialize_model(
        jax.random.PRNGKey(seed), spec.model, model_args=args, model_kwargs=kwargs
    )
    return info.potential_fn, info.param_info.z


# ---------------------------------------------------------------------- cost per gradient


def matmul_rate(n: int = 1024, reps: int = 10) -> dict[str, Any]:
    """float64 n × n ``jnp.dot`` throughput (median and best of ``reps``), in GFLOP/s."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(k1, (n, n), dtype=jnp.float64)
    b = jax.random.normal(k2, (n, n), dtype=jnp.float64)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        ts.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {"n": n, "reps": reps, "median_s": statistics.median(ts), "best_s": min(ts),
            "gflops_median": flops / statistics.median(ts) / 1e9,
            "gflops_best": flops / min(ts) / 1e9}  # fmt: skip


def grad_cost(
    ds, mixer: str, options: dict[str, Any], reps: int, loop: int = 100
) -> dict[str, Any]:
    """Cost of one log density + gradient at NumPyro's initial point, and its FLOPs.

    Two timings: ``median_ms``, one jitted call from Python (dispatch included), median of
    ``reps``; and ``loop_ms``, ``loop`` evaluations chained inside one compiled
    ``lax.fori_loop`` (each starts from the previous point, so none can be hoisted), divided by
    ``loop``, median of ``max(3, reps // 20)`` calls: the cost as NUTS pays it, without
    dispatch. FLOPs are XLA's cost analysis of one evaluation.
    """
    from jax.flatten_util import ravel_pytree

    spec, _opts, args, kwargs = model_inputs(ds, mixer, options)
    pot, z = potential(spec, args, kwargs)
    vg = jax.jit(jax.value_and_grad(pot))
    t0 = time.perf_counter()
    jax.block_until_ready(vg(z))
    first = time.perf_counter() - t0
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(vg(z))
        ts.append(time.perf_counter() - t0)
    cost = vg.lower(z).compile().cost_analysis()
    if isinstance(cost, list):  # older JAX: one dict per computation
        cost = cost[0] if cost else {}
    flat, unravel = ravel_pytree(z)
    vg_flat = jax.value_and_grad(lambda f: pot(unravel(f)))

    def body(_, c):
        _v, g = vg_flat(c)
        return c + 1e-30 * g  # the next point depends on this gradient

    chained = jax.jit(lambda f: jax.lax.fori_loop(0, loop, body, f))
    jax.block_until_ready(chained(flat))
    tl = []
    for _ in range(max(3, reps // 20)):
        t0 = time.perf_counter()
        jax.block_until_ready(chained(flat))
        tl.append((time.perf_counter() - t0) / loop)
    med, med_loop = statistics.median(ts), statistics.median(tl)
    flops = float(cost.get("flops", float("nan")))
    return {
        "mixer": mixer,
        "options": {k: v for k, v in options.items()},
        "n_unconstrained": int(flat.size),
        "first_call_s": first,
        "reps": reps,
        "median_ms": med * 1e3,
        "p10_ms": float(np.percentile(ts, 10)) * 1e3,
        "p90_ms": float(np.percentile(ts, 90)) * 1e3,
        "loop": loop,
        "loop_ms": med_loop * 1e3,
        "flops": flops,
        "transcendentals": float(cost.get("transcendentals", float("nan"))),
        "bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
        "gflops_achieved_call": flops / med / 1e9,
        "gflops_achieved": flops / med_loop / 1e9,
    }


# ---------------------------------------------------------------------- one NUTS run


def _ess_stats(post, names: list[str]) -> dict[str, Any]:
    sub = post[names]
    ess_b = az.ess(sub, method="bulk")
    ess_t = az.ess(sub, method="tail")
    rhat = az.rhat(sub) if post.sizes["chain"] > 1 else None

    def red(dsx, fn):
        vals = np.concatenate([np.ravel(dsx[v].values) for v in names])
        vals = vals[np.isfinite(vals)]
        return float(fn(vals)) if vals.size else None

    return {"ess_bulk_min": red(ess_b, np.min), "ess_tail_min": red(ess_t, np.min),
            "rhat_max": red(rhat, np.max) if rhat is not None else None}  # fmt: skip


def fit_run(ds, mixer: str, a: argparse.Namespace, clock: CompileClock) -> dict[str, Any]:
    """One call of :func:`lbmm.inference.fit` as a user makes it (one ``MCMC.run`` for warm-up
    and draws, so the NUTS loop is compiled once): the time to a result, and its quality."""
    options = {**OPTIONS.get(mixer, {}), **a.options.get(mixer, {})}
    clock.reset()
    t0 = time.perf_counter()
    post = inference.fit(
        ds, mixer, num_chains=a.num_chains, num_warmup=a.num_warmup,
        num_samples=a.num_samples, seed=a.seed, options=options,
        dense_mass=DENSE_MASS.get(mixer, True), warn=False,
    )  # fmt: skip
    t_call = time.perf_counter() - t0
    c_fit = clock.total
    d = post.diagnostics
    p = post.idata.posterior.to_dataset()
    names = [v for v in p.data_vars if p[v].dtype.kind == "f"]
    d_all = _ess_stats(p, names)
    d_hyp = _ess_stats(p, [v for v in names if v not in LATENT])
    rms = {s: evaluate(predict(post, s, seed=a.seed + 1))["rms"] for s in ("train", "test")}
    ess_b = d_all["ess_bulk_min"] or 0.0
    conv = d_all["rhat_max"] is not None and d_all["rhat_max"] <= RHAT_MAX and ess_b >= ESS_MIN
    return {
        "fit_wall_s": float(d["wall_s"]),
        "fit_call_s": t_call,
        "fit_compile_s": c_fit,
        "fit_ess_bulk_min": d_all["ess_bulk_min"],
        "fit_ess_tail_min": d_all["ess_tail_min"],
        "fit_rhat_max": d_all["rhat_max"],
        "fit_hyper_ess_bulk_min": d_hyp["ess_bulk_min"],
        "fit_hyper_ess_tail_min": d_hyp["ess_tail_min"],
        "fit_hyper_rhat_max": d_hyp["rhat_max"],
        "fit_divergences": int(d.get("divergences", 0)),
        "fit_grad_evals": int(d.get("grad_evals", 0)),
        "fit_converged": bool(conv),
        "fit_ess_bulk_per_s_total": ess_b / float(d["wall_s"]),
        "fit_train_rms": rms["train"],
        "fit_test_rms": rms["test"],
        "fit_sigma_mean": float(np.mean(p["sigma"].values)),
    }


def bench_mixer(ds, mixer: str, a: argparse.Namespace, clock: CompileClock) -> dict[str, Any]:
    options = {**OPTIONS.get(mixer, {}), **a.options.get(mixer, {})}
    dense = DENSE_MASS.get(mixer, True)
    spec, opts, args, kwargs = model_inputs(ds, mixer, options)
    load0 = os.getloadavg()[0]

    # compile time of the log density + gradient alone (first call of the jitted function)
    pot, z = potential(spec, args, kwargs, a.seed)
    vg = jax.jit(jax.value_and_grad(pot))
    t0 = time.perf_counter()
    jax.block_until_ready(vg(z))
    t_grad_first = time.perf_counter() - t0

    kernel = NUTS(spec.model, target_accept_prob=TARGET_ACCEPT, dense_mass=dense,
                  max_tree_depth=10)  # fmt: skip
    mcmc = MCMC(kernel, num_warmup=a.num_warmup, num_samples=a.num_samples,
                num_chains=a.num_chains, chain_method=inference.DEFAULT_CHAIN_METHOD,
                progress_bar=False)  # fmt: skip
    key = jax.random.PRNGKey(a.seed)
    clock.reset()
    t0 = time.perf_counter()
    mcmc.warmup(key, *args, extra_fields=EXTRA_FIELDS, **kwargs)
    jax.block_until_ready(mcmc.post_warmup_state)
    t_warm = time.perf_counter() - t0
    c_warm = clock.total
    clock.reset()
    t0 = time.perf_counter()
    mcmc.run(jax.random.fold_in(key, 1), *args, extra_fields=EXTRA_FIELDS, **kwargs)
    raw = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    t_samp = time.perf_counter() - t0
    c_samp = clock.total
    load1 = os.getloadavg()[0]

    t0 = time.perf_counter()
    samples = {k: np.asarray(v) for k, v in raw.items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = np.asarray(extra["num_steps"])
    stats = {"diverging": np.asarray(extra["diverging"]), "n_steps": steps,
             "tree_depth": np.floor(np.log2(np.maximum(steps, 1))).astype(int) + 1,
             "step_size": np.asarray(extra["adapt_state.step_size"])}  # fmt: skip
    idata = az.from_dict({"posterior": samples, "sample_stats": stats})
    post = idata.posterior.to_dataset()
    names = [v for v in post.data_vars if post[v].dtype.kind == "f"]
    hyper = [v for v in names if v not in LATENT]
    d_all, d_hyp = _ess_stats(post, names), _ess_stats(post, hyper)
    settings = {"mixer": mixer, "split": "train", "likelihood": "mean", "options": opts,
                "num_chains": a.num_chains, "num_warmup": a.num_warmup,
                "num_samples": a.num_samples, "seed": a.seed}  # fmt: skip
    opts_json = jsonable(opts)
    settings["options"] = opts_json
    posterior = inference.Posterior(mixer, idata, ds, settings, {})
    rms = {s: evaluate(predict(posterior, s, seed=a.seed + 1))["rms"] for s in ("train", "test")}
    t_post = time.perf_counter() - t0

    warm_net = t_warm - c_warm
    samp_net = t_samp - c_samp
    grad_evals = int(steps.sum())
    ess_b = d_all["ess_bulk_min"] or 0.0
    converged = d_all["rhat_max"] is not None and d_all["rhat_max"] <= RHAT_MAX and ess_b >= ESS_MIN
    n_unc = int(sum(np.size(v) for v in jax.tree.leaves(z)))
    return {
        "mixer": mixer,
        "label": LABEL[mixer],
        "options": {k: v for k, v in opts_json.items() if k not in ("x_train",)},
        "dense_mass": dense if isinstance(dense, bool) else [list(b) for b in dense],
        "target_accept": TARGET_ACCEPT,
        "chain_method": inference.DEFAULT_CHAIN_METHOD,
        "num_chains": a.num_chains,
        "num_warmup": a.num_warmup,
        "num_samples": a.num_samples,
        "seed": a.seed,
        "n_unconstrained": n_unc,
        "time_grad_first_call_s": t_grad_first,
        "time_compile_s": c_warm + c_samp,
        "time_compile_in_warmup_s": c_warm,
        "time_compile_in_sampling_s": c_samp,
        "time_warmup_s": warm_net,
        "time_sampling_s": samp_net,
        "time_warmup_wall_s": t_warm,
        "time_sampling_wall_s": t_samp,
        "time_total_s": t_warm + t_samp,
        "time_postprocess_s": t_post,
        "ess_bulk_min": d_all["ess_bulk_min"],
        "ess_tail_min": d_all["ess_tail_min"],
        "rhat_max": d_all["rhat_max"],
        "hyper_vars": hyper,
        "hyper_ess_bulk_min": d_hyp["ess_bulk_min"],
        "hyper_ess_tail_min": d_hyp["ess_tail_min"],
        "hyper_rhat_max": d_hyp["rhat_max"],
        "ess_bulk_per_s": ess_b / samp_net,
        "hyper_ess_bulk_per_s": (d_hyp["ess_bulk_min"] or 0.0) / samp_net,
        "ess_bulk_per_s_warmup_sampling": ess_b / (warm_net + samp_net),
        "ess_bulk_per_s_total": ess_b / (t_warm + t_samp),
        "divergences": int(stats["diverging"].sum()),
        "grad_evals_sampling": grad_evals,
        "grad_evals_per_s": grad_evals / samp_net,
        "mean_tree_depth": float(stats["tree_depth"].mean()),
        "step_size": [float(s) for s in stats["step_size"][:, -1]],
        "sigma_mean": float(samples["sigma"].mean()),
        "train_rms": rms["train"],
        "test_rms": rms["test"],
        "converged": bool(converged),
        "loadavg_1min_before_after": [load0, load1],
    }


# ---------------------------------------------------------------------- the peer


def _peer_converged(r: dict[str, Any]) -> bool:
    return (
        r.get("max_rhat") is not None
        and r["max_rhat"] <= RHAT_MAX
        and (r.get("min_ess_bulk") or 0) >= ESS_MIN
    )


def _peer_row(r: dict[str, Any], source: str) -> dict[str, Any]:
    keys = ["sampler", "chains", "tune", "draws", "seed", "target_accept", "n_free_unconstrained",
            "time_build_s", "time_compile_init_s", "time_sampling_s", "time_pm_sample_total_s",
            "min_ess_bulk", "min_ess_tail", "hyper_min_ess_bulk", "hyper_min_ess_tail",
            "max_rhat", "hyper_max_rhat", "ess_bulk_per_s", "hyper_ess_bulk_per_s",
            "divergences", "mean_tree_depth", "total_grad_evals_draw_phase", "n_maxdepth",
            "train_rms", "test_rms", "sigma_mean", "process_wall_s", "date", "timing_note",
            "hsgp", "command", "file"]  # fmt: skip
    out = {k: r.get(k) for k in keys if k in r}
    out["source"] = source
    out["time_total_s"] = (r.get("time_build_s") or 0.0) + (r.get("time_pm_sample_total_s") or 0.0)
    out["ess_bulk_per_s_total"] = (r.get("min_ess_bulk") or 0.0) / out["time_total_s"]
    out["converged"] = _peer_converged(r)
    return out


def run_peer(ds, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pdir = peer_mod.peer_dir(a.peer_dir)
    res: dict[str, Any] = {"dir": str(pdir), "runs": {}, "stored": {}, "bench": {}, "errors": []}
    if not (pdir / "run.py").is_file():
        res["errors"].append(f"no peer at {pdir}")
        return res
    venv = Path(a.peer_venv)
    py = peer_mod.ensure_venv(pdir, venv)
    res["environment"] = peer_mod.environment(py)
    train = peer_mod.export_split(ds, "train", workdir / "train.csv")
    test = peer_mod.export_split(ds, "test", workdir / "test.csv")
    res["csv"] = {"train": str(train), "test": str(test)}
    stored = peer_mod.stored_results(pdir)
    peer_mixers = a.peer_mixers if a.peer_mixers is not None else a.mixers
    for mixer in a.mixers:
        if mixer in peer_mixers:
            samplers = a.peer_samplers or peer_mod.DEFAULT_SAMPLERS[mixer]
            extra = []
            if mixer == "gp_dirichlet":
                m = {**OPTIONS.get(mixer, {}), **a.options.get(mixer, {})}.get("hsgp_m")
                if m:
                    extra = ["--hsgp-m", str(m[0]), str(m[1])]
            for s in samplers:
                print(f"peer: {peer_mod.PEER_MODEL[mixer]} / {s} ...", flush=True)
                try:
                    r = peer_mod.run_fit(
                        py, pdir, train=train, test=test, mixer=mixer, sampler=s,
                        chains=a.num_chains, tune=a.num_warmup, draws=a.num_samples,
                        out=workdir / f"{peer_mod.PEER_MODEL[mixer]}_{s}.json", extra=extra,
                    )  # fmt: skip
                    res["runs"].setdefault(mixer, {})[s] = _peer_row(r, "run")
                except Exception as e:  # keep going: one failed sampler is a result too
                    res["errors"].append(f"{mixer}/{s}: {e}")
        elif mixer in stored:
            res["stored"][mixer] = {s: _peer_row(r, "stored") for s, r in stored[mixer].items()}
    for mixer in a.peer_bench_mixers:
        extra = []
        if mixer == "gp_dirichlet":
            m = {**OPTIONS.get(mixer, {}), **a.options.get(mixer, {})}.get("hsgp_m")
            extra = ["--hsgp-m", str(m[0]), str(m[1])] if m else []
        for backend in a.peer_bench_backends:
            out = workdir / f"bench_{peer_mod.PEER_MODEL[mixer]}_{backend}.json"
            cmd = [str(py), str(pdir / "run.py"), "--train", str(train), "--test", str(test),
                   "--model", peer_mod.PEER_MODEL[mixer], "--bench", str(a.peer_bench_n),
                   "--bench-backend", backend, "--out", str(out), *extra]  # fmt: skip
            print(f"peer: bench {peer_mod.PEER_MODEL[mixer]} / {backend} ...", flush=True)
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=pdir)
            if r.returncode != 0:
                res["errors"].append(f"bench {mixer}/{backend}: {r.stderr[-1500:]}")
                continue
            b = json.loads(out.read_text())
            res["bench"].setdefault(mixer, {})[backend] = {
                k: b.get(k) for k in ("bench_ms_per_eval", "bench_compile_s", "bench_n_evals",
                                      "n_free_unconstrained", "hsgp", "threads_env")
            }  # fmt: skip
    return res


def ratios(lb: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    """lbmm/PyMC per mixer, against the best converged PyMC sampler (by ESS/s); where none
    converged, against the best unconverged one, flagged."""
    out = {}
    for mixer, r in lb.items():
        rows = {**peer.get("stored", {}).get(mixer, {}), **peer.get("runs", {}).get(mixer, {})}
        if not rows:
            continue
        conv = {s: p for s, p in rows.items() if p["converged"]}
        pool = conv or rows
        best = max(pool, key=lambda s: pool[s].get("ess_bulk_per_s") or 0.0)
        p = pool[best]
        lb_es = r["ess_bulk_per_s_warmup_sampling"]
        # time to a result: the plain fit() call where it was run, else warm-up + sampling
        lb_conv = r.get("fit_converged", r["converged"])
        lb_total = r.get("fit_wall_s", r["time_total_s"])
        lb_es_total = r.get("fit_ess_bulk_per_s_total", r["ess_bulk_per_s_total"])
        out[mixer] = {
            "peer_sampler": best,
            "peer_source": p["source"],
            "peer_converged": p["converged"],
            "peer_settings": f"{p.get('chains')} × ({p.get('tune')} + {p.get('draws')})"
            + (f", HSGP m {p['hsgp']['m']}" if p.get("hsgp") else ""),
            "settings_match": (p.get("chains"), p.get("tune"), p.get("draws"))
            == (r["num_chains"], r["num_warmup"], r["num_samples"])
            and (not p.get("hsgp") or list(p["hsgp"]["m"]) == list(r["options"].get("hsgp_m", []))),
            "any_peer_converged": bool(conv),
            "lbmm_converged": lb_conv,
            "lbmm_time_source": "fit()" if "fit_wall_s" in r else "warm-up + sampling",
            # like the peer's ess_bulk_per_s: min bulk ESS / (tune + draw time)
            "ess_per_s_ratio": lb_es / p["ess_bulk_per_s"] if p.get("ess_bulk_per_s") else None,
            # end to end: min bulk ESS / (build + compile + tune + draws)
            "ess_per_s_total_ratio": lb_es_total / p["ess_bulk_per_s_total"]
            if p.get("ess_bulk_per_s_total")
            else None,
            "lbmm_time_to_converged_s": lb_total if lb_conv else None,
            "peer_time_to_converged_s": p["time_total_s"] if p["converged"] else None,
            "time_to_converged_ratio": lb_total / p["time_total_s"]
            if (lb_conv and p["converged"])
            else None,
        }
    return out


# ---------------------------------------------------------------------- printing


def _f(x, fmt="{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt.format(x)


def print_tables(res: dict[str, Any]) -> None:
    m = res["machine"]
    print(f"\n# {res['date']}  {m['cpu_model']} ({m['cpu_count']} cores), "
          f"load avg at start {m['loadavg_start'][0]:.2f}")  # fmt: skip
    print(
        "\n| side | mixer | sampler | compile (s) | warm-up (s) | sampling (s) | total (s) "
        "| min bulk / tail ESS | hyper bulk / tail ESS | ESS/s (sampling) | ESS/s (warm-up+"
        "sampling) | max R-hat | hyper R-hat | div | grad/s | train rms | test rms |"
    )
    print("|" + "---|" * 17)
    for mixer, r in res["lbmm"].items():
        print(f"| lbmm | {r['label']} | NUTS | {_f(r['time_compile_s'])} | "
              f"{_f(r['time_warmup_s'])} | {_f(r['time_sampling_s'])} | {_f(r['time_total_s'])} | "
              f"{_f(r['ess_bulk_min'], '{:.0f}')} / {_f(r['ess_tail_min'], '{:.0f}')} | "
              f"{_f(r['hyper_ess_bulk_min'], '{:.0f}')} / {_f(r['hyper_ess_tail_min'], '{:.0f}')}"
              f" | {_f(r['ess_bulk_per_s'])} | {_f(r['ess_bulk_per_s_warmup_sampling'])} | "
              f"{_f(r['rhat_max'], '{:.4f}')} | {_f(r['hyper_rhat_max'], '{:.4f}')} | "
              f"{r['divergences']} | {_f(r['grad_evals_per_s'], '{:.0f}')} | "
              f"{_f(r['train_rms'], '{:.3f}')} | {_f(r['test_rms'], '{:.3f}')} |")  # fmt: skip
        pe = res.get("peer", {})
        for src in ("runs", "stored"):
            for s, p in pe.get(src, {}).get(mixer, {}).items():
                tag = "PyMC" if src == "runs" else "PyMC (stored)"
                print(f"| {tag} | {r['label']} | {s} | {_f(p.get('time_compile_init_s'))} | "
                      f"– | {_f(p.get('time_sampling_s'))} (tune+draws) | "
                      f"{_f(p['time_total_s'])} | {_f(p.get('min_ess_bulk'), '{:.0f}')} / "
                      f"{_f(p.get('min_ess_tail'), '{:.0f}')} | "
                      f"{_f(p.get('hyper_min_ess_bulk'), '{:.0f}')} / "
                      f"{_f(p.get('hyper_min_ess_tail'), '{:.0f}')} | – | "
                      f"{_f(p.get('ess_bulk_per_s'))} | {_f(p.get('max_rhat'), '{:.4f}')} | "
                      f"{_f(p.get('hyper_max_rhat'), '{:.4f}')} | {p.get('divergences')} | – | "
                      f"{_f(p.get('train_rms'), '{:.3f}')} | "
                      f"{_f(p.get('test_rms'), '{:.3f}')} |")  # fmt: skip
    fits = {m: r for m, r in res["lbmm"].items() if "fit_wall_s" in r}
    if fits:
        print(
            "\n| lbmm fit() | wall (s) | of which compile (s) | min bulk / tail ESS | hyper bulk "
            "/ tail ESS | max R-hat | div | ESS/s (wall) | converged | train rms | test rms |"
        )
        print("|" + "---|" * 11)
        for r in fits.values():
            print(f"| {r['label']} | {_f(r['fit_wall_s'])} | {_f(r['fit_compile_s'])} | "
                  f"{_f(r['fit_ess_bulk_min'], '{:.0f}')} / {_f(r['fit_ess_tail_min'], '{:.0f}')} "
                  f"| {_f(r['fit_hyper_ess_bulk_min'], '{:.0f}')} / "
                  f"{_f(r['fit_hyper_ess_tail_min'], '{:.0f}')} | "
                  f"{_f(r['fit_rhat_max'], '{:.4f}')} | {r['fit_divergences']} | "
                  f"{_f(r['fit_ess_bulk_per_s_total'])} | {'yes' if r['fit_converged'] else 'no'} "
                  f"| {_f(r['fit_train_rms'], '{:.3f}')} | "
                  f"{_f(r['fit_test_rms'], '{:.3f}')} |")  # fmt: skip
    if res.get("ratios"):
        print(
            "\n| mixer | PyMC sampler | PyMC converged | ESS/s ratio lbmm/PyMC | end-to-end "
            "ESS/s ratio | lbmm time to converged (s) | PyMC time to converged (s) |"
        )
        print("|" + "---|" * 7)
        for mixer, q in res["ratios"].items():
            note = "" if q["settings_match"] else f", {q['peer_settings']}"
            print(f"| {LABEL[mixer]} | {q['peer_sampler']} ({q['peer_source']}{note}) | "
                  f"{'yes' if q['peer_converged'] else 'no'} | {_f(q['ess_per_s_ratio'])} | "
                  f"{_f(q['ess_per_s_total_ratio'])} | {_f(q['lbmm_time_to_converged_s'])} | "
                  f"{_f(q['peer_time_to_converged_s'])} |")  # fmt: skip
    mm = res.get("matmul")
    if mm:
        print(f"\nfloat64 {mm['n']}² matmul: {mm['gflops_median']:.1f} GFLOP/s (median), "
              f"{mm['gflops_best']:.1f} best")  # fmt: skip
        print(
            "\n| mixer | options | unconstrained params | first call (s) | per call (ms) | "
            "in a loop (ms) | MFLOP | GFLOP/s (loop) | fraction of matmul rate |"
        )
        print("|" + "---|" * 9)
        for g in res.get("grad_cost", []):
            print(f"| {LABEL[g['mixer']]} | {json.dumps(g['options'])} | {g['n_unconstrained']} "
                  f"| {_f(g['first_call_s'])} | {_f(g['median_ms'])} | {_f(g['loop_ms'])} | "
                  f"{_f(g['flops'] / 1e6)} | "
                  f"{_f(g['gflops_achieved'])} | {_f(g['fraction_of_matmul'])} |")  # fmt: skip
    pb = res.get("peer", {}).get("bench")
    if pb:
        print("\n| mixer | PyMC back-end | ms per log-density + gradient | compile (s) |")
        print("|---|---|---|---|")
        for mixer, d in pb.items():
            for be, b in d.items():
                print(f"| {LABEL[mixer]} | {be} | {_f(b['bench_ms_per_eval'])} | "
                      f"{_f(b['bench_compile_s'])} |")  # fmt: skip
    for e in res.get("peer", {}).get("errors", []):
        print(f"peer error: {e}")


# ---------------------------------------------------------------------- main


def _parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for it in items:
        lhs, _, val = it.partition("=")
        mixer, _, key = lhs.partition(".")
        if not key or not _:
            raise SystemExit(f"--option wants MIXER.KEY=VALUE, got {it!r}")
        try:
            v = json.loads(val)
        except json.JSONDecodeError:
            v = val
        out.setdefault(mixer, {})[key] = v
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--mixers", nargs="*", choices=ALL_MIXERS, default=None)
    ap.add_argument("--num-chains", type=int, default=2)
    ap.add_argument("--num-warmup", type=int, default=1000)
    ap.add_argument("--num-samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="kejzlar2023")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--option", action="append", default=[], metavar="MIXER.KEY=VALUE",
                    help="mixer option (JSON value), e.g. glm_dirichlet.omega=latent")  # fmt: skip
    ap.add_argument(
        "--grad-mixers",
        nargs="*",
        choices=ALL_MIXERS,
        default=None,
        help="mixers whose cost per gradient is measured (default: the local ones)",
    )
    ap.add_argument(
        "--grad-latent",
        action="store_true",
        help="also measure the cost per gradient with omega=latent (the paper's model)",
    )
    ap.add_argument("--grad-reps", type=int, default=200)
    ap.add_argument("--matmul-n", type=int, default=1024)
    ap.add_argument("--matmul-reps", type=int, default=10)
    ap.add_argument("--peer", action="store_true", help="also run the PyMC peer")
    ap.add_argument("--peer-dir", default=None)
    ap.add_argument("--peer-venv", default=str(peer_mod.DEFAULT_VENV))
    ap.add_argument("--peer-mixers", nargs="*", choices=ALL_MIXERS, default=None,
                    help="mixers the peer is run for (default: all of --mixers); the others "
                         "are quoted from its stored results")  # fmt: skip
    ap.add_argument(
        "--peer-samplers",
        nargs="+",
        choices=("pymc", "nutpie", "numpyro"),
        default=None,
        help="override the peer's samplers (default per mixer)",
    )
    ap.add_argument(
        "--peer-bench-mixers",
        nargs="*",
        choices=ALL_MIXERS,
        default=[],
        help="mixers whose peer cost per gradient is timed (run.py --bench)",
    )
    ap.add_argument("--peer-bench-backends", nargs="+", choices=("c", "numba", "jax"),
                    default=["c", "numba", "jax"])  # fmt: skip
    ap.add_argument("--peer-bench-n", type=int, default=200)
    ap.add_argument("--workdir", default=None, help="peer CSVs and JSONs (default: a temp dir)")
    ap.add_argument(
        "--skip-fit",
        action="store_true",
        help="skip the plain lbmm.inference.fit call (its wall time is the time to a result)",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="1 chain × (20 + 20), GBMM+L and GLD, few repetitions",
    )
    ap.add_argument("--out", default=None, help="write every result as JSON")
    a = ap.parse_args(argv)
    if a.smoke:
        a.num_chains, a.num_warmup, a.num_samples = 1, 20, 20
        a.skip_fit = True
        a.mixers = a.mixers or ["linear", "glm_dirichlet"]
        a.grad_mixers = ["glm_dirichlet"] if a.grad_mixers is None else a.grad_mixers
        a.grad_reps, a.matmul_reps, a.peer_bench_n = 20, 3, 5
    a.mixers = list(ALL_MIXERS) if a.mixers is None else a.mixers
    if a.grad_mixers is None:
        a.grad_mixers = ["glm_dirichlet", "gp_dirichlet"]
    a.options = _parse_options(a.option)
    return a


def _json_default(o: Any) -> Any:
    return o.tolist() if hasattr(o, "tolist") else str(o)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    clock = CompileClock()
    t_start = time.perf_counter()
    res: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["run.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine(),
        "versions": versions(),
        "settings": {k: getattr(a, k) for k in ("dataset", "num_chains", "num_warmup",
                                                "num_samples", "seed", "smoke", "mixers")},
        "lbmm": {},
    }  # fmt: skip
    ds = load_dataset(a.dataset, a.data_dir)
    for mixer in a.mixers:
        print(f"lbmm: {mixer} ...", flush=True)
        f = {} if a.skip_fit else fit_run(ds, mixer, a, clock)
        if f:
            print(json.dumps({k: f[k] for k in ("fit_wall_s", "fit_compile_s", "fit_rhat_max",
                                                "fit_ess_bulk_min")}), flush=True)  # fmt: skip
        r = bench_mixer(ds, mixer, a, clock)
        r.update(f)
        res["lbmm"][mixer] = r
        print(json.dumps({k: r[k] for k in ("time_compile_s", "time_warmup_s", "time_sampling_s",
                                            "ess_bulk_min", "rhat_max", "divergences")}),
              flush=True)  # fmt: skip

    if a.grad_mixers:
        res["matmul"] = matmul_rate(a.matmul_n, a.matmul_reps)
        res["grad_cost"] = []
        for mixer in a.grad_mixers:
            opts = {**OPTIONS.get(mixer, {}), **a.options.get(mixer, {})}
            variants = [opts]
            if a.grad_latent and get_mixer(mixer).local and opts.get("omega") != "latent":
                variants.append({**opts, "omega": "latent"})
            for o in variants:
                res["grad_cost"].append(grad_cost(ds, mixer, o, a.grad_reps))
        res["matmul_after"] = matmul_rate(a.matmul_n, a.matmul_reps)
        rate = max(res["matmul"]["gflops_median"], res["matmul_after"]["gflops_median"])
        for g in res["grad_cost"]:
            g["fraction_of_matmul"] = g["gflops_achieved"] / rate

    if a.peer:
        with tempfile.TemporaryDirectory(prefix="lbmm-peer-") as tmp:
            wd = (Path(a.workdir) if a.workdir else Path(tmp)).resolve()  # peer runs in its dir
            res["peer"] = run_peer(ds, a, wd)
        res["ratios"] = ratios(res["lbmm"], res["peer"])

    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["wall_s"] = time.perf_counter() - t_start
    print_tables(res)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump(
                res, fh, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)
            )
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
