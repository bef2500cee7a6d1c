"""Shared test fixtures: the tiny fake datasets and the read-only real samples in ``../shared``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "data"))

import make_fixtures  # noqa: E402


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ``shared/`` folder (real data samples, weights).

    Found via ``FM_SHARED_DIR`` or next to the repository. CI sets ``FM_REQUIRE_SHARED=1`` so that a missing folder
    fails loudly there instead of skipping the real-data tests.
    """
    path = Path(os.environ.get("FM_SHARED_DIR", REPO.parent / "shared"))
    if not path.is_dir():
        if os.environ.get("FM_REQUIRE_SHARED") == "1":
            pytest.fail(f"shared folder {path} not found but FM_REQUIRE_SHARED=1")
        pytest.skip(f"shared folder {path} not found (set FM_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def fixture_roots(tmp_path_factory) -> dict[str, Path]:
    """Tiny datasets in the three published layouts, generated once per session."""
    return make_fixtures.make_all(tmp_path_factory.mktemp("fixtures"))
