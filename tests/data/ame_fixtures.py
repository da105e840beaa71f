"""Write small AME files in the published fixed-width layouts (for reader tests)."""

from __future__ import annotations

from pathlib import Path

from lbmm.data.elements import symbol

HEADER_2003 = """1    a0dsk1996              A T O M I C   M A S S   A D J U S T M E N T
0                                                DATE  1 Dec 2003 TIME 16:27
0   format    :  a1,i3,i5,i5,i5,1x,a3,a4,1x,f13.5,f11.5,f11.3,f9.3,1x,a2,f11.3,f9.3,1x,i3,1x,f12.5,f11.5
0             cc NZ  N  Z  A    el  o     mass  unc binding unc     B  beta  unc    atomic_mass   unc
0   # in place of decimal point : estimated (non-experimental) value
"""

HEADER_2020 = """1    a0dsk1996              A T O M I C   M A S S   A D J U S T M E N T
0   format    :  a1,i3,i5,i5,i5,1x,a3,a4,1x,f14.6,f12.6,f13.5,1x,f10.5,1x,a2,f13.5,f11.5,1x,i3,1x,f13.6,f12.6
0             cc NZ  N  Z  A    el  o     mass  unc binding unc     B  beta  unc    atomic_mass   unc
"""


def _num(value: float, width: int, decimals: int, estimated: bool) -> str:
    text = f"{value:{width}.{decimals}f}"
    return text.replace(".", "#") if estimated else text


def ame_line(
    z: int,
    n: int,
    mass_kev: float,
    unc_kev: float,
    *,
    layout: str = "2003",
    estimated: bool = False,
    cc: str = "0",
) -> str:
    """One data line: mass excess and its uncertainty in keV (other fields filled plausibly)."""
    a = z + n
    head = f"{cc}{n - z:3d}{n:5d}{z:5d}{a:5d} {symbol(z):<3}{'':4} "
    be_a = 0.0
    if layout == "2003":
        body = (
            _num(mass_kev, 13, 5, estimated)
            + _num(unc_kev, 11, 5, estimated)
            + _num(be_a, 11, 3, estimated)
            + _num(0.0, 9, 3, estimated)
            + " B-"
            + f"{0.0:11.3f}{0.0:9.3f} {a:3d} {0.0:12.5f}{0.0:11.5f}"
        )
    else:
        body = (
            _num(mass_kev, 14, 6, estimated)
            + _num(unc_kev, 12, 6, estimated)
            + _num(be_a, 13, 5, estimated)
            + " "
            + _num(0.0, 10, 5, estimated)
            + " B-"
            + f"{0.0:13.5f}{0.0:11.5f} {a:3d} {0.0:13.6f}{0.0:12.6f}"
        )
    return head + body


def write_ame(path: Path, rows: list[tuple], *, layout: str = "2003", header: bool = True) -> Path:
    """Write rows ``(Z, N, mass_keV, unc_keV, estimated)`` as an AME file."""
    lines = []
    if header:
        lines.append((HEADER_2003 if layout == "2003" else HEADER_2020).rstrip("\n"))
    for z, n, m, u, est in rows:
        lines.append(ame_line(z, n, m, u, layout=layout, estimated=est))
    path.write_text("\n".join(lines) + "\n")
    return path
