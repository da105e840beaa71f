"""Local mixtures: Dirichlet weights that vary over the input space (LBMM+GLD, LBMM+GPD).

At every nucleus x_i the weights are ω(x_i) | α(x_i) ~ Dirichlet(α(x_i)), with

``glm_dirichlet`` (GLD)
    log α_k(x) = β_kᵀ x̃,  β ~ N(0, 1), x̃ = (1, (Z − Z̄)/s_Z, (N − N̄)/s_N): standardised
    inputs (mean and sd of the training split) and an intercept (``intercept=False`` drops
    it; ``x_center``/``x_scale`` override the scaling).
``gp_dirichlet`` (GPD)
    log α_k(x) = γ_k∞ + g_k(x), g_k ~ GP(0, η_k exp(−ΔZ²/2ρ_Z² − ΔN²/2ρ_N²)),
    γ∞ ~ N(0, 1), η_k ~ Gamma(10, rate 2), ρ_Z, ρ_N ~ Gamma(5, rate 2) shared by the models.
    η_k is the kernel *variance* (it multiplies the kernel, as the paper writes it). The length
    scales live in units of ``gp_unit`` nucleons (default 1: raw Z and N). ``gp="hsgp"``
    (default) uses the Hilbert-space basis (``hsgp_m`` functions per dimension, boundary factor
    ``hsgp_c`` on the training box); ``gp="exact"`` a non-centred Cholesky factor at the
    training inputs (one Cholesky per gradient: the length scales are shared).

The weights enter the likelihood in one of two ways (option ``omega``):

``"collapsed"`` (default)
    ω is integrated out. For the ``density`` likelihood this is exact:
    E_ω[Σ ω_k N(y; f_k, σ_k²)] = Σ ā_k N(y; f_k, σ_k²), ā = α/α₀. For the ``mean`` likelihood,
    y | α, σ is replaced by the Gaussian with its exact first two moments,
    E = ā·f and Var = σ² + Σ_k ā_k (f_k − ā·f)² / (α₀ + 1).
``"latent"``
    the paper's model as written: one ω_i per training nucleus, sampled (non-centred, see
    :func:`~lbmm.mixers.global_.dirichlet_noncentered`).

Prediction at any nuclei (:func:`local_predictive`) computes log α there (the linear model,
the HSGP basis, or the exact GP conditional), draws ω ~ Dirichlet(α) afresh, then y with noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.contrib.hsgp.laplacian import eigenfunctions
from numpyro.contrib.hsgp.spectral_densities import diag_spectral_density_squared_exponential

from .. import _jax  # noqa: F401
from .global_ import _prior, check_likelihood, dirichlet_noncentered, likelihood

__all__ = [
    "GLD_DEFAULTS",
    "GPD_DEFAULTS",
    "glm_dirichlet",
    "gp_dirichlet",
    "hsgp_basis",
    "local_predictive",
    "mean_weights",
    "precompute_gpd",
    "prepare_gld",
    "prepare_gpd",
    "se_kernel",
]

OMEGAS = ("collapsed", "latent")
GPS = ("hsgp", "exact")

GLD_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("omega", "collapsed"),
    ("intercept", True),
    ("x_center", None),
    ("x_scale", None),
)
GPD_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("omega", "collapsed"),
    ("gp", "hsgp"),
    ("gp_unit", 1.0),
    ("hsgp_m", (20, 30)),
    ("hsgp_c", 1.3),
    ("hsgp_center", None),
    ("hsgp_ell", None),
    ("jitter", 1e-6),
    ("x_train", None),
    ("rho", None),
)


def _local_priors() -> dict[str, dist.Distribution]:
    return {
        "beta": dist.Normal(0.0, 1.0),
        "gamma_inf": dist.Normal(0.0, 1.0),
        "eta": dist.Gamma(10.0, 2.0),
        "rho": dist.Gamma(5.0, 2.0),
    }


def _lprior(name: str, priors: Mapping[str, dist.Distribution] | None) -> dist.Distribution:
    if priors and name in priors:
        return priors[name]
    return _local_priors()[name]


def _check(omega: str, likelihood_kind: str) -> None:
    check_likelihood(likelihood_kind)
    if omega not in OMEGAS:
        raise ValueError(f"unknown omega {omega!r}; expected one of {OMEGAS}")


# ------------------------------------------------------------------ options from the data


def prepare_gld(train, opts: dict) -> dict:
    """Fill the input centring and scale of GLD from the training split (mean and sd)."""
    if opts.get("x_center") is None:
        opts["x_center"] = [float(v) for v in train.x.mean(axis=0)]
    if opts.get("x_scale") is None:
        opts["x_scale"] = [float(v) for v in train.x.std(axis=0)]
    return opts


def prepare_gpd(train, opts: dict) -> dict:
    """Fill the HSGP box (centre, half-width L = c · half-range of the training inputs) or the
    exact GP's training inputs."""
    if opts["gp"] not in GPS:
        raise ValueError(f"unknown gp {opts['gp']!r}; expected one of {GPS}")
    u = train.x / float(opts["gp_unit"])
    lo, hi = u.min(axis=0), u.max(axis=0)
    if opts.get("hsgp_center") is None:
        opts["hsgp_center"] = [float(v) for v in (lo + hi) / 2]
    if opts.get("hsgp_ell") is None:
        opts["hsgp_ell"] = [float(v) for v in float(opts["hsgp_c"]) * (hi - lo) / 2]
    opts["hsgp_m"] = [int(v) for v in opts["hsgp_m"]]
    opts["rho"] = _check_rho(opts.get("rho"))
    if opts["gp"] == "exact" and opts.get("x_train") is None:
        opts["x_train"] = train.x.tolist()
    return opts


