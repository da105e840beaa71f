"""Dataset construction, selection rules, splits, summaries and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from lbmm.data import (
    DataError,
    Dataset,
    all_models_available,
    even_even,
    measured_only,
    n_greater_than_z,
    n_range,
    y_positive,
    z_range,
)


@pytest.fixture
def ds():
    Z = np.array([8, 8, 9, 10, 20, 20])
    N = np.array([8, 10, 10, 12, 28, 30])
    y = np.array([15.0, 12.0, np.nan, 20.0, -0.5, 9.0])
    F = np.array([[15.5, 14.0], [12.5, np.nan], [1.0, 1.0], [19.0, 21.0], [0.5, 0.0], [9.0, 10.0]])
    return Dataset.from_arrays(
        "toy",
        "S2n",
        ("A", "B"),
        Z,
        N,
        y,
        F,
        y_estimated=np.array([False, False, False, True, False, False]),
        splits={"train": [0, 1, 3], "test": [5]},
    )


def test_views(ds):
    assert ds.x.shape == (6, 2) and ds.x.dtype == np.float64
    assert ds.F.dtype == np.float64
    assert ds.labels[0] == "16O" and ds.labels[4] == "48Ca"
    assert ds.available.tolist()[1] == [True, False]
    assert ds.index_of(["48Ca", (8, 10)]).tolist() == [4, 1]
    assert "toy: S2n on 6 nuclei × 2 models (A, B); train 3, test 1" == ds.summary()


def test_rules(ds):
    assert ds.where(even_even).tolist() == [0, 1, 3, 4, 5]
    assert ds.where(z_range(9, 10)).tolist() == [2, 3]
    assert ds.where(n_range(None, 10)).tolist() == [0, 1, 2]
    assert ds.where(n_greater_than_z).tolist() == [1, 2, 3, 4, 5]
    assert ds.where(y_positive).tolist() == [0, 1, 3, 5]
    assert ds.where(measured_only).tolist() == [0, 1, 4, 5]
    assert ds.where(all_models_available).tolist() == [0, 2, 3, 4, 5]
    assert ds.where(even_even, measured_only, y_positive, all_models_available).tolist() == [0, 5]


def test_rms(ds):
    rms = ds.rms("train")
    assert rms["A"] == pytest.approx(np.sqrt((0.25 + 0.25 + 1.0) / 3))
    assert rms["B"] == pytest.approx(np.sqrt((1.0 + 1.0) / 2))  # NaN entries skipped


def test_split_and_subset(ds):
    train = ds.split("train")
    assert len(train) == 3 and train.splits["train"].tolist() == [0, 1, 2]
    assert train.splits["test"].size == 0
    sub = ds.subset([5, 0])
    assert sub.splits["test"].tolist() == [0]
    assert ds.select_models(["B"]).F.shape == (6, 1)


def test_immutable(ds):
    with pytest.raises(ValueError):
        ds.y[0] = 1.0
    with pytest.raises(TypeError):
        ds.splits["x"] = np.array([0])  # type: ignore[index]


def test_errors(ds):
    with pytest.raises(DataError, match="no split 'valid'"):
        ds.split("valid")
    with pytest.raises(DataError, match="split 'empty' is empty"):
        ds.with_split("empty", []).split("empty")
    with pytest.raises(DataError, match=r"nucleus 100Sn .* is not in the dataset"):
        ds.index_of(["100Sn"])
    with pytest.raises(DataError, match="unknown model 'C'"):
        ds.select_models(["C"])
    with pytest.raises(DataError, match="no observed value at 19F"):
        ds.with_split("s", [2]).split("s", require_observed=True)
    with pytest.raises(DataError, match="duplicate nucleus Z=8, N=8"):
        Dataset.from_arrays("d", "S2n", ("A",), [8, 8], [8, 8], [1.0, 2.0], [[1.0], [2.0]])
    with pytest.raises(DataError, match="expected Z, N, y of length n"):
        Dataset.from_arrays("d", "S2n", ("A", "B"), [8], [8], [1.0], [[1.0]])
