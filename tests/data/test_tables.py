"""Readers of every table format, on small fixtures written in that format."""

from __future__ import annotations

import numpy as np
import pytest

from lbmm.data import (
    DataError,
    MassTable,
    read_ame,
    read_csv,
    read_massexplorer,
    read_masstable,
    read_table,
)
from lbmm.data.tables import MASS_EXCESS_H, MASS_EXCESS_N, masstable_names

from .ame_fixtures import ame_line, write_ame

# AME2020 mass excesses (keV) of n, 1H, 4He, 14O, 16O, 18O.
ROWS = [
    (0, 1, 8071.318062, 0.000440, False),
    (1, 0, 7288.971064, 0.000013, False),
    (2, 2, 2424.915870, 0.000150, False),
    (8, 6, 8007.781, 0.110, False),
    (8, 8, -4737.001370, 0.000160, False),
    (8, 10, -782.8156, 0.0007, False),
    (8, 20, 14030.0, 700.0, True),
]
BE_O16 = 127.619314  # MeV, 8·Δ_H + 8·Δ_n − Δ(16O)


@pytest.mark.parametrize("layout", ["2003", "2020"])
def test_read_ame_layouts(tmp_path, layout):
    path = write_ame(
        tmp_path / ("mass.mas03" if layout == "2003" else "mass_1.mas20"), ROWS, layout=layout
    )
    t = read_ame(path)
    assert t.name == ("AME2003" if layout == "2003" else "AME2020")
    assert len(t) == len(ROWS)
    df = t.to_frame()
    assert df.loc[(8, 8), "BE"] == pytest.approx(BE_O16, abs=2e-6)
    assert df.loc[(0, 1), "BE"] == pytest.approx(0.0, abs=1e-6)
    assert df.loc[(8, 8), "uBE"] == pytest.approx(0.00016e-3 * 1e3 / 1e3, abs=1e-9)
    assert bool(df.loc[(8, 20), "estimated"]) and not df.loc[(8, 8), "estimated"]
    assert df.loc[(8, 20), "uBE"] == pytest.approx(0.7)
    assert t.provenance.source == "AME" and len(t.provenance.sha256) == 64


def test_read_ame_without_header_guesses_layout_from_name(tmp_path):
    path = write_ame(tmp_path / "mass_1.mas20", ROWS[:5], layout="2020", header=False)
    assert read_ame(path).to_frame().loc[(8, 8), "BE"] == pytest.approx(BE_O16, abs=2e-6)
    path = write_ame(tmp_path / "mass16.txt", ROWS[:5], layout="2003", header=False)
    t = read_ame(path)
    assert t.name == "AME2016" and len(t) == 5


def test_read_ame_short_estimated_form(tmp_path):
    # AME prints estimates with '#' in place of the decimal point and fewer digits.
    line = ame_line(8, 8, -4737.00137, 0.00016)
    est = line[:28] + f"{'14030#':>13}{'700#':>11}" + line[52:]
    path = tmp_path / "mass.mas12"
    path.write_text(ame_line(8, 6, 8007.781, 0.11) + "\n" + est.replace(" 16O", " 16O") + "\n")
    t = read_ame(path)
    df = t.to_frame()
    assert df.loc[(8, 8), "estimated"]
    assert df.loc[(8, 8), "BE"] == pytest.approx(
        (8 * MASS_EXCESS_H * 1e3 + 8 * MASS_EXCESS_N * 1e3 - 14030.0) / 1e3
    )


def test_read_ame_bad_mass_names_line(tmp_path):
    line = ame_line(8, 8, -4737.00137, 0.00016)
    bad = line[:28] + f"{'abc.def':>13}" + line[41:]
    path = tmp_path / "mass.mas03"
    path.write_text(ame_line(8, 6, 8007.781, 0.11) + "\n" + bad + "\n")
    with pytest.raises(DataError, match=r"mass.mas03, line 2, column 'mass excess'"):
        read_ame(path)


def test_read_ame_no_data(tmp_path):
    path = tmp_path / "mass.mas03"
    path.write_text("just a header\n")
    with pytest.raises(DataError, match="no data lines"):
        read_ame(path)


def test_masstable_tables():
    names = masstable_names()
    assert {"AME2003", "AME2012", "FRDM95", "HFB14", "DUZU", "KTUY05", "WS32010"} <= set(names)
    ame = read_masstable("AME2003")
    df = ame.to_frame()
    # 16O from AME2003's mass excess (-4737.00141 keV) agrees with AME2020 within 1 keV.
    assert df.loc[(8, 8), "BE"] == pytest.approx(BE_O16, abs=1e-3)
    assert not ame.estimated.any()
    # DUZU's file uses bare carriage returns; it must still read as thousands of rows.
    assert len(read_masstable("DUZU")) > 8000
    allt = read_masstable("AME2003all")
    assert allt.estimated.any() and len(allt) > len(ame)
    assert read_table("masstable:FRDM95").provenance.source == "masstable"


