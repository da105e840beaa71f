"""NUTS driven in chunks: interruptible, with progress, run until the bars hold.

NumPyro's NUTS kernel (``init`` / ``sample``, its adaptation and mass matrices) does the
sampling; this module drives it the way BlackJAX drivers do, one compiled chunk of
iterations at a time:

- **interruptible**: control returns to Python after every chunk (about a second of work),
  so Ctrl-C stops a fit within about a second, warm-up included;
- **progress**: a callback after every chunk (phase, chain, iterations done and due);
- **adaptive length**: after ``num_samples`` draws per chain a ``check`` function judges
  the draws; while it says no and the budget (``max_samples`` draws per chain) allows, every
  chain draws more, and the stored draws are thinned by two whenever they exceed
  ``max_kept`` per chain. Decisions depend on the draws alone, never on timing, so the same
  seed gives the same draws.

The chunk is one jitted function of (state, number of iterations, thinning): one compilation
serves every chunk length, every chain and every extension.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import NUTS

from .. import _jax  # noqa: F401

__all__ = ["NutsResult", "next_target", "run_nuts", "split_kwargs"]

#: Iterations one compiled chunk can hold (its draw buffer).
CHUNK_MAX = 256
#: Wall time a chunk aims at (s): short enough for Ctrl-C and progress.
CHUNK_SECONDS = 0.5

Progress = Callable[[Mapping[str, Any]], None]


@dataclass
class NutsResult:
    """Draws (chain, draw, ...) by site, sampler statistics (chain, draw), and a record of
    the run (iterations, thinning, gradients, timings, each check)."""

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict, dict]:
    """(static, arrays): plain values are bound into the model, arrays passed to the
    compiled chunk as arguments (so one compilation serves any data of the same shape)."""
    arrays, static = {}, {}
    for k, v in kwargs.items():
        if isinstance(v, jax.Array | np.ndarray):
            arrays[k] = jnp.asarray(v)
        else:
            static[k] = v
    return static, arrays


def _collect(kernel, state, args, kwargs, vectorized: bool = False) -> dict:
    post_fn = kernel.postprocess_fn(args, kwargs)
    post = jax.vmap(post_fn)(state.z) if vectorized else post_fn(state.z)
    return {
        "z": post,
        "diverging": state.diverging,
        "num_steps": state.num_steps,
        "step_size": state.adapt_state.step_size,
        "potential_energy": state.potential_energy,
        "accept_prob": state.accept_prob,
    }


def _make_chunk(kernel, vectorized: bool = False):
    """The jitted chunk: ``n`` iterations from ``state``, every ``k``-th collected into a
    buffer of :data:`CHUNK_MAX` slots; also the sum of leapfrog steps. ``vectorized``: the
    state holds every chain (a leading chain axis)."""

    def chunk(state, n, k, args, kwargs):
        shapes = jax.eval_shape(lambda s: _collect(kernel, s, args, kwargs, vectorized), state)
        buf = jax.tree.map(lambda a: jnp.zeros((CHUNK_MAX, *a.shape), a.dtype), shapes)

        def body(i, carry):
            st, b, steps = carry
            st = kernel.sample(st, args, kwargs)
            # slot i // k ends holding iteration i = (j + 1) k - 1: every k-th is kept
            vals = _collect(kernel, st, args, kwargs, vectorized)
            b = jax.tree.map(lambda bb, v: bb.at[i // k].set(v), b, vals)
            return st, b, steps + st.num_steps

        # leapfrog steps per chain: a scalar, or (chains,) when the chains are vectorized
        steps0 = jnp.zeros(jnp.shape(state.num_steps), jnp.int64)
        return jax.lax.fori_loop(0, n, body, (state, buf, steps0))

    return jax.jit(chunk)


class _Driver:
    """Runs the chains of one fit chunk by chunk."""

    def __init__(self, kernel, states, args, kwargs, method, progress, total):
        self.kernel, self.states = kernel, states
        self.args, self.kwargs = args, kwargs
        self.method = method
        self.progress = progress
        # vectorized: NumPyro's kernel, initialised with a batch of keys, samples all chains
        self.chunk = _make_chunk(kernel, vectorized=method == "vectorized")
        self.n_iter = 64  # first guess; adapted to CHUNK_SECONDS after each chunk
        self.grads = {"warmup": 0, "sampling": 0}
        self.seconds = {"compile": 0.0, "warmup": 0.0, "sampling": 0.0}
        self.done = 0
        self.total = total
        self.compiled = False

    @property
    def num_chains(self) -> int:
        if self.method == "vectorized":
            return int(jax.tree.leaves(self.states)[0].shape[0])
        return len(self.states)

    def _call(self, state, n, k):
        t0 = time.perf_counter()
        out = self.chunk(state, n, k, self.args, self.kwargs)
        out = jax.block_until_ready(out)
        dt = time.perf_counter() - t0
        if not self.compiled:
            self.compiled = True
            self.seconds["compile"] += dt
            dt = 0.0
        return out, dt

    def advance(self, n_total: int, k: int, phase: str) -> dict | None:
        """Run every chain ``n_total`` iterations (a multiple of ``k``); return the kept
        draws (chain, n_total // k, ...) or None for warm-up."""
        per_chain: list[list] = [[] for _ in range(self.num_chains)]
        left = n_total
        while left > 0:
            n = int(min(left, max(k, (self.n_iter // k) * k), (CHUNK_MAX * k)))
            n = max(k, (n // k) * k)
            if self.method == "vectorized":
                (st, buf, steps), dt = self._call(self.states, n, k)
                self.states = st
                self.grads[phase] += int(np.sum(steps))
                kept = n // k
                for c in range(self.num_chains):
                    per_chain[c].append(
                        jax.tree.map(lambda a, c=c, j=kept: np.asarray(a[:j, c]), buf)
                    )
            else:
                dt = 0.0
                for c in range(self.num_chains):
                    (st, buf, steps), dtc = self._call(self.states[c], n, k)
                    self.states[c] = st
                    self.grads[phase] += int(steps)
                    kept = n // k
                    per_chain[c].append(jax.tree.map(lambda a, j=kept: np.asarray(a[:j]), buf))
                    dt += dtc
                    self._report(phase, c, n)
            self.seconds[phase] += dt
            left -= n
            if dt > 0:  # aim the next chunk at CHUNK_SECONDS (all chains of one chunk)
                per_iter = dt / (n * (1 if self.method == "vectorized" else self.num_chains))
                self.n_iter = int(np.clip(CHUNK_SECONDS / max(per_iter, 1e-6), 1, CHUNK_MAX))
            if self.method == "vectorized":
                self._report(phase, None, n * self.num_chains)
        if phase == "warmup":
            return None
        return {
            c: jax.tree.map(lambda *a: np.concatenate(a, axis=0), *parts)
            for c, parts in enumerate(per_chain)
        }

    def _report(self, phase, chain, n):
        self.done += n
        if self.progress is not None:
            self.progress({"phase": phase, "chain": chain, "done": self.done,
                           "total": self.total, "chains": self.num_chains})  # fmt: skip


def next_target(drawn: int, thinning: int, num_samples: int, budget: int) -> int:
    """Draws per chain to reach before the next check, after ``drawn`` did not converge: half
    the first draws further (at least two kept draws), up to ``budget``, and a multiple of
    the current ``thinning`` further on (the kept draws sit at its multiples; once thinned,
    that can pass the budget by less than one thinning step). The draw budget of NUTS and
    of ChEES-HMC (:mod:`.chees`) alike."""
    k = int(thinning)
    target = min(budget, drawn + max(num_samples // 2, 2 * k))
    return drawn + max(k, ((target - drawn) // k) * k)


def _stack(chains: dict[int, dict]) -> dict:
    return jax.tree.map(lambda *a: np.stack(a, axis=0), *[chains[c] for c in sorted(chains)])


def run_nuts(
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
    chain_method: str = "sequential",
    init_strategy=None,
    init_params=None,
    progress: Progress | None = None,
    **nuts_kwargs,
) -> NutsResult:
    """Sample a NumPyro model with NUTS, chunk by chunk.

    Parameters
    ----------
    model, model_args, model_kwargs
        The NumPyro model and its arguments (arrays among the keywords are passed to the
        compiled chunk; the rest are bound into the model).
    key
        The random key (explicit; the same key gives the same draws).
    num_warmup, num_samples, num_chains, thinning
        Warm-up iterations, draws per chain, chains, keep every ``thinning``-th draw.
    max_samples
        Draw budget per chain for the adaptive length (None: exactly ``num_samples``).
    max_kept
        Stored draws per chain before they are thinned by two (default
        ``2 * num_samples // thinning``).
    check
        ``check(samples, stats) -> dict`` with a ``converged`` entry: judged after
        ``num_samples`` draws and after each extension.
    chain_method
        ``"sequential"`` (chains in turn) or ``"vectorized"`` (one vmapped chunk).
    init_strategy, init_params
        NumPyro's init strategy, or unconstrained starting points with a leading chain axis.
    progress
        Called after every chunk with a dict: phase, chain, done, total, chains.
    **nuts_kwargs
        Passed to :class:`numpyro.infer.NUTS` (``target_accept_prob``, ``dense_mass``,
        ``max_tree_depth``).
    """
    if chain_method not in ("sequential", "vectorized"):
        raise ValueError(f"chain_method {chain_method!r}: expected 'sequential' or 'vectorized'")
    static, arrays = split_kwargs(model_kwargs)
    bound = functools.partial(model, **static)
    kw = {"init_strategy": init_strategy} if init_strategy is not None else {}
    kernel = NUTS(bound, **kw, **nuts_kwargs)
    args = tuple(jnp.asarray(a) for a in model_args)
    keys = jax.random.split(key, num_chains)
    t0 = time.perf_counter()
    if chain_method == "sequential":
        states = []
        for c in range(num_chains):
            ip = None if init_params is None else jax.tree.map(lambda a, c=c: a[c], init_params)
            st = kernel.init(keys[c], num_warmup, ip, model_args=args, model_kwargs=arrays)
            states.append(st)
    else:  # NumPyro vmaps init and sample over a batch of keys
        states = kernel.init(keys, num_warmup, init_params, model_args=args, model_kwargs=arrays)
    states = jax.block_until_ready(states)
    t_init = time.perf_counter() - t0
    budget = num_samples if max_samples is None else max(int(max_samples), num_samples)
    total = num_chains * (num_warmup + budget)
    drv = _Driver(kernel, states, args, arrays, chain_method, progress, total)
    drv.seconds["init"] = t_init
    if num_warmup:
        drv.advance(num_warmup, 1, "warmup")
    k = int(thinning)
    max_kept = max_kept or max(2 * num_samples // k, 2)
    drawn = 0
    kept: dict[int, dict] | None = None
    checks = []
    target = num_samples - num_samples % k
    while True:
        step = target - drawn
        new = drv.advance(step, k, "sampling")
        drawn = target
        kept = new if kept is None else {
            c: jax.tree.map(lambda a, b: np.concatenate([a, b], axis=0), kept[c], new[c])
            for c in kept
        }  # fmt: skip
        while jax.tree.leaves(kept[0])[0].shape[0] > max_kept:  # thin by two, keep aligned
            kept = {c: jax.tree.map(lambda a: a[1::2], kept[c]) for c in kept}
            k *= 2
        stacked = _stack(kept)
        verdict = None
        if check is not None:
            verdict = dict(check(stacked["z"], _stats(stacked)))
            summary = {kk: verdict.get(kk) for kk in ("rhat_max", "ess_bulk_min", "converged")}
            checks.append(
                {"draws_per_chain": drawn, "kept_per_chain": _n(stacked), "thinning": k, **summary}
            )
        if verdict is None or verdict.get("converged") or drawn >= budget:
            break
        target = next_target(drawn, k, num_samples, budget)
        if drv.progress is not None:
            drv.total = max(drv.total, drv.done + num_chains * (target - drawn))
    record = {
        "num_warmup": num_warmup,
        "draws_per_chain": drawn,
        "kept_per_chain": _n(stacked),
        "thinning": k,
        "max_samples": budget,
        "extended": drawn > num_samples,
        "checks": checks,
        "grad_evals": drv.grads["warmup"] + drv.grads["sampling"],
        "grad_evals_warmup": drv.grads["warmup"],
        "grad_evals_sampling": drv.grads["sampling"],
        "seconds": dict(drv.seconds),
        "chain_method": chain_method,
    }
    return NutsResult(stacked["z"], _stats(stacked), record)


def _n(stacked) -> int:
    return int(jax.tree.leaves(stacked["z"])[0].shape[1])


def _stats(stacked) -> dict[str, np.ndarray]:
    steps = np.asarray(stacked["num_steps"])
    return {
        "diverging": np.asarray(stacked["diverging"]),
        "n_steps": steps,
        "tree_depth": np.floor(np.log2(np.maximum(steps, 1))).astype(int) + 1,
        "step_size": np.asarray(stacked["step_size"]),
        "lp": -np.asarray(stacked["potential_energy"]),
        "acceptance_rate": np.asarray(stacked["accept_prob"]),
    }
