"""Noise and discrepancy models: how y scatters about a mixture's mean.

Every MCMC mixer with the ``mean`` likelihood writes y_i = μ_i + e_i, with μ_i the mixed
prediction and an extra variance v_i that the mixer itself may carry (the local mixers'
Dirichlet term, zero for the global ones). Option ``noise`` chooses e:

``"constant"`` (the paper)
    e_i ~ N(0, σ² + v_i), σ ~ Gamma(5, 10).
``"student_t"``
    e_i ~ StudentT(ν, 0, √(σ² + v_i)), ν ~ Gamma(2, 0.1) (Juárez & Steel): a few large
    misses no longer inflate σ for every nucleus.
``"spread"`` (heteroscedastic: the models' disagreement)
    e_i ~ N(0, σ² + v_i + κ² s_i²), s_i the standard deviation of the p model predictions
    at x_i, κ ~ HalfNormal(1) (site ``spread_scale``). Where the models disagree, the error
    of any mixture of them is larger; s_i is known at every input, so a fit on the measured
    nuclei learns κ and the predictive law widens wherever the models part, as they do away
    from the data.
``"gp"`` (Kennedy–O'Hagan discrepancy)
    e_i = δ(x_i) + ε_i, δ ~ GP(0, τ² exp(−½ Σ_d (Δx_d/ρ_d)²)), ε_i ~ N(0, σ² + v_i),
    τ ~ HalfNormal(0.5) (site ``delta_scale``, MeV), ρ_d ~ Gamma(5, 1) (site ``delta_rho``,
    input units: nucleons). δ is integrated out exactly under the Vecchia approximation of
    the Gaussian law of e: p(e) ≈ Π_i p(e_i | e_j, j ∈ nb(i)), nb(i) the ``noise_neighbors``
    nearest inputs earlier in the (Z, N) order. At a new input the predictive law of δ is its
    conditional given the residuals at the nearest training inputs: it follows the training
    residuals near the data and widens to τ² away from them — the predictive law knows where
    the data end.

The ``density`` likelihood (y ~ Σ ω_k N(f_k, σ_k²)) takes ``constant`` or ``student_t``
(each component a Student-t); the discrepancy is refused there, since it does not integrate
out of a mixture of densities.

The Vecchia law is a proper Gaussian law (a product of conditionals), so it has a sampler
and serves the prior predictive and simulation-based calibration like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .. import _jax  # noqa: F401
from ..data.errors import OptionError
from .kernels import se_kernel

__all__ = [
    "NOISES",
    "NOISE_DEFAULTS",
    "VecchiaNormal",
    "check_noise",
    "discrepancy_conditional",
    "model_spread",
    "nearest_neighbors",
    "noise_priors",
    "observe",
    "vecchia_neighbors",
]

NOISES = ("constant", "student_t", "spread", "gp")
NOISE_DEFAULTS: tuple[tuple[str, object], ...] = (("noise", "constant"), ("noise_neighbors", 4))


def noise_priors() -> dict[str, dist.Distribution]:
    """The default priors of the noise sites, by name."""
    return {
        "sigma": dist.Gamma(5.0, 10.0),
        "nu": dist.Gamma(2.0, 0.1),
        "spread_scale": dist.HalfNormal(1.0),
        "delta_scale": dist.HalfNormal(0.5),
        "delta_rho": dist.Gamma(5.0, 1.0),
    }


#: Prior names each noise model adds to its mixer's (``sigma`` is every mixer's).
NOISE_PRIOR_NAMES = {
    "constant": (),
    "student_t": ("nu",),
    "spread": ("spread_scale",),
    "gp": ("delta_scale", "delta_rho"),
}


def _prior(name: str, priors: Mapping[str, dist.Distribution] | None) -> dist.Distribution:
    if priors and name in priors:
        return priors[name]
    return noise_priors()[name]


def check_noise(noise: str, likelihood_kind: str) -> None:
    """Refuse an unknown noise model, or one the likelihood cannot carry."""
    if noise not in NOISES:
        raise OptionError(f"option noise: unknown noise model {noise!r}; expected one of {NOISES}")
    if noise in ("gp", "spread") and likelihood_kind != "mean":
        raise OptionError(
            f"option noise={noise!r} (about the mixed mean) needs likelihood 'mean'; the "
            "density likelihood takes noise 'constant' or 'student_t'"
        )


def model_spread(F: jnp.ndarray) -> jnp.ndarray:
    """The standard deviation of the model predictions at each input, (..., n)."""
    return jnp.std(jnp.asarray(F), axis=-1)


# ------------------------------------------------------------------ kernel and neighbours


def vecchia_neighbors(x: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Conditioning sets of the Vecchia approximation at inputs x (n, q).

    The inputs are ordered lexicographically (first column, then the next: isotopic chains
    in turn); each input conditions on the ``m`` nearest (Euclidean) inputs earlier in that
    order.

    Returns
    -------
    (nb, mask)
        (n, m) positions into x and a mask of the real ones (the first inputs have fewer
        than m predecessors).
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    m = int(m)
    if m < 1:
        raise OptionError(f"option noise_neighbors: expected a positive integer, got {m}")
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort(x.T[::-1])] = np.arange(n)
    nb = np.zeros((n, m), dtype=np.int64)
    mask = np.zeros((n, m), dtype=bool)
    for i in range(n):
        prev = np.flatnonzero(rank < rank[i])
        if prev.size == 0:
            continue
        d = np.sum((x[prev] - x[i]) ** 2, axis=1)
        take = prev[np.lexsort((prev, d))[:m]]
        nb[i, : take.size] = take
        mask[i, : take.size] = True
    return nb, mask


def nearest_neighbors(x_from: np.ndarray, x_to: np.ndarray, m: int) -> np.ndarray:
    """Positions (n_to, m) of the m nearest inputs of ``x_from`` to each input of ``x_to``."""
    x_from, x_to = np.asarray(x_from, float), np.asarray(x_to, float)
    m = min(int(m), x_from.shape[0])
    d = np.sum((x_to[:, None, :] - x_from[None, :, :]) ** 2, axis=-1)
    return np.argsort(d, axis=1, kind="stable")[:, :m]


def _spd_solve(A: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    """Solve A x = b for a batch of small SPD systems laid out batch-last: A (m, m, n),
    b (m, n). The Cholesky factorisation is unrolled over the m rows on length-n vectors:
    for the few neighbours of a Vecchia set this is several times faster (and faster to
    differentiate) on the CPU than n calls of LAPACK."""
    m = A.shape[0]
    L: dict[tuple[int, int], jnp.ndarray] = {}
    for j in range(m):
        s = A[j, j]
        for k in range(j):
            s = s - L[j, k] ** 2
        L[j, j] = jnp.sqrt(s)
        for i in range(j + 1, m):
            t = A[i, j]
            for k in range(j):
                t = t - L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    z: list[jnp.ndarray] = []
    for i in range(m):
        t = b[i]
        for k in range(i):
            t = t - L[i, k] * z[k]
        z.append(t / L[i, i])
    out: list[jnp.ndarray] = [z[0]] * m
    for i in reversed(range(m)):
        t = z[i]
        for k in range(i + 1, m):
            t = t - L[k, i] * out[k]
        out[i] = t / L[i, i]
    return jnp.stack(out, axis=0)


def _conditionals(x, nb, mask, var_diag, tau, rho):
    """Coefficients b (n, m) and variances v (n,) of e_i | e_nb(i) under C = τ²K + diag."""
    nbT = jnp.asarray(nb).T  # (m, n): batch last
    mT = jnp.asarray(mask).T.astype(x.dtype)
    xn = x[nbT]  # (m, n, q)
    d = (xn[:, None] - xn[None, :]) / rho
    pair = mT[:, None] * mT[None, :]
    C = tau**2 * jnp.exp(-0.5 * jnp.sum(d * d, axis=-1)) * pair
    C = C + jnp.eye(nbT.shape[0])[:, :, None] * jnp.where(mT > 0, var_diag[nbT], 1.0)[None]
    di = (x[None] - xn) / rho
    c = tau**2 * jnp.exp(-0.5 * jnp.sum(di * di, axis=-1)) * mT  # (m, n)
    b = _spd_solve(C, c)
    v = tau**2 + var_diag - jnp.sum(b * c, axis=0)
    return b.T, v


class VecchiaNormal(dist.Distribution):
    """The Vecchia approximation of N(loc, τ² K_ρ + diag(var_diag)) at inputs x.

    A proper Gaussian law: the product of the conditionals of each coordinate given its
    neighbours ``nb`` (earlier in the order, see :func:`vecchia_neighbors`).
    """

    arg_constraints: ClassVar = {"loc": constraints.real_vector}
    support = constraints.real_vector
    reparametrized_params: ClassVar = ["loc"]

    def __init__(self, loc, var_diag, tau, rho, x, nb, mask, *, validate_args=None):
        self.loc, self.var_diag, self.tau, self.rho = loc, var_diag, tau, rho
        self.x, self.nb, self.nb_mask = x, jnp.asarray(nb), jnp.asarray(mask)
        try:  # the sampling order needs concrete inputs; under a trace only log_prob is used
            self._order = np.lexsort(np.asarray(x).T[::-1])
        except jax.errors.TracerArrayConversionError:
            self._order = None
        super().__init__(batch_shape=(), event_shape=jnp.shape(loc)[-1:],
                         validate_args=validate_args)  # fmt: skip

    def _bv(self):
        return _conditionals(self.x, self.nb, self.nb_mask, self.var_diag, self.tau, self.rho)

    def pointwise_log_prob(self, value):
        """log p(e_i | e_nb(i)) per coordinate; they sum to :meth:`log_prob`."""
        b, v = self._bv()
        e = value - self.loc
        mean = jnp.sum(b * e[..., self.nb] * self.nb_mask, axis=-1)
        return dist.Normal(mean, jnp.sqrt(v)).log_prob(e)

    def log_prob(self, value):
        return jnp.sum(self.pointwise_log_prob(value), axis=-1)

    def sample(self, key, sample_shape=()):
        if self._order is None:
            raise ValueError("VecchiaNormal.sample needs concrete inputs x")
        b, v = self._bv()
        n = self.event_shape[0]
        z = jax.random.normal(key, (*sample_shape, n))

        def step(e, i):
            mean = jnp.sum(b[i] * e[..., self.nb[i]] * self.nb_mask[i], axis=-1)
            return e.at[..., i].set(mean + jnp.sqrt(v[i]) * z[..., i]), None

        e0 = jnp.zeros((*sample_shape, n))
        e, _ = jax.lax.scan(step, e0, jnp.asarray(self._order))
        return self.loc + e


# ------------------------------------------------------------------ the observation site


def observe(
    mu: jnp.ndarray,
    var_extra: jnp.ndarray | float,
    y: jnp.ndarray | None,
    *,
    x: jnp.ndarray | None,
    noise: str,
    priors: Mapping[str, dist.Distribution] | None,
    noise_nb=None,
    noise_mask=None,
    F: jnp.ndarray | None = None,
) -> None:
    """Sample the noise sites and observe ``y`` (n,) about the mixed mean ``mu`` (n,).

    ``var_extra`` is the variance the mixer itself carries at each input (0 for the global
    mixers). ``noise_nb``/``noise_mask`` are the Vecchia sets of ``noise="gp"``
    (:func:`vecchia_neighbors` of x, computed once per fit); ``F`` (n, p) the model
    predictions, whose spread ``noise="spread"`` uses.
    """
    n = mu.shape[-1]
    sigma = numpyro.sample("sigma", _prior("sigma", priors))
    var = sigma**2 + var_extra
    if noise == "constant":
        with numpyro.plate("nucleus", n):
            numpyro.sample("y", dist.Normal(mu, jnp.sqrt(var)), obs=y)
    elif noise == "student_t":
        nu = numpyro.sample("nu", _prior("nu", priors))
        with numpyro.plate("nucleus", n):
            numpyro.sample("y", dist.StudentT(nu, mu, jnp.sqrt(var)), obs=y)
    elif noise == "spread":
        kappa = numpyro.sample("spread_scale", _prior("spread_scale", priors))
        var = var + (kappa * model_spread(F)) ** 2
        with numpyro.plate("nucleus", n):
            numpyro.sample("y", dist.Normal(mu, jnp.sqrt(var)), obs=y)
    elif noise == "gp":
        q = x.shape[-1]
        tau = numpyro.sample("delta_scale", _prior("delta_scale", priors))
        with numpyro.plate("coord", q):
            rho = numpyro.sample("delta_rho", _prior("delta_rho", priors))
        if noise_nb is None:
            noise_nb, noise_mask = vecchia_neighbors(np.asarray(x), NOISE_DEFAULTS[1][1])
        var = jnp.broadcast_to(var, (n,))
        numpyro.sample("y", VecchiaNormal(mu, var, tau, rho, x, noise_nb, noise_mask), obs=y)
    else:
        raise OptionError(f"unknown noise {noise!r}; expected one of {NOISES}")


def observe_density(
    F: jnp.ndarray,
    weights: jnp.ndarray,
    y: jnp.ndarray | None,
    *,
    noise: str,
    priors: Mapping[str, dist.Distribution] | None,
) -> None:
    """The density likelihood y ~ Σ_k ω_k D(f_k, σ_k) with D normal or Student-t."""
    n, p = F.shape
    with numpyro.plate("model", p):
        sigma = numpyro.sample("sigma", _prior("sigma", priors))
    if noise == "student_t":
        nu = numpyro.sample("nu", _prior("nu", priors))
        comp = dist.StudentT(nu, F, sigma)
    else:
        comp = dist.Normal(F, sigma)
    w = jnp.broadcast_to(weights, (n, p))
    mix = dist.MixtureSameFamily(dist.Categorical(probs=w), comp)
    with numpyro.plate("nucleus", n):
        numpyro.sample("y", mix, obs=y)


# ------------------------------------------------------------------ prediction


def discrepancy_conditional(
    resid: jnp.ndarray,
    var_train: jnp.ndarray,
    x_train: jnp.ndarray,
    x_new: jnp.ndarray,
    nn: jnp.ndarray,
    tau: jnp.ndarray,
    rho: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean and variance of δ(x_new) given the residuals at the nearest training inputs.

    Parameters
    ----------
    resid, var_train
        (n,) residuals y − μ at the training inputs and their non-GP variance σ² + v_i.
    x_train, x_new
        (n, q) and (n*, q) inputs.
    nn
        (n*, m) positions of the nearest training inputs of each new one
        (:func:`nearest_neighbors`).
    tau, rho
        One posterior draw of ``delta_scale`` and ``delta_rho``.

    Returns
    -------
    (mean, var)
        (n*,) each: E[δ | e_nn] = k*ᵀ C⁻¹ e_nn and τ² − k*ᵀ C⁻¹ k*, C = τ²K + diag(var).
    """
    m = nn.shape[1]
    xn = x_train[nn]  # (n*, m, q)
    C = tau**2 * se_kernel(xn, xn, rho) + jnp.eye(m) * var_train[nn][:, None, :]
    k = tau**2 * se_kernel(x_new[:, None, :], xn, rho)[:, 0, :]
    L = jnp.linalg.cholesky(C)
    a = jax.scipy.linalg.cho_solve((L, True), k[..., None])[..., 0]
    mean = jnp.sum(a * resid[nn], axis=-1)
    var = jnp.clip(tau**2 - jnp.sum(a * k, axis=-1), 0.0, None)
    return mean, var
