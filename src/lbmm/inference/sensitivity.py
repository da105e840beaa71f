"""Prior sensitivity from the stored draws, without refitting.

Two questions, both answered by importance weights on the draws a fit already has:

- **Power-scaling** (Kallioinen et al., Stat. Comput. 34, 57, 2024; ArviZ's ``psense``):
  how much the posterior of each parameter moves when the prior, or the likelihood, is raised
  to a power near 1. A prior sensitivity above 0.05 with a likelihood sensitivity below 0.05
  says the data hardly inform that parameter; both above 0.05, a prior–data conflict.
- **A wider or narrower prior** (:func:`prior_scaled`): the posterior under each user-settable
  prior made c times wider (:func:`lbmm.study.scale_prior`), from weights p_c(θ)/p(θ),
  Pareto-smoothed. Honest only where the Pareto k̂ of those weights is below 0.7 and the
  weights keep an effective sample size of 400 or more; elsewhere the answer is a refit, and
  ``lbmm grid`` with a ``prior_scale`` axis does it.

"The prior" here is the priors a user can set (:meth:`MixerSpec.known_priors`: σ, α, β, the
GP's η, ρ, γ∞, the noise model's), not the model's latent structure (the Dirichlet's
auxiliary variables, the GP's basis coefficients), which is part of the likelihood of the
hyperparameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _jax  # noqa: F401  (float64)
from ..mixers import get_mixer
from .posterior import Posterior

__all__ = ["log_densities", "power_scaling", "prior_scaled"]

KHAT_MAX = 0.7
ESS_MIN = 400


def _prior_sites(names: Sequence[str], sites: Sequence[str]) -> list[str]:
    return [s for s in sites if any(s == n or s.startswith(n + "_") for n in names)]


def log_densities(posterior: Posterior, priors: Mapping[str, Any] | None = None,
                  likelihood: bool = True,
                  ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[str]]:  # fmt: skip
    """Per stored draw: the log density of every user-settable prior's site and the
    pointwise log likelihood of the training nuclei.

    Returns
    -------
    (log_prior, log_lik, sites)
        ``log_prior[site]`` of shape (chain, draw); ``log_lik`` of shape (chain, draw, n)
        (None with ``likelihood=False``); the latent sample sites of the model.
    """
    from numpyro import handlers
    from numpyro.distributions import Unit

    from .flow import model_inputs

    model, args, kwargs = model_inputs(posterior, priors)
    tr0 = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **dict(kwargs))
    latent = [s for s, v in tr0.items() if v["type"] == "sample" and not v["is_observed"]]
    # the data's sites; ``numpyro.factor`` sites (a reparameterisation's Jacobian, e.g.
    # GBMM+L's ``weight_box``) are observed Unit sites but not data
    observed = [s for s, v in tr0.items() if v["type"] == "sample" and v["is_observed"]
                and not isinstance(v["fn"], Unit)]  # fmt: skip
    spec = get_mixer(posterior.mixer)
    pri = _prior_sites(spec.known_priors(posterior.options), latent)
    post = posterior.idata.posterior
    c, d = post.sizes["chain"], post.sizes["draw"]
    missing = [s for s in latent if s not in post.data_vars]
    if missing:
        raise ValueError(f"the stored posterior lacks the latent site(s) {missing}")
    vals = {s: jnp.asarray(post[s].values.reshape((c * d, *tr0[s]["value"].shape)))
            for s in latent}  # fmt: skip

    def one(params):
        tr = handlers.trace(handlers.substitute(model, data=params)).get_trace(
            *args, **dict(kwargs)
        )
        lp = {s: jnp.sum(tr[s]["fn"].log_prob(tr[s]["value"])) for s in pri}
        if not likelihood:
            return lp, None
        return lp, sum(tr[s]["fn"].log_prob(tr[s]["value"]) for s in observed)

    lp, ll = jax.lax.map(one, vals, batch_size=256)
    log_prior = {s: np.asarray(v).reshape(c, d) for s, v in lp.items()}
    return log_prior, None if ll is None else np.asarray(ll).reshape(c, d, -1), pri


def _datatree(posterior: Posterior, log_prior, log_lik, sites):
    import arviz_base as azb

    post = posterior.idata.posterior
    return azb.from_dict(
        {
            "posterior": {s: post[s].values for s in sites},
            "log_prior": {"prior": sum(log_prior.values())},
            "log_likelihood": {"y": log_lik},
        }
    )


def power_scaling(posterior: Posterior, priors: Mapping[str, Any] | None = None,
                  threshold: float = 0.05) -> pd.DataFrame:  # fmt: skip
    """Power-scaling sensitivity of every user-settable prior's parameter (``arviz_stats``'s
    ``psense``): one row per parameter (vector sites: per component) with its prior and
    likelihood sensitivity and the diagnosis (``"prior-data conflict"`` when both exceed
    ``threshold``, ``"weak likelihood"`` when only the prior's does, else ``"✓"``).
    ``priors`` must be those the posterior was fitted with (None: the mixer's defaults;
    ``lbmm sensitivity`` passes each run entry's own)."""
    import arviz_stats as azs

    log_prior, log_lik, sites = log_densities(posterior, priors)
    if not sites:
        raise ValueError(f"mixer {posterior.mixer!r} has no user-settable prior to scale")
    dt = _datatree(posterior, log_prior, log_lik, sites)
    sp = azs.psense(dt, group="prior")
    sl = azs.psense(dt, group="likelihood")
    rows = []
    for s in sites:
        p = np.atleast_1d(np.asarray(sp[s].values))
        q = np.atleast_1d(np.asarray(sl[s].values))
        for i, (a, b) in enumerate(zip(p.ravel(), q.ravel(), strict=True)):
            name = s if p.size == 1 else f"{s}[{i}]"
            if a >= threshold and b >= threshold:
                diag = "prior-data conflict"
            elif a >= threshold:
                diag = "weak likelihood"
            else:
                diag = "✓"
            rows.append({"parameter": name, "prior": float(a), "likelihood": float(b),
                         "diagnosis": diag})  # fmt: skip
    return pd.DataFrame(rows)


def prior_scaled(posterior: Posterior, c: float,
                 priors: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The posterior under every user-settable prior made ``c`` times wider, by Pareto-smoothed
    importance weights p_c(θ)/p(θ) on the stored draws. ``priors``: those the posterior was
    fitted with (None: the mixer's defaults).

    Returns
    -------
    dict
        ``khat``, ``ess`` (of the smoothed weights), ``honest`` (k̂ < 0.7 and ESS ≥ 400),
        ``scaled`` (site → the new prior as text), and ``mean`` / ``sd`` of every prior's
        site under the new prior (NaN-free only where honest; reported either way).
    """
    from ..mixers.priors import parse_prior, prior_text, scale_prior
    from .update import _psis

    spec = get_mixer(posterior.mixer)
    defaults = spec.default_priors(posterior.options)
    given = dict(priors or {})
    current = {k: given.get(k, defaults[k]) for k in defaults}
    scaled = {k: scale_prior(v, c) for k, v in current.items()}
    scaled = {k: v for k, v in scaled.items() if v is not None}
    if not scaled:
        raise ValueError(f"mixer {posterior.mixer!r}: none of its priors has a scale")
    log_prior, _, sites = log_densities(posterior, current, likelihood=False)
    new = {**current, **{k: parse_prior(v) for k, v in scaled.items()}}
    log_new, _, _ = log_densities(posterior, new, likelihood=False)
    lw = sum(log_new.values()) - sum(log_prior.values())  # (chain, draw)
    smoothed, khat = _psis(np.asarray(lw))
    flat = np.asarray(lw).ravel()
    w = np.exp(smoothed.ravel() - smoothed.max())
    w /= w.sum()
    ess = float(1.0 / np.sum(w**2))
    post = posterior.idata.posterior
    mean, sd = {}, {}
    for s in sites:
        v = post[s].values.reshape(flat.size, -1)
        m = w @ v
        mean[s] = m.tolist() if m.size > 1 else float(m[0])
        var = w @ (v - m) ** 2
        sd[s] = np.sqrt(var).tolist() if var.size > 1 else float(np.sqrt(var[0]))
    return {
        "c": float(c),
        "khat": khat,
        "ess": ess,
        "honest": bool(khat < KHAT_MAX and ess >= ESS_MIN),
        "scaled": scaled,
        "from": {k: prior_text(v) if not isinstance(v, str) else v for k, v in current.items()},
        "mean": mean,
        "sd": sd,
    }
