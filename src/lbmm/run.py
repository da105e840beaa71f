"""Run a study end to end into one run folder, and read run folders back.

:func:`run_study` builds the dataset, fits every mixer of the study, predicts over the
prediction domain, computes the metrics and writes one folder::

    RUN/
      manifest.json        the study as run, data files and sha256, versions, platform, seeds,
                           start/end times, per-mixer timings and diagnostics, file hashes
      study.toml           the study with every default explicit (``lbmm run RUN/study.toml``)
      dataset.csv          the nuclei, y, each model's prediction and the splits
      dataset_corrected.csv  the same with the corrected models (when a mixer uses them)
      posterior/KEY.nc     one ArviZ InferenceData per mixer entry
      predictions.csv      every nucleus of the prediction domain × mixer: mean, sd, 68 % and
                           95 % intervals, existence probability, observed value
      weights.csv          local mixers: posterior mean and sd of each model's weight per nucleus
      metrics.json         rms, σ, coverage (ECP), CRPS, log density and weights per model/mixer
      tables/ figures/ report.html   (:func:`lbmm.report.build_report`; ``lbmm report`` redoes them)

The folder is built beside its target under a temporary name and renamed at the end: an
error or Ctrl-C (KeyboardInterrupt) removes it, so a run folder is complete or absent.
:func:`load_run` checks a folder against its manifest before anything reads it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
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

from .data import DataError, Dataset, load_dataset, read_table
from .study import Study, load_study, parse_prior, study_from_dict

__all__ = [
    "INTERVAL_LEVELS",
    "RESULT_FILES",
    "RUN_FORMAT",
    "Run",
    "RunError",
    "build_dataset",
    "check_run",
    "enable_compilation_cache",
    "load_run",
    "mixer_metrics",
    "prediction_indices",
    "run_study",
    "sha256",
    "thin",
]

RUN_FORMAT = "lbmm-run"
RUN_FORMAT_VERSION = 1
INTERVAL_LEVELS = (0.68, 0.95)
CACHE_ENV = "LBMM_CACHE_DIR"
#: Files every run folder has (besides posteriors); ``lbmm report`` needs them all.
RESULT_FILES = ("study.toml", "dataset.csv", "predictions.csv", "metrics.json")
_VERSION_PACKAGES = (
    "lbmm", "jax", "jaxlib", "numpyro", "arviz", "numpy", "scipy", "pandas", "xarray",
    "matplotlib", "h5netcdf", "masstable",
)  # fmt: skip


class RunError(ValueError):
    """A folder is not a complete lbmm run (or cannot become one); the message says why."""


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


def sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n", "utf-8")


# ---------------------------------------------------------------------- one mixer


def _take(pred, idx: np.ndarray):
    """A :class:`~lbmm.predict.Prediction` restricted to some of its nuclei."""
    return replace(
        pred,
        Z=pred.Z[idx],
        N=pred.N[idx],
        labels=tuple(np.asarray(pred.labels, dtype=object)[idx].tolist()),
        y=pred.y[:, idx],
        mu=pred.mu[:, idx],
        weights=pred.weights[:, idx],
        y_obs=pred.y_obs[idx],
        log_density=pred.log_density[:, idx],
    )


def _rms(pred) -> float:
    return float(np.sqrt(np.mean((pred.mean - pred.y_obs) ** 2)))


def mixer_metrics(posterior, pred, ds: Dataset, where: np.ndarray) -> dict[str, Any]:
    """Table 1 and Table 2 numbers of one fit, from its prediction over ``where``.

    ``pred`` holds the nuclei ``ds[where]``; train and test metrics use those of its nuclei
    that are in the splits. rms is that of the posterior predictive mean.
    """
    from .predict import evaluate

    pos = {int(i): j for j, i in enumerate(where.tolist())}
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        if split not in ds.splits:
            continue
        members = [pos[i] for i in ds.split_indices(split).tolist() if i in pos]
        sub = _take(pred, np.asarray(members, dtype=np.int64))
        sub = _take(sub, np.flatnonzero(np.isfinite(sub.y_obs)))
        if sub.y_obs.size == 0:
            continue
        ev = evaluate(sub)
        out[split] = {
            "rms": _rms(sub),
            "n": ev["n"],
            "ecp": {"levels": list(ev["ecp"]), "coverage": list(ev["ecp"].values())},
            "crps": ev["crps"],
            "mlpd": ev["mlpd"],
        }
    sigma = posterior.samples("sigma")
    out["sigma_mean"] = float(sigma.mean())
    out["sigma_sd"] = float(sigma.std(ddof=1))
    if sigma.ndim > 1:  # one σ_k per model (density likelihood)
        out["sigma_k"] = dict(zip(ds.models, sigma.mean(axis=0).tolist(), strict=True))
    # Table 2: global weights, or the mean of local weights over the training nuclei
    if "train" in ds.splits:
        members = [pos[i] for i in ds.split_indices("train").tolist() if i in pos]
        w = pred.weights[:, members]
    else:
        w = pred.weights
    wm = w.mean(axis=(0, 1))
    ws = w.mean(axis=1).std(axis=0, ddof=1)
    out["weights"] = dict(zip(ds.models, wm.tolist(), strict=True))
    out["weights_sd"] = dict(zip(ds.models, ws.tolist(), strict=True))
    if posterior.mixer == "bma":
        out["bma_weights"] = {
            meth: dict(zip(ds.models, np.asarray(ws_).tolist(), strict=True))
            for meth, ws_ in posterior.settings["bma_weights"].items()
        }
    return out


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
class _MixerOutcome:
    metrics: dict[str, Any]
    predictions: pd.DataFrame
    weights: pd.DataFrame | None
    record: dict[str, Any]


def thin(posterior, max_draws: int):
    """The posterior with at most ``max_draws`` draws in all, every chain thinned alike
    (``max_draws`` 0: unchanged)."""
    post = posterior.idata.posterior
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    if not max_draws or chains * draws <= max_draws:
        return posterior
    step = math.ceil(chains * draws / max_draws)
    return replace(posterior, idata=posterior.idata.isel(draw=slice(None, None, step)))


def _run_mixer(
    entry, ds: Dataset, folder: Path, progress: Progress, bar: bool, max_draws: int
) -> _MixerOutcome:
    from .inference import fit
    from .mixers import get_mixer
    from .predict import predict

    s = entry.sampling
    priors = {k: parse_prior(v) for k, v in entry.priors.items()} or None
    t0 = time.perf_counter()
    post = fit(
        ds,
        entry.mixer,
        likelihood=entry.likelihood,
        priors=priors,
        num_warmup=s.num_warmup,
        num_samples=s.num_samples,
        num_chains=s.num_chains,
        thinning=s.thinning,
        seed=entry.seed,
        target_accept=s.target_accept,
        dense_mass=s.dense_mass,
        max_tree_depth=s.max_tree_depth,
        init=s.init,
        chain_method=s.chain_method,
        progress_bar=bar,
        options=dict(entry.options),
        warn=False,
    )
    fit_s = time.perf_counter() - t0
    rel = Path("posterior") / f"{entry.key}.nc"
    post.save(folder / rel)
    save_s = time.perf_counter() - t0 - fit_s
    where = prediction_indices(ds)
    progress(f"  fitted in {fit_s:.1f} s; predicting {where.size} nuclei")
    t1 = time.perf_counter()
    used = thin(post, max_draws)
    nuclei = [(int(ds.Z[i]), int(ds.N[i])) for i in where]
    pred = predict(used, nuclei, seed=entry.seed + 1)
    predict_s = time.perf_counter() - t1
    metrics = mixer_metrics(used, pred, ds, where)
    metrics.update(mixer=entry.mixer, label=entry.label, likelihood=entry.likelihood,
                   corrected=entry.corrected, local=get_mixer(entry.mixer).local)  # fmt: skip
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
        "diagnostics": diag,
        "converged": _converged(diag),
    }
    weights = _weights_frame(entry, pred) if metrics["local"] else None
    return _MixerOutcome(metrics, _prediction_frame(entry, pred, ds, where), weights, record)


def _converged(diag: Mapping[str, Any]) -> bool:
    """Max R-hat <= 1.01 and min bulk ESS >= 400 (divergences are reported apart)."""
    from .inference import ESS_MIN, RHAT_MAX

    if diag.get("sampler") == "exact":
        return True
    rhat, ess = diag.get("rhat_max"), diag.get("ess_bulk_min")
    return bool(rhat is not None and ess is not None and rhat <= RHAT_MAX and ess >= ESS_MIN)


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
    st = load_study(study)
    target = Path(output if output is not None else st.output).expanduser().absolute()
    _check_target(target, overwrite)
    st = replace(st, output=str(target))  # the study as run
    started, t_start = _now(), time.perf_counter()
    cache = enable_compilation_cache(cache_dir)
    ds = build_dataset(st, data_dir)
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
        records, frames, wframes = {}, [], []
        for i, entry in enumerate(st.mixers, 1):
            data = corrected if entry.corrected else ds
            s = entry.sampling
            run_desc = (
                "closed form"
                if entry.mixer == "bma"
                else f"{s.num_chains} chains × ({s.num_warmup} warm-up + {s.num_samples} draws"
                + (f", every {s.thinning}th kept)" if s.thinning > 1 else ")")
            )
            say(f"[{i}/{len(st.mixers)}] {entry.label} ({entry.key}): {run_desc}; "
                f"elapsed {time.perf_counter() - t_start:.0f} s")  # fmt: skip
            out = _run_mixer(entry, data, tmp, say, progress_bar, st.predict.max_draws)
            d = out.record["diagnostics"]
            say(f"  done: fit {out.record['fit_s']:.1f} s, predict {out.record['predict_s']:.1f}"
                f" s; R-hat max {d['rhat_max']:.4f}, min bulk ESS {d['ess_bulk_min']:.0f}, "
                f"divergences {d.get('divergences', 0)}"
                + ("" if out.record["converged"] else "  [NOT CONVERGED]"))  # fmt: skip
            metrics["mixers"][entry.key] = out.metrics
            records[entry.key] = out.record
            frames.append(out.predictions)
            if out.weights is not None:
                wframes.append(out.weights)
        ds.to_frame().to_csv(tmp / "dataset.csv", index=False)
        if corrected is not None:
            corrected.to_frame().to_csv(tmp / "dataset_corrected.csv", index=False)
        pd.concat(frames, ignore_index=True).to_csv(tmp / "predictions.csv", index=False)
        if wframes:
            pd.concat(wframes, ignore_index=True).to_csv(tmp / "weights.csv", index=False)
        _write_json(tmp / "metrics.json", metrics)
        (tmp / "study.toml").write_text(st.to_toml(), "utf-8")
        if cache.get("used"):
            cache["entries_after"] = _count_entries(Path(cache["dir"]))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
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
            "corrections_s": t_corr if corrected is not None else None,
            "dataset": _dataset_record(ds),
            "corrected_dataset": _dataset_record(corrected) if corrected is not None else None,
            "mixers": records,
            "versions": package_versions(),
            "platform": platform_info(),
            "git": _git_commit(),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
            "jax_compilation_cache": cache,
            "files": {
                p.relative_to(tmp).as_posix(): {"sha256": sha256(p), "bytes": p.stat().st_size}
                for p in files
            },
        }
        _write_json(tmp / "manifest.json", manifest)
        if report:
            from .report import build_report

            t0 = time.perf_counter()
            say("writing tables, figures and report.html")
            build_report(tmp)
            say(f"  report written in {time.perf_counter() - t0:.1f} s")
        _install(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"run folder: {target} ({time.perf_counter() - t_start:.0f} s in all)")
    return load_run(target)


# ---------------------------------------------------------------------- reading runs


def check_run(path: str | Path, *, verify_hashes: bool = True) -> dict[str, Any]:
    """Check that a folder is a complete lbmm run and return its manifest.

    Every file the manifest lists must be there, with its size and (``verify_hashes``)
    sha256.

    Raises
    ------
    RunError
        Saying what is missing or wrong.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path} is not a folder")
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise RunError(
            f"{path} is not a complete lbmm run: it has no manifest.json (was the run "
            "interrupted, or is this another folder?)"
        )
    try:
        manifest = json.loads(mpath.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{mpath} is not readable JSON: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != RUN_FORMAT:
        raise RunError(f'{mpath} is not an lbmm run manifest (no "format": "{RUN_FORMAT}")')
    if manifest.get("format_version") != RUN_FORMAT_VERSION:
        raise RunError(
            f"{mpath}: run format version {manifest.get('format_version')!r}; this lbmm reads "
            f"version {RUN_FORMAT_VERSION}"
        )
    if manifest.get("complete") is not True:
        raise RunError(f"{path} is an incomplete run (manifest says complete = false)")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise RunError(f"{mpath} lists no files")
    for rel in (*RESULT_FILES, *(r["posterior"] for r in manifest.get("mixers", {}).values())):
        if rel not in files:
            raise RunError(f"{mpath} does not list {rel}: not a complete run")
    for rel, info in files.items():
        f = path / rel
        if not f.is_file():
            raise RunError(f"incomplete run {path}: {rel} (listed in manifest.json) is missing")
        if f.stat().st_size != info.get("bytes"):
            raise RunError(f"run {path}: {rel} changed since the run (size differs)")
        if verify_hashes and sha256(f) != info.get("sha256"):
            raise RunError(f"run {path}: {rel} changed since the run (sha256 differs)")
    return manifest


@dataclass(frozen=True)
class Run:
    """A finished run folder (see the module docstring for its files).

    Attributes
    ----------
    path
        The folder.
    manifest
        ``manifest.json`` as a dict.
    """

    path: Path
    manifest: Mapping[str, Any]

    @property
    def study(self) -> Study:
        """The study as run (every default explicit)."""
        return study_from_dict(self.manifest["study"], source=str(self.path / "study.toml"))

    @property
    def keys(self) -> list[str]:
        """Mixer entries in run order."""
        return list(self.manifest["mixers"])

    def posterior(self, key: str):
        """The stored :class:`~lbmm.inference.Posterior` of one mixer entry."""
        from .inference import Posterior

        if key not in self.manifest["mixers"]:
            raise RunError(f"run {self.path} has no mixer {key!r}; mixers: {self.keys}")
        return Posterior.load(self.path / self.manifest["mixers"][key]["posterior"])

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``."""
        return json.loads((self.path / "metrics.json").read_text("utf-8"))

    def predictions(self) -> pd.DataFrame:
        """``predictions.csv``: one row per nucleus of the prediction domain and mixer."""
        return pd.read_csv(self.path / "predictions.csv")

    def weights(self) -> pd.DataFrame | None:
        """``weights.csv`` (local mixers' weights per nucleus), or None without local mixers."""
        p = self.path / "weights.csv"
        return pd.read_csv(p) if p.is_file() else None

    def dataset_frame(self, corrected: bool = False) -> pd.DataFrame:
        """``dataset.csv`` (or ``dataset_corrected.csv``)."""
        name = "dataset_corrected.csv" if corrected else "dataset.csv"
        return pd.read_csv(self.path / name)

    def predict(
        self,
        nuclei: Iterable[tuple[int, int] | str],
        mixers: Iterable[str] | None = None,
        *,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Predictions at some nuclei from the stored posteriors (no sampling).

        Parameters
        ----------
        nuclei
            (Z, N) pairs or labels such as ``"132Sn"``; each must be in the run's dataset
            (the models' predictions are needed there).
        mixers
            Mixer keys; default all.
        seed
            Seed of the predictive draws; default each entry's seed + 1 (as in the run).

        Returns
        -------
        DataFrame
            One row per mixer and nucleus: mean, median, sd, 68/95 % intervals, P(y > 0).
        """
        from .predict import predict

        nuclei = list(nuclei)
        frames = []
        for key in mixers or self.keys:
            post = self.posterior(key)
            s = seed if seed is not None else int(self.manifest["mixers"][key]["seed"]) + 1
            df = predict(post, nuclei, seed=s).summary(levels=INTERVAL_LEVELS)
            df.insert(0, "mixer", key)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def load_run(path: str | Path, *, verify_hashes: bool = True) -> Run:
    """Open a run folder after checking it against its manifest (:func:`check_run`)."""
    path = Path(path)
    return Run(path, check_run(path, verify_hashes=verify_hashes))
