"""Convergence diagnostics as data, and the bars a fit is judged by.

A fit is *converged* when every quantity that matters has R-hat <= :data:`RHAT_MAX` and bulk
ESS >= :data:`ESS_MIN`: the parameters (all sample sites but the latent blocks of the local
mixers), the predictive mean of y at the test nuclei, draw by draw, and the log density.
The latent blocks (HSGP coefficients, per-nucleus auxiliaries) are left out of the bars: they
are not identified one by one (sign flips, exchanges), while what they predict is. A fit
records only their size; :func:`latent_diagnostics` summarises them on demand (for LBMM+GPD's
3,000 coefficients the rank-normalised R-hat and ESS take about 14 s, which every fit would
otherwise pay for numbers no bar reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import arviz as az
import numpy as np
import xarray as xr

__all__ = [
    "CLOSED_FORMS",
    "ESS_MIN",
    "RHAT_MAX",
    "bar_text",
    "convergence_problems",
    "diagnostics",
    "is_converged",
    "latent_diagnostics",
    "summarize_draws",
]

RHAT_MAX = 1.01
ESS_MIN = 400
#: ``diagnostics["sampler"]`` of a closed-form fit (BMA; ``"exact"`` in older run folders):
#: no chains, no bars.
CLOSED_FORMS = ("closed form", "exact")


def bar_text() -> str:
    """The convergence bars in words (one definition for the CLI, report and warnings)."""
    return f"max R-hat <= {RHAT_MAX} and min bulk ESS >= {ESS_MIN}"


def _nanmax(a) -> float:
    a = np.asarray(a, dtype=float)
    return float(np.nanmax(a)) if np.isfinite(a).any() else float("nan")


def _nanmin(a) -> float:
    a = np.asarray(a, dtype=float)
    return float(np.nanmin(a)) if np.isfinite(a).any() else float("nan")


def _reduce(values: xr.Dataset, fn) -> float:
    vals = [fn(v.values) for v in values.data_vars.values() if np.isfinite(v.values).any()]
    return float(fn(np.array(vals))) if vals else float("nan")


def summarize_draws(draws: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Max R-hat, min bulk and tail ESS of draws shaped (chain, draw, ...), overall and per
    variable. Constant variables (a fixed value, R-hat undefined) are left out."""
    data = {
        k: xr.DataArray(
            np.asarray(v, dtype=float),
            dims=("chain", "draw", *[f"{k}_{i}" for i in range(np.ndim(v) - 2)]),
        )
        for k, v in draws.items()
        if np.ndim(v) >= 2 and np.asarray(v).dtype.kind in "fiu"
    }
    data = {k: v for k, v in data.items() if float(v.std()) > 0}
    if not data:
        return {"rhat_max": float("nan"), "ess_bulk_min": float("nan"),
                "ess_tail_min": float("nan"), "per_variable": {}}  # fmt: skip
    ds = xr.Dataset(data)
    rhat = az.rhat(ds)
    ess_b = az.ess(ds, method="bulk")
    ess_t = az.ess(ds, method="tail")
    return {
        "rhat_max": _reduce(rhat, _nanmax),
        "ess_bulk_min": _reduce(ess_b, _nanmin),
        "ess_tail_min": _reduce(ess_t, _nanmin),
        "per_variable": {
            k: {
                "rhat_max": _nanmax(rhat[k].values),
                "ess_bulk_min": _nanmin(ess_b[k].values),
            }
            for k in data
        },
    }


