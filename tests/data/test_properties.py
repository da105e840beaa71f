"""Property-based tests of every table reader (hypothesis).

Valid files of each format (AME fixed width in both layouts, plain CSV, MassExplorer CSV) are
built from random nuclei, then mutated: truncated at a random byte, bytes inserted, replaced
or deleted, numeric fields replaced by NaN/inf/huge numbers/unicode, CSV columns swapped,
dropped or duplicated, lines duplicated, blank lines and other line ends added, or the whole
file replaced by nothing, random bytes or random text.

Every reader must then either return a valid table (finite BE, integer Z, N >= 0, no nucleus
twice) or raise a :class:`~lbmm.data.DataError` whose message names the file and, for an
error about the content, the line (and the column where one is at fault). Any other
exception is a bug in the reader: the test lets it through so that it shows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lbmm.data import (
    DataError,
    MassTable,
    masstable_names,
    read_ame,
    read_csv,
    read_massexplorer,
    read_table,
)
from lbmm.data.tables import MASS_EXCESS_H, MASS_EXCESS_N, MAX_BE_PER_NUCLEON, MAX_Z_OR_N

from .ame_fixtures import HEADER_2003, HEADER_2020, ame_line

# A cast that overflows (a huge Z read as int64) warns before it gives garbage: an error here.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Errors about the file as a whole carry no line; every other error must name its line.
WHOLE_FILE = re.compile(
    r"file not found|expected a file|cannot read|empty file|no data rows|no data lines"
    r"|missing column|unknown table format|unknown masstable table"
)
# Errors about a line as a whole (not one of its fields) carry a line but no column.
WHOLE_LINE = re.compile(r"duplicate nucleus|cells as in the header|not a readable CSV")

# Character columns (0-based, stop excluded) of the AME fields, from the published formats.
AME_FIELDS = {
    "2003": {"mass": (28, 41), "unc": (41, 52)},
    "2020": {"mass": (28, 42), "unc": (42, 54)},
}
AME_COLUMN = {"mass": {"mass excess", "BE"}, "unc": {"mass excess uncertainty", "uncertainty"}}

# (file name, format) of every reader's files.
FILES = [
    ("mass.mas03", "2003"),
    ("mass.mas12", "2003"),
    ("mass16.txt", "2003"),
    ("mass_1.mas20", "2020"),
    ("mine.csv", "csv"),
    ("AME2020.csv", "massexplorer"),
]
READERS: dict[str, Callable[[Path], MassTable]] = {
    "2003": read_ame,
    "2020": read_ame,
    "csv": read_csv,
    "massexplorer": read_massexplorer,
}
CSV_COLUMNS = {
    "csv": ["Z", "N", "BE", "uBE", "estimated"],
    "massexplorer": ["Z", "N", "BE", "uBE", "eBE", "QDE2t", "Unnamed: 11"],
}
USED_COLUMNS = {"z", "n", "be", "ube", "estimated", "ebe"}
FLAGS = {True: ["1", "true", "True", "1.0"], False: ["0", "false", "FALSE", "0.0"]}

# Numbers no reader may take for a value, whatever the column.
NOT_A_NUMBER = [
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e999", "abc", "1.2.3", "--1",
    "1e", "0x1F", "NA", "None", "①", "½", "∞", "é", "😀", "\x00", "1\u00a02",
]  # fmt: skip
BAD_VALUES = {
    "Z": [*NOT_A_NUMBER, "", "8.5", "-3", "1e30", "99999999999999999999", str(MAX_Z_OR_N + 1)],
    "N": [*NOT_A_NUMBER, "", "0.25", "-1", "-1e30", "123456789012345678901234567890"],
    "BE": [*NOT_A_NUMBER, "", "1e30", "-1e300", "127619.3e3"],
    "uBE": [*NOT_A_NUMBER, "", "-1", "-1e-3"],
    "estimated": ["", "maybe", "2", "yes", "nan", "tru", "😀"],
    "eBE": ["", "maybe", "-1", "0.5", "é"],
    "mass": [*NOT_A_NUMBER, "1e30", "9" * 20],
    "unc": [*NOT_A_NUMBER, "-1", "-0.5"],
}
# Weird tokens for random fields: the bad values and some that may well be valid.
WEIRD = sorted({t for v in BAD_VALUES.values() for t in v} | {"0", "-0", "1", "1e-300", "١٢"})


# ---------------------------------------------------------------------- valid files


@dataclass(frozen=True)
class Nucleus:
    z: int
    n: int
    be: float  # MeV
    unc: float  # MeV
    estimated: bool


@dataclass
class Doc:
    """A file as lines: ``kinds[i]`` is ``"header"``, ``"data"`` or ``"noise"``;
    ``nucleus[i]`` the index of the nucleus on a data line."""

    fmt: str
    lines: list[str]
    kinds: list[str]
    nucleus: list[int | None]
    columns: list[str]  # CSV header (empty for AME)
    newline: str = "\n"

    def text(self) -> str:
        return self.newline.join(self.lines) + self.newline

    def data(self) -> bytes:
        return self.text().encode("utf-8")

    def line_of(self, i: int) -> int:
        """The 1-based file line of list entry i."""
        return i + 1

    def data_lines(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == "data"]


@st.composite
def nuclei(draw, max_size: int = 6) -> list[Nucleus]:
    keys = draw(
        st.lists(
            # i3 field of N - Z in AME files: -99 to 999. A > 1: the neutron and 1H lines
            # of an AME file set its Δ_n and Δ_H (their BE is 0 by definition), so they are
            # not drawn with arbitrary binding energies.
            st.tuples(st.integers(0, 120), st.integers(0, 180)).filter(
                lambda zn: sum(zn) > 1 and zn[1] - zn[0] >= -99
            ),
            min_size=1,
            max_size=max_size,
            unique=True,
        )
    )
    out = []
    for z, n in keys:
        per_nucleon = draw(st.floats(0.5, 9.0))
        unc_kev = draw(st.floats(0.0, 500.0))
        est = draw(st.booleans())
        mass_kev = round(
            z * MASS_EXCESS_H * 1e3 + n * MASS_EXCESS_N * 1e3 - per_nucleon * (z + n) * 1e3, 5
        )
        be = (z * MASS_EXCESS_H * 1e3 + n * MASS_EXCESS_N * 1e3 - mass_kev) / 1e3
        out.append(Nucleus(z, n, be, round(unc_kev, 5) / 1e3, est))
    return out


def _mass_kev(nuc: Nucleus) -> float:
    return nuc.z * MASS_EXCESS_H * 1e3 + nuc.n * MASS_EXCESS_N * 1e3 - nuc.be * 1e3


def _ame_doc(fmt: str, nucs: list[Nucleus], header: bool) -> Doc:
    head = (HEADER_2003 if fmt == "2003" else HEADER_2020).rstrip("\n").split("\n")
    lines = head if header else []
    kinds = ["header"] * len(lines)
    index: list[int | None] = [None] * len(lines)
    for i, nuc in enumerate(nucs):
        lines.append(
            ame_line(
                nuc.z, nuc.n, _mass_kev(nuc), nuc.unc * 1e3, layout=fmt, estimated=nuc.estimated
            )
        )
        kinds.append("data")
        index.append(i)
    return Doc(fmt, lines, kinds, index, [])


def _csv_doc(fmt: str, nucs: list[Nucleus], columns: list[str], draw) -> Doc:
    lines = [",".join(columns)]
    for nuc in nucs:
        cells = {
            "Z": str(nuc.z),
            "N": str(nuc.n),
            "BE": repr(nuc.be),
            "uBE": repr(nuc.unc),
            "estimated": draw(st.sampled_from(FLAGS[nuc.estimated])),
            "eBE": "1" if nuc.estimated else "0",
            "QDE2t": draw(st.sampled_from(["0.1", "", "-3.5e2", "x"])),
            "Unnamed: 11": draw(st.sampled_from(["", "7", "note"])),
        }
        lines.append(",".join(cells[c] for c in columns))
    n = len(nucs)
    return Doc(fmt, lines, ["header"] + ["data"] * n, [None, *range(n)], list(columns))


@st.composite
def valid_docs(draw, formats: tuple[str, ...] = ("2003", "2020", "csv", "massexplorer")):
    """(file name, Doc, nuclei) of a valid file in one of the formats."""
    name, fmt = draw(st.sampled_from([f for f in FILES if f[1] in formats]))
    nucs = draw(nuclei())
    if fmt in ("2003", "2020"):
        doc = _ame_doc(fmt, nucs, header=draw(st.booleans()))
    else:
        columns = draw(st.permutations(CSV_COLUMNS[fmt]))
        doc = _csv_doc(fmt, nucs, list(columns), draw)
    doc.newline = draw(st.sampled_from(["\n", "\r\n"]))
    return name, doc, nucs


# ---------------------------------------------------------------------- the properties


def n_lines(data: bytes) -> int:
    """Lines of a file (universal newlines, as the readers count them)."""
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return text.count("\n") + 1


def check_error(err: DataError, path: Path, data: bytes | None) -> None:
    """A DataError names the file, and the line (and column) of a content error."""
    msg = str(err)
    assert err.path == str(path), msg
    assert msg.startswith(f"{path}"), msg
    if err.row is None:
        assert WHOLE_FILE.search(msg), f"an error about the content must name its line: {msg}"
        assert err.column is None, msg
        return
    if data is not None:
        assert 1 <= err.row <= n_lines(data), f"line {err.row} is not in the file: {msg}"
    assert f"line {err.row}" in msg, msg
    if err.column is None:
        assert WHOLE_LINE.search(msg), f"an error about a value must name its column: {msg}"
    else:
        assert f"column {err.column!r}" in msg, msg


def check_table(table: MassTable, path: Path, data: bytes) -> None:
    """The invariants of every table a reader returns."""
    assert isinstance(table, MassTable) and len(table) >= 1
    assert table.Z.dtype == np.int64 and table.N.dtype == np.int64
    assert ((table.Z >= 0) & (table.Z <= MAX_Z_OR_N)).all()
    assert ((table.N >= 0) & (table.N <= MAX_Z_OR_N)).all()
    assert np.isfinite(table.BE).all() and np.isfinite(table.uncertainty).all()
    assert (table.uncertainty >= 0).all()
    assert (np.abs(table.BE) <= MAX_BE_PER_NUCLEON * np.maximum(table.A, 1)).all()
    assert len(set(zip(table.Z.tolist(), table.N.tolist(), strict=True))) == len(table)
    assert table.estimated.dtype == bool
    assert table.provenance.path == str(path)
    assert table.provenance.sha256 == hashlib.sha256(data).hexdigest()


def outcome(reader: Callable[[Path], MassTable], path: Path, data: bytes | None):
    """The table read, or the DataError raised (both checked); anything else propagates."""
    try:
        table = reader(path)
    except DataError as err:
        check_error(err, path, data)
        return err
    assert data is not None
    check_table(table, path, data)
    return table


def read_both(path: Path, fmt: str, data: bytes):
    """Read with the format's reader and with read_table; tables read by both agree."""
    first = outcome(READERS[fmt], path, data)
    second = outcome(read_table, path, data)
    if isinstance(first, MassTable) and isinstance(second, MassTable):
        np.testing.assert_array_equal(first.Z, second.Z)
        np.testing.assert_array_equal(first.N, second.N)
        np.testing.assert_array_equal(first.BE, second.BE)
    return first, second


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def expect_table(result, nucs: list[Nucleus]) -> None:
    assert isinstance(result, MassTable), f"expected a table, got {result!r}"
    df = result.to_frame()
    assert len(df) == len(nucs)
    for nuc in nucs:
        row = df.loc[(nuc.z, nuc.n)]
        assert row["BE"] == pytest.approx(nuc.be, abs=1e-6)
        assert row["uBE"] == pytest.approx(nuc.unc, abs=1e-8)


