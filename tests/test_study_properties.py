"""Property-based tests of the study loader (hypothesis).

Valid studies (a minimal one, one on own tables that sets every section, and the built-in
ones) are written as TOML after a mutation: a key misspelled, a value of the wrong type, an
unknown mixer, a new key in unicode, a huge or non-finite number, a broken prior.

:func:`~lbmm.study.load_study` must then either return a study that writes back (``to_toml``)
to a file that loads as the same study, or raise a :class:`~lbmm.study.StudyError` that names
the file and the key at fault; never another exception, and nothing written next to the
study file.
"""

from __future__ import annotations

import copy
import datetime
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpyro.distributions as dist
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lbmm.mixers import MIXERS
from lbmm.study import (
    MAX_SEED,
    Study,
    StudyError,
    builtin_study_text,
    load_study,
    parse_prior,
)

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

MINIMAL = {"name": "t", "mixers": [{"mixer": "bma"}]}
OWN_TABLES = {
    "name": "own",
    "description": "own tables; every section set",
    "seed": 7,
    "output": "runs/own",
    "data": {
        "data_dir": "tables",
        "models": ["A", "B"],
        "observable": "S2n",
        "observed": "ame.csv",
        "train_table": "masstable:AME2003",
        "tables": {"A": "a.csv", "B": "masstable:FRDM95"},
        "evidence": ["132Sn", "208Pb"],
        "z_range": [8, 100],
        "splits": {"test": ["48Ca", "132Sn"], "extra": "extra.csv"},
    },
    "sampling": {
        "num_chains": 2,
        "num_warmup": 30,
        "num_samples": 40,
        "max_samples": 80,
        "thinning": 2,
        "target_accept": 0.9,
        "dense_mass": False,
        "max_tree_depth": 8,
        "init": "median",
        "chain_method": "vectorized",
    },
    "predict": {"max_draws": 10},
    "report": {"chains": [50, 82]},
    "validation": {"folds": ["kfold", "regions"]},
    "mixers": [
        {
            "mixer": "linear",
            "key": "lin",
            "label": "L",
            "likelihood": "density",
            "options": {"noise": "student_t"},
            "priors": {"sigma": "Gamma(5, 10)", "nu": "Gamma(2, 0.1)"},
            "seed": 3,
            "sampling": {"num_samples": 60, "max_samples": 120},
        },
        {"mixer": "gp_dirichlet", "corrected": True, "options": {"gp": "hsgp", "hsgp_m": [10, 12]}},
        {"mixer": "bma"},
    ],
}
BASES = [
    MINIMAL,
    OWN_TABLES,
    tomllib.loads(builtin_study_text("default")),
    tomllib.loads(builtin_study_text("kejzlar2023")),
]
DISTRIBUTIONS = sorted(
    n
    for n in dir(dist)
    if isinstance(getattr(dist, n), type) and issubclass(getattr(dist, n), dist.Distribution)
)


# ---------------------------------------------------------------------- writing TOML


@dataclass(frozen=True)
class Raw:
    """TOML text written as is (for what Python values cannot say)."""

    text: str


def toml_string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif (ord(c) < 0x20 and c != "\t") or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    """TOML for plain data, written independently of the code under test."""
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, datetime.date | datetime.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    assert isinstance(v, dict), v
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(raw: dict) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in raw.items())


# ---------------------------------------------------------------------- paths in a study


Path_ = tuple[str | int, ...]


def key_paths(d: dict, prefix: Path_ = ()) -> list[Path_]:
    """Every key of plain data, and every table in an array of tables (``mixers``)."""
    out: list[Path_] = []
    for k, v in d.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += key_paths(v, (*prefix, k))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for i, x in enumerate(v):
                out.append((*prefix, k, i))
                out += key_paths(x, (*prefix, k, i))
    return out


def item_paths(raw: dict) -> list[Path_]:
    """Every item of a list of values (``report.chains``, ``data.z_range``, ...)."""
    out: list[Path_] = []
    for p in key_paths(raw):
        v = get(raw, p)
        if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
            out += [(*p, j) for j in range(len(v))]
    return out


def table_paths(raw: dict) -> list[Path_]:
    return [(), *(p for p in key_paths(raw) if isinstance(get(raw, p), dict))]


def get(d: Any, path: Path_) -> Any:
    for p in path:
        d = d[p]
    return d


