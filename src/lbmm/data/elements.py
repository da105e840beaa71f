"""Element symbols and nucleus labels such as ``"148Er"``."""

from __future__ import annotations

import re

from .errors import InputError

__all__ = ["SYMBOLS", "label", "parse_label", "symbol"]

# Index = Z. "n" stands for the free neutron (Z = 0).
SYMBOLS: tuple[str, ...] = tuple(
    """n H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge
    As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu
    Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu
    Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split()
)
_BY_SYMBOL = {s.lower(): z for z, s in enumerate(SYMBOLS)}
_LABEL = re.compile(r"^\s*(\d+)\s*([A-Za-z]{1,3})\s*$|^\s*([A-Za-z]{1,3})\s*-?\s*(\d+)\s*$")


def symbol(z: int) -> str:
    """Chemical symbol of element ``z``; ``"Z120"`` style beyond oganesson."""
    z = int(z)
    if 0 <= z < len(SYMBOLS):
        return SYMBOLS[z]
    return f"Z{z}"


def label(z: int, n: int) -> str:
    """Label of nucleus (Z, N) as mass number and symbol, e.g. ``label(68, 80) == "148Er"``."""
    return f"{int(z) + int(n)}{symbol(z)}"


def parse_label(text: str) -> tuple[int, int]:
    """Parse ``"148Er"`` (or ``"Er148"``, ``"Er-148"``) into ``(Z, N)``.

    Raises
    ------
    ValueError
        If the text is not a nucleus label or the element is unknown.
    """
    m = _LABEL.match(text)
    if not m:
        raise InputError(f"{text!r} is not a nucleus label such as '148Er'")
    a_txt, sym = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
    z = _BY_SYMBOL.get(sym.lower())
    if z is None:
        raise InputError(f"{text!r}: unknown element symbol {sym!r}")
    a = int(a_txt)
    if a < z:
        raise InputError(f"{text!r}: mass number {a} is below Z = {z}")
    return z, a - z