def expect_error(result, row: int | None = None, columns: set[str] | None = None) -> DataError:
    assert isinstance(result, DataError), f"expected a DataError, got a table {result!r}"
    if row is not None:
        assert result.row == row, f"expected line {row}: {result}"
    if columns is not None:
        assert result.column in columns, f"expected column {columns}: {result}"
    return result


# ---------------------------------------------------------------------- valid files


@PROPERTY
@given(doc=valid_docs())
def test_valid_files_read_back(tmp_path, doc):
    name, doc, nucs = doc
    data = doc.data()
    first, second = read_both(write(tmp_path, name, data), doc.fmt, data)
    expect_table(first, nucs)
    expect_table(second, nucs)
    for result in (first, second):
        flags = result.to_frame().loc[[(u.z, u.n) for u in nucs], "estimated"]
        assert flags.tolist() == [u.estimated for u in nucs]


# ---------------------------------------------------------------------- byte mutations


@st.composite
def byte_mutation(draw, data: bytes) -> bytes:
    kind = draw(
        st.sampled_from(["truncate", "insert", "replace", "delete", "empty", "binary", "text",
                         "utf16", "latin1"])
    )  # fmt: skip
    size = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(0, size))]
    if kind == "insert":
        at = draw(st.integers(0, size))
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if kind == "replace":
        at = draw(st.integers(0, size - 1))
        new = draw(st.binary(min_size=1, max_size=8))
        return data[:at] + new + data[at + len(new) :]
    if kind == "delete":
        at = draw(st.integers(0, size - 1))
        return data[:at] + data[at + draw(st.integers(1, 40)) :]
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"\r\n\r\n", b" ", b"\xef\xbb\xbf"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(st.text(max_size=200)).encode("utf-8")
    text = data.decode("utf-8", errors="replace")
    if kind == "utf16":
        return text.encode("utf-16")
    return text.replace("e", "é").encode("latin-1", errors="replace")