def dotted(path: Path_) -> str:
    """A key as the study's messages write it: ``mixers[0].sampling.num_samples``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def names(path: Path_) -> str:
    return f"key {dotted(path)!r}"


def named_as(path: Path_) -> Path_:
    """The key an error names: an item of a list of values is named as the list."""
    return path[:-1] if isinstance(path[-1], int) and path[:-1] != ("mixers",) else path


def user_named(path: Path_) -> bool:
    """A key the user chooses freely (a model's table, a split)."""
    return len(path) >= 3 and path[-3] == "data" and path[-2] in ("tables", "splits")


def option_value(path: Path_) -> bool:
    """Under a mixer's options: checked against the mixer and the data by the run."""
    return "options" in path[:-1]


def kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    for name, t in (("str", str), ("list", list), ("dict", dict)):
        if isinstance(v, t):
            return name
    return "datetime"


def wrong_type(old: Any, new: Any) -> bool:
    if kind(old) != kind(new):
        return True
    return isinstance(old, int) and not isinstance(old, bool) and isinstance(new, float)


ANY_VALUE = st.one_of(
    st.booleans(),
    st.integers(-5, 5),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3) | st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2),
    st.dates(),
    st.datetimes(min_value=datetime.datetime(1000, 1, 1)),
)
HUGE = st.one_of(
    st.integers(min_value=MAX_SEED + 1),
    st.integers(max_value=-(2**31) - 1),
    st.sampled_from([2**63, 2**64, 10**100, -(2**63), 1e300, -1e308, math.inf, -math.inf]),
    st.just(math.nan),
)


# ---------------------------------------------------------------------- loading


def load(tmp_path: Path, text: str) -> Study | StudyError:
    """Load the study text from a file; check the outcome; return the study or the error."""
    path = tmp_path / "study.toml"
    path.write_text(text, "utf-8")
    before = sorted(tmp_path.iterdir())
    try:
        study = load_study(path)
    except StudyError as err:
        assert str(err).startswith(f"study {path}: "), str(err)
        assert sorted(tmp_path.iterdir()) == before  # nothing written
        return err
    assert sorted(tmp_path.iterdir()) == before
    assert isinstance(study, Study)
    again = tmp_path / "again.toml"
    again.write_text(study.to_toml(), "utf-8")
    assert load_study(again).to_dict() == study.to_dict()
    again.unlink()
    return study


def expect_error(result: Study | StudyError, *paths: Path_) -> None:
    assert isinstance(result, StudyError), f"expected a StudyError naming {paths}, got a study"
    assert any(names(p) in str(result) for p in paths), f"expected {paths} named: {result}"


@pytest.mark.parametrize("base", range(len(BASES)))
def test_valid_studies_load_and_write_back(tmp_path, base):
    assert tomllib.loads(toml_document(BASES[base])) == BASES[base]
    assert isinstance(load(tmp_path, toml_document(BASES[base])), Study)


# ---------------------------------------------------------------------- mutations


@st.composite
def misspelled(draw, key: str) -> str:
    i = draw(st.integers(0, max(len(key) - 1, 0)))
    how = draw(st.sampled_from(["drop", "double", "swap", "case", "unicode", "space", "alike"]))
    if not key or how == "unicode":
        return key[:i] + draw(st.characters(min_codepoint=0x80)) + key[i:]
    if how == "drop":
        return key[:i] + key[i + 1 :]
    if how == "double":
        return key[:i] + key[i] * 2 + key[i + 1 :]
    if how == "swap" and i + 1 < len(key):
        return key[:i] + key[i + 1] + key[i] + key[i + 2 :]
    if how == "case":
        return key[:i] + key[i].swapcase() + key[i + 1 :]
    if how == "space":
        return draw(st.sampled_from([f" {key}", f"{key} ", key.replace("_", "-"), f"{key}\t"]))
    return key.translate(str.maketrans("aeoic", "аеоіс"))  # Cyrillic look-alikes


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_a_misspelled_key_is_named(tmp_path, base, data):
    raw = copy.deepcopy(base)
    path = data.draw(st.sampled_from([p for p in key_paths(raw) if isinstance(p[-1], str)]))
    new = data.draw(misspelled(path[-1]))
    table = get(raw, path[:-1])
    assume(new not in table)
    table[new] = table.pop(path[-1])
    result = load(tmp_path, toml_document(raw))
    if user_named(path) and isinstance(result, Study):
        return
    # the new key is unknown, or the old one was required
    expect_error(result, (*path[:-1], new), path)


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_a_value_of_the_wrong_type_is_named(tmp_path, base, data):
    raw = copy.deepcopy(base)
    path = data.draw(st.sampled_from(key_paths(raw) + item_paths(raw)))
    old = get(raw, path)
    new = data.draw(ANY_VALUE)
    assume(wrong_type(old, new))
    get(raw, path[:-1])[path[-1]] = new
    result = load(tmp_path, toml_document(raw))
    if option_value(path):
        return  # the run checks option values against the mixer and the data
    if user_named(path) and path[-2] == "splits" and isinstance(result, Study):
        return  # a split given by labels or by the path of a CSV: both are fine
    expect_error(result, named_as(path))


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_an_unknown_mixer_is_named(tmp_path, base, data):
    raw = copy.deepcopy(base)
    i = data.draw(st.integers(0, len(raw["mixers"]) - 1))
    name = data.draw(st.text(max_size=20) | st.sampled_from(["BMA", "linear ", "gp-dirichlet"]))
    assume(name not in MIXERS)
    raw["mixers"][i]["mixer"] = name
    expect_error(load(tmp_path, toml_document(raw)), ("mixers", i, "mixer"))


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_an_unknown_unicode_key_is_named(tmp_path, base, data):
    raw = copy.deepcopy(base)
    path = data.draw(st.sampled_from(table_paths(raw)))
    key = data.draw(st.text(min_size=1, max_size=10).filter(lambda k: not k.isascii()))
    get(raw, path)[key] = data.draw(ANY_VALUE)
    result = load(tmp_path, toml_document(raw))
    if user_named((*path, key)) and isinstance(result, Study):
        return  # a model or split may have any name
    expect_error(result, (*path, key))


