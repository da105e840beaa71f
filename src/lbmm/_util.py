"""Small helpers shared by several layers (no statistics here)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write_text", "jsonable", "new_file_mode", "write_json"]


def jsonable(obj: Any) -> Any:
    """Plain JSON data from nested mappings, sequences, NumPy arrays and scalars; non-finite
    floats become None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def new_file_mode(folder: bool = False) -> int:
    """The mode a new file (or folder) gets under the process's umask (temporary files and
    folders are made private; what is handed on is set to this before it is renamed)."""
    return (0o777 if folder else 0o666) & ~_UMASK


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to a temporary file beside ``path``, then rename it into place: a reader
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    """Write data as strict, indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
