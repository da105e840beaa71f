"""Random draws keyed by nucleus: the same seed gives the same draws at a nucleus whichever
other nuclei are predicted with it (``lbmm predict`` at one nucleus agrees with the run's
``predictions.csv``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import _jax  # noqa: F401

__all__ = ["nucleus_keys", "per_nucleus"]


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