def test_masstable_unknown_name():
    with pytest.raises(DataError, match=r"unknown masstable table 'NOPE'.*AME2003"):
        read_masstable("NOPE")


def test_read_massexplorer_columns_by_name(tmp_path):
    # Column order differs between files, and FRDM12.csv has unnamed extra columns.
    p = tmp_path / "FRDM12.csv"
    p.write_text("N,QDE2t,Z,BE,Unnamed: 11,Unnamed: 12\n8,0.1,8,127.62,1,2\n10,0.2,8,139.81,,\n")
    t = read_massexplorer(p)
    assert t.name == "FRDM12" and t.provenance.source == "massexplorer"
    assert t.to_frame().loc[(8, 10), "BE"] == pytest.approx(139.81)
    p2 = tmp_path / "AME2020.csv"
    p2.write_text("BE,uBE,N,Z,eBE\n127.619,1e-6,8,8,0\n-6.801,2.001,0,3,1\n")
    t2 = read_massexplorer(p2)
    df = t2.to_frame()
    assert df.loc[(3, 0), "estimated"] and not df.loc[(8, 8), "estimated"]
    assert df.loc[(3, 0), "BE"] == -6.801  # negative BE of an unbound light nucleus is kept
    assert df.loc[(3, 0), "uBE"] == pytest.approx(2.001)


def test_placeholder_zero_is_dropped_and_noted(tmp_path):
    p = tmp_path / "SKMS.csv"
    p.write_text("Z,N,BE\n66,180,1900.0\n66,182,0.0\n1,0,0.0\n")
    t = read_massexplorer(p)
    assert len(t) == 2  # the A=1 zero is legal; the A=248 zero is a placeholder
    assert any("placeholder" in note and "Z=66 N=182" in note for note in t.notes)


def test_read_plain_csv(tmp_path):
    p = tmp_path / "mine.csv"
    p.write_text("Z,N,BE,uBE,estimated\n8,8,127.619,0.001,false\n8,10,139.807,0.1,true\n")
    t = read_csv(p)
    assert t.provenance.source == "csv"
    assert t.estimated.tolist() == [False, True]
    assert read_table(p).to_frame().loc[(8, 10), "uBE"] == pytest.approx(0.1)


def test_read_table_dispatch(tmp_path):
    path = write_ame(tmp_path / "mass.mas03", ROWS[:3])
    assert read_table(path).provenance.source == "AME"
    with pytest.raises(DataError, match="unknown table format"):
        (tmp_path / "x.dat").write_text("1 2 3\n")
        read_table(tmp_path / "x.dat")


def test_masstable_is_immutable():
    t = MassTable.from_arrays("t", [8, 8], [8, 10], [127.6, 139.8])
    with pytest.raises(ValueError):
        t.BE[0] = 1.0
    with pytest.raises(AttributeError):
        t.name = "other"  # type: ignore[misc]
    assert t.measured().BE.tolist() == [127.6, 139.8]


# ------------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_missing_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,Energy\n8,8,127.6\n")
    with pytest.raises(DataError, match=r"t.csv: missing column 'BE'.*found: Z, N, Energy"):
        read_csv(p)


def test_non_numeric_value(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,BE\n8,8,127.6\n8,10,abc\n")
    with pytest.raises(DataError, match=r"t.csv, line 3, column 'BE': expected a finite number"):
        read_csv(p)


@pytest.mark.parametrize("token", ["nan", "inf", "-inf", ""])
def test_non_finite_value(tmp_path, token):
    p = tmp_path / "t.csv"
    p.write_text(f"Z,N,BE\n8,8,127.6\n8,10,{token}\n")
    with pytest.raises(DataError, match=r"line 3, column 'BE'"):
        read_csv(p)


def test_non_integer_z(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,BE\n8.5,8,127.6\n")
    with pytest.raises(DataError, match=r"line 2, column 'Z': expected an integer"):
        read_csv(p)


def test_duplicate_nucleus(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,BE\n8,8,127.6\n8,10,139.8\n8,8,127.7\n")
    with pytest.raises(
        DataError, match=r"t.csv, line 4: duplicate nucleus Z=8, N=8 \(also at line 2\)"
    ):
        read_csv(p)


def test_kev_instead_of_mev(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,BE\n8,8,127619.3\n")
    with pytest.raises(DataError, match=r"line 2, column 'BE'.*keV"):
        read_csv(p)


def test_empty_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv(p)
    p.write_text("Z,N,BE\n")
    with pytest.raises(DataError, match="no data rows"):
        read_csv(p)


def test_bad_estimated_flag(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("Z,N,BE,estimated\n8,8,127.6,maybe\n")
    with pytest.raises(DataError, match=r"line 2, column 'estimated': expected 0/1"):
        read_csv(p)


def test_from_arrays_checks_lengths():
    with pytest.raises(DataError, match="one length"):
        MassTable.from_arrays("t", [8], [8, 10], [127.6])
    t = MassTable.from_arrays("t", np.array([8]), np.array([8]), np.array([127.6]))
    assert len(t) == 1
