"""Global mixtures (weights constant over the input space): GBMM+L and GBMM+D.

Two likelihoods, for every mixer:

``mean`` (the paper, Eq. 1)
    y_i ~ N(Σ_k ω_k f_k(x_i), σ²): mix the predictions, one noise scale σ.
``density`` (per-model noise)
    y_i ~ Σ_k ω_k N(f_k(x_i), σ_k²): mix the predictive densities, one σ_k per model.
    For ``linear`` the weights are normalised to the simplex (ω / Σω) in this likelihood.

Priors (the paper's Table 3) are the defaults; each can be overridden by its site name with
a NumPyro distribution: ``weights`` (linear: U(0, 1) per model), ``alpha`` (dirichlet:
HalfNormal(2) per model), ``sigma`` (Gamma(shape 5, rate 10)) and those of the noise model
(:mod:`lbmm.mixers.noise`). Option ``noise`` chooses how y scatters about the mixed mean.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .. import _jax  # noqa: F401
from ..data.errors import OptionError
from .noise import check_noise, noise_priors, observe, observe_density

__all__ = [
    "DEFAULT_PRIORS",
    "LINEAR_PARAMETERIZATIONS",
    "ORTHO_DEFAULTS",
    "check_linear_parameterization",
    "dirichlet",
    "dirichlet_noncentered",
    "dirichlet_weights",
    "likelihood",
    "linear",
    "orthogonal",
    "prepare_linear",
    "prepare_orthogonal",
    "project_simplex",
]

LIKELIHOODS = ("mean", "density")


def _default_priors() -> dict[str, dist.Distribution]:
    return {
        "weights": dist.Uniform(0.0, 1.0),
        "alpha": dist.HalfNormal(2.0),
        "coef": dist.Normal(0.0, 1.0),
    }


DEFAULT_PRIORS: Mapping[str, dist.Distribution] = {**_default_priors(), **noise_priors()}
"""Default priors of the global mixers and of the noise models, by site name."""


def _prior(name: str, priors: Mapping[str, dist.Distribution] | None) -> dist.Distribution:
    if priors and name in priors:
        return priors[name]
    return _default_priors()[name]


def check_likelihood(likelihood: str) -> None:
    """Raise a clear error for an unknown likelihood name."""
    if likelihood not in LIKELIHOODS:
        raise OptionError(f"unknown likelihood {likelihood!r}; expected one of {LIKELIHOODS}")


def likelihood(
    F: jnp.ndarray,
    weights: jnp.ndarray,
    y: jnp.ndarray | None,
    kind: str,
    priors: Mapping[str, dist.Distribution] | None,
    *,
    x: jnp.ndarray | None = None,
    noise: str = "constant",
    noise_nb=None,
    noise_mask=None,
) -> None:
    """The observation site ``y`` of a mixture with weights (p,) or (n, p).

    ``mean``: y about Σ_k ω_k f_k with the noise model ``noise``
    (:func:`lbmm.mixers.noise.observe`); ``density``: y ~ Σ_k ω_k N(f_k, σ_k²) (or
    Student-t components), one ``sigma`` per model.
    """
    if kind == "mean":
        mu = jnp.sum(weights * F, axis=-1)
        observe(mu, 0.0, y, x=x, noise=noise, priors=priors, noise_nb=noise_nb,
                noise_mask=noise_mask, F=F)  # fmt: skip
    else:
        observe_density(F, weights, y, noise=noise, priors=priors)


def linear(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    parameterization: str = "box",
    noise: str = "constant",
    noise_neighbors: int = 4,
    noise_nb=None,
    noise_mask=None,
) -> None:
    """GBMM+L: y = Σ_k ω_k f_k + e with independent ω_k ~ U(0, 1) (no simplex constraint)
    and e the noise model ``noise`` (:mod:`lbmm.mixers.noise`; the paper: σ ε).

    ``parameterization``: ``"box"`` samples ``weights`` ~ U(0, 1) directly;
    ``"sum_simplex"`` (the option's default for new fits) samples the same law as ω = s π
    with π on the simplex (``weight_shares``) and s = Σ ω_k (``weight_total``), their joint
    density s^(K−1) on s · max π ≤ 1 being the box's pushed forward (exact, not an
    approximation). The likelihood pins s (all models predict about y, so Σ ω_k ≈ 1) and
    leaves π to the models' differences: the sampler no longer follows that tight
    constraint through the box's logit transform. It applies to the default uniform prior
    only: with a ``weights`` prior given, the box is sampled.

    Sites: ``weights`` (p,) (deterministic with ``"sum_simplex"``), ``sigma``, the noise
    model's, ``y`` (n,).
    """
    del noise_neighbors
    check_likelihood(likelihood_kind)
    check_noise(noise, likelihood_kind)
    check_linear_parameterization(parameterization)
    p = F.shape[1]
    if parameterization == "sum_simplex" and not (priors and "weights" in priors):
        w = _sum_simplex_weights(p)
    else:
        with numpyro.plate("model", p):
            w = numpyro.sample("weights", _prior("weights", priors))
    if likelihood_kind == "density":
        w = w / jnp.sum(w)
    likelihood(F, w, y, likelihood_kind, priors, x=x, noise=noise, noise_nb=noise_nb,
               noise_mask=noise_mask)  # fmt: skip


#: Parameterisations of :func:`linear`'s weights.
LINEAR_PARAMETERIZATIONS = ("box", "sum_simplex")


def check_linear_parameterization(name: str) -> None:
    """Raise a clear error for an unknown parameterisation of GBMM+L's weights."""
    if name not in LINEAR_PARAMETERIZATIONS:
        raise OptionError(f"option parameterization: expected one of "
                          f"{list(LINEAR_PARAMETERIZATIONS)}, got {name!r}")  # fmt: skip


