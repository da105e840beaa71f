"""Errors raised by the data layer."""

from __future__ import annotations

__all__ = ["DataError", "InputError", "OptionError"]


class InputError(ValueError):
    """Bad input from the user (a file, a setting, an option): the message says which and
    what was expected. The command line shows these as one-line errors; every other
    exception is a bug and keeps its traceback."""


class OptionError(InputError):
    """A mixer option, prior or fit setting that is unknown or out of range."""


class DataError(InputError):
    """Bad input data: the message names the file, row and column and what was expected.

    Parameters
    ----------
    message
        What is wrong and what was expected.
    path
        The file the error is about, if any.
    row
        The 1-based line number in that file (header lines counted), if any.
    column
        The column name, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = path
        self.row = row
        self.column = column
        where = []
        if path is not None:
            where.append(str(path))
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
