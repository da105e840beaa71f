"""The run's tables as DataFrames, markdown and CSV (no statistics: it reads ``metrics.json``
and ``manifest.json``).

- **Table 1** (the paper's Table 1): train rms, test rms and σ of each raw model (σ_k is its
  train rms), of the corrected models when the study has them, and of each mixer.
- **Table 2** (the paper's Table 2): global weights (BMA with its exact, Monte Carlo and
  Laplace evidences; GBMM), and for local mixers the mean weight over the training nuclei.
- **Diagnostics**: sampler, draws, max R-hat, min bulk/tail ESS, divergences, timings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "BMA_METHOD_LABELS",
    "calibration_table",
    "diagnostics_table",
    "table1",
    "table2",
    "to_markdown",
    "write_tables",
]

BMA_METHOD_LABELS = {"exact": "ex", "mc": "MC", "laplace": "Lap"}


def _get(d: Mapping[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def _num(v: Any) -> float:
    return float(v) if v is not None else math.nan


def table1(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Rows: raw models, corrected models, mixers; columns train/test rms, σ and its sd.

    ``kind`` is ``model`` or ``mixer``; ``corrected`` tells the corrected rows.
    """
    rows = []
    for section, corrected in (("raw", False), ("corrected", True)):
        for m, v in (_get(metrics, "models", section) or {}).items():
            rows.append({
                "name": m + (" (corr.)" if corrected else ""),
                "kind": "model",
                "corrected": corrected,
                "train_rms": _num(_get(v, "train", "rms")),
                "test_rms": _num(_get(v, "test", "rms")),
                "sigma": _num(v.get("sigma")),
                "sigma_sd": math.nan,
                "n_train": None,
                "n_test": None,
            })  # fmt: skip
    for key, v in metrics.get("mixers", {}).items():
        rows.append({
            "name": v.get("label", key),
            "kind": "mixer",
            "corrected": bool(v.get("corrected")),
            "train_rms": _num(_get(v, "train", "rms")),
            "test_rms": _num(_get(v, "test", "rms")),
            "sigma": _num(v.get("sigma_mean")),
            "sigma_sd": _num(v.get("sigma_sd")),
            "n_train": _get(v, "train", "n"),
            "n_test": _get(v, "test", "n"),
            "key": key,
        })  # fmt: skip
    df = pd.DataFrame(rows)
    if "key" not in df:
        df["key"] = None
    return df[["name", "key", "kind", "corrected", "train_rms", "test_rms", "sigma", "sigma_sd",
               "n_train", "n_test"]]  # fmt: skip