def precompute_gpd(x: np.ndarray, opts: Mapping) -> dict:
    """Input-only arrays of GPD, computed once per fit: the HSGP basis at the training inputs,
    or, for the exact GP with fixed length scales (option ``rho``), the kernel's Cholesky
    factor."""
    u = jnp.asarray(x) / float(opts["gp_unit"])
    if opts["gp"] == "hsgp":
        return {"basis": hsgp_basis(u, opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])}
    if opts.get("rho") is not None:
        return {"chol": se_cholesky(u, jnp.asarray(opts["rho"], dtype=float), opts["jitter"])}
    return {}


def _check_rho(rho) -> list[float] | None:
    """The ``rho`` option: None (length scales sampled) or two positive numbers (fixed)."""
    if rho is None:
        return None
    vals = [float(v) for v in np.ravel(rho)]
    if len(vals) != 2 or not all(v > 0 and np.isfinite(v) for v in vals):
        raise ValueError(f"option rho: expected None or two positive length scales, got {rho!r}")
    return vals


# ------------------------------------------------------------------ GP pieces


def se_kernel(xa: jnp.ndarray, xb: jnp.ndarray, rho: jnp.ndarray) -> jnp.ndarray:
    """Unit-variance squared-exponential kernel with one length scale per input dimension."""
    d = (xa[:, None, :] - xb[None, :, :]) / rho
    return jnp.exp(-0.5 * jnp.sum(d * d, axis=-1))


def se_cholesky(u: jnp.ndarray, rho: jnp.ndarray, jitter: float) -> jnp.ndarray:
    """Lower Cholesky factor of the unit-variance SE kernel at u, plus ``jitter`` on the
    diagonal."""
    return jnp.linalg.cholesky(se_kernel(u, u, rho) + jitter * jnp.eye(u.shape[0]))


def _gp_conditional(ut, u, rho, jitter) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(A, sd) of the unit-variance GP at u given its values L z at ut: the conditional mean
    is Aᵀ z with A = L⁻¹ K(ut, u), the marginal sd √(1 − diag(AᵀA))."""
    L = se_cholesky(ut, rho, jitter)
    A = solve_triangular(L, se_kernel(ut, u, rho), lower=True)
    return A, jnp.sqrt(jnp.clip(1.0 - jnp.sum(A * A, axis=0), 0.0, 1.0))


def hsgp_basis(u: jnp.ndarray, center: Sequence[float], ell: Sequence[float], m: Sequence[int]):
    """Laplacian eigenfunctions (n, M) on the box centre ± ell, zero outside the box."""
    uc = u - jnp.asarray(center)
    phi = eigenfunctions(uc, ell=list(ell), m=list(m))
    inside = jnp.all(jnp.abs(uc) < jnp.asarray(ell), axis=-1)
    return jnp.where(inside[:, None], phi, 0.0)


def _hsgp_sqrt_spd(rho: jnp.ndarray, ell, m) -> jnp.ndarray:
    """√S(√λ_j) of the unit-variance SE kernel at the basis' eigenvalues (M,)."""
    spd = diag_spectral_density_squared_exponential(
        alpha=1.0, length=rho, ell=list(ell), m=list(m), dim=2
    )
    return jnp.sqrt(spd)


