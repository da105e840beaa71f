"""Validation folds inside the training data: extrapolation, regions, K-fold.

A new mass evaluation adds nuclei at the edges of the known chart, mostly on the neutron-rich
side of each isotopic chain. Choices that decide how a mixer predicts *there* (noise models,
priors, defaults) must be made without the test split, so they are made on folds cut from
the training split the same way:

``neutron_rich``
    For every isotopic chain (fixed Z) of the training split with at least ``min_chain``
    nuclei, hold out its ``k`` most neutron-rich nuclei; train on the rest.
``proton_rich``
    The same on the proton-rich side.
``regions``
    Leave one region out: the training nuclei sorted by mass number A are cut into ``k``
    contiguous bands of nearly equal size; each band is held out in turn (``k`` folds).
``kfold``
    ``k`` random folds of nearly equal size (seeded), each held out in turn.

Each :class:`Fold` holds positions in the dataset; :func:`apply_fold` gives the dataset with
its ``train`` split replaced by the fold's training nuclei and its ``test`` split by the
held-out ones, so every fit and metric runs on a fold unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Dataset
from .errors import DataError

__all__ = ["FOLD_KINDS", "Fold", "apply_fold", "make_folds"]

FOLD_KINDS = ("neutron_rich", "proton_rich", "regions", "kfold")
_DEFAULT_K = {"neutron_rich": 2, "proton_rich": 1, "regions": 4, "kfold": 5}


@dataclass(frozen=True)
class Fold:
    """One validation fold: positions (in the dataset) to train on and to hold out."""

    name: str
    kind: str
    train: np.ndarray
    held: np.ndarray

    def __post_init__(self) -> None:
        if np.intersect1d(self.train, self.held).size:
            raise AssertionError(f"fold {self.name}: train and held-out nuclei overlap")


def _edge(ds: Dataset, idx: np.ndarray, k: int, min_chain: int, side: str) -> np.ndarray:
    held = []
    for z in np.unique(ds.Z[idx]):
        chain = idx[ds.Z[idx] == z]
        if chain.size < min_chain:
            continue
        order = np.argsort(ds.N[chain])
        take = order[-k:] if side == "neutron" else order[:k]
        held.extend(chain[take].tolist())
    return np.asarray(sorted(held), dtype=np.int64)


def make_folds(
    ds: Dataset,
    kind: str,
    *,
    split: str = "train",
    k: int | None = None,
    min_chain: int = 4,
    seed: int = 0,
) -> list[Fold]:
    """The folds of one kind, cut from a split of a dataset.

    Parameters
    ----------
    ds
        The dataset.
    kind
        One of :data:`FOLD_KINDS`.
    split
        The split the folds are cut from (the training split).
    k
        Nuclei held out per chain (``neutron_rich``, ``proton_rich``; default 2 and 1), or the
        number of folds (``regions`` 4, ``kfold`` 5).
    min_chain
        Edge folds leave chains with fewer training nuclei than this whole.
    seed
        Seed of the ``kfold`` shuffle.

    Returns
    -------
    list of Fold
        One fold for the edge kinds, ``k`` for the others.

    Raises
    ------
    DataError
        For an unknown kind, a bad ``k`` or a fold that comes out empty.
    """
    if kind not in FOLD_KINDS:
        raise DataError(f"unknown fold kind {kind!r}; known kinds: {list(FOLD_KINDS)}")
    k = _DEFAULT_K[kind] if k is None else int(k)
    idx = ds.split_indices(split)
    if k < 1 or (kind in ("regions", "kfold") and k < 2):
        raise DataError(f"fold kind {kind!r}: k must be at least {1 if 'rich' in kind else 2}")
    if kind in ("neutron_rich", "proton_rich"):
        held = _edge(ds, idx, k, min_chain, kind.split("_")[0])
        parts = [held]
        names = [kind]
    elif kind == "regions":
        order = idx[np.lexsort((ds.N[idx], ds.Z[idx], ds.Z[idx] + ds.N[idx]))]
        parts = [np.sort(p) for p in np.array_split(order, k)]
        names = [
            f"regions:A{int((ds.Z + ds.N)[p].min())}-{int((ds.Z + ds.N)[p].max())}" for p in parts
        ]
    else:
        perm = np.random.default_rng(seed).permutation(idx)
        parts = [np.sort(p) for p in np.array_split(perm, k)]
        names = [f"kfold:{i + 1}/{k}" for i in range(k)]
    folds = []
    for name, held in zip(names, parts, strict=True):
        train = np.setdiff1d(idx, held)
        if held.size == 0 or train.size == 0:
            raise DataError(f"dataset {ds.name!r}: fold {name!r} of split {split!r} is empty")
        folds.append(Fold(name, kind, train, held))
    return folds


def apply_fold(ds: Dataset, fold: Fold) -> Dataset:
    """The dataset with ``train`` = the fold's training nuclei and ``test`` = its held-out
    ones. Other splits are kept, less the held-out nuclei (BMA's evidence nuclei lie outside
    the training split in the built-in recipes, so they stay), so that no fit sees a
    held-out value."""
    out = ds.with_split("train", fold.train).with_split("test", fold.held)
    for name in set(ds.splits) - {"train", "test", "domain"}:
        out = out.with_split(name, np.setdiff1d(ds.split_indices(name), fold.held))
    return out
