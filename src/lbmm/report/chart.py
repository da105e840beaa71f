"""The interactive nuclear chart of the report: data, layers and a tooltip per nucleus.

Self-contained: the numbers travel as JSON inside the page and a small script draws the
chart as SVG (one square per nucleus), so it works offline and without any library.
Hovering a nucleus shows Z, N, the data, every model, each mixture's mean and 95 % band,
and the local mixers' weights; the layer menu colours the chart by a mixture's mean, its
band width, the residual on measured nuclei, the existence probability or a model's weight.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["chart_data", "chart_html"]

_DIGITS = 4  # MeV to 0.1 keV, weights and probabilities to 1e-4: enough for a tooltip


def _column(values: Any) -> list[float | None]:
    a = np.asarray(values, dtype=float)
    return [None if not np.isfinite(v) else round(float(v), _DIGITS) for v in a]


def chart_data(
    dataset: pd.DataFrame,
    predictions: pd.DataFrame,
    weights: pd.DataFrame | None,
    labels: dict[str, str],
    models: list[str],
    observable: str,
) -> dict[str, Any]:
    """The chart's numbers, one entry per nucleus of the dataset (columns, not rows).

    Parameters
    ----------
    dataset
        ``dataset.csv`` of a run: Z, N, nucleus, y, one column per model, ``in_train``,
        ``in_test``.
    predictions
        ``predictions.csv``: mixer, Z, N, mean, lo95, hi95, p_exist.
    weights
        ``weights.csv`` (local mixers: ``mean_MODEL`` per nucleus), or None.
    labels
        Mixer key → display label, in the report's order.
    models, observable
        The model columns and the observable's name.
    """
    ds = dataset.reset_index(drop=True)
    key = pd.MultiIndex.from_arrays([ds["Z"], ds["N"]])
    split = np.where(ds["in_train"], "train", np.where(ds["in_test"], "test", ""))
    out: dict[str, Any] = {
        "observable": observable,
        "models": list(models),
        "Z": ds["Z"].astype(int).tolist(),
        "N": ds["N"].astype(int).tolist(),
        "label": ds["nucleus"].astype(str).tolist(),
        "split": split.tolist(),
        "y": _column(ds["y"]),
        "F": [_column(ds[m]) for m in models],
        "mixers": [],
    }
    for mixer, label in labels.items():
        p = predictions[predictions["mixer"] == mixer]
        if p.empty:
            continue
        p = p.set_index(["Z", "N"]).reindex(key)
        entry: dict[str, Any] = {
            "key": mixer,
            "label": label,
            "mean": _column(p["mean"]),
            "lo95": _column(p["lo95"]),
            "hi95": _column(p["hi95"]),
            "p_exist": _column(p["p_exist"]) if "p_exist" in p else None,
            "weights": None,
        }
        if weights is not None:
            w = weights[weights["mixer"] == mixer]
            if not w.empty:
                w = w.set_index(["Z", "N"]).reindex(key)
                entry["weights"] = [_column(w[f"mean_{m}"]) for m in models]
        out["mixers"].append(entry)
    return out


def chart_html(data: dict[str, Any]) -> str:
    """The chart as an HTML fragment: controls, an SVG, a tooltip, the data and the script."""
    script = resources.files("lbmm.report").joinpath("chart.js").read_text("utf-8")
    # "</" cannot close the script element from inside the JSON
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f"""<div id="chart" class="chart">
<div class="chart-controls">
<label>Mixer <select id="chart-mixer"></select></label>
<label>Colour by <select id="chart-layer"></select></label>
<span id="chart-scale" class="muted"></span>
</div>
<div class="chart-wrap"><svg id="chart-svg" role="img" aria-label="nuclear chart"></svg>
<div id="chart-tip" class="chart-tip" hidden></div></div>
</div>
<script type="application/json" id="chart-data">{payload}</script>
<script>{script}</script>"""
