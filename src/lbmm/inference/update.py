"""Update a posterior with new measurements, without sampling from scratch where honest.

The posterior given the old training data, p(θ | y_old), becomes p(θ | y_old, y_new) ∝
p(θ | y_old) · p(y_new | θ, y_old). The second factor is computed by the mixer's own model
with θ substituted: the log likelihood of the whole new training split minus that of the
old one, so the target is the posterior a refit on the new data has when it keeps the
parent fit's resolved options (input scaling of the GLM, the HSGP box; the Vecchia
approximation of the ``gp`` discrepancy included): an update keeps its parent's model
definition, where a cold refit derives those options anew from the new training data.
Three methods, chosen by measurement:

``psis``
    Pareto-smoothed importance reweighting of the stored draws (ArviZ's PSIS): used while
    the Pareto shape k̂ of the weights is below 0.7 and their effective sample size
    (Σw)²/Σw² is at least 400, the bulk-ESS bar (weights can be bounded, k̂ < 0, and still
    concentrate on a few draws when the new data are sharp). The draws are resampled within
    each chain by their smoothed weights (systematic resampling), then moved by a few HMC
    transitions at the new posterior so that the copies become distinct draws.
``smc``
    Data-tempered SMC started from the stored draws (one population per chain): the
    tempering runs from p(θ | y_old) to p(θ | y_old, y_new) by adaptive steps in the
    exponent of the new data's likelihood, with HMC moves (:func:`lbmm.inference.smc.temper`).
``refit``
    A fit from scratch on the new data, where neither applies: closed-form BMA (no sampling
    to save), or latent sites that grow with the data (the exact GP's values at the
    training nuclei) and so have no stored draws at the new nuclei. With
    ``fallback="refit"`` where PSIS does not hold, the result carries the stored chains'
    last draws as starting points (a warm refit, ``"warm refit"``).

``"auto"`` takes PSIS when it holds, else the ``fallback``, and says why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _jax  # noqa: F401  (float64)
from ..data import Dataset
from ..data.errors import OptionError
from ..mixers import get_mixer
from .diagnostics import ESS_MIN, is_converged
from .posterior import DIMS, Posterior, make_idata
from .smc import check_smc_options, model_densities, rejuvenate, temper

__all__ = [
    "KHAT_MAX", "UPDATE_METHODS", "UpdateResult", "new_data_loglik", "update_draws",
    "update_posterior",
]  # fmt: skip

UPDATE_METHODS = ("auto", "psis", "smc", "refit")
#: Largest Pareto k̂ at which importance reweighting is trusted (Vehtari et al. 2024).
KHAT_MAX = 0.7


@dataclass(frozen=True)
class UpdateResult:
    """An updated posterior (None when the caller must refit) and how it was made."""

    posterior: Posterior | None
    record: dict[str, Any] = field(default_factory=dict)
    #: For a warm refit: unconstrained starting points by site (leading chain axis).
    init_params: dict[str, np.ndarray] | None = None
    #: For a warm refit: the parent fit's resolved options (its model definition: input
    #: scaling, HSGP box), so that every entry of an update keeps its parent's model.
    options: dict[str, Any] | None = None


def _check_extension(old: Dataset, new: Dataset, split: str) -> None:
    """The new dataset keeps the old one's nuclei, models and training measurements."""
    if tuple(old.models) != tuple(new.models):
        raise OptionError(f"update: models {new.models} differ from the fit's {old.models}")
    a, b = old.split(split), new.split(split)
    old_set = set(zip(a.Z.tolist(), a.N.tolist(), strict=True))
    new_set = set(zip(b.Z.tolist(), b.N.tolist(), strict=True))
    if not old_set <= new_set:
        lost = sorted(old_set - new_set)[:3]
        raise OptionError(f"update: the new {split!r} split lacks old nuclei, e.g. {lost}")
    idx = new.index_of(list(zip(a.Z.tolist(), a.N.tolist(), strict=True)))
    if not (np.array_equal(new.F[idx], a.F) and np.array_equal(new.y[idx], a.y)):
        raise OptionError(f"update: the model predictions or measurements at the old {split!r} "
                          "nuclei changed; that needs a refit, not an update")  # fmt: skip


