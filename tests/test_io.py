"""facetwin.io: every format and mode read_photo accepts, every bad input it refuses, PNG and folder writing."""

from __future__ import annotations

import doctest
import hashlib
import io
import math
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import facetwin.io as fio
from facetwin.errors import FacetwinError
from facetwin.io import atomic_output_dir, encode_png, read_photo, write_png

H, W = 48, 64


def _rgb8() -> np.ndarray:
    """(48, 64, 3) uint8 with distinct values per pixel and channel (orientation mistakes show)."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 4, y * 5, (x * 3 + y * 2) % 256], axis=2).astype(np.uint8)


def _rgb16() -> np.ndarray:
    """(48, 64, 3) uint16 using the low byte too, so 8-bit truncation would show."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 1021 + 7, y * 1361 + 3, (x * 577 + y * 311) % 65536], axis=2).astype(np.uint16)


def _save(path: Path, im: Image.Image, **kw) -> Path:
    im.save(path, **kw)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` RGB but whose pixel data is a few bytes (a 'bomb')."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _with_exif_chunk(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk with an Orientation tag right after IHDR (33 bytes in)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    raw = exif.tobytes()
    raw = raw[6:] if raw.startswith(b"Exif\0\0") else raw
    return png[:33] + _png_chunk(b"eXIf", raw) + png[33:]


def _error(path, **kw) -> str:
    with pytest.raises(FacetwinError) as info:
        read_photo(path, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# ---- formats and modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, suffix, kw, tol",
    [
        ("PNG", ".png", {}, 0.0),
        ("TIFF", ".tif", {}, 0.0),
        ("WEBP", ".webp", {"lossless": True}, 0.0),
        ("JPEG", ".jpg", {"quality": 95}, 0.03),
    ],
)
def test_formats_rgb(tmp_path, fmt, suffix, kw, tol):
    src = _rgb8()
    path = _save(tmp_path / f"p{suffix}", Image.fromarray(src), format=fmt, **kw)
    photo = read_photo(path)
    assert photo.image_srgb.shape == (H, W, 3) and photo.image_srgb.dtype == np.float32
    assert (photo.width, photo.height) == (W, H)
    assert photo.path == str(path)
    assert photo.exif_orientation == 1 and photo.focal_px is None and not photo.grayscale
    assert 0.0 <= photo.image_srgb.min() and photo.image_srgb.max() <= 1.0
    assert np.abs(photo.image_srgb - src / 255.0).mean() <= tol + 1e-7


def test_sha256_is_of_file_bytes(tmp_path):
    path = _save(tmp_path / "p.png", Image.fromarray(_rgb8()))
    assert read_photo(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_mode_L_is_grayscale(tmp_path):
    gray = _rgb8()[..., 0]
    photo = read_photo(_save(tmp_path / "g.png", Image.fromarray(gray, "L")))
    assert photo.grayscale
    np.testing.assert_allclose(photo.image_srgb, np.repeat(gray[..., None], 3, 2) / 255.0, atol=1e-7)


def test_mode_1_bilevel(tmp_path):
    bits = (_rgb8()[..., 0] > 128).astype(np.uint8) * 255
    photo = read_photo(_save(tmp_path / "b.png", Image.fromarray(bits, "L").convert("1")))
    assert photo.grayscale
    np.testing.assert_array_equal(photo.image_srgb[..., 1], bits / 255.0)


def test_mode_LA_and_RGBA_composite_over_mid_grey(tmp_path):
    rgb = _rgb8()
    alpha = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))
    want = rgb / 255.0 * (alpha[..., None] / 255.0) + 0.5 * (1 - alpha[..., None] / 255.0)
    photo = read_photo(_save(tmp_path / "a.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA")))
    np.testing.assert_allclose(photo.image_srgb, want, atol=1e-6)
    np.testing.assert_allclose(photo.image_srgb[:, 0], 0.5)  # alpha 0: pure background
    la = Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")
    photo = read_photo(_save(tmp_path / "la.png", la))
    assert photo.grayscale
    np.testing.assert_allclose(photo.image_srgb[..., 2], want[..., 0], atol=1e-6)


def test_mode_P_with_and_without_transparency(tmp_path):
    rgb = _rgb8()
    pal = Image.fromarray(rgb).quantize(colors=64)
    want = np.asarray(pal.convert("RGB")) / 255.0
    np.testing.assert_allclose(read_photo(_save(tmp_path / "p.png", pal)).image_srgb, want, atol=1e-7)
    index = np.asarray(pal)[0, 0]
    photo = read_photo(_save(tmp_path / "pt.png", pal, transparency=int(index)))
    assert np.allclose(photo.image_srgb[0, 0], 0.5)  # that palette entry is transparent
    assert np.allclose(photo.image_srgb[np.asarray(pal) != index], want[np.asarray(pal) != index])


def test_mode_CMYK_jpeg(tmp_path):
    rgb = _rgb8()
    path = _save(tmp_path / "c.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    assert np.abs(read_photo(path).image_srgb - rgb / 255.0).mean() < 0.03


def test_16_bit_gray_png_keeps_precision(tmp_path):
    import cv2

    g16 = _rgb16()[..., 0]
    cv2.imwrite(str(tmp_path / "g16.png"), g16)
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    photo = read_photo(tmp_path / "g16.png")
    assert photo.grayscale
    np.testing.assert_allclose(photo.image_srgb[..., 1], g16 / 65535.0, atol=1e-7)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_rgb_keeps_precision(tmp_path, suffix):
    import cv2

    rgb16 = _rgb16()
    cv2.imwrite(str(tmp_path / f"c16{suffix}"), rgb16[..., ::-1])
    photo = read_photo(tmp_path / f"c16{suffix}")
    np.testing.assert_allclose(photo.image_srgb, rgb16 / 65535.0, atol=1e-7)
    assert not photo.grayscale


def test_16_bit_rgba_png_composites(tmp_path):
    import cv2

    rgb16 = _rgb16()
    alpha = np.full((H, W), 16384, np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), np.dstack([rgb16[..., ::-1], alpha]))
    a = alpha[..., None] / 65535.0
    want = rgb16 / 65535.0 * a + 0.5 * (1 - a)
    np.testing.assert_allclose(read_photo(tmp_path / "a16.png").image_srgb, want, atol=1e-6)


def test_16_bit_png_with_exif_orientation_is_turned_once(tmp_path):
    import cv2

    rgb16 = _rgb16()
    _, buf = cv2.imencode(".png", rgb16[..., ::-1])
    path = tmp_path / "o16.png"
    path.write_bytes(_with_exif_chunk(buf.tobytes(), 6))
    photo = read_photo(path)
    assert photo.exif_orientation == 6
    np.testing.assert_allclose(photo.image_srgb, np.rot90(rgb16, k=-1) / 65535.0, atol=1e-7)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    im = Image.fromarray(_rgb8())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(tmp_path / "o.png", im, exif=exif)
    photo = read_photo(path)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB")) / 255.0
    assert photo.exif_orientation == orientation
    assert (photo.height, photo.width) == want.shape[:2]
    np.testing.assert_array_equal(photo.image_srgb, want.astype(np.float32))


def test_invalid_orientation_is_ignored(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 42
    photo = read_photo(_save(tmp_path / "o.jpg", Image.fromarray(_rgb8()), exif=exif))
    assert photo.exif_orientation == 1 and photo.image_srgb.shape == (H, W, 3)


def _jpeg_with_exif(path: Path, tags: dict, orientation: int = 1) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769).update(tags)
    return _save(path, Image.fromarray(_rgb8()), exif=exif, quality=95)


def test_focal_from_35mm_equivalent(tmp_path):
    # 28 mm equivalent: f_px = 28 * image diagonal / 35 mm frame diagonal, the same after a 90 degree turn
    for orientation in (1, 6):
        photo = read_photo(_jpeg_with_exif(tmp_path / "f.jpg", {0xA405: 28}, orientation))
        assert photo.focal_px == pytest.approx(28 * math.hypot(W, H) / 43.267)
    assert 28 * math.hypot(W, H) / 43.267 == pytest.approx(51.78, abs=0.01)  # the formula, by hand


def test_focal_from_focal_plane_resolution(tmp_path):
    # 4.2 mm lens, 1000 sensor px per cm = 100 px/mm, camera image 2W wide, stored W wide: 4.2*100/2 = 210 px
    tags = {0x920A: 4.2, 0xA20E: 1000.0, 0xA210: 3, 0xA002: 2 * W}
    assert read_photo(_jpeg_with_exif(tmp_path / "f.jpg", tags)).focal_px == pytest.approx(210.0)


def test_focal_absent_or_unusable_is_none(tmp_path):
    assert read_photo(_jpeg_with_exif(tmp_path / "a.jpg", {})).focal_px is None
    assert read_photo(_jpeg_with_exif(tmp_path / "b.jpg", {0x920A: 4.2})).focal_px is None
    assert read_photo(_jpeg_with_exif(tmp_path / "c.jpg", {0xA405: 0})).focal_px is None


def test_grayscale_vs_sepia(tmp_path):
    gray = _rgb8()[..., 0]
    rgb_gray = np.repeat(gray[..., None], 3, 2)
    assert read_photo(_save(tmp_path / "g.jpg", Image.fromarray(rgb_gray), quality=90)).grayscale
    sepia = np.clip(gray[..., None] * np.array([1.0, 0.85, 0.65]) + np.array([20, 10, 0]), 0, 255)
    assert not read_photo(_save(tmp_path / "s.png", Image.fromarray(sepia.astype(np.uint8)))).grayscale


def test_chroma_subsampling_is_flagged(tmp_path):
    """A JPEG sampled 4:2:0 or 4:2:2 stores its colour at half resolution (its blocks are smoothed before the
    appearance stage samples it); one sampled 4:4:4, a gray JPEG and a PNG do not."""
    src = Image.fromarray(_rgb8())
    for subsampling, halved in ((2, True), (1, True), (0, False)):
        path = _save(tmp_path / f"s{subsampling}.jpg", src, quality=90, subsampling=subsampling)
        assert read_photo(path).chroma_subsampled is halved, subsampling
    assert not read_photo(_save(tmp_path / "g.jpg", src.convert("L"), quality=90)).chroma_subsampled
    assert not read_photo(_save(tmp_path / "p.png", src)).chroma_subsampled


def test_deblock_chroma_known_answers():
    """On flat luma, the colour steps at the seams of 16-pixel blocks (a 4:2:0 JPEG's) fall to a third or
    less, and a 3-pixel speck of another colour (the codec's ringing) to a sixth of its height (0.007 of
    0.06 measured, against the block beside it); a darker red disc keeps its colour inside (its luma edge
    guides the filter), and the luma is kept everywhere."""
    from facetwin.frames import YCBCR_FROM_RGB

    size = 128
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:size, 0:size]
    luma = np.full((size, size), 0.6, np.float32)
    colour = np.zeros((size, size, 2), np.float32)
    colour[..., 0], colour[..., 1] = -0.04, 0.08  # skin: warm
    blocks = rng.uniform(-0.02, 0.02, (size // 16, size // 16, 2)).astype(np.float32)
    colour += np.kron(blocks, np.ones((16, 16, 1), np.float32))
    colour[20:23, 100:103] += (0.06, -0.06)  # a speck, greenish-blue
    disc = (xx - 90) ** 2 + (yy - 70) ** 2 < 22**2
    luma[disc], colour[disc] = 0.35, (-0.02, 0.2)  # lipstick: darker, redder
    m = np.asarray(YCBCR_FROM_RGB, np.float32)
    srgb = np.concatenate([luma[..., None], colour], 2) @ np.linalg.inv(m).T
    assert 0.0 <= srgb.min() and srgb.max() <= 1.0
    out = fio.deblock_chroma(srgb)
    ycc = out @ m.T
    np.testing.assert_allclose(ycc[..., 0], luma, atol=1e-5)
    flat = ~((xx - 90) ** 2 + (yy - 70) ** 2 < 30**2)

    def largest_step(c):
        steps = np.abs(np.diff(c, axis=1)).max(axis=2)
        return float(steps[flat[:, 1:] & flat[:, :-1]].max())

    before, after = largest_step(colour), largest_step(ycc[..., 1:])
    assert after < before / 3.0, (before, after)
    speck = np.abs(ycc[21, 101, 1:] - ycc[21, 96, 1:]).max()
    assert speck < 0.06 / 6.0, speck
    inside = (xx - 90) ** 2 + (yy - 70) ** 2 < 18**2
    assert np.abs(ycc[..., 1:][inside] - np.array([-0.02, 0.2])).max() < 0.005


# ---- bad input --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "nope.jpg")


def test_directory(tmp_path):
    assert "folder" in _error(tmp_path)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = _save(tmp_path / "p.png", Image.fromarray(_rgb8()))
    path.chmod(0)
    try:
        assert "permission denied" in _error(path)
    finally:
        path.chmod(0o644)


def test_empty_file(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    assert "empty" in _error(tmp_path / "e.jpg")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "t.jpg").write_text("this is not a photo\n" * 20)
    msg = _error(tmp_path / "t.jpg")
    assert "not an image" in msg and "t.jpg" in msg


def test_unsupported_format(tmp_path):
    msg = _error(_save(tmp_path / "p.bmp", Image.fromarray(_rgb8())))
    assert "BMP" in msg and "not supported" in msg


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_file_is_refused_not_half_grey(tmp_path, fmt, suffix):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # incompressible: the cut hits pixel data
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format=fmt)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    msg = _error(path)
    assert "cut short or corrupt" in msg and path.name in msg


@pytest.mark.parametrize("size", [(1, 1), (31, 100), (100, 31)])
def test_too_small(tmp_path, size):
    msg = _error(_save(tmp_path / "s.png", Image.new("RGB", size)))
    assert "too small" in msg and f"{size[0]}x{size[1]}" in msg


def test_32_px_is_enough(tmp_path):
    assert read_photo(_save(tmp_path / "s.png", Image.new("RGB", (32, 32)))).width == 32


def test_pixel_bomb_fails_fast_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(20000, 20000))
    start = time.perf_counter()
    msg = _error(path)
    assert time.perf_counter() - start < 1.0
    assert "too many pixels" in msg


def test_over_max_pixels_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(12000, 9000))  # 108 M: over our 100 M, under Pillow's error limit
    start = time.perf_counter()
    msg = _error(path)
    assert time.perf_counter() - start < 1.0
    assert "12000x9000" in msg and "100000000" in msg
    small = _save(tmp_path / "p.png", Image.fromarray(_rgb8()))
    assert "more than 1000 pixels" in _error(small, max_pixels=1000)


def test_truncated_loading_enabled_elsewhere_is_refused(tmp_path, monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        read_photo(_save(tmp_path / "p.png", Image.fromarray(_rgb8())))


# ---- writing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
def test_write_png_round_trip_float(tmp_path, bits):
    img = _rgb16() / 65535.0
    write_png(tmp_path / "o.png", img, bits=bits)
    back = read_photo(tmp_path / "o.png").image_srgb
    np.testing.assert_allclose(back, img, atol=0.5 / (2**bits - 1) + 1e-7)
    if bits == 16:
        assert Image.open(tmp_path / "o.png").mode == "RGB" and (tmp_path / "o.png").read_bytes()[24] == 16


def test_write_png_integer_inputs_rescale(tmp_path):
    rgb8 = _rgb8()
    write_png(tmp_path / "a.png", rgb8, bits=16)
    np.testing.assert_allclose(read_photo(tmp_path / "a.png").image_srgb, rgb8 / 255.0, atol=1e-7)
    rgb16 = _rgb16()
    write_png(tmp_path / "b.png", rgb16, bits=8)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), np.round(rgb16 / 257.0))


def test_write_png_rgba_and_gray(tmp_path):
    rgba = np.dstack([_rgb8(), np.full((H, W), 200, np.uint8)])
    write_png(tmp_path / "a.png", rgba)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), rgba)
    gray = _rgb8()[..., 1]
    write_png(tmp_path / "g.png", gray)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")), gray)


def test_encode_png_clips_floats():
    back = np.asarray(Image.open(io.BytesIO(encode_png(np.full((4, 4, 3), 1.5)))))
    assert (back == 255).all()


@pytest.mark.parametrize(
    "image, bits, match",
    [
        (np.zeros((4, 4, 2)), 8, "expected"),
        (np.zeros((4,)), 8, "expected"),
        (np.zeros((4, 4, 3), np.int32), 8, "int32"),
        (np.zeros((4, 4, 3)), 12, "bits"),
        (np.full((4, 4, 3), np.nan), 8, "NaN"),
    ],
)
def test_encode_png_bad_input(image, bits, match):
    with pytest.raises(ValueError, match=match):
        encode_png(image, bits)


def test_write_png_unwritable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FacetwinError, match="cannot write"):
        write_png(tmp_path / "file" / "o.png", _rgb8())


# ---- atomic output folder ---------------------------------------------------------------------------------


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_atomic_dir_success(tmp_path):
    final = tmp_path / "out" / "head"  # missing parent is created
    with atomic_output_dir(final) as tmp:
        assert tmp.parent == final.parent and not final.exists()
        (tmp / "a.txt").write_text("a")
    assert (final / "a.txt").read_text() == "a"
    assert _siblings(final) == ["head"]


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    final = tmp_path / "head"
    with pytest.raises(KeyError), atomic_output_dir(final) as tmp:
        (tmp / "a.txt").write_text("a")
        raise KeyError("boom")
    assert not final.exists() and list(tmp_path.iterdir()) == []


def test_atomic_dir_exists_needs_force(tmp_path):
    final = tmp_path / "head"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(FacetwinError, match="exists, use --force"), atomic_output_dir(final):
        pytest.fail("the block must not run")
    with atomic_output_dir(final, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert _siblings(final) == ["head"]


def test_atomic_dir_failure_keeps_existing_output(tmp_path):
    final = tmp_path / "head"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(ValueError), atomic_output_dir(final, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise ValueError
    assert (final / "old.txt").read_text() == "old" and _siblings(final) == ["head"]


def test_atomic_dir_final_is_a_file(tmp_path):
    (tmp_path / "head").write_text("x")
    with pytest.raises(FacetwinError, match="not a folder"), atomic_output_dir(tmp_path / "head", force=True):
        pytest.fail("the block must not run")


def test_atomic_dir_unwritable_parent(tmp_path):
    (tmp_path / "file").write_text("x")
    with (
        pytest.raises(FacetwinError, match="cannot create the output folder") as info,
        atomic_output_dir(tmp_path / "file" / "head"),
    ):
        pytest.fail("the block must not run")
    assert "\n" not in str(info.value)


def test_doctests():
    assert doctest.testmod(fio, raise_on_error=True).attempted > 0
