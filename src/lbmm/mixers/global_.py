"""Global mixtures (weights constant over the input space): GBMM+L and GBMM+D.

Two likelihoods, for every mixer:

``mean`` (the paper, Eq. 1)
    y_i ~ N(Σ_k ω_k f_k(x_i), σ²): mix the predictions, one noise scale σ.
``density`` (per-model noise)
    y_i ~ Σ_k ω_k N(f_k(x_i), σ_k²): mix the predictive densities, one σ_k per model.
    For ``linear`` the weights are normalised to the simplex (ω / Σω) in this likelihood.

Priors (the paper's Table 3) are the defaults; each can be overridden by name with a
NumPyro distribution: ``weight`` (linear: U(0, 1) per model), ``alpha`` (dirichlet:
HalfNormal(2) per model), ``sigma`` (Gamma(shape 5, rate 10)).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from .. import _jax  # noqa: F401

__all__ = ["DEFAULT_PRIORS", "dirichlet", "likelihood", "linear", "project_simplex"]

LIKELIHOODS = ("mean", "density")


def _default_priors() -> dict[str, dist.Distribution]:
    return {
        "weight": dist.Uniform(0.0, 1.0),
        "alpha": dist.HalfNormal(2.0),
        "sigma": dist.Gamma(5.0, 10.0),
    }


DEFAULT_PRIORS: Mapping[str, dist.Distribution] = _default_priors()


def _prior(name: str, priors: Mapping[str, dist.Distribution] | None) -> dist.Distribution:
    if priors and name in priors:
        return priors[name]
    return _default_priors()[name]


def check_likelihood(likelihood: str) -> None:
    """Raise a clear error for an unknown likelihood name."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def likelihood(
    F: jnp.ndarray,
    weights: jnp.ndarray,
    y: jnp.ndarray | None,
    kind: str,
    priors: Mapping[str, dist.Distribution] | None,
) -> None:
    """The observation site ``y`` of a mixture with weights (p,) or (n, p).

    Samples ``sigma`` (scalar for ``mean``, one per model for ``density``) and observes ``y``.
    """
    n, p = F.shape
    if kind == "mean":
        sigma = numpyro.sample("sigma", _prior("sigma", priors))
        mu = jnp.sum(weights * F, axis=-1)
        with numpyro.plate("nucleus", n):
            numpyro.sample("y", dist.Normal(mu, sigma), obs=y)
    else:
        with numpyro.plate("model", p):
            sigma = numpyro.sample("sigma", _prior("sigma", priors))
        w = jnp.broadcast_to(weights, (n, p))
        mix = dist.MixtureSameFamily(dist.Categorical(probs=w), dist.Normal(F, sigma))
        with numpyro.plate("nucleus", n):
            numpyro.sample("y", mix, obs=y)


def linear(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
) -> None:
    """GBMM+L: y = Σ_k ω_k f_k + σ ε with independent ω_k ~ U(0, 1) (no simplex constraint).

    Sites: ``weights`` (p,), ``sigma``, ``y`` (n,).
    """
    del x
    check_likelihood(likelihood_kind)
    p = F.shape[1]
    with numpyro.plate("model", p):
        w = numpyro.sample("weights", _prior("weight", priors))
    if likelihood_kind == "density":
        w = w / jnp.sum(w)
    likelihood(F, w, y, likelihood_kind, priors)


def dirichlet(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    parameterization: str = "noncentered",
) -> None:
    """GBMM+D: ω | α ~ Dirichlet(α), α_k ~ HalfNormal(2); y as in :func:`linear`.

    Sites: ``alpha`` (p,), ``weights`` (p,) on the simplex, ``sigma``, ``y`` (n,).
    ``parameterization="noncentered"`` (default) samples ω through
    :func:`dirichlet_noncentered` (same law, no funnel when α_k is small);
    ``"centered"`` samples ``weights ~ Dirichlet(α)`` directly.
    """
    del x
    check_likelihood(likelihood_kind)
    p = F.shape[1]
    with numpyro.plate("model", p):
        alpha = numpyro.sample("alpha", _prior("alpha", priors))
    if parameterization == "centered":
        w = numpyro.sample("weights", dist.Dirichlet(alpha))
    else:
        w = numpyro.deterministic("weights", dirichlet_noncentered(alpha))
    likelihood(F, w, y, likelihood_kind, priors)


def dirichlet_noncentered(alpha: jnp.ndarray, name: str = "") -> jnp.ndarray:
    """ω ~ Dirichlet(α) written so that small α makes no funnel.

    ω = softmax(log g) with g_k ~ Gamma(α_k, 1); for the Gamma we use the identity
    Gamma(α) =d Gamma(α + 1) · U^{1/α}, i.e. log g_k = log h_k − e_k / α_k with
    h_k ~ Gamma(α_k + 1, 1) and e_k ~ Exponential(1) independent of α. The exact Dirichlet
    law is kept; the sites ``{name}gamma_aux`` and ``{name}exp_aux`` are what NUTS sees.
    """
    with numpyro.plate(f"{name}model_aux", alpha.shape[-1], dim=-1):
        h = numpyro.sample(f"{name}gamma_aux", dist.Gamma(alpha + 1.0, 1.0))
        e = numpyro.sample(f"{name}exp_aux", dist.Exponential(1.0))
    return jax.nn.softmax(jnp.log(h) - e / alpha, axis=-1)


def project_simplex(weights: jnp.ndarray) -> jnp.ndarray:
    """The paper's Eq. 4: ω_k ← max(ω_k, 0) / Σ_l max(ω_l, 0), along the last axis."""
    w = jnp.maximum(weights, 0.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)
