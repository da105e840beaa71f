"""Model preselection: which models to mix, chosen on folds inside the training data.

Greedy forward selection (``lbmm grid GRID.toml --preselect``): start from one model (by
default the one with the lowest training rms), and in each round try adding every model not
yet chosen; each candidate subset is fitted on every validation fold (a grid of subsets ×
folds, run on Dask by :func:`lbmm.grid.run_grid`) and scored by its log predictive density
on the held-out nuclei, pooled over the folds (the mean over all held-out nuclei). The first
round's best is always kept (a mixture needs two models: a single start model is not
scored); from then on the best candidate is kept if it raises the score by more than
``min_gain``, else the selection stops.
Calibration (mean |ECP − level| over the folds' held-out nuclei) and rms are reported beside
the score. The test split plays no part: it reports afterwards.

Settings come from the grid file's ``[preselect]`` table::

    [preselect]
    folds = ["neutron_rich", "regions"]   # fold kinds (lbmm.data.folds)
    start = []                            # models to start from (default: best training rms)
    max_size = 9                          # stop at this many models
    min_gain = 0.0                        # least rise of the pooled log predictive density
    report_test = false                   # afterwards, score every subset on the path and
                                          # all models on the test split (reported only)

The grid's ``[axes]`` may hold ``seed`` only (each candidate is scored over the seeds too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ._util import atomic_write_text, write_json
from .grid import GridError, grid_from_dict, read_grid_file, run_grid

__all__ = ["PreselectResult", "pooled_scores", "preselect"]

_KNOWN = ("folds", "start", "max_size", "min_gain", "report_test")


@dataclass(frozen=True)
class PreselectResult:
    """The chosen models, every round's candidates and scores, and the folder."""

    path: Path
    chosen: tuple[str, ...]
    rounds: pd.DataFrame


