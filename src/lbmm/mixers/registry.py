"""Names of the mixers and what each one is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .global_ import dirichlet, linear
from .local import (
    GLD_DEFAULTS,
    GPD_DEFAULTS,
    glm_dirichlet,
    gp_dirichlet,
    precompute_gpd,
    prepare_gld,
    prepare_gpd,
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

    def hint(self, likelihood: str) -> str:
        """What is known to make this mixer converge (BENCHMARKS.md), or ``""``."""
        h = dict(self.hints)
        return h.get(likelihood, h.get("*", ""))

    def resolve_options(self, train, options=None) -> dict:
        """Defaults, then the user's options, then the data-dependent ones."""
        opts = dict(self.defaults)
        unknown = set(options or {}) - set(opts)
        if unknown:
            raise ValueError(
                f"mixer {self.name!r}: unknown option(s) {sorted(unknown)}; "
                f"known options: {sorted(opts) or 'none'}"
            )
        opts.update(options or {})
        return dict(self.prepare(train, opts)) if self.prepare else opts


_DENSITY_HINT = (
    "the density likelihood mixes slowly between near-symmetric modes; on kejzlar2023 it "
    "converged with 8000 draws per chain at target_accept=0.8 (docs/mixers.md; thinning "
    "keeps the stored posterior small)"
)

MIXERS: dict[str, MixerSpec] = {
    "bma": MixerSpec("bma", None, "BMA", "Bayesian model averaging, closed-form evidences"),
    "linear": MixerSpec(
        "linear",
        linear,
        "GBMM+L",
        "global linear mixture, ω_k ~ U(0, 1)",
        hints=(("density", _DENSITY_HINT),),
    ),
    "dirichlet": MixerSpec(
        "dirichlet",
        dirichlet,
        "GBMM+D",
        "global Dirichlet mixture, α_k ~ HalfNormal(2)",
        hints=(("density", _DENSITY_HINT),),
    ),
    "glm_dirichlet": MixerSpec(
        "glm_dirichlet",
        glm_dirichlet,
        "LBMM+GLD",
        "local Dirichlet mixture, log α_k(x) linear in standardised (Z, N)",
        local=True,
        prepare=prepare_gld,
        dense_mass=lambda o: o["omega"] != "latent",
        defaults=GLD_DEFAULTS,
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
        prepare=prepare_gpd,
        precompute=precompute_gpd,
        dense_mass=lambda o: [
            ("gamma_inf", "eta", "sigma")
            if o.get("rho") is not None
            else ("gamma_inf", "eta", "rho_z", "rho_n", "sigma")
        ],
        defaults=GPD_DEFAULTS,
    ),
}


def get_mixer(name: str) -> MixerSpec:
    """Look up a mixer by name; a clear error lists the known ones."""
    if name not in MIXERS:
        raise ValueError(f"unknown mixer {name!r}; known mixers: {sorted(MIXERS)}")
    return MIXERS[name]
