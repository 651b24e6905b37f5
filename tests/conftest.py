"""Shared fixtures: the reference-data folder (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DATA = Path(os.environ.get("MULTISCALE_REFERENCE_DATA", ROOT.parent / "shared" / "reference-data"))


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """Path to ``../shared/reference-data``; skips the test when it is absent."""
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DATA}")
    return REFERENCE_DATA