def _gp_params(p: int, priors, rho=None) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    with numpyro.plate("model", p):
        gamma_inf = numpyro.sample("gamma_inf", _lprior("gamma_inf", priors))
        eta = numpyro.sample("eta", _lprior("eta", priors))
    if rho is not None:
        return gamma_inf, eta, jnp.asarray(rho, dtype=float)
    rho_z = numpyro.sample("rho_z", _lprior("rho", priors))
    rho_n = numpyro.sample("rho_n", _lprior("rho", priors))
    return gamma_inf, eta, jnp.stack([rho_z, rho_n])


def _rho_draws(samples, opts) -> jnp.ndarray:
    """Length-scale draws (S, 2): sampled, or the fixed option repeated."""
    if opts.get("rho") is not None:
        return jnp.broadcast_to(jnp.asarray(opts["rho"], dtype=float), (len(samples["eta"]), 2))
    return jnp.stack([samples["rho_z"], samples["rho_n"]], axis=-1)


# ------------------------------------------------------------------ likelihood


def local_likelihood(
    F: jnp.ndarray,
    log_alpha: jnp.ndarray,
    y: jnp.ndarray | None,
    kind: str,
    omega: str,
    priors: Mapping[str, dist.Distribution] | None,
) -> None:
    """Observation site ``y`` given per-nucleus log concentrations (n, p)."""
    if omega == "latent":
        with numpyro.plate("nucleus_aux", F.shape[0], dim=-2):
            w = dirichlet_noncentered(jnp.exp(log_alpha))
        likelihood(F, w, y, kind, priors)
        return
    abar = jax.nn.softmax(log_alpha, axis=-1)
    if kind == "density":  # exact: the mixture density is linear in ω
        likelihood(F, abar, y, kind, priors)
        return
    alpha0 = jnp.exp(jax.nn.logsumexp(log_alpha, axis=-1))
    mu = jnp.sum(abar * F, axis=-1)
    var_w = jnp.sum(abar * (F - mu[:, None]) ** 2, axis=-1) / (alpha0 + 1.0)
    sigma = numpyro.sample("sigma", _prior("sigma", priors))
    with numpyro.plate("nucleus", F.shape[0]):
        numpyro.sample("y", dist.Normal(mu, jnp.sqrt(sigma**2 + var_w)), obs=y)


# ------------------------------------------------------------------ the mixers


def _design(x, x_center, x_scale, intercept: bool) -> jnp.ndarray:
    xs = (jnp.asarray(x) - jnp.asarray(x_center)) / jnp.asarray(x_scale)
    if intercept:
        xs = jnp.concatenate([jnp.ones((xs.shape[0], 1)), xs], axis=1)
    return xs


def glm_dirichlet(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    omega: str = "collapsed",
    intercept: bool = True,
    x_center: Sequence[float] = (0.0, 0.0),
    x_scale: Sequence[float] = (1.0, 1.0),
) -> None:
    """LBMM+GLD: log α_k(x) = β_kᵀ x̃, β ~ N(0, 1) (sites ``beta`` (q, p), ``sigma``, ``y``)."""
    _check(omega, likelihood_kind)
    X = _design(x, x_center, x_scale, intercept)
    q, p = X.shape[1], F.shape[1]
    with numpyro.plate("model", p, dim=-1), numpyro.plate("input", q, dim=-2):
        beta = numpyro.sample("beta", _lprior("beta", priors))
    local_likelihood(F, X @ beta, y, likelihood_kind, omega, priors)


