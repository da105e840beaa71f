"""Names of the mixers and what each one is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.errors import OptionError
from .global_ import (
    ORTHO_DEFAULTS,
    dirichlet,
    linear,
    orthogonal,
    prepare_linear,
    prepare_orthogonal,
)
from .global_ import _default_priors as _global_priors
from .local import (
    GLD_DEFAULTS,
    GPD_DEFAULTS,
    _local_priors,
    glm_dirichlet,
    gp_dirichlet,
    precompute_gpd,
    prepare_gld,
    prepare_gpd,
)
from .noise import (
    NOISE_DEFAULTS,
    NOISE_PRIOR_NAMES,
    check_noise,
    noise_priors,
    vecchia_neighbors,
)

__all__ = ["MIXERS", "MixerSpec", "get_mixer"]


@dataclass(frozen=True)
class MixerSpec:
    """A mixer: its name, NumPyro model function (None for closed form) and label."""

    name: str
    model: Callable | None
    label: str
    description: str
    local: bool = False
    prepare: Callable | None = None
    """``prepare(train: Dataset, options: dict) -> dict`` fills data-dependent options (input
    centring and scale, HSGP domain) from the training split; the result is stored with the
    fit and reused, unchanged, for prediction."""
    precompute: Callable | None = None
    """``precompute(x_train, options) -> dict``: input-only arrays passed to the model as extra
    keyword arguments during the fit (not stored)."""
    dense_mass: object = True
    """Default mass matrix of NUTS: True (dense), False (diagonal), a list of tuples of site
    names (block-dense), or a function of the resolved options returning one of these."""
    defaults: tuple[tuple[str, object], ...] = ()
    """Default mixer options (besides ``likelihood_kind`` and ``priors``)."""
    hints: tuple[tuple[str, str], ...] = ()
    """(likelihood, advice) shown when a fit misses the convergence bars; ``"*"`` for any."""
    cost: int = 2
    """Rank of a fit's usual cost, 0 the costliest: 0 a GP over the inputs, 1 the other local
    mixers, 2 the global samplers, 3 the closed forms. ``lbmm run``'s workers take the
    costliest entries first, so that the longest fit does not start last."""

    def hint(self, likelihood: str) -> str:
        """What is known to make this mixer converge (BENCHMARKS.md), or ``""``."""
        h = dict(self.hints)
        return h.get(likelihood, h.get("*", ""))

    prior_names: tuple[str, ...] = ()
    """Names of the priors that can be set (the sample sites), besides the noise model's."""

    def check_option_names(self, options=None) -> None:
        """Refuse option names this mixer does not have."""
        known = dict(self.defaults)
        unknown = set(options or {}) - set(known)
        if unknown:
            raise OptionError(
                f"mixer {self.name!r}: unknown option(s) {sorted(unknown)}; "
                f"known options: {sorted(known) or 'none'}"
            )

    def resolve_options(self, train, options=None, likelihood: str = "mean") -> dict:
        """Defaults, then the user's options, then the data-dependent ones."""
        self.check_option_names(options)
        opts = {**dict(self.defaults), **(options or {})}
        if "noise" in opts:
            check_noise(opts["noise"], likelihood)
            m = opts["noise_neighbors"]
            if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
                raise OptionError(f"option noise_neighbors: expected a positive integer, got {m!r}")
        return dict(self.prepare(train, opts)) if self.prepare else opts

    def known_priors(self, options: dict | None = None) -> tuple[str, ...]:
        """The prior names this mixer reads with these options (defaults where not given)."""
        if self.model is None:
            return ()
        noise = {**dict(self.defaults), **(options or {})}.get("noise", "constant")
        return (*self.prior_names, "sigma", *NOISE_PRIOR_NAMES.get(noise, ()))

    def default_priors(self, options: dict | None = None) -> dict:
        """The default prior of every name :meth:`known_priors` gives (NumPyro distributions)."""
        every = {**_global_priors(), **_local_priors(), **noise_priors()}
        return {k: every[k] for k in self.known_priors(options)}

    def fit_arrays(self, x, opts) -> dict:
        """Input-only arrays passed to the model during a fit (computed once per fit): the
        mixer's own (:attr:`precompute`) and the noise model's Vecchia sets."""
        out = dict(self.precompute(x, opts)) if self.precompute else {}
        if opts.get("noise") == "gp":
            out["noise_nb"], out["noise_mask"] = vecchia_neighbors(x, opts["noise_neighbors"])
        return out


