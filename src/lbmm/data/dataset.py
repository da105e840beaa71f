"""The :class:`Dataset`: observed values, model predictions and named splits on one set of nuclei.

A dataset is the input of every mixer. It holds, for ``n`` nuclei and ``p`` models,

- ``y`` (n,): the observed value (NaN where nothing was observed), its uncertainty and an
  ``estimated`` flag (value from systematics rather than measurement);
- ``F`` (n, p): each model's prediction (NaN where the model gives none), and the
  availability mask ``available = isfinite(F)``;
- ``x`` (n, 2): the inputs (Z, N) as float64, and labels such as ``"148Er"``;
- named splits (``train``, ``test``, ``evidence``, ``domain``...) as sorted index arrays.

Selection rules (:func:`even_even`, :func:`z_range`, :func:`n_greater_than_z`,
:func:`y_positive`, :func:`measured_only`, :func:`all_models_available`, ...) are small
functions ``rule(dataset) -> bool mask`` that :meth:`Dataset.where` combines with *and*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np
import pandas as pd

from .elements import label, parse_label
from .errors import DataError
from .observables import Observable
from .tables import Provenance

__all__ = [
    "Dataset",
    "Rule",
    "all_models_available",
    "even_even",
    "measured_only",
    "n_greater_than_z",
    "n_range",
    "observed",
    "y_positive",
    "z_range",
]

Rule = Callable[["Dataset"], np.ndarray]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _unpickle_dataset(fields: dict) -> Dataset:
    arrays = ("Z", "N", "y", "y_uncertainty", "y_estimated", "F")
    fields = {**fields, **{k: _frozen(fields[k]) for k in arrays}}
    fields["splits"] = MappingProxyType({k: _frozen(v) for k, v in fields["splits"].items()})
    fields["provenance"] = MappingProxyType(dict(fields["provenance"]))
    return Dataset(**fields)


@dataclass(frozen=True, eq=False)
class Dataset:
    """Observations, model predictions and splits on a set of nuclei (immutable).

    Build one with :meth:`Dataset.from_observables` or a recipe
    (:func:`lbmm.data.load_dataset`).
    """

    name: str
    observable: str
    models: tuple[str, ...]
    Z: np.ndarray
    N: np.ndarray
    y: np.ndarray
    y_uncertainty: np.ndarray
    y_estimated: np.ndarray
    F: np.ndarray
    splits: Mapping[str, np.ndarray] = field(default_factory=dict)
    provenance: Mapping[str, Provenance] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_observables(
        cls,
        name: str,
        observed: Observable,
        models: Mapping[str, Observable],
        nuclei: Iterable[tuple[int, int]],
        *,
        splits: Mapping[str, Iterable[tuple[int, int]]] | None = None,
        provenance: Mapping[str, Provenance] | None = None,
        notes: Iterable[str] = (),
    ) -> Dataset:
        """Align observed values and model predictions on the given nuclei.

        Parameters
        ----------
        observed
            The measured observable (missing nuclei get ``y = NaN``).
        models
            Model name → the same observable computed from that model's table.
        nuclei
            The (Z, N) pairs of the dataset; sorted by (Z, N) on the way in.
        splits
            Split name → (Z, N) pairs; each must be among ``nuclei``.
        """
        keys = sorted({(int(z), int(n)) for z, n in nuclei})
        idx = pd.MultiIndex.from_tuples(keys, names=["Z", "N"]) if keys else None
        n_nuc = len(keys)
        z = np.array([k[0] for k in keys], dtype=np.int64)
        n = np.array([k[1] for k in keys], dtype=np.int64)

        def align(obs: Observable) -> pd.DataFrame:
            df = obs.to_frame()
            return df.reindex(idx) if idx is not None else df.iloc[:0]

        obs = align(observed)
        y = obs["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        yu = obs["uncertainty"].to_numpy(dtype=np.float64, na_value=np.nan)
        ye = obs["estimated"].fillna(False).to_numpy(dtype=bool)
        F = np.full((n_nuc, len(models)), np.nan)
        for j, m in enumerate(models):
            F[:, j] = align(models[m])["value"].to_numpy(dtype=np.float64, na_value=np.nan)
        position = {k: i for i, k in enumerate(keys)}
        split_idx: dict[str, np.ndarray] = {}
        for sname, members in (splits or {}).items():
            members = list(members)
            missing = [m for m in members if (int(m[0]), int(m[1])) not in position]
            if missing:
                raise DataError(
                    f"split {sname!r}: nucleus {label(*missing[0])} (Z={missing[0][0]}, "
                    f"N={missing[0][1]}) is not in the dataset"
                )
            split_idx[sname] = np.array(
                sorted(position[(int(a), int(b))] for a, b in members), dtype=np.int64
            )
        return cls.from_arrays(
            name,
            observed.name,
            tuple(models),
            z,
            n,
            y,
            F,
            y_uncertainty=yu,
            y_estimated=ye,
            splits=split_idx,
            provenance=provenance or {},
            notes=tuple(notes),
        )

    @classmethod
    def from_arrays(
        cls,
        name: str,
        observable: str,
        models: Sequence[str],
        Z: np.ndarray,
        N: np.ndarray,
        y: np.ndarray,
        F: np.ndarray,
        *,
        y_uncertainty: np.ndarray | None = None,
        y_estimated: np.ndarray | None = None,
        splits: Mapping[str, Iterable[int]] | None = None,
        provenance: Mapping[str, Provenance] | None = None,
        notes: Iterable[str] = (),
    ) -> Dataset:
        """Build a dataset from arrays (validated: shapes, duplicates, split indices)."""
        z = np.asarray(Z, dtype=np.int64)
        n = np.asarray(N, dtype=np.int64)
        y = np.asarray(y, dtype=np.float64)
        F = np.asarray(F, dtype=np.float64)
        size = z.shape[0]
        if (
            F.ndim != 2
            or F.shape != (size, len(models))
            or y.shape != (size,)
            or n.shape != (size,)
        ):
            raise DataError(
                f"dataset {name!r}: expected Z, N, y of length n and F of shape (n, p) with "
                f"n = {size}, p = {len(models)}; got y {y.shape}, F {F.shape}, N {n.shape}"
            )
        if len(set(models)) != len(models):
            raise DataError(f"dataset {name!r}: duplicate model names in {list(models)}")
        keys = z * 100_000 + n
        if np.unique(keys).size != size:
            dup = pd.Series(keys).duplicated().to_numpy()
            i = int(np.argmax(dup))
            raise DataError(f"dataset {name!r}: duplicate nucleus Z={z[i]}, N={n[i]}")
        yu = np.zeros(size) if y_uncertainty is None else np.asarray(y_uncertainty, np.float64)
        ye = np.zeros(size, bool) if y_estimated is None else np.asarray(y_estimated, bool)
        split_idx = {}
        for sname, members in (splits or {}).items():
            arr = np.unique(np.asarray(list(members), dtype=np.int64))
            if arr.size and (arr.min() < 0 or arr.max() >= size):
                raise DataError(f"dataset {name!r}: split {sname!r} has indices outside 0..{size}")
            split_idx[sname] = _frozen(arr)
        return cls(
            name=name,
            observable=observable,
            models=tuple(models),
            Z=_frozen(z),
            N=_frozen(n),
            y=_frozen(y),
            y_uncertainty=_frozen(yu),
            y_estimated=_frozen(ye),
            F=_frozen(F),
            splits=MappingProxyType(split_idx),
            provenance=MappingProxyType(dict(provenance or {})),
            notes=tuple(notes),
        )

    def __reduce__(self):
        """Pickled (for a run's worker processes) as its fields; rebuilt read-only."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields["splits"] = dict(self.splits)
        fields["provenance"] = dict(self.provenance)
        return _unpickle_dataset, (fields,)

    # ------------------------------------------------------------------ views

    def __len__(self) -> int:
        return int(self.Z.shape[0])

    def __repr__(self) -> str:
        return f"Dataset({self.summary()})"

    @property
    def n_models(self) -> int:
        """Number of models p."""
        return len(self.models)

    @property
    def x(self) -> np.ndarray:
        """Inputs (Z, N) as a float64 array of shape (n, 2)."""
        return np.stack([self.Z, self.N], axis=1).astype(np.float64)

    @property
    def A(self) -> np.ndarray:
        """Mass numbers Z + N."""
        return self.Z + self.N

    @property
    def available(self) -> np.ndarray:
        """(n, p) mask: True where the model gives a value."""
        return np.isfinite(self.F)

    @property
    def labels(self) -> tuple[str, ...]:
        """Nucleus labels such as ``"148Er"``."""
        return tuple(label(z, n) for z, n in zip(self.Z.tolist(), self.N.tolist(), strict=True))

    def index_of(self, nuclei: Iterable[tuple[int, int] | str]) -> np.ndarray:
        """Positions of nuclei given as (Z, N) pairs or labels such as ``"148Er"``.

        Raises
        ------
        DataError
            If a nucleus is not in the dataset.
        """
        position = {
            (z, n): i for i, (z, n) in enumerate(zip(self.Z.tolist(), self.N.tolist(), strict=True))
        }
        out = []
        for item in nuclei:
            zn = parse_label(item) if isinstance(item, str) else (int(item[0]), int(item[1]))
            if zn not in position:
                raise DataError(
                    f"dataset {self.name!r}: nucleus {label(*zn)} (Z={zn[0]}, N={zn[1]}) "
                    "is not in the dataset"
                )
            out.append(position[zn])
        return np.asarray(out, dtype=np.int64)

    def split_indices(self, split: str) -> np.ndarray:
        """Sorted positions of the nuclei of a named split.

        Raises
        ------
        DataError
            For an unknown split name (the message lists the known ones).
        """
        if split not in self.splits:
            raise DataError(
                f"dataset {self.name!r} has no split {split!r}; splits: {sorted(self.splits)}"
            )
        return self.splits[split]

    def subset(self, indices: Iterable[int] | np.ndarray, *, name: str | None = None) -> Dataset:
        """The dataset restricted to some nuclei; splits are restricted and re-indexed."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        remap = np.full(len(self), -1, dtype=np.int64)
        remap[idx] = np.arange(idx.size)
        splits = {}
        for sname, members in self.splits.items():
            new = remap[members]
            splits[sname] = new[new >= 0]
        return Dataset.from_arrays(
            name or self.name,
            self.observable,
            self.models,
            self.Z[idx],
            self.N[idx],
            self.y[idx],
            self.F[idx],
            y_uncertainty=self.y_uncertainty[idx],
            y_estimated=self.y_estimated[idx],
            splits=splits,
            provenance=self.provenance,
            notes=self.notes,
        )

    def split(self, split: str, *, require_observed: bool = False) -> Dataset:
        """The sub-dataset of a named split.

        Raises
        ------
        DataError
            For an unknown or empty split, or (``require_observed``) one with unobserved y.
        """
        idx = self.split_indices(split)
        if idx.size == 0:
            raise DataError(f"dataset {self.name!r}: split {split!r} is empty")
        if require_observed and not np.isfinite(self.y[idx]).all():
            bad = idx[~np.isfinite(self.y[idx])][0]
            raise DataError(
                f"dataset {self.name!r}: split {split!r} has no observed value at "
                f"{label(self.Z[bad], self.N[bad])}"
            )
        return self.subset(idx, name=f"{self.name}[{split}]")

    def where(self, *rules: Rule) -> np.ndarray:
        """Positions of the nuclei that satisfy every rule (each ``rule(ds) -> bool mask``)."""
        mask = np.ones(len(self), bool)
        for rule in rules:
            mask &= np.asarray(rule(self), dtype=bool)
        return np.flatnonzero(mask)

    def with_split(self, split: str, members: Iterable[int] | np.ndarray) -> Dataset:
        """A copy with one more (or a replaced) split, given by positions."""
        splits = dict(self.splits)
        splits[split] = _frozen(np.unique(np.asarray(members, dtype=np.int64)))
        return replace(self, splits=MappingProxyType(splits))

    def select_models(self, models: Sequence[str]) -> Dataset:
        """A copy with only some models, in the given order.

        Raises
        ------
        DataError
            For a model name not in the dataset.
        """
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise DataError(
                f"dataset {self.name!r}: unknown model {unknown[0]!r}; models: {list(self.models)}"
            )
        cols = [self.models.index(m) for m in models]
        return replace(self, models=tuple(models), F=_frozen(self.F[:, cols]))

    # ------------------------------------------------------------------ summaries

    def rms(self, split: str | None = None) -> dict[str, float]:
        """Root-mean-square deviation of each model from y (MeV), over a split or all
        nuclei where both are finite."""
        idx = np.arange(len(self)) if split is None else self.split_indices(split)
        out = {}
        for j, m in enumerate(self.models):
            r = self.F[idx, j] - self.y[idx]
            r = r[np.isfinite(r)]
            out[m] = float(np.sqrt(np.mean(r**2))) if r.size else float("nan")
        return out

    def counts(self) -> dict[str, int]:
        """Number of nuclei per split."""
        return {s: int(v.size) for s, v in self.splits.items()}

    def summary(self) -> str:
        """One line: name, observable, models and split sizes."""
        counts = ", ".join(f"{s} {c}" for s, c in self.counts().items())
        return (
            f"{self.name}: {self.observable} on {len(self)} nuclei × {self.n_models} models "
            f"({', '.join(self.models)}); {counts}"
        )

    def to_frame(self, split: str | None = None) -> pd.DataFrame:
        """One row per nucleus: Z, N, A, label, y, uncertainty, estimated, one column per model
        and one boolean column per split."""
        idx = np.arange(len(self)) if split is None else self.split_indices(split)
        df = pd.DataFrame(
            {
                "Z": self.Z[idx],
                "N": self.N[idx],
                "A": self.A[idx],
                "nucleus": np.asarray(self.labels, dtype=object)[idx],
                "y": self.y[idx],
                "y_uncertainty": self.y_uncertainty[idx],
                "y_estimated": self.y_estimated[idx],
            }
        )
        for j, m in enumerate(self.models):
            df[m] = self.F[idx, j]
        for sname, members in self.splits.items():
            mask = np.zeros(len(self), bool)
            mask[members] = True
            df[f"in_{sname}"] = mask[idx]
        return df


# ---------------------------------------------------------------------- selection rules


def even_even(ds: Dataset) -> np.ndarray:
    """Even Z and even N."""
    return (ds.Z % 2 == 0) & (ds.N % 2 == 0)


def z_range(lo: int | None = None, hi: int | None = None) -> Rule:
    """Rule: lo <= Z <= hi (either bound optional)."""

    def rule(ds: Dataset) -> np.ndarray:
        return ((ds.Z >= lo) if lo is not None else True) & (
            (ds.Z <= hi) if hi is not None else True
        )

    return rule


def n_range(lo: int | None = None, hi: int | None = None) -> Rule:
    """Rule: lo <= N <= hi (either bound optional)."""

    def rule(ds: Dataset) -> np.ndarray:
        return ((ds.N >= lo) if lo is not None else True) & (
            (ds.N <= hi) if hi is not None else True
        )

    return rule


def n_greater_than_z(ds: Dataset) -> np.ndarray:
    """N > Z."""
    return ds.N > ds.Z


def observed(ds: Dataset) -> np.ndarray:
    """y is known (finite)."""
    return np.isfinite(ds.y)


def y_positive(ds: Dataset) -> np.ndarray:
    """y > 0 (for S2n: the nucleus is bound against two-neutron emission)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(ds.y) & (ds.y > 0)


def measured_only(ds: Dataset) -> np.ndarray:
    """y is known and measured (no estimated binding energy was used)."""
    return np.isfinite(ds.y) & ~ds.y_estimated


def all_models_available(ds: Dataset) -> np.ndarray:
    """Every model gives a value."""
    return ds.available.all(axis=1)
