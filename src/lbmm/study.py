"""Study files: what to run, on which data, with which settings, as validated values.

A study is a TOML file (or one of the built-in studies, ``lbmm studies``) that names

- the data: a dataset recipe (``lbmm data``), or tables (an observed evaluation, an older
  evaluation whose measured nuclei form the training set, and one table per model), with
  optional explicit splits and a model subset;
- the sampling settings (chains, warm-up, draws, target acceptance, ...);
- the mixers to run, each with its likelihood, options, priors, optional systematic
  corrections and optional sampling overrides;
- the seed, the output folder, and a few prediction and report settings.

:func:`load_study` reads and validates one; every error names the file and the key, and says
what was expected. :meth:`Study.to_toml` writes the study back with every default made
explicit, so a run folder's ``study.toml`` reruns the same study.

Example
-------
>>> from lbmm.study import load_study
>>> study = load_study("default")
>>> study.data.recipe
'default'
>>> [m.key for m in study.mixers][:3]
['bma', 'linear', 'dirichlet']
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from .data.errors import InputError

__all__ = [
    "BUILTIN_STUDIES",
    "MAX_INT",
    "MAX_SEED",
    "DataSpec",
    "MixerEntry",
    "PredictSpec",
    "ReportSpec",
    "Sampling",
    "Study",
    "StudyError",
    "ValidationSpec",
    "builtin_studies",
    "builtin_study_text",
    "load_study",
    "parse_prior",
    "prior_text",
    "scale_prior",
    "study_from_dict",
]

BUILTIN_STUDIES = ("default", "kejzlar2023", "masses")
MAX_INT = 2**31 - 1
"""The largest count a study may give (draws, chains, ...): JAX counts in 32-bit integers."""
MAX_SEED = 2**32 - 1
"""The largest seed (a JAX random key takes 64-bit integers; the run adds 1 for predictions)."""
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class StudyError(InputError):
    """A study file (or dictionary) is not valid; the message names the source and the key."""


# ---------------------------------------------------------------------- values


@dataclass(frozen=True)
class Sampling:
    """Sampler settings, the keyword arguments of :func:`lbmm.inference.fit` of the same
    names.

    ``dense_mass`` None (the key left out) lets each mixer choose its mass matrix.
    ``max_samples`` (left out: none) is a budget of draws per chain: after ``num_samples``
    the chains go on until the convergence bars hold or the budget is spent.
    ``method = "smc"`` samples by adaptive tempered SMC instead of NUTS: ``num_chains``
    populations of ``num_samples`` particles, settings in ``smc``
    (:data:`lbmm.inference.smc.SMC_DEFAULTS`); the NUTS-only settings are then refused in
    the same table and not inherited. ``method = "chees"`` samples by ChEES-HMC, every chain
    vectorized (warm-up, draws, budget and thinning as for NUTS; settings in ``chees``,
    :data:`lbmm.inference.chees.CHEES_DEFAULTS`); ``target_accept``, ``dense_mass``,
    ``max_tree_depth`` and ``chain_method`` are then refused in the same table and not
    inherited.
    """

    num_chains: int = 4
    num_warmup: int = 1000
    num_samples: int = 1000
    max_samples: int | None = None
    thinning: int = 1
    target_accept: float = 0.95
    dense_mass: bool | None = None
    max_tree_depth: int = 10
    init: str = "uniform"
    chain_method: str = "sequential"
    method: str = "nuts"
    smc: Mapping[str, Any] = field(default_factory=dict)
    chees: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    """Where the dataset comes from.

    Either ``recipe`` (a built-in dataset recipe) or ``observed`` + ``train_table`` +
    ``tables`` (bring your own tables; the same rules as the recipes build the splits).

    Attributes
    ----------
    recipe
        Name of a dataset recipe (``lbmm data`` lists them), or None for tables.
    data_dir
        Directory of the tables: passed to the recipe, and the base of relative table paths.
    models
        Optional subset (and order) of the models to mix.
    observable
        The observable computed from the tables (tables mode; a recipe fixes its own).
    observed
        The table of the observed values y (the newest evaluation).
    train_table
        An older evaluation: its measured nuclei are the training candidates.
    tables
        Model name → table (path, ``masstable:NAME`` or ``pybmc:NAME``).
    evidence
        Labels of the BMA evidence nuclei (tables mode).
    z_range
        Inclusive (Z_min, Z_max) kept in every split (tables mode).
    splits
        Explicit splits that replace the rule-made ones: split name → nucleus labels
        (``"132Sn"``) or the path of a CSV with ``Z`` and ``N`` columns.
    """

    recipe: str | None = "default"
    data_dir: str | None = None
    models: tuple[str, ...] | None = None
    observable: str = "S2n"
    observed: str | None = None
    train_table: str | None = None
    tables: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] | None = None
    z_range: tuple[int, int] | None = None
    splits: Mapping[str, tuple[str, ...] | str] = field(default_factory=dict)


@dataclass(frozen=True)
class MixerEntry:
    """One mixer of a study.

    Attributes
    ----------
    key
        Unique name of this entry in the run (file names, tables): by default the mixer name,
        with ``_density`` and ``_corrected`` appended when those apply.
    mixer
        A name of :data:`lbmm.mixers.MIXERS`.
    label
        Display name (default: the mixer's label, e.g. ``GBMM+D``, with ``(corr.)``).
    likelihood
        ``"mean"`` or ``"density"``.
    options
        Mixer options (e.g. ``{"gp": "hsgp"}``); checked against the mixer's known options.
    priors
        Prior name → distribution written as ``"Gamma(5, 10)"`` (NumPyro's names).
    corrected
        Fit on the models corrected by a GP on their training residuals (paper Eq. 2).
    sampling
        The study's sampling settings with this entry's overrides applied.
    seed
        The entry's seed (default: the study's).
    """

    key: str
    mixer: str
    label: str
    likelihood: str = "mean"
    options: Mapping[str, Any] = field(default_factory=dict)
    priors: Mapping[str, str] = field(default_factory=dict)
    corrected: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0


@dataclass(frozen=True)
class ReportSpec:
    """Report settings.

    Attributes
    ----------
    chains
        Proton numbers Z of the isotopic chains drawn with their prediction bands (empty:
        three well-populated chains chosen from the data).
    """

    chains: tuple[int, ...] = ()


@dataclass(frozen=True)
class ValidationSpec:
    """Validation folds inside the training split (:mod:`lbmm.data.folds`).

    Attributes
    ----------
    folds
        Fold kinds (``neutron_rich``, ``proton_rich``, ``regions``, ``kfold``): every mixer
        entry (but those on corrected models) is also fitted on each fold and scored on its
        held-out nuclei. Empty: none (each fold costs one more fit per entry).
    """

    folds: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictSpec:
    """Prediction settings of a run.

    Attributes
    ----------
    max_draws
        At most this many posterior draws (evenly thinned, every chain alike) make the
        predictions over the domain, the metrics and the figures; 0 uses them all. The stored
        posteriors keep every draw, and ``lbmm predict`` uses them all.
    """

    max_draws: int = 0


@dataclass(frozen=True)
class Study:
    """A validated study: data, settings, mixers and where results go."""

    name: str
    description: str = ""
    seed: int = 0
    output: str = ""
    data: DataSpec = field(default_factory=DataSpec)
    sampling: Sampling = field(default_factory=Sampling)
    mixers: tuple[MixerEntry, ...] = ()
    predict: PredictSpec = field(default_factory=PredictSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    validation: ValidationSpec = field(default_factory=ValidationSpec)
    source: str = "<dict>"
    """Where the study was read from (a path, or ``builtin:NAME``); not part of the study."""

    def mixer(self, key: str) -> MixerEntry:
        """The entry with this key."""
        for m in self.mixers:
            if m.key == key:
                return m
        raise KeyError(f"study {self.name!r} has no mixer {key!r}; mixers: {self.keys}")

    @property
    def keys(self) -> list[str]:
        """The mixer keys, in run order."""
        return [m.key for m in self.mixers]

    @property
    def needs_corrections(self) -> bool:
        """Whether some mixer runs on corrected models."""
        return any(m.corrected for m in self.mixers)

    def with_overrides(
        self,
        *,
        output: str | None = None,
        data_dir: str | None = None,
        seed: int | None = None,
        sampling: Mapping[str, Any] | None = None,
        mixers: Sequence[str] | None = None,
        folds: Sequence[str] | None = None,
    ) -> Study:
        """A copy with some settings replaced (what ``lbmm run`` options do), re-validated.

        ``sampling`` replaces those settings for the study *and* every mixer entry (so
        ``num_samples=50`` really gives 50 kept draws everywhere: thinning is reset to 1 and
        ``max_samples`` to none unless given too); ``mixers`` keeps only the entries with
        these keys, in this order; ``folds`` replaces the validation folds.
        """
        raw = self.to_dict()
        if output is not None:
            raw["output"] = output
        if data_dir is not None:
            raw["data"]["data_dir"] = data_dir
        if seed is not None:
            raw["seed"] = seed
            for m in raw["mixers"]:
                m["seed"] = seed
        if sampling:
            if "num_samples" in sampling and "thinning" not in sampling:
                sampling = {**sampling, "thinning": 1}  # the draws asked for, all kept
            if "num_samples" in sampling and "max_samples" not in sampling:
                sampling = {**sampling, "max_samples": None}
            for table in [raw["sampling"], *(m["sampling"] for m in raw["mixers"])]:
                new = sampling.get("method", table.get("method", "nuts"))
                if new != table.get("method", "nuts"):  # a new method: drop what it does not read
                    for k in _UNUSED[new]:
                        table.pop(k, None)
                skip = {"smc": _NUTS_ONLY, "chees": _NOT_CHEES}.get(new, ())
                table.update({k: v for k, v in sampling.items() if k not in skip})
        if folds is not None:
            raw["validation"]["folds"] = list(folds)
        if mixers is not None:
            by_key = {m["key"]: m for m in raw["mixers"]}
            unknown = [k for k in mixers if k not in by_key]
            if unknown:
                raise StudyError(
                    f"study {self.name!r}: no mixer {unknown[0]!r}; mixers: {self.keys}"
                )
            raw["mixers"] = [by_key[k] for k in mixers]
        return study_from_dict(raw, source=self.source)

    def to_dict(self) -> dict[str, Any]:
        """The study as plain data, every default explicit (``source`` left out)."""
        out = {
            "name": self.name,
            "description": self.description,
            "seed": self.seed,
            "output": self.output,
            "data": self._data_dict(),
            "sampling": _sampling_dict(self.sampling),
            "predict": asdict(self.predict),
            "report": {"chains": list(self.report.chains)},
            "validation": {"folds": list(self.validation.folds)},
            "mixers": [],
        }
        for m in self.mixers:
            d = asdict(m)
            d["sampling"] = _sampling_dict(m.sampling)
            d["options"] = dict(m.options)
            d["priors"] = dict(m.priors)
            out["mixers"].append(d)
        return _plain(out)

    def _data_dict(self) -> dict[str, Any]:
        d = _drop_none(asdict(self.data))
        if self.data.recipe is not None:  # a recipe fixes these
            for k in ("observable", "tables"):
                d.pop(k, None)
        return d

    def to_toml(self) -> str:
        """The study as TOML (every default explicit); :func:`load_study` reads it back."""
        header = f"# lbmm study {self.name!r}, every setting explicit\n"
        return header + dumps_toml(self.to_dict())


# ---------------------------------------------------------------------- TOML writing


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise StudyError(f"cannot write the non-finite number {v} to TOML")
        return repr(v)
    if isinstance(v, str):
        return '"' + _TOML_ESCAPE.sub(_toml_escape, v) + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise StudyError(f"cannot write a {type(v).__name__} to TOML")


# Characters a TOML basic string must escape: backslash, quote, and controls but tab.
_TOML_ESCAPE = re.compile(r'[\\"\x00-\x08\x0a-\x1f\x7f]')


def _toml_escape(m: re.Match) -> str:
    c = m.group()
    return {"\\": "\\\\", '"': '\\"', "\n": "\\n"}.get(c, f"\\u{ord(c):04x}")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def dumps_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Write plain data (str, int, float, bool, lists, nested dicts) as TOML."""
    lines = []
    tables = []
    for k, v in data.items():
        if isinstance(v, Mapping) and not (prefix and not v):
            tables.append((k, v))
        elif _is_table_array(v):
            tables.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in tables:
        name = f"{prefix}{_toml_key(k)}"
        if isinstance(v, Mapping):
            out += f"\n[{name}]\n" + dumps_toml(v, prefix=f"{name}.")
        else:
            for item in v:
                out += f"\n[[{name}]]\n" + dumps_toml(item, prefix=f"{name}.")
    return out


# ---------------------------------------------------------------------- validation helpers


class _Reader:
    """Reads one TOML table, checking types, and refuses keys it was not asked about."""

    def __init__(self, table: Any, path: str, source: str) -> None:
        self.path = path
        self.source = source
        if not isinstance(table, Mapping):
            self.fail(path or "the study", f"must be a table, got {_show(table)}")
        self.table = dict(table)
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, key: str, message: str) -> None:
        raise StudyError(f"study {self.source}: key {key!r} {message}")

    def has(self, name: str) -> bool:
        return name in self.table

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        return self.table.get(name, default)

    def string(self, name: str, default: str | None = None, *, choices=None) -> str | None:
        v = self.get(name, default)
        if v is None:
            return None
        if not isinstance(v, str):
            self.fail(self.key(name), f"must be a string, got {_show(v)}")
        if choices is not None and v not in choices:
            self.fail(self.key(name), f"must be one of {list(choices)}, got {v!r}")
        return v

    def optional_integer(self, name: str, default: int | None, *, minimum: int) -> int | None:
        if self.get(name, default) is None:
            return None
        return self.integer(name, default, minimum=minimum)

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int = MAX_INT
    ) -> int:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(self.key(name), f"must be an integer, got {_show(v)}")
        if minimum is not None and v < minimum:
            self.fail(self.key(name), f"must be at least {minimum}, got {v}")
        if v > maximum:
            self.fail(self.key(name), f"must be at most {maximum}, got {v}")
        return v

    def number(self, name: str, default: float, *, lo: float, hi: float) -> float:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int | float):
            self.fail(self.key(name), f"must be a number, got {_show(v)}")
        if not lo < v < hi:
            self.fail(self.key(name), f"must lie strictly between {lo} and {hi}, got {v}")
        return float(v)

    def boolean(self, name: str, default: bool | None, *, optional: bool = False) -> bool | None:
        v = self.get(name, default)
        if v is None and optional:
            return None
        if not isinstance(v, bool):
            self.fail(self.key(name), f"must be true or false, got {_show(v)}")
        return v

    def strings(self, name: str) -> tuple[str, ...] | None:
        v = self.get(name)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.fail(self.key(name), f"must be a list of strings, got {_show(v)}")
        return tuple(v)

    def integers(self, name: str) -> tuple[int, ...] | None:
        v = self.get(name)
        if v is None:
            return None
        if not isinstance(v, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            self.fail(self.key(name), f"must be a list of integers, got {_show(v)}")
        for x in v:
            if abs(x) > MAX_INT:
                self.fail(self.key(name), f"must list integers of at most {MAX_INT}, got {x}")
        return tuple(v)

    def mapping(self, name: str) -> dict[str, Any]:
        v = self.get(name, {})
        if not isinstance(v, Mapping):
            self.fail(self.key(name), f"must be a table, got {_show(v)}")
        return dict(v)

    def sub(self, name: str) -> _Reader:
        self.seen.add(name)
        return _Reader(self.table.get(name, {}), self.key(name), self.source)

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            self.fail(self.key(unknown[0]), f"is not a known setting; known here: {known}")


def _show(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def parse_prior(text: str):
    """:func:`lbmm.mixers.priors.parse_prior` (imported on first use: JAX loads then)."""
    from .mixers.priors import parse_prior as parse

    return parse(text)


def prior_text(d) -> str:
    """:func:`lbmm.mixers.priors.prior_text`."""
    from .mixers.priors import prior_text as text

    return text(d)


def scale_prior(prior, c: float) -> str | None:
    """:func:`lbmm.mixers.priors.scale_prior`."""
    from .mixers.priors import scale_prior as scale

    return scale(prior, c)


# ---------------------------------------------------------------------- parsing


#: Settings NUTS reads and SMC does not.
_NUTS_ONLY = ("num_warmup", "max_samples", "thinning", "target_accept", "dense_mass",
              "max_tree_depth", "init", "chain_method")  # fmt: skip
#: Settings NUTS reads and ChEES does not (its chains are always vectorized).
_NOT_CHEES = ("target_accept", "dense_mass", "max_tree_depth", "chain_method")
#: Settings each method does not read, left out of its table.
_UNUSED = {"nuts": ("smc", "chees"), "smc": (*_NUTS_ONLY, "chees"),
           "chees": (*_NOT_CHEES, "smc")}  # fmt: skip


def _sampling_dict(s: Sampling) -> dict[str, Any]:
    """The settings as plain data: the ones the sampler reads (NUTS or SMC), None left out."""
    d = _drop_none(asdict(s))
    d["smc"] = dict(s.smc)
    d["chees"] = dict(s.chees)
    return {k: v for k, v in d.items() if k not in _UNUSED[s.method]}


def _sampling(r: _Reader, base: Sampling) -> Sampling:
    from .data.errors import OptionError
    from .inference import CHAIN_METHODS, INITS, METHODS
    from .inference.chees import check_chees_options
    from .inference.smc import check_smc_options

    s = Sampling(
        num_chains=r.integer("num_chains", base.num_chains, minimum=1),
        num_warmup=r.integer("num_warmup", base.num_warmup, minimum=1),
        num_samples=r.integer("num_samples", base.num_samples, minimum=2),
        max_samples=r.optional_integer("max_samples", base.max_samples, minimum=2),
        thinning=r.integer("thinning", base.thinning, minimum=1),
        target_accept=r.number("target_accept", base.target_accept, lo=0.0, hi=1.0),
        dense_mass=r.boolean("dense_mass", base.dense_mass, optional=True),
        max_tree_depth=r.integer("max_tree_depth", base.max_tree_depth, minimum=1),
        init=r.string("init", base.init, choices=INITS),
        chain_method=r.string("chain_method", base.chain_method, choices=CHAIN_METHODS),
        method=r.string("method", base.method, choices=METHODS),
    )
    smc = r.mapping("smc")
    chees = r.mapping("chees")
    r.done()
    if s.method != "chees" and chees:
        r.fail(r.key("chees"), f"ChEES settings need method = 'chees' (method is {s.method!r})")
    if s.method == "smc":
        nuts_only = [k for k in _NUTS_ONLY if r.has(k)]
        if nuts_only:
            r.fail(r.key(nuts_only[0]), "is a NUTS setting; method 'smc' does not use it")
        try:
            check_smc_options({**base.smc, **smc})
        except OptionError as err:
            r.fail(r.key("smc"), str(err).removeprefix("smc: ").removeprefix("smc."))
        defaults = Sampling()
        return replace(s, smc={**base.smc, **smc}, max_samples=None, thinning=1,
                       **{k: getattr(defaults, k) for k in _NUTS_ONLY
                          if k not in ("max_samples", "thinning")})  # fmt: skip
    if smc:
        r.fail(r.key("smc"), f"SMC settings need method = 'smc' (method is {s.method!r})")
    s = replace(s, smc={}, chees={})
    if s.method == "chees":
        unused = [k for k in _NOT_CHEES if r.has(k)]
        if unused:
            r.fail(r.key(unused[0]), "is a NUTS setting; method 'chees' does not use it")
        try:
            check_chees_options({**base.chees, **chees})
        except OptionError as err:
            r.fail(r.key("chees"), str(err).removeprefix("chees: ").removeprefix("chees."))
        if s.init != "uniform" and r.has("init"):
            r.fail(r.key("init"), f"{s.init!r} starts every chain close together; method "
                   "'chees' needs chains that start apart: 'uniform'")  # fmt: skip
        defaults = Sampling()
        s = replace(s, chees={**base.chees, **chees}, init="uniform",
                    **{k: getattr(defaults, k) for k in _NOT_CHEES})  # fmt: skip
    if s.max_samples is not None and s.max_samples < s.num_samples:
        r.fail(r.key("max_samples"), f"must be at least num_samples ({s.num_samples}), "
               f"got {s.max_samples}")  # fmt: skip
    if s.thinning > s.num_samples:
        r.fail(r.key("thinning"), f"must not exceed num_samples ({s.num_samples})")
    return s


def _data(r: _Reader) -> DataSpec:
    from .data import OBSERVABLES, RECIPES

    tables_mode = bool(r.table.get("tables")) or r.has("observed") or r.has("train_table")
    recipe = r.string("recipe", None if tables_mode else "default")
    if recipe is not None and recipe not in RECIPES:
        r.fail(r.key("recipe"), f"must name a dataset recipe {sorted(RECIPES)}, got {recipe!r}")
    data_dir = r.string("data_dir")
    models = r.strings("models")
    observable = r.string("observable", "S2n")
    observed = r.string("observed")
    train_table = r.string("train_table")
    tables = r.mapping("tables")
    evidence = r.strings("evidence")
    z_range = r.integers("z_range")
    splits_raw = r.mapping("splits")
    if recipe is not None and tables_mode:
        r.fail(r.key("recipe"), "and tables/observed/train_table exclude each other: give one")
    if recipe is None:
        for name, v in (("observed", observed), ("train_table", train_table)):
            if v is None:
                r.fail(r.key(name), "is required when the data come from tables (no recipe)")
        if not tables:
            r.fail(r.key("tables"), "must map at least one model name to a table")
        for k, v in tables.items():
            if not isinstance(v, str):
                r.fail(
                    r.key(f"tables.{k}"),
                    f"must be a path, 'masstable:NAME' or 'pybmc:NAME', got {_show(v)}",
                )
        canon = {s.lower(): s for s in OBSERVABLES}
        if observable.lower() not in canon:
            r.fail(r.key("observable"), f"must be one of {list(OBSERVABLES)}, got {observable!r}")
        observable = canon[observable.lower()]
    else:
        for name, given in (("observable", r.table.get("observable")), ("evidence", evidence),
                            ("z_range", z_range)):  # fmt: skip
            if given is not None:
                r.fail(r.key(name), "applies to tables only; a recipe fixes its own")
        observable = "S2n"
    if z_range is not None and (len(z_range) != 2 or z_range[0] > z_range[1]):
        r.fail(r.key("z_range"), f"must be [Z_min, Z_max] with Z_min <= Z_max, got {z_range}")
    if models is not None and (not models or len(set(models)) != len(models)):
        r.fail(r.key("models"), f"must list distinct model names, got {list(models)}")
    splits: dict[str, tuple[str, ...] | str] = {}
    for k, v in splits_raw.items():
        if isinstance(v, str):
            splits[k] = v
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            splits[k] = tuple(v)
        else:
            r.fail(
                r.key(f"splits.{k}"),
                f"must be a non-empty list of nucleus labels (e.g. '132Sn') or the path of a "
                f"CSV with Z and N columns, got {_show(v)}",
            )
    r.done()
    return DataSpec(
        recipe=recipe,
        data_dir=data_dir,
        models=models,
        observable=observable,
        observed=observed,
        train_table=train_table,
        tables=tables,
        evidence=evidence,
        z_range=tuple(z_range) if z_range is not None else None,
        splits=splits,
    )


def _default_key(mixer: str, likelihood: str, corrected: bool, noise: str | None = None) -> str:
    key = mixer
    if likelihood != "mean":
        key += f"_{likelihood}"
    if noise:
        key += f"_{noise}"
    if corrected:
        key += "_corrected"
    return key


def _mixer(r: _Reader, base: Sampling, seed: int) -> MixerEntry:
    from .mixers import MIXERS
    from .mixers.global_ import LIKELIHOODS

    name = r.string("mixer")
    if name is None:
        r.fail(r.key("mixer"), f"is required: one of {sorted(MIXERS)}")
    if name not in MIXERS:
        r.fail(r.key("mixer"), f"must name a mixer {sorted(MIXERS)}, got {name!r}")
    spec = MIXERS[name]
    likelihood = r.string("likelihood", "mean", choices=LIKELIHOODS)
    if spec.model is None and likelihood != "mean":
        r.fail(r.key("likelihood"), f"does not apply to mixer {name!r} (closed form with its "
               "own noise model): leave it out")  # fmt: skip
    corrected = r.boolean("corrected", False)
    options = r.mapping("options")
    known = dict(spec.defaults)
    for k, v in options.items():
        if k not in known:
            r.fail(
                r.key(f"options.{k}"),
                f"is not an option of mixer {name!r}; known options: {sorted(known) or 'none'}",
            )
        try:
            _toml_value(v)  # the run writes the study back (study.toml)
        except StudyError:
            r.fail(r.key(f"options.{k}"), f"must be a string, a finite number, true/false or a "
                   f"list or table of those, got {_show(v)}")  # fmt: skip
    noise = options.get("noise", known.get("noise"))
    if "noise" in options:
        from .mixers.noise import check_noise

        try:
            check_noise(noise, likelihood)
        except ValueError as err:
            r.fail(r.key("options.noise"), f"is not valid here: {err}")
    # the paper's constant-σ mixers keep the paper's names; other noise models are named
    tag = noise if noise is not None and noise != "constant" else None
    key = r.string("key", _default_key(name, likelihood, corrected, tag))
    if not _KEY_RE.match(key):
        r.fail(r.key("key"), f"must be letters, digits, '_', '-' or '.', got {key!r}")
    label = r.string("label", spec.label + (f" ({tag})" if tag else "")
                     + (" (corr.)" if corrected else ""))  # fmt: skip
    priors = r.mapping("priors")
    known_priors = spec.known_priors(options)
    for k in priors:
        if k not in known_priors:
            r.fail(r.key(f"priors.{k}"), f"is not a prior of mixer {name!r}"
                   + (f" with noise {noise!r}" if noise else "") + "; its priors: "
                   + (", ".join(sorted(known_priors)) or "none (closed form)"))  # fmt: skip
    for k, v in priors.items():
        if not isinstance(v, str):
            r.fail(r.key(f"priors.{k}"), f"must be a string such as 'Gamma(5, 10)', got {_show(v)}")
        try:
            parse_prior(v)
        except ValueError as err:
            r.fail(r.key(f"priors.{k}"), f"is not a valid prior: {err}")
    entry_seed = r.integer("seed", seed, minimum=0, maximum=MAX_SEED)
    sampling = _sampling(r.sub("sampling"), base)
    r.done()
    return MixerEntry(
        key=key,
        mixer=name,
        label=label,
        likelihood=likelihood,
        options=options,
        priors=priors,
        corrected=corrected,
        sampling=sampling,
        seed=entry_seed,
    )


def study_from_dict(raw: Mapping[str, Any], *, source: str = "<dict>") -> Study:
    """Validate plain data (as read from TOML) into a :class:`Study`.

    Raises
    ------
    StudyError
        Naming ``source`` and the first bad key, and saying what was expected.
    """
    r = _Reader(raw, "", source)
    name = r.string("name")
    if not name:
        r.fail("name", "is required: a short name for the study (used in the output folder)")
    if not _KEY_RE.match(name):
        r.fail("name", f"must be letters, digits, '_', '-' or '.', got {name!r}")
    description = r.string("description", "")
    seed = r.integer("seed", 0, minimum=0, maximum=MAX_SEED)
    output = r.string("output", str(Path("runs") / name))
    if not output:
        r.fail("output", "must be a folder path")
    data = _data(r.sub("data"))
    sampling = _sampling(r.sub("sampling"), Sampling())
    pr = r.sub("predict")
    predict = PredictSpec(max_draws=pr.integer("max_draws", 0, minimum=0))
    pr.done()
    rep = r.sub("report")
    report = ReportSpec(chains=rep.integers("chains") or ())
    rep.done()
    val = r.sub("validation")
    from .data import FOLD_KINDS

    folds = val.strings("folds") or ()
    for f in folds:
        if f not in FOLD_KINDS:
            val.fail(val.key("folds"), f"must list fold kinds {list(FOLD_KINDS)}, got {f!r}")
    if len(set(folds)) != len(folds):
        val.fail(val.key("folds"), f"lists a fold kind twice: {list(folds)}")
    validation = ValidationSpec(folds=tuple(folds))
    val.done()
    mixers_raw = r.get("mixers")
    if not isinstance(mixers_raw, list) or not mixers_raw:
        r.fail("mixers", "must be a non-empty array of tables ([[mixers]] with mixer = NAME)")
    mixers = tuple(
        _mixer(_Reader(m, f"mixers[{i}]", source), sampling, seed) for i, m in enumerate(mixers_raw)
    )
    keys = [m.key for m in mixers]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        r.fail("mixers", f"has two entries with key {dup[0]!r}; give one of them key = ...")
    r.done()
    return Study(
        name=name,
        description=description,
        seed=seed,
        output=output,
        data=data,
        sampling=sampling,
        mixers=mixers,
        predict=predict,
        report=report,
        validation=validation,
        source=source,
    )


def builtin_studies() -> dict[str, str]:
    """Built-in study name → its one-line description."""
    out = {}
    for name in BUILTIN_STUDIES:
        raw = tomllib.loads(builtin_study_text(name))
        out[name] = raw.get("description", "")
    return out


def builtin_study_text(name: str) -> str:
    """The TOML text of a built-in study (with its comments)."""
    if name not in BUILTIN_STUDIES:
        raise StudyError(f"no built-in study {name!r}; built-in studies: {list(BUILTIN_STUDIES)}")
    return resources.files("lbmm").joinpath("studies", f"{name}.toml").read_text("utf-8")


def load_study(study: str | Path | Study = "default") -> Study:
    """Read and validate a study: a built-in name (``lbmm studies``) or a TOML file path.

    Raises
    ------
    StudyError
        For an unknown name, an unreadable file, invalid TOML or an invalid setting (the
        message names the file and the key).
    """
    if isinstance(study, Study):
        return study
    text = str(study)
    if text in BUILTIN_STUDIES and not Path(text).exists():
        return study_from_dict(tomllib.loads(builtin_study_text(text)), source=f"builtin:{text}")
    path = Path(text)
    if not path.is_file():
        raise StudyError(
            f"no study {text!r}: not a built-in study {list(BUILTIN_STUDIES)} and no such file"
        )
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise StudyError(f"study {path}: cannot read: {err}") from err
    except ValueError as err:  # TOMLDecodeError, or an integer of more than 4300 digits
        raise StudyError(f"study {path}: invalid TOML: {err}") from err
    st = study_from_dict(raw, source=str(path))
    # Relative table paths and data_dir are relative to the study file.
    return _anchor_paths(st, path.parent)


def _anchor(p: str | None, base: Path) -> str | None:
    if p is None or p.startswith(("masstable:", "pybmc:")) or Path(p).is_absolute():
        return p
    return str((base / p).resolve())


def _anchor_paths(st: Study, base: Path) -> Study:
    d = st.data
    data_dir = _anchor(d.data_dir, base)
    table_base = Path(data_dir) if data_dir else base
    splits = {k: (_anchor(v, table_base) if isinstance(v, str) else v) for k, v in d.splits.items()}
    data = replace(
        d,
        data_dir=data_dir,
        observed=_anchor(d.observed, table_base),
        train_table=_anchor(d.train_table, table_base),
        tables={k: _anchor(v, table_base) for k, v in d.tables.items()},
        splits=splits,
    )
    return replace(st, data=data)