@PROPERTY
@given(doc=valid_docs(), data=st.data())
def test_byte_mutations_give_a_table_or_a_data_error(tmp_path, doc, data):
    name, doc, _ = doc
    content = doc.data()
    for _ in range(data.draw(st.integers(1, 3))):
        content = data.draw(byte_mutation(content)) if content else content
    read_both(write(tmp_path, name, content), doc.fmt, content)


# ---------------------------------------------------------------------- field mutations


def _replace_field(doc: Doc, i: int, field: str, token: str) -> None:
    """Put token in place of one field of line i (AME: right-aligned in the field's width)."""
    line = doc.lines[i]
    if doc.fmt in ("2003", "2020"):
        start, stop = AME_FIELDS[doc.fmt][field]
        width = stop - start
        doc.lines[i] = line[:start] + token.rjust(width)[:width] + line[stop:]
    else:
        cells = line.split(",")
        cells[doc.columns.index(field)] = token
        doc.lines[i] = ",".join(cells)


def _fields(doc: Doc) -> list[str]:
    if doc.fmt in ("2003", "2020"):
        return ["mass", "unc"]
    return [c for c in doc.columns if c in BAD_VALUES]


@PROPERTY
@given(doc=valid_docs(), data=st.data())
def test_weird_numbers_give_a_table_or_a_data_error(tmp_path, doc, data):
    """NaN, inf, huge numbers, unicode and random text in random fields."""
    name, doc, _ = doc
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.sampled_from(doc.data_lines()))
        field = data.draw(st.sampled_from(_fields(doc)))
        token = data.draw(st.one_of(st.sampled_from(WEIRD), st.text(max_size=12)))
        _replace_field(doc, i, field, token.replace("\n", "").replace("\r", ""))
    content = doc.data()
    read_both(write(tmp_path, name, content), doc.fmt, content)


