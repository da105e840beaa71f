"""The posterior predictive law of every MCMC mixer at new inputs, one code path for all.

For each posterior draw: the weights at the new inputs (global: the draw's ω; local: log α
there, then a fresh ω ~ Dirichlet(α)), the mixed mean μ* = ω·f*, then y* from the
likelihood — the density mixture's component, or μ* plus the noise model of
:mod:`lbmm.mixers.noise` (for ``noise="gp"`` the discrepancy's conditional law given the
draw's residuals at the training inputs). The same draws give log p(y_obs | draw).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from .. import _jax  # noqa: F401
from .draws import log_gamma_per_nucleus, nucleus_keys, per_nucleus
from .global_ import dirichlet_weights
from .local import collapsed_moments, log_alpha_at
from .noise import discrepancy_conditional, model_spread, nearest_neighbors

__all__ = [
    "discrepancy_at",
    "fitted_moments",
    "posterior_predictive",
    "predictive_mean",
    "weights_at",
]

LOCAL = ("glm_dirichlet", "gp_dirichlet")


def _global_weights(mixer: str, samples, likelihood_kind: str) -> jnp.ndarray:
    w = jnp.asarray(samples["weights"])
    if mixer == "linear" and likelihood_kind == "density":
        w = w / jnp.sum(w, axis=-1, keepdims=True)
    return w


def weights_at(mixer, samples, x, opts, likelihood_kind, key) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Draws (S, n, p) of the weights at inputs x and their log-scale Gamma draws (local
    mixers; ``None`` for the global ones, whose weights are the draws themselves)."""
    n = x.shape[0]
    if mixer in LOCAL:
        la = _compiled_log_alpha(mixer, _Static(opts))(samples, jnp.asarray(x, dtype=float),
                                                      jax.random.fold_in(key, 1))  # fmt: skip
        # log-scale Gamma draws (no underflow at tiny α), on the host: NumPy's sampler
        log_g = jnp.asarray(log_gamma_per_nucleus(key, np.asarray(x), 2, np.exp(np.asarray(la))))
        return jax.nn.softmax(log_g, axis=-1), log_g
    w = _global_weights(mixer, samples, likelihood_kind)
    return jnp.broadcast_to(w[:, None, :], (w.shape[0], n, w.shape[-1])), None


def fitted_moments(mixer, samples, F, x, opts) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The mean (S, n) and the mixer's own extra variance (S, n) of y at the training inputs,
    as the fit's ``mean`` likelihood has them (the local collapsed Dirichlet term; zero for
    the global mixers and for latent ω)."""
    F = jnp.asarray(F)
    if mixer in LOCAL:
        if opts.get("omega", "collapsed") == "latent":
            alpha = jnp.exp(log_alpha_at(mixer, samples, x, opts, jax.random.PRNGKey(0)))
            w = dirichlet_weights(alpha, samples["gamma_aux"], samples["exp_aux"])
            mu = jnp.sum(w * F, axis=-1)
            return mu, jnp.zeros_like(mu)
        la = log_alpha_at(mixer, samples, x, opts, jax.random.PRNGKey(0))
        return collapsed_moments(F, la)
    mu = jnp.einsum("sp,np->sn", _global_weights(mixer, samples, "mean"), F)
    return mu, jnp.zeros_like(mu)


def _neighbors(train, x, opts) -> np.ndarray:
    """Positions of the training inputs each new input's discrepancy conditions on."""
    if train is None:
        raise ValueError("noise='gp' needs the training data to predict")
    return nearest_neighbors(np.asarray(train[1]), np.asarray(x), opts["noise_neighbors"])


