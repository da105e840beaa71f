"""``fit``: one mixer on one split of a dataset → a :class:`~lbmm.inference.Posterior`.

BMA is closed form; every other mixer is sampled by NUTS (:mod:`lbmm.inference.nuts`),
chunk by chunk, for ``num_samples`` draws per chain — or, with ``max_samples``, until the
convergence bars hold on the quantities that matter (the parameters, the predictive mean at
the test nuclei and the log density), within that budget.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_median, init_to_uniform

from .. import _jax  # noqa: F401  (float64, host devices)
from .._util import jsonable
from ..data import Dataset
from ..data.errors import OptionError
from ..mixers import get_mixer
from ..mixers.bma import BMAPrior, bma, bma_posterior_draws
from ..mixers.predictive import predictive_mean
from .chees import check_chees_options, run_chees
from .diagnostics import diagnostics
from .nuts import run_nuts
from .posterior import DIMS, LATENT_SITES, Posterior, make_idata
from .smc import check_smc_options, run_smc

__all__ = [
    "CHAIN_METHODS",
    "DEFAULT_CHAIN_METHOD",
    "INITS",
    "METHODS",
    "BMAPrior",
    "ConvergenceWarning",
    "fit",
    "map_init",
]

INITS = ("uniform", "median", "map")
CHAIN_METHODS = ("sequential", "vectorized")
#: Samplers of :func:`fit`: NUTS (:mod:`.nuts`), adaptive tempered SMC (:mod:`.smc`) or
#: ChEES-HMC with vectorized chains (:mod:`.chees`).
METHODS = ("nuts", "smc", "chees")
_INIT_STRATEGIES = {"uniform": init_to_uniform, "median": init_to_median}

# Measured on the 2-core machine (BENCHMARKS.md, kejzlar2023, 4 × (1000 + 1000)): vectorizing
# the chains of these small global models gave no clear speed-up over running them one after
# another, and for GPD on an idle machine parallel chains took 162 s against 141 s in turn
# (XLA already uses both cores for one chain's products), and vectorized NUTS chains of GPD
# took 297 s against 275 s in turn (each iteration waits for the deepest tree), so chains run
# in turn. Vectorized chains pay with ChEES (method "chees"), whose chains step together.
DEFAULT_CHAIN_METHOD = "sequential"


class ConvergenceWarning(UserWarning):
    """A sampler missed a convergence bar (R-hat, ESS or divergences)."""


def _check_settings(**kw) -> None:
    """Refuse sampler settings that are out of range, naming the setting."""
    ints = {"num_chains": 1, "num_warmup": 0, "num_samples": 2, "thinning": 1,
            "max_tree_depth": 1, "seed": 0}  # fmt: skip
    for name, lo in ints.items():
        v = kw[name]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise OptionError(f"{name}: expected an integer >= {lo}, got {v!r}")
    if kw["thinning"] > kw["num_samples"]:
        raise OptionError(
            f"thinning {kw['thinning']} exceeds num_samples {kw['num_samples']}: no draw kept"
        )
    ms = kw["max_samples"]
    if ms is not None and (isinstance(ms, bool) or not isinstance(ms, int | np.integer)
                           or ms < kw["num_samples"]):  # fmt: skip
        raise OptionError(f"max_samples: expected None or an integer >= num_samples, got {ms!r}")
    ta = kw["target_accept"]
    if isinstance(ta, bool) or not isinstance(ta, int | float) or not 0 < ta < 1:
        raise OptionError(f"target_accept: expected a number in (0, 1), got {ta!r}")
    if kw["init"] not in INITS:
        raise OptionError(f"init: expected one of {list(INITS)}, got {kw['init']!r}")
    if kw["method"] not in METHODS:
        raise OptionError(f"method: expected one of {list(METHODS)}, got {kw['method']!r}")
    if kw["method"] == "smc" and (kw["max_samples"] is not None or kw["thinning"] != 1):
        raise OptionError(
            "method 'smc' keeps every particle and has no draw budget: leave max_samples at "
            f"None and thinning at 1 (got {kw['max_samples']!r}, {kw['thinning']!r})"
        )
    if kw["method"] != "smc" and kw["smc"]:
        raise OptionError(f"smc settings {sorted(kw['smc'])} given, but method is "
                          f"{kw['method']!r}: set method='smc' or drop them")  # fmt: skip
    if kw["method"] != "chees" and kw["chees"]:
        raise OptionError(f"chees settings {sorted(kw['chees'])} given, but method is "
                          f"{kw['method']!r}: set method='chees' or drop them")  # fmt: skip
    if kw["method"] == "chees" and kw["num_warmup"] < 1:
        raise OptionError(
            "num_warmup: method 'chees' tunes its step size, trajectory length "
            f"and mass matrix in the warm-up; expected >= 1, got {kw['num_warmup']}"
        )
    if kw["method"] == "chees" and kw["init"] != "uniform":
        raise OptionError(f"init {kw['init']!r} starts every chain close together; method "
                          "'chees' needs chains that start apart: init 'uniform'")  # fmt: skip
    if kw["chain_method"] not in CHAIN_METHODS:
        raise OptionError(
            f"chain_method: expected one of {list(CHAIN_METHODS)}, got {kw['chain_method']!r}"
        )


def check_priors(spec, priors: Mapping[str, Any] | None, opts: Mapping[str, Any]) -> None:
    """Refuse prior names the mixer (with these options) does not read."""
    known = spec.known_priors(dict(opts))
    unknown = sorted(set(priors or {}) - set(known))
    if unknown:
        raise OptionError(
            f"mixer {spec.name!r}: unknown prior {unknown[0]!r}; its priors are "
            f"{sorted(known) or 'none (closed form)'}"
        )


def fit(
    dataset: Dataset,
    mixer: str = "dirichlet",
    *,
    method: str = "nuts",
    smc: Mapping[str, Any] | None = None,
    chees: Mapping[str, Any] | None = None,
    split: str = "train",
    likelihood: str = "mean",
    priors: Mapping[str, Any] | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    thinning: int = 1,
    max_samples: int | None = None,
    seed: int = 0,
    target_accept: float = 0.95,
    dense_mass: bool | list | None = None,
    max_tree_depth: int = 10,
    init: str = "uniform",
    chain_method: str | None = None,
    progress_bar: bool = False,
    progress: Callable[[Mapping[str, Any]], None] | None = None,
    discrepancy: bool = True,
    evidence_split: str = "evidence",
    check_split: str = "test",
    warn: bool = True,
    options: Mapping[str, Any] | None = None,
    init_params: Mapping[str, Any] | None = None,
) -> Posterior:
    """Fit a mixer to one split of a dataset.

    Parameters
    ----------
    dataset
        The dataset (all splits kept in the result, for prediction and metrics).
    mixer
        A name of :data:`lbmm.mixers.MIXERS`.
    method
        ``"nuts"`` (default) or ``"smc"``: adaptive tempered sequential Monte Carlo
        (:func:`lbmm.inference.smc.run_smc`), for posteriors with separated modes. With
        SMC, ``num_chains`` independent populations of ``num_samples`` particles each are
        the draws; ``num_warmup``, ``target_accept``, ``dense_mass``, ``max_tree_depth``,
        ``init`` and ``chain_method`` are NUTS settings and not used; the estimate of the
        log marginal likelihood is ``diagnostics["log_evidence"]``. ``"chees"``: ChEES-HMC
        (:func:`lbmm.inference.chees.run_chees`), every chain in lock step as one vectorized
        computation with a step size, trajectory length and diagonal mass matrix tuned
        across the chains; cheaper than NUTS where the gradient is a large matrix product
        (LBMM+GPD); ``target_accept``, ``dense_mass``, ``max_tree_depth`` and
        ``chain_method`` are not used (its own target is in ``chees``).
    smc
        SMC settings (:data:`lbmm.inference.smc.SMC_DEFAULTS`; unknown names refused).
    chees
        ChEES settings (:data:`lbmm.inference.chees.CHEES_DEFAULTS`; unknown names refused).
    split
        The training split (BMA uses ``evidence_split`` for its evidences).
    likelihood
        ``"mean"`` (mix predictions) or ``"density"`` (mix densities, σ_k per model).
    priors
        Prior name → NumPyro distribution (names of the mixer's sample sites; an unknown name
        is refused).
    num_samples, thinning
        Draws per chain after warm-up, of which every ``thinning``-th is kept.
    max_samples
        With a value, a draw budget per chain: after ``num_samples`` draws, sampling goes on
        (in steps of ``num_samples / 2``) until the convergence bars hold or the budget is
        spent; the stored draws are thinned by two whenever they exceed twice the first
        ``num_samples / thinning``. ``diagnostics["sampling"]`` records what was done.
    seed
        Seed of the explicit JAX random key; the same seed gives the same draws.
    init
        Where chains start: ``"uniform"`` (uniform in (−2, 2) on the unconstrained scale),
        ``"median"`` (near the prior median) or ``"map"`` (:func:`map_init`: near the best of
        several posterior-mode searches).
    chain_method
        ``"sequential"`` (default, :data:`DEFAULT_CHAIN_METHOD`) or ``"vectorized"``.
    progress_bar, progress
        A progress bar on stderr, or a callback called after every chunk of iterations.
    check_split
        The nuclei whose predictive mean the convergence bars judge (skipped when the
        dataset has no such split).
    init_params
        NUTS: where each chain starts, as unconstrained values by latent site with a
        leading chain axis (e.g. the last draws of an earlier fit: a warm start); replaces
        ``init``.
    options
        Mixer options (e.g. ``{"gp": "hsgp", "noise": "gp"}``); unknown keys are refused.
        The resolved options, data-dependent ones included, are kept in
        ``settings["options"]`` and reused by :func:`lbmm.predict.predict`.

    Returns
    -------
    Posterior

    Raises
    ------
    OptionError
        For an unknown or out-of-range setting, option or prior name.
    DataError
        For a missing split or missing values in it.
    """
    spec = get_mixer(mixer)
    if method == "chees":
        given = [k for k, v in (("chain_method", chain_method), ("dense_mass", dense_mass)) if v]
        if given:
            raise OptionError(f"{given[0]} is a NUTS setting; method 'chees' runs its chains "
                              "vectorized with a diagonal mass matrix")  # fmt: skip
    chain = chain_method or DEFAULT_CHAIN_METHOD
    _check_settings(num_chains=num_chains, num_warmup=num_warmup, num_samples=num_samples,
                    thinning=thinning, max_tree_depth=max_tree_depth, seed=seed,
                    max_samples=max_samples, target_accept=target_accept, init=init,
                    chain_method=chain, method=method, smc=smc, chees=chees)  # fmt: skip
    settings: dict[str, Any] = {
        "mixer": mixer,
        "method": method,
        "split": split,
        "likelihood": likelihood,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "thinning": thinning,
        "max_samples": max_samples,
        "seed": seed,
        "target_accept": target_accept,
        "max_tree_depth": max_tree_depth,
        "init": init,
        "chain_method": chain,
        "priors": {k: repr(v) for k, v in (priors or {}).items()},
    }
    key = jax.random.PRNGKey(seed)
    if spec.model is None:
        if method != "nuts":
            raise OptionError(f"mixer 'bma' is closed form; method {method!r} does not apply")
        return _fit_bma(dataset, spec, key, settings, options, priors, likelihood,
                        discrepancy, evidence_split, num_chains, num_samples)  # fmt: skip
    train = dataset.split(split, require_observed=True)
    if not np.isfinite(train.F).all():
        raise OptionError(f"split {split!r}: some model predictions are missing (NaN in F)")
    opts = spec.resolve_options(train, options, likelihood)
    check_priors(spec, priors, opts)
    settings["options"] = jsonable(opts)
    if dense_mass is None:
        dense_mass = spec.dense_mass(opts) if callable(spec.dense_mass) else spec.dense_mass
    settings["dense_mass"] = repr(dense_mass)
    model_args = (jnp.asarray(train.F), jnp.asarray(train.x), jnp.asarray(train.y))
    model_kwargs = {"likelihood_kind": likelihood, "priors": priors, **opts,
                    **spec.fit_arrays(train.x, opts)}  # fmt: skip
    if method == "chees":
        if init_params is not None:
            raise OptionError("init_params (a warm start) is a NUTS setting; method 'chees' "
                              "starts its chains apart by design")  # fmt: skip
        settings["chees"] = check_chees_options(chees)
        for k in ("target_accept", "max_tree_depth", "chain_method", "dense_mass"):
            settings.pop(k, None)
        return _fit_chees(dataset, mixer, spec, key, settings, model_args, model_kwargs,
                          likelihood, split, check_split, opts, progress, progress_bar,
                          warn)  # fmt: skip
    if method == "smc":
        settings["smc"] = check_smc_options(smc)
        for k in ("num_warmup", "target_accept", "max_tree_depth", "init", "chain_method",
                  "dense_mass", "max_samples", "thinning"):  # fmt: skip
            settings.pop(k, None)
        return _fit_smc(dataset, mixer, spec, key, settings, model_args, model_kwargs,
                        likelihood, split, check_split, opts, num_chains, num_samples,
                        progress, progress_bar, warn)  # fmt: skip
    t0 = time.perf_counter()
    if init_params is not None:
        init_params = {k: jnp.asarray(v) for k, v in init_params.items()}
        settings["init"] = "given"
    elif init == "map":
        key, k_map = jax.random.split(key)
        init_params, map_info = map_init(
            spec.model, k_map, model_args, model_kwargs, num_chains=num_chains
        )
        settings["map_init"] = map_info
    check = _make_check(mixer, dataset, split, check_split, opts, likelihood, warmup=num_warmup)
    bar = _ProgressBar(f"{spec.label}") if progress_bar else None
    try:
        res = run_nuts(
            spec.model,
            model_args,
            model_kwargs,
            key=key,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            thinning=thinning,
            max_samples=max_samples,
            check=check,
            chain_method=chain,
            init_strategy=_INIT_STRATEGIES.get(init, init_to_uniform)
            if init_params is None
            else None,
            init_params=init_params,
            progress=_tee(progress, bar),
            target_accept_prob=target_accept,
            dense_mass=dense_mass,
            max_tree_depth=max_tree_depth,
        )
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    samples = {k: np.asarray(v) for k, v in res.samples.items()}
    mass = "dense" if dense_mass is True else "diag" if not dense_mass else "block-dense"
    return _posterior(dataset, mixer, spec, split, settings, likelihood, samples, res.stats,
                      check, warn, wall_s=wall, grad_evals=res.record["grad_evals"],
                      sampling=res.record, sampler=f"NUTS ({chain}, {mass} mass)")  # fmt: skip


def _posterior(dataset, mixer, spec, split, settings, likelihood, samples, stats, check, warn,
               **diag_extra) -> Posterior:  # fmt: skip
    """The draws of any sampler as a :class:`Posterior`: named dims, the bars judged (once:
    the sampler's last check is reused), ``diag_extra`` added, a warning when a bar fails."""
    dims = dict(DIMS)
    if likelihood == "density":
        dims["sigma"] = ["model"]
    idata = make_idata(samples, dataset, split, stats, dims)
    diag = check(samples, stats, final=True)
    diag.update(diag_extra)
    if warn:
        _warn(diag, mixer, spec.hint(likelihood))
    return Posterior(mixer, idata, dataset, settings, diag)


def _fit_smc(dataset, mixer, spec, key, settings, model_args, model_kwargs, likelihood, split,
             check_split, opts, num_chains, num_samples, progress, progress_bar, warn):  # fmt: skip
    """The SMC branch of :func:`fit`: populations as chains, particles as draws."""
    check = _make_check(mixer, dataset, split, check_split, opts, likelihood, warmup=0)
    bar = _ProgressBar(f"{spec.label} (SMC)") if progress_bar else None
    t0 = time.perf_counter()
    try:
        res = run_smc(spec.model, model_args, model_kwargs, key=key, num_particles=num_samples,
                      num_populations=num_chains, options=settings["smc"],
                      progress=_tee(progress, bar))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    record = {**res.record, "draws_per_chain": num_samples}
    return _posterior(dataset, mixer, spec, split, settings, likelihood, res.samples, res.stats,
                      check, warn, wall_s=wall, grad_evals=record["grad_evals"], sampling=record,
                      log_evidence=record["log_evidence"],
                      log_evidence_sd=record["log_evidence_sd"],
                      sampler="SMC (adaptive tempered, HMC moves)")  # fmt: skip


def _fit_chees(dataset, mixer, spec, key, settings, model_args, model_kwargs, likelihood, split,
               check_split, opts, progress, progress_bar, warn):  # fmt: skip
    """The ChEES branch of :func:`fit`: vectorized chains, draws and bars as for NUTS."""
    s = settings
    check = _make_check(mixer, dataset, split, check_split, opts, likelihood,
                        warmup=s["num_warmup"])  # fmt: skip
    bar = _ProgressBar(f"{spec.label} (ChEES)") if progress_bar else None
    t0 = time.perf_counter()
    try:
        res = run_chees(spec.model, model_args, model_kwargs, key=key,
                        num_warmup=s["num_warmup"], num_samples=s["num_samples"],
                        num_chains=s["num_chains"], thinning=s["thinning"],
                        max_samples=s["max_samples"], check=check,
                        init_strategy=init_to_uniform, options=s["chees"],
                        progress=_tee(progress, bar))  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    return _posterior(dataset, mixer, spec, split, settings, likelihood, res.samples, res.stats,
                      check, warn, wall_s=wall, grad_evals=res.record["grad_evals"],
                      sampling=res.record,
                      sampler="ChEES-HMC (vectorized chains, diagonal mass)")  # fmt: skip


def _make_check(mixer, dataset, split, check_split, opts, likelihood, warmup):
    """The function that judges draws (chain, draw, ...): diagnostics over the parameters,
    the predictive mean at the ``check_split`` nuclei and the log density."""
    tr = dataset.split(split)
    train = (tr.F, tr.x, tr.y)
    has_check = check_split in dataset.splits and len(dataset.split_indices(check_split)) > 0
    te = dataset.split(check_split) if has_check else None

    last: dict[str, Any] = {}

    def check(samples, stats, final: bool = False):
        # the sampler's last check and the fit's final one judge the same draws: once
        seen = last.get("samples", {})
        same = seen.keys() == samples.keys() and all(seen[k] is v for k, v in samples.items())
        if same and np.array_equal(last["lp"], stats["lp"]):
            return dict(last["verdict"])
        derived = {"log_density": stats["lp"]}
        if te is not None:
            nc, nd = stats["lp"].shape
            flat = {k: v.reshape((nc * nd, *v.shape[2:])) for k, v in samples.items()}
            m = predictive_mean(mixer, flat, te.F, te.x, opts, likelihood, train=train)
            derived[f"{check_split}_mean"] = m.reshape(nc, nd, -1)
        verdict = diagnostics(samples, latent=LATENT_SITES, derived=derived, stats=stats)
        last.update(samples=dict(samples), lp=stats["lp"], verdict=verdict)
        return dict(verdict)

    return check


def _fit_bma(dataset, spec, key, settings, options, priors, likelihood, discrepancy,
             evidence_split, num_chains, num_samples) -> Posterior:  # fmt: skip
    if likelihood != "mean":
        raise OptionError(
            f"mixer 'bma' has its own closed-form noise model; likelihood {likelihood!r} "
            "does not apply (leave it at 'mean')"
        )
    spec.resolve_options(dataset, options)  # refuses unknown options
    check_priors(spec, priors, {})
    t0 = time.perf_counter()
    ev = dataset.split(evidence_split, require_observed=True)
    res = bma(ev.F, ev.y, dataset.models, discrepancy=discrepancy, key=key)
    draws = bma_posterior_draws(res, jax.random.fold_in(key, 1), num_chains * num_samples)
    shape = (num_chains, num_samples)
    samples = {
        "component": draws["component"].reshape(shape),
        "delta": draws["delta"].reshape((*shape, -1)),
        "sigma_k": draws["sigma"].reshape((*shape, -1)),
        "weights": np.broadcast_to(draws["weights"], (*shape, len(dataset.models))).copy(),
    }
    sig = np.take_along_axis(samples["sigma_k"], samples["component"][..., None], -1)[..., 0]
    samples["sigma"] = sig
    idata = make_idata(samples, dataset, settings["split"], None)
    settings.update(
        evidence_split=evidence_split,
        fitted_nuclei=[str(s) for s in ev.labels],
        discrepancy=discrepancy,
        bma_prior=vars(res.prior),
        bma_weights={m: res.weights[m].tolist() for m in res.weights},
        bma_log_evidence={m: res.log_evidence[m].tolist() for m in res.log_evidence},
        bma_mc_se=res.mc_se.tolist(),
    )
    diag = {"sampler": "closed form", "converged": True, "problems": [],
            "wall_s": time.perf_counter() - t0}  # fmt: skip
    return Posterior("bma", idata, dataset, settings, diag)


def _warn(diag: Mapping[str, Any], mixer: str, hint: str = "") -> None:
    problems = list(diag.get("problems", []))
    if diag.get("divergences", 0):
        problems.append(f"{diag['divergences']} divergent transitions")
    if problems:
        warnings.warn(
            f"{mixer}: {'; '.join(problems)} — "
            + (hint or "run more warm-up/draws (max_samples) or check the model"),
            ConvergenceWarning,
            stacklevel=3,
        )


def _tee(*fns):
    fns = [f for f in fns if f is not None]
    if not fns:
        return None

    def call(info):
        for f in fns:
            f(info)

    return call


class _ProgressBar:
    """A tqdm bar over every chain's iterations (warm-up and sampling)."""

    def __init__(self, desc: str) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self.bar = None
        self.desc = desc
        self.last = 0

    def __call__(self, info: Mapping[str, Any]) -> None:
        if self.bar is None:
            self.bar = self._tqdm(total=info["total"], desc=self.desc, leave=False)
        self.bar.total = info["total"]
        self.bar.set_postfix_str(
            f"{info['phase']}" + (f", chain {info['chain'] + 1}" if info["chain"] is not None
                                  else ""), refresh=False)  # fmt: skip
        self.bar.update(info["done"] - self.last)
        self.last = info["done"]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def map_init(
    model,
    key: jax.Array,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    *,
    num_chains: int,
    num_starts: int = 8,
    jitter: float = 0.05,
    maxiter: int = 500,
) -> tuple[dict, dict]:
    """Starting points of the chains near the highest posterior mode found.

    ``num_starts`` L-BFGS searches of the log joint density on the unconstrained scale, each
    from a uniform (−2, 2) point; every chain starts at the best optimum plus independent
    N(0, ``jitter``²) noise. Use where a posterior has minor modes, far lower in density, in
    which chains started at random get stuck (measured for the density likelihood of GLD,
    ``docs/mixers.md``); R-hat can then no longer tell whether such modes hold mass, so say so.

    Returns
    -------
    (init_params, info)
        Unconstrained initial values with a leading chain axis (for ``MCMC.run``), and the
        optimum's log density with that of every start (``log_density``, ``starts``).
    """
    import scipy.optimize
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import initialize_model

    info = initialize_model(key, model, model_args=model_args, model_kwargs=dict(model_kwargs))
    flat0, unravel = ravel_pytree(info.param_info.z)
    pot = jax.jit(jax.value_and_grad(lambda v: info.potential_fn(unravel(v))))

    def fun(v):
        val, grad = pot(jnp.asarray(v))
        val = float(val)
        return (val, np.asarray(grad)) if np.isfinite(val) else (1e300, np.zeros_like(v))

    k_start, k_jit = jax.random.split(key)
    starts = np.asarray(jax.random.uniform(k_start, (num_starts, flat0.size), minval=-2, maxval=2))
    found = []
    for x0 in starts:
        res = scipy.optimize.minimize(
            fun, x0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter}
        )
        found.append((float(res.fun), res.x))
    best_val, best = min(found, key=lambda t: t[0])
    noise = jitter * np.asarray(jax.random.normal(k_jit, (num_chains, flat0.size)))
    inits = jax.vmap(unravel)(jnp.asarray(best[None, :] + noise))
    return inits, {"log_density": -best_val, "starts": [-v for v, _ in found]}