def new_data_loglik(posterior: Posterior, dataset: Dataset, *, priors=None):
    """log p(y_new | θ, y_old) for every stored draw, and what tempering from them needs.

    Returns
    -------
    (delta, flat, densities, layout)
        ``delta`` (chain, draw); ``flat`` the draws on the flat unconstrained scale
        (chain, draw, dim); ``densities`` = (old log joint, new-data log likelihood,
        from_flat) as functions of one flat vector; the layout of the flat coordinates.
    """
    from .flow import model_inputs, unconstrained_draws

    split = posterior.settings.get("split", "train")
    _check_extension(posterior.dataset, dataset, split)
    m_old, a_old, k_old = model_inputs(posterior, priors)
    m_new, a_new, k_new = model_inputs(posterior, priors, dataset)
    key = jax.random.PRNGKey(0)
    lp_old, ll_old, _, _, z_old = model_densities(m_old, a_old, k_old, key)
    _, ll_new, _, from_flat, z_new = model_densities(m_new, a_new, k_new, key)
    grow = sorted(s for s in z_old if np.shape(z_old[s]) != np.shape(z_new[s]))
    if grow:
        raise _Grows(grow)
    flat, layout, _ = unconstrained_draws(posterior, priors=priors)

    def joint_old(v):
        return lp_old(v) + ll_old(v)

    def delta_fn(v):
        return ll_new(v) - ll_old(v)

    c, d, dim = flat.shape
    delta = jax.lax.map(delta_fn, jnp.asarray(flat.reshape((-1, dim))), batch_size=256)
    return np.asarray(delta).reshape((c, d)), flat, (joint_old, delta_fn, from_flat), layout


class _Grows(Exception):
    def __init__(self, sites):
        self.sites = sites


def _psis(delta: np.ndarray) -> tuple[np.ndarray, float]:
    """Pareto-smoothed log weights (chain, draw), normalised over all draws, and k̂."""
    from arviz_stats.base import array_stats

    # arviz-stats' psislw takes log likelihoods of left-out points (LOO) and smooths the
    # weights exp(−log_lik); ours are exp(+delta)
    slw, khat = array_stats.psislw(-np.asarray(delta, float), r_eff=1, axis=[-2, -1])
    return np.asarray(slw), float(np.asarray(khat))


def _systematic(key, logw: np.ndarray, n: int) -> np.ndarray:
    w = np.exp(logw - logw.max())
    cdf = np.cumsum(w / w.sum())
    u = (float(jax.random.uniform(key)) + np.arange(n)) / n
    return np.minimum(np.searchsorted(cdf, u), len(w) - 1)