def discrepancy_at(mixer, samples, x, opts, train, nn=None) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Mean and variance (S, n) of the discrepancy δ at inputs x given each draw's residuals
    at the training inputs ``train`` = (F, x, y) (``noise="gp"``). ``nn``: the neighbour
    positions of :func:`~lbmm.mixers.noise.nearest_neighbors` (found here when None; pass
    them under ``jax.jit``, where the inputs are traced)."""
    if nn is None:
        nn = _neighbors(train, x, opts)
    F_tr, x_tr, y_tr = (jnp.asarray(a, dtype=float) for a in train)
    mu_tr, v_tr = fitted_moments(mixer, samples, F_tr, x_tr, opts)
    nn = jnp.asarray(nn)
    xj = jnp.asarray(x, dtype=float)

    def cond(a):
        r, v, tau, rho = a
        return discrepancy_conditional(r, v, x_tr, xj, nn, tau, rho)

    resid = y_tr[None, :] - mu_tr
    var_tr = samples["sigma"][:, None] ** 2 + v_tr
    return jax.lax.map(
        cond, (resid, var_tr, samples["delta_scale"], samples["delta_rho"]), batch_size=64
    )


def posterior_predictive(
    mixer: str,
    samples: Mapping[str, np.ndarray],
    F: np.ndarray,
    x: np.ndarray,
    y_obs: np.ndarray,
    opts: Mapping,
    likelihood_kind: str,
    key: jax.Array,
    *,
    train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Posterior predictive draws at new inputs.

    Parameters
    ----------
    mixer
        An MCMC mixer's name.
    samples
        Posterior draws by site, chains flattened (S, ...).
    F, x, y_obs
        Model predictions (n, p), inputs (n, q) and observed values (n,; NaN where unknown)
        at the new inputs.
    opts
        The fit's resolved mixer options.
    likelihood_kind
        ``"mean"`` or ``"density"``.
    key
        Random key of the draws.
    train
        (F, x, y) at the training inputs; needed by ``noise="gp"``.

    Returns
    -------
    dict
        ``y`` (S, n) with noise; ``mu`` (S, n) the noise-free signal (mixed mean, plus the
        discrepancy draw for ``noise="gp"``); ``weights`` (S, n, p); ``delta`` (S, n) the
        discrepancy draws (zero without one); ``log_density`` (S, n) log p(y_obs | draw),
        NaN where y_obs is NaN.
    """
    s = {
        k: jnp.asarray(v)
        for k, v in samples.items()
        if np.issubdtype(np.asarray(v).dtype, np.number)
    }
    gp_noise = likelihood_kind == "mean" and opts.get("noise") == "gp"
    nn = jnp.asarray(_neighbors(train, x, opts)) if gp_noise else None
    tr = tuple(jnp.asarray(a, dtype=float) for a in train) if gp_noise else None
    w, log_g = weights_at(mixer, s, x, opts, likelihood_kind, jax.random.fold_in(key, 0))
    core = _compiled(mixer, _Static(opts), likelihood_kind)
    out = core(s, w, log_g, jnp.asarray(F, dtype=float), jnp.asarray(x, dtype=float),
               jnp.asarray(y_obs, dtype=float), key, tr, nn)  # fmt: skip
    return {k: np.asarray(v) for k, v in out.items()}


class _Static:
    """Mixer options as a static (hashable) argument of a jitted function: equal when their
    canonical JSON text is equal."""

    def __init__(self, opts: Mapping) -> None:
        self.opts = dict(opts)
        self._text = json.dumps(self.opts, sort_keys=True, default=_plain)

    def __hash__(self) -> int:
        return hash(self._text)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Static) and other._text == self._text


def _plain(a):
    return np.asarray(a).tolist()


@functools.lru_cache(maxsize=32)
def _compiled(mixer: str, opts: _Static, likelihood_kind: str):
    """One jitted predictive per (mixer, options, likelihood): XLA compiles the whole law
    once per input shape instead of op by op."""
    return jax.jit(functools.partial(_predictive, mixer, opts.opts, likelihood_kind))


@functools.lru_cache(maxsize=32)
def _compiled_log_alpha(mixer: str, opts: _Static):
    return jax.jit(lambda s, x, key: log_alpha_at(mixer, s, x, opts.opts, key))


