"""Is a portrait a photograph, or a stylised picture (drawing, painting, cartoon, pencil sketch)?

Geometry fits a stylised face as well as a photographed one, but its colours are not a physical skin albedo,
so the report flags it. :func:`stylisation_score` is a hand-made heuristic on image statistics: no learned
weights, nothing downloaded.

Where it looks. The face box grown by :data:`FACE_GROW`, seen at two scales: the *texture view*, only ever
shrunk (area averaging) to at most :data:`TEXTURE_SIDE_PX`, so that no interpolation invents smoothness; and
the *structure view*, resampled up or down to :data:`STRUCTURE_SIDE_PX`, so that a 40 px face of a thumbnail
and a 1000 px face are compared at the same size relative to the face. Without a face box the whole image is
looked at, background included, which is much less reliable: a plain studio backdrop is flat and smooth like a
cartoon's (two of the twelve test photos score as stylised that way), so pass the detected face's box.
Levels are 8-bit sRGB levels (1/255) of the luma ``0.299 R + 0.587 G + 0.114 B``; gradients are 3x3 Sobel,
in levels per pixel of the view.

Cues, each reported in the result. The ranges quoted are those of the twelve test photos of
``shared/photos`` (also as JPEG at q = 25-30, grayscale, sepia and 160 px thumbnails) and of OpenCV
stylisations of them, made at 512 px (``tests/test_stylised.py``):

* ``flat_fill``: share of the texture view whose 3x3 neighbourhood varies by less than half a level in every
  channel (clipped pixels left out). Sensor noise, film grain and skin texture make exact flats rare in
  photographs (at most 1 %; 11 % after JPEG at q = 25, whose 8x8 blocks flatten smooth backgrounds);
  cartoons, posterised and cel-shaded pictures are mostly flat fill (32-91 %).
* ``shading``: share of the structure view with a gentle gradient, 0.25-4 levels per pixel. Light falling on
  a rounded face gives photographs broad smooth ramps (20-64 % of pixels); a pencil sketch is paper and
  strokes, with next to no gentle ramps (6-13 %).
* ``dark_lines_structure``: share of the structure view at least 40 levels darker than its closing by a
  5 px disc (the black-hat): strokes and outlines. Photographs: 0-8 % (brows, lashes, glasses frames);
  sketches 4-20 %.
* ``fine_ratio``: mean absolute finest band of the texture view (luma minus its Gaussian blur of sigma
  1 px) over the mean absolute band between sigmas 2 and 4 px. Photographs, whose spectra fall roughly as
  1/f and whose lenses blur the finest scale, stay at 0.45-0.8 (0.92 for thumbnails); pencil hatching puts
  more energy at the finest scale (0.73-2).
* ``dark_lines``: share of the texture view in *ink* lines: 40 levels below the closing and less than half
  as bright as it. Photographs: at most 2.5 % (6 % for thumbnails); painted and cartoon outlines 1-14 %.
* ``still``: share of the texture view with a gradient below 0.25 levels per pixel (clipped pixels left
  out): what edge-preserving, painterly smoothing and flat fill leave. Photographs: under 7 % (15 % after
  JPEG at q = 25); painterly filters 4-22 %, flat fill 30 % and more.
* ``gradient_median_ratio``: median over mean gradient magnitude of the texture view. Photographs have
  texture and shading everywhere (0.42-0.77); a painterly picture is smooth regions between sharp edges, so
  its median gradient is small against its mean (0.2-0.57), a flat one's is 0.

Votes. Each cue ``x`` gives a vote ``v = log((x + e) / (p + e)) / log((s + e) / (p + e))`` with ``e =``
:data:`CUE_FLOOR`: 0 at a value ``p`` typical of photographs, 1 at a value ``s`` typical of that kind of
stylised picture (see :data:`FAMILIES`), on a log scale because the cues are shares and ratios spanning
decades; clipped to [:data:`VOTE_MIN`, :data:`VOTE_MAX`] so that no single cue outvotes the others without
limit. The votes are gathered in three families, one per kind of stylisation; a family's score is the mean of
its votes, capped by its *required* votes:

* ``flat_fill`` (required ``flat_fill``): cartoons, posterised and cel-shaded pictures, flat drawings;
* ``sketch`` (required ``shading``, then ``dark_lines_structure`` and ``fine_ratio``): pencil and ink
  drawings. Without the required lack of shading, a hard-sharpened or grainy photograph would pass for a
  sketch on its fine strokes alone;
* ``painterly`` (``gradient_median_ratio``, ``dark_lines``, ``still``): paintings and edge-preserving
  "artistic" filters (``cv2.stylization``), which keep the shading but not the texture.

The ``score`` is the largest family score and ``kind`` that family (the families overlap: a flat cartoon
also scores as painterly). The picture is stylised when the score reaches :data:`THRESHOLD`, 0.5: halfway
between typical photograph and typical stylised picture. On the test set the real photos score at most 0.27,
their JPEG, grayscale, sepia and thumbnail versions at most 0.46, the stylised versions at least 0.62.

Known limits. Grayscale or sepia is no cue (old photographs are grayscale), and face paint or make-up on a
real face is a photograph. Fragile: photographs sharpened hard (an unsharp mask of amount 1 at sigma 1 px
brings grainy ones to about 0.55), very heavy JPEG (q = 25: up to 0.46) and faces under about 40 px, where the
texture cues have few pixels; OpenCV's default, very dark ``pencilSketch`` (``shade_factor=0.02``), whose
strokes fill the page, mostly passes as a photograph (0.0-0.6); edge-preserving smoothing without outlines (a
"beauty filter") scores 0.0-0.8.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

FACE_GROW = 0.5
"""The face box is grown by this fraction of its size (about the hairline and jaw) before the cues look."""
TEXTURE_SIDE_PX = 256
"""Longest side of the texture view: enough skin for noise statistics, and fast on a 3000 px photo."""
STRUCTURE_SIDE_PX = 128
"""Longest side of the structure view: the grown face at a fixed size, so strokes and shading ramps of a
thumbnail and of a large photo are measured at the same scale."""
MIN_REGION_PX = 8
"""A region narrower than this (after clipping to the image) holds nothing to measure."""

LEVEL = 1.0 / 255.0
"""One 8-bit level: the unit of the thresholds below, as the input was most likely stored in 8 bits."""
FLAT_RANGE_LEVELS = 0.5
"""A 3x3 neighbourhood is flat fill when every channel varies by less than this: half a level, so that only
equal 8-bit values (or equal averages of them) count, never a one-level step."""
CLIP_LOW = 0.02
CLIP_HIGH = 0.98
"""Pixels with all channels below CLIP_LOW or above CLIP_HIGH are clipped (blown highlights, crushed
shadows, white paper): flat in photographs too, so they are left out of ``flat_fill`` and ``still``."""
STILL_GRADIENT_LEVELS = 0.25
"""Gradient (levels per pixel) below which a pixel is still: 8-bit rounding of a smooth ramp leaves more."""
SHADING_GRADIENT_LEVELS = (0.25, 4.0)
"""Gentle gradients, levels per pixel of the structure view: a face's shading ramps, not noise or edges."""
LINE_KERNEL_PX = 5
"""Disc of the black-hat: keeps dark lines up to 3-4 px wide, the outlines and strokes of a drawing."""
LINE_DEPTH_LEVELS = 40.0
LINE_DEPTH_FRACTION = 0.5
"""A line pixel is at least LINE_DEPTH_LEVELS darker than its surroundings (the closing) and less than half
as bright: ink, not a pore, a shadow or the soft edge of a brow or glasses frame in a small photo."""
FINE_SIGMA_PX = 1.0
COARSE_SIGMAS_PX = (2.0, 4.0)
"""Gaussian sigmas of the finest band and of the reference band of ``fine_ratio``."""
RATIO_FLOOR = 1e-6
"""Keeps the ratios finite on a constant image (which then has no texture at all)."""