@st.composite
def noisy(draw, doc: Doc) -> Doc:
    """Insert lines that every reader skips (blank lines; AME: comment and page lines,
    including form feeds and unicode line separators, which are not line ends)."""
    if doc.fmt in ("2003", "2020"):
        noise = ["", "   ", "0   a comment line", "1\x0c   A T O M I C", "\x0c", "0 \x85 \u2028 x"]
    else:
        noise = ["", "  "]
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(doc.lines)))
        doc.lines.insert(at, draw(st.sampled_from(noise)))
        doc.kinds.insert(at, "noise")
        doc.nucleus.insert(at, None)
    return doc


@PROPERTY
@given(doc=valid_docs(), data=st.data())
def test_a_bad_value_is_named_at_its_line_and_column(tmp_path, doc, data):
    """One bad value in an otherwise valid file: the error names exactly its line and column,
    whatever blank lines, comment lines or line ends come before it."""
    name, doc, _ = doc
    doc = data.draw(noisy(doc))
    i = data.draw(st.sampled_from(doc.data_lines()))
    field = data.draw(st.sampled_from(_fields(doc)))
    token = data.draw(st.sampled_from(BAD_VALUES[field]))
    _replace_field(doc, i, field, token)
    content = doc.data()
    path = write(tmp_path, name, content)
    columns = AME_COLUMN[field] if doc.fmt in ("2003", "2020") else {field}
    for result in read_both(path, doc.fmt, content):
        expect_error(result, row=doc.line_of(i), columns=columns)


