"""The report page of a grid: the comparison table and plots over its cells.

Reads only the grid's results table and manifest; writes ``figures/`` and ``report.html``
into the grid folder (each file written to a temporary name, then renamed).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .._util import atomic_write_text
from .figures import _save, _subplots
from .html import _CSS, frame_html

__all__ = ["GRID_METRICS", "grid_report", "grid_summary"]

#: The metrics compared across cells: (column, label, lower is better).
GRID_METRICS = (
    ("rms", "rms (MeV)", True),
    ("crps", "CRPS (MeV)", True),
    ("ecp_mean_abs", "mean |ECP − level|, 10–90 %", True),
    ("mlpd", "mean log predictive density", False),
)
_REPEATS = ("seed", "fold")


def _axes(manifest: Mapping[str, Any]) -> list[str]:
    return list(manifest.get("axes", {}))


def grid_summary(table: pd.DataFrame, manifest: Mapping[str, Any]) -> pd.DataFrame:
    """Mean and standard deviation of each metric over the repeats (seeds, folds) of every
    setting of the other axes, per mixer entry; test split and folds kept apart."""
    keys = [a for a in _axes(manifest) if a not in _REPEATS]
    split = table["split"].where(table["split"] == "test", "folds")
    df = table.assign(split=split)
    by = [*keys, "entry", "split"]
    agg: dict[str, Any] = {"cells": ("cell", "nunique")}
    for col, _, _ in GRID_METRICS:
        agg[f"{col}_mean"] = (col, "mean")
        agg[f"{col}_sd"] = (col, "std")
    agg["converged"] = ("converged", "mean")
    return df.groupby(by, sort=False, dropna=False).agg(**agg).reset_index()


def _figure(table: pd.DataFrame, manifest: Mapping[str, Any], col: str, label: str,
            path: Path) -> Path:  # fmt: skip
    axes = _axes(manifest)
    keys = [a for a in axes if a not in _REPEATS]
    df = table[table["split"] == "test"] if (table["split"] == "test").any() else table
    groups = list(df.groupby(keys, sort=False, dropna=False)) if keys else [((), df)]
    names = []
    entries = list(dict.fromkeys(df["entry"]))
    fig, ax = _subplots(figsize=(7.0, 0.45 * max(4, len(groups)) + 1.2))
    for i, (gkey, part) in enumerate(groups):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        names.append(", ".join(f"{a}={v}" for a, v in zip(keys, gkey, strict=True)) or "all")
        for j, entry in enumerate(entries):
            vals = part.loc[part["entry"] == entry, col].dropna()
            y = i + (j - (len(entries) - 1) / 2) * 0.8 / max(1, len(entries))
            ax.plot(vals, [y] * len(vals), "o", ms=4, alpha=0.7, color=f"C{j}",
                    label=entry if i == 0 else None)  # fmt: skip
            if len(vals):
                ax.plot([vals.mean()], [y], "|", ms=12, mew=2, color=f"C{j}")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(label)
    rep = [a for a in axes if a in _REPEATS]
    ax.set_title(f"{label}: each point one {' × '.join(rep) or 'cell'}, bar the mean",
                 fontsize=9)  # fmt: skip
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def grid_report(folder: str | Path, table: pd.DataFrame, manifest: Mapping[str, Any]) -> Path:
    """Write the grid's figures and ``report.html``; returns the page's path."""
    folder = Path(folder)
    figs = []
    for col, label, _ in GRID_METRICS:
        if col in table and table[col].notna().any():
            figs.append((_figure(table, manifest, col, label, folder / "figures" / f"{col}.png"),
                         label))  # fmt: skip
    summary = grid_summary(table, manifest)
    e = html.escape
    cells = manifest.get("cells", {})
    n_ran = sum(1 for c in cells.values() if c.get("status") == "ran")
    n_skip = sum(1 for c in cells.values() if c.get("status") == "skipped")
    n_fail = sum(1 for c in cells.values() if c.get("status") == "failed")
    eng = manifest.get("engine") or {}
    parts = [
        f"<h1>Grid {e(manifest['name'])}</h1>",
        f"<p>{e(manifest.get('description', ''))}</p>",
        f"<p>{len(cells)} cells: {n_ran} run, {n_skip} found done, {n_fail} failed; axes "
        + ", ".join(f"<b>{e(a)}</b> ({len(v)})" for a, v in manifest.get("axes", {}).items())
        + (f"; Dask {e(eng.get('cluster', ''))}, {eng.get('workers')} workers" if eng else "")
        + '. Results: <a href="results.csv">results.csv</a>; every cell\'s run folder is '
        "<code>cells/ID</code>.</p>",
        "<h2>Summary over seeds and folds</h2>",
        frame_html(summary),
    ]
    for path, label in figs:
        rel = path.relative_to(folder).as_posix()
        parts.append(f'<figure><img src="{e(rel)}" alt="{e(label)}">'
                     f"<figcaption>{e(label)} by cell</figcaption></figure>")  # fmt: skip
    parts.append("<h2>Every cell</h2>")
    parts.append(frame_html(table))
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>lbmm grid {e(manifest['name'])}</title><style>{_CSS}</style></head><body>"
        + "<main>"
        + "\n".join(parts)
        + "</main></body></html>\n"
    )
    return atomic_write_text(folder / "report.html", page)
