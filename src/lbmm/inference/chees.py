"""ChEES-HMC: many chains in lock step, for posteriors whose gradient is a matrix product.

BlackJAX's ``chees_adaptation`` tunes one step size, one trajectory length (jittered along a
Halton sequence) and a diagonal mass matrix across an ensemble of chains during warm-up,
maximising the change in the estimator of the expected square (ChEES; Hoffman, Radul &
Sountsov 2021); then every chain moves by dynamic HMC with those settings. All chains take
the same number of leapfrog steps at each iteration, so they run as one vectorized
computation: for LBMM+GPD, whose gradient is a product of the (nuclei × basis) HSGP matrix
with the coefficients, eight chains cost about what two cost one after the other (the
matrix is read once for all of them), where NUTS's trees of different depths make
vectorized chains wait for the deepest. After warm-up the chains are spread over the host's
devices (one per core, :func:`shard_chains`), so the draws of a vectorized batch use every
core; the draws depend on how many devices there are (floating point of another batch
size), not on anything else.

The chains start apart (NumPyro's ``init_to_uniform`` by default), so R-hat keeps its power
to see chains that have not met. As for NUTS (:mod:`.nuts`), after ``num_samples`` draws a
``check`` judges the draws, and while it says no and ``max_samples`` allows, every chain
draws on; the stored draws are thinned by two whenever they exceed ``max_kept`` per chain.
Decisions depend on the draws alone, so the same seed (and device count) gives the same
draws.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from .. import _jax  # noqa: F401  (float64)
from ..data.errors import OptionError
from .nuts import NutsResult, next_target

__all__ = ["CHEES_DEFAULTS", "chain_devices", "check_chees_options", "run_chees", "shard_chains"]

#: Settings of the sampler (``chees`` of :func:`lbmm.inference.fit` and of a study's mixer).
CHEES_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.025,  # Adam's rate for the log trajectory length during warm-up
    "initial_step_size": 0.05,
    "target_accept": 0.651,  # the acceptance rate the step size is tuned to (optimal HMC)
    "max_leapfrog_steps": 1000,
}

#: Iterations per compiled sampling chunk (progress and Ctrl-C between chunks).
CHUNK = 100

Progress = Callable[[Mapping[str, Any]], None]


def check_chees_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The sampler's settings with defaults filled in; a name not in
    :data:`CHEES_DEFAULTS` or a value out of range is refused, naming it."""
    opts = dict(CHEES_DEFAULTS)
    for k, v in (options or {}).items():
        if k not in CHEES_DEFAULTS:
            raise OptionError(
                f"chees: unknown setting {k!r}; expected one of {sorted(CHEES_DEFAULTS)}"
            )
        opts[k] = v
    v = opts["max_leapfrog_steps"]
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
        raise OptionError(f"chees.max_leapfrog_steps: expected an integer >= 1, got {v!r}")
    for k in ("learning_rate", "initial_step_size"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            raise OptionError(f"chees.{k}: expected a positive number, got {v!r}")
    v = opts["target_accept"]
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
        raise OptionError(f"chees.target_accept: expected a number in (0, 1), got {v!r}")
    return opts


def chain_devices(num_chains: int) -> int:
    """How many host devices ``num_chains`` vectorized chains are spread over: the largest
    count of the CPU devices that divides the chains (1 where none above one does, and on an
    accelerator, where the chains stay on the default device)."""
    if jax.default_backend() != "cpu":
        return 1
    n = len(jax.devices())
    return max(d for d in range(1, n + 1) if num_chains % d == 0)


def shard_chains(tree, num_chains: int):
    """Spread the chains (the leading axis of every leaf of length ``num_chains``) over
    :func:`chain_devices` host devices, the rest of the leaves replicated, so that a jitted
    step of the vectorized chains runs on that many cores (``lbmm._jax`` makes one device per
    core); the tree as it is where that count is one."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    k = chain_devices(num_chains)
    if k < 2:
        return tree
    mesh = Mesh(np.array(jax.devices()[:k]), ("chain",))
    split = NamedSharding(mesh, PartitionSpec("chain"))
    whole = NamedSharding(mesh, PartitionSpec())

    def put(a):
        lead = getattr(a, "ndim", 0) > 0 and a.shape[0] == num_chains
        return jax.device_put(a, split if lead else whole)

    return jax.tree.map(put, tree)


def _sample_chunk(kernel, postprocess, unravel):
    """Jitted: ``len(keys)`` iterations of every chain; constrained draws and statistics."""

    def one(states, key):
        keys = jax.random.split(key, states.logdensity.shape[0])
        states, info = jax.vmap(kernel.step)(keys, states)
        z = jax.vmap(lambda v: postprocess(unravel(v)))(states.position)
        stats = {
            "diverging": info.is_divergent,
            "n_steps": info.num_integration_steps,
            "lp": states.logdensity,
            "acceptance_rate": info.acceptance_rate,
        }
        return states, (z, stats)

    return jax.jit(lambda states, keys: jax.lax.scan(one, states, keys))


def run_chees(
    model,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    *,
    key: jax.Array,
    num_warmup: int,
    num_samples: int,
    num_chains: int,
    thinning: int = 1,
    max_samples: int | None = None,
    max_kept: int | None = None,
    check: Callable[[dict, dict], Mapping[str, Any]] | None = None,
    init_strategy=None,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> NutsResult:
    """Sample a NumPyro model with ChEES-HMC, all chains vectorized.

    Parameters are those of :func:`lbmm.inference.nuts.run_nuts` (``init_strategy``: where
    the chains start, NumPyro's ``init_to_uniform`` by default), and ``options``
    (:data:`CHEES_DEFAULTS`). Returns draws (chain, draw, ...) by site, sampler statistics
    (chain, draw) and a record of the run, as :func:`run_nuts` does.
    """
    import blackjax
    import optax
    from jax.flatten_util import ravel_pytree
    from numpyro.infer import init_to_uniform
    from numpyro.infer.util import initialize_model

    opts = check_chees_options(options)
    k_init, k_warm, k_sample = jax.random.split(key, 3)
    t0 = time.perf_counter()
    info = initialize_model(
        jax.random.split(k_init, num_chains), model, model_args=tuple(model_args),
        model_kwargs=dict(model_kwargs), init_strategy=init_strategy or init_to_uniform,
    )  # fmt: skip
    z0 = info.param_info.z
    _, unravel = ravel_pytree(jax.tree.map(lambda a: a[0], z0))
    positions = jax.vmap(lambda z: ravel_pytree(z)[0])(z0)
    potential, postprocess = info.potential_fn, info.postprocess_fn

    def logdensity(v):
        return -potential(unravel(v))

    budget = num_samples if max_samples is None else max(int(max_samples), num_samples)
    total = num_chains * (num_warmup + budget)
    t_init = time.perf_counter() - t0

    t0 = time.perf_counter()
    warm = blackjax.chees_adaptation(
        logdensity, num_chains, target_acceptance_rate=float(opts["target_accept"]),
        max_leapfrog_steps=int(opts["max_leapfrog_steps"]), mass_matrix_estimation="diagonal",
        adaptation_info_fn=_steps_only,
    )  # fmt: skip
    (states, params), winfo = warm.run(
        k_warm, positions, float(opts["initial_step_size"]),
        optax.adam(float(opts["learning_rate"])), num_warmup, max_sampling_steps=budget,
    )  # fmt: skip
    states = jax.block_until_ready(states)
    grads_warmup = int(np.sum(np.asarray(winfo.num_integration_steps)))
    t_warm = time.perf_counter() - t0
    done = num_chains * num_warmup
    if progress is not None:
        progress({"phase": "warmup", "chain": None, "done": done, "total": total,
                  "chains": num_chains})  # fmt: skip

    kernel = blackjax.dynamic_hmc(logdensity, **params)
    chunk = _sample_chunk(kernel, postprocess, unravel)
    # the draws' chains on several cores (1.35x for GPD's draws on two); not the warm-up,
    # whose cross-chain adaptation gained nothing from it (measured, BENCHMARKS.md)
    states = shard_chains(states, num_chains)
    used_devices = len(states.position.sharding.device_set)
    seconds = {"init": t_init, "warmup": t_warm, "sampling": 0.0}
    grads_sampling = 0
    k = int(thinning)
    max_kept = max_kept or max(2 * num_samples // k, 2)
    kept_z: dict[str, np.ndarray] | None = None
    kept_s: dict[str, np.ndarray] | None = None
    drawn, target, checks, it = 0, num_samples - num_samples % k, [], 0
    while True:
        while drawn < target:
            n = min(CHUNK, target - drawn)
            keys = jax.random.split(jax.random.fold_in(k_sample, it), n)
            it += 1
            t1 = time.perf_counter()
            states, (z, stats) = chunk(states, keys)
            z = jax.block_until_ready(z)
            seconds["sampling"] += time.perf_counter() - t1
            stats = {s: np.asarray(v) for s, v in stats.items()}
            grads_sampling += int(stats["n_steps"].sum())
            # iterations drawn + 1, drawn + 2, ...: keep those that are multiples of k
            sel = np.arange(drawn + 1, drawn + n + 1) % k == 0
            new_z = {s: np.swapaxes(np.asarray(v)[sel], 0, 1) for s, v in z.items()}
            new_s = {s: np.swapaxes(v[sel], 0, 1) for s, v in stats.items()}
            kept_z = new_z if kept_z is None else _cat(kept_z, new_z)
            kept_s = new_s if kept_s is None else _cat(kept_s, new_s)
            drawn += n
            done += num_chains * n
            if progress is not None:
                progress({"phase": "sampling", "chain": None, "done": done, "total": total,
                          "chains": num_chains})  # fmt: skip
        while next(iter(kept_s.values())).shape[1] > max_kept:  # thin by two, keep aligned
            kept_z = {s: v[:, 1::2] for s, v in kept_z.items()}
            kept_s = {s: v[:, 1::2] for s, v in kept_s.items()}
            k *= 2
        stats_out = _stats(kept_s, float(params["step_size"]))
        verdict = None
        if check is not None:
            verdict = dict(check(kept_z, stats_out))
            summary = {kk: verdict.get(kk) for kk in ("rhat_max", "ess_bulk_min", "converged")}
            checks.append({"draws_per_chain": drawn, "kept_per_chain": stats_out["lp"].shape[1],
                           "thinning": k, **summary})  # fmt: skip
        if verdict is None or verdict.get("converged") or drawn >= budget:
            break
        target = next_target(drawn, k, num_samples, budget)
        total = max(total, done + num_chains * (target - drawn))
    imm = np.asarray(params["inverse_mass_matrix"])
    record = {
        "num_warmup": num_warmup,
        "draws_per_chain": drawn,
        "kept_per_chain": int(stats_out["lp"].shape[1]),
        "thinning": k,
        "max_samples": budget,
        "extended": drawn > num_samples,
        "checks": checks,
        "grad_evals": grads_warmup + grads_sampling,
        "grad_evals_warmup": grads_warmup,
        "grad_evals_sampling": grads_sampling,
        "seconds": seconds,
        "chain_method": "vectorized",
        "chain_devices": used_devices,
        "step_size": float(params["step_size"]),
        "mean_leapfrog_steps": float(stats_out["n_steps"].mean()),
        "inverse_mass_range": [float(imm.min()), float(imm.max())],
        "chees": opts,
    }
    return NutsResult(kept_z, stats_out, record)


class _WarmupSteps(NamedTuple):
    num_integration_steps: jax.Array


def _steps_only(state, info, adaptation_state) -> _WarmupSteps:
    """What the warm-up keeps per iteration: the leapfrog steps of each chain (gradients)."""
    del state, adaptation_state
    return _WarmupSteps(info.num_integration_steps)


def _cat(a: dict, b: dict) -> dict:
    return {s: np.concatenate([a[s], b[s]], axis=1) for s in a}


def _stats(kept: Mapping[str, np.ndarray], step_size: float) -> dict[str, np.ndarray]:
    steps = kept["n_steps"]
    return {
        "diverging": kept["diverging"],
        "n_steps": steps,
        "step_size": np.full(steps.shape, step_size),
        "lp": kept["lp"],
        "acceptance_rate": kept["acceptance_rate"],
    }
