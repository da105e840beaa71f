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
from ..data.errors import OptionError
from .draws import nucleus_keys, per_nucleus
from .global_ import check_likelihood, dirichlet_noncentered, likelihood
from .kernels import se_kernel
from .noise import NOISE_DEFAULTS, check_noise, observe

__all__ = [
    "GLD_DEFAULTS",
    "GPD_DEFAULTS",
    "collapsed_moments",
    "glm_dirichlet",
    "gp_dirichlet",
    "hsgp_basis",
    "hsgp_deficit",
    "log_alpha_at",
    "mean_weights",
    "precompute_gpd",
    "prepare_gld",
    "prepare_gpd",
]

OMEGAS = ("collapsed", "latent")
GPS = ("hsgp", "exact")

GLD_DEFAULTS: tuple[tuple[str, object], ...] = (
    *NOISE_DEFAULTS,
    ("omega", "collapsed"),
    ("intercept", True),
    ("x_center", None),
    ("x_scale", None),
)
GPD_DEFAULTS: tuple[tuple[str, object], ...] = (
    *NOISE_DEFAULTS,
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
    """The model functions' own check (they can be called without ``prepare``)."""
    check_likelihood(likelihood_kind)
    _check_common({"omega": omega})


# ------------------------------------------------------------------ options from the data


def _numbers(name: str, value, count: int, *, positive: bool = False, integer: bool = False):
    """An option given as ``count`` finite numbers (positive, integers where asked)."""
    what = f"{count} {'positive ' if positive else ''}{'integers' if integer else 'numbers'}"
    try:
        vals = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        vals = np.array([])
    ok = vals.size == count and np.isfinite(vals).all() and not isinstance(value, str | bool)
    if ok and positive:
        ok = bool((vals > 0).all())
    if ok and integer:
        ok = bool((vals == np.round(vals)).all())
    if not ok:
        raise OptionError(f"option {name}: expected {what}, got {value!r}")
    return [int(v) for v in vals] if integer else [float(v) for v in vals]


def _check_common(opts: dict) -> None:
    if opts["omega"] not in OMEGAS:
        raise OptionError(f"option omega: expected one of {OMEGAS}, got {opts['omega']!r}")


def prepare_gld(train, opts: dict) -> dict:
    """Fill the input centring and scale of GLD from the training split (mean and sd)."""
    _check_common(opts)
    if not isinstance(opts["intercept"], bool):
        raise OptionError(f"option intercept: expected true or false, got {opts['intercept']!r}")
    q = train.x.shape[1]
    for name in ("x_center", "x_scale"):
        if opts.get(name) is not None:
            opts[name] = _numbers(name, opts[name], q, positive=name == "x_scale")
    if opts.get("x_center") is None:
        opts["x_center"] = [float(v) for v in train.x.mean(axis=0)]
    if opts.get("x_scale") is None:
        opts["x_scale"] = [float(v) for v in train.x.std(axis=0)]
    return opts


def prepare_gpd(train, opts: dict) -> dict:
    """Fill the HSGP box (centre, half-width L = c · half-range of the training inputs) or the
    exact GP's training inputs."""
    _check_common(opts)
    if opts["gp"] not in GPS:
        raise OptionError(f"option gp: expected one of {GPS}, got {opts['gp']!r}")
    opts["gp_unit"] = _numbers("gp_unit", opts["gp_unit"], 1, positive=True)[0]
    opts["hsgp_c"] = _numbers("hsgp_c", opts["hsgp_c"], 1, positive=True)[0]
    if opts["hsgp_c"] <= 1:
        raise OptionError(f"option hsgp_c: expected a boundary factor > 1, got {opts['hsgp_c']}")
    opts["jitter"] = _numbers("jitter", opts["jitter"], 1, positive=True)[0]
    opts["hsgp_m"] = _numbers("hsgp_m", opts["hsgp_m"], 2, positive=True, integer=True)
    if opts.get("hsgp_center") is not None:
        opts["hsgp_center"] = _numbers("hsgp_center", opts["hsgp_center"], 2)
    if opts.get("hsgp_ell") is not None:
        opts["hsgp_ell"] = _numbers("hsgp_ell", opts["hsgp_ell"], 2, positive=True)
    u = train.x / float(opts["gp_unit"])
    lo, hi = u.min(axis=0), u.max(axis=0)
    if opts.get("hsgp_center") is None:
        opts["hsgp_center"] = [float(v) for v in (lo + hi) / 2]
    if opts.get("hsgp_ell") is None:
        opts["hsgp_ell"] = [float(v) for v in float(opts["hsgp_c"]) * (hi - lo) / 2]
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
        raise OptionError(f"option rho: expected None or two positive length scales, got {rho!r}")
    return vals


# ------------------------------------------------------------------ GP pieces


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
    *,
    x: jnp.ndarray | None = None,
    noise: str = "constant",
    noise_nb=None,
    noise_mask=None,
) -> None:
    """Observation site ``y`` given per-nucleus log concentrations (n, p)."""
    nk = {"x": x, "noise": noise, "noise_nb": noise_nb, "noise_mask": noise_mask}
    if omega == "latent":
        with numpyro.plate("nucleus_aux", F.shape[0], dim=-2):
            w = dirichlet_noncentered(jnp.exp(log_alpha))
        likelihood(F, w, y, kind, priors, **nk)
        return
    abar = jax.nn.softmax(log_alpha, axis=-1)
    if kind == "density":  # exact: the mixture density is linear in ω
        likelihood(F, abar, y, kind, priors, **nk)
        return
    mu, var_w = collapsed_moments(F, log_alpha)
    observe(mu, var_w, y, priors=priors, F=F, **nk)


