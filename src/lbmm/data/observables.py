"""Observables derived from binding energies.

Each observable is a difference of binding energies (MeV) at neighbouring nuclei:

======  ===========================================  ===========================
name    definition                                   nuclei used
======  ===========================================  ===========================
S2n     BE(Z, N) − BE(Z, N−2)                        (Z, N), (Z, N−2)
S2p     BE(Z, N) − BE(Z−2, N)                        (Z, N), (Z−2, N)
Sn      BE(Z, N) − BE(Z, N−1)                        (Z, N), (Z, N−1)
Sp      BE(Z, N) − BE(Z−1, N)                        (Z, N), (Z−1, N)
Qa      BE(Z−2, N−2) + BE(⁴He) − BE(Z, N)            (Z, N), (Z−2, N−2)
BE/A    BE(Z, N) / (Z + N)                           (Z, N)
======  ===========================================  ===========================

Uncertainties are propagated as if the binding energies were independent (quadrature
sum; BE(⁴He) is taken as exact), and ``estimated`` is set when any binding energy used is
estimated. A value exists only where every nucleus it needs is in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError
from .tables import MassTable

__all__ = ["BE_HE4", "DERIVED", "OBSERVABLES", "Observable", "linear_terms", "observable"]

BE_HE4 = 28.295674  # MeV, AME2020

# name -> (list of (dZ, dN, coefficient)), constant term
_LINEAR: dict[str, tuple[tuple[tuple[int, int, float], ...], float]] = {
    "S2n": (((0, 0, 1.0), (0, -2, -1.0)), 0.0),
    "S2p": (((0, 0, 1.0), (-2, 0, -1.0)), 0.0),
    "Sn": (((0, 0, 1.0), (0, -1, -1.0)), 0.0),
    "Sp": (((0, 0, 1.0), (-1, 0, -1.0)), 0.0),
    "Qa": (((-2, -2, 1.0), (0, 0, -1.0)), BE_HE4),
}
OBSERVABLES: tuple[str, ...] = (*_LINEAR, "BE/A", "BE")
#: Observables that are linear combinations of binding energies (derivable from BE draws).
DERIVED: tuple[str, ...] = tuple(_LINEAR)
_ALIASES = {s.lower(): s for s in OBSERVABLES} | {"qalpha": "Qa", "q_alpha": "Qa", "bea": "BE/A"}


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Observable:
    """Values of one observable on a set of nuclei, from one table.

    Attributes
    ----------
    name
        Observable name (``"S2n"``, ...).
    table
        Name of the mass table it was computed from.
    Z, N, value, uncertainty, estimated
        One entry per nucleus, sorted by (Z, N); values and uncertainties in MeV.
    """

    name: str
    table: str
    Z: np.ndarray
    N: np.ndarray
    value: np.ndarray
    uncertainty: np.ndarray
    estimated: np.ndarray

    def __len__(self) -> int:
        return int(self.value.shape[0])

    def to_series(self) -> pd.Series:
        """Values as a Series indexed by (Z, N)."""
        idx = pd.MultiIndex.from_arrays([self.Z, self.N], names=["Z", "N"])
        return pd.Series(self.value, index=idx, name=f"{self.name}({self.table})")

    def to_frame(self) -> pd.DataFrame:
        """Value, uncertainty and estimated flag indexed by (Z, N)."""
        idx = pd.MultiIndex.from_arrays([self.Z, self.N], names=["Z", "N"])
        return pd.DataFrame(
            {"value": self.value, "uncertainty": self.uncertainty, "estimated": self.estimated},
            index=idx,
        )


def linear_terms(name: str) -> tuple[tuple[tuple[int, int, float], ...], float]:
    """An observable as a combination of binding energies: ((dZ, dN, coefficient), ...) and
    a constant, so that y(Z, N) = Σ c · BE(Z + dZ, N + dN) + constant.

    Raises
    ------
    DataError
        For a name that is not such a combination (``BE``, ``BE/A``, unknown names).
    """
    canon = canonical_name(name)
    if canon not in _LINEAR:
        raise DataError(
            f"observable {name!r} is not a combination of binding energies; expected one of "
            f"{list(_LINEAR)}"
        )
    return _LINEAR[canon]


def canonical_name(name: str) -> str:
    """The canonical spelling of an observable name (``"s2n"`` → ``"S2n"``)."""
    key = name.strip().lower()
    if key not in _ALIASES:
        raise DataError(f"unknown observable {name!r}; expected one of {list(OBSERVABLES)}")
    return _ALIASES[key]


def observable(table: MassTable, name: str = "S2n") -> Observable:
    """Compute an observable from a mass table.

    Parameters
    ----------
    table
        Binding energies in MeV.
    name
        One of ``S2n, S2p, Sn, Sp, Qa, BE/A, BE`` (case-insensitive).

    Returns
    -------
    Observable
        Defined at every nucleus of the table whose needed neighbours are in the table too.
    """
    name = canonical_name(name)
    z, n = table.Z, table.N
    if name in ("BE/A", "BE"):
        a = np.maximum(z + n, 1) if name == "BE/A" else np.ones_like(z)
        return Observable(
            name,
            table.name,
            _frozen(z),
            _frozen(n),
            _frozen(table.BE / a),
            _frozen(table.uncertainty / a),
            _frozen(table.estimated),
        )
    terms, const = _LINEAR[name]
    lookup = {(zi, ni): i for i, (zi, ni) in enumerate(zip(z.tolist(), n.tolist(), strict=True))}
    value = np.full(len(table), const)
    var = np.zeros(len(table))
    est = np.zeros(len(table), bool)
    ok = np.ones(len(table), bool)
    for dz, dn, coef in terms:
        idx = np.array([lookup.get((zi + dz, ni + dn), -1) for zi, ni in zip(z, n, strict=True)])
        found = idx >= 0
        ok &= found
        safe = np.where(found, idx, 0)
        value += coef * table.BE[safe]
        var += (coef * table.uncertainty[safe]) ** 2
        est |= table.estimated[safe]
    return Observable(
        name,
        table.name,
        _frozen(z[ok]),
        _frozen(n[ok]),
        _frozen(value[ok]),
        _frozen(np.sqrt(var[ok])),
        _frozen(est[ok]),
    )
