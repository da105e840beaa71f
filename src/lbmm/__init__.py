"""lbmm — Bayesian mixing of imperfect models.

Layers (each imports only the ones above it): ``lbmm.data`` (tables, observables,
datasets; NumPy/pandas only), then the statistical layers built on JAX + NumPyro.
"""

from .data import DataError, Dataset, MassTable, load_dataset, observable, read_table

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Dataset",
    "MassTable",
    "__version__",
    "load_dataset",
    "observable",
    "read_table",
]