@PROPERTY
@given(base=st.sampled_from(BASES[1:]), data=st.data())  # those with numbers
def test_a_huge_number_is_named(tmp_path, base, data):
    """Numbers no run can use (beyond 32-bit counts and seeds, non-finite) are refused;
    integers beyond what TOML can hold make the file invalid TOML."""
    raw = copy.deepcopy(base)
    numbers = [p for p in key_paths(raw) + item_paths(raw) if kind(get(raw, p)) == "number"]
    path = data.draw(st.sampled_from(numbers))
    digits = data.draw(st.booleans())
    get(raw, path[:-1])[path[-1]] = Raw("1" + "0" * 5000) if digits else data.draw(HUGE)
    result = load(tmp_path, toml_document(raw))
    if digits:
        assert isinstance(result, StudyError) and "invalid TOML" in str(result), result
    elif not option_value(path):
        expect_error(result, named_as(path))


@st.composite
def prior_texts(draw) -> str:
    number = st.one_of(
        st.floats().map(repr),
        st.integers(0, 500).map(lambda k: "1" + "0" * k),
        st.sampled_from(["-1", "0", "1", "1e400", "1" + "0" * 400, "[1, 2]", "[]", "'a'"]),
        st.sampled_from(["True", "None", "(1, 2)", "1" * 5000]),
    )
    name = draw(st.sampled_from([*DISTRIBUTIONS, "Nope", "gamma", "Gamma "]))
    args = ", ".join(draw(st.lists(number, max_size=3)))
    return draw(st.sampled_from([f"{name}({args})", f"{name}({args}", f"{name}[{args}]"]))


@PROPERTY
@given(base=st.sampled_from([MINIMAL, OWN_TABLES]), prior=prior_texts() | st.text(max_size=20))
def test_a_prior_is_a_distribution_or_named(tmp_path, base, prior):
    raw = copy.deepcopy(base)
    raw["mixers"][0] = {"mixer": "linear", "priors": {"sigma": prior}}
    result = load(tmp_path, toml_document(raw))
    if isinstance(result, StudyError):
        expect_error(result, ("mixers", 0, "priors", "sigma"))


def test_every_numpyro_name_gives_a_continuous_distribution_or_a_value_error():
    """parse_prior (whose ValueError the loader names by key) on every NumPyro name."""
    for name in DISTRIBUTIONS:
        for args in ("1", "1, 1"):
            try:
                d = parse_prior(f"{name}({args})")
            except ValueError:
                continue
            assert d.support is not None and not d.support.is_discrete, f"{name}({args})"


@PROPERTY
@given(base=st.sampled_from(BASES), data=st.data())
def test_any_mutations_give_a_study_or_a_study_error(tmp_path, base, data):
    """Several mutations at once: a study that writes back, or a StudyError."""
    raw = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = key_paths(raw)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent = get(raw, path[:-1])
        how = data.draw(st.sampled_from(["rename", "value", "huge", "delete", "add"]))
        if how == "rename" and isinstance(path[-1], str):
            parent[data.draw(misspelled(path[-1]))] = parent.pop(path[-1])
        elif how in ("value", "huge"):
            parent[path[-1]] = data.draw(ANY_VALUE if how == "value" else HUGE)
        elif how == "delete" and isinstance(path[-1], str):
            del parent[path[-1]]
        elif how == "add":
            table = get(raw, data.draw(st.sampled_from(table_paths(raw))))
            table[data.draw(st.text(max_size=10))] = data.draw(ANY_VALUE)
    load(tmp_path, toml_document(raw))
