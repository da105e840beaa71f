"""Simulation-based calibration (Talts et al. 2018, arXiv:1804.06788) of a mixer.

Each replication draws parameters θ* and data y* from the mixer's own generative model (its
NumPyro model with ``y`` unobserved: the prior, then the likelihood), fits the same model to
y* by NUTS, and records the rank of θ* among ``num_draws`` posterior draws, for every scalar
parameter and for the predictive mean at held-out inputs. When the fitted log density is the
simulator's (priors, likelihood, Jacobians of every transform and reparameterisation) and the
sampler is exact, every rank is uniform on 0 … ``num_draws``; a wrong Jacobian or a
prior/likelihood mismatch shifts or bends the rank histograms.

BMA is checked the same way against its closed form: the model index, δ and σ drawn from its
conjugate prior, the posterior drawn exactly (:func:`~lbmm.mixers.bma.bma_posterior_draws`).

The fits use NumPyro's NUTS, the kernel :func:`lbmm.inference.fit` uses, with the same mass
matrix, through its functional API so that the replications of one mixer share one
compilation (chains start uniform in (−2, 2), not through ``fit``'s chunked driver, whose own
tests are in ``tests/test_inference.py``); the model functions, the options
(:meth:`~lbmm.mixers.registry.MixerSpec.resolve_options`) and the predictive mean
(:func:`~lbmm.mixers.predictive.predictive_mean`) are lbmm's own.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr
from numpyro import handlers
from numpyro.infer import Predictive
from scipy import stats

from .. import _jax  # noqa: F401
from ..data import Dataset
from ..data.errors import OptionError
from ..mixers import get_mixer
from ..mixers.bma import BMAPrior, bma, bma_posterior_draws
from ..mixers.predictive import predictive_mean
from .diagnostics import summarize_draws
from .fit import check_priors
from .posterior import LATENT_SITES

__all__ = ["sbc", "sbc_design", "sbc_ranks", "sbc_uniformity"]

#: Sites never ranked: the observations and per-basis / per-nucleus latent blocks.
_SKIP = ("y", *LATENT_SITES)
#: Largest site (in scalars) that is ranked element by element.
_MAX_SITE = 16


def sbc_design(num_models: int = 3, *, n_z: int = 6, n_n: int = 6, seed: int = 0) -> Dataset:
    """A small synthetic problem: ``n_z × n_n`` nuclei on a (Z, N) grid, ``num_models``
    smooth model predictions that differ by O(1) across the grid, and two interior nuclei
    held out (split ``heldout``; the rest is ``train``). The observations are placeholders:
    :func:`sbc` draws them from the mixer's prior.
    """
    if num_models < 2:
        raise OptionError(f"num_models: expected at least 2, got {num_models}")
    rng = np.random.default_rng(seed)
    Z, N = np.meshgrid(20 + np.arange(n_z), 28 + np.arange(n_n), indexing="ij")
    Z, N = Z.ravel(), N.ravel()
    z = (Z - Z.mean()) / max(Z.std(), 1.0)
    n = (N - N.mean()) / max(N.std(), 1.0)
    slopes = rng.normal(0.0, 0.6, (2, num_models))
    curv = rng.normal(0.0, 0.3, num_models)
    F = 8.0 + z[:, None] * slopes[0] + n[:, None] * slopes[1] + curv * (z * n)[:, None]
    held = np.array([(n_z // 3) * n_n + n_n // 3, (2 * n_z // 3) * n_n + 2 * n_n // 3])
    train = np.setdiff1d(np.arange(Z.size), held)
    return Dataset.from_arrays(
        "sbc",
        "S2n",
        [f"m{k}" for k in range(num_models)],
        Z,
        N,
        np.zeros(Z.size),
        F,
        splits={"train": train, "heldout": held},
    )


def _rank(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of ``truth`` (...,) among ``draws`` (L, ...): the number of draws below it."""
    return np.sum(draws < truth[None], axis=0)


def _flatten(sites: Mapping[str, np.ndarray], lead: int) -> dict[str, np.ndarray]:
    """Scalar quantities named ``site[i,j]`` from arrays with ``lead`` leading axes."""
    out = {}
    for name, v in sites.items():
        v = np.asarray(v)
        tail = v.shape[lead:]
        if not tail:
            out[name] = v
            continue
        for idx in np.ndindex(*tail):
            out[f"{name}[{','.join(map(str, idx))}]"] = v[(Ellipsis, *idx)]
    return out


