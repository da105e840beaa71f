"""The run's figures (PNG, matplotlib figures drawn without pyplot, so importing this module
never changes the backend of a notebook or an application). Each function draws results that a
run already computed (``metrics.json``, ``predictions.csv``, ``weights.csv``,
``dataset.csv``, the posteriors) and computes nothing statistical.

- :func:`ecp_figure` — empirical coverage of equal-tailed intervals on the test set, raw
  models and mixers (the paper's Fig. 3);
- :func:`global_weights_figure` — Table 2 as bars;
- :func:`weight_maps_figure` — posterior mean and sd of each model's local weight over the
  nuclear chart (the paper's Fig. 4);
- :func:`residual_maps_figure` — prediction minus data over the chart;
- :func:`chains_figure` — predictions with 68/95 % bands along isotopic chains, with data;
- :func:`existence_figure` — P(y > 0) over the chart (for S2n: bound to two-neutron emission);
- :func:`trace_figure`, :func:`rank_figure` — MCMC traces and rank plots of hyperparameters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..data.elements import symbol

__all__ = [
    "FigureInfo",
    "chains_figure",
    "choose_chains",
    "convergence_figures",
    "ecp_figure",
    "existence_figure",
    "global_weights_figure",
    "hyperparameters",
    "make_figures",
    "mixer_figures",
    "models_residuals_figure",
    "rank_figure",
    "residual_maps_figure",
    "trace_figure",
    "weight_maps_figure",
]

MAGIC = (8, 20, 28, 50, 82, 126)
DPI = 110
MAX_TRACE_PANELS = 16
_NUCLEUS_DIMS = {"nucleus", "obs_nucleus", "basis"}


@dataclass(frozen=True)
class FigureInfo:
    """A written figure: file name (in ``figures/``), section, title and caption."""

    file: str
    section: str
    title: str
    caption: str


_SUBPLOT_KEYS = {"sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw",
                 "gridspec_kw"}  # fmt: skip


def _subplots(nrows: int = 1, ncols: int = 1, **kw: Any):
    """``pyplot.subplots`` on a pyplot-free :class:`~matplotlib.figure.Figure` (Agg on save)."""
    sub = {k: kw.pop(k) for k in list(kw) if k in _SUBPLOT_KEYS}
    fig = Figure(**kw)
    return fig, fig.subplots(nrows, ncols, **sub)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _display(name: str, labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(name, name)


# ---------------------------------------------------------------------- nuclear chart


def _grid_step(values: np.ndarray) -> int:
    d = np.unique(values - values.min())
    g = int(np.gcd.reduce(d.astype(np.int64))) if d.size > 1 else 1
    return max(g, 1)


def chart(ax, Z: np.ndarray, N: np.ndarray, values: np.ndarray, **kw):
    """Draw values over the nuclear chart (N across, Z up) as cells; returns the mesh."""
    Z = np.asarray(Z, dtype=np.int64)
    N = np.asarray(N, dtype=np.int64)
    step = min(_grid_step(Z), _grid_step(N))
    z0, n0 = Z.min(), N.min()
    nz = (Z.max() - z0) // step + 1
    nn = (N.max() - n0) // step + 1
    grid = np.full((nz, nn), np.nan)
    grid[(Z - z0) // step, (N - n0) // step] = values
    ez = z0 - step / 2 + step * np.arange(nz + 1)
    en = n0 - step / 2 + step * np.arange(nn + 1)
    mesh = ax.pcolormesh(en, ez, np.ma.masked_invalid(grid), shading="flat", **kw)
    for m in MAGIC:
        if Z.min() < m < Z.max():
            ax.axhline(m, color="0.6", lw=0.4, ls=":")
        if N.min() < m < N.max():
            ax.axvline(m, color="0.6", lw=0.4, ls=":")
    ax.set_aspect("equal")
    ax.set_xlabel("N")
    ax.set_ylabel("Z")
    return mesh


# ---------------------------------------------------------------------- figures


def ecp_figure(metrics: Mapping[str, Any], path: Path, labels=None) -> Path:
    """Test-set coverage of equal-tailed intervals against their credibility level."""
    fig, ax = _subplots(figsize=(6.8, 5.0))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="reference")
    raw = metrics.get("models", {}).get("raw", {})
    greys = matplotlib.colormaps["tab20"]
    for i, (m, v) in enumerate(raw.items()):
        e = v.get("test", {}).get("ecp")
        if e:
            ax.plot(e["levels"], e["coverage"], ls=":", lw=1.2, color=greys(i % 20),
                    label=_display(m, labels))  # fmt: skip
    colors = matplotlib.colormaps["tab10"]
    for i, (_, v) in enumerate(metrics.get("mixers", {}).items()):
        e = v.get("test", {}).get("ecp")
        if e:
            ax.plot(e["levels"], e["coverage"], lw=2, marker="o", ms=3, color=colors(i % 10),
                    ls="-" if not v.get("corrected") else "-.", label=v.get("label"))  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("credibility level of the equal-tailed interval")
    ax.set_ylabel("empirical coverage on the test set")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title("Empirical coverage probability (test set)")
    return _save(fig, path)


def pit_figure(metrics: Mapping[str, Any], path: Path) -> Path:
    """PIT histograms on the test split, one panel per mixer, with the uniform law and its
    95 % binomial band (a calibrated predictor's bars fall inside it 95 % of the time)."""
    from scipy import stats

    items = [(v.get("label", k), np.asarray(v["test"]["pit"], dtype=float))
             for k, v in metrics.get("mixers", {}).items()
             if v.get("test", {}).get("pit")]  # fmt: skip
    cols = min(3, max(len(items), 1))
    rows = max(1, math.ceil(len(items) / cols))
    fig, axes = _subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
    bins = 10
    for ax, (label, u) in zip(axes.ravel(), items, strict=False):
        n = u.size
        lo, hi = stats.binom.ppf([0.025, 0.975], n, 1 / bins) / n * bins
        ax.axhspan(lo, hi, color="0.85", lw=0)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.hist(u, bins=bins, range=(0, 1), density=True, color="tab:blue", alpha=0.8)
        p = stats.kstest(u, "uniform").pvalue if n else float("nan")
        ax.set_title(f"{label} (n={n}, KS p={p:.2f})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("PIT", fontsize=8)
    for ax in axes.ravel()[len(items) :]:
        ax.axis("off")
    fig.suptitle("Probability integral transform on the test split", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def global_weights_figure(table2: pd.DataFrame, models: Sequence[str], path: Path,
                          labels=None) -> Path:  # fmt: skip
    """Table 2 as grouped bars: one group per model, one bar per mixer row."""
    rows = table2.reset_index(drop=True)
    p, r = len(models), len(rows)
    fig, ax = _subplots(figsize=(max(6.0, 0.9 * p + 2), 3.8))
    width = 0.8 / max(r, 1)
    colors = matplotlib.colormaps["tab10"]
    x = np.arange(p)
    for i, row in rows.iterrows():
        vals = [float(row.get(m, np.nan)) for m in models]
        hatch = "//" if row.get("kind", "").startswith("local") else None
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=row["name"], color=colors(i % 10),
               hatch=hatch, edgecolor="white", lw=0.3)  # fmt: skip
    ax.set_xticks(x, [_display(m, labels) for m in models], rotation=30, ha="right")
    ax.set_ylabel("weight")
    ax.set_title("Model weights (Table 2; hatched: local mixers, mean over training nuclei)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def weight_maps_figure(weights: pd.DataFrame, models: Sequence[str], title: str, path: Path,
                       labels=None) -> Path:  # fmt: skip
    """Posterior mean (top row) and sd (bottom row) of each model's weight over the chart."""
    p = len(models)
    ncol = min(p, 5)
    nrow_per = math.ceil(p / ncol)
    fig, axes = _subplots(2 * nrow_per, ncol, figsize=(3.2 * ncol, 1.9 * 2 * nrow_per + 0.5),
                             squeeze=False, constrained_layout=True)  # fmt: skip
    Z, N = weights["Z"].to_numpy(), weights["N"].to_numpy()
    vmax_m = float(np.nanmax(weights[[f"mean_{m}" for m in models]].to_numpy()))
    vmax_s = float(np.nanmax(weights[[f"sd_{m}" for m in models]].to_numpy()))
    for block, (prefix, vmax, cmap, what) in enumerate(
        (("mean", vmax_m, "viridis", "mean"), ("sd", vmax_s, "magma", "sd"))
    ):
        mesh = None
        for j, m in enumerate(models):
            ax = axes[block * nrow_per + j // ncol, j % ncol]
            mesh = chart(ax, Z, N, weights[f"{prefix}_{m}"].to_numpy(), cmap=cmap, vmin=0,
                         vmax=vmax)  # fmt: skip
            ax.set_title(f"{_display(m, labels)}: {what}", fontsize=9)
            ax.tick_params(labelsize=7)
        for j in range(p, nrow_per * ncol):
            axes[block * nrow_per + j // ncol, j % ncol].axis("off")
        rows = axes[block * nrow_per : (block + 1) * nrow_per, :]
        fig.colorbar(mesh, ax=rows.ravel().tolist(), shrink=0.8, label=f"weight {what}")
    fig.suptitle(title)
    return _save(fig, path)


def residual_maps_figure(panels: Sequence[tuple[str, pd.DataFrame]], title: str, path: Path,
                         unit: str = "MeV") -> Path:  # fmt: skip
    """One chart per panel of ``residual`` (prediction − data), on one symmetric colour scale.

    Each panel's frame has columns ``Z``, ``N``, ``residual``.
    """
    k = len(panels)
    ncol = min(k, 3)
    nrow = math.ceil(k / ncol)
    fig, axes = _subplots(nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    allr = np.concatenate([df["residual"].to_numpy() for _, df in panels])
    lim = float(np.nanpercentile(np.abs(allr), 98)) if allr.size else 1.0
    lim = lim if lim > 0 else 1.0
    mesh = None
    for i, (name, df) in enumerate(panels):
        ax = axes[i // ncol, i % ncol]
        rms = float(np.sqrt(np.nanmean(df["residual"].to_numpy() ** 2)))
        mesh = chart(ax, df["Z"].to_numpy(), df["N"].to_numpy(), df["residual"].to_numpy(),
                     cmap="RdBu_r", vmin=-lim, vmax=lim)  # fmt: skip
        ax.set_title(f"{name} (rms {rms:.3f} {unit})", fontsize=9)
        ax.tick_params(labelsize=7)
    for i in range(k, nrow * ncol):
        axes[i // ncol, i % ncol].axis("off")
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label=f"prediction − data ({unit})")
    fig.suptitle(title)
    return _save(fig, path)


def choose_chains(pred: pd.DataFrame, wanted: Sequence[int] = (), count: int = 3) -> list[int]:
    """The isotopic chains to draw: ``wanted`` where present, else the ``count`` proton numbers
    with the most observed nuclei (spread over the chart)."""
    present = set(pred["Z"].tolist())
    chosen = [z for z in wanted if z in present]
    if chosen:
        return chosen
    obs = pred[np.isfinite(pred["y_obs"])]
    counts = obs.groupby("Z").size().sort_values(ascending=False)
    if counts.empty:
        return sorted(present)[:count]
    zs = sorted(counts.index[: max(count * 4, count)].tolist())
    idx = np.linspace(0, len(zs) - 1, min(count, len(zs))).round().astype(int)
    return sorted({zs[i] for i in idx})


def chains_figure(pred: pd.DataFrame, chains: Sequence[int], title: str, path: Path,
                  observable: str = "S2n", unit: str = "MeV") -> Path:  # fmt: skip
    """Predicted values with 68 % and 95 % bands along isotopic chains, against the data.

    ``pred`` is one mixer's rows of ``predictions.csv``.
    """
    k = len(chains)
    fig, axes = _subplots(1, k, figsize=(4.4 * k, 3.6), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    for ax, z in zip(axes[0], chains, strict=True):
        d = pred[pred["Z"] == z].sort_values("N")
        n = d["N"].to_numpy()
        ax.fill_between(n, d["lo95"], d["hi95"], color="tab:blue", alpha=0.2, lw=0,
                        label="95 %")  # fmt: skip
        ax.fill_between(n, d["lo68"], d["hi68"], color="tab:blue", alpha=0.4, lw=0,
                        label="68 %")  # fmt: skip
        ax.plot(n, d["mean"], color="tab:blue", lw=1.2, label="mean")
        tr = d[d["in_train"] & np.isfinite(d["y_obs"])]
        te = d[d["in_test"] & np.isfinite(d["y_obs"])]
        other = d[~d["in_train"] & ~d["in_test"] & np.isfinite(d["y_obs"])]
        ax.plot(tr["N"], tr["y_obs"], "k.", ms=4, label="data (train)")
        ax.plot(te["N"], te["y_obs"], "o", mfc="none", mec="tab:red", ms=5, label="data (test)")
        if len(other):
            ax.plot(other["N"], other["y_obs"], "x", color="0.4", ms=4, label="data (other)")
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(f"Z = {z} ({symbol(z)})")
        ax.set_xlabel("N")
        ax.set_ylabel(f"{observable} ({unit})")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def existence_figure(pred: pd.DataFrame, keys_labels: Sequence[tuple[str, str]], path: Path,
                     observable: str = "S2n") -> Path:  # fmt: skip
    """P(y > 0) over the chart, one panel per mixer."""
    k = len(keys_labels)
    ncol = min(k, 3)
    nrow = math.ceil(k / ncol)
    fig, axes = _subplots(nrow, ncol, figsize=(4.2 * ncol, 2.9 * nrow), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    mesh = None
    for i, (key, lab) in enumerate(keys_labels):
        d = pred[pred["mixer"] == key]
        ax = axes[i // ncol, i % ncol]
        mesh = chart(ax, d["Z"].to_numpy(), d["N"].to_numpy(), d["p_exist"].to_numpy(),
                     cmap="RdYlGn", vmin=0, vmax=1)  # fmt: skip
        ax.set_title(lab, fontsize=9)
        ax.tick_params(labelsize=7)
    for i in range(k, nrow * ncol):
        axes[i // ncol, i % ncol].axis("off")
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label=f"P({observable} > 0)")
    fig.suptitle(f"Existence probability P({observable} > 0)")
    return _save(fig, path)


def drip_line(Z: np.ndarray, N: np.ndarray, p: np.ndarray, level: float = 0.5):
    """Per proton number, the largest N whose existence probability is at least ``level``
    (the neutron drip line at that confidence): arrays (Z, N_drip) over the Z present."""
    zs, out = [], []
    for z in np.unique(Z):
        m = (Z == z) & (p >= level)
        if m.any():
            zs.append(int(z))
            out.append(int(N[m].max()))
    return np.asarray(zs), np.asarray(out)


def drip_lines_figure(derived: pd.DataFrame, keys_labels: Sequence[tuple[str, str]],
                      path: Path) -> Path:  # fmt: skip
    """P(Sn > 0) and P(S2n > 0) over the chart, one row per mixer, with the drip lines at
    P = 0.5 (solid) and their band from P = 0.84 to P = 0.16 (dashed)."""
    qs = [q for q in ("Sn", "S2n") if (derived["quantity"] == q).any()]
    k = len(keys_labels)
    fig, axes = _subplots(k, len(qs), figsize=(4.6 * len(qs), 3.1 * k), squeeze=False,
                          constrained_layout=True)  # fmt: skip
    mesh = None
    for i, (key, lab) in enumerate(keys_labels):
        for j, q in enumerate(qs):
            d = derived[(derived["mixer"] == key) & (derived["quantity"] == q)]
            ax = axes[i, j]
            Z, N, pe = d["Z"].to_numpy(), d["N"].to_numpy(), d["p_exist"].to_numpy()
            mesh = chart(ax, Z, N, pe, cmap="RdYlGn", vmin=0, vmax=1)
            for level, style in ((0.5, "-"), (0.84, "--"), (0.16, "--")):
                zs, nd = drip_line(Z, N, pe, level)
                ax.step(nd + 0.5, zs, where="mid", color="k", lw=0.7, ls=style)
            ax.set_title(f"{lab}: P({q} > 0)", fontsize=9)
            ax.tick_params(labelsize=7)
    fig.colorbar(mesh, ax=axes.ravel().tolist(), shrink=0.8, label="existence probability")
    fig.suptitle("Existence from binding energies (Sn, S2n formed draw by draw); drip lines")
    return _save(fig, path)


def hyperparameters(posterior, limit: int = MAX_TRACE_PANELS) -> dict[str, np.ndarray]:
    """Scalar series (chain, draw) of the hyperparameters of a posterior: every float variable
    without a nucleus or basis dimension and with at most 3p elements, flattened (σ first,
    then the other scalars, then vectors, weights last), at most ``limit`` of them. The
    latent blocks (non-centred auxiliaries, GP coefficients) are left out: they are not
    identified one by one, while the weights they make are."""
    from ..inference import LATENT_SITES

    post = posterior.idata.posterior
    p = len(posterior.models)
    names = [v for v in post.data_vars if post[v].dtype.kind == "f" and v not in LATENT_SITES]
    # sigma, then the other scalars (GP length scales...), then vectors; weights last
    names.sort(key=lambda v: (v != "sigma", post[v].ndim > 2, v == "weights"))
    out: dict[str, np.ndarray] = {}
    for v in names:
        da = post[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        if _NUCLEUS_DIMS & set(extra):
            continue
        size = int(np.prod([da.sizes[d] for d in extra])) if extra else 1
        if size > 3 * p:
            continue
        vals = da.values.reshape(da.shape[0], da.shape[1], -1)
        if extra:
            grids = np.meshgrid(*[da[d].values for d in extra], indexing="ij")
            tags = [",".join(str(g.ravel()[i]) for g in grids) for i in range(size)]
        else:
            tags = [None]
        for i, tag in enumerate(tags):
            if len(out) >= limit:
                return out
            out[f"{v}[{tag}]" if tag is not None else v] = vals[:, :, i]
    return out


def trace_figure(series: Mapping[str, np.ndarray], title: str, path: Path) -> Path:
    """Trace plot of scalar series (chain, draw): a histogram per chain (left) and the draws
    of each chain in order (right)."""
    colors = matplotlib.colormaps["tab10"]
    n = len(series)
    # a fixed layout and draw numbers only under the last trace: most of the cost of this
    # figure is laying out tick labels (about half of it with a label on every panel)
    height = 1.5 * n + 0.5
    fig, axes = _subplots(n, 2, figsize=(10, height), squeeze=False,
                          gridspec_kw={"hspace": 0.6, "wspace": 0.15, "top": 1 - 0.6 / height,
                                       "bottom": 0.4 / height})  # fmt: skip
    for i, ((name, x), (ax_d, ax_t)) in enumerate(zip(series.items(), axes, strict=True)):
        x = np.asarray(x, dtype=float)
        edges = np.histogram_bin_edges(x.ravel(), bins=30)
        for c in range(x.shape[0]):
            ax_d.hist(x[c], bins=edges, histtype="step", density=True, color=colors(c % 10))
            ax_t.plot(x[c], lw=0.5, alpha=0.8, color=colors(c % 10))
        ax_d.set_title(name, fontsize=8, loc="left")
        ax_d.set_yticks([])  # a density's scale says nothing here
        ax_d.tick_params(labelsize=7)
        ax_t.tick_params(labelsize=7, labelbottom=i == n - 1)
        if i:
            ax_t.sharex(axes[0, 1])
    axes[-1, 1].set_xlabel("draw", fontsize=7)
    fig.suptitle(title, y=1 - 0.15 / height)
    return _save(fig, path)


def rank_figure(series: Mapping[str, np.ndarray], title: str, path: Path) -> Path:
    """Rank plot: the ranks of each chain's draws among all draws, one histogram per chain
    (uniform when the chains sample the same distribution; Vehtari et al. 2021)."""
    from scipy.stats import rankdata

    colors = matplotlib.colormaps["tab10"]
    k = len(series)
    ncol = min(k, 4)
    nrow = math.ceil(k / ncol)
    fig, axes = _subplots(nrow, ncol, figsize=(3.2 * ncol, 2.3 * nrow), squeeze=False,
                          constrained_layout=True)  # fmt: skip
    for (name, x), ax in zip(series.items(), axes.ravel(), strict=False):
        x = np.asarray(x, dtype=float)
        ranks = rankdata(x.ravel()).reshape(x.shape)
        bins = np.linspace(0.5, x.size + 0.5, 21)
        for c in range(x.shape[0]):
            ax.hist(ranks[c], bins=bins, histtype="step", color=colors(c % 10))
        ax.axhline(x.shape[1] / 20, color="k", ls="--", lw=0.8)  # uniform: draws per bin
        ax.set_title(name)
        ax.set_yticks([])
    for ax in axes.ravel()[:k]:
        ax.title.set_fontsize(8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------------- all of them


def _convergence_infos(key: str, label: str) -> list[FigureInfo]:
    return [
        FigureInfo(f"trace_{key}.png", "Convergence", f"{label}: traces",
                   "Marginal densities and traces per chain of the hyperparameters (σ first)."),
        FigureInfo(f"rank_{key}.png", "Convergence", f"{label}: rank plots",
                   "Rank histograms per chain; near-uniform bars mean the chains agree."),
    ]  # fmt: skip


def convergence_figures(posterior, key: str, label: str, folder: Path) -> list[FigureInfo]:
    """Trace and rank plots of a posterior's hyperparameters (:func:`hyperparameters`) as
    ``trace_KEY.png`` and ``rank_KEY.png`` in ``folder``; none for a posterior without any."""
    series = hyperparameters(posterior)
    if not series:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    trace_figure(series, f"{label}: traces", folder / f"trace_{key}.png")
    rank_figure(series, f"{label}: rank plots", folder / f"rank_{key}.png")
    return _convergence_infos(key, label)


def _chains_file(key: str) -> str:
    return f"chains_{key}.png"


def _weights_file(key: str) -> str:
    return f"weights_{key}.png"


#: Where :func:`mixer_figures` records, in its folder, the isotopic chains of each chains figure.
EARLY_CHAINS = "chains.json"
#: The raw models' residuals (:func:`models_residuals_figure`).
MODELS_RESIDUALS = "residuals_models.png"
#: What ``lbmm run`` may draw early (besides the convergence figures): file-name patterns.
EARLY_FILES = (_chains_file("*"), _weights_file("*"), MODELS_RESIDUALS, EARLY_CHAINS)


def mixer_figures(key: str, label: str, pred: pd.DataFrame, weights: pd.DataFrame | None,
                  models: Sequence[str], chains: Sequence[int], observable: str,
                  folder: Path) -> list[str]:  # fmt: skip
    """One mixer's own figures: its predictions along the isotopic chains ``chains``
    (``chains_KEY.png``) and, for a local mixer (``weights`` given), its weight maps
    (``weights_KEY.png``). ``pred`` and ``weights`` are its rows of ``predictions.csv`` and
    ``weights.csv``. The chains are recorded in ``folder/chains.json`` (by file name), so
    that :func:`make_figures` can tell whether the report would choose the same. Returns the
    file names."""
    import json

    from ..data import DISPLAY_NAMES

    folder.mkdir(parents=True, exist_ok=True)
    chains_figure(pred, chains, f"{label}: {observable} along isotopic chains",
                  folder / _chains_file(key), observable)  # fmt: skip
    out = [_chains_file(key)]
    if weights is not None:
        weight_maps_figure(weights, models, f"{label}: local weights over the chart",
                           folder / _weights_file(key), DISPLAY_NAMES)  # fmt: skip
        out.append(_weights_file(key))
    rec = folder / EARLY_CHAINS
    drawn = json.loads(rec.read_text("utf-8")) if rec.is_file() else {}
    drawn[_chains_file(key)] = [int(z) for z in chains]
    rec.write_text(json.dumps(drawn), "utf-8")
    return out


def models_residuals_figure(data: pd.DataFrame, models: Sequence[str], observable: str,
                            path: Path) -> Path:  # fmt: skip
    """The raw models' residuals (model − data) over the chart wherever the data are known
    (``data`` as ``dataset.csv``: columns Z, N, y, one per model, ``in_domain``)."""
    from ..data import DISPLAY_NAMES

    ok = np.isfinite(data["y"].to_numpy())
    if "in_domain" in data:
        ok &= data["in_domain"].to_numpy(bool)
    panels = [
        (_display(m, DISPLAY_NAMES), pd.DataFrame({"Z": data["Z"][ok], "N": data["N"][ok],
                                                    "residual": (data[m] - data["y"])[ok]}))
        for m in models
    ]  # fmt: skip
    return residual_maps_figure(panels, f"Raw models: {observable} residuals (model − data)",
                                path)  # fmt: skip


def _early_file(early: Path | None, name: str, folder: Path, chains=None) -> bool:
    """Move ``early/name`` into ``folder`` if it was drawn there already (for a chains
    figure: with the same ``chains``); True if it was."""
    import json

    if early is None or not (early / name).is_file():
        return False
    if chains is not None:
        rec = early / EARLY_CHAINS
        drawn = json.loads(rec.read_text("utf-8")) if rec.is_file() else {}
        if drawn.get(name) != [int(z) for z in chains]:
            return False
    os.replace(early / name, folder / name)
    return True


def make_figures(run, folder: Path, table2: pd.DataFrame,
                 early: Path | None = None) -> list[FigureInfo]:  # fmt: skip
    """Draw every figure of a run into ``folder``; returns what was written, in report order.

    Parameters
    ----------
    run
        A :class:`lbmm.run.Run`.
    folder
        Where the PNG files go.
    table2
        Table 2 (:func:`lbmm.report.tables.table2`), for the weights bar chart.
    early
        A folder of figures drawn already: convergence figures (:func:`convergence_figures`,
        which ``lbmm run`` calls as soon as each mixer is fitted), a mixer's own figures
        (:func:`mixer_figures`) and the raw models' residuals
        (:func:`models_residuals_figure`), which ``lbmm run`` draws while the last fits run.
        Those found there are moved into ``folder`` instead of being drawn again.
    """
    from ..data import DISPLAY_NAMES

    folder.mkdir(parents=True, exist_ok=True)
    man = run.manifest
    metrics = run.metrics()
    pred = run.predictions()
    data = run.dataset_frame()
    obs = man["dataset"]["observable"]
    models = list(man["dataset"]["models"])
    labels = DISPLAY_NAMES
    mixers = metrics["mixers"]
    out: list[FigureInfo] = []

    def add(file, section, title, caption):
        out.append(FigureInfo(file, section, title, caption))

    ecp_figure(metrics, folder / "ecp.png", labels)
    add("ecp.png", "Coverage", "Empirical coverage probability",
        "Share of test nuclei inside the equal-tailed credible interval at each level: raw "
        "models as Gaussians N(f_k, σ_k²) with σ_k their train rms (dotted), and the mixers "
        "(solid; dash-dotted: corrected models). The dashed diagonal is perfect calibration "
        "(the paper's Fig. 3).")  # fmt: skip
    pit_figure(metrics, folder / "pit.png")
    add("pit.png", "Coverage", "PIT histograms",
        "Share of predictive draws below each test observation (PIT), per mixer: flat for a "
        "calibrated predictor. Grey: the 95 % band of a bar under uniform PITs. A U shape "
        "means intervals too narrow; a hump, too wide; a slope, a biased mean.")  # fmt: skip
    global_weights_figure(table2, models, folder / "weights_global.png", labels)
    add("weights_global.png", "Weights", "Model weights",
        "Table 2 as bars: BMA weights from the exact, Monte Carlo and Laplace evidences, "
        "posterior-mean global weights of GBMM, and the local weights averaged over the "
        "training nuclei (hatched).")  # fmt: skip
    weights = run.weights()
    for key, v in mixers.items():
        if not v.get("local") or weights is None:
            continue
        w = weights[weights["mixer"] == key]
        fname = _weights_file(key)
        if not _early_file(early, fname, folder):
            weight_maps_figure(w, models, f"{v['label']}: local weights over the chart",
                               folder / fname, labels)  # fmt: skip
        add(fname, "Weights", f"{v['label']} weight maps",
            "Posterior mean (top) and standard deviation (bottom) of each model's weight "
            "ω_k(Z, N) over the prediction domain (the paper's Fig. 4).")  # fmt: skip

    if not _early_file(early, MODELS_RESIDUALS, folder):
        models_residuals_figure(data, models, obs, folder / MODELS_RESIDUALS)
    add(MODELS_RESIDUALS, "Residuals", "Residuals of the raw models",
        f"Model − data for {obs} wherever the data are known (train, test and other nuclei "
        "of the domain), on one colour scale.")  # fmt: skip
    panels = []
    for key, v in mixers.items():
        d = pred[(pred["mixer"] == key) & np.isfinite(pred["y_obs"])]
        panels.append((v["label"], pd.DataFrame({"Z": d["Z"], "N": d["N"],
                                                 "residual": d["mean"] - d["y_obs"]})))  # fmt: skip
    residual_maps_figure(panels, f"Mixers: {obs} residuals (posterior mean − data)",
                         folder / "residuals_mixers.png")  # fmt: skip
    add(
        "residuals_mixers.png",
        "Residuals",
        "Residuals of the mixtures",
        "Posterior predictive mean − data wherever the data are known.",
    )

    chains = choose_chains(pred, run.study.report.chains)
    for key, v in mixers.items():
        fname = _chains_file(key)
        if not _early_file(early, fname, folder, chains):
            chains_figure(pred[pred["mixer"] == key], chains, f"{v['label']}: {obs} along "
                          "isotopic chains", folder / fname, obs)  # fmt: skip
        add(fname, "Predictions", f"{v['label']}: {obs} along isotopic chains",
            "Posterior predictive mean with 68 % and 95 % credible bands, against the data "
            "(dots: train; red circles: test).")  # fmt: skip

    derived = run.derived()
    if derived is not None:
        drip_lines_figure(derived, [(k, v["label"]) for k, v in mixers.items()],
                          folder / "existence.png")  # fmt: skip
        add("existence.png", "Predictions", "Existence probability and drip lines",
            "P(Sn > 0) and P(S2n > 0), each formed draw by draw from the joint predictive "
            "draws of the binding energies of neighbouring nuclei (their correlation kept). "
            "Solid: the drip line (largest N per Z with P ≥ 0.5); dashed: P ≥ 0.84 and "
            "P ≥ 0.16.")  # fmt: skip
    elif obs != "BE":
        existence_figure(pred, [(k, v["label"]) for k, v in mixers.items()],
                         folder / "existence.png", obs)  # fmt: skip
        add("existence.png", "Predictions", "Existence probability",
            f"Posterior predictive probability that {obs} > 0 (for S2n: the nucleus is bound "
            "against two-neutron emission).")  # fmt: skip

    from ..inference import CLOSED_FORMS

    for key, rec in man["mixers"].items():
        if rec["diagnostics"].get("sampler") in CLOSED_FORMS:
            continue
        names = [f"trace_{key}.png", f"rank_{key}.png"]
        if early is not None and all((early / n).is_file() for n in names):
            for n in names:
                _early_file(early, n, folder)
            out.extend(_convergence_infos(key, rec["label"]))
        else:
            out.extend(convergence_figures(run.posterior(key), key, rec["label"], folder))
    return out
