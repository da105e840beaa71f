"""Adaptive tempered sequential Monte Carlo for posteriors NUTS cannot cross.

A population of particles drawn from the prior is moved through a sequence of tempered
posteriors p(θ) L(θ)^λ, λ from 0 to 1, each next λ chosen so that the effective sample
size of the reweighted particles is ``target_ess`` of their number (BlackJAX's
``adaptive_tempered_smc``). After each reweighting the particles are resampled and moved
by ``mcmc_steps`` HMC transitions whose diagonal mass matrix (the weighted variances of
the particles) and step size (moved by exp(mean acceptance − ``target_accept``) after every
step) are tuned from the population itself between steps, the scheme of BlackJAX's
``inner_kernel_tuning`` (driven here, since the step size carries over from step to step).
Modes are found while the likelihood is still flat, and each
keeps the share of particles its posterior mass gives it, which a chain started in one
mode cannot do.

The product of the mean incremental weights is an unbiased estimate of the marginal
likelihood p(y) = ∫ p(θ) L(θ) dθ (its logarithm is reported).

Several independent populations are run (``num_populations``, the analogue of chains), so
the convergence bars (R-hat between populations, bulk ESS) and the spread of the evidence
estimate are measured the way they are for chains. The stored draws of a population are
its particles after a last resampling and ``mcmc_steps`` moves at λ = 1, in the order the
resampling left them (copies adjacent), so the bulk ESS counts surviving copies as
correlated rather than independent.
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

from .. import _jax  # noqa: F401  (float64)
from ..data.errors import OptionError

__all__ = [
    "SMC_DEFAULTS", "SmcResult", "check_smc_options", "model_densities", "rejuvenate",
    "run_smc", "temper",
]  # fmt: skip

#: Settings of the sampler (``options`` of :func:`run_smc`, ``smc`` of a study's mixer).
SMC_DEFAULTS: dict[str, Any] = {
    "target_ess": 0.5,  # share of the particles kept effective by each tempering step
    "mcmc_steps": 10,  # HMC moves of every particle after each resampling
    "integration_steps": 10,  # leapfrog steps of one HMC move
    "target_accept": 0.65,  # the step size follows the mean acceptance towards this
    "max_stages": 500,  # refuse to go on past this many tempering steps
}

Progress = Callable[[Mapping[str, Any]], None]


@dataclass
class SmcResult:
    """Draws (population, particle, ...) by site, per-particle statistics, and a record of
    the run: per population its tempering schedule, acceptance rates, the ESS before each
    resampling, the log evidence estimate, gradients and wall time."""

    samples: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    record: dict[str, Any] = field(default_factory=dict)


def check_smc_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The sampler's settings with defaults filled in; a name not in
    :data:`SMC_DEFAULTS` or a value out of range is refused, naming it."""
    opts = dict(SMC_DEFAULTS)
    for k, v in (options or {}).items():
        if k not in SMC_DEFAULTS:
            raise OptionError(f"smc: unknown setting {k!r}; expected one of {sorted(SMC_DEFAULTS)}")
        opts[k] = v
    for k in ("mcmc_steps", "integration_steps", "max_stages"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise OptionError(f"smc.{k}: expected an integer >= 1, got {v!r}")
    for k in ("target_ess", "target_accept"):
        v = opts[k]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1:
            raise OptionError(f"smc.{k}: expected a number in (0, 1), got {v!r}")
    return opts


def model_densities(model, model_args: tuple, model_kwargs: Mapping[str, Any], key):
    """A NumPyro model's log prior and log likelihood on the flat unconstrained scale.

    The log likelihood is the sum over the observed sample sites; the log prior is the log
    joint density (Jacobians of the constraining transforms included) minus it.

    Returns
    -------
    (log_prior, log_lik, to_flat, from_flat, z0)
        Functions of one flat vector; ``to_flat`` maps a dict of unconstrained values to
        it and ``from_flat`` maps it to the constrained sites and deterministic values;
        ``z0`` is one valid unconstrained point (a dict by latent site).
    """
    from jax.flatten_util import ravel_pytree
    from numpyro import handlers
    from numpyro.infer.util import constrain_fn, potential_energy

    kwargs = dict(model_kwargs)
    z0 = latent_point(model, model_args, kwargs, key)
    _, unravel = ravel_pytree(z0)

    def postprocess(z):
        return constrain_fn(model, model_args, kwargs, z, return_deterministic=True)

    def potential(z):
        return potential_energy(model, model_args, kwargs, z)

    def log_lik(v):
        params = postprocess(unravel(v))
        cond = handlers.substitute(model, data=params)
        tr = handlers.trace(cond).get_trace(*model_args, **kwargs)
        total = 0.0
        for site in tr.values():
            if site["type"] == "sample" and site["is_observed"]:
                lp = site["fn"].log_prob(site["value"])
                scale = site.get("scale")
                total = total + jnp.sum(lp if scale is None else scale * lp)
        return total

    def log_joint(v):
        return -potential(unravel(v))

    def log_prior(v):
        return log_joint(v) - log_lik(v)

    def to_flat(z):
        return ravel_pytree(z)[0]

    def from_flat(v):
        return postprocess(unravel(v))

    return log_prior, log_lik, to_flat, from_flat, z0


def latent_point(model, model_args: tuple, model_kwargs: Mapping[str, Any], key) -> dict:
    """One prior draw of a model's latent sample sites on the unconstrained scale, by site
    (its structure fixes the flat layout; no compilation, unlike NumPyro's
    ``initialize_model``)."""
    from numpyro import handlers
    from numpyro.distributions.transforms import biject_to

    tr = handlers.trace(handlers.seed(model, key)).get_trace(*model_args, **dict(model_kwargs))
    return {
        name: biject_to(site["fn"].support).inv(site["value"])
        for name, site in tr.items()
        if site["type"] == "sample" and not site["is_observed"]
    }


def _prior_particles(model, model_args, model_kwargs, key, n, z0, to_flat):
    """``n`` prior draws of the latent sites, on the flat unconstrained scale."""
    from numpyro.infer import Predictive
    from numpyro.infer.util import unconstrain_fn

    draws = Predictive(model, num_samples=n, return_sites=list(z0))(
        key, *model_args, **dict(model_kwargs)
    )

    def one(d):
        return to_flat(unconstrain_fn(model, model_args, dict(model_kwargs), d))

    return jax.vmap(one)({k: draws[k] for k in z0})


def run_smc(
    model,
    model_args: tuple,
    model_kwargs: Mapping[str, Any],
    *,
    key: jax.Array,
    num_particles: int = 1000,
    num_populations: int = 4,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> SmcResult:
    """Sample a NumPyro model's posterior by adaptive tempered SMC with tuned HMC moves.

    Parameters
    ----------
    model, model_args, model_kwargs
        The NumPyro model and its arguments (observed sites given).
    key
        JAX random key; the same key gives the same draws.
    num_particles
        Particles of each population (its stored draws).
    num_populations
        Independent populations, each from its own prior draws.
    options
        Settings of :data:`SMC_DEFAULTS` (unknown names refused).
    progress
        Called after every tempering step with ``phase="tempering"``, ``chain`` (the
        population), ``lambda`` and the ``done``/``total`` share of the work (λ).

    Returns
    -------
    SmcResult
        ``samples`` of every site (population, particle, ...); ``stats`` ``lp`` (log joint
        density, unconstrained scale) and ``log_likelihood``; ``record`` with, per
        population, ``log_evidence``, ``lambdas``, ``acceptance``, ``ess``,
        ``step_size``, and totals ``grad_evals`` and ``seconds``.
    """
    opts = check_smc_options(options)
    k_init, key = jax.random.split(key)
    log_prior, log_lik, to_flat, from_flat, z0 = model_densities(
        model, model_args, model_kwargs, k_init
    )
    starts, keys = [], []
    for _ in range(num_populations):
        key, k_prior, k_run = jax.random.split(key, 3)
        starts.append(
            _prior_particles(model, model_args, model_kwargs, k_prior, num_particles, z0, to_flat)
        )
        keys.append(k_run)
    positions, pops, grads, seconds = temper(log_prior, log_lik, starts, keys=keys,
                                             options=opts, progress=progress)  # fmt: skip
    dim = int(positions[0].shape[-1])
    pos = jnp.stack(positions)  # (population, particle, dim)
    flat = pos.reshape((-1, dim))
    constrained = jax.vmap(from_flat)(flat)
    samples = {
        k: np.asarray(v).reshape((num_populations, num_particles, *np.shape(v)[1:]))
        for k, v in constrained.items()
    }
    lp = jax.vmap(lambda v: log_prior(v) + log_lik(v))(flat)
    ll = jax.vmap(log_lik)(flat)
    shape = (num_populations, num_particles)
    stats = {
        "lp": np.asarray(lp).reshape(shape),
        "log_likelihood": np.asarray(ll).reshape(shape),
    }
    ev = np.array([q["log_evidence"] for q in pops])
    record = {
        "populations": pops,
        "log_evidence": float(np.log(np.mean(np.exp(ev - ev.max()))) + ev.max()),
        "log_evidence_sd": float(np.std(ev, ddof=1)) if len(ev) > 1 else float("nan"),
        "grad_evals": int(grads),
        "seconds": seconds,
        "num_particles": num_particles,
        "num_populations": num_populations,
        "options": opts,
        "dim": dim,
    }
    return SmcResult(samples, stats, record)


def temper(
    log_prior: Callable,
    log_lik: Callable,
    starts: list,
    *,
    keys: list,
    options: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
):
    """Adaptive tempering from particles of ``exp(log_prior)`` to ``exp(log_prior + log_lik)``.

    ``starts`` holds one array (particles, dim) per population, drawn from the law of
    ``log_prior``: prior draws for :func:`run_smc`; draws of a stored posterior when new data
    are added (``log_prior`` then the old log joint density, ``log_lik`` the new data's).
    ``keys`` holds one random key per population.

    Returns
    -------
    (positions, populations, grad_evals, seconds)
        The final particles of each population, a record per population (log evidence
        increment, λ schedule, acceptance, ESS, step sizes) and the totals.
    """
    import blackjax
    from blackjax.smc import extend_params, resampling

    opts = check_smc_options(options)
    num_populations = len(starts)
    num_particles, dim = (int(d) for d in np.shape(starts[0]))
    hmc_kernel = blackjax.hmc.build_kernel()
    step_fn = functools.partial(hmc_kernel, num_integration_steps=opts["integration_steps"])
    target_acc = float(opts["target_accept"])

    def make_params(step_size, stds):
        return extend_params({"step_size": step_size, "inverse_mass_matrix": stds**2})

    def algorithm(params):
        return blackjax.adaptive_tempered_smc(
            log_prior, log_lik, step_fn, blackjax.hmc.init, params,
            resampling.systematic, opts["target_ess"], num_mcmc_steps=opts["mcmc_steps"],
        )  # fmt: skip

    def final(params):
        return blackjax.tempered_smc(
            log_prior, log_lik, step_fn, blackjax.hmc.init, params,
            resampling.systematic, num_mcmc_steps=opts["mcmc_steps"],
        )  # fmt: skip

    @jax.jit
    def step(k, state, step_size):
        params = make_params(step_size, particles_stds_weighted(state.particles, state.weights))
        new, info = algorithm(params).step(k, state)
        acc = jnp.mean(info.update_info.acceptance_rate)
        w = new.weights
        ess = 1.0 / jnp.sum(w**2)
        return new, info.log_likelihood_increment, acc, ess

    @jax.jit
    def last_step(k, state, step_size):
        params = make_params(step_size, particles_stds_weighted(state.particles, state.weights))
        new, info = final(params).step(k, state, 1.0)
        acc = jnp.mean(info.update_info.acceptance_rate)
        return new, info.log_likelihood_increment, acc

    per_grad = opts["mcmc_steps"] * opts["integration_steps"] * num_particles
    pops: list[dict[str, Any]] = []
    positions = []
    t0 = time.perf_counter()
    grads = 0
    for p in range(num_populations):
        k_run = keys[p]
        x = jnp.asarray(starts[p])
        state = blackjax.adaptive_tempered_smc(
            log_prior, log_lik, step_fn, blackjax.hmc.init, make_params(0.1, jnp.ones(dim)),
            resampling.systematic, opts["target_ess"],
        ).init(x)  # fmt: skip
        step_size = 0.5 / dim**0.25
        lambdas, accs, esss, sizes, log_z = [], [], [], [], 0.0
        stage = 0
        while float(state.tempering_param) < 1.0:
            if stage >= opts["max_stages"]:
                raise RuntimeError(
                    f"SMC population {p}: λ = {float(state.tempering_param):.3g} after "
                    f"{stage} tempering steps (smc.max_stages); the likelihood is too sharp "
                    "for the particles: raise num_particles, target_ess or max_stages"
                )
            k_run, k = jax.random.split(k_run)
            state, dlz, acc, ess = step(k, state, step_size)
            acc = float(acc)
            sizes.append(step_size)
            step_size = float(np.clip(step_size * np.exp(acc - target_acc), 1e-4, 10.0))
            log_z += float(dlz)
            lambdas.append(float(state.tempering_param))
            accs.append(acc)
            esss.append(float(ess))
            stage += 1
            grads += per_grad
            if progress is not None:
                progress({"phase": "tempering", "chain": p, "lambda": lambdas[-1],
                          "done": p * 1000 + int(1000 * lambdas[-1]),
                          "total": num_populations * 1000})  # fmt: skip
        k_run, k = jax.random.split(k_run)
        state, _, acc = last_step(k, state, step_size)
        grads += per_grad
        accs.append(float(acc))
        sizes.append(step_size)
        positions.append(state.particles)
        pops.append({"log_evidence": log_z, "lambdas": lambdas, "acceptance": accs,
                     "ess": esss, "step_size": sizes, "stages": stage})  # fmt: skip
    return positions, pops, grads, time.perf_counter() - t0


def rejuvenate(
    log_density: Callable,
    starts: list,
    *,
    keys: list,
    options: Mapping[str, Any] | None = None,
    rounds: int = 3,
    max_dense: int = 200,
):
    """Move equally weighted particles of ``exp(log_density)`` (e.g. resampled ones, with
    copies) by rounds of ``mcmc_steps`` HMC transitions that leave it invariant, the mass
    matrix (the particles' covariance up to ``max_dense`` coordinates, else its diagonal)
    and the step size tuned from the particles between rounds, until ``rounds`` rounds have
    a mean acceptance of at least 0.1 (at most 4 × ``rounds`` rounds). Copies become
    distinct draws; the law is unchanged.

    Returns
    -------
    (positions, acceptance, grad_evals)
        The moved particles of each population, the mean acceptance of every round per
        population, and the gradients spent.
    """
    import blackjax
    from blackjax.smc import extend_params, resampling

    opts = check_smc_options(options)
    num_particles, dim = (int(d) for d in np.shape(starts[0]))
    hmc_kernel = blackjax.hmc.build_kernel()
    step_fn = functools.partial(hmc_kernel, num_integration_steps=opts["integration_steps"])

    def zero(v):
        return jnp.zeros(())

    dense = dim <= max_dense

    @jax.jit
    def move(k, state, step_size):
        if dense:  # the particles' covariance: strongly correlated posteriors (GBMM+L) move
            x = state.particles - jnp.mean(state.particles, axis=0)
            inv_mass = x.T @ x / x.shape[0] + 1e-10 * jnp.eye(dim)
        else:
            inv_mass = particles_stds_weighted(state.particles, state.weights) ** 2
        params = extend_params({"step_size": step_size, "inverse_mass_matrix": inv_mass})
        smc = blackjax.tempered_smc(
            log_density, zero, step_fn, blackjax.hmc.init, params, resampling.systematic,
            num_mcmc_steps=opts["mcmc_steps"],
        )  # fmt: skip
        new, info = smc.step(k, state, 1.0)
        return new, jnp.mean(info.update_info.acceptance_rate)

    positions, accs = [], []
    for p, x in enumerate(starts):
        state = blackjax.tempered_smc(
            log_density, zero, step_fn, blackjax.hmc.init,
            extend_params({"step_size": 0.1, "inverse_mass_matrix": jnp.ones(dim)}),
            resampling.systematic,
        ).init(jnp.asarray(x))  # fmt: skip
        step_size, k_run, acc_p, good = 0.5 / dim**0.25, keys[p], [], 0
        while good < rounds and len(acc_p) < 4 * rounds:
            k_run, k = jax.random.split(k_run)
            state, acc = move(k, state, step_size)
            acc_p.append(float(acc))
            good += acc_p[-1] >= 0.1
            # a round that hardly moves (narrow ridges, e.g. GBMM+L) cuts the step fivefold
            factor = 0.2 if acc_p[-1] < 0.1 else np.exp(acc_p[-1] - opts["target_accept"])
            step_size = float(np.clip(step_size * factor, 1e-6, 10.0))
        positions.append(state.particles)
        accs.append(acc_p)
    per_round = opts["mcmc_steps"] * opts["integration_steps"] * num_particles
    return positions, accs, per_round * sum(len(a) for a in accs)


def particles_stds_weighted(x: jax.Array, w: jax.Array) -> jax.Array:
    """Weighted standard deviation of every coordinate of the particles ``x`` (n, d)."""
    m = jnp.sum(w[:, None] * x, axis=0)
    v = jnp.sum(w[:, None] * (x - m) ** 2, axis=0)
    return jnp.sqrt(jnp.maximum(v, 1e-12))