CUE_FLOOR = 0.01
"""Added to a cue before its logarithm is taken: shares below 1 % all count as none."""
VOTE_MIN = -1.0
VOTE_MAX = 2.0
"""Votes are clipped to this range: one very photographic or very stylised cue cannot outvote the rest."""
THRESHOLD = 0.5
"""Stylised when the score reaches this: halfway between typical photo (0) and stylised (1) values."""


class Vote(NamedTuple):
    """One cue's vote in a family: ``photo`` and ``stylised`` are its typical values (vote 0 and 1)."""

    cue: str
    photo: float
    stylised: float
    required: bool = False
    """A required vote caps the family's score: the family needs this cue, the others only add to it."""


FAMILIES: dict[str, tuple[Vote, ...]] = {
    "flat_fill": (Vote("flat_fill", 0.03, 0.6, required=True),),
    "sketch": (
        Vote("shading", 0.4, 0.08, required=True),
        Vote("dark_lines_structure", 0.02, 0.12),
        Vote("fine_ratio", 0.65, 1.0),
    ),
    "painterly": (
        Vote("gradient_median_ratio", 0.55, 0.3),
        Vote("dark_lines", 0.01, 0.05),
        Vote("still", 0.02, 0.12),
    ),
}
"""The kinds of stylisation and the votes each is judged by (see the module docstring)."""


