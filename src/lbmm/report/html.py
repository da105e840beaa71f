"""``report.html``: one self-contained page that shows and links everything in a run folder.

The page uses relative links only (``figures/*.png``, ``tables/*``, ``posterior/*.nc``), inline
CSS and one small inline script that marks, after loading, whether every figure loaded
(``<body data-images="ok">``) and shows a warning banner if one did not. It reads offline.
"""

from __future__ import annotations

import html
import numbers
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .chart import chart_data, chart_html
from .figures import FigureInfo, make_figures
from .tables import format_cell, table2, write_tables

__all__ = ["build_report", "render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d1d1f; background: #fafafa; line-height: 1.45; }
header { background: #16324f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 1.6em; }
header p { margin: 2px 0; opacity: .9; }
nav { background: #e8eef4; padding: 8px 32px; position: sticky; top: 0; z-index: 1; }
nav a { margin-right: 16px; color: #16324f; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
h2 { border-bottom: 2px solid #16324f; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: .9em; background: #fff; }
th, td { border: 1px solid #ccd; padding: 3px 8px; text-align: right; }
th { background: #eef2f6; }
td:first-child, th:first-child { text-align: left; }
tr.bad td { background: #fdecea; }
figure { margin: 16px 0 28px 0; background: #fff; padding: 10px; border: 1px solid #dde; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .9em; color: #444; margin-top: 6px; }
.muted { color: #666; font-size: .9em; }
.warn { background: #fff4e5; border: 1px solid #f0a040; padding: 8px 12px; margin: 12px 0; }
#image-warning { display: none; background: #fdecea; border: 1px solid #d33; padding: 8px 12px;
                 margin: 12px 32px; }
code { background: #eef; padding: 0 3px; }
table.summary td, table.summary th, td.text { text-align: left; }
.chart { background: #fff; border: 1px solid #dde; padding: 10px; }
.chart-controls label { margin-right: 16px; }
.chart-wrap { position: relative; overflow-x: auto; }
.chart rect.in-train { stroke: #000; stroke-width: .4; }
.chart rect.in-test { stroke: #d00; stroke-width: .9; }
.chart-tip { position: absolute; background: #fff; border: 1px solid #16324f; padding: 6px 9px;
             font-size: .82em; pointer-events: none; max-width: 560px; z-index: 2;
             box-shadow: 0 2px 6px rgba(0,0,0,.2); }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var bad = Array.prototype.filter.call(document.images, function (im) {
    return !(im.complete && im.naturalWidth > 0);
  });
  document.body.setAttribute("data-images", bad.length ? "failed" : "ok");
  document.body.setAttribute("data-images-failed",
    bad.map(function (im) { return im.getAttribute("src"); }).join(" "));
  if (bad.length) {
    var w = document.getElementById("image-warning");
    w.textContent = bad.length + " figure(s) did not load; rebuild them with `lbmm report`.";
    w.style.display = "block";
  }
});
"""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)


def _cell(v: Any, digits: int) -> str:
    return format_cell(v, digits, escape=_e)


def frame_html(df: pd.DataFrame, digits: int | Mapping[str, int] = 3,
               bad_rows: Sequence[bool] | None = None) -> str:  # fmt: skip
    """A DataFrame as an HTML table (numbers rounded, NaN as '—')."""

    def nd(c: str) -> int:
        return digits.get(c, 3) if isinstance(digits, Mapping) else digits

    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for i, row in enumerate(df.itertuples(index=False)):
        cls = ' class="bad"' if bad_rows is not None and bad_rows[i] else ""
        cells = "".join(
            (f"<td>{_cell(v, nd(c))}</td>" if _is_number(v) else
             f'<td class="text">{_cell(v, nd(c))}</td>')
            for c, v in zip(df.columns, row, strict=True)
        )  # fmt: skip
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _link(path: str, text: str | None = None) -> str:
    return f'<a href="{_e(path)}">{_e(text or path)}</a>'


def _summary(man: Mapping[str, Any]) -> str:
    ds = man["dataset"]
    counts = ", ".join(f"{k} {v}" for k, v in ds["counts"].items())
    v = man.get("versions", {})
    plat = man.get("platform", {})
    cache = man.get("jax_compilation_cache", {})
    git = man.get("git") or {}
    rows = [
        ("study", " — ".join(x for x in (man["study"]["name"], man["study"].get("description"))
                             if x)),
        ("study file", man.get("study_source")),
        ("dataset", f"{ds['name']}: {ds['observable']}, models {', '.join(ds['models'])}"),
        ("nuclei", counts),
        ("seed", man.get("seed")),
        ("started / finished", f"{man.get('started')} / {man.get('finished')}"),
        ("wall time", f"{man.get('wall_s', float('nan')):.1f} s"),
        ("versions", ", ".join(f"{k} {x}" for k, x in v.items() if x)),
        ("platform", f"{plat.get('system')} {plat.get('machine')}, {plat.get('cpu_count')} "
                     f"CPUs, JAX backend {plat.get('jax_backend')}"),
        ("JAX compilation cache", ("used" if cache.get("used") else "not used")
                                  + (f" ({cache['dir']})" if cache.get("dir") else "")),
        ("git commit", f"{git.get('commit', '—')}{' (modified)' if git.get('dirty') else ''}"),
    ]  # fmt: skip
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    tables = "".join(
        f'<tr><td>{_e(k)}</td><td class="text">{_e(t.get("path") or t.get("source"))}</td>'
        f"<td><code>{_e((t.get('sha256') or '—')[:16])}</code></td></tr>"
        for k, t in ds["tables"].items()
    )
    return (
        f'<table class="summary">{body}</table>'
        "<h3>Data files</h3><table><thead><tr><th>table</th><th>path</th>"
        f"<th>sha256 (first 16)</th></tr></thead><tbody>{tables}</tbody></table>"
    )


def _files(man: Mapping[str, Any], tables: Mapping[str, Any]) -> str:
    items = [
        _link("manifest.json") + " — the study as run, data hashes, versions, timings",
        _link("study.toml") + " — the study with every setting explicit (rerun it with "
        "<code>lbmm run study.toml</code>)",
        _link("predictions.csv") + " — every nucleus of the prediction domain × mixer",
        _link("metrics.json") + " — rms, σ, coverage, CRPS, log density, weights",
        _link("dataset.csv") + " — nuclei, data, model predictions, splits",
    ]
    for f in ("weights.csv", "dataset_corrected.csv"):
        if f in man.get("files", {}):
            items.append(_link(f))
    for rec in man.get("mixers", {}).values():
        items.append(_link(rec["posterior"]) + f" — posterior of {_e(rec['label'])} (ArviZ)")
    for name, (_, _, files) in tables.items():
        items.append(" / ".join(_link(f"tables/{f}") for f in files) + f" — {name}")
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def render_html(man: Mapping[str, Any], tables: Mapping[str, Any],
                figures: Sequence[FigureInfo], chart: str = "") -> str:  # fmt: skip
    """The report page from the manifest, the written tables and figures, and the
    interactive chart's HTML fragment (:func:`lbmm.report.chart.chart_html`), if any."""
    from ..inference import bar_text
    from .tables import CALIBRATION_DIGITS, DIAG_DIGITS

    name = man["study"]["name"]
    t1, _, _ = tables["table1"]
    t2, _, _ = tables["table2"]
    td, _, _ = tables["diagnostics"]
    tc, _, _ = tables["calibration"]
    ts, _, _ = tables["sigma_k"]
    sigma_k = "" if ts.empty else (
        '<h2 id="sigma_k">Noise scale of each model (density mixing)</h2>\n'
        '<p class="muted">Posterior mean σ_k (MeV) of each model\'s component in the mixture '
        'of predictive densities y ~ Σ ω_k N(f_k, σ_k²). Files: '
        f'{_link("tables/sigma_k.csv")}, {_link("tables/sigma_k.md")}.</p>\n'
        f"{frame_html(ts, 3)}"
    )  # fmt: skip
    bad = [c is False for c in td.get("converged", [])]
    warn = ""
    if any(bad):
        names = ", ".join(td[""][i] for i, b in enumerate(bad) if b)
        warn += (
            f'<p class="warn">Not converged ({_e(bar_text())} missed): '
            f"{_e(names)}. Treat their numbers with care; raise sampling.max_samples (draws "
            "per chain until the bars hold) or num_warmup.</p>"
        )
    div = [(n, d) for n, d in zip(td[""], td["divergences"], strict=True) if d]
    if div:
        warn += (
            '<p class="warn">Divergent transitions: '
            + ", ".join(f"{_e(n)} ({int(d)})" for n, d in div)
            + ". A few may be harmless; many mean the sampler missed part of the posterior."
            "</p>"
        )
    sections: dict[str, list[FigureInfo]] = {}
    for f in figures:
        sections.setdefault(f.section, []).append(f)
    fig_html = []
    for sec, items in sections.items():
        fig_html.append(f'<h2 id="fig-{_e(sec.lower())}">{_e(sec)}</h2>')
        for f in items:
            fig_html.append(
                f'<figure><img src="figures/{_e(f.file)}" alt="{_e(f.title)}">'
                f"<figcaption><b>{_e(f.title)}.</b> {_e(f.caption)} "
                f"{_link('figures/' + f.file, 'PNG')}</figcaption></figure>"
            )
    nav = "".join(
        f'<a href="#{a}">{_e(t)}</a>'
        for a, t in [("summary", "Summary"), ("table1", "Table 1"), ("table2", "Table 2"),
                     ("calibration", "Calibration"), ("diagnostics", "Diagnostics")]
        + ([("chart-section", "Chart")] if chart else [])
        + [(f"fig-{s.lower()}", s) for s in sections]
        + [("files", "Files")]
    )  # fmt: skip
    obs = man["dataset"]["observable"]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lbmm run: {_e(name)}</title>
<style>{_CSS}</style>
</head>
<body data-images="pending">
<header><h1>lbmm run: {_e(name)}</h1>
<p>{_e(man["study"].get("description", ""))}</p>
<p>{_e(man.get("finished", ""))} · {_e(len(man.get("mixers", {})))} mixers ·
{_e(man["dataset"]["observable"])} on {_e(man["dataset"]["name"])}</p></header>
<nav>{nav}</nav>
<div id="image-warning"></div>
<main>
<h2 id="summary">Summary</h2>
{_summary(man)}
{warn}
<h2 id="table1">Table 1: rms deviations and σ ({_e(obs)}, MeV)</h2>
<p class="muted">Raw models: σ_k is the model's train rms. Mixers: rms of the posterior
predictive mean; σ is the posterior mean (sd) of the noise scale. Files:
{_link("tables/table1.csv")}, {_link("tables/table1.md")}.</p>
{frame_html(t1, 3)}
<h2 id="table2">Table 2: model weights</h2>
<p class="muted">BMA: weights from the exact (ex), Monte Carlo (MC) and Laplace (Lap)
evidences on the evidence nuclei. GBMM: posterior-mean global weights. Local mixers: mean
weight over the training nuclei. Files: {_link("tables/table2.csv")},
{_link("tables/table2.md")}.</p>
{frame_html(t2, 2)}
{sigma_k}
<h2 id="calibration">Calibration on the test split and the validation folds</h2>
<p class="muted">Scored on nuclei the fit did not see (BMA: test nuclei less its evidence
nuclei). Mean and max |ECP − level| over the equal-tailed intervals at 10, 20 … 90 %; PIT: the
share of predictive draws below each observation, uniform for a calibrated predictor
(Kolmogorov–Smirnov p, sd 0.289); 5 % of the nuclei fall outside a calibrated 95 %
interval. IS: interval score (lower is better); CRPS in MeV; mlpd: mean log predictive
density. Validation folds are cut from the training split (see the docs): fitted on the rest
of it, scored on what they hold out. Files: {_link("tables/calibration.csv")},
{_link("tables/calibration.md")}.</p>
{frame_html(tc.drop(columns=["key"], errors="ignore"), CALIBRATION_DIGITS)}
<h2 id="diagnostics">Convergence diagnostics and timings</h2>
<p class="muted">Files: {_link("tables/diagnostics.csv")}, {_link("tables/diagnostics.md")}.</p>
{frame_html(td, DIAG_DIGITS, bad)}
{_chart_section(chart)}
{"".join(fig_html)}
<h2 id="files">Files</h2>
{_files(man, tables)}
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _chart_section(chart: str) -> str:
    if not chart:
        return ""
    return f"""<h2 id="chart-section">The nuclear chart, interactive</h2>
<p class="muted">Hover a nucleus for its data, every model, each mixture's mean and 95 %
interval and the local mixers' weights; choose the mixer and what colours the chart. Black
outline: training nuclei; red: test nuclei.</p>
{chart}"""


def _swap(new: Path, target: Path, trash: Path) -> None:
    if target.exists():
        os.replace(target, trash / target.name)
    os.replace(new, target)


#: What a report writes into a run folder.
REPORT_ENTRIES = ("tables", "figures", "report.html")


def _chart(run) -> str:
    man = run.manifest
    labels = {k: m.get("label", k) for k, m in man["mixers"].items()}
    data = chart_data(run.dataset_frame(), run.predictions(), run.weights(), labels,
                      list(man["dataset"]["models"]), man["dataset"]["observable"])  # fmt: skip
    return chart_html(data)


def build_report(run_dir: str | Path, *, early_figures: str | Path | None = None) -> dict[str, Any]:
    """Write ``tables/``, ``figures/`` and ``report.html`` of a run folder from its results,
    and record them (size, sha256) in its manifest.

    Nothing is sampled: the tables and figures read ``metrics.json``, ``predictions.csv``,
    ``weights.csv``, ``dataset.csv`` and the stored posteriors. The new files are built in a
    temporary folder and then replace the old ones.

    Parameters
    ----------
    run_dir
        The run folder.
    early_figures
        A folder of figures drawn already while the fits ran (``lbmm run`` draws each
        mixer's trace and rank plots as soon as it is fitted, and finished mixers' own
        figures and the raw models' residuals while the last fits run): those found there
        are moved in, not drawn again (see :func:`~lbmm.report.figures.make_figures`).

    Raises
    ------
    lbmm.run.RunError
        If the folder is not a complete run (checked against its manifest).

    Returns
    -------
    dict
        ``tables`` (file names), ``figures`` (file names) and ``html`` (the page's path).
    """
    from .._util import write_json
    from ..results import file_records, load_run

    run = load_run(run_dir)
    root = Path(run_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".report-", dir=root))
    try:
        metrics = run.metrics()
        tabs = write_tables(metrics, run.manifest, tmp / "tables")
        early = Path(early_figures) if early_figures is not None else None
        figs = make_figures(run, tmp / "figures", table2(metrics), early)
        chart = _chart(run)
        (tmp / "report.html").write_text(render_html(run.manifest, tabs, figs, chart), "utf-8")
        trash = tmp / "old"
        trash.mkdir()
        for name in REPORT_ENTRIES:
            _swap(tmp / name, root / name, trash)
        shutil.rmtree(trash, ignore_errors=True)
        # the manifest records the report's files too (apart from the results: a report
        # can always be rebuilt from them, so a missing one does not make a run incomplete)
        manifest = dict(run.manifest)
        manifest["report_files"] = {
            rel: rec for rel, rec in file_records(root, exclude=(tmp.name,)).items()
            if rel.split("/")[0] in REPORT_ENTRIES
        }  # fmt: skip
        write_json(root / "manifest.json", manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "tables": sorted(f for _, _, files in tabs.values() for f in files),
        "figures": [f.file for f in figs],
        "html": str(root / "report.html"),
    }
