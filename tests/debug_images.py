"""Test helper: with $FACETWIN_TEST_IMAGES set, write a row of linear images as one sRGB PNG to look at."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def save_debug_row(name: str, images: list[np.ndarray]) -> None:
    """Write ``images`` ((H, W, 3) linear, NaN shown black) side by side to $FACETWIN_TEST_IMAGES/name.png."""
    folder = os.environ.get("FACETWIN_TEST_IMAGES")
    if not folder:
        return
    from PIL import Image

    from facetwin.frames import linear_to_srgb

    row = np.concatenate([linear_to_srgb(np.nan_to_num(im)) for im in images], axis=1)
    Path(folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray((row * 255 + 0.5).astype(np.uint8)).save(Path(folder) / f"{name}.png")