def table2(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Rows: BMA (one per evidence method) and every other mixer; one column per model.

    ``kind`` says what the numbers are: ``global`` weights, or ``local (train mean)``.
    """
    rows = []
    for key, v in metrics.get("mixers", {}).items():
        label = v.get("label", key)
        base = {"key": key, "corrected": bool(v.get("corrected"))}
        if v.get("bma_weights"):
            for meth, w in v["bma_weights"].items():
                name = label.replace("BMA", f"BMA({BMA_METHOD_LABELS.get(meth, meth)})", 1)
                rows.append({"name": name, **base, "kind": "global", **w})
            continue
        kind = "local (train mean)" if v.get("local") else "global"
        rows.append({"name": label, **base, "kind": kind, **v.get("weights", {})})
    return pd.DataFrame(rows)


def diagnostics_table(manifest: Mapping[str, Any]) -> pd.DataFrame:
    """One row per mixer entry: sampler, chains × draws (SMC: populations × particles),
    R-hat, ESS, divergences, the log evidence (SMC fits), timings."""
    from ..inference import CLOSED_FORMS

    rows = []
    mixers = manifest.get("mixers", {})
    entries = {m["key"]: m for m in _get(manifest, "study", "mixers") or []}
    for key, rec in mixers.items():
        d = rec.get("diagnostics", {})
        s = _get(entries, key, "sampling") or {}
        exact = d.get("sampler") in CLOSED_FORMS
        if exact:
            draws = f"{s.get('num_chains')} × {s.get('num_samples')} exact draws"
        elif s.get("method") == "smc":
            draws = f"{s.get('num_chains')} × {s.get('num_samples')} SMC particles"
        else:
            draws = f"{s.get('num_chains')} × ({s.get('num_warmup')} + {s.get('num_samples')})"
        rows.append({
            "name": rec.get("label", key),
            "key": key,
            "sampler": d.get("sampler"),
            "chains_x_draws": draws,
            "rhat_max": math.nan if exact else _num(d.get("rhat_max")),
            "ess_bulk_min": math.nan if exact else _num(d.get("ess_bulk_min")),
            "ess_tail_min": math.nan if exact else _num(d.get("ess_tail_min")),
            "divergences": d.get("divergences", 0),
            "log_evidence": _num(d.get("log_evidence")),
            "fit_s": _num(rec.get("fit_s")),
            "predict_s": _num(rec.get("predict_s")),
            "converged": rec.get("converged"),
        })  # fmt: skip
    return pd.DataFrame(rows)


#: The calibration scores of a test split or fold, as (metrics key, column name).
CALIBRATION_SCORES = (
    ("n", "n"), ("rms", "rms"), ("rms_median", "rms (median)"), ("rms_map", "rms (MAP)"),
    ("ecp_mean_abs", "mean abs(ECP−level)"),
    ("ecp_max_abs", "max abs(ECP−level)"), ("pit_ks_p", "PIT KS p"), ("pit_sd", "PIT sd"),
    ("outside_95", "outside 95 %"), ("interval_score_95", "IS 95 %"), ("crps", "CRPS"),
    ("mlpd", "mlpd"),
)  # fmt: skip


def calibration_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per mixer entry and scored set (the test split, then each validation fold):
    the calibration scores of :func:`lbmm.predict.calibration` with rms, CRPS and mean log
    predictive density. Mean |ECP − level| is over the levels 10 … 90 %; a calibrated
    predictor has PIT sd 0.289 and 5 % outside its 95 % interval."""
    rows = []
    for key, m in metrics.get("mixers", {}).items():
        sets = [("test", m.get("test")), *(m.get("folds") or {}).items()]
        for where, sc in sets:
            if not sc or sc.get("n") is None or "pit_ks_p" not in sc:
                continue
            row = {"name": m.get("label", key), "key": key, "scored on": where}
            row.update({col: _num(sc.get(k)) for k, col in CALIBRATION_SCORES})
            rows.append(row)
    return pd.DataFrame(rows)


CALIBRATION_DIGITS = {"n": 0, "rms": 3, "rms (median)": 3, "rms (MAP)": 3,
                      "mean abs(ECP−level)": 3, "max abs(ECP−level)": 3,
                      "PIT KS p": 3, "PIT sd": 3, "outside 95 %": 2, "IS 95 %": 2, "CRPS": 3,
                      "mlpd": 2}  # fmt: skip


# ---------------------------------------------------------------------- markdown


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def format_cell(v: Any, digits: int, escape: Callable[[str], str] = _md_escape) -> str:
    """One table cell: None and NaN as '—', booleans as yes/no, floats rounded to ``digits``,
    anything else as escaped text (markdown by default)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "—" if math.isnan(v) else f"{v:.{digits}f}"
    return escape(str(v))


_cell = format_cell


def to_markdown(df: pd.DataFrame, digits: int | Mapping[str, int] = 3) -> str:
    """A GitHub-flavoured markdown table (numbers rounded; NaN and None as '—')."""
    cols = list(df.columns)

    def nd(c: str) -> int:
        return digits.get(c, 3) if isinstance(digits, Mapping) else digits

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append(
            "| " + " | ".join(_cell(v, nd(c)) for c, v in zip(cols, row, strict=True)) + " |"
        )
    return "\n".join(lines) + "\n"


def table1_display(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as printed: name, train rms, test rms, σ with its sd in parentheses."""

    def sig(r) -> str:
        if math.isnan(r.sigma):
            return "—"
        return f"{r.sigma:.3f}" + ("" if math.isnan(r.sigma_sd) else f" ({r.sigma_sd:.3f})")

    out = pd.DataFrame({
        "": df["name"],
        "train rms": df["train_rms"],
        "test rms": df["test_rms"],
        "σ": [sig(r) for r in df.itertuples()],
    })  # fmt: skip
    return out


def table2_display(df: pd.DataFrame) -> pd.DataFrame:
    """Table 2 as printed: name, kind, one column per model."""
    return df.drop(columns=["key", "corrected"]).rename(columns={"name": ""})


def diagnostics_display(df: pd.DataFrame) -> pd.DataFrame:
    """The diagnostics table as printed."""
    out = df.drop(columns=["key"]).rename(
        columns={"name": "", "chains_x_draws": "chains × (warm-up + draws)",
                 "rhat_max": "max R-hat", "ess_bulk_min": "min bulk ESS",
                 "ess_tail_min": "min tail ESS", "fit_s": "fit (s)", "predict_s": "predict (s)",
                 "log_evidence": "log evidence"}
    )  # fmt: skip
    if out["log evidence"].isna().all():  # no SMC fit: no column
        out = out.drop(columns=["log evidence"])
    return out


DIAG_DIGITS = {"max R-hat": 4, "min bulk ESS": 0, "min tail ESS": 0, "fit (s)": 1,
               "predict (s)": 1, "log evidence": 2}  # fmt: skip


def sigma_k_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Rows: the mixers with one noise scale per model (density likelihood); columns: the
    posterior mean σ_k of each model (MeV). Empty without such mixers."""
    rows = [{"name": v.get("label", key), "key": key, **v["sigma_k"]}
            for key, v in metrics.get("mixers", {}).items() if v.get("sigma_k")]  # fmt: skip
    return pd.DataFrame(rows)


def write_tables(metrics: Mapping[str, Any], manifest: Mapping[str, Any], folder: Path) -> dict:
    """Write Table 1, Table 2, the σ_k (density mixers), calibration and diagnostics tables
    as CSV and markdown into ``folder``.

    Returns
    -------
    dict
        Table name → (DataFrame as displayed, its markdown, the files written).
    """
    folder.mkdir(parents=True, exist_ok=True)
    t1, t2, td = table1(metrics), table2(metrics), diagnostics_table(manifest)
    tc, ts = calibration_table(metrics), sigma_k_table(metrics)
    out = {}
    for name, raw, disp, digits in (
        ("table1", t1, table1_display(t1), 3),
        ("table2", t2, table2_display(t2), 2),
        ("sigma_k", ts, ts.drop(columns=["key"], errors="ignore"), 3),
        ("calibration", tc, tc.drop(columns=["key"], errors="ignore"), CALIBRATION_DIGITS),
        ("diagnostics", td, diagnostics_display(td), DIAG_DIGITS),
    ):
        raw.to_csv(folder / f"{name}.csv", index=False)
        md = to_markdown(disp, digits)
        (folder / f"{name}.md").write_text(md, "utf-8")
        out[name] = (disp, md, [f"{name}.csv", f"{name}.md"])
    return out
