"""Validation folds inside the training split: what each kind holds out, and their errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lbmm.data import DataError, Dataset, apply_fold, load_dataset, make_folds


def _chart() -> Dataset:
    """Three isotopic chains of 6, 3 and 5 nuclei (all training), one test and one evidence
    nucleus."""
    Z = np.array([8] * 6 + [10] * 3 + [12] * 5 + [14, 16])
    N = np.array([8, 10, 12, 14, 16, 18, 10, 12, 14, 12, 14, 16, 18, 20, 16, 16])
    y = np.linspace(1.0, 2.0, Z.size)
    F = np.stack([y + 0.1, y - 0.1], 1)
    train = np.arange(14)
    splits = {"train": train, "test": [14], "evidence": [15, 0]}
    return Dataset.from_arrays("chart", "S2n", ("a", "b"), Z, N, y, F, splits=splits)


def test_neutron_rich_holds_out_the_last_k_of_each_long_chain():
    ds = _chart()
    (fold,) = make_folds(ds, "neutron_rich", k=2, min_chain=4)
    held = {(int(ds.Z[i]), int(ds.N[i])) for i in fold.held}
    # chain Z=8 (6 nuclei): N = 16, 18; chain Z=12 (5): N = 18, 20; chain Z=10 (3 < 4): none
    assert held == {(8, 16), (8, 18), (12, 18), (12, 20)}
    assert np.array_equal(np.sort(np.concatenate([fold.train, fold.held])), np.arange(14))
    (pr,) = make_folds(ds, "proton_rich", k=1, min_chain=3)
    assert {(int(ds.Z[i]), int(ds.N[i])) for i in pr.held} == {(8, 8), (10, 10), (12, 12)}


def test_regions_partition_the_split_into_bands_of_mass_number():
    ds = _chart()
    folds = make_folds(ds, "regions", k=3)
    assert len(folds) == 3
    held = np.concatenate([f.held for f in folds])
    assert np.array_equal(np.sort(held), np.arange(14))  # each nucleus held out once
    A = ds.Z + ds.N
    for a, b in itertools.pairwise(folds):
        assert A[a.held].max() <= A[b.held].min()  # contiguous bands, in order
    assert [f.held.size for f in folds] == [5, 5, 4]


def test_kfold_is_a_seeded_partition():
    ds = _chart()
    f1 = make_folds(ds, "kfold", k=4, seed=3)
    f2 = make_folds(ds, "kfold", k=4, seed=3)
    f3 = make_folds(ds, "kfold", k=4, seed=4)
    assert all(np.array_equal(a.held, b.held) for a, b in zip(f1, f2, strict=True))
    assert not all(np.array_equal(a.held, b.held) for a, b in zip(f1, f3, strict=True))
    assert np.array_equal(np.sort(np.concatenate([f.held for f in f1])), np.arange(14))


def test_apply_fold_hides_the_held_out_nuclei_from_every_fitted_split():
    ds = _chart()
    (fold,) = make_folds(ds, "neutron_rich", k=2, min_chain=4)
    fd = apply_fold(ds, fold)
    assert np.array_equal(fd.split_indices("train"), fold.train)
    assert np.array_equal(fd.split_indices("test"), fold.held)
    assert sorted(fd.split_indices("evidence")) == [0, 15]  # 0 is trained on: kept
    (pr,) = make_folds(ds, "proton_rich", k=1, min_chain=3)
    fp = apply_fold(ds, pr)
    assert 0 in pr.held and sorted(fp.split_indices("evidence")) == [15]  # held out: dropped


def test_fold_errors_are_clear():
    ds = _chart()
    with pytest.raises(DataError, match="unknown fold kind 'neutronrich'"):
        make_folds(ds, "neutronrich")
    with pytest.raises(DataError, match="k must be at least 2"):
        make_folds(ds, "regions", k=1)
    with pytest.raises(DataError, match="is empty"):
        make_folds(ds, "neutron_rich", min_chain=50)


def test_default_study_neutron_rich_fold():
    """The default dataset: two nuclei from each training chain of at least 4, none of them
    in the test split (which lies outside the training split)."""
    ds = load_dataset("default")
    (fold,) = make_folds(ds, "neutron_rich")
    train = ds.split_indices("train")
    chains = {z: np.sum(ds.Z[train] == z) for z in np.unique(ds.Z[train])}
    assert fold.held.size == 2 * sum(c >= 4 for c in chains.values())
    assert not set(fold.held) & set(ds.split_indices("test"))