def stylisation_score(
    image_srgb: np.ndarray, face_box: tuple[float, float, float, float] | None = None
) -> dict:
    """How much a portrait looks like a drawing, painting, cartoon or sketch rather than a photograph.

    Args:
        image_srgb: (H, W, 3) float sRGB in [0, 1] (values outside are clipped), as from
            :func:`facetwin.io.read_photo`. Any size; it is looked at in small copies.
        face_box: ``(x0, y0, x1, y1)`` pixels of ``image_srgb``, the face (e.g. a
            :class:`facetwin.detect.Face` box), or None to look at the whole image. Parts outside the image
            are cut off.

    Returns:
        A dict with ``stylised`` (bool, ``score >= THRESHOLD``), ``score`` (float, the largest family score:
        about 0 typical of photographs, 1 typical of stylised pictures, at most :data:`VOTE_MAX`), ``kind``
        (str, the family with that score: ``"flat_fill"``, ``"sketch"`` or ``"painterly"``), ``families``
        (dict family -> float score) and each cue of the module docstring by name (float).

    Raises:
        ValueError: ``image_srgb`` is not an (H, W, 3) floating-point array of finite values, or
            ``face_box`` is not four finite numbers with ``x0 < x1``, ``y0 < y1`` that overlap the image by at
            least :data:`MIN_REGION_PX` pixels each way.

    Example:
        >>> import numpy as np
        >>> flat = np.zeros((64, 64, 3), np.float32) + np.float32([0.9, 0.7, 0.6])
        >>> stylisation_score(flat)["stylised"]
        True
    """
    image = _checked_image(image_srgb)
    # Clip and convert only the region looked at: a 3000 px photo need not be copied whole.
    region = np.clip(_region(image, face_box), 0.0, 1.0).astype(np.float32)
    texture = _resized(region, TEXTURE_SIDE_PX, upscale=False)
    structure = _resized(region, STRUCTURE_SIDE_PX, upscale=True)
    cues = _texture_cues(texture) | _structure_cues(structure)
    families = {name: _family_score(votes, cues) for name, votes in FAMILIES.items()}
    kind = max(families, key=families.__getitem__)
    score = families[kind]
    return {"stylised": bool(score >= THRESHOLD), "score": score, "kind": kind, "families": families} | cues


def _checked_image(image_srgb: np.ndarray) -> np.ndarray:
    """``image_srgb`` as an array once it is (H, W, 3), floating point and finite; else ValueError."""
    image = np.asarray(image_srgb)
    if image.ndim != 3 or image.shape[2] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image_srgb: expected (H, W, 3) float, got {image.shape} {image.dtype}")
    if image.shape[0] < MIN_REGION_PX or image.shape[1] < MIN_REGION_PX:
        raise ValueError(f"image_srgb: expected at least {MIN_REGION_PX} px each way, got {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image_srgb: contains NaN or infinite values")
    return image


def _region(image: np.ndarray, face_box: tuple[float, float, float, float] | None) -> np.ndarray:
    """The grown face box cut from ``image`` (a view), or the whole image without a box."""
    if face_box is None:
        return image
    box = np.asarray(face_box, np.float64)
    if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"face_box: expected finite (x0, y0, x1, y1) with x0 < x1, y0 < y1, got {face_box}")
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w = (box[2] - box[0]) * (1 + FACE_GROW) / 2
    half_h = (box[3] - box[1]) * (1 + FACE_GROW) / 2
    height, width = image.shape[:2]
    x0, x1 = max(0, round(cx - half_w)), min(width, round(cx + half_w))
    y0, y1 = max(0, round(cy - half_h)), min(height, round(cy + half_h))
    if x1 - x0 < MIN_REGION_PX or y1 - y0 < MIN_REGION_PX:
        raise ValueError(
            f"face_box: {face_box} leaves {max(x1 - x0, 0)}x{max(y1 - y0, 0)} px of the "
            f"{width}x{height} image, need at least {MIN_REGION_PX} px each way"
        )
    return image[y0:y1, x0:x1]


