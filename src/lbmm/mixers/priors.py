"""Priors written as text (``"Gamma(5, 10)"``, NumPyro's names), read, written and scaled."""

from __future__ import annotations

import ast
import math
import re
from typing import Any

__all__ = ["parse_prior", "prior_text", "scale_prior"]

_PRIOR_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*\((.*)\)\s*$", re.DOTALL)


def parse_prior(text: str):
    """A NumPyro distribution from text such as ``"Gamma(5, 10)"`` or ``"HalfNormal(2.0)"``.

    Only numeric arguments (numbers or lists of numbers) are accepted.

    Raises
    ------
    ValueError
        For text that is not ``Name(args)``, an unknown distribution or bad arguments.
    """
    import numpyro.distributions as dist

    from .. import _jax  # noqa: F401  (float64)

    m = _PRIOR_RE.match(text)
    if not m:
        raise ValueError(f"expected a distribution such as 'Gamma(5, 10)', got {text!r}")
    name, args_text = m.groups()
    cls = getattr(dist, name, None)
    if not (isinstance(cls, type) and issubclass(cls, dist.Distribution)):
        raise ValueError(f"unknown distribution {name!r} (NumPyro names, e.g. Gamma, HalfNormal)")
    try:
        args = ast.literal_eval(f"({args_text},)") if args_text.strip() else ()
    except (ValueError, SyntaxError) as err:
        raise ValueError(f"arguments of {text!r} must be numbers") from err

    def numeric(a: Any) -> bool:
        if isinstance(a, list | tuple):
            return all(numeric(x) for x in a)
        return isinstance(a, int | float) and not isinstance(a, bool)

    if not all(numeric(a) for a in args):
        raise ValueError(f"arguments of {text!r} must be numbers or lists of numbers")
    import jax.numpy as jnp

    try:
        d = cls(*(jnp.asarray(a, dtype=float) for a in args), validate_args=True)
    except Exception as err:  # NumPyro's constructors fail in many ways on wrong arguments
        raise ValueError(f"{text!r}: {err or type(err).__name__}") from err
    if d.support is None or d.support.is_discrete:
        raise ValueError(f"{text!r} is not a continuous distribution (NUTS samples those only)")
    return d


#: How each distribution family is made ``c`` times wider: the parameter, and whether it is
#: multiplied (scale, loc-scale families), divided (rates) or shifted by log c (LogNormal).
_WIDTH = {
    "HalfNormal": ("scale", "mul"),
    "HalfCauchy": ("scale", "mul"),
    "Normal": ("scale", "mul"),
    "Cauchy": ("scale", "mul"),
    "Laplace": ("scale", "mul"),
    "StudentT": ("scale", "mul"),
    "Exponential": ("rate", "div"),
    "Gamma": ("rate", "div"),
    "InverseGamma": ("rate", "mul"),
    "LogNormal": ("loc", "log"),
}


def _prior_args(d) -> tuple[str, list[str], list[float]]:
    import inspect

    import numpy as np

    cls = type(d)
    names = [
        n for n in inspect.signature(cls.__init__).parameters
        if n not in ("self", "validate_args")
    ]  # fmt: skip
    values = []
    for n in names:
        v = np.asarray(getattr(d, n))
        if v.ndim:
            raise ValueError(f"{cls.__name__}: parameter {n} is not a scalar")
        values.append(float(v))
    return cls.__name__, names, values


def prior_text(d) -> str:
    """A NumPyro distribution as the text :func:`parse_prior` reads (scalar parameters)."""
    name, _, values = _prior_args(d)
    return f"{name}({', '.join(repr(v) for v in values)})"


def scale_prior(prior, c: float) -> str | None:
    """A prior ``c`` times wider, as text: for a positive quantity θ the law of cθ (HalfNormal,
    HalfCauchy, Exponential, Gamma, InverseGamma, LogNormal); for a location-scale law the
    same location with c times the scale (Normal, Cauchy, Laplace, StudentT). None for a
    family with no such scale (Uniform, Beta, ...), which is left as it is.

    ``prior`` is a distribution or its text.
    """
    d = parse_prior(prior) if isinstance(prior, str) else prior
    how = _WIDTH.get(type(d).__name__)
    if how is None:
        return None
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"a prior scale must be a positive number, got {c!r}")
    param, op = how
    name, names, values = _prior_args(d)
    i = names.index(param)
    values[i] = {"mul": values[i] * c, "div": values[i] / c, "log": values[i] + math.log(c)}[op]
    return f"{name}({', '.join(repr(v) for v in values)})"