def _predictive(mixer, opts, likelihood_kind, s, w, log_g, Fj, xj, yo, key, train, nn):
    """The predictive law given the weight draws w (S, n, p) (and their log-scale Gamma
    draws log_g for the local mixers): mixed mean, noise, y draws, log densities."""
    noise = opts.get("noise", "constant")
    n_draws = int(s["sigma"].shape[0])
    mix = jnp.sum(w * Fj, axis=-1)
    k_y, k_c, k_d = (nucleus_keys(key, xj, j) for j in (3, 4, 5))

    def normal(keys):  # (S, n) standard normals, keyed by nucleus
        return per_nucleus(keys, lambda k: jax.random.normal(k, (n_draws,)), axis=1)

    seen = jnp.isfinite(yo)
    yo_safe = jnp.where(seen, yo, 0.0)  # log densities are masked below; no NaN inside them
    delta = jnp.zeros_like(mix)
    signal = mix
    if likelihood_kind == "density":
        sig = s["sigma"][:, None, :]  # (S, 1, p)
        if noise == "student_t":
            comp_law = dist.StudentT(s["nu"][:, None, None], Fj, sig)
            t = per_nucleus(k_y, lambda k, df: dist.StudentT(df).sample(k), jnp.broadcast_to(
                s["nu"][:, None, None], w.shape))  # fmt: skip
            e = Fj + sig * t
        else:
            comp_law = dist.Normal(Fj, sig)
            e = Fj + sig * per_nucleus(k_y, lambda k: jax.random.normal(k, (n_draws, w.shape[-1])))
        logits = log_g if log_g is not None else jnp.log(w)
        comp = per_nucleus(k_c, lambda k, lg: jax.random.categorical(k, lg, axis=-1), logits)
        y = jnp.take_along_axis(e, comp[..., None], -1)[..., 0]
        log_w = jax.nn.log_softmax(logits, axis=-1)
        logd = jax.nn.logsumexp(log_w + comp_law.log_prob(yo_safe[:, None]), axis=-1)
    else:
        sig = s["sigma"][:, None]
        if noise == "gp":
            m_d, v_d = discrepancy_at(mixer, s, xj, opts, train, nn)
            delta = m_d + jnp.sqrt(v_d) * normal(k_d)
            signal = mix + delta
            y = signal + sig * normal(k_y)
            logd = dist.Normal(mix + m_d, jnp.sqrt(v_d + sig**2)).log_prob(yo_safe)
        elif noise == "student_t":
            nu = jnp.broadcast_to(s["nu"][:, None], mix.shape)
            y = mix + sig * per_nucleus(k_y, lambda k, df: dist.StudentT(df).sample(k), nu)
            logd = dist.StudentT(s["nu"][:, None], mix, sig).log_prob(yo_safe)
        else:
            if noise == "spread":
                sig = jnp.sqrt(sig**2 + (s["spread_scale"][:, None] * model_spread(Fj)) ** 2)
            y = mix + sig * normal(k_y)
            logd = dist.Normal(mix, sig).log_prob(yo_safe)
    logd = jnp.where(seen, logd, jnp.nan)
    return {"y": y, "mu": signal, "weights": w, "delta": delta, "log_density": logd}


def predictive_mean(
    mixer: str,
    samples: Mapping[str, np.ndarray],
    F: np.ndarray,
    x: np.ndarray,
    opts: Mapping,
    likelihood_kind: str,
    *,
    train: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """E[y* | draw] at inputs x, (S, n): the mixed mean of the draw's mean weights (ā·f for
    the local mixers), plus the discrepancy's conditional mean for ``noise="gp"``. The
    identifiable quantity the convergence bars judge at the test nuclei."""
    s = {k: jnp.asarray(v) for k, v in samples.items()}
    Fj, xj = jnp.asarray(F), jnp.asarray(x, dtype=float)
    if mixer in LOCAL:
        la = log_alpha_at(mixer, s, xj, opts, jax.random.PRNGKey(0))
        mean = jnp.sum(jax.nn.softmax(la, axis=-1) * Fj, axis=-1)
    else:
        mean = jnp.einsum("sp,np->sn", _global_weights(mixer, s, likelihood_kind), Fj)
    if likelihood_kind == "mean" and opts.get("noise") == "gp":
        mean = mean + discrepancy_at(mixer, s, x, opts, train)[0]
    return np.asarray(mean)