def collapsed_moments(F: jnp.ndarray, log_alpha: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean ā·f and variance Σ_k ā_k (f_k − ā·f)² / (α₀ + 1) of ω·f under ω ~ Dir(α)."""
    abar = jax.nn.softmax(log_alpha, axis=-1)
    alpha0 = jnp.exp(jax.nn.logsumexp(log_alpha, axis=-1))
    mu = jnp.sum(abar * F, axis=-1)
    return mu, jnp.sum(abar * (F - mu[..., None]) ** 2, axis=-1) / (alpha0 + 1.0)


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
    noise: str = "constant",
    noise_neighbors: int = 4,
    noise_nb=None,
    noise_mask=None,
) -> None:
    """LBMM+GLD: log α_k(x) = β_kᵀ x̃, β ~ N(0, 1) (sites ``beta`` (q, p), ``sigma``, the
    noise model's (:mod:`lbmm.mixers.noise`), ``y``)."""
    del noise_neighbors
    _check(omega, likelihood_kind)
    check_noise(noise, likelihood_kind)
    X = _design(x, x_center, x_scale, intercept)
    q, p = X.shape[1], F.shape[1]
    with numpyro.plate("model", p, dim=-1), numpyro.plate("input", q, dim=-2):
        beta = numpyro.sample("beta", _lprior("beta", priors))
    local_likelihood(F, X @ beta, y, likelihood_kind, omega, priors, x=jnp.asarray(x),
                     noise=noise, noise_nb=noise_nb, noise_mask=noise_mask)  # fmt: skip


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
    noise: str = "constant",
    noise_neighbors: int = 4,
    noise_nb=None,
    noise_mask=None,
) -> None:
    """LBMM+GPD: log α_k(x) = γ_k∞ + g_k(x), g_k a GP (sites ``gamma_inf``, ``eta``,
    ``rho_z``, ``rho_n``, ``gp_coef`` (HSGP, (M, p)) or ``gp_z`` (exact, (n, p)), ``sigma``,
    ``y``). Non-centred: g_k = √η_k Φ diag(√S_ρ) u_k (HSGP) or √η_k chol(K_ρ) z_k (exact).
    ``basis`` is Φ at ``x`` when already computed (:func:`precompute_gpd`); it depends on the
    inputs only, so computing it once keeps it out of every gradient. ``rho`` fixes the two
    length scales (no ``rho_z``, ``rho_n`` sites); with the exact GP the Cholesky factor
    ``chol`` is then computed once too.
    """
    del hsgp_c, x_train, noise_neighbors
    _check(omega, likelihood_kind)
    check_noise(noise, likelihood_kind)
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
        raise OptionError(f"unknown gp {gp!r}; expected one of {GPS}")
    log_alpha = gamma_inf + jnp.sqrt(eta) * g
    local_likelihood(F, log_alpha, y, likelihood_kind, omega, priors, x=jnp.asarray(x),
                     noise=noise, noise_nb=noise_nb, noise_mask=noise_mask)  # fmt: skip


# ------------------------------------------------------------------ prediction


def _log_alpha_gld(samples, x, opts) -> jnp.ndarray:
    X = _design(x, opts["x_center"], opts["x_scale"], opts["intercept"])
    return jnp.einsum("nq,sqp->snp", X, samples["beta"])


def _log_alpha_hsgp(samples, x, opts) -> jnp.ndarray:
    """log α at x under the fitted model itself: γ∞ + √η Φ(x) diag(√S_ρ) u. Outside the
    basis' box Φ is zero and the weights revert to softmax(γ∞), as they do in the fit; the
    basis' accuracy over the posterior length scales is checked by :func:`hsgp_deficit`."""
    u = jnp.asarray(x) / opts["gp_unit"]
    phi = hsgp_basis(u, opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])
    rho = _rho_draws(samples, opts)

    def one(r, coef, eta, gam):
        s = _hsgp_sqrt_spd(r, opts["hsgp_ell"], opts["hsgp_m"])
        return gam + jnp.sqrt(eta) * (phi @ (s[:, None] * coef))

    return jax.lax.map(
        lambda a: one(*a),
        (rho, samples["gp_coef"], samples["eta"], samples["gamma_inf"]),
        batch_size=64,
    )


