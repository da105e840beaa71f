"""Study grids: one base study, axes to vary, every cell a run folder; Dask runs the cells.

A grid file (TOML) names a base study and the axes to vary::

    name = "subsets"
    study = "kejzlar2023"            # a built-in study or a study file (relative to this file)
    output = "grids/subsets"         # default grids/NAME

    [base]                           # applied to the base study first (like lbmm run's options)
    mixers = ["linear"]              # keep these entries
    sampling = { num_samples = 500 }

    [axes]                           # every combination of the values is one cell
    seed = [0, 1, 2]
    models = [["FRDM12", "HFB24"], ["SKMS", "SKP", "SLY4"]]   # or { size = 2 }: every pair
    prior_scale = [0.5, 1.0, 2.0]    # every prior with a scale made c times wider (applied
                                     # after the other axes: priors.X values are scaled too)
    fold = ["neutron_rich", "regions"]   # one cell per fold: train on it, test on its held-out
    "options.noise" = ["constant", "spread"]
    "sampling.target_accept" = [0.9, 0.95]
    "priors.sigma" = ["Gamma(5, 10)", "Gamma(5, 5)"]

Each cell is a complete study (its ``study.toml`` says everything), run by
:func:`lbmm.run.run_study` into ``GRID/cells/ID`` (written atomically; ID is the start of the
sha256 of the cell's study). :func:`run_grid` sends the cells to a Dask cluster — a
``LocalCluster`` with one single-threaded worker process per core by default, or an existing
scheduler by address — skips cells whose folder already holds the same study (a grid can be
resumed), and writes ``results.csv`` (every cell × mixer × split: the metrics and convergence
diagnostics, nothing that depends on timing or placement), ``manifest.json`` (cells, where and
how long each ran, versions) and ``report.html``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ._util import atomic_write_text, write_json
from .data.errors import InputError
from .study import Study, load_study, scale_prior, study_from_dict

__all__ = [
    "GRID_FORMAT",
    "Cell",
    "Grid",
    "GridError",
    "GridResult",
    "grid_from_dict",
    "load_grid",
    "load_grid_result",
    "read_grid_file",
    "results_table",
    "run_grid",
]

GRID_FORMAT = "lbmm-grid"
GRID_FORMAT_VERSION = 1
AXES = ("seed", "models", "mixers", "prior_scale", "fold")
"""Axes by name; besides these, ``options.NAME``, ``sampling.NAME`` and ``priors.NAME``."""
_PREFIXED = ("options.", "sampling.", "priors.")
_TOP = ("name", "description", "study", "output", "report", "base", "axes")
_BASE = ("mixers", "sampling", "seed", "folds", "data_dir", "max_draws")

#: Environment of the worker processes of the default LocalCluster: one thread each (the
#: cluster, not XLA, uses the cores), JAX on one host device.
WORKER_ENV = {
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false --xla_force_host_platform_device_count=1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


class GridError(InputError):
    """A bad grid file or grid folder, or cells that failed on bad input."""


@dataclass(frozen=True)
class Cell:
    """One cell of a grid: the axis values and the complete study they make."""

    id: str
    axes: Mapping[str, str]
    study: Mapping[str, Any]
    digest: str


@dataclass(frozen=True)
class Grid:
    """A validated grid: its name, base study, axes and the cells they make."""

    name: str
    description: str
    base: Study
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    cells: tuple[Cell, ...]
    output: str
    report: bool = False
    source: str = "<dict>"
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridResult:
    """A finished grid: its folder, the results table and the manifest."""

    path: Path
    results: pd.DataFrame
    manifest: Mapping[str, Any]


# ---------------------------------------------------------------------- reading a grid


def _fail(source: str, key: str, what: str) -> None:
    raise GridError(f"{source}: {key} {what}")


def _digest(study: Mapping[str, Any]) -> str:
    plain = {k: v for k, v in study.items() if k != "output"}
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()


def _show(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "+".join(str(x) for x in v)
    return str(v)


def _model_values(source: str, spec: Any, models: Sequence[str]) -> list[tuple[str, ...]]:
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"size", "of"}
        if unknown:
            _fail(source, f"axes.models.{sorted(unknown)[0]}", "is not known (size, of)")
        pool = spec.get("of", list(models))
        size = spec.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= len(pool):
            _fail(source, "axes.models.size", f"must be an integer from 1 to {len(pool)}")
        values = [tuple(c) for c in itertools.combinations(pool, size)]
    elif isinstance(spec, list) and spec and all(isinstance(v, list) for v in spec):
        values = [tuple(v) for v in spec]
    else:
        _fail(source, "axes.models", "must be a list of model lists or { size = k }")
    for v in values:
        bad = [m for m in v if m not in models]
        if bad or not v:
            _fail(source, "axes.models", f"names no model {bad[0] if bad else '(empty)'!r}; "
                  f"the dataset's models: {list(models)}")  # fmt: skip
    return values


def _entry_priors(entry: Mapping[str, Any]) -> dict[str, Any]:
    from .mixers import get_mixer

    spec = get_mixer(entry["mixer"])
    out = dict(spec.default_priors(entry["options"]))
    out.update(entry["priors"])
    return out


def _apply(raw: dict[str, Any], axis: str, value: Any, ctx: _Context, source: str) -> None:
    """Set one axis value in a study's plain data (in place)."""
    mixers = raw["mixers"]
    if axis == "seed":
        raw["seed"] = value
        for m in mixers:
            m["seed"] = value
    elif axis == "models":
        raw["data"]["models"] = list(value)
    elif axis == "mixers":
        keys = [value] if isinstance(value, str) else list(value)
        by_key = {m["key"]: m for m in mixers}
        raw["mixers"] = [by_key[k] for k in keys]
    elif axis == "prior_scale":
        for m in mixers:
            scaled = {}
            for name, prior in _entry_priors(m).items():
                try:
                    text = scale_prior(prior, float(value))
                except ValueError as err:
                    _fail(source, "axes.prior_scale", f"cannot scale prior {name!r} of entry "
                          f"{m['key']!r}: {err}")  # fmt: skip
                if text is not None:
                    scaled[name] = text
            m["priors"] = {**m["priors"], **scaled}
    elif axis == "fold":
        raw["data"]["splits"] = {**raw["data"].get("splits", {}), **ctx.fold_splits[value]}
    else:
        table, name = axis.split(".", 1)
        for m in mixers:
            if table == "sampling":
                m["sampling"][name] = value
            elif table == "options" and name in ctx.option_names(m["mixer"]):
                m["options"] = {**m["options"], name: value}
            elif table == "priors" and name in ctx.prior_names(m):
                m["priors"] = {**m["priors"], name: value}
        if table == "sampling":
            raw["sampling"][name] = value


