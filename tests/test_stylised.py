"""Known answers for :mod:`facetwin.stylised`: real photos are photographs, and drawings, paintings,
pencil sketches and cartoons made from them (with OpenCV's non-photorealistic filters) are stylised.

Run with ``-s`` to see the table of scores. The stylised versions are made from a copy of each photo whose
longest side is :data:`STYLISE_SIDE_PX`, as OpenCV's filters work in pixels (``sigma_s=60`` on a 3000 px photo
barely changes it); the photographs themselves are scored at full size, as the pipeline sees them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from facetwin.detect import detect_faces
from facetwin.io import read_photo
from facetwin.stylised import FAMILIES, THRESHOLD, _dark_lines, _vote, stylisation_score

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
STYLISE_SIDE_PX = 512
"""Longest side of the copy the stylised versions are made from."""
THUMBNAIL_SIDE_PX = 160
"""Longest side of the thumbnails: faces of 30-90 px, like the 115 px bryan_small_glasses photo."""
JPEG_QUALITY = 40
"""Re-encoding quality of the JPEG versions: heavy, well below a camera's 85-95."""
MARGIN = 0.05
"""Real photos must score below THRESHOLD - MARGIN and stylised pictures above THRESHOLD + MARGIN, so that a
change that narrows the gap between the classes shows (now: real photos <= 0.27, stylised >= 0.62)."""

class Portrait(NamedTuple):
    """A test photo: file name, (H, W, 3) float32 sRGB image, face box ``(x0, y0, x1, y1)`` in its pixels."""

    name: str
    image_srgb: np.ndarray
    box: tuple[float, float, float, float]


@pytest.fixture(scope="module")
def portraits(photos_dir: Path) -> list[Portrait]:
    paths = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        pytest.fail(f"no photos in {photos_dir}")
    out = []
    for path in paths:
        image = read_photo(path).image_srgb
        faces = detect_faces(image).faces
        if not faces:
            pytest.fail(f"{path.name}: no face found")
        box = tuple(float(v) for v in faces[0].box)
        out.append(Portrait(path.name, image, box))
    return out


@pytest.fixture(scope="module")
def small_portraits(portraits: list[Portrait]) -> list[Portrait]:
    """The portraits with their longest side at most STYLISE_SIDE_PX."""
    return [_shrunk(p, STYLISE_SIDE_PX) for p in portraits]


# --- making test pictures --------------------------------------------------------------------------------------


def _shrunk(portrait: Portrait, side: int) -> Portrait:
    """``portrait`` with its longest side at most ``side`` (area averaging), box scaled alike."""
    height, width = portrait.image_srgb.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return portrait
    size = (round(width * scale), round(height * scale))
    image = cv2.resize(portrait.image_srgb, size, interpolation=cv2.INTER_AREA)
    return Portrait(portrait.name, image, tuple(v * scale for v in portrait.box))