@PROPERTY
@given(doc=valid_docs(), data=st.data())
def test_a_duplicated_line_names_both_lines(tmp_path, doc, data):
    name, doc, _ = doc
    doc = data.draw(noisy(doc))
    i = data.draw(st.sampled_from(doc.data_lines()))
    at = data.draw(st.integers(doc.kinds.index("data") if doc.fmt in ("csv", "massexplorer")
                               else 0, len(doc.lines)))  # fmt: skip
    k = doc.nucleus[i]
    doc.lines.insert(at, doc.lines[i])
    doc.kinds.insert(at, "data")
    doc.nucleus.insert(at, k)
    same = [j for j, m in enumerate(doc.nucleus) if m == k]
    content = doc.data()
    path = write(tmp_path, name, content)
    for result in read_both(path, doc.fmt, content):
        err = expect_error(result, row=doc.line_of(max(same)))
        assert f"also at line {doc.line_of(min(same))}" in str(err)


@PROPERTY
@given(doc=valid_docs(formats=("2003", "2020")), data=st.data())
def test_a_cut_ame_data_line_is_an_error(tmp_path, doc, data):
    """A data line cut (truncated download) inside its mass excess is not silently dropped."""
    name, doc, _ = doc
    i = data.draw(st.sampled_from(doc.data_lines()))
    start, _ = AME_FIELDS[doc.fmt]["mass"]
    _, stop = AME_FIELDS[doc.fmt]["unc"]
    doc.lines[i] = doc.lines[i][: data.draw(st.integers(start - 8, stop - 5))]
    cut_at_end = data.draw(st.booleans())
    if cut_at_end:
        doc.lines = doc.lines[: i + 1]
    content = doc.data()
    if cut_at_end:
        content = content.rstrip(b"\r\n")
    path = write(tmp_path, name, content)
    for result in read_both(path, doc.fmt, content):
        expect_error(result, row=doc.line_of(i))


# ---------------------------------------------------------------------- CSV columns


def _columns(doc: Doc) -> list[list[str]]:
    return [line.split(",") for line in doc.lines]