def _ranks_dataset(rows: list[dict], diag: Mapping[str, list] | None, attrs: dict) -> xr.Dataset:
    """The result of a calibration run: ``rank`` (rep, quantity) and, for sampled fits, the
    per-replication diagnostics ``rhat_max``, ``ess_bulk_min`` and ``divergences``."""
    frame = pd.DataFrame(rows)
    data = {"rank": (("rep", "quantity"), frame.to_numpy(dtype=np.int64))}
    for name, values in (diag or {}).items():
        data[name] = ("rep", np.asarray(values, np.int64 if name == "divergences" else float))
    coords = {"rep": np.arange(len(rows)), "quantity": list(frame.columns)}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def sbc_ranks(
    simulate: Callable,
    fit_model: Callable,
    predict: Callable[[Mapping[str, np.ndarray], np.ndarray], np.ndarray],
    *,
    num_reps: int,
    key: jax.Array,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    num_draws: int = 99,
    dense_mass: Any = False,
    target_accept: float = 0.9,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Rank statistics of one model pair, the general form behind :func:`sbc`.

    Parameters
    ----------
    simulate
        NumPyro model of no arguments besides ``y=None``: its prior predictive gives θ* and
        ``y`` (the sites ranked are its unobserved, non-latent sample sites with at most
        ``_MAX_SITE`` scalars).
    fit_model
        NumPyro model ``fit_model(y=...)`` fitted to each simulated ``y`` (the same model
        for a calibration check; another one to show what a mismatch does).
    predict
        ``predict(draws, y)``: θ draws (S, ...) by site and the data they were fitted to (or
        simulated with) → the predictive means (S, m) the ranks also cover.
    num_draws
        Posterior draws (evenly thinned from every chain's) each rank is taken among.

    Returns
    -------
    xarray.Dataset
        ``rank`` (rep, quantity) in 0 … ``num_draws``; per replication ``rhat_max``,
        ``ess_bulk_min`` and ``divergences`` (absent for BMA's closed form);
        ``attrs["num_draws"]`` and ``attrs["sampler"]``.
    """
    k_prior, k_fit = jax.random.split(key)
    prior = jax.jit(Predictive(simulate, num_samples=num_reps, parallel=True))(k_prior)
    tr = handlers.trace(handlers.seed(simulate, 0)).get_trace()
    ranked = [
        name
        for name, site in tr.items()
        if site["type"] == "sample"
        and not site["is_observed"]
        and name not in _SKIP
        and np.size(site["value"]) <= _MAX_SITE
    ]
    ys = np.asarray(prior["y"])
    theta = {k: np.asarray(v) for k, v in prior.items() if k != "y"}

    fit = _fit_fn(
        fit_model,
        jnp.asarray(ys[0]),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=num_chains,
        dense_mass=dense_mass,
        target_accept=target_accept,
    )
    total = num_chains * num_samples
    pick = np.linspace(0, total - 1, num_draws).round().astype(int)
    rows, rhat, ess, div = [], [], [], []
    for r in range(num_reps):
        draws, diverging = fit(jax.random.fold_in(k_fit, r), jnp.asarray(ys[r]))
        post = {k: np.asarray(v) for k, v in draws.items()}
        flat = {k: v.reshape(total, *v.shape[2:]) for k, v in post.items()}
        pred = np.asarray(predict(flat, ys[r]))
        true_pred = np.asarray(predict({k: v[r : r + 1] for k, v in theta.items()}, ys[r]))[0]
        q_draws = _flatten({k: flat[k][pick] for k in ranked}, 1)
        q_true = _flatten({k: theta[k][r] for k in ranked}, 0)
        ranks = {k: int(_rank(q_draws[k], q_true[k])) for k in q_draws}
        for j in range(pred.shape[-1]):
            ranks[f"mean[{j}]"] = int(_rank(pred[pick, j], true_pred[j]))
        rows.append(ranks)
        summ = summarize_draws({k: post[k] for k in ranked})
        rhat.append(summ["rhat_max"])
        ess.append(summ["ess_bulk_min"])
        div.append(int(diverging))
        if progress is not None:
            progress(r + 1, num_reps)
    return _ranks_dataset(
        rows,
        {"rhat_max": rhat, "ess_bulk_min": ess, "divergences": div},
        {
            "num_draws": num_draws,
            "num_warmup": num_warmup,
            "num_samples": num_samples,
            "num_chains": num_chains,
            "sampler": "NUTS",
        },
    )


def _fit_fn(model, y0, *, num_warmup, num_samples, num_chains, dense_mass, target_accept):
    """One compiled fit ``fit(key, y) -> (draws by site (chain, draw, ...), divergences)``.

    NumPyro's NUTS through its functional API (:func:`numpyro.infer.hmc.hmc`): the log
    density is built once with the data as an argument, every chain starts uniform in
    (−2, 2) on the unconstrained scale (NumPyro's default), and warm-up (step size and mass
    matrix), sampling and the transform back to constrained values are one compiled program
    that every chain of every replication reuses.
    """
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import initialize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = initialize_model(
            jax.random.PRNGKey(0), model, model_kwargs={"y": y0}, dynamic_args=True
        )
    flat0, unravel = ravel_pytree(info.param_info.z)
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")

    def chain(key, y):
        kw = {"y": y}
        k_init, k_run = jax.random.split(key)
        z0 = unravel(jax.random.uniform(k_init, flat0.shape, minval=-2.0, maxval=2.0))
        state = init_kernel(
            z0,
            num_warmup,
            dense_mass=dense_mass,
            target_accept_prob=target_accept,
            model_kwargs=kw,
            rng_key=k_run,
        )

        def warm(st, _):
            return sample_kernel(st, model_kwargs=kw), None

        def draw(st, _):
            st = sample_kernel(st, model_kwargs=kw)
            return st, (info.postprocess_fn(y=y)(st.z), st.diverging)

        state, _ = jax.lax.scan(warm, state, None, length=num_warmup)
        _, (draws, div) = jax.lax.scan(draw, state, None, length=num_samples)
        return draws, jnp.sum(div)

    chain = jax.jit(chain)

    def fit(key, y):
        outs = [chain(k, y) for k in jax.random.split(key, num_chains)]
        draws = jax.tree.map(lambda *a: jnp.stack(a), *[o[0] for o in outs])
        return draws, sum(int(o[1]) for o in outs)

    return fit


def sbc(
    mixer: str,
    *,
    num_reps: int = 200,
    design: Dataset | None = None,
    likelihood: str = "mean",
    options: Mapping[str, Any] | None = None,
    priors: Mapping[str, Any] | None = None,
    fit_priors: Mapping[str, Any] | None = None,
    seed: int = 0,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    num_draws: int = 99,
    progress: Callable[[int, int], None] | None = None,
) -> xr.Dataset:
    """Simulation-based calibration of one mixer on a synthetic design.

    Parameters
    ----------
    mixer
        A name of :data:`lbmm.mixers.MIXERS` (``"bma"`` included).
    design
        The inputs and model predictions (splits ``train`` and ``heldout``);
        :func:`sbc_design` by default.
    priors, fit_priors
        Priors of the simulator and of the fitted model (default: the same). Different
        ones show what a prior/likelihood mismatch does to the ranks.
    num_warmup, num_samples, num_chains, num_draws
        NUTS settings per replication; ranks are taken among ``num_draws`` of the draws.

    Returns
    -------
    xarray.Dataset
        See :func:`sbc_ranks`; ``attrs`` also name the mixer, likelihood and options.
    """
    design = sbc_design() if design is None else design
    spec = get_mixer(mixer)
    key = jax.random.PRNGKey(seed)
    if spec.model is None:
        if priors or fit_priors or options or likelihood != "mean":
            raise OptionError(
                "mixer 'bma': its SBC uses the paper's conjugate prior; no priors, "
                "options or likelihood apply"
            )
        ds = _sbc_bma(design, num_reps, key, num_draws, progress)
    else:
        train = design.split("train")
        held = design.split("heldout")
        opts = spec.resolve_options(train, options, likelihood)
        check_priors(spec, priors, opts)
        check_priors(spec, fit_priors, opts)
        arrays = spec.fit_arrays(train.x, opts)
        F, x = jnp.asarray(train.F), jnp.asarray(train.x)

        def model(priors_):
            return functools.partial(
                spec.model, F, x, likelihood_kind=likelihood, priors=priors_, **opts, **arrays
            )

        simulate = model(priors)
        fit_model = model(priors if fit_priors is None else fit_priors)

        def predict(draws, y):
            return predictive_mean(
                mixer, draws, held.F, held.x, opts, likelihood, train=(train.F, train.x, y)
            )

        # the mass matrix lbmm's fit uses (dense, or block-dense over GPD's hyperparameters)
        dense = spec.dense_mass(opts) if callable(spec.dense_mass) else spec.dense_mass
        ds = sbc_ranks(
            simulate,
            fit_model,
            predict,
            num_reps=num_reps,
            key=key,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=num_chains,
            num_draws=num_draws,
            dense_mass=dense,
            progress=progress,
        )
    ds.attrs.update(
        mixer=mixer,
        likelihood=likelihood,
        options=repr(dict(options or {})),
        seed=seed,
        mismatch=fit_priors is not None,
    )
    return ds


def _sbc_bma(design: Dataset, num_reps, key, num_draws, progress) -> xr.Dataset:
    """BMA against its closed form: model index k ~ uniform, λ ~ Gamma(a, b),
    δ | λ ~ N(μ, 1/λ), y = f_k + δ + ε/√λ on the evidence (here: training) nuclei."""
    prior = BMAPrior()
    train, held = design.split("train"), design.split("heldout")
    p = train.F.shape[1]
    k_sim, k_post = jax.random.split(key)
    ks = jax.random.split(k_sim, 4)
    comp = np.asarray(jax.random.randint(ks[0], (num_reps,), 0, p))
    lam = np.asarray(jax.random.gamma(ks[1], prior.a, (num_reps,))) / prior.b
    delta = prior.mu + np.asarray(jax.random.normal(ks[2], (num_reps,))) / np.sqrt(lam)
    eps = np.asarray(jax.random.normal(ks[3], (num_reps, train.F.shape[0])))
    ys = train.F[:, comp].T + delta[:, None] + eps / np.sqrt(lam)[:, None]
    u = np.random.default_rng(0)
    rows = []
    for r in range(num_reps):
        # the exact evidences are checked; the Monte Carlo one only needs to run
        res = bma(
            train.F,
            ys[r],
            design.models,
            discrepancy=True,
            key=jax.random.fold_in(k_post, r),
            num_mc=1000,
        )
        d = bma_posterior_draws(res, jax.random.fold_in(k_post, 10**6 + r), num_draws)
        c = np.asarray(d["component"])
        dd = np.asarray(d["delta"])[np.arange(num_draws), c]
        sd = np.asarray(d["sigma"])[np.arange(num_draws), c]
        mean = held.F[:, c].T + dd[:, None]
        true_mean = held.F[:, comp[r]] + delta[r]
        # the model index is discrete: ties broken at random (Talts et al., section 4.2)
        below = np.sum(c < comp[r]) + u.integers(0, np.sum(c == comp[r]) + 1)
        row = {
            "component": int(below),
            "delta": int(_rank(dd, np.asarray(delta[r]))),
            "sigma": int(_rank(sd, np.asarray(1 / np.sqrt(lam[r])))),
        }
        for j in range(mean.shape[1]):
            row[f"mean[{j}]"] = int(_rank(mean[:, j], np.asarray(true_mean[j])))
        rows.append(row)
        if progress is not None:
            progress(r + 1, num_reps)
    # closed form: no sampler diagnostics to report
    return _ranks_dataset(rows, None, {"num_draws": num_draws, "sampler": "closed form"})


def sbc_uniformity(ranks: xr.Dataset, bins: int = 10) -> pd.DataFrame:
    """χ² test of uniformity of each quantity's ranks in ``bins`` equal bins.

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``chi2``, ``p`` (``bins − 1`` degrees of freedom), the bin
        ``counts``, and the mean rank relative to its expectation (``mean_shift``, in units of
        ``num_draws``; positive when the truth sits high in the posterior).
    """
    L = int(ranks.attrs["num_draws"])
    if (L + 1) % bins:
        raise OptionError(f"bins: expected a divisor of num_draws + 1 = {L + 1}, got {bins}")
    out = []
    for q in ranks["quantity"].values:
        r = ranks["rank"].sel(quantity=q).values
        counts = np.bincount(r * bins // (L + 1), minlength=bins)
        chi2, p = stats.chisquare(counts)
        out.append(
            {
                "quantity": str(q),
                "chi2": float(chi2),
                "p": float(p),
                "counts": counts.tolist(),
                "mean_shift": float(r.mean() / L - 0.5),
            }
        )
    return pd.DataFrame(out).set_index("quantity")