def gp_dirichlet(
    F: jnp.ndarray,
    x: jnp.ndarray | None = None,
    y: jnp.ndarray | None = None,
    *,
    likelihood_kind: str = "mean",
    priors: Mapping[str, dist.Distribution] | None = None,
    omega: str = "collapsed",
    gp: str = "hsgp",
    gp_unit: float = 1.0,
    hsgp_m: Sequence[int] = (20, 30),
    hsgp_c: float = 1.3,
    hsgp_center: Sequence[float] = (0.0, 0.0),
    hsgp_ell: Sequence[float] = (1.0, 1.0),
    jitter: float = 1e-6,
    x_train=None,
    rho: Sequence[float] | None = None,
    basis: jnp.ndarray | None = None,
    chol: jnp.ndarray | None = None,
) -> None:
    """LBMM+GPD: log α_k(x) = γ_k∞ + g_k(x), g_k a GP (sites ``gamma_inf``, ``eta``,
    ``rho_z``, ``rho_n``, ``gp_coef`` (HSGP, (M, p)) or ``gp_z`` (exact, (n, p)), ``sigma``,
    ``y``). Non-centred: g_k = √η_k Φ diag(√S_ρ) u_k (HSGP) or √η_k chol(K_ρ) z_k (exact).
    ``basis`` is Φ at ``x`` when already computed (:func:`precompute_gpd`); it depends on the
    inputs only, so computing it once keeps it out of every gradient. ``rho`` fixes the two
    length scales (no ``rho_z``, ``rho_n`` sites); with the exact GP the Cholesky factor
    ``chol`` is then computed once too.
    """
    del hsgp_c, x_train
    _check(omega, likelihood_kind)
    n, p = F.shape
    gamma_inf, eta, rho = _gp_params(p, priors, rho)
    u = jnp.asarray(x) / gp_unit
    if gp == "hsgp":
        phi = hsgp_basis(u, hsgp_center, hsgp_ell, hsgp_m) if basis is None else basis
        with numpyro.plate("model", p, dim=-1), numpyro.plate("basis", phi.shape[1], dim=-2):
            coef = numpyro.sample("gp_coef", dist.Normal(0.0, 1.0))
        g = phi @ (_hsgp_sqrt_spd(rho, hsgp_ell, hsgp_m)[:, None] * coef)
    elif gp == "exact":
        L = se_cholesky(u, rho, jitter) if chol is None else chol
        with numpyro.plate("model", p, dim=-1), numpyro.plate("gp_nucleus", n, dim=-2):
            z = numpyro.sample("gp_z", dist.Normal(0.0, 1.0))
        g = L @ z
    else:
        raise ValueError(f"unknown gp {gp!r}; expected one of {GPS}")
    log_alpha = gamma_inf + jnp.sqrt(eta) * g
    local_likelihood(F, log_alpha, y, likelihood_kind, omega, priors)


# ------------------------------------------------------------------ prediction


def _log_alpha_gld(samples, x, opts) -> jnp.ndarray:
    X = _design(x, opts["x_center"], opts["x_scale"], opts["intercept"])
    return jnp.einsum("nq,sqp->snp", X, samples["beta"])


def _log_alpha_hsgp(samples, x, opts, key) -> jnp.ndarray:
    """Basis-function log α at x; the prior variance the truncated basis misses at x (all of
    it outside the box) is added as independent noise, so far from the data the weights
    revert to the GP prior instead of to a point."""
    u = jnp.asarray(x) / opts["gp_unit"]
    phi = hsgp_basis(u, opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])
    rho = _rho_draws(samples, opts)

    def one(r, coef, eta, gam, k):
        s = _hsgp_sqrt_spd(r, opts["hsgp_ell"], opts["hsgp_m"])
        g = phi @ (s[:, None] * coef)
        deficit = jnp.clip(1.0 - (phi**2) @ (s**2), 0.0, 1.0)
        eps = jax.random.normal(k, g.shape)
        return gam + jnp.sqrt(eta) * (g + jnp.sqrt(deficit)[:, None] * eps)

    keys = jax.random.split(key, rho.shape[0])
    return jax.lax.map(
        lambda a: one(*a),
        (rho, samples["gp_coef"], samples["eta"], samples["gamma_inf"], keys),
        batch_size=64,
    )