_DENSITY_HINT = (
    "the density likelihood mixes slowly between near-symmetric modes; on kejzlar2023 it "
    "converged with 8000 draws per chain at target_accept=0.8 (docs/mixers.md; thinning "
    "keeps the stored posterior small)"
)

MIXERS: dict[str, MixerSpec] = {
    "bma": MixerSpec("bma", None, "BMA", "Bayesian model averaging, closed-form evidences", cost=3),
    "linear": MixerSpec(
        "linear",
        linear,
        "GBMM+L",
        "global linear mixture, ω_k ~ U(0, 1)",
        hints=(("density", _DENSITY_HINT),),
        prepare=prepare_linear,
        defaults=(("parameterization", "sum_simplex"), *NOISE_DEFAULTS),
        prior_names=("weights",),
    ),
    "dirichlet": MixerSpec(
        "dirichlet",
        dirichlet,
        "GBMM+D",
        "global Dirichlet mixture, α_k ~ HalfNormal(2)",
        hints=(("density", _DENSITY_HINT),),
        defaults=NOISE_DEFAULTS,
        prior_names=("alpha",),
    ),
    "orthogonal": MixerSpec(
        "orthogonal",
        orthogonal,
        "GBMM+O",
        "global mixture on orthogonalised models, ω = 1/K + Vγ (SVD of the centred models)",
        prepare=prepare_orthogonal,
        defaults=(*ORTHO_DEFAULTS, *NOISE_DEFAULTS),
        prior_names=("coef",),
    ),
    "glm_dirichlet": MixerSpec(
        "glm_dirichlet",
        glm_dirichlet,
        "LBMM+GLD",
        "local Dirichlet mixture, log α_k(x) linear in standardised (Z, N)",
        local=True,
        cost=1,
        prepare=prepare_gld,
        dense_mass=lambda o: o["omega"] != "latent",
        defaults=GLD_DEFAULTS,
        prior_names=("beta",),
        hints=(
            (
                "mean",
                "GLD's chains move rarely between a small-α₀ regime (σ ≈ 0.09) and a larger-α₀ "
                "one (σ ≈ 0.19); on kejzlar2023 it converged with 12000 draws per chain "
                "(docs/mixers.md)",
            ),
        ),
    ),
    "gp_dirichlet": MixerSpec(
        "gp_dirichlet",
        gp_dirichlet,
        "LBMM+GPD",
        "local Dirichlet mixture, log α_k(x) a Gaussian process over (Z, N)",
        local=True,
        cost=0,
        prepare=prepare_gpd,
        precompute=precompute_gpd,
        dense_mass=lambda o: [
            (
                "gamma_inf",
                "eta",
                *(() if o.get("rho") is not None else ("rho_z", "rho_n")),
                "sigma",
                *NOISE_PRIOR_NAMES[o.get("noise", "constant")],
            )
        ],
        defaults=GPD_DEFAULTS,
        prior_names=("gamma_inf", "eta", "rho"),
        hints=(
            (
                "density",
                "the σ_k of models given little weight mix slowly and their roles can be "
                'exchanged between chains; on kejzlar2023 ChEES-HMC (method = "chees", '
                "8 chains, max_samples = 6000) met the bars at 4500 draws per chain on seed 0, "
                "not on seed 1 (BENCHMARKS.md)",
            ),
        ),
    ),
}


def get_mixer(name: str) -> MixerSpec:
    """Look up a mixer by name; a clear error lists the known ones."""
    if name not in MIXERS:
        raise OptionError(f"unknown mixer {name!r}; known mixers: {sorted(MIXERS)}")
    return MIXERS[name]
