"""Shared fixtures: the head model (from the user cache or $FACETWIN_MODEL) and the shared folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FACETWIN_SHARED", REPO.parent / "shared"))
PHOTOS = SHARED / "photos"


@pytest.fixture(scope="session")
def model():
    from facetwin.model import load_model

    return load_model()


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    if not PHOTOS.is_dir():
        pytest.fail(f"shared photos not found at {PHOTOS}; set FACETWIN_SHARED")
    return PHOTOS
