"""Data layer: mass tables, observables, datasets and built-in recipes (NumPy/pandas only)."""

from .dataset import (
    Dataset,
    Rule,
    all_models_available,
    even_even,
    measured_only,
    n_greater_than_z,
    n_range,
    observed,
    y_positive,
    z_range,
)
from .elements import label, parse_label
from .errors import DataError
from .observables import OBSERVABLES, Observable, observable
from .recipes import (
    DEFAULT_MODELS,
    DISPLAY_NAMES,
    EVIDENCE_NUCLEI,
    KEJZLAR2023_MODELS,
    RECIPES,
    default_data_dir,
    evaluation_dataset,
    known_tables,
    load_dataset,
)
from .tables import (
    MassTable,
    Provenance,
    masstable_names,
    read_ame,
    read_csv,
    read_massexplorer,
    read_masstable,
    read_table,
)

__all__ = [
    "DEFAULT_MODELS",
    "DISPLAY_NAMES",
    "EVIDENCE_NUCLEI",
    "KEJZLAR2023_MODELS",
    "OBSERVABLES",
    "RECIPES",
    "DataError",
    "Dataset",
    "MassTable",
    "Observable",
    "Provenance",
    "Rule",
    "all_models_available",
    "default_data_dir",
    "evaluation_dataset",
    "even_even",
    "known_tables",
    "label",
    "load_dataset",
    "masstable_names",
    "measured_only",
    "n_greater_than_z",
    "n_range",
    "observable",
    "observed",
    "parse_label",
    "read_ame",
    "read_csv",
    "read_massexplorer",
    "read_masstable",
    "read_table",
    "y_positive",
    "z_range",
]
