"""Inference: NUTS through NumPyro, adaptive tempered SMC through BlackJAX (or closed form
for BMA) → an immutable :class:`Posterior`.

``fit`` (:mod:`.fit`) is the one entry point; :mod:`.nuts` drives NumPyro's NUTS kernel chunk
by chunk (interruptible, with progress, adaptive length); :mod:`.smc` runs populations of
adaptive tempered SMC (multimodal posteriors, evidence estimates); :mod:`.chees` runs
ChEES-HMC with every chain vectorized (LBMM+GPD's shared basis product); :mod:`.diagnostics` holds
the convergence bars and the diagnostics as data; :mod:`.posterior` the result and its
NetCDF round trip; :mod:`.sbc` simulation-based calibration of every mixer; :mod:`.flow` a
posterior as a normalizing flow (files to hand on); :mod:`.update` a posterior given new
measurements, from its stored draws.
"""

from .diagnostics import (
    CLOSED_FORMS,
    ESS_MIN,
    RHAT_MAX,
    bar_text,
    convergence_problems,
    diagnostics,
    is_converged,
    latent_diagnostics,
    summarize_draws,
)
from .fit import (
    CHAIN_METHODS,
    DEFAULT_CHAIN_METHOD,
    INITS,
    METHODS,
    BMAPrior,
    ConvergenceWarning,
    check_priors,
    fit,
    map_init,
)
from .posterior import DIMS, LATENT_SITES, Posterior, make_idata
from .sbc import sbc, sbc_design, sbc_ranks, sbc_uniformity

__all__ = [
    "CHAIN_METHODS",
    "CLOSED_FORMS",
    "DEFAULT_CHAIN_METHOD",
    "DIMS",
    "ESS_MIN",
    "INITS",
    "LATENT_SITES",
    "METHODS",
    "RHAT_MAX",
    "BMAPrior",
    "ConvergenceWarning",
    "Posterior",
    "bar_text",
    "check_priors",
    "convergence_problems",
    "diagnostics",
    "fit",
    "is_converged",
    "latent_diagnostics",
    "make_idata",
    "map_init",
    "sbc",
    "sbc_design",
    "sbc_ranks",
    "sbc_uniformity",
    "summarize_draws",
]
