"""New measurements for a dataset: read them from a file and add them to a split.

A measurements file is a CSV with columns ``Z``, ``N`` and the observable (its name, e.g.
``S2n``, or ``y``), and optionally its uncertainty (``u`` + that name, e.g. ``uS2n``, or
``uy``), in MeV. Every row must be a nucleus of the dataset with every model's prediction
(the mixers need them there) that is not already in the split it joins; anything else is
refused with the row and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import Dataset
from .elements import label
from .errors import DataError

__all__ = ["Measurements", "add_measurements", "read_measurements"]


@dataclass(frozen=True)
class Measurements:
    """Measured values of one observable at some nuclei (MeV)."""

    Z: np.ndarray
    N: np.ndarray
    y: np.ndarray
    y_uncertainty: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.Z.size)


def read_measurements(path: str | Path, observable: str) -> Measurements:
    """Read a measurements CSV (see the module docstring).

    Raises
    ------
    DataError
        Naming the file and the column or row: a missing or unknown column, a value that is
        not a number, a non-integer Z or N, a nucleus listed twice.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, comment="#", skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path}: not a readable CSV of measurements: {err}") from err
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    value = observable if observable in cols else "y" if "y" in cols else None
    if "Z" not in cols or "N" not in cols or value is None:
        raise DataError(f"{path}: expected columns Z, N and {observable} (or y); got {cols}")
    unc = next((c for c in (f"u{value}", "uy") if c in cols), None)
    unknown = sorted(set(cols) - {"Z", "N", value, *([unc] if unc else [])})
    if unknown:
        raise DataError(f"{path}: unknown column(s) {unknown}; expected Z, N, {value}"
                        f"[, u{value}]")  # fmt: skip
    out = {}
    for c in ("Z", "N", value, *([unc] if unc else [])):
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{path}, row {i + 2}: column {c}: expected a number, got "
                            f"{df[c].iloc[i]!r}")  # fmt: skip
        out[c] = v
    for c in ("Z", "N"):
        bad = np.flatnonzero((out[c] != np.round(out[c])) | (out[c] < 0))
        if bad.size:
            raise DataError(f"{path}, row {int(bad[0]) + 2}: {c} must be a whole number >= 0")
    z, n = out["Z"].astype(np.int64), out["N"].astype(np.int64)
    dup = pd.Series(z * 100_000 + n).duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        raise DataError(f"{path}, row {i + 2}: {label(z[i], n[i])} is listed twice")
    if unc and (out[unc] < 0).any():
        i = int(np.argmax(out[unc] < 0))
        raise DataError(f"{path}, row {i + 2}: {unc} must be >= 0")
    u = out[unc] if unc else np.zeros(z.size)
    if z.size == 0:
        raise DataError(f"{path}: no measurements")
    return Measurements(z, n, out[value], u, str(path))


def add_measurements(
    ds: Dataset,
    new: Measurements,
    *,
    split: str = "train",
    leave: Iterable[str] = ("test",),
) -> tuple[Dataset, dict]:
    """The dataset with new measurements in ``split``.

    Each nucleus takes the new value (replacing a value it had, e.g. as a test nucleus) and
    joins ``split``; it leaves the splits named in ``leave`` (a nucleus measured now is no
    longer a test of extrapolation).

    Returns
    -------
    (Dataset, record)
        The record: how many were added, how many left each split, and the source.

    Raises
    ------
    DataError
        For a nucleus that is not in the dataset, lacks a model's prediction, or is already
        in ``split`` (naming the row of the file).
    """
    where = f"{new.source}, " if new.source else ""
    pos = {(int(z), int(n)): i for i, (z, n) in enumerate(zip(ds.Z, ds.N, strict=True))}
    members = set(ds.split_indices(split).tolist())
    idx = []
    for r, (z, n) in enumerate(zip(new.Z.tolist(), new.N.tolist(), strict=True)):
        i = pos.get((z, n))
        row = f"{where}row {r + 2} ({label(z, n)})"
        if i is None:
            raise DataError(
                f"{row}: not a nucleus of dataset {ds.name!r} (its nuclei are the ones with "
                "every model's prediction; lbmm data lists them)"
            )
        if not np.isfinite(ds.F[i]).all():
            missing = [m for m, f in zip(ds.models, ds.F[i], strict=True) if not np.isfinite(f)]
            raise DataError(f"{row}: no prediction of {missing} there")
        if i in members:
            raise DataError(f"{row}: already in the {split!r} split")
        idx.append(i)
    idx = np.asarray(idx, np.int64)
    y, u, est = ds.y.copy(), ds.y_uncertainty.copy(), ds.y_estimated.copy()
    y[idx], u[idx], est[idx] = new.y, new.y_uncertainty, False
    splits = {k: np.asarray(v) for k, v in ds.splits.items()}
    record = {"source": new.source, "added": int(idx.size), "split": split, "left": {}}
    for s in leave:
        if s in splits:
            before = splits[s]
            splits[s] = np.setdiff1d(before, idx)
            record["left"][s] = int(before.size - splits[s].size)
    splits[split] = np.union1d(splits[split], idx)
    note = (f"{idx.size} measurements added to {split!r}" + (f" from {new.source}" if new.source
            else "") + "".join(f"; {k} of them were in {s!r}" for s, k in record["left"].items()
                               if k))  # fmt: skip
    out = Dataset.from_arrays(ds.name, ds.observable, ds.models, ds.Z, ds.N, y, ds.F,
                              y_uncertainty=u, y_estimated=est, splits=splits,
                              provenance=dict(ds.provenance), notes=(*ds.notes, note))  # fmt: skip
    return out, record
