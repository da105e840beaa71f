"""Bayesian model averaging with exact, Monte Carlo and Laplace evidences.

Model M_k: y_i = f_k(x_i) + δ_k + σ_k ε_i (``discrepancy=True``; δ_k = 0 otherwise), with
the conjugate prior of the paper's Methods: precision λ_k = 1/σ_k² ~ Gamma(shape a, rate b),
δ_k | λ_k ~ N(μ, 1/λ_k). The paper's numbers a = 0.252, b = 0.030 are used as shape and
*rate* (read as a scale, b = 1/0.030, every evidence comes out nearly equal).

With residuals d_i = y_i − f_k(x_i), n of them, mean d̄:

- exact: p(y | M_k) = Γ(a_n) b^a / (Γ(a) b_n^{a_n} κ_n^{1/2}) (2π)^{−n/2}, with
  a_n = a + n/2, κ_n = 1 + n, b_n = b + ½ Σ (d_i − d̄)² + n (d̄ − μ)² / (2 κ_n)
  (without δ: b_n = b + ½ Σ d_i² and no κ_n);
- Monte Carlo: the mean of the likelihood over draws from the prior (log-mean-exp);
- Laplace: Gaussian approximation at the posterior mode in (δ, log λ), Jacobian included.

Weights: p(M_k | y) ∝ p(y | M_k) π(M_k) with π uniform. The posterior of each model is
normal-gamma again (μ_n = (μ + n d̄)/κ_n), so the BMA predictive law is a mixture of
Student-t laws; :func:`bma_posterior_draws` draws from it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp
from scipy import optimize

from .. import _jax  # noqa: F401
from ..data.errors import OptionError

__all__ = ["BMAResult", "bma", "bma_evidence", "bma_posterior_draws"]

METHODS = ("exact", "mc", "laplace")
LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class BMAPrior:
    """Conjugate prior: λ ~ Gamma(shape a, rate b), δ | λ ~ N(mu, 1/λ)."""

    a: float = 0.252
    b: float = 0.030
    mu: float = 0.0


def _posterior_params(
    d: np.ndarray, prior: BMAPrior, discrepancy: bool
) -> tuple[float, float, float, float]:
    """Normal-gamma posterior (μ_n, κ_n, a_n, b_n) from residuals d (κ_n = inf without δ)."""
    n = d.size
    a_n = prior.a + n / 2
    if not discrepancy:
        return 0.0, np.inf, a_n, prior.b + 0.5 * float(np.sum(d**2))
    dbar = float(d.mean())
    b_n = (
        prior.b + 0.5 * float(np.sum((d - dbar) ** 2)) + n * (dbar - prior.mu) ** 2 / (2 * (1 + n))
    )
    return (prior.mu + n * dbar) / (1 + n), 1.0 + n, a_n, b_n


def _log_evidence_exact(d: np.ndarray, prior: BMAPrior, discrepancy: bool) -> float:
    _, kappa_n, a_n, b_n = _posterior_params(d, prior, discrepancy)
    log_kappa = 0.5 * np.log(kappa_n) if discrepancy else 0.0
    a, b = prior.a, prior.b
    return float(
        gammaln(a_n) - gammaln(a) + a * np.log(b) - a_n * np.log(b_n) - log_kappa
        - d.size / 2 * LOG_2PI
    )  # fmt: skip


def _loglik(d: jnp.ndarray, delta: jnp.ndarray, lam: jnp.ndarray) -> jnp.ndarray:
    n = d.shape[-1]
    r = d - delta[..., None]
    return 0.5 * n * (jnp.log(lam) - LOG_2PI) - 0.5 * lam * jnp.sum(r**2, axis=-1)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _mc_terms(d: jnp.ndarray, key: jax.Array, prior: BMAPrior, discrepancy: bool, num: int):
    """One compiled computation (the prior draws and the likelihood over them): as separate
    eager operations the gamma draws and the (num × n) residuals cost seconds per model."""
    k1, k2 = jax.random.split(key)
    lam = jax.random.gamma(k1, prior.a, (num,)) / prior.b
    lam = jnp.maximum(lam, 1e-300)
    if discrepancy:
        delta = prior.mu + jax.random.normal(k2, (num,)) / jnp.sqrt(lam)
    else:
        delta = jnp.zeros(num)
    ll = _loglik(d, delta, lam)
    lme = logsumexp(ll) - jnp.log(num)
    # delta method: se(log mean) = sd(L) / (sqrt(num) * mean(L))
    rel = jnp.exp(ll - lme)
    return lme, jnp.std(rel) / jnp.sqrt(num)


def _log_evidence_mc(
    d: np.ndarray, prior: BMAPrior, discrepancy: bool, key: jax.Array, num: int
) -> tuple[float, float]:
    """log-mean-exp of the likelihood over prior draws, and its Monte Carlo standard error."""
    lme, se = _mc_terms(jnp.asarray(d), key, prior, bool(discrepancy), int(num))
    return float(lme), float(se)


def _log_joint_unconstrained(theta: jnp.ndarray, d: jnp.ndarray, prior: BMAPrior, disc: bool):
    """log p(d | δ, λ) + log π(δ, λ) + log|dλ/dlogλ| at θ = (δ, log λ) or (log λ,)."""
    if disc:
        delta, loglam = theta[0], theta[1]
    else:
        delta, loglam = 0.0, theta[0]
    lam = jnp.exp(loglam)
    lp = _loglik(d, jnp.asarray(delta), lam)
    # Gamma(a, rate b) on λ, plus the log-Jacobian log λ
    lp += prior.a * jnp.log(prior.b) - gammaln(prior.a) + prior.a * loglam - prior.b * lam
    if disc:
        lp += 0.5 * (loglam - LOG_2PI) - 0.5 * lam * (delta - prior.mu) ** 2
    return lp


def _neg_log_joint(theta, d, prior: BMAPrior, disc: bool):
    return -_log_joint_unconstrained(theta, d, prior, disc)


# Compiled once per (prior, discrepancy) and residual length, not once per model.
_neg_value_and_grad = jax.jit(jax.value_and_grad(_neg_log_joint), static_argnums=(2, 3))
_neg_hessian = jax.jit(jax.hessian(_neg_log_joint), static_argnums=(2, 3))


def _log_evidence_laplace(d: np.ndarray, prior: BMAPrior, discrepancy: bool) -> float:
    dj = jnp.asarray(d)

    def fun(t):
        v, g = _neg_value_and_grad(jnp.asarray(t), dj, prior, discrepancy)
        return float(v), np.asarray(g)

    x0 = np.array([d.mean(), -np.log(d.var() + 1e-6)] if discrepancy else [-np.log(np.mean(d**2))])
    res = optimize.minimize(fun, x0, jac=True, method="BFGS", options={"gtol": 1e-10})
    hess = np.asarray(_neg_hessian(jnp.asarray(res.x), dj, prior, discrepancy))
    dim = hess.shape[0]
    _, logdet = np.linalg.slogdet(hess)
    return float(-res.fun + 0.5 * dim * LOG_2PI - 0.5 * logdet)


def bma_evidence(
    residuals: np.ndarray,
    *,
    method: str = "exact",
    discrepancy: bool = True,
    prior: BMAPrior | None = None,
    key: jax.Array | None = None,
    num_mc: int = 400_000,
) -> float:
    """Log evidence log p(y | M) of one model from its residuals d = y − f.

    Parameters
    ----------
    method
        ``"exact"`` (closed form), ``"mc"`` (prior Monte Carlo) or ``"laplace"``.
    discrepancy
        Include the constant discrepancy δ.
    key
        Random key for ``"mc"`` (default ``PRNGKey(0)``).
    """
    d = np.asarray(residuals, dtype=np.float64)
    prior = prior or BMAPrior()
    if method == "exact":
        return _log_evidence_exact(d, prior, discrepancy)
    if method == "mc":
        key = jax.random.PRNGKey(0) if key is None else key
        return _log_evidence_mc(d, prior, discrepancy, key, num_mc)[0]
    if method == "laplace":
        return _log_evidence_laplace(d, prior, discrepancy)
    raise OptionError(f"unknown evidence method {method!r}; expected one of {METHODS}")


@dataclass(frozen=True)
class BMAResult:
    """Evidences, weights and per-model posteriors of a BMA fit.

    Attributes
    ----------
    models
        Model names.
    log_evidence
        method → (p,) log evidences.
    weights
        method → (p,) posterior model probabilities.
    mu_n, kappa_n, a_n, b_n
        (p,) normal-gamma posterior parameters of each model (from the evidence split).
    discrepancy, prior
        The settings used.
    """

    models: tuple[str, ...]
    log_evidence: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    mu_n: np.ndarray
    kappa_n: np.ndarray
    a_n: np.ndarray
    b_n: np.ndarray
    discrepancy: bool
    prior: BMAPrior = field(default_factory=BMAPrior)
    mc_se: np.ndarray | None = None


def bma(
    F: np.ndarray,
    y: np.ndarray,
    models: tuple[str, ...],
    *,
    discrepancy: bool = True,
    prior: BMAPrior | None = None,
    key: jax.Array | None = None,
    num_mc: int = 400_000,
) -> BMAResult:
    """BMA on evidence data: all three evidences, weights and per-model posteriors.

    Parameters
    ----------
    F
        (n, p) model predictions on the evidence nuclei.
    y
        (n,) observations there.
    """
    F = np.asarray(F, np.float64)
    y = np.asarray(y, np.float64)
    prior = prior or BMAPrior()
    key = jax.random.PRNGKey(0) if key is None else key
    p = F.shape[1]
    logz = {m: np.zeros(p) for m in METHODS}
    mc_se = np.zeros(p)
    post = np.zeros((4, p))  # rows: mu_n, kappa_n, a_n, b_n
    for k, mk in enumerate(jax.random.split(key, p)):
        d = y - F[:, k]
        logz["exact"][k] = _log_evidence_exact(d, prior, discrepancy)
        logz["mc"][k], mc_se[k] = _log_evidence_mc(d, prior, discrepancy, mk, num_mc)
        logz["laplace"][k] = _log_evidence_laplace(d, prior, discrepancy)
        post[:, k] = _posterior_params(d, prior, discrepancy)
    mu_n, kappa_n, a_n, b_n = post
    weights = {m: np.exp(v - np.logaddexp.reduce(v)) for m, v in logz.items()}
    return BMAResult(
        tuple(models), logz, weights, mu_n, kappa_n, a_n, b_n, discrepancy, prior, mc_se
    )


#: Gamma draws as one compiled computation (eagerly, its rejection loop costs seconds).
_gamma = jax.jit(jax.random.gamma, static_argnums=(2,))


def bma_posterior_draws(
    result: BMAResult, key: jax.Array, num_draws: int, method: str = "exact"
) -> dict[str, np.ndarray]:
    """Exact draws from the BMA posterior.

    Returns
    -------
    dict
        ``component`` (num_draws,) model index drawn with the BMA weights, ``delta`` and
        ``sigma`` (num_draws, p) from each model's normal-gamma posterior, ``weights`` (p,).
    """
    k1, k2, k3 = jax.random.split(key, 3)
    p = len(result.models)
    lam = np.asarray(_gamma(k1, jnp.asarray(result.a_n), (num_draws, p))) / result.b_n
    if result.discrepancy:
        z = np.asarray(jax.random.normal(k2, (num_draws, p)))
        delta = result.mu_n + z / np.sqrt(result.kappa_n * lam)
    else:
        delta = np.zeros((num_draws, p))
    w = result.weights[method]
    comp = np.asarray(jax.random.choice(k3, p, (num_draws,), p=jnp.asarray(w)))
    return {"component": comp, "delta": delta, "sigma": 1.0 / np.sqrt(lam), "weights": w}
