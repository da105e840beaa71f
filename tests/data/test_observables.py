"""Observables against values computed by hand."""

from __future__ import annotations

import math

import pytest

from lbmm.data import DataError, MassTable, observable
from lbmm.data.observables import BE_HE4

# A toy table around (Z, N) = (10, 10); BE in MeV, uncertainties in MeV.
T = MassTable.from_arrays(
    "toy",
    Z=[8, 8, 9, 10, 10, 10],
    N=[8, 10, 10, 8, 9, 10],
    BE=[127.6, 139.8, 147.8, 132.1, 143.8, 160.6],
    uncertainty=[0.0, 0.3, 0.0, 0.0, 0.4, 0.0],
    estimated=[False, False, False, True, False, False],
)


def value(obs, z, n):
    return obs.to_frame().loc[(z, n)]


def test_s2n():
    obs = observable(T, "S2n")
    row = value(obs, 10, 10)
    assert row.value == pytest.approx(160.6 - 132.1)
    assert row.estimated  # BE(10, 8) is estimated
    assert row.uncertainty == 0.0
    assert value(obs, 8, 10).value == pytest.approx(139.8 - 127.6)
    assert value(obs, 8, 10).uncertainty == pytest.approx(0.3)
    assert len(obs) == 2  # only (8,10) and (10,10) have their (Z, N-2) neighbour


def test_s2p_sn_sp():
    s2p = value(observable(T, "S2p"), 10, 10)
    assert s2p.value == pytest.approx(160.6 - 139.8) and s2p.uncertainty == pytest.approx(0.3)
    sn = value(observable(T, "Sn"), 10, 10)
    assert sn.value == pytest.approx(160.6 - 143.8) and sn.uncertainty == pytest.approx(0.4)
    assert not sn.estimated
    sp = value(observable(T, "sp"), 10, 10)  # names are case-insensitive
    assert sp.value == pytest.approx(160.6 - 147.8)


def test_q_alpha():
    qa = value(observable(T, "Qa"), 10, 10)
    assert qa.value == pytest.approx(127.6 + BE_HE4 - 160.6)
    # 212Po -> 208Pb + alpha releases 8.954 MeV (AME2020); with AME2020 binding energies:
    t = MassTable.from_arrays("po", [82, 84], [126, 128], [1636.4301, 1655.7710])
    assert value(observable(t, "Qa"), 84, 128).value == pytest.approx(8.954, abs=2e-3)


def test_quadrature_uncertainty():
    t = MassTable.from_arrays("u", [8, 8], [8, 10], [127.6, 139.8], uncertainty=[0.3, 0.4])
    assert value(observable(t, "S2n"), 8, 10).uncertainty == pytest.approx(0.5)


def test_be_per_nucleon():
    row = value(observable(T, "BE/A"), 10, 9)
    assert row.value == pytest.approx(143.8 / 19)
    assert row.uncertainty == pytest.approx(0.4 / 19)
    assert math.isclose(value(observable(T, "BE/A"), 10, 8).value, 132.1 / 18)


def test_unknown_observable():
    with pytest.raises(DataError, match="unknown observable 'S3n'"):
        observable(T, "S3n")
