"""Mixers: statistical models as NumPyro model functions, and BMA in closed form.

Every MCMC mixer is a function ``model(F, x=None, y=None, **options)`` with named sample
sites, so one function serves the prior predictive, the posterior and the posterior
predictive. ``F`` is the (n, p) matrix of model predictions, ``x`` the (n, q) inputs, ``y``
the observations (None to predict).
"""

from .. import _jax  # noqa: F401  (float64 before anything else)
from .bma import BMAResult, bma, bma_evidence
from .global_ import DEFAULT_PRIORS, dirichlet, linear, project_simplex
from .local import glm_dirichlet, gp_dirichlet
from .registry import MIXERS, MixerSpec, get_mixer

__all__ = [
    "DEFAULT_PRIORS",
    "MIXERS",
    "BMAResult",
    "MixerSpec",
    "bma",
    "bma_evidence",
    "dirichlet",
    "get_mixer",
    "glm_dirichlet",
    "gp_dirichlet",
    "linear",
    "project_simplex",
]
