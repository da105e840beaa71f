"""Inference: NUTS through NumPyro (or closed form for BMA) → an immutable :class:`Posterior`.

The global posteriors of nearly collinear models are strongly correlated, so NUTS runs with a
dense mass matrix by default (measured in ``BENCHMARKS.md``). Diagnostics (R-hat, bulk and
tail ESS, divergences, tree depth, step size) are returned as data; a :class:`ConvergenceWarning`
is emitted when R-hat > 1.01, min bulk ESS < 400 or any divergence occurs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from numpyro.infer import MCMC, NUTS, init_to_median, init_to_uniform

from . import _jax  # noqa: F401  (float64, host devices)
from .data import Dataset
from .data.tables import Provenance
from .mixers import get_mixer
from .mixers.bma import BMAPrior, bma, bma_posterior_draws
from .mixers.local import mean_weights

__all__ = [
    "DEFAULT_CHAIN_METHOD",
    "BMAPrior",
    "ConvergenceWarning",
    "Posterior",
    "diagnostics",
    "fit",
    "map_init",
]

INITS = {"uniform": init_to_uniform, "median": init_to_median}
RHAT_MAX = 1.01
ESS_MIN = 400


class ConvergenceWarning(UserWarning):
    """A sampler missed a convergence bar (R-hat, ESS or divergences)."""


@dataclass(frozen=True, eq=False)
class Posterior:
    """The result of a fit: ArviZ ``InferenceData`` plus the dataset and settings behind it.

    Attributes
    ----------
    mixer
        Mixer name (``"linear"``, ``"dirichlet"``, ``"bma"``).
    idata
        ``posterior`` (dims ``chain, draw[, model]``), ``sample_stats`` (NUTS),
        ``observed_data`` and ``constant_data`` (dims ``nucleus, model``, coords Z, N).
    dataset
        The whole dataset the fit was made on (all splits).
    settings
        Everything needed to redo the fit (split, likelihood, chains, draws, seed, ...).
    diagnostics
        R-hat, ESS, divergences, tree depth, step size, timings.
    """

    mixer: str
    idata: az.InferenceData
    dataset: Dataset
    settings: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def models(self) -> tuple[str, ...]:
        return self.dataset.models

    def samples(self, name: str) -> np.ndarray:
        """Draws of one variable with chains flattened: shape (chains·draws, ...)."""
        v = self.idata.posterior[name].values
        return v.reshape((-1, *v.shape[2:]))

    def weights_mean(self) -> dict[str, float]:
        """Posterior mean of the global weights; for a local mixer, of E[ω(x) | α(x)] averaged
        over the nuclei of the training split."""
        if get_mixer(self.mixer).local:
            tr = self.dataset.split(self.settings.get("split", "train"))
            samples = {k: self.samples(k) for k in self.idata.posterior.data_vars}
            w = mean_weights(
                self.mixer, samples, tr.x, self.settings["options"], jax.random.PRNGKey(0)
            )
            return {m: float(v) for m, v in zip(self.models, w.mean(axis=(0, 1)), strict=True)}
        w = self.samples("weights")
        w = w.reshape(w.shape[0], -1, len(self.models)).mean(axis=(0, 1))
        return {m: float(v) for m, v in zip(self.models, w, strict=True)}

    def save(self, path: str | Path) -> Path:
        """Write the posterior to NetCDF atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        idata = self.idata.copy()
        meta = {
            "mixer": self.mixer,
            "settings": dict(self.settings),
            "diagnostics": _jsonable(dict(self.diagnostics)),
            "dataset": {
                "name": self.dataset.name,
                "observable": self.dataset.observable,
                "models": list(self.dataset.models),
                "provenance": {k: vars(p) for k, p in self.dataset.provenance.items()},
                "notes": list(self.dataset.notes),
                "splits": sorted(self.dataset.splits),
            },
        }
        idata.posterior.attrs["lbmm"] = json.dumps(meta)
        fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=path.parent)
        os.close(fd)
        try:
            idata.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Read a posterior written by :meth:`save`."""
        idata = az.from_netcdf(str(path), engine="h5netcdf")
        idata.load()  # read everything now, so the file is not held open
        meta = json.loads(idata.posterior.attrs["lbmm"])
        cd = idata.constant_data
        dmeta = meta["dataset"]
        splits = {s: np.flatnonzero(cd[f"in_{s}"].values) for s in dmeta["splits"]}
        ds = Dataset.from_arrays(
            dmeta["name"],
            dmeta["observable"],
            tuple(dmeta["models"]),
            cd["Z"].values,
            cd["N"].values,
            cd["y_all"].values,
            cd["F"].values,
            y_uncertainty=cd["y_uncertainty"].values,
            y_estimated=cd["y_estimated"].values.astype(bool),
            splits=splits,
            provenance={k: Provenance(**v) for k, v in dmeta["provenance"].items()},
            notes=tuple(dmeta["notes"]),
        )
        return cls(meta["mixer"], idata, ds, meta["settings"], meta["diagnostics"])


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _constant_data(ds: Dataset) -> dict[str, xr.DataArray]:
    coords = {"nucleus": list(ds.labels), "model": list(ds.models)}
    out = {
        "F": xr.DataArray(ds.F, dims=("nucleus", "model"), coords=coords),
        "y_all": xr.DataArray(ds.y, dims=("nucleus",), coords={"nucleus": coords["nucleus"]}),
        "y_uncertainty": xr.DataArray(ds.y_uncertainty, dims=("nucleus",)),
        "y_estimated": xr.DataArray(ds.y_estimated.astype(np.int8), dims=("nucleus",)),
        "Z": xr.DataArray(ds.Z, dims=("nucleus",)),
        "N": xr.DataArray(ds.N, dims=("nucleus",)),
    }
    for s, idx in ds.splits.items():
        mask = np.zeros(len(ds), np.int8)
        mask[idx] = 1
        out[f"in_{s}"] = xr.DataArray(mask, dims=("nucleus",))
    return out


def _make_idata(
    samples: dict[str, np.ndarray],
    ds: Dataset,
    split: str,
    dims: dict[str, list[str]],
    sample_stats: dict[str, np.ndarray] | None,
) -> az.InferenceData:
    idx = ds.split_indices(split)
    labels = np.asarray(ds.labels)
    # a site name can have different shapes in different mixers (gamma_aux: (p,) or (n, p))
    dims = {k: d for k, d in dims.items() if k in samples and samples[k].ndim == len(d) + 2}
    idata = az.from_dict(
        posterior=samples,
        sample_stats=sample_stats or None,
        observed_data={"y": ds.y[idx]},
        coords={"model": list(ds.models), "obs_nucleus": labels[idx].tolist()},
        dims={**dims, "y": ["obs_nucleus"]},
    )
    cd = xr.Dataset(_constant_data(ds))
    cd = cd.assign_coords(Z=("nucleus", ds.Z), N=("nucleus", ds.N))
    idata.add_groups({"constant_data": cd})
    return idata


def diagnostics(idata: az.InferenceData, var_names: list[str] | None = None) -> dict[str, Any]:
    """Convergence diagnostics as data: max R-hat, min bulk/tail ESS, divergences, tree depth,
    step size (NaN where not applicable)."""
    post = idata.posterior
    names = var_names or [v for v in post.data_vars if post[v].dtype.kind == "f"]
    rhat = az.rhat(post, var_names=names)
    ess_b = az.ess(post, var_names=names, method="bulk")
    ess_t = az.ess(post, var_names=names, method="tail")

    def _reduce(ds: xr.Dataset, fn) -> float:
        vals = [float(fn(ds[v].values)) for v in ds.data_vars if np.isfinite(ds[v].values).any()]
        return float(fn(np.array(vals))) if vals else float("nan")

    out: dict[str, Any] = {
        "rhat_max": _reduce(rhat, np.nanmax),
        "ess_bulk_min": _reduce(ess_b, np.nanmin),
        "ess_tail_min": _reduce(ess_t, np.nanmin),
        "per_variable": {
            v: {
                "rhat_max": float(np.fmax.reduce(rhat[v].values, axis=None)),
                "ess_bulk_min": float(np.fmin.reduce(ess_b[v].values, axis=None)),
            }
            for v in names
        },
    }
    ss = getattr(idata, "sample_stats", None)
    if ss is not None and "diverging" in ss:
        out["divergences"] = int(ss["diverging"].values.sum())
        out["tree_depth_mean"] = float(ss["tree_depth"].values.mean())
        out["tree_depth_max"] = int(ss["tree_depth"].values.max())
        out["step_size"] = [float(s) for s in ss["step_size"].values[:, -1]]
    else:
        out["divergences"] = 0
    return out


#: Latent blocks of the local mixers, left out of their "hyper" diagnostics.
LATENT_SITES = ("gp_coef", "gp_z", "gamma_aux", "exp_aux")


def _local_diagnostics(mixer, idata, dataset, opts, key, split: str = "test") -> dict:
    """The bars the local mixers are judged by: R-hat and bulk ESS over the hyperparameters
    (all but the latent blocks) and over the mean weights ā(x) = E[ω(x) | α(x)] at the
    nuclei of ``split`` (skipped where the dataset has no such split)."""
    post = idata.posterior
    hyper = [v for v in post.data_vars if v not in LATENT_SITES and v != "weights"]
    h = diagnostics(az.InferenceData(posterior=post[hyper]))
    out = {"hyper_rhat_max": h["rhat_max"], "hyper_ess_bulk_min": h["ess_bulk_min"]}
    if split in dataset.splits and len(dataset.split_indices(split)):
        x = dataset.split(split).x
        nc, nd = post.sizes["chain"], post.sizes["draw"]
        flat = {k: post[k].values.reshape((nc * nd, *post[k].shape[2:])) for k in post.data_vars}
        w = mean_weights(mixer, flat, x, opts, jax.random.fold_in(key, 1))
        w = xr.DataArray(w.reshape(nc, nd, *w.shape[1:]), dims=("chain", "draw", "n", "m"))
        ds = xr.Dataset({"w": w})
        out[f"weights_{split}_rhat_max"] = float(np.nanmax(az.rhat(ds)["w"].values))
        out[f"weights_{split}_ess_bulk_min"] = float(
            np.nanmin(az.ess(ds, method="bulk")["w"].values)
        )
    return out


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


def _warn(diag: Mapping[str, Any], mixer: str, hint: str = "") -> None:
    problems = []
    if not diag["rhat_max"] <= RHAT_MAX:
        problems.append(f"max R-hat {diag['rhat_max']:.3f} > {RHAT_MAX}")
    if not diag["ess_bulk_min"] >= ESS_MIN:
        problems.append(f"min bulk ESS {diag['ess_bulk_min']:.0f} < {ESS_MIN}")
    if diag.get("divergences", 0):
        problems.append(f"{diag['divergences']} divergent transitions")
    if problems:
        warnings.warn(
            f"{mixer}: {'; '.join(problems)} — "
            + (hint or "run more warm-up/draws or check the model"),
            ConvergenceWarning,
            stacklevel=3,
        )


# Measured on the 2-core machine (BENCHMARKS.md, kejzlar2023, 4 × (1000 + 1000)): vectorizing
# the chains of these small global models gave no clear speed-up over running them one after
# another ("parallel" does the same with 4 chains on 2 host devices), and for GPD on an idle
# machine "parallel" took 162 s against 141 s in turn (XLA already uses both cores for one
# chain's products), so chains run in turn.
DEFAULT_CHAIN_METHOD = "sequential"


def fit(
    dataset: Dataset,
    mixer: str = "dirichlet",
    *,
    split: str = "train",
    likelihood: str = "mean",
    priors: Mapping[str, Any] | None = None,
    num_warmup: int = 1000,
    num_samples: int = 1000,
    num_chains: int = 4,
    thinning: int = 1,
    seed: int = 0,
    target_accept: float = 0.95,
    dense_mass: bool | list | None = None,
    max_tree_depth: int = 10,
    init: str = "uniform",
    chain_method: str | None = None,
    progress_bar: bool = False,
    discrepancy: bool = True,
    evidence_split: str = "evidence",
    warn: bool = True,
    options: Mapping[str, Any] | None = None,
) -> Posterior:
    """Fit a mixer to one split of a dataset.

    Parameters
    ----------
    dataset
        The dataset (all splits kept in the result, for prediction and metrics).
    mixer
        ``"linear"``, ``"dirichlet"`` or ``"bma"``.
    split
        The training split (BMA uses ``evidence_split`` for its evidences).
    likelihood
        ``"mean"`` (mix predictions, one σ) or ``"density"`` (mix densities, σ_k per model).
    num_samples, thinning
        Draws per chain after warm-up, of which every ``thinning``-th is kept (long chains
        for slowly mixing posteriors without storing every draw).
    seed
        Seed of the explicit JAX random key; the same seed gives the same draws.
    init
        Where chains start: ``"uniform"`` (NumPyro's default, uniform in (−2, 2) on the
        unconstrained scale), ``"median"`` (near the prior median: each chain takes the median
        of 15 prior draws of its own) or ``"map"`` (:func:`map_init`: every chain starts near
        the best of several posterior-mode searches, for posteriors with minor modes that
        trap chains).
    chain_method
        ``"parallel"``, ``"vectorized"`` or ``"sequential"``; default
        :data:`DEFAULT_CHAIN_METHOD` (``"sequential"``; see BENCHMARKS.md).
    options
        Mixer options (e.g. ``{"gp": "hsgp"}`` for ``gp_dirichlet``); unknown keys are
        refused. The resolved options, data-dependent ones included, are kept in
        ``settings["options"]`` and reused by :func:`lbmm.predict.predict`.

    Returns
    -------
    Posterior
    """
    spec = get_mixer(mixer)
    key = jax.random.PRNGKey(seed)
    settings: dict[str, Any] = {
        "mixer": mixer,
        "split": split,
        "likelihood": likelihood,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "num_chains": num_chains,
        "thinning": thinning,
        "seed": seed,
        "target_accept": target_accept,
        "dense_mass": repr(dense_mass),
        "max_tree_depth": max_tree_depth,
        "init": init,
        "priors": {k: repr(v) for k, v in (priors or {}).items()},
    }
    t0 = time.perf_counter()
    if spec.model is None:
        spec.resolve_options(dataset, options)  # refuses unknown options
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
        idata = _make_idata(
            samples,
            dataset,
            split,
            {"delta": ["model"], "sigma_k": ["model"], "weights": ["model"]},
            None,
        )
        settings.update(
            evidence_split=evidence_split,
            discrepancy=discrepancy,
            bma_prior=vars(res.prior),
            bma_weights={m: res.weights[m].tolist() for m in res.weights},
            bma_log_evidence={m: res.log_evidence[m].tolist() for m in res.log_evidence},
            bma_mc_se=res.mc_se.tolist(),
        )
        diag = {"rhat_max": 1.0, "ess_bulk_min": float(num_chains * num_samples),
                "ess_tail_min": float(num_chains * num_samples), "divergences": 0,
                "sampler": "exact"}  # fmt: skip
        diag["wall_s"] = time.perf_counter() - t0
        return Posterior(mixer, idata, dataset, settings, diag)

    train = dataset.split(split, require_observed=True)
    if not np.isfinite(train.F).all():
        raise ValueError(f"split {split!r}: some model predictions are missing (NaN in F)")
    method = chain_method or DEFAULT_CHAIN_METHOD
    settings["chain_method"] = method
    opts = spec.resolve_options(train, options)
    settings["options"] = _jsonable(opts)
    if dense_mass is None:
        dense_mass = spec.dense_mass(opts) if callable(spec.dense_mass) else spec.dense_mass
    settings["dense_mass"] = repr(dense_mass)
    if init not in (*INITS, "map"):
        raise ValueError(f"unknown init {init!r}; expected one of {[*sorted(INITS), 'map']}")
    kernel = NUTS(
        spec.model,
        init_strategy=INITS.get(init, init_to_uniform),
        target_accept_prob=target_accept,
        dense_mass=dense_mass,
        max_tree_depth=max_tree_depth,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        thinning=thinning,
        chain_method=method,
        progress_bar=progress_bar,
    )
    F = jnp.asarray(train.F)
    y = jnp.asarray(train.y)
    model_args = (F, jnp.asarray(train.x), y)
    model_kwargs = {
        "likelihood_kind": likelihood,
        "priors": priors,
        **opts,
        **(spec.precompute(train.x, opts) if spec.precompute else {}),
    }
    init_params = None
    if init == "map":
        key, k_map = jax.random.split(key)
        init_params, map_info = map_init(
            spec.model, k_map, model_args, model_kwargs, num_chains=num_chains
        )
        settings["map_init"] = map_info
    mcmc.run(
        key,
        *model_args,
        init_params=init_params,
        **model_kwargs,
        extra_fields=("diverging", "num_steps", "adapt_state.step_size"),
    )
    # JAX dispatches asynchronously: wait for the draws before reading the clock.
    raw = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    wall = time.perf_counter() - t0
    samples = {k: np.asarray(v) for k, v in raw.items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps = np.asarray(extra["num_steps"])
    stats = {
        "diverging": np.asarray(extra["diverging"]),
        "n_steps": steps,
        "tree_depth": np.floor(np.log2(np.maximum(steps, 1))).astype(int) + 1,
        "step_size": np.asarray(extra["adapt_state.step_size"]),
    }
    dims = {"weights": ["model"], "alpha": ["model"], "gamma_inf": ["model"], "eta": ["model"],
            "beta": ["input", "model"], "gp_coef": ["basis", "model"],
            "gp_z": ["obs_nucleus", "model"], "gamma_aux": ["obs_nucleus", "model"],
            "exp_aux": ["obs_nucleus", "model"]}  # fmt: skip
    if likelihood == "density":
        dims["sigma"] = ["model"]
    idata = _make_idata(samples, dataset, split, dims, stats)
    diag = diagnostics(idata)
    if spec.local:
        diag.update(_local_diagnostics(mixer, idata, dataset, opts, key))
    diag["wall_s"] = wall
    diag["grad_evals"] = int(steps.sum()) * thinning  # counted on the kept draws
    mass = "dense" if dense_mass is True else "diag" if not dense_mass else "block-dense"
    diag["sampler"] = f"NUTS ({method}, {mass} mass)"
    if warn:
        _warn(diag, mixer, spec.hint(likelihood))
    return Posterior(mixer, idata, dataset, settings, diag)
