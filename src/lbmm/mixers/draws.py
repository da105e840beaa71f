"""Random draws keyed by nucleus: the same seed gives the same draws at a nucleus whichever
other nuclei are predicted with it (``lbmm predict`` at one nucleus agrees with the run's
``predictions.csv``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import _jax  # noqa: F401

__all__ = ["log_gamma_per_nucleus", "nucleus_keys", "nucleus_rngs", "per_nucleus"]


def _nucleus_ids(x) -> np.ndarray:
    x = np.asarray(x)
    return np.round(x[:, 0]).astype(np.int64) * 4096 + np.round(x[:, 1]).astype(np.int64)


def nucleus_keys(key: jax.Array, x: jnp.ndarray, purpose: int) -> jax.Array:
    """One key per input row (n,), from the rounded first two inputs (Z, N) and a
    ``purpose`` number that keeps the draws of different quantities apart."""
    x = jnp.asarray(x)
    ids = jnp.round(x[:, 0]).astype(jnp.uint32) * jnp.uint32(4096) + jnp.round(x[:, 1]).astype(
        jnp.uint32
    )
    k = jax.random.fold_in(key, purpose)
    return jax.vmap(lambda i: jax.random.fold_in(k, i))(ids)


def per_nucleus(keys: jax.Array, fn, *arrays, axis: int = 1):
    """``fn(key_i, *arrays[..., i, ...])`` for every nucleus i along ``axis`` of the arrays
    (and of the result)."""
    return jax.vmap(fn, in_axes=(0, *([axis] * len(arrays))), out_axes=axis)(keys, *arrays)


def nucleus_rngs(key: jax.Array, x: np.ndarray, purpose: int) -> list[np.random.Generator]:
    """One NumPy generator per input row, seeded from the key's data, ``purpose`` and the
    rounded (Z, N): the host-side counterpart of :func:`nucleus_keys`."""
    entropy = np.asarray(jax.random.key_data(key)).ravel().astype(np.int64).tolist()
    return [np.random.default_rng([*entropy, purpose, int(i)]) for i in _nucleus_ids(x)]


def log_gamma_per_nucleus(key: jax.Array, x: np.ndarray, purpose: int, alpha) -> np.ndarray:
    """Draws log G, G ~ Gamma(alpha, 1), for alpha (S, n, p), keyed by nucleus (axis 1).

    NumPy's Gamma sampler (``Generator.standard_gamma``), on the log scale so that tiny α do
    not underflow: log G = log G' + log(U)/α with G' ~ Gamma(α + 1) and U ~ Uniform(0, 1]
    (the identity Gamma(α) = Gamma(α + 1)·U^(1/α)). On the CPU this is some hundred times
    faster than ``jax.random.loggamma``, whose rejection loop runs element by element.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    out = np.empty_like(alpha)
    for i, rng in enumerate(nucleus_rngs(key, x, purpose)):
        a = alpha[:, i]
        g = rng.standard_gamma(a + 1.0)
        u = 1.0 - rng.random(a.shape)  # in (0, 1]
        with np.errstate(divide="ignore"):
            out[:, i] = np.log(g) + np.log(u) / a
    return out