def pooled_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per model subset: the fold metrics pooled over the held-out nuclei of every fold (and
    seed): mean log predictive density, rms, mean |ECP − level|, held-out count, and the
    share of fits that met the convergence bars. Rows of the test split are left out."""
    table = table[table["split"] != "test"] if "split" in table else table
    t = table.assign(
        lpd=table["mlpd"] * table["n"],
        se=table["rms"] ** 2 * table["n"],
        cal=table["ecp_mean_abs"] * table["n"],
    )
    g = t.groupby("models", sort=False)
    out = pd.DataFrame(
        {
            "mlpd": g["lpd"].sum() / g["n"].sum(),
            "rms": (g["se"].sum() / g["n"].sum()) ** 0.5,
            "ecp_mean_abs": g["cal"].sum() / g["n"].sum(),
            "held_out": g["n"].sum(),
            "converged": g["converged"].mean(),
        }
    )
    return out.reset_index()


def _settings(spec: Mapping[str, Any], source: str) -> dict[str, Any]:
    from .data import FOLD_KINDS

    def fail(key: str, what: str) -> None:
        raise GridError(f"{source}: preselect.{key} {what}")

    pre = spec.get("preselect", {})
    if not isinstance(pre, Mapping):
        raise GridError(f"{source}: preselect must be a table")
    unknown = sorted(set(pre) - set(_KNOWN))
    if unknown:
        fail(unknown[0], f"is not known; known: {list(_KNOWN)}")
    axes = spec.get("axes", {})
    if set(axes) - {"seed"}:
        raise GridError(
            f"{source}: with --preselect the axes may hold seed only (the rounds make the "
            f"model and fold axes), found {sorted(set(axes) - {'seed'})}"
        )
    if (spec.get("base") or {}).get("folds"):
        raise GridError(f"{source}: base.folds and --preselect cannot go together (the "
                        "rounds make their own fold cells)")  # fmt: skip
    folds = pre.get("folds", ["neutron_rich", "regions"])
    if not isinstance(folds, list) or not folds:
        fail("folds", "must be a non-empty list of fold kinds")
    for f in folds:
        if f not in FOLD_KINDS:
            fail("folds", f"names no fold kind {f!r}; known: {list(FOLD_KINDS)}")
    start = pre.get("start", [])
    if not isinstance(start, list) or not all(isinstance(m, str) for m in start):
        fail("start", f"must be a list of model names, got {start!r}")
    max_size = pre.get("max_size")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2
    ):
        fail("max_size", f"must be an integer of at least 2, got {max_size!r}")
    min_gain = pre.get("min_gain", 0.0)
    if isinstance(min_gain, bool) or not isinstance(min_gain, int | float) or min_gain < 0:
        fail("min_gain", f"must be a number >= 0, got {min_gain!r}")
    report_test = pre.get("report_test", False)
    if not isinstance(report_test, bool):
        fail("report_test", f"must be true or false, got {report_test!r}")
    return {
        "folds": folds,
        "start": start,
        "max_size": max_size,
        "min_gain": float(min_gain),
        "report_test": report_test,
        "seeds": axes.get("seed"),
    }


def preselect(
    grid: str | Path | Mapping[str, Any],
    *,
    output: str | Path | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = True,
    progress: Callable[[str], None] | None = None,
    on_cell: Callable[[int, int], None] | None = None,
) -> PreselectResult:
    """Greedy forward selection of the models to mix, scored on validation folds.

    Parameters
    ----------
    grid
        A grid file (or its plain data) with the base study, one mixer entry and an optional
        ``[preselect]`` table.
    output
        The folder (default the grid's ``output``): ``round-N/`` grid folders (each
        resumable), ``rounds.csv`` (every candidate's pooled fold scores) and
        ``preselect.json`` (the chosen models and the path to them).
    resume
        Skip the cells (of every round) already done: a rerun after an interruption costs
        only what was left.

    Returns
    -------
    PreselectResult
    """
    from .run import build_dataset

    say = progress or (lambda _: None)
    spec, source, anchor = read_grid_file(grid)
    cfg = _settings(spec, source)
    base_spec = {k: v for k, v in spec.items() if k != "preselect"}
    base_spec["axes"] = {"seed": cfg["seeds"]} if cfg["seeds"] else {}
    probe = grid_from_dict({**base_spec, "axes": {"seed": [0]}}, source=source, anchor=anchor)
    if len(probe.base.mixers) != 1:
        raise GridError(
            f"{source}: --preselect scores one mixer entry; the base study has "
            f"{probe.base.keys} (keep one with base.mixers)"
        )
    ds = build_dataset(probe.base)
    models = list(ds.models)
    bad = [m for m in cfg["start"] if m not in models]
    if bad:
        raise GridError(f"{source}: preselect.start names no model {bad[0]!r}; models: {models}")
    chosen = cfg["start"] or [min(ds.rms("train").items(), key=lambda kv: kv[1])[0]]
    max_size = cfg["max_size"] or len(models)
    target = Path(output if output is not None else probe.output).expanduser().absolute()
    target.mkdir(parents=True, exist_ok=True)
    say(f"preselect: start from {chosen}; folds {cfg['folds']}; up to {max_size} models")
    frames, path_rows = [], []
    best_score = None
    r = 0
    while len(chosen) < max_size:
        r += 1
        rest = [m for m in models if m not in chosen]
        if not rest:
            break
        cands = [[*chosen, m] for m in rest]
        axes = {"models": cands, "fold": cfg["folds"]}
        if cfg["seeds"]:
            axes["seed"] = cfg["seeds"]
        g = grid_from_dict(
            {**base_spec, "name": f"{spec['name']}-round-{r}", "axes": axes},
            source=source,
            anchor=anchor,
        )
        say(f"round {r}: {len(cands)} candidates × folds = {len(g.cells)} cells")
        res = run_grid(g, output=target / f"round-{r}", scheduler=scheduler,
                       n_workers=n_workers, cache_dir=cache_dir, progress=say,
                       on_cell=on_cell, resume=resume)  # fmt: skip
        scores = pooled_scores(res.results).assign(round=r)
        scores["added"] = [m.split("+")[-1] for m in scores["models"]]
        scores = scores.sort_values("mlpd", ascending=False, kind="stable")
        top = scores.iloc[0]
        gain = None if best_score is None else float(top["mlpd"] - best_score)
        keep = best_score is None or gain > cfg["min_gain"]
        scores["chosen"] = False
        if keep:
            scores.loc[scores.index[0], "chosen"] = True
        frames.append(scores)
        say(f"round {r}: best adds {top['added']} (pooled mlpd {top['mlpd']:.3f}, rms "
            f"{top['rms']:.3f}, mean |ECP - level| {top['ecp_mean_abs']:.3f})"
            + ("" if keep else f"; no gain over {best_score:.3f}: stop"))  # fmt: skip
        if not keep:
            break
        chosen = [*chosen, top["added"]]
        best_score = float(top["mlpd"])
        path_rows.append({"round": r, "models": list(chosen), "mlpd": best_score})
    rounds = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    test_table = None
    if cfg["report_test"]:
        subsets = [p["models"] for p in path_rows]
        if models not in subsets:
            subsets.append(models)
        axes = {"models": subsets, **({"seed": cfg["seeds"]} if cfg["seeds"] else {})}
        g = grid_from_dict({**base_spec, "name": f"{spec['name']}-test", "axes": axes},
                           source=source, anchor=anchor)  # fmt: skip
        say(f"test split: the {len(subsets)} subsets on the path and all models (reported)")
        res = run_grid(g, output=target / "test", scheduler=scheduler, n_workers=n_workers,
                       cache_dir=cache_dir, progress=say, on_cell=on_cell,
                       resume=resume)  # fmt: skip
        test_table = str(res.path / "results.csv")
    atomic_write_text(target / "rounds.csv", rounds.to_csv(index=False))
    write_json(
        target / "preselect.json",
        {"name": spec["name"], "source": source, "settings": cfg, "chosen": chosen,
         "path": path_rows, "models": models,
         "test": test_table},
    )  # fmt: skip
    say(f"preselect: chosen {chosen}")
    return PreselectResult(path=target, chosen=tuple(chosen), rounds=rounds)