def hsgp_deficit(rho: np.ndarray, x: np.ndarray, opts: Mapping) -> np.ndarray:
    """Share of the GP's prior variance the truncated basis misses at inputs x (n, 2), for
    each length-scale pair in ``rho`` (S, 2): 1 − Σ_j φ_j(x)² S_ρ(√λ_j), shape (S, n). Zero
    for an exact basis; one outside the box."""
    u = jnp.asarray(x) / opts["gp_unit"]
    phi = hsgp_basis(u, opts["hsgp_center"], opts["hsgp_ell"], opts["hsgp_m"])

    def one(r):
        s2 = _hsgp_sqrt_spd(r, opts["hsgp_ell"], opts["hsgp_m"]) ** 2
        return 1.0 - (phi**2) @ s2

    return np.asarray(jax.lax.map(one, jnp.asarray(rho, dtype=float), batch_size=64))


def _log_alpha_exact(samples, x, opts, key) -> jnp.ndarray:
    """GP conditional at x given the training values, marginal per point (its random part
    drawn with per-nucleus keys)."""
    u = jnp.asarray(x) / opts["gp_unit"]
    ut = jnp.asarray(opts["x_train"]) / opts["gp_unit"]
    n_draws, p = samples["eta"].shape
    keys = nucleus_keys(key, x, 0)
    eps = per_nucleus(keys, lambda k: jax.random.normal(k, (n_draws, p)), axis=1)  # (S, n, p)

    def draw(A, sd, z, eta, gam, e):
        mean = A.T @ z  # K*ᵀ K⁻¹ (L z) = (L⁻¹K*)ᵀ z
        return gam + jnp.sqrt(eta) * (mean + sd[:, None] * e)

    draws = (samples["gp_z"], samples["eta"], samples["gamma_inf"], eps)
    if opts.get("rho") is not None:  # one kernel for all draws: factorise it once
        A, sd = _gp_conditional(ut, u, jnp.asarray(opts["rho"], dtype=float), opts["jitter"])
        return jax.vmap(lambda *a: draw(A, sd, *a))(*draws)
    return jax.lax.map(
        lambda a: draw(*_gp_conditional(ut, u, a[0], opts["jitter"]), *a[1:]),
        (_rho_draws(samples, opts), *draws),
        batch_size=16,
    )


def log_alpha_at(mixer: str, samples, x, opts, key) -> jnp.ndarray:
    """Draws (S, n, p) of log α at inputs x (n, 2) for a local mixer (``key``: the exact
    GP's conditional draw at new inputs; GLD and the HSGP are deterministic given a draw)."""
    if mixer == "glm_dirichlet":
        return _log_alpha_gld(samples, x, opts)
    if opts["gp"] == "hsgp":
        return _log_alpha_hsgp(samples, x, opts)
    return _log_alpha_exact(samples, x, opts, key)


def mean_weights(mixer: str, samples, x, opts, key) -> np.ndarray:
    """Draws (S, n, p) of ā(x) = E[ω(x) | α(x)] = α/α₀ at inputs x."""
    s = {k: jnp.asarray(v) for k, v in samples.items()}
    return np.asarray(jax.nn.softmax(log_alpha_at(mixer, s, jnp.asarray(x), opts, key), axis=-1))
