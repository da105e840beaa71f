"""lbmm — Bayesian mixing of imperfect models.

Layers (each imports only the ones above it): ``lbmm.data`` (tables, observables,
datasets; NumPy/pandas only), then the statistical layers built on JAX + NumPyro
(``lbmm.mixers``, ``lbmm.inference``, ``lbmm.predict``), then ``lbmm.report`` and the study
runner (``lbmm.study``, ``lbmm.run``) behind the ``lbmm`` command.

The study API is loaded on first use, so ``import lbmm`` stays light:

- :func:`run_study` — ``lbmm run``: run a study into a run folder;
- :func:`run_grid` — ``lbmm grid``: a grid of studies (subsets, seeds, priors, folds) on Dask;
- :func:`load_run` — open a run folder (checked against its manifest);
- :func:`load_flow` — a posterior handed on as a normalizing flow (``lbmm flow``);
- :func:`build_report` — ``lbmm report``: rebuild a run's tables, figures and HTML page;
- :func:`load_study`, :class:`Study` — read and validate study files.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .data import DataError, Dataset, MassTable, load_dataset, observable, read_table

__version__ = "0.1.0"

_LAZY = {
    "run_study": "lbmm.run",
    "run_grid": "lbmm.grid",
    "load_grid": "lbmm.grid",
    "load_run": "lbmm.run",
    "Run": "lbmm.run",
    "RunError": "lbmm.run",
    "build_report": "lbmm.report",
    "load_flow": "lbmm.inference.flow",
    "load_study": "lbmm.study",
    "Study": "lbmm.study",
    "StudyError": "lbmm.study",
}

__all__ = [
    "DataError",
    "Dataset",
    "MassTable",
    "Run",
    "RunError",
    "Study",
    "StudyError",
    "__version__",
    "build_report",
    "load_dataset",
    "load_flow",
    "load_grid",
    "load_run",
    "load_study",
    "observable",
    "read_table",
    "run_grid",
    "run_study",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lbmm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