def diagnostics(
    draws: Mapping[str, np.ndarray],
    *,
    latent: tuple[str, ...] = (),
    derived: Mapping[str, np.ndarray] | None = None,
    stats: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The diagnostics of one fit, as data.

    Parameters
    ----------
    draws
        Posterior draws by site, shaped (chain, draw, ...).
    latent
        Sites left out of the bars and not summarised (``latent`` records their names and
        number of coordinates; :func:`latent_diagnostics` summarises them).
    derived
        Further quantities judged by the bars, e.g. ``{"test_mean": (chain, draw, n)}`` and
        ``{"log_density": (chain, draw)}``.
    stats
        Sampler statistics (chain, draw): ``diverging``, ``tree_depth``, ``step_size``.

    Returns
    -------
    dict
        ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min`` over the quantities the bars judge;
        ``groups`` with the same per group (``params``, each derived quantity);
        ``per_variable``; ``latent`` (sites and coordinates, where there are latent draws);
        ``converged`` and ``problems``; ``divergences`` and tree depth.
    """
    params = {k: v for k, v in draws.items() if k not in latent}
    groups = {"params": summarize_draws(params)}
    for name, v in (derived or {}).items():
        groups[name] = summarize_draws({name: v})
    out: dict[str, Any] = {
        "rhat_max": _finite_max([g["rhat_max"] for g in groups.values()]),
        "ess_bulk_min": _finite_min([g["ess_bulk_min"] for g in groups.values()]),
        "ess_tail_min": _finite_min([g["ess_tail_min"] for g in groups.values()]),
        "groups": {
            k: {kk: g[kk] for kk in ("rhat_max", "ess_bulk_min", "ess_tail_min")}
            for k, g in groups.items()
        },
        "per_variable": groups["params"]["per_variable"],
    }
    lat = {k: np.shape(v) for k, v in draws.items() if k in latent}
    if lat:
        out["latent"] = {
            "sites": sorted(lat),
            "coordinates": int(sum(np.prod(s[2:], dtype=int) for s in lat.values())),
        }
    if stats is not None and "diverging" in stats:
        out["divergences"] = int(np.asarray(stats["diverging"]).sum())
        if "tree_depth" in stats:
            out["tree_depth_mean"] = float(np.mean(stats["tree_depth"]))
            out["tree_depth_max"] = int(np.max(stats["tree_depth"]))
        if "step_size" in stats:
            out["step_size"] = [float(s) for s in np.asarray(stats["step_size"])[:, -1]]
    else:
        out["divergences"] = 0
    out["problems"] = convergence_problems(out)
    out["converged"] = not out["problems"]
    return out


def latent_diagnostics(posterior) -> dict[str, Any]:
    """R-hat and ESS of a fit's latent blocks (:data:`~lbmm.inference.LATENT_SITES`), which
    its diagnostics leave out: whether the coefficients themselves mixed.

    Parameters
    ----------
    posterior
        A :class:`~lbmm.inference.Posterior`.

    Returns
    -------
    dict
        :func:`summarize_draws` of the latent sites present (``rhat_max``, ``ess_bulk_min``,
        ``ess_tail_min``, ``per_variable``); NaNs and an empty ``per_variable`` when the
        posterior has none.
    """
    from .posterior import LATENT_SITES

    post = posterior.idata.posterior
    return summarize_draws({k: post[k].values for k in post.data_vars if k in LATENT_SITES})


def _finite_max(vals) -> float:
    v = [x for x in vals if np.isfinite(x)]
    return float(max(v)) if v else float("nan")


def _finite_min(vals) -> float:
    v = [x for x in vals if np.isfinite(x)]
    return float(min(v)) if v else float("nan")


def convergence_problems(diag: Mapping[str, Any]) -> list[str]:
    """The bars a fit misses, in words (empty when converged; closed forms have none)."""
    if diag.get("sampler") in CLOSED_FORMS:
        return []
    out = []
    rhat, ess = diag.get("rhat_max"), diag.get("ess_bulk_min")
    if rhat is None or not rhat <= RHAT_MAX:
        out.append(f"max R-hat {_num(rhat, '.4f')} > {RHAT_MAX}")
    if ess is None or not ess >= ESS_MIN:
        out.append(f"min bulk ESS {_num(ess, '.0f')} < {ESS_MIN}")
    return out


def _num(v, fmt: str) -> str:
    return "n/a" if v is None or not np.isfinite(v) else format(v, fmt)


def is_converged(diag: Mapping[str, Any]) -> bool:
    """Whether a fit's diagnostics meet the bars (closed forms always do)."""
    return not convergence_problems(diag)