@dataclass
class _Context:
    models: tuple[str, ...]
    fold_splits: dict[str, dict[str, list[str]]]

    @staticmethod
    def option_names(mixer: str) -> set[str]:
        from .mixers import get_mixer

        return set(dict(get_mixer(mixer).defaults))

    @staticmethod
    def prior_names(entry: Mapping[str, Any]) -> set[str]:
        from .mixers import get_mixer

        return set(get_mixer(entry["mixer"]).known_priors(entry["options"]))


def _fold_values(source: str, kinds: Any, base: Study, ds) -> tuple[list[str], dict]:
    from .data import FOLD_KINDS, apply_fold, make_folds

    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        _fail(source, "axes.fold", f"must be a list of fold kinds {list(FOLD_KINDS)}")
    names, splits = [], {}
    for kind in kinds:
        if kind not in FOLD_KINDS:
            _fail(source, "axes.fold", f"names no fold kind {kind!r}; known: {list(FOLD_KINDS)}")
        for fold in make_folds(ds, kind, seed=base.seed):
            fd = apply_fold(ds, fold)
            names.append(fold.name)
            splits[fold.name] = {
                s: [fd.labels[i] for i in fd.split_indices(s)] for s in fd.splits if s != "domain"
            }
    return names, splits


def _base_study(source: str, spec: Mapping[str, Any], anchor: Path) -> Study:
    ref = spec.get("study")
    if not isinstance(ref, str) or not ref:
        _fail(source, "study", "is required: a built-in study name or a study file")
    path = anchor / ref
    st = load_study(path if ref.endswith(".toml") else ref)
    base = spec.get("base", {})
    if not isinstance(base, Mapping):
        _fail(source, "base", "must be a table")
    unknown = sorted(set(base) - set(_BASE))
    if unknown:
        _fail(source, f"base.{unknown[0]}", f"is not known; known: {list(_BASE)}")
    sampling = base.get("sampling")
    if sampling is not None and not isinstance(sampling, Mapping):
        _fail(source, "base.sampling", "must be a table of sampling settings")
    data_dir = base.get("data_dir")
    if data_dir is not None:
        data_dir = str((anchor / str(data_dir)).absolute())
    st = st.with_overrides(
        seed=base.get("seed"),
        sampling=dict(sampling or {}),
        mixers=base.get("mixers"),
        folds=base.get("folds"),
        data_dir=data_dir,
    )
    if "max_draws" in base:
        raw = st.to_dict()
        raw["predict"]["max_draws"] = base["max_draws"]
        st = study_from_dict(raw, source=st.source)
    return st


