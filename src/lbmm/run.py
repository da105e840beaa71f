"""Run a study end to end into one run folder, and read run folders back.

:func:`run_study` builds the dataset, fits every mixer of the study, predicts over the
prediction domain, computes the metrics and writes one folder::

    RUN/
      manifest.json        the study as run, data files and sha256, versions, platform, seeds,
                           start/end times, per-mixer timings and diagnostics, file hashes
      study.toml           the study with every default explicit (``lbmm run RUN/study.toml``)
      dataset.csv          the nuclei, y, each model's prediction and the splits
      dataset_corrected.csv  the same with the corrected models (when a mixer uses them)
      posterior/KEY.nc     one ArviZ DataTree per mixer entry
      predictions.csv      every nucleus of the prediction domain × mixer: mean, sd, 68 % and
                           95 % intervals, existence probability, observed value
      weights.csv          local mixers: posterior mean and sd of each model's weight per nucleus
      derived.csv          runs of binding energies: S2n and Sn formed draw by draw from the
                           joint BE draws (mean, sd, intervals, P(> 0)) per mixer and nucleus
      metrics.json         rms, σ, coverage (ECP), CRPS, log density and weights per model/mixer
      tables/ figures/ report.html   (:func:`lbmm.report.build_report`; ``lbmm report`` redoes them)

The folder is built beside its target under a temporary name and renamed at the end: an
error or Ctrl-C (KeyboardInterrupt) removes it, so a run folder is complete or absent.
:func:`load_run` checks a folder against its manifest before anything reads it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._util import new_file_mode, write_json
from .data import DataError, Dataset, load_dataset, read_table
from .results import (
    INTERVAL_LEVELS,
    RESULT_FILES,
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    Run,
    RunError,
    check_run,
    file_records,
    load_run,
    thin,
)
from .study import Study, load_study, parse_prior

__all__ = [
    "INTERVAL_LEVELS",
    "RESULT_FILES",
    "RUN_FORMAT",
    "Run",
    "RunError",
    "build_dataset",
    "check_run",
    "default_jobs",
    "enable_compilation_cache",
    "load_run",
    "prediction_indices",
    "run_study",
    "thin",
]

CACHE_ENV = "LBMM_CACHE_DIR"
#: Where a run draws each mixer's convergence figures as soon as it is fitted (inside the
#: run's temporary folder; the report moves them into ``figures/``).
_EARLY_FIGURES = ".figures-early"
_VERSION_PACKAGES = (
    "lbmm", "jax", "jaxlib", "numpyro", "arviz", "numpy", "scipy", "pandas", "xarray",
    "matplotlib", "h5netcdf", "masstable",
)  # fmt: skip


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


# ---------------------------------------------------------------------- dataset from a study


def _split_members(ds: Dataset, name: str, spec: tuple[str, ...] | str) -> np.ndarray:
    if isinstance(spec, str):
        path = Path(spec)
        try:
            df = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise DataError(
                f"split {name!r}: cannot read the nuclei: {err}", path=str(path)
            ) from err
        missing = [c for c in ("Z", "N") if c not in df.columns]
        if missing:
            raise DataError(
                f"split {name!r}: expected columns Z and N, found {list(df.columns)}",
                path=str(path),
                column=missing[0],
            )
        nuclei: Iterable = zip(df["Z"].astype(int), df["N"].astype(int), strict=True)
    else:
        nuclei = spec
    idx = ds.index_of(nuclei)
    if idx.size == 0:
        raise DataError(f"dataset {ds.name!r}: split {name!r} came out empty")
    return idx


def build_dataset(study: Study, data_dir: str | Path | None = None) -> Dataset:
    """The dataset a study describes: a recipe or its tables, then models and splits.

    Parameters
    ----------
    study
        The study.
    data_dir
        Overrides the study's ``data.data_dir``.

    Raises
    ------
    DataError
        For missing or bad tables, unknown models or nuclei, or an empty split.
    """
    spec = study.data
    ddir = data_dir if data_dir is not None else spec.data_dir
    if spec.recipe is not None:
        ds = load_dataset(spec.recipe, ddir)
    else:
        from .data.recipes import EVIDENCE_NUCLEI, evaluation_dataset

        models = {m: read_table(ref, name=m) for m, ref in spec.tables.items()}
        ds = evaluation_dataset(
            study.name,
            read_table(spec.observed),
            read_table(spec.train_table),
            models,
            tuple(models),
            spec.evidence if spec.evidence is not None else EVIDENCE_NUCLEI,
            quantity=spec.observable,
            z_bounds=spec.z_range,
        )
    if spec.models is not None:
        ds = ds.select_models(spec.models)
    for name, members in spec.splits.items():
        ds = ds.with_split(name, _split_members(ds, name, members))
    return ds


def prediction_indices(ds: Dataset) -> np.ndarray:
    """The nuclei predicted in a run: the ``domain`` split if there is one, else all, in both
    cases only where every model gives a value."""
    idx = ds.split_indices("domain") if "domain" in ds.splits else np.arange(len(ds))
    ok = np.isfinite(ds.F[idx]).all(axis=1)
    return idx[ok]


# ---------------------------------------------------------------------- environment


def enable_compilation_cache(cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Turn on JAX's persistent compilation cache, so a second run compiles less.

    Parameters
    ----------
    cache_dir
        The cache folder; default ``$LBMM_CACHE_DIR``, else ``~/.cache/lbmm/jax``
        (``$XDG_CACHE_HOME/lbmm/jax`` where that is set). ``"off"`` (or
        ``$LBMM_CACHE_DIR=off``) disables it.

    Returns
    -------
    dict
        ``used``, ``dir`` and the number of cache entries found before the run.
    """
    from ._jax import jax  # float64 and host devices set before JAX starts

    off = {"", "off", "0", "none", "false"}
    reason = None
    if cache_dir is not None and str(cache_dir).strip().lower() in off - {""}:
        reason = f"cache_dir={str(cache_dir)!r}"
    env = os.environ.get(CACHE_ENV)
    if cache_dir is None and env is not None and env.strip().lower() in off:
        reason = f"${CACHE_ENV}={env!r}"
    if reason is not None:
        jax.config.update("jax_enable_compilation_cache", False)
        return {"used": False, "dir": None, "reason": reason}
    if cache_dir is None:
        if env:
            cache_dir = env
        else:
            base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            cache_dir = Path(base) / "lbmm" / "jax"
    path = Path(cache_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        jax.config.update("jax_enable_compilation_cache", False)
        return {"used": False, "dir": str(path), "reason": f"cannot create: {err}"}
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # JAX binds its cache to a directory on first use in a process; drop that binding so an
    # earlier compilation (e.g. a fit before this run) does not keep the old directory.
    from jax._src import compilation_cache as _cc

    _cc.reset_cache()
    return {"used": True, "dir": str(path), "entries_before": _count_entries(path)}


def _count_entries(path: Path) -> int:
    try:
        return sum(1 for _ in path.iterdir())
    except OSError:
        return 0


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a run depends on."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def platform_info() -> dict[str, Any]:
    """The machine: OS, architecture, CPU count and the JAX backend and devices."""
    from ._jax import jax

    return {
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
    }


def _git_commit() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------- one mixer


def _prediction_frame(entry, pred, ds: Dataset, where: np.ndarray) -> pd.DataFrame:
    df = pred.summary(levels=INTERVAL_LEVELS)
    df.insert(0, "mixer", entry.key)
    for split in ("train", "test"):
        mask = np.zeros(len(ds), bool)
        if split in ds.splits:
            mask[ds.split_indices(split)] = True
        df.insert(df.columns.get_loc("y_obs"), f"in_{split}", mask[where])
    return df


def _weights_frame(entry, pred) -> pd.DataFrame:
    mean, sd = pred.weights_mean(), pred.weights_sd()
    df = pd.DataFrame({"mixer": entry.key, "nucleus": pred.labels, "Z": pred.Z, "N": pred.N})
    for j, m in enumerate(pred.models):
        df[f"mean_{m}"] = mean[:, j]
    for j, m in enumerate(pred.models):
        df[f"sd_{m}"] = sd[:, j]
    return df


@dataclass(frozen=True)
class _Reuse:
    """A stored posterior that a run may take instead of sampling (``--reuse``)."""

    source: Path  # the posterior file in the earlier run
    folds: tuple[dict, dict] | None  # its validation-fold scores and records, when the same


def _reuse_plan(src: Run, st: Study, ds: Dataset, corrected: Dataset | None,
                folds) -> dict[str, tuple[_Reuse | None, str]]:  # fmt: skip
    """For each entry of ``st``: the earlier run's posterior when the entry's settings (seed
    included), the dataset and the package versions are the same, else None and why not."""
    man = src.manifest
    old = {m["key"]: m for m in man["study"]["mixers"]}
    new = {m["key"]: m for m in st.to_dict()["mixers"]}
    now = package_versions()
    changed = sorted(k for k in set(now) | set(man.get("versions", {}))
                     if now.get(k) != man.get("versions", {}).get(k))  # fmt: skip
    same_folds = man.get("validation_folds", {}) == {
        f.name: {"kind": f.kind, "held_out": int(f.held.size)} for f in folds
    }
    metrics = src.metrics()["mixers"]
    plan: dict[str, tuple[_Reuse | None, str]] = {}
    for entry in st.mixers:
        key = entry.key
        data = corrected if entry.corrected else ds
        stored = man["corrected_dataset"] if entry.corrected else man["dataset"]
        if key not in old or key not in man["mixers"]:
            plan[key] = (None, f"{src.path} has no entry {key!r}")
        elif old[key] != new[key]:
            diff = sorted(k for k in set(old[key]) | set(new[key])
                          if old[key].get(k) != new[key].get(k))  # fmt: skip
            plan[key] = (None, f"the entry differs in {', '.join(diff)}")
        elif changed:
            plan[key] = (None, "package versions differ: " + ", ".join(
                f"{k} {man['versions'].get(k)} → {now.get(k)}" for k in changed))  # fmt: skip
        elif stored != _dataset_record(data):
            plan[key] = (None, "the dataset differs (tables, their sha256, counts or notes)")
        else:
            rec = man["mixers"][key]
            kept = None
            if same_folds and "folds" in rec and "folds" in metrics.get(key, {}):
                kept = (metrics[key]["folds"], rec["folds"])
            plan[key] = (_Reuse(src.path / rec["posterior"], kept),
                         "same study entry and seed, dataset and package versions")  # fmt: skip
    return plan


def _reused_posterior(reuse: _Reuse, dest: Path, ds: Dataset):
    """Copy a stored posterior into the new run and read it, checking that it was fitted to
    the same data (nuclei, y, model predictions, splits); None where it was not."""
    from .inference import Posterior

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.copyfile(reuse.source, tmp)
    post = Posterior.load(tmp)
    d = post.dataset
    same = (
        np.array_equal(d.Z, ds.Z) and np.array_equal(d.N, ds.N)
        and np.array_equal(d.y, ds.y, equal_nan=True)
        and np.array_equal(d.F, ds.F, equal_nan=True)
        and d.splits.keys() == ds.splits.keys()
        and all(np.array_equal(d.splits[k], ds.splits[k]) for k in ds.splits)
    )  # fmt: skip
    if not same:
        tmp.unlink()
        return None
    os.replace(tmp, dest)
    return post


@dataclass(frozen=True)
class _MixerOutcome:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    weights: pd.DataFrame | None
    record: dict[str, Any]
    derived: pd.DataFrame | None = None


def _fit_entry(entry, ds: Dataset, bar: bool, progress: Progress | None = None,
               init_params=None, options=None):  # fmt: skip
    from .inference import fit

    s = entry.sampling
    warmup = s.num_warmup
    nuts = s.method == "nuts"  # the NUTS-only settings are passed to NUTS alone
    if s.method == "chees":  # its chains start apart by design: a refit is cold
        init_params = None
    if init_params is not None:  # a warm start in the typical set: a quarter of the warm-up
        warmup = min(s.num_warmup, max(200, s.num_warmup // 4))
    priors = {k: parse_prior(v) for k, v in entry.priors.items()} or None
    return fit(
        ds,
        entry.mixer,
        likelihood=entry.likelihood,
        priors=priors,
        num_warmup=warmup,
        num_samples=s.num_samples,
        max_samples=s.max_samples,
        num_chains=s.num_chains,
        thinning=s.thinning,
        seed=entry.seed,
        target_accept=s.target_accept,
        dense_mass=s.dense_mass if nuts else None,
        max_tree_depth=s.max_tree_depth,
        init=s.init,
        chain_method=s.chain_method if nuts else None,
        method=s.method,
        smc=dict(s.smc) or None,
        chees=dict(s.chees) or None,
        progress_bar=bar,
        options=dict(entry.options if options is None else options),
        warn=False,
        init_params=init_params,
    )


def _fold_scores(entry, ds: Dataset, folds, bar: bool, progress: Progress, max_draws: int):
    """Fit an entry on every validation fold and score it on the held-out nuclei."""
    from .data import apply_fold
    from .predict import mixer_metrics, predict

    out, records = {}, {}
    for fold in folds:
        fd = apply_fold(ds, fold)
        t0 = time.perf_counter()
        post = _fit_entry(entry, fd, bar)
        nuclei = [(int(fd.Z[i]), int(fd.N[i])) for i in fold.held]
        pred = predict(thin(post, max_draws), nuclei, seed=entry.seed + 1)
        m = mixer_metrics(post, pred, fd, fold.held)
        out[fold.name] = m.get("test", {})
        d = post.diagnostics
        records[fold.name] = {
            "fit_s": time.perf_counter() - t0,
            "converged": bool(d.get("converged")),
            "rhat_max": d.get("rhat_max"),
            "ess_bulk_min": d.get("ess_bulk_min"),
        }
        sc = out[fold.name]
        progress(
            f"  fold {fold.name} ({fold.held.size} held out): rms {sc.get('rms', 0):.3f}, "
            f"mean |ECP - level| {sc.get('ecp_mean_abs', 0):.3f}"
        )
    return out, records


def _run_mixer(
    entry, ds: Dataset, folder: Path, progress: Progress, bar: bool, max_draws: int, folds=(),
    reuse: _Reuse | None = None, supply: Callable | None = None, early: Path | None = None,
) -> _MixerOutcome:  # fmt: skip
    from .inference import CLOSED_FORMS, is_converged
    from .mixers import get_mixer
    from .predict import mixer_metrics, predict

    t0 = time.perf_counter()
    rel = Path("posterior") / f"{entry.key}.nc"
    post = _reused_posterior(reuse, folder / rel, ds) if reuse is not None else None
    reused = post is not None
    supplied = None
    if not reused and supply is not None:
        supplied = supply(entry, ds)  # an UpdateResult: a posterior, or None and why
        progress(f"  update: {supplied.record['method']} ({supplied.record['why']})")
        post = supplied.posterior
    if reused:
        fit_s = 0.0
        progress(f"  reused the posterior of {reuse.source} (no sampling)")
    elif post is not None:
        fit_s = time.perf_counter() - t0
        post.save(folder / rel)
    else:
        warm = supplied.init_params if supplied is not None else None
        opts = supplied.options if supplied is not None else None
        post = _fit_entry(entry, ds, bar, init_params=warm, options=opts)
        fit_s = time.perf_counter() - t0
        post.save(folder / rel)
    save_s = time.perf_counter() - t0 - fit_s
    figures_s = None
    if early is not None and post.diagnostics.get("sampler") not in CLOSED_FORMS:
        from .report.figures import convergence_figures

        t1 = time.perf_counter()  # drawn now, beside the other fits, not after all of them
        convergence_figures(post, entry.key, entry.label, early)
        figures_s = time.perf_counter() - t1
    where = prediction_indices(ds)
    progress(f"  fitted in {fit_s:.1f} s; predicting {where.size} nuclei")
    t1 = time.perf_counter()
    used = thin(post, max_draws)
    nuclei = [(int(ds.Z[i]), int(ds.N[i])) for i in where]
    pred = predict(used, nuclei, seed=entry.seed + 1)
    predict_s = time.perf_counter() - t1
    metrics = mixer_metrics(used, pred, ds, where)
    metrics.update(mixer=entry.mixer, label=entry.label, likelihood=entry.likelihood,
                   corrected=entry.corrected, local=get_mixer(entry.mixer).local,
                   noise=post.options.get("noise"))  # fmt: skip
    diag = dict(post.diagnostics)
    record = {
        "mixer": entry.mixer,
        "label": entry.label,
        "corrected": entry.corrected,
        "seed": entry.seed,
        "posterior": rel.as_posix(),
        "fit_s": fit_s,
        "save_s": save_s,
        "predict_s": predict_s,
        "predict_draws": int(pred.y.shape[0]),
        "figures_s": figures_s,
        "diagnostics": diag,
        "converged": is_converged(diag),
    }
    if reused:
        record["reused_from"] = str(reuse.source)
    if supplied is not None:
        record["update"] = supplied.record
    if folds and reused and reuse.folds is not None:
        metrics["folds"], record["folds"] = reuse.folds
    elif folds:
        t2 = time.perf_counter()
        metrics["folds"], record["folds"] = _fold_scores(entry, ds, folds, bar, progress, max_draws)
        record["folds_s"] = time.perf_counter() - t2
    weights = _weights_frame(entry, pred) if metrics["local"] else None
    derived = None
    if ds.observable == "BE":
        t3 = time.perf_counter()
        derived = _derived_frame(entry, pred)
        record["derive_s"] = time.perf_counter() - t3
    return _MixerOutcome(metrics, _prediction_frame(entry, pred, ds, where), weights, record,
                         derived)  # fmt: skip


#: Quantities derived draw by draw from the binding energies of a BE run (``derived.csv``).
DERIVED_QUANTITIES = ("S2n", "Sn")


def _derived_frame(entry, pred) -> pd.DataFrame | None:
    """S2n and Sn over the prediction domain, formed draw by draw from the run's own BE
    prediction ``pred`` (:func:`derive_from`): one row per quantity and nucleus whose
    neighbours are in the domain too."""
    from .predict import derivable_nuclei, derive_from

    have = list(zip(pred.Z.tolist(), pred.N.tolist(), strict=True))
    frames = []
    for q in DERIVED_QUANTITIES:
        targets = derivable_nuclei(q, have)
        if not targets:  # e.g. Sn on even-even nuclei only
            continue
        df = derive_from(pred, q, targets).summary(levels=INTERVAL_LEVELS)
        df.insert(0, "quantity", q)
        df.insert(0, "mixer", entry.key)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else None


def _describe(entry) -> str:
    if entry.mixer == "bma":
        return "closed form"
    s = entry.sampling
    if s.method == "smc":
        return f"SMC: {s.num_chains} populations × {s.num_samples} particles"
    text = f"{s.num_chains} chains × ({s.num_warmup} warm-up + {s.num_samples} draws"
    if s.method == "chees":
        text = "ChEES-HMC, " + text.replace("chains", "vectorized chains", 1)
    if s.max_samples:
        text += f", up to {s.max_samples} until converged"
    return text + (f", every {s.thinning}th kept)" if s.thinning > 1 else ")")


def _outcome_text(entry, record: Mapping[str, Any]) -> str:
    from .mixers import get_mixer

    d = record["diagnostics"]
    text = f"fit {record['fit_s']:.1f} s, predict {record['predict_s']:.1f} s"
    if d.get("sampler") == "closed form":
        return text + "; closed form"
    samp = d.get("sampling", {})
    text += (
        f"; {samp.get('draws_per_chain')} draws per chain; R-hat max {d['rhat_max']:.4f}, "
        f"min bulk ESS {d['ess_bulk_min']:.0f}, divergences {d.get('divergences', 0)}"
    )
    if not record["converged"]:
        hint = get_mixer(entry.mixer).hint(entry.likelihood) or (
            "raise sampling.max_samples (draws per chain until the bars hold) or num_warmup"
        )
        text += f"  [NOT CONVERGED: {'; '.join(d.get('problems', []))}]\n  advice: {hint}"
    return text


def _check_entries(st: Study, ds: Dataset) -> None:
    """Every entry's options and priors against its mixer and the data, before any
    sampling: a bad value in the last entry must not cost the fits of the first ones."""
    from .data.errors import OptionError
    from .inference import check_priors
    from .mixers import get_mixer

    train = ds.split("train", require_observed=True)
    for entry in st.mixers:
        spec = get_mixer(entry.mixer)
        try:
            opts = (spec.resolve_options(train, dict(entry.options), entry.likelihood)
                    if spec.model is not None else {})  # fmt: skip
            check_priors(spec, {k: None for k in entry.priors}, opts)
        except OptionError as err:
            raise OptionError(f"study {st.source}: mixer entry {entry.key!r}: {err}") from err


def _study_folds(st: Study, ds: Dataset):
    from .data import make_folds

    folds = []
    for kind in st.validation.folds:
        folds.extend(make_folds(ds, kind))
    return folds


def _model_metrics(ds: Dataset) -> dict[str, Any]:
    from .predict import model_metrics

    out = {}
    has_test = "test" in ds.splits and np.isfinite(ds.y[ds.split_indices("test")]).any()
    if not has_test:
        return {}
    for m, v in model_metrics(ds).items():
        out[m] = {
            "train": {"rms": v["train_rms"]},
            "test": {
                "rms": v["rms"],
                "ecp": {"levels": list(v["ecp"]), "coverage": list(v["ecp"].values())},
                "crps": v["crps"],
                "mlpd": v["mlpd"],
            },
            "sigma": v["sigma"],
        }
    return out


def _dataset_record(ds: Dataset) -> dict[str, Any]:
    return {
        "name": ds.name,
        "observable": ds.observable,
        "models": list(ds.models),
        "counts": ds.counts(),
        "tables": {
            k: {"source": p.source, "path": p.path, "sha256": p.sha256}
            for k, p in ds.provenance.items()
        },
        "notes": list(ds.notes),
    }


# ---------------------------------------------------------------------- the run


def _unique_temp_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _install(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished folder into place (replacing an old run when allowed)."""
    os.chmod(tmp, new_file_mode(folder=True))  # the temporary folder was private
    if not target.exists() or _is_empty_dir(target):
        os.replace(tmp, target)
        return
    if not overwrite:
        raise RunError(f"{target} appeared during the run; the new run is left out")
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / "run")
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists() or _is_empty_dir(target):
        return
    if not target.is_dir():
        raise RunError(f"{target} exists and is not a folder")
    if not overwrite:
        raise RunError(
            f"{target} already exists; pass --overwrite (overwrite=True) to replace it, or "
            "--out (output=) to write elsewhere"
        )
    try:
        check_run(target, verify_hashes=False)
    except RunError as err:
        raise RunError(
            f"{target} exists and is not an lbmm run folder ({err}); refusing to replace it"
        ) from err


def default_jobs() -> int:
    """How many mixers ``lbmm run`` fits at once by default: two where this process may use
    two or more cores, else one. The longest fit (LBMM+GPD in the default study) keeps
    about 1.4 cores busy alone, while most of the other mixers' work (compilation, checks,
    figures) runs on one; two at a time fill two cores (BENCHMARKS.md)."""
    from ._jax import usable_cores

    return max(1, min(2, usable_cores()))


def _check_jobs(jobs: Any) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int | np.integer) or jobs < 1:
        raise RunError(f"jobs must be a whole number >= 1 (mixers fitted at once), got {jobs!r}")
    return int(jobs)


def _mixer_job(i: int, n: int, entry, data: Dataset, folder: Path, bar: bool, max_draws: int,
               folds, found: _Reuse | None, why: str, reuse: bool, supply: Callable | None,
               started_at: float, early: Path | None, *,
               say: Progress) -> _MixerOutcome:  # fmt: skip
    """One entry of a study, with its progress lines: in this process or in a worker."""
    say(f"[{i}/{n}] {entry.label} ({entry.key}): {_describe(entry)}; "
        f"elapsed {time.time() - started_at:.0f} s")  # fmt: skip
    if reuse and found is None:
        say(f"  not reused: {why}")
    out = _run_mixer(entry, data, folder, say, bar, max_draws, folds, found, supply, early)
    say("  done: " + _outcome_text(entry, out.record))
    return out


_WORKER: dict[str, Any] = {}


def _worker_init(messages, cache_dir: str | None, devices: int) -> None:
    """Set up a worker process of a run with ``jobs > 1``: progress lines go back to the
    parent through ``messages``; the parent's compilation cache and its number of CPU
    devices (ChEES-HMC's draws depend on it: the same numbers as ``jobs=1``); Ctrl-C is the
    parent's to handle (it stops the workers)."""
    import signal

    from ._jax import set_host_devices

    set_host_devices(devices)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["messages"] = messages
    enable_compilation_cache(cache_dir if cache_dir is not None else "off")


def _worker_job(key: str, *args) -> _MixerOutcome:
    messages = _WORKER["messages"]

    def say(msg: str) -> None:  # lines of entries running at once are told apart by key
        messages.put(msg if not msg.startswith("  ") else f"  {key}:{msg[1:]}")

    return _mixer_job(*args, say=say)


def _relay(messages, say: Progress) -> None:
    while (msg := messages.get()) is not None:
        say(msg)


def _start_order(entries) -> list[int]:
    """The order in which the workers take a study's entries: the costliest first, so that
    the longest fit does not start last. By the mixer's cost rank (:attr:`MixerSpec.cost
    <lbmm.mixers.registry.MixerSpec.cost>`: a GP over the chart, the other local mixers, the
    global samplers, the closed forms), then by iterations of all chains, then as in the
    study."""
    from .mixers import get_mixer

    def iterations(e) -> int:
        s = e.sampling
        return s.num_chains * (s.num_warmup + s.num_samples)

    def key(j: int) -> tuple[int, int, int]:
        return get_mixer(entries[j].mixer).cost, -iterations(entries[j]), j

    return sorted(range(len(entries)), key=key)


def _run_entries_in_workers(jobs: int, tasks: list[tuple], order: list[int], say: Progress,
                            cache: Mapping[str, Any],
                            on_done: Callable | None = None) -> list[_MixerOutcome]:  # fmt: skip
    """Run the entries' jobs in ``jobs`` worker processes (spawned: JAX does not survive a
    fork, and NumPyro's effect handlers are global, so threads would mix two models' traces),
    started in ``order``. Results in the order of ``tasks``; ``on_done(j, outcome, left)`` is
    called in this process as each entry ``j`` finishes, ``left`` entries still to finish."""
    import multiprocessing as mp
    import queue
    import threading

    from ._jax import jax

    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    relay = threading.Thread(target=_relay, args=(messages, say), daemon=True)
    relay.start()
    cache_dir = cache.get("dir") if cache.get("used") else None
    devices = len(jax.devices("cpu"))  # the workers use the count this process has
    pool = ctx.Pool(min(jobs, len(tasks)), initializer=_worker_init,
                    initargs=(messages, cache_dir, devices))  # fmt: skip
    finished: queue.Queue[int] = queue.Queue()
    try:
        pending = {
            j: pool.apply_async(_worker_job, tasks[j], callback=lambda _, j=j: finished.put(j),
                                error_callback=lambda _, j=j: finished.put(j))
            for j in order
        }  # fmt: skip
        out: dict[int, _MixerOutcome] = {}
        while len(out) < len(tasks):
            j = finished.get()
            out[j] = pending[j].get()  # a failed entry raises its error here
            if on_done is not None:
                on_done(j, out[j], len(tasks) - len(out))
        pool.close()
        pool.join()
    except BaseException:
        pool.terminate()  # a failed entry or Ctrl-C: the other workers stop now
        pool.join()
        raise
    finally:
        messages.put(None)
        relay.join(timeout=5)
    return [out[j] for j in range(len(tasks))]


def _early_report(st: Study, ds: Dataset, folder: Path | None, jobs: int,
                  say: Progress) -> Callable | None:  # fmt: skip
    """``on_done`` of :func:`_run_entries_in_workers` that draws, into the run's folder of
    early figures, the figures that do not wait for the last fits: once fewer entries are
    left than workers (a core would idle), each finished entry's own figures
    (:func:`~lbmm.report.figures.mixer_figures`) and the raw models' residuals, in this
    process, beside the last fits; the modules the report needs are imported then too. The
    report moves the figures in (and draws what is missing)."""
    if folder is None:
        return None
    done: dict[int, _MixerOutcome] = {}
    drawn: set[int] = set()

    def on_done(j: int, outcome: _MixerOutcome, left: int) -> None:
        done[j] = outcome
        if left == 0 or left >= jobs:  # the report draws the last; no core idles yet
            return
        try:
            draw()
        except Exception as err:  # the report draws them (and raises there if it is a bug)
            from .report.figures import EARLY_FILES

            for pattern in EARLY_FILES:  # none half-written left to be moved in
                for f in folder.glob(pattern):
                    f.unlink()
            drawn.clear()
            say(f"  figures drawn early failed ({type(err).__name__}: {err}); the report "
                "draws them")  # fmt: skip

    def draw() -> None:
        from .report.figures import (
            MODELS_RESIDUALS,
            choose_chains,
            mixer_figures,
            models_residuals_figure,
        )

        if not drawn:
            models_residuals_figure(ds.to_frame(), ds.models, ds.observable,
                                    folder / MODELS_RESIDUALS)  # fmt: skip
            from . import inference  # noqa: F401  (the report's tables need it: 1-2 s to import)
        pred = pd.concat([o.predictions for o in done.values()], ignore_index=True)
        chains = choose_chains(pred, st.report.chains)
        for i in sorted(set(done) - drawn):
            e = st.mixers[i]
            mixer_figures(e.key, e.label, done[i].predictions, done[i].weights, ds.models,
                          chains, ds.observable, folder)  # fmt: skip
            drawn.add(i)

    return on_done


def run_study(
    study: str | Path | Study = "default",
    *,
    output: str | Path | None = None,
    data_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    progress_bar: bool = False,
    cache_dir: str | Path | None = None,
    report: bool = True,
    reuse: str | Path | None = None,
    dataset: Dataset | None = None,
    supply: Callable | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    jobs: int = 1,
) -> Run:
    """Run every mixer of a study and write one run folder (atomically).

    Parameters
    ----------
    study
        A built-in study name, a TOML file or a :class:`~lbmm.study.Study`.
    output
        The run folder; default the study's ``output`` (``runs/NAME``).
    data_dir
        Overrides the study's data directory.
    overwrite
        Replace an existing run folder (only one that is an lbmm run).
    progress
        Called with one line of text per step (which mixer, timings); default silent.
    progress_bar
        Show NumPyro's warm-up/sampling progress bar.
    cache_dir
        JAX persistent compilation cache (see :func:`enable_compilation_cache`).
    report
        Build tables, figures and ``report.html`` (``lbmm report`` can do it later).
    reuse
        An earlier run folder: each entry whose settings (seed included), dataset and
        package versions are the same as there takes that run's posterior instead of
        sampling (predictions, metrics and the report are made anew); the manifest's
        ``reuse`` says which entries were reused and why the others were not.
    dataset, supply, manifest_extra
        For :func:`lbmm.update.update_run`: the dataset to use instead of building the
        study's; a function ``supply(entry, data)`` giving each entry's posterior without a
        fit where it can (an :class:`~lbmm.inference.update.UpdateResult`; a fit where its
        posterior is None); more manifest keys. Validation folds are not run with
        ``supply``.
    jobs
        Mixers fitted at once, each in a worker process (:func:`default_jobs` is what
        ``lbmm run`` uses). Every entry has its own seed, so the numbers are those of
        ``jobs=1``; the progress bar is shown only with ``jobs=1``. Runs with ``supply``
        fit one entry at a time.

    Returns
    -------
    Run
        The finished run, read back from its folder.

    Raises
    ------
    StudyError, DataError, RunError
        Before any sampling, for a bad study, bad data or an occupied output folder.
    """
    say = progress or _quiet
    jobs = _check_jobs(jobs)
    st = load_study(study)
    target = Path(output if output is not None else st.output).expanduser().absolute()
    _check_target(target, overwrite)
    st = replace(st, output=str(target))  # the study as run
    started, t_start, started_at = _now(), time.perf_counter(), time.time()
    cache = enable_compilation_cache(cache_dir)
    ds = build_dataset(st, data_dir) if dataset is None else dataset
    _check_entries(st, ds)
    say(f"{ds.summary()}")
    corrected = None
    t_corr = 0.0
    if st.needs_corrections:
        from .corrections import correct

        say("fitting the systematic corrections (a GP per model on its training residuals)")
        t0 = time.perf_counter()
        corrected = correct(ds, split="train")
        t_corr = time.perf_counter() - t0
        say(f"  corrections fitted in {t_corr:.1f} s")
    tmp = _unique_temp_dir(target)
    try:
        metrics: dict[str, Any] = {"mixers": {}, "models": {"raw": _model_metrics(ds)}}
        if corrected is not None:
            metrics["models"]["corrected"] = _model_metrics(corrected)
        records, frames, wframes, dframes = {}, [], [], []
        folds = _study_folds(st, ds) if supply is None else ()
        plan = _reuse_plan(load_run(reuse), st, ds, corrected, folds) if reuse else {}
        n = len(st.mixers)
        parallel = jobs > 1 and n > 1 and supply is None
        early = tmp / _EARLY_FIGURES if report else None
        tasks = []
        for i, entry in enumerate(st.mixers, 1):
            found, why = plan.get(entry.key, (None, ""))
            # corrections are fitted to every training nucleus: no honest fold for them
            tasks.append((i, n, entry, corrected if entry.corrected else ds, tmp,
                          progress_bar and not parallel, st.predict.max_draws,
                          () if entry.corrected else folds, found, why, bool(reuse), supply,
                          started_at, early))  # fmt: skip
        if parallel:
            keyed = [(e.key, *t) for e, t in zip(st.mixers, tasks, strict=True)]
            outcomes = _run_entries_in_workers(jobs, keyed, _start_order(st.mixers), say, cache,
                                               _early_report(st, ds, early, jobs, say))  # fmt: skip
        else:
            outcomes = (_mixer_job(*t, say=say) for t in tasks)
        for entry, out in zip(st.mixers, outcomes, strict=True):
            found = plan.get(entry.key, (None, ""))[0]
            if reuse and found is not None and "reused_from" not in out.record:
                plan[entry.key] = (None, "its posterior was fitted to other data")
            metrics["mixers"][entry.key] = out.metrics
            records[entry.key] = out.record
            frames.append(out.predictions)
            if out.weights is not None:
                wframes.append(out.weights)
            if out.derived is not None:
                dframes.append(out.derived)
        ds.to_frame().to_csv(tmp / "dataset.csv", index=False)
        if corrected is not None:
            corrected.to_frame().to_csv(tmp / "dataset_corrected.csv", index=False)
        pd.concat(frames, ignore_index=True).to_csv(tmp / "predictions.csv", index=False)
        if wframes:
            pd.concat(wframes, ignore_index=True).to_csv(tmp / "weights.csv", index=False)
        if dframes:
            pd.concat(dframes, ignore_index=True).to_csv(tmp / "derived.csv", index=False)
        write_json(tmp / "metrics.json", metrics)
        (tmp / "study.toml").write_text(st.to_toml(), "utf-8")
        if cache.get("used"):
            cache["entries_after"] = _count_entries(Path(cache["dir"]))
        manifest = {
            "format": RUN_FORMAT,
            "format_version": RUN_FORMAT_VERSION,
            "complete": True,
            "study": st.to_dict(),
            "study_source": st.source,
            "seed": st.seed,
            "started": started,
            "finished": _now(),
            "wall_s": time.perf_counter() - t_start,
            "jobs": jobs if parallel else 1,
            "corrections_s": t_corr if corrected is not None else None,
            "dataset": _dataset_record(ds),
            "corrected_dataset": _dataset_record(corrected) if corrected is not None else None,
            "mixers": records,
            "versions": package_versions(),
            "platform": platform_info(),
            "git": _git_commit(),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
            "jax_compilation_cache": cache,
            "reuse": None
            if not reuse
            else {
                "from": str(Path(reuse).absolute()),
                "entries": {k: {"reused": f is not None, "why": w} for k, (f, w) in plan.items()},
            },
            "validation_folds": {
                f.name: {"kind": f.kind, "held_out": int(f.held.size)} for f in folds
            },
            **dict(manifest_extra or {}),
            "files": file_records(tmp, exclude=(_EARLY_FIGURES,)),
        }
        write_json(tmp / "manifest.json", manifest)
        if report:  # the report refreshes the manifest's file list: every file is hashed
            from .report import build_report

            t0 = time.perf_counter()
            say("writing tables, figures and report.html")
            build_report(tmp, early_figures=early)
            shutil.rmtree(early, ignore_errors=True)
            say(f"  report written in {time.perf_counter() - t0:.1f} s")
        _install(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"run folder: {target} ({time.perf_counter() - t_start:.0f} s in all)")
    return load_run(target)