def _log_alpha_exact(samples, x, opts, key) -> jnp.ndarray:
    """GP conditional at x given the training values, marginal per point."""
    u = jnp.asarray(x) / opts["gp_unit"]
    ut = jnp.asarray(opts["x_train"]) / opts["gp_unit"]
    keys = jax.random.split(key, len(samples["eta"]))

    def draw(A, sd, z, eta, gam, k):
        mean = A.T @ z  # K*ᵀ K⁻¹ (L z) = (L⁻¹K*)ᵀ z
        eps = jax.random.normal(k, mean.shape)
        return gam + jnp.sqrt(eta) * (mean + sd[:, None] * eps)

    draws = (samples["gp_z"], samples["eta"], samples["gamma_inf"], keys)
    if opts.get("rho") is not None:  # one kernel for all draws: factorise it once
        A, sd = _gp_conditional(ut, u, jnp.asarray(opts["rho"], dtype=float), opts["jitter"])
        return jax.vmap(lambda *a: draw(A, sd, *a))(*draws)
    return jax.lax.map(
        lambda a: draw(*_gp_conditional(ut, u, a[0], opts["jitter"]), *a[1:]),
        (_rho_draws(samples, opts), *draws),
        batch_size=16,
    )


def log_alpha_at(mixer: str, samples, x, opts, key) -> jnp.ndarray:
    """Draws (S, n, p) of log α at inputs x (n, 2) for a local mixer."""
    if mixer == "glm_dirichlet":
        return _log_alpha_gld(samples, x, opts)
    if opts["gp"] == "hsgp":
        return _log_alpha_hsgp(samples, x, opts, key)
    return _log_alpha_exact(samples, x, opts, key)


def mean_weights(mixer: str, samples, x, opts, key) -> np.ndarray:
    """Draws (S, n, p) of ā(x) = E[ω(x) | α(x)] = α/α₀ at inputs x."""
    s = {k: jnp.asarray(v) for k, v in samples.items()}
    return np.asarray(jax.nn.softmax(log_alpha_at(mixer, s, jnp.asarray(x), opts, key), axis=-1))


def local_predictive(
    mixer: str,
    samples: Mapping[str, np.ndarray],
    F: np.ndarray,
    x: np.ndarray,
    y_obs: np.ndarray,
    opts: Mapping,
    likelihood_kind: str,
    key: jax.Array,
) -> dict[str, np.ndarray]:
    """Posterior predictive draws at new inputs: log α → fresh ω ~ Dirichlet(α) → y.

    Returns ``y``, ``mu`` (= ω·f), ``weights`` (S, n, p) and ``log_density`` (S, n):
    log p(y_obs | draw) (NaN where y_obs is NaN). Averaged over draws (log-mean-exp) the
    latter estimates the posterior predictive density of each observation.
    """
    k_la, k_w, k_y, k_c = jax.random.split(key, 4)
    s = {k: jnp.asarray(v) for k, v in samples.items()}
    la = log_alpha_at(mixer, s, jnp.asarray(x), opts, k_la)
    alpha = jnp.exp(la)
    log_g = jax.random.loggamma(k_w, alpha)  # log-scale Gamma draws: no underflow at tiny α
    w = jax.nn.softmax(log_g, axis=-1)
    Fj = jnp.asarray(F)
    mu = jnp.sum(w * Fj, axis=-1)
    yo = jnp.asarray(y_obs)
    seen = jnp.isfinite(yo)
    yo_safe = jnp.where(seen, yo, 0.0)  # log densities are masked below; no NaN inside them
    if likelihood_kind == "mean":
        sig = s["sigma"][:, None]
        y = mu + sig * jax.random.normal(k_y, mu.shape)
        logd = dist.Normal(mu, sig).log_prob(yo_safe)
    else:
        sig = s["sigma"][:, None, :]  # (S, 1, p)
        comp = jax.random.categorical(k_c, log_g, axis=-1)
        f_c = jnp.take_along_axis(jnp.broadcast_to(Fj, w.shape), comp[..., None], -1)[..., 0]
        s_c = jnp.take_along_axis(jnp.broadcast_to(sig, w.shape), comp[..., None], -1)[..., 0]
        y = f_c + s_c * jax.random.normal(k_y, mu.shape)
        log_w = jax.nn.log_softmax(log_g, axis=-1)
        logd = jax.nn.logsumexp(log_w + dist.Normal(Fj, sig).log_prob(yo_safe[:, None]), axis=-1)
    logd = jnp.where(seen, logd, jnp.nan)
    return {
        "y": np.asarray(y),
        "mu": np.asarray(mu),
        "weights": np.asarray(w),
        "log_density": np.asarray(logd),
    }