class _BoxShares(dist.Distribution):
    """π = ω / Σω for ω ~ U(0, 1)^K: density (max π)^(−K) / K on the simplex."""

    support = constraints.simplex

    def __init__(self, k: int, *, validate_args=None):
        self.k = int(k)
        super().__init__(batch_shape=(), event_shape=(self.k,), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        u = jax.random.uniform(key, (*sample_shape, self.k))
        return u / jnp.sum(u, axis=-1, keepdims=True)

    def log_prob(self, value):
        return -self.k * jnp.log(jnp.max(value, axis=-1)) - jnp.log(self.k)


class _BoxTotal(dist.Distribution):
    """s = Σω given π = ω / Σω for ω ~ U(0, 1)^K: density K s^(K−1) m^K on (0, 1/m), with
    m = max π. The support is written as the fixed (0, K) ⊇ (0, 1/m), so the sampler's
    coordinate for s does not depend on π; outside (0, 1/m) the density is zero."""

    def __init__(self, max_share, k: int, *, validate_args=None):
        self.max_share = max_share
        self.k = int(k)
        super().__init__(batch_shape=jnp.shape(max_share), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(0.0, float(self.k))

    def sample(self, key, sample_shape=()):
        u = jax.random.uniform(key, (*sample_shape, *self.batch_shape))
        return u ** (1.0 / self.k) / self.max_share

    def log_prob(self, value):
        lp = (jnp.log(self.k) + (self.k - 1) * jnp.log(value)
              + self.k * jnp.log(self.max_share))  # fmt: skip
        return jnp.where(value * self.max_share <= 1.0, lp, -jnp.inf)


def prepare_linear(train, opts: dict) -> dict:
    """GBMM+L's options checked when a fit resolves them (its ``prepare`` step)."""
    del train
    check_linear_parameterization(opts["parameterization"])
    return opts


def _sum_simplex_weights(p: int) -> jnp.ndarray:
    """ω ~ U(0, 1)^p sampled as ω = s π: the joint law of (s, π) is the box's pushed
    forward (p(π) p(s | π) = s^(p−1) on s max π ≤ 1), so prior draws, log densities and
    evidences are those of the box."""
    pi = numpyro.sample("weight_shares", _BoxShares(p))
    s = numpyro.sample("weight_total", _BoxTotal(jnp.max(pi), p))
    return numpyro.deterministic("weights", s * pi)


def dirichlet(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    parameterization: str = "noncentered",
    noise: str = "constant",
    noise_neighbors: int = 4,
    noise_nb=None,
    noise_mask=None,
) -> None:
    """GBMM+D: ω | α ~ Dirichlet(α), α_k ~ HalfNormal(2); y as in :func:`linear`.

    Sites: ``alpha`` (p,), ``weights`` (p,) on the simplex, ``sigma``, ``y`` (n,).
    ``parameterization="noncentered"`` (default) samples ω through
    :func:`dirichlet_noncentered` (same law, no funnel when α_k is small);
    ``"centered"`` samples ``weights ~ Dirichlet(α)`` directly.
    """
    del noise_neighbors
    check_likelihood(likelihood_kind)
    check_noise(noise, likelihood_kind)
    p = F.shape[1]
    with numpyro.plate("model", p):
        alpha = numpyro.sample("alpha", _prior("alpha", priors))
    if parameterization == "centered":
        w = numpyro.sample("weights", dist.Dirichlet(alpha))
    else:
        w = numpyro.deterministic("weights", dirichlet_noncentered(alpha))
    likelihood(F, w, y, likelihood_kind, priors, x=x, noise=noise, noise_nb=noise_nb,
               noise_mask=noise_mask)  # fmt: skip


#: Options of :func:`orthogonal` (besides the noise model's).
ORTHO_DEFAULTS = (("components", None), ("explained", 0.99), ("basis", None))


def prepare_orthogonal(train, opts: dict) -> dict:
    """The orthonormal directions of :func:`orthogonal` from the training split: the right
    singular vectors of the centred model matrix F − mean_k f_k (rows: nuclei), the first
    ``components`` of them, or as many as explain ``explained`` of its variance."""
    F = np.asarray(train.F, dtype=float)
    p = F.shape[1]
    if p < 2:
        raise OptionError("mixer 'orthogonal' needs at least two models")
    if opts.get("basis") is not None:
        V = np.asarray(opts["basis"], dtype=float)
        if V.ndim != 2 or V.shape[0] != p or not 1 <= V.shape[1] < p:
            raise OptionError(f"option basis: expected a {p} × k list of lists (k < {p})")
        opts["components"] = int(V.shape[1])
        return opts
    k = opts.get("components")
    e = opts.get("explained")
    if not isinstance(e, int | float) or isinstance(e, bool) or not 0 < e <= 1:
        raise OptionError(f"option explained: expected a share in (0, 1], got {e!r}")
    D = F - F.mean(axis=1, keepdims=True)
    _, s, vt = np.linalg.svd(D, full_matrices=False)
    rank = int(np.sum(s > s[0] * 1e-10))
    if k is None:
        share = np.cumsum(s[:rank] ** 2) / np.sum(s[:rank] ** 2)
        k = int(np.searchsorted(share, e - 1e-12) + 1)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= rank:
        raise OptionError(
            f"option components: expected an integer from 1 to {rank} (the rank of the "
            f"centred model matrix), got {k!r}"
        )
    opts["components"] = int(k)
    opts["basis"] = vt[:k].T.tolist()
    opts["singular_values"] = s[:k].tolist()
    return opts


def orthogonal(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    components: int | None = None,
    explained: float = 0.99,
    basis=None,
    singular_values=None,
    noise: str = "constant",
    noise_neighbors: int = 4,
    noise_nb=None,
    noise_mask=None,
) -> None:
    """GBMM on orthogonalised models: ω = 1/K + V γ, γ_j ~ N(0, 1), with V (K × k) the
    leading right singular vectors of the centred model matrix (:func:`prepare_orthogonal`;
    pybmc's construction). The weights sum to one (V ⟂ 1) but may be negative; the mixture
    mean is the models' average plus k uncorrelated directions in which they disagree, so
    near-duplicate models no longer trade weight. y as in :func:`linear`.

    Sites: ``coef`` (k,), ``weights`` (p,) deterministic, ``sigma``, ``y`` (n,).
    """
    del noise_neighbors, components, explained, singular_values
    check_likelihood(likelihood_kind)
    if likelihood_kind != "mean":
        raise OptionError("mixer 'orthogonal': its weights may be negative; likelihood 'mean' only")
    check_noise(noise, likelihood_kind)
    V = jnp.asarray(basis, dtype=float)
    p = F.shape[1]
    with numpyro.plate("component", V.shape[1]):
        g = numpyro.sample("coef", _prior("coef", priors))
    w = numpyro.deterministic("weights", 1.0 / p + V @ g)
    likelihood(F, w, y, likelihood_kind, priors, x=x, noise=noise, noise_nb=noise_nb,
               noise_mask=noise_mask)  # fmt: skip


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
    return dirichlet_weights(alpha, h, e)


def dirichlet_weights(alpha: jnp.ndarray, h: jnp.ndarray, e: jnp.ndarray) -> jnp.ndarray:
    """ω = softmax(log h − e/α): the Dirichlet(α) draw of :func:`dirichlet_noncentered` from
    its auxiliaries h ~ Gamma(α + 1), e ~ Exp(1)."""
    return jax.nn.softmax(jnp.log(h) - e / alpha, axis=-1)


def project_simplex(weights: jnp.ndarray) -> jnp.ndarray:
    """The paper's Eq. 4: ω_k ← max(ω_k, 0) / Σ_l max(ω_l, 0), along the last axis."""
    w = jnp.maximum(weights, 0.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)