def _weights(delta: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """The smoothed log weights and their record: k̂, importance ESS, draws."""
    slw, khat = _psis(delta)
    w = np.exp(slw - slw.max())
    return slw, {"khat": khat, "importance_ess": float(w.sum() ** 2 / (w**2).sum()),
                 "draws": int(delta.size), "loglik_new_mean": float(delta.mean())}  # fmt: skip


def _psis_holds(rec: Mapping[str, Any], khat_max: float, min_ess: float) -> tuple[bool, str]:
    """Whether the weights of a :func:`_weights` record are usable, and why not."""
    khat, ess = rec["khat"], rec["importance_ess"]
    if khat >= khat_max:
        return False, f"k̂ = {khat:.2f} >= {khat_max}"
    if ess < min_ess:
        return False, f"importance ESS {ess:.0f} < {min_ess}"
    return True, ""


def update_draws(
    flat: np.ndarray,
    joint_old,
    delta_fn,
    *,
    key: jax.Array,
    method: str = "auto",
    khat_max: float = KHAT_MAX,
    smc: Mapping[str, Any] | None = None,
    max_particles: int = 1000,
    delta: np.ndarray | None = None,
    min_ess: float = ESS_MIN,
    moves: int = 3,
) -> tuple[jax.Array, dict[str, Any]]:
    """Draws of p(θ | old) (chain, draw, dim) → draws of p(θ | old, new) ∝ p(θ | old) e^{Δ(θ)}.

    Parameters
    ----------
    flat
        The stored draws on the flat unconstrained scale.
    joint_old, delta_fn
        log p(θ, y_old) and Δ(θ) = log p(y_new | θ, y_old), functions of one flat vector.
    method
        ``"auto"`` (PSIS when k̂ < ``khat_max`` and the importance ESS of the smoothed
        weights is at least ``min_ess``, else SMC), ``"psis"`` or ``"smc"``.
    delta
        Δ at the draws, when already computed.
    moves
        After PSIS resampling, HMC transitions of every draw at the new posterior (one per
        round, the step size tuned between rounds; :func:`lbmm.inference.smc.rejuvenate`):
        the copies that resampling leaves become distinct draws, so R-hat and ESS judge
        the result as they judge a fit. 0: keep the resampled copies.

    Returns
    -------
    (draws, record)
        The new draws (chain, draw', dim) and the method, k̂, importance ESS and reasons.
    """
    c, d, dim = flat.shape
    if delta is None:
        delta = np.asarray(jax.lax.map(delta_fn, jnp.asarray(flat.reshape((-1, dim))),
                                       batch_size=256)).reshape((c, d))  # fmt: skip
    slw, rec = _weights(delta)
    khat, ess = rec["khat"], rec["importance_ess"]
    ok, why_not = _psis_holds(rec, khat_max, min_ess)
    if method == "psis" or (method == "auto" and ok):
        if not ok:
            raise OptionError(f"update: PSIS {why_not}: the reweighted draws are not "
                              "enough; use method 'smc' or 'auto'")  # fmt: skip
        keys = jax.random.split(key, c + 1)
        idx = np.stack([_systematic(keys[i], slw[i], d) for i in range(c)])
        sub = flat[np.arange(c)[:, None], idx]  # (chain, draw, dim), resampled within chains
        rec.update(method="psis", why=f"k̂ = {khat:.2f} < {khat_max}, importance ESS "
                   f"{ess:.0f} >= {min_ess}",
                   unique_draws=int(sum(np.unique(i).size for i in idx)))  # fmt: skip
        positions = jnp.asarray(sub)
        if moves:

            def joint_new(v):
                return joint_old(v) + delta_fn(v)

            step = max(1, int(np.ceil(d / max_particles)))
            pos, accs, grads = rejuvenate(joint_new, [positions[i, ::step] for i in range(c)],
                                          keys=list(jax.random.split(keys[c], c)),
                                          options={**(smc or {}), "mcmc_steps": 1},
                                          rounds=moves)  # fmt: skip
            positions = jnp.stack(pos)
            rec.update(moves=moves, move_acceptance=accs, grad_evals=int(grads))
    else:
        opts = check_smc_options(smc)
        step = max(1, int(np.ceil(d / max_particles)))
        starts = [jnp.asarray(flat[i, ::step]) for i in range(c)]
        keys = list(jax.random.split(key, c))
        pos, pops, grads, _ = temper(joint_old, delta_fn, starts, keys=keys, options=opts)
        positions = jnp.stack(pos)
        why = why_not if not ok else "requested"
        rec.update(method="smc", why=why, grad_evals=int(grads),
                   stages=[q["stages"] for q in pops],
                   log_evidence_new=[q["log_evidence"] for q in pops], smc=opts)  # fmt: skip
    return positions, rec


def update_posterior(
    posterior: Posterior,
    dataset: Dataset,
    *,
    seed: int = 0,
    method: str = "auto",
    priors: Mapping[str, Any] | None = None,
    khat_max: float = KHAT_MAX,
    smc: Mapping[str, Any] | None = None,
    max_particles: int = 1000,
    fallback: str = "smc",
) -> UpdateResult:
    """The posterior of a fit given more measurements, from its stored draws.

    Parameters
    ----------
    posterior
        A stored posterior (its options and parametrisation are kept).
    dataset
        The new dataset: the old one with more nuclei in the training split (measurements
        added, e.g. by :func:`lbmm.data.add_measurements`).
    seed
        Seed of the resampling and of the SMC moves.
    method
        ``"auto"``, ``"psis"``, ``"smc"`` or ``"refit"`` (see the module docstring).
    priors
        The fit's priors when they were not the defaults (a stored posterior keeps only
        their description).
    khat_max
        PSIS is used (``auto``) or allowed (``psis``) below this k̂.
    smc
        SMC settings (:data:`lbmm.inference.smc.SMC_DEFAULTS`).
    max_particles
        SMC particles per population: every chain's draws, evenly thinned to at most this.
    fallback
        What ``"auto"`` does where PSIS does not hold: ``"smc"`` (tempering from the stored
        draws) or ``"refit"`` (return None: the caller refits). Tempering costs
        ``mcmc_steps`` × ``integration_steps`` gradients per particle and stage: less than
        SMC from the prior, but on a posterior NUTS samples well, more than NUTS (default
        study, LBMM+GLD: 10 minutes against an 18 s refit, BENCHMARKS.md), so
        :func:`lbmm.update.update_run` falls back to SMC only for entries sampled by SMC.
        With ``"refit"``, reweighted draws that miss the convergence bars (R-hat, bulk ESS)
        are refitted too, warm.

    Returns
    -------
    UpdateResult
        ``posterior`` None when a refit is needed (``record["why"]`` says why); ``record``
        holds the method, k̂, the importance-weight ESS, wall time and reasons.
    """
    if method not in UPDATE_METHODS:
        raise OptionError(f"update: method {method!r}; expected one of {list(UPDATE_METHODS)}")
    t0 = time.perf_counter()
    split = posterior.settings.get("split", "train")
    n_old = len(posterior.dataset.split_indices(split))
    n_new = len(dataset.split_indices(split))
    rec: dict[str, Any] = {"requested": method, "added": n_new - n_old}
    if fallback not in ("smc", "refit"):
        raise OptionError(f"update: fallback {fallback!r}; expected 'smc' or 'refit'")
    if n_new <= n_old:
        raise OptionError(f"update: the new {split!r} split has no nucleus the fit did not "
                          "see; nothing to update")  # fmt: skip
    if get_mixer(posterior.mixer).model is None:
        why = "closed form (BMA): a refit costs no sampling"
        return UpdateResult(None, {**rec, "method": "refit", "why": why})
    if method == "refit":
        return UpdateResult(None, {**rec, "method": "refit", "why": "requested"})
    try:
        delta, flat, (joint_old, delta_fn, from_flat), layout = new_data_loglik(
            posterior, dataset, priors=priors
        )
    except _Grows as g:
        if method != "auto":
            raise OptionError(
                f"update: method {method!r} needs parameters that do not grow with the data; "
                f"site(s) {g.sites} do"
            ) from None
        why = f"latent site(s) {g.sites} grow with the data"
        return UpdateResult(None, {**rec, "method": "refit", "why": why})

    def warm(why: str) -> UpdateResult:
        from .flow import _unflatten

        last = {k: np.asarray(v) for k, v in _unflatten(layout, flat[:, -1]).items()}
        rec["update_s"] = time.perf_counter() - t0
        return UpdateResult(None, {**rec, "method": "warm refit", "why": why}, last,
                            dict(posterior.options))  # fmt: skip

    if method == "auto" and fallback == "refit":
        _, weights = _weights(delta)
        ok, why_not = _psis_holds(weights, khat_max, ESS_MIN)
        if not ok:
            rec.update(weights)
            return warm(f"PSIS does not hold ({why_not}); NUTS started at the stored chains' "
                        "last draws costs less than tempering")  # fmt: skip
    positions, more = update_draws(flat, joint_old, delta_fn, key=jax.random.PRNGKey(seed),
                                   method=method, khat_max=khat_max, smc=smc,
                                   max_particles=max_particles, delta=delta)  # fmt: skip
    rec.update(more)
    dim = flat.shape[-1]
    cc, dd = positions.shape[:2]
    cons = jax.lax.map(from_flat, positions.reshape((-1, dim)), batch_size=256)
    samples = {k: np.asarray(v).reshape((cc, dd, *np.shape(v)[1:])) for k, v in cons.items()}
    dims = dict(DIMS)
    if posterior.settings.get("likelihood") == "density":
        dims["sigma"] = ["model"]
    idata = make_idata(samples, dataset, split, None, dims)
    rec["seconds"] = time.perf_counter() - t0
    settings = {**dict(posterior.settings), "update": {k: rec[k] for k in ("method", "why")}}
    from .fit import _make_check

    check = _make_check(posterior.mixer, dataset, split, "test", posterior.options,
                        posterior.settings.get("likelihood", "mean"), warmup=0)  # fmt: skip
    lp = jax.lax.map(lambda v: joint_old(v) + delta_fn(v), positions.reshape((-1, dim)),
                     batch_size=256)  # fmt: skip
    diag = check(samples, {"lp": np.asarray(lp).reshape((cc, dd))}, final=True)
    diag.update(wall_s=rec["seconds"], sampler=f"update of stored draws ({rec['method']})",
                update=rec, sampling={"draws_per_chain": int(dd)})  # fmt: skip
    if method == "auto" and fallback == "refit" and not is_converged(diag):
        rec.update(psis_rhat_max=diag["rhat_max"], psis_ess_bulk_min=diag["ess_bulk_min"])
        return warm(f"the reweighted draws miss the convergence bars (R-hat "
                    f"{diag['rhat_max']:.4f}, bulk ESS {diag['ess_bulk_min']:.0f})")  # fmt: skip
    return UpdateResult(Posterior(posterior.mixer, idata, dataset, settings, diag), rec)
