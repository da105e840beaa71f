"""Shared fixtures: where the shared data lives, and skips with a reason where it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MASSEXPLORER = SHARED / "data" / "massexplorer"


@pytest.fixture(scope="session")
def massexplorer_dir() -> Path:
    """The MassExplorer CSVs of ../shared; skips the test where they are absent."""
    if not (MASSEXPLORER / "AME2020.csv").is_file():
        pytest.skip(f"needs the shared MassExplorer tables at {MASSEXPLORER} (absent here)")
    return MASSEXPLORER