def grid_from_dict(
    spec: Mapping[str, Any], *, source: str = "<dict>", anchor: str | Path = "."
) -> Grid:
    """Validate a grid (plain data, as read from TOML) and make its cells.

    Raises
    ------
    GridError, StudyError, DataError
        Naming the key and what was expected; a cell whose study does not validate names
        the cell's axis values.
    """
    from .run import build_dataset

    anchor = Path(anchor)
    unknown = sorted(set(spec) - set(_TOP))
    if unknown:
        _fail(source, unknown[0], f"is not a grid setting; known: {list(_TOP)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        _fail(source, "name", "is required (text)")
    base = _base_study(source, spec, anchor)
    axes_raw = spec.get("axes", {})
    if not isinstance(axes_raw, Mapping) or not axes_raw:
        _fail(source, "axes", "must be a table with at least one axis")
    ds = None
    if "models" in axes_raw or "fold" in axes_raw:
        ds = build_dataset(base)
    ctx = _Context(models=tuple(ds.models) if ds is not None else (), fold_splits={})
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for axis, values in axes_raw.items():
        if axis not in AXES and not axis.startswith(_PREFIXED):
            known = [*AXES, "options.NAME", "sampling.NAME", "priors.NAME"]
            _fail(source, f"axes.{axis}", f"is not an axis; axes: {known}")
        if axis == "models":
            values = _model_values(source, values, ctx.models)
        elif axis == "fold":
            values, ctx.fold_splits = _fold_values(source, values, base, ds)
        elif not isinstance(values, list) or not values:
            _fail(source, f"axes.{axis}", "must be a non-empty list of values")
        if axis == "fold" and base.validation.folds:
            _fail(source, "axes.fold", "and base.folds (validation folds inside every cell) "
                  "cannot go together: the cells' split names would collide")  # fmt: skip
        if axis == "mixers":
            for v in values:
                if not (
                    isinstance(v, str)
                    or (isinstance(v, list) and v and all(isinstance(k, str) for k in v))
                ):
                    _fail(
                        source, "axes.mixers", f"must hold entry keys or lists of them, got {v!r}"
                    )
                for k in [v] if isinstance(v, str) else v:
                    if k not in base.keys:
                        _fail(source, "axes.mixers", f"names no entry {k!r}; entries: {base.keys}")
        if axis == "prior_scale":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    _fail(source, "axes.prior_scale", f"must hold positive numbers, got {v!r}")
        if axis.startswith(("options.", "priors.")):
            table, opt = axis.split(".", 1)
            entries = base.to_dict()["mixers"]
            if table == "options" and not any(opt in ctx.option_names(m["mixer"]) for m in entries):
                _fail(source, f"axes.{axis}", f"is not an option of any entry ({base.keys})")
            if table == "priors" and not any(opt in ctx.prior_names(m) for m in entries):
                _fail(source, f"axes.{axis}", f"is not a prior of any entry ({base.keys})")
        if len(set(map(_canonical, values))) != len(values):
            _fail(source, f"axes.{axis}", "repeats a value")
        axes.append((axis, tuple(values)))
    output = spec.get("output", f"grids/{name}")
    if not isinstance(output, str):
        _fail(source, "output", "must be a path (text)")
    report = spec.get("report", False)
    if not isinstance(report, bool):
        _fail(source, "report", "must be true or false (an HTML report in every cell)")
    cells = []
    for combo in itertools.product(*(v for _, v in axes)):
        raw = base.to_dict()
        values = dict(zip((a for a, _ in axes), combo, strict=True))
        # prior_scale last: it scales the priors the other axes chose (noise model, priors.X)
        for axis in sorted(values, key=lambda a: a == "prior_scale"):
            _apply(raw, axis, values[axis], ctx, source)
        shown = {a: _show(v) for a, v in values.items()}
        raw["output"] = "cell"  # each cell's folder is GRID/cells/ID (set below)
        where = ", ".join(f"{a}={v}" for a, v in shown.items())
        try:
            st = study_from_dict(raw, source=f"{source} (cell {where})")
        except InputError as err:
            raise GridError(str(err)) from err
        plain = st.to_dict()
        digest = _digest(plain)
        plain["output"] = f"cells/{digest[:12]}"
        cells.append(Cell(id=digest[:12], axes=shown, study=plain, digest=digest))
    ids = [c.id for c in cells]
    if len(set(ids)) != len(ids):
        _fail(source, "axes", "make two cells with the same study (an axis changes nothing)")
    return Grid(
        name=name,
        description=str(spec.get("description", "")),
        base=base,
        axes=tuple(axes),
        cells=tuple(cells),
        output=output,
        report=report,
        source=source,
        spec=dict(spec),
    )


def _canonical(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def load_grid(grid: str | Path | Mapping[str, Any]) -> Grid:
    """Read and validate a grid file (or plain data). A relative ``study`` file and
    ``base.data_dir`` are taken from the file's folder; ``output`` from the working directory,
    as a study's is."""
    spec, source, anchor = read_grid_file(grid)
    return grid_from_dict(spec, source=source, anchor=anchor)


def read_grid_file(grid: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str, Path]:
    """A grid file's plain data, its name for messages and the folder relative paths are
    taken from (plain data passes through, from the working directory)."""
    if isinstance(grid, Mapping):
        return dict(grid), "<dict>", Path(".")
    path = Path(grid)
    try:
        spec = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError as err:
        raise GridError(f"{path}: no such grid file") from err
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise GridError(f"{path}: not a readable TOML file: {err}") from err
    return spec, str(path), path.parent


# ---------------------------------------------------------------------- one cell


def _cell_rows(run, cell: Cell) -> list[dict[str, Any]]:
    """The results rows of a finished cell: one per mixer entry and split (test, folds)."""
    rows = []
    cols = ("n", "rms", "rms_median", "crps", "mlpd", "ecp_mean_abs", "ecp_max_abs",
            "pit_ks_p", "pit_sd", "outside_95", "interval_score_95")  # fmt: skip
    for key, m in run.metrics()["mixers"].items():
        rec = run.manifest["mixers"][key]
        d = rec.get("diagnostics", {})
        common = {"cell": cell.id, **cell.axes, "entry": key, "mixer": m["mixer"],
                  "label": m["label"]}  # fmt: skip
        diag = {
            "rhat_max": d.get("rhat_max"),
            "ess_bulk_min": d.get("ess_bulk_min"),
            "divergences": d.get("divergences"),
            "converged": rec.get("converged"),
        }
        # a fold cell's test split is its fold's held-out nuclei: named so in the table
        test = cell.axes.get("fold", "test")
        splits = {test: m.get("test")} if m.get("test") else {}
        splits.update(m.get("folds", {}))
        for split, sc in splits.items():
            cov = dict(zip(sc["ecp"]["levels"], sc["ecp"]["coverage"], strict=True))
            rows.append({**common, "split": split, **{c: sc.get(c) for c in cols},
                         "ecp_90": cov.get(0.9), "ecp_95": cov.get(0.95), **diag})  # fmt: skip
    return rows


def _clean_partials(folder: Path) -> int:
    """Remove the partial folders a dead attempt at this cell left; how many there were."""
    found = [*folder.parent.glob(f".{folder.name}.partial-*"),
             *folder.parent.glob(f".{folder.name}.old-*")]  # fmt: skip
    for p in found:
        shutil.rmtree(p, ignore_errors=True)
    return len(found)


def _done(folder: Path, digest: str) -> bool:
    from .results import RunError, check_run

    try:
        man = check_run(folder, verify_hashes=False)
    except RunError:
        return False
    return (man.get("grid") or {}).get("digest") == digest


def run_cell(
    cell: Cell, folder: str | Path, grid_name: str, *, report: bool = False,
    cache_dir: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run one cell into its folder (on a worker): the study, atomically, then its rows.

    A partial folder left by an earlier attempt that was killed is removed first.
    """
    from .run import run_study

    folder = Path(folder)
    t0 = time.perf_counter()
    cleared = _clean_partials(folder)
    st = study_from_dict(cell.study, source=f"grid {grid_name}, cell {cell.id}")
    grid_record = {"name": grid_name, "cell": cell.id, "digest": cell.digest,
                   "axes": dict(cell.axes)}  # fmt: skip
    run = run_study(
        st,
        output=folder,
        overwrite=True,
        report=report,
        cache_dir=cache_dir,
        manifest_extra={"grid": grid_record},
    )
    return {"rows": _cell_rows(run, cell), "wall_s": time.perf_counter() - t0,
            "worker": _worker_name(), "pid": os.getpid(), "cleared_partials": cleared}  # fmt: skip


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


# ---------------------------------------------------------------------- the cluster


def _client(scheduler: str | None, n_workers: int | None):
    """A Dask client: to ``scheduler`` (or ``$DASK_SCHEDULER_ADDRESS``), else to a new
    LocalCluster (returned too, to be closed)."""
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:
            return Client(address, timeout="30s"), None
        except OSError as err:
            raise GridError(f"cannot reach the Dask scheduler at {address}: {err}") from err
    n = n_workers or os.cpu_count() or 1
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: never a clash with another cluster
        env=WORKER_ENV,
    )
    return Client(cluster), cluster


# ---------------------------------------------------------------------- the grid


def results_table(rows: Sequence[Mapping[str, Any]], grid: Grid) -> pd.DataFrame:
    """Rows in grid order (cells as the axes make them, entries in study order)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return df
    order = {c.id: i for i, c in enumerate(grid.cells)}
    df["_o"] = df["cell"].map(order)
    df = df.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)
    return df


@contextmanager
def _locked(folder: Path):
    """Hold ``folder/.lock`` (an advisory lock) while a grid writes there: a second
    ``lbmm grid`` on the same folder is refused instead of sweeping the first one's work."""
    import fcntl

    fh = open(folder / ".lock", "a")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise GridError(f"{folder}: another lbmm grid is writing there") from err
        yield
    finally:
        fh.close()


def _grid_manifest(path: Path) -> dict[str, Any]:
    """A grid folder's manifest, checked to be one."""
    man = path / "manifest.json"
    try:
        m = json.loads(man.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise GridError(f"{path} is not a finished lbmm grid: {man}: {err}") from err
    if not isinstance(m, dict) or m.get("format") != GRID_FORMAT:
        raise GridError(f"{path} holds another kind of folder ({man} is no grid manifest)")
    return m


def _check_folder(path: Path, name: str) -> None:
    if not path.exists() or (path.is_dir() and not any(p.name != ".lock" for p in path.iterdir())):
        return
    if not path.is_dir():
        raise GridError(f"{path} exists and is not a folder")
    if (path / "manifest.json").is_file():
        m = _grid_manifest(path)
        if m.get("name") != name:
            raise GridError(f"{path} holds grid {m.get('name')!r}, not {name!r}; use --out")
    elif not (path / "cells").is_dir():
        raise GridError(f"{path} exists and is not an lbmm grid folder; refusing to write there")


def run_grid(
    grid: str | Path | Grid,
    *,
    output: str | Path | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    resume: bool = True,
    retries: int = 1,
    cache_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    on_cell: Callable[[int, int], None] | None = None,
    report: bool = True,
) -> GridResult:
    """Run every cell of a grid on a Dask cluster and write the grid folder.

    Parameters
    ----------
    grid
        A grid file or a :class:`Grid`.
    output
        The grid folder; default the grid's ``output``.
    scheduler
        Address of a running Dask scheduler (``tcp://HOST:PORT``); default
        ``$DASK_SCHEDULER_ADDRESS``, else a new ``LocalCluster`` with ``n_workers``
        single-threaded worker processes (default one per core).
    resume
        Skip cells whose folder already holds a complete run of the same study.
    retries
        Times a cell that raised is tried again (a cell whose worker died is rescheduled by
        Dask anyway, up to its ``allowed-failures``).
    cache_dir
        JAX compilation cache shared by the workers (see
        :func:`lbmm.run.enable_compilation_cache`).
    progress, on_cell
        Called with a line of text per step; with (cells done, cells in all).
    report
        Write the grid's ``report.html``.

    Returns
    -------
    GridResult

    Raises
    ------
    GridError
        For a bad grid or folder, or when cells failed on bad input (the others are kept,
        the table lists them; the manifest says which failed and why). A cell that failed on
        a bug re-raises its exception, after the grid's files are written.
    """
    from asyncio import CancelledError

    from distributed import as_completed

    from .run import _now, package_versions, platform_info

    say = progress or (lambda _: None)
    g = grid if isinstance(grid, Grid) else load_grid(grid)
    target = Path(output if output is not None else g.output).expanduser().absolute()
    _check_folder(target, g.name)
    target.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        cells_dir = target / "cells"
        cells_dir.mkdir(parents=True, exist_ok=True)
        started, t0 = _now(), time.perf_counter()
        status: dict[str, dict[str, Any]] = {}
        rows: list[dict[str, Any]] = []
        todo = []
        for c in g.cells:
            folder = cells_dir / c.id
            if resume and _done(folder, c.digest):
                from .run import load_run

                rows.extend(_cell_rows(load_run(folder, verify_hashes=False), c))
                status[c.id] = {"status": "skipped", "why": "its folder holds this study"}
            else:
                todo.append(c)
        say(f"grid {g.name}: {len(g.cells)} cells ({len(g.cells) - len(todo)} done before), "
            f"axes {', '.join(f'{a} ({len(v)})' for a, v in g.axes)}")  # fmt: skip
        engine: dict[str, Any] = {}
        errors: list[tuple[Cell, BaseException]] = []
        if todo:
            client, cluster = _client(scheduler, n_workers)
            try:
                link = getattr(client, "dashboard_link", None)
                engine = {
                    "scheduler": client.scheduler.address,
                    "cluster": "LocalCluster" if cluster is not None else "external",
                    "workers": len(client.scheduler_info().get("workers", {})),
                }
                board = f"; dashboard {link}" if link else ""
                say(f"Dask: {engine['cluster']} at {engine['scheduler']}, "
                    f"{engine['workers']} workers{board}")  # fmt: skip
                cache = str(Path(cache_dir).absolute()) if cache_dir else None
                futures = {}
                for c in todo:
                    fut = client.submit(
                        run_cell, c, str(cells_dir / c.id), g.name, report=g.report,
                        cache_dir=cache, key=f"lbmm-cell-{c.id}-{time.time_ns()}", pure=False,
                        retries=retries,
                    )  # fmt: skip
                    futures[fut] = c
                done = len(g.cells) - len(todo)
                if on_cell:
                    on_cell(done, len(g.cells))
                for fut in as_completed(list(futures)):
                    c = futures[fut]
                    done += 1
                    try:
                        out = fut.result()
                    except (Exception, CancelledError) as err:  # recorded, then raised below
                        errors.append((c, err))
                        status[c.id] = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
                        say(f"[{done}/{len(g.cells)}] cell {c.id} FAILED: {err}")
                    else:
                        rows.extend(out["rows"])
                        kept = ("wall_s", "worker", "pid", "cleared_partials")
                        status[c.id] = {"status": "ran", **{k: out[k] for k in kept}}
                        say(f"[{done}/{len(g.cells)}] cell {c.id} "
                            f"({', '.join(f'{a}={v}' for a, v in c.axes.items())}) in "
                            f"{out['wall_s']:.0f} s on {out['worker']}")  # fmt: skip
                    if on_cell:
                        on_cell(done, len(g.cells))
            finally:
                client.close()
                if cluster is not None:  # its workers are gone: nothing of theirs is in flight
                    cluster.close()
                    for c in g.cells:
                        _clean_partials(cells_dir / c.id)
        for c in g.cells:  # every cell has finished or failed: partial folders are dead ones
            _clean_partials(cells_dir / c.id)
        table = results_table(rows, g)
        atomic_write_text(target / "results.csv", table.to_csv(index=False))
        atomic_write_text(target / "grid.toml", _grid_toml(g))
        manifest = {
            "format": GRID_FORMAT,
            "format_version": GRID_FORMAT_VERSION,
            "name": g.name,
            "description": g.description,
            "source": g.source,
            "base_study": g.base.to_dict(),
            "axes": {a: [_show(v) for v in vals] for a, vals in g.axes},
            "cells": {c.id: _cell_record(c, status.get(c.id, {})) for c in g.cells},
            "engine": engine,
            "started": started,
            "finished": _now(),
            "wall_s": time.perf_counter() - t0,
            "versions": package_versions(),
            "platform": platform_info(),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        }
        if report and not table.empty:
            from .report.grid import grid_report

            grid_report(target, table, manifest)
        write_json(target / "manifest.json", manifest)
        say(f"grid folder: {target} ({time.perf_counter() - t0:.0f} s)")
        bugs = [e for _, e in errors if not isinstance(e, InputError)]
        if bugs:
            raise bugs[0]
        if errors:
            lines = "; ".join(
                f"cell {c.id} ({_show(list(c.axes.values()))}): {e}" for c, e in errors
            )
            raise GridError(f"{len(errors)} of {len(g.cells)} cells failed: {lines}")
        return GridResult(path=target, results=table, manifest=manifest)


def _cell_record(c: Cell, status: Mapping[str, Any]) -> dict[str, Any]:
    return {"axes": dict(c.axes), "digest": c.digest, "folder": f"cells/{c.id}", **status}


def _grid_toml(g: Grid) -> str:
    from .study import dumps_toml

    spec = {k: v for k, v in g.spec.items()}
    return f"# lbmm grid {g.name!r} as run\n" + dumps_toml(spec)


def load_grid_result(path: str | Path) -> GridResult:
    """Open a finished grid folder (its results table and manifest)."""
    path = Path(path)
    m = _grid_manifest(path)
    text = {c: str for c in ("cell", *m.get("axes", {}))}  # IDs and axis values stay text
    return GridResult(path=path, results=pd.read_csv(path / "results.csv", dtype=text), manifest=m)