def _set_columns(doc: Doc, rows: list[list[str]]) -> None:
    doc.lines = [",".join(r) for r in rows]
    doc.columns = rows[0]


@PROPERTY
@given(doc=valid_docs(formats=("csv", "massexplorer")), data=st.data())
def test_csv_columns_moved_swapped_or_duplicated(tmp_path, doc, data):
    name, doc, nucs = doc
    rows = _columns(doc)
    width = len(rows[0])
    kind = data.draw(
        st.sampled_from(["permute", "swap_names", "duplicate", "rename_as_other", "drop",
                         "case", "extra_field_everywhere", "extra_field", "missing_field"])
    )  # fmt: skip
    i, j = data.draw(st.lists(st.integers(0, width - 1), min_size=2, max_size=2, unique=True))
    data_row = data.draw(st.integers(1, len(rows) - 1))
    if kind == "permute":
        order = data.draw(st.permutations(range(width)))
        rows = [[r[k] for k in order] for r in rows]
    elif kind == "swap_names":
        rows[0][i], rows[0][j] = rows[0][j], rows[0][i]
    elif kind == "duplicate":
        rows = [[*r, r[i]] for r in rows]
    elif kind == "rename_as_other":
        rows[0][j] = rows[0][i]
    elif kind == "drop":
        rows = [r[:i] + r[i + 1 :] for r in rows]
    elif kind == "case":
        rows[0][i] = data.draw(st.sampled_from([rows[0][i].lower(), rows[0][i].upper(),
                                                f" {rows[0][i]} "]))  # fmt: skip
    elif kind == "extra_field_everywhere":
        rows = [r if k == 0 else [*r, "1"] for k, r in enumerate(rows)]
    elif kind == "extra_field":
        rows[data_row] = [*rows[data_row], "1"]
    else:
        rows[data_row] = rows[data_row][:-1]
    _set_columns(doc, rows)
    content = doc.data()
    path = write(tmp_path, name, content)
    results = read_both(path, doc.fmt, content)
    names = [c.strip().lower() for c in rows[0]]
    if kind in ("permute", "case"):
        for result in results:
            expect_table(result, nucs)
    elif kind in ("duplicate", "rename_as_other") and rows[0][i].lower() in USED_COLUMNS:
        for result in results:
            err = expect_error(result, row=1)
            assert names.count(err.column.strip().lower()) > 1, str(err)
    elif kind == "extra_field_everywhere":
        for result in results:  # not read as an index column that shifts the others
            expect_error(result, row=2)
    elif kind == "extra_field":
        for result in results:
            expect_error(result, row=data_row + 1)


# ---------------------------------------------------------------------- paths and names


@PROPERTY
@given(
    stem=st.one_of(
        st.text(min_size=1, max_size=40),
        st.integers(200, 400).map(lambda k: "é" * k),  # a name too long for the file system
        st.sampled_from(["a\x00b", ".", "..", " ", "mass.mas03", "x.csv"]),
    ).filter(lambda s: "/" not in s),
    suffix=st.sampled_from([".csv", ".mas03", ".mas20", ".txt", ".dat", ""]),
    kind=st.sampled_from(["missing", "directory"]),
)
def test_missing_files_and_odd_names_are_data_errors(tmp_path, stem, suffix, kind):
    """Missing files, directories, names too long or holding NUL: a DataError naming them."""
    path = tmp_path / f"{stem}{suffix}"
    if kind == "directory":
        try:
            path.mkdir()
        except (OSError, ValueError):
            return  # a name the file system refuses: the "missing" case covers it
    for reader in (read_table, read_ame, read_csv, read_massexplorer):
        outcome(reader, path, None)


@PROPERTY
@given(name=st.text(max_size=300))
def test_unknown_masstable_names_are_data_errors(name):
    assume(name not in masstable_names())
    with pytest.raises(DataError, match="unknown masstable table"):
        read_table(f"masstable:{name}")
