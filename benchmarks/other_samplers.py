"""Samplers lbmm does not ship, on lbmm's own log density: gradients per effective draw and
the bars, beside ``levers.py``'s rows.

Usage::

    python benchmarks/other_samplers.py nutpie --dataset kejzlar2023 --mixer gp_dirichlet \\
        --option gp=hsgp [--adaptation low_rank] [--seed 0] [--draws 1000]
    python benchmarks/other_samplers.py meads --dataset default --mixer gp_dirichlet \\
        --option gp=hsgp --option noise=spread [--chains 32 --warmup 4000 --draws 1000 --thin 4]
    python benchmarks/other_samplers.py pathfinder-chees --dataset default \\
        --mixer gp_dirichlet --option gp=hsgp --option noise=spread [--warmup 400]

- ``nutpie``: nutpie's NUTS and mass-matrix adaptation (``adaptation``: ``diag`` or
  ``low_rank``) through ``nutpie.compiled_pyfunc.from_pyfunc`` with the jitted value and
  gradient of the model's potential; 4 chains × (1000 + ``draws``) on two cores. nutpie is
  not a dependency of lbmm: ``pip install nutpie`` first.
- ``meads``: BlackJAX's ``meads_adaptation`` and generalized HMC (one leapfrog step per
  iteration), ``chains`` vectorized, every ``thin``-th iteration kept.
- ``pathfinder-chees``: each of 8 chains starts at a draw of its own Pathfinder
  approximation (BlackJAX, L-BFGS from NumPyro's uniform start), then ChEES-HMC's warm-up
  (``warmup`` iterations) and draws as in :mod:`lbmm.inference.chees` (chains not sharded).

Chains start where :func:`lbmm.inference.fit` starts them (``init_to_uniform``); the bars
are :func:`lbmm.inference.fit`'s own (the parameters, the predictive mean at the test
nuclei, the log density). One JSON line per run (``--out``, default
``benchmarks/results/other_samplers.jsonl``), with the gradients (every chain's leapfrog
steps, warm-up included; Pathfinder's own not counted), the smallest bulk ESS, the largest
R-hat, gradients per effective draw, and for sites of at most three values per draw their
mean, sd and 5/50/95 % quantiles (to compare with a reference fit).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime

import numpy as np


def _options(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, _, v = item.partition("=")
        out[k.strip()] = v.strip()
    return out


def _setup(a):
    """The model's potential at the training split, chains' uniform starts, and the bars."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import initialize_model

    from lbmm.data import load_dataset
    from lbmm.inference.fit import _make_check
    from lbmm.mixers import get_mixer

    ds = load_dataset(a.dataset, a.data_dir)
    spec = get_mixer(a.mixer)
    train = ds.split("train")
    opts = spec.resolve_options(train, _options(a.option), "mean")
    args = (jnp.asarray(train.F), jnp.asarray(train.x), jnp.asarray(train.y))
    kwargs = {"likelihood_kind": "mean", "priors": None, **opts,
              **spec.fit_arrays(train.x, opts)}  # fmt: skip
    k_init, k_run = jax.random.split(jax.random.PRNGKey(a.seed))
    info = initialize_model(jax.random.split(k_init, a.chains), spec.model, model_args=args,
                            model_kwargs=kwargs, init_strategy=init_to_uniform)  # fmt: skip
    z0 = info.param_info.z
    _, unravel = ravel_pytree(jax.tree.map(lambda v: v[0], z0))
    x0 = jax.vmap(lambda z: ravel_pytree(z)[0])(z0)

    def logdensity(v):
        return -info.potential_fn(unravel(v))

    check = _make_check(a.mixer, ds, "train", "test", opts, "mean", warmup=a.warmup)
    return logdensity, unravel, info.postprocess_fn, x0, check, k_run


def _constrained(postprocess, unravel, x):
    """(chain, draw, dim) unconstrained → constrained draws by site (chain, draw, ...)."""
    import jax
    import jax.numpy as jnp

    nc, nd, dim = x.shape
    z = jax.jit(jax.vmap(lambda v: postprocess(unravel(v))))(jnp.asarray(x.reshape(-1, dim)))
    return {k: np.asarray(v).reshape(nc, nd, *v.shape[1:]) for k, v in z.items()}