def _to_u8(image_srgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float sRGB -> uint8 BGR, OpenCV's order (the filters below treat channels alike or as BGR)."""
    return cv2.cvtColor(np.round(np.clip(image_srgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)


def _from_u8(bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR (or gray) -> (H, W, 3) float32 sRGB."""
    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def _jpeg(image_srgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", _to_u8(image_srgb), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return _from_u8(cv2.imdecode(data, cv2.IMREAD_COLOR))


def _grayscale(image_srgb: np.ndarray) -> np.ndarray:
    luma = image_srgb @ np.float32([0.299, 0.587, 0.114])
    return np.repeat(luma[..., None], 3, axis=2)


def _sepia(image_srgb: np.ndarray) -> np.ndarray:
    """A brown-toned print: luma times a warm tint, as old photographs fade."""
    luma = image_srgb @ np.float32([0.299, 0.587, 0.114])
    tint = np.float32([1.07, 0.74, 0.43]) / 0.9
    return np.clip(luma[..., None] * tint + np.float32([0.05, 0.03, 0.0]), 0, 1).astype(np.float32)


def _stylization(image_srgb: np.ndarray) -> np.ndarray:
    """OpenCV's watercolour-like filter: edge-preserving smoothing with dark outlines."""
    return _from_u8(cv2.stylization(_to_u8(image_srgb), sigma_s=60, sigma_r=0.45))


def _pencil(image_srgb: np.ndarray, colour: bool) -> np.ndarray:
    """OpenCV's pencil sketch, gray or coloured; shade_factor 0.05 leaves white paper around the strokes."""
    gray, coloured = cv2.pencilSketch(_to_u8(image_srgb), sigma_s=60, sigma_r=0.07, shade_factor=0.05)
    return _from_u8(coloured if colour else gray)


def _cartoon(image_srgb: np.ndarray, colours: int = 8) -> np.ndarray:
    """Cartoon: bilateral smoothing, k-means to ``colours`` colours, black outlines from adaptive threshold."""
    bgr = _to_u8(image_srgb)
    smooth = bgr
    for _ in range(3):
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    pixels = smooth.reshape(-1, 3).astype(np.float32)
    cv2.setRNGSeed(0)  # k-means++ seeding draws from OpenCV's RNG
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, labels, centres = cv2.kmeans(pixels, colours, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    flat = centres.astype(np.uint8)[labels.ravel()].reshape(bgr.shape)
    gray = cv2.medianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 5)
    edges = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, 9, 5)
    flat[edges == 0] = 0
    return _from_u8(flat)


def _posterised(image_srgb: np.ndarray, levels: int = 4) -> np.ndarray:
    """Posterised: bilateral smoothing, then ``levels`` uniform levels per channel (64 colours), no outlines."""
    bgr = _to_u8(image_srgb)
    for _ in range(2):
        bgr = cv2.bilateralFilter(bgr, 9, 40, 7)
    step = 256 // levels
    return _from_u8((bgr // step * step + step // 2).astype(np.uint8))


def _drawn_face(size: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A flat cartoon face drawn with cv2: sky background, skin ellipse, eyes, nose, mouth, black outlines.

    Returns:
        image_srgb: (size, size, 3) float32.
        box: the face ellipse's bounding box, pixels.
    """
    img = np.full((size, size, 3), (230, 180, 120), np.uint8)  # BGR sky blue
    c = (size // 2, size // 2)
    axes = (size // 4, size // 3)
    line = max(1, size // 130)
    cv2.ellipse(img, c, axes, 0, 0, 360, (170, 200, 240), -1)
    cv2.ellipse(img, c, axes, 0, 0, 360, (0, 0, 0), 3 * line)
    for dx in (-size // 10, size // 10):
        eye = (c[0] + dx, c[1] - size // 12)
        cv2.ellipse(img, eye, (size // 25, size // 40), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(img, eye, size // 60, (20, 30, 40), -1)
        cv2.ellipse(img, eye, (size // 25, size // 40), 0, 0, 360, (0, 0, 0), 2 * line)
    cv2.ellipse(img, (c[0], c[1] + size // 8), (size // 10, size // 25), 0, 0, 180, (0, 0, 0), 2 * line)
    cv2.line(img, (c[0], c[1] - size // 30), (c[0] - size // 40, c[1] + size // 20), (0, 0, 0), 2 * line)
    box = (c[0] - axes[0], c[1] - axes[1], c[0] + axes[0], c[1] + axes[1])
    return _from_u8(img), tuple(float(v) for v in box)


STYLISED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "stylization": _stylization,
    "pencil_gray": lambda im: _pencil(im, colour=False),
    "pencil_colour": lambda im: _pencil(im, colour=True),
    "cartoon": _cartoon,
    "posterised": _posterised,
}
PHOTOGRAPHIC: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    f"jpeg_q{JPEG_QUALITY}": _jpeg,
    "grayscale": _grayscale,
    "sepia": _sepia,
}


def _show(title: str, rows: list[tuple[str, str, dict]]) -> None:
    """Print a table of scores (seen with ``pytest -s``)."""
    print(f"\n{title}")
    for name, variant, r in rows:
        print(f"  {name:30s} {variant:14s} score {r['score']:6.2f}  {r['kind']:9s}  stylised={r['stylised']}")


# --- real photos -----------------------------------------------------------------------------------------------


def test_real_photos_are_not_stylised(portraits):
    rows = [(p.name, "photo", stylisation_score(p.image_srgb, p.box)) for p in portraits]
    _show("real photos", rows)
    bad = {name: round(r["score"], 3) for name, _, r in rows if r["score"] >= THRESHOLD - MARGIN}
    assert not bad, f"real photos scored within {MARGIN} of the threshold {THRESHOLD} or above: {bad}"


def test_grayscale_and_face_paint_photos_are_not_stylised(portraits):
    by_name = {p.name: p for p in portraits}
    for name in ("frederick_douglass_1879.jpg", "face_paint.png", "bryan_small_glasses.png"):
        if name not in by_name:
            pytest.fail(f"{name} is missing from the shared photos")
        p = by_name[name]
        assert stylisation_score(p.image_srgb, p.box)["stylised"] is False, name


def test_reencoded_and_toned_photos_are_not_stylised(portraits):
    rows = []
    for p in portraits:
        for variant, make in PHOTOGRAPHIC.items():
            rows.append((p.name, variant, stylisation_score(make(p.image_srgb), p.box)))
    _show("JPEG, grayscale and sepia versions of the photos", rows)
    bad = {f"{n} {v}": round(r["score"], 3) for n, v, r in rows if r["stylised"]}
    assert not bad, f"photographs flagged as stylised: {bad}"


def test_thumbnails_are_not_stylised(portraits):
    rows = []
    for p in portraits:
        small = _shrunk(p, THUMBNAIL_SIDE_PX)
        rows.append((p.name, f"{THUMBNAIL_SIDE_PX}px", stylisation_score(small.image_srgb, small.box)))
    _show("thumbnails", rows)
    bad = {n: round(r["score"], 3) for n, _, r in rows if r["stylised"]}
    assert not bad, f"thumbnails flagged as stylised: {bad}"


# --- stylised pictures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(STYLISED))
def test_stylised_versions_of_photos_are_stylised(small_portraits, variant):
    make = STYLISED[variant]
    rows = [(p.name, variant, stylisation_score(make(p.image_srgb), p.box)) for p in small_portraits]
    _show(f"{variant} versions of the photos", rows)
    bad = {n: round(r["score"], 3) for n, _, r in rows if r["score"] <= THRESHOLD + MARGIN}
    assert not bad, f"{variant}: scored within {MARGIN} of the threshold {THRESHOLD} or below: {bad}"


@pytest.mark.parametrize("size", [100, 400, 1000])
def test_drawn_cartoon_face_is_stylised(size):
    image, box = _drawn_face(size)
    with_box = stylisation_score(image, box)
    whole = stylisation_score(image)
    _show("drawn cartoon face", [(f"{size}px", "box", with_box), (f"{size}px", "whole image", whole)])
    assert with_box["score"] > THRESHOLD + MARGIN
    assert whole["score"] > THRESHOLD + MARGIN
    assert with_box["flat_fill"] > 0.5, "a drawing of flat fills is mostly flat fill"


def test_drawn_cartoon_face_survives_jpeg():
    image, box = _drawn_face(400)
    assert stylisation_score(_jpeg(image, 75), box)["stylised"] is True


# --- properties and known answers of the parts -----------------------------------------------------------------


def test_result_keys_and_types():
    image, box = _drawn_face(200)
    r = stylisation_score(image, box)
    assert isinstance(r["stylised"], bool)
    assert isinstance(r["score"], float)
    assert r["kind"] in FAMILIES
    assert set(r["families"]) == set(FAMILIES)
    assert r["score"] == max(r["families"].values())
    cues = {v.cue for votes in FAMILIES.values() for v in votes}
    for cue in cues:
        assert isinstance(r[cue], float), cue


def test_deterministic_and_input_untouched(small_portraits):
    p = small_portraits[0]
    image = p.image_srgb.copy()
    first = stylisation_score(image, p.box)
    second = stylisation_score(image, p.box)
    assert first == second
    np.testing.assert_array_equal(image, p.image_srgb)


def test_float64_and_out_of_range_values_are_accepted():
    image, box = _drawn_face(200)
    r32 = stylisation_score(image, box)
    r64 = stylisation_score(image.astype(np.float64), box)
    assert r64["stylised"] == r32["stylised"]
    assert abs(r64["score"] - r32["score"]) < 1e-6
    # Values slightly outside [0, 1] (e.g. after colour maths) are clipped, not rejected.
    assert stylisation_score(image * 1.02 - 0.01, box)["stylised"] is True


def test_constant_image_is_flat_fill():
    flat = np.zeros((64, 64, 3), np.float32) + np.float32([0.9, 0.7, 0.6])
    r = stylisation_score(flat)
    assert r["flat_fill"] == 1.0
    assert r["stylised"] is True


def test_noise_is_not_flat_fill():
    rng = np.random.default_rng(0)
    noisy = np.clip(0.5 + rng.normal(0.0, 0.02, (128, 128, 3)), 0, 1).astype(np.float32)
    assert stylisation_score(noisy)["flat_fill"] == 0.0


def test_vote_known_answers():
    assert _vote(0.4, 0.4, 0.08) == pytest.approx(0.0)
    assert _vote(0.08, 0.4, 0.08) == pytest.approx(1.0)
    # Halfway on the log scale: sqrt((p + e) (s + e)) - e.
    assert _vote(np.sqrt(0.41 * 0.09) - 0.01, 0.4, 0.08) == pytest.approx(0.5)
    assert _vote(1e-9, 0.03, 0.6) == pytest.approx(np.log(0.01 / 0.04) / np.log(0.61 / 0.04))
    assert _vote(10.0, 0.01, 0.05) == 2.0  # clipped
    assert _vote(5.0, 0.55, 0.3) == -1.0  # clipped


def test_dark_lines_known_answer():
    luma = np.full((40, 40), 200.0, np.float32)
    luma[:, 20:22] = 10.0  # a 2 px black line on a light page: 80 of 1600 pixels
    assert _dark_lines(luma, ink=True) == pytest.approx(80 / 1600)
    assert _dark_lines(luma, ink=False) == pytest.approx(80 / 1600)
    # A wide dark band is a region, not a line; a faint line is a shadow, not a stroke.
    luma[:, 5:15] = 10.0
    assert _dark_lines(luma, ink=True) == pytest.approx(80 / 1600)
    faint = np.full((40, 40), 200.0, np.float32)
    faint[:, 20:22] = 180.0
    assert _dark_lines(faint, ink=False) == 0.0
    gray_line = np.full((40, 40), 200.0, np.float32)
    gray_line[:, 20:22] = 150.0  # 50 levels darker: a pencil stroke, but not ink (more than half as bright)
    assert _dark_lines(gray_line, ink=False) == pytest.approx(80 / 1600)
    assert _dark_lines(gray_line, ink=True) == 0.0


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((64, 64), np.float32),  # no channel axis
        np.zeros((64, 64, 4), np.float32),  # RGBA
        np.zeros((64, 64, 3), np.uint8),  # not float
        np.zeros((4, 64, 3), np.float32),  # too small
    ],
    ids=["2d", "rgba", "uint8", "tiny"],
)
def test_bad_image_raises(image):
    with pytest.raises(ValueError, match="image_srgb"):
        stylisation_score(image)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_image_raises(bad):
    image = np.full((64, 64, 3), 0.5, np.float32)
    image[10, 10, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        stylisation_score(image)


@pytest.mark.parametrize(
    "box",
    [(40, 10, 20, 50), (10, 40, 50, 20), (0, 0, np.nan, 10), (1, 2, 3), (500, 500, 600, 600), (0, 0, 2, 2)],
    ids=["x-reversed", "y-reversed", "nan", "three-numbers", "outside", "too-small"],
)
def test_bad_face_box_raises(box):
    with pytest.raises(ValueError, match="face_box"):
        stylisation_score(np.full((64, 64, 3), 0.5, np.float32), box)


def test_pipeline_flags_a_painting_and_still_fits_it(model, small_portraits, tmp_path):
    """A painterly version of a portrait: geometry is fitted as for the photo, and report.json says stylised
    (and the photo itself is not)."""
    import json

    from PIL import Image

    from facetwin.pipeline import reconstruct

    portrait = next(p for p in small_portraits if p.name == "astronaut.png")
    reports = {}
    for kind, image in (("photo", portrait.image_srgb), ("painting", _stylization(portrait.image_srgb))):
        path = tmp_path / f"{kind}.png"
        Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(path)
        result = reconstruct(path, tmp_path / kind, model, texture_size=None)
        reports[kind] = json.loads((result.out_dir / "report.json").read_text())
    assert not reports["photo"]["input"]["stylised"]
    assert reports["painting"]["input"]["stylised"]
    assert reports["painting"]["input"]["stylisation"]["score"] >= THRESHOLD
    a, b = (np.asarray(reports[k]["landmarks68"]) for k in ("photo", "painting"))
    size = np.sqrt(np.prod(np.ptp(a, axis=0)))
    assert np.linalg.norm(a - b, axis=1).mean() < 0.03 * size  # same face, same fit
