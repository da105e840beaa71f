"""The squared-exponential kernel, the one covariance function of lbmm's GPs."""

from __future__ import annotations

import jax.numpy as jnp

from .. import _jax  # noqa: F401

__all__ = ["se_kernel"]


def se_kernel(xa, xb, rho, variance=1.0) -> jnp.ndarray:
    """variance · exp(−½ Σ_d ((xa_d − xb_d) / ρ_d)²) between the rows of ``xa`` (..., na, q)
    and ``xb`` (..., nb, q): shape (..., na, nb). ``rho`` has one length scale per input
    dimension (or one for all); ``variance`` is the kernel's value at zero distance."""
    d = (jnp.asarray(xa)[..., :, None, :] - jnp.asarray(xb)[..., None, :, :]) / rho
    return variance * jnp.exp(-0.5 * jnp.sum(d * d, axis=-1))