def run_nutpie(a, logdensity, unravel, postprocess, x0, key):
    import jax
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    vg = jax.jit(jax.value_and_grad(logdensity))
    x0 = np.asarray(x0)
    ndim = x0.shape[1]

    def make_logp_fn():
        def logp(x, **_):
            v, g = vg(x)
            return float(v), np.asarray(g, dtype=np.float64)

        return logp

    def make_expand_fn(seed1, seed2, chain):
        return lambda x, **_: {"x": np.asarray(x, dtype=np.float64)}

    def start(s):
        return x0[int(s) % len(x0)].copy()

    model = from_pyfunc(ndim, make_logp_fn, make_expand_fn, [np.dtype("float64")], [(ndim,)],
                        ["x"], make_initial_point_fn=start)  # fmt: skip
    t0 = time.perf_counter()
    tr = nutpie.sample(model, draws=a.draws, tune=a.warmup, chains=a.chains, cores=2,
                       seed=a.seed, progress_bar=False, adaptation=a.adaptation,
                       target_accept=a.target_accept)  # fmt: skip
    wall = time.perf_counter() - t0
    x = np.asarray(tr.posterior["x"])
    samples = _constrained(postprocess, unravel, x)
    lp = np.asarray(jax.jit(jax.vmap(logdensity))(x.reshape(-1, ndim))).reshape(x.shape[:2])
    ss = tr.sample_stats
    stats = {"lp": lp, "diverging": ss["diverging"].values, "n_steps": ss["n_steps"].values}
    grads = int(tr.warmup_sample_stats["n_steps"].values.sum() + stats["n_steps"].sum())
    return samples, stats, grads, {"wall_s": round(wall, 1), "adaptation": a.adaptation,
                                   "target_accept": a.target_accept}  # fmt: skip


def run_meads(a, logdensity, unravel, postprocess, x0, key):
    import blackjax
    import jax

    k_warm, k_draw = jax.random.split(key)
    t0 = time.perf_counter()
    warm = blackjax.meads_adaptation(logdensity, a.chains, adaptation_info_fn=lambda *_: None)
    (states, params), _ = warm.run(k_warm, x0, a.warmup)
    states = jax.block_until_ready(states)
    t_warm = time.perf_counter() - t0
    kernel = blackjax.ghmc(logdensity, **params)
    post = jax.vmap(lambda v: postprocess(unravel(v)))

    @jax.jit
    def draws(states, key):
        def keep(st, k):
            def step(st, kk):
                st, info = jax.vmap(kernel.step)(jax.random.split(kk, a.chains), st)
                return st, info.is_divergent

            st, div = jax.lax.scan(step, st, jax.random.split(k, a.thin))
            return st, (post(st.position), st.logdensity, div.any(0))

        return jax.lax.scan(keep, states, jax.random.split(key, a.draws))

    t0 = time.perf_counter()
    _, (z, lp, div) = draws(states, k_draw)
    lp = jax.block_until_ready(lp)
    t_draw = time.perf_counter() - t0
    samples = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in z.items()}
    stats = {"lp": np.asarray(lp).T, "diverging": np.asarray(div).T}
    grads = a.chains * (a.warmup + a.draws * a.thin)
    return samples, stats, grads, {
        "wall_s": round(t_warm + t_draw, 1), "thin": a.thin,
        "step_size": float(params["step_size"]), "alpha": float(params["alpha"]),
        "delta": float(params["delta"]),
    }  # fmt: skip