def _resized(region: np.ndarray, side: int, upscale: bool) -> np.ndarray:
    """``region`` with its longest side ``side``: area averaging down, bicubic up (only if ``upscale``)."""
    import cv2

    height, width = region.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0 and not upscale:
        return np.ascontiguousarray(region)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    # Bicubic overshoots at edges; clip back to the valid range.
    return np.clip(cv2.resize(np.ascontiguousarray(region), size, interpolation=interpolation), 0.0, 1.0)


def _luma_levels(view: np.ndarray) -> np.ndarray:
    """(h, w) float32 luma of an sRGB view, in 8-bit levels (0..255)."""
    return (view @ np.float32([0.299 * 255, 0.587 * 255, 0.114 * 255])).astype(np.float32)


def _gradient(luma: np.ndarray) -> np.ndarray:
    """(h, w) float32 Sobel gradient magnitude, levels per pixel."""
    import cv2

    # The 3x3 Sobel kernel weighs a unit ramp by 8: divide to get levels per pixel.
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return np.hypot(gx, gy)


def _dark_lines(luma: np.ndarray, ink: bool) -> float:
    """Share of pixels of ``luma`` in dark lines: well below its closing by a LINE_KERNEL_PX disc.

    Args:
        luma: (h, w) float32, levels.
        ink: also require the line to be less than half as bright as its surroundings.
    """
    import cv2

    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (LINE_KERNEL_PX, LINE_KERNEL_PX))
    closed = cv2.morphologyEx(luma, cv2.MORPH_CLOSE, disc, borderType=cv2.BORDER_REPLICATE)
    depth = closed - luma
    line = depth > LINE_DEPTH_LEVELS
    if ink:
        line &= depth > LINE_DEPTH_FRACTION * closed
    return float(np.mean(line))


def _texture_cues(view: np.ndarray) -> dict[str, float]:
    """``flat_fill``, ``still``, ``fine_ratio``, ``gradient_median_ratio``, ``dark_lines`` of the texture view.

    Args:
        view: (h, w, 3) float32 sRGB in [0, 1].
    """
    import cv2

    clipped = (view.min(axis=2) > CLIP_HIGH) | (view.max(axis=2) < CLIP_LOW)
    kernel = np.ones((3, 3), np.uint8)
    spread = (cv2.dilate(view, kernel) - cv2.erode(view, kernel)).max(axis=2)
    flat = (spread < FLAT_RANGE_LEVELS * LEVEL) & ~clipped

    luma = _luma_levels(view)
    gradient = _gradient(luma)
    still = (gradient < STILL_GRADIENT_LEVELS) & ~clipped

    def blur(sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(luma, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    fine = float(np.mean(np.abs(luma - blur(FINE_SIGMA_PX))))
    coarse = float(np.mean(np.abs(blur(COARSE_SIGMAS_PX[0]) - blur(COARSE_SIGMAS_PX[1]))))
    mean_gradient = float(gradient.mean())
    return {
        "flat_fill": float(flat.mean()),
        "still": float(still.mean()),
        "fine_ratio": fine / max(coarse, RATIO_FLOOR),
        "gradient_median_ratio": float(np.median(gradient)) / max(mean_gradient, RATIO_FLOOR),
        "dark_lines": _dark_lines(luma, ink=True),
    }


def _structure_cues(view: np.ndarray) -> dict[str, float]:
    """``shading`` and ``dark_lines_structure`` of the structure view ((h, w, 3) float32 sRGB in [0, 1])."""
    luma = _luma_levels(view)
    gradient = _gradient(luma)
    low, high = SHADING_GRADIENT_LEVELS
    return {
        "shading": float(np.mean((gradient > low) & (gradient <= high))),
        "dark_lines_structure": _dark_lines(luma, ink=False),
    }


def _family_score(votes: tuple[Vote, ...], cues: dict[str, float]) -> float:
    """Mean of the optional votes (or of all, if all are required), capped by each required vote."""
    values = [_vote(cues[v.cue], v.photo, v.stylised) for v in votes]
    required = [x for x, v in zip(values, votes) if v.required]
    optional = [x for x, v in zip(values, votes) if not v.required]
    score = float(np.mean(optional if optional else required))
    return min([score, *required])


def _vote(value: float, photo: float, stylised: float) -> float:
    """0 at the photo-typical value, 1 at the stylised-typical one, on a log scale, clipped."""
    vote = math.log((value + CUE_FLOOR) / (photo + CUE_FLOOR)) / math.log(
        (stylised + CUE_FLOOR) / (photo + CUE_FLOOR)
    )
    return min(max(vote, VOTE_MIN), VOTE_MAX)