def run_pathfinder_chees(a, logdensity, unravel, postprocess, x0, key):
    import blackjax
    import jax
    import jax.numpy as jnp
    import optax

    from lbmm.inference.chees import _sample_chunk, _steps_only

    k_pf, k_warm, k_draw = jax.random.split(key, 3)

    @jax.jit
    def start(k, x):
        st, _ = blackjax.vi.pathfinder.approximate(k, logdensity, x, num_samples=50,
                                                   maxiter=a.pathfinder_iter)  # fmt: skip
        out = blackjax.vi.pathfinder.sample(jax.random.fold_in(k, 1), st)
        return out[0] if isinstance(out, tuple) else out

    t0 = time.perf_counter()
    x0 = jnp.stack([start(jax.random.fold_in(k_pf, c), x0[c]) for c in range(a.chains)])
    t_pf = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = blackjax.chees_adaptation(logdensity, a.chains, target_acceptance_rate=0.651,
                                     max_leapfrog_steps=1000, mass_matrix_estimation="diagonal",
                                     adaptation_info_fn=_steps_only)  # fmt: skip
    (states, params), winfo = warm.run(k_warm, x0, 0.05, optax.adam(0.025), a.warmup,
                                       max_sampling_steps=a.draws)  # fmt: skip
    states = jax.block_until_ready(states)
    grads_warm = int(np.sum(np.asarray(winfo.num_integration_steps)))
    kernel = blackjax.dynamic_hmc(logdensity, **params)
    _, (z, st) = _sample_chunk(kernel, postprocess, unravel)(
        states, jax.random.split(k_draw, a.draws)
    )
    z = jax.block_until_ready(z)
    wall = time.perf_counter() - t0
    samples = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in z.items()}
    stats = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in st.items()}
    grads = grads_warm + int(stats["n_steps"].sum())
    return samples, stats, grads, {
        "wall_s": round(t_pf + wall, 1), "pathfinder_s": round(t_pf, 1),
        "pathfinder_iter": a.pathfinder_iter, "step_size": float(params["step_size"]),
        "mean_leapfrog_steps": float(stats["n_steps"].mean()),
    }  # fmt: skip


SAMPLERS = {"nutpie": run_nutpie, "meads": run_meads, "pathfinder-chees": run_pathfinder_chees}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("sampler", choices=sorted(SAMPLERS))
    p.add_argument("--dataset", default="default")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--mixer", default="gp_dirichlet")
    p.add_argument("--option", action="append", default=[], help="mixer option KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=None, help="nutpie 4, meads 32, else 8")
    p.add_argument("--warmup", type=int, default=None, help="nutpie 1000, meads 4000, else 400")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--thin", type=int, default=4, help="meads: iterations per kept draw")
    p.add_argument("--adaptation", default="low_rank", choices=["diag", "low_rank"])
    p.add_argument("--target-accept", type=float, default=0.9, help="nutpie")
    p.add_argument("--pathfinder-iter", type=int, default=200)
    p.add_argument("--out", default="benchmarks/results/other_samplers.jsonl")
    a = p.parse_args(argv)
    a.chains = a.chains or {"nutpie": 4, "meads": 32}.get(a.sampler, 8)
    a.warmup = a.warmup or {"nutpie": 1000, "meads": 4000}.get(a.sampler, 400)

    logdensity, unravel, postprocess, x0, check, key = _setup(a)
    samples, stats, grads, extra = SAMPLERS[a.sampler](a, logdensity, unravel, postprocess,
                                                       x0, key)  # fmt: skip
    d = check(samples, stats)
    small = {}
    for k, v in samples.items():
        if v[0, 0].size <= 3:
            q = np.quantile(v, [0.05, 0.5, 0.95]).round(4).tolist()
            small[k] = {"mean": float(v.mean()), "sd": float(v.std()), "q05_50_95": q}
    row = {
        "sampler": a.sampler, "dataset": a.dataset, "mixer": a.mixer,
        "options": _options(a.option), "seed": a.seed, "chains": a.chains,
        "warmup": a.warmup, "draws": a.draws, **extra, "grad_evals": grads,
        "rhat_max": d["rhat_max"], "ess_bulk_min": d["ess_bulk_min"],
        "converged": bool(d["converged"]),
        "divergences": int(np.asarray(stats["diverging"]).sum()),
        "grads_per_ess": round(grads / d["ess_bulk_min"], 1), "sites": small,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_1min": round(os.getloadavg()[0], 2),
    }  # fmt: skip
    print(json.dumps(row), flush=True)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    main()
