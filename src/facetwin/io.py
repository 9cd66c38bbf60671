"""Reading photos and writing images and output folders: the project's only file I/O besides the CLI.

:func:`read_photo` decodes JPEG, PNG, WebP and TIFF into float sRGB (see :mod:`facetwin.frames`), upright
after the EXIF orientation, and turns every way a file can be unusable into one
:class:`~facetwin.errors.FacetwinError` line naming the file. Embedded ICC profiles are not applied: pixel
values are taken as sRGB.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import secrets
import shutil
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetwin.errors import FacetwinError

MIN_SIDE_PX = 32
"""Photos narrower or shorter than this hold no usable face."""
CHROMA_DEBLOCK_RADIUS_PX = 4
"""Radius of :func:`deblock_chroma`'s filter, pixels: a quarter of a 4:2:0 JPEG's colour block (16 pixels).
The steps at the blocks' seams and the specks of ringing go; colour over a block or more stays (at 8, laos's
blue eye shadow went gray)."""
CHROMA_DEBLOCK_EPS = 1e-4
"""Regularisation of :func:`deblock_chroma`'s guided filter: the colour follows luma edges of more than about
0.01 (sRGB, the square root of this) within its window and is averaged across flatter ones."""

FULL_FRAME_DIAGONAL_MM = 43.267
"""Diagonal of the 36 x 24 mm film frame that ``FocalLengthIn35mmFilm`` refers to: sqrt(36^2 + 24^2)."""

FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF"}
"""Pillow format names accepted, to the names users know (MPO is a phone camera's multi-picture JPEG)."""

_ALPHA_BACKGROUND = 0.5
"""Transparent pixels are composited over mid grey (sRGB 0.5), neutral for skin-colour statistics."""

_GRAY_TOLERANCE = 3 / 255
"""Channels closer than this count as equal: JPEG chroma rounding of a grey picture stays within 2/255."""

_GRAY_QUANTILE = 0.99
"""A photo is grayscale when this fraction of its pixels has equal channels (a few coloured specks allowed)."""

_GRAY_SAMPLE = 250_000
"""At most this many pixels are looked at for the grayscale test."""

# EXIF tags (EXIF 2.32): in IFD0, and in the Exif sub-IFD.
_TAG_ORIENTATION = 0x0112
_IFD_EXIF = 0x8769
_TAG_FOCAL_LENGTH = 0x920A  # mm, rational
_TAG_FOCAL_35MM = 0xA405  # mm, 35 mm film equivalent
_TAG_FOCAL_PLANE_X_RES = 0xA20E  # sensor pixels per resolution unit
_TAG_FOCAL_PLANE_UNIT = 0xA210
_TAG_PIXEL_X_DIMENSION = 0xA002  # image width the camera wrote, which FocalPlaneXResolution refers to
# FocalPlaneResolutionUnit codes to millimetres: 2 inch, 3 cm (EXIF); 4 mm, 5 um (used by some cameras).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}

# What a corrupt or cut file makes Pillow's decoders raise.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


@dataclass(frozen=True)
class Photo:
    """A decoded photo, upright.

    Attributes:
        path: the path it was read from, as given.
        image_srgb: (H, W, 3) float32 sRGB in [0, 1], after the EXIF orientation; alpha composited over grey.
        width: W, pixels.
        height: H, pixels.
        sha256: hex SHA-256 of the file's bytes.
        exif_orientation: the EXIF Orientation tag (1..8) that was applied; 1 when absent or invalid.
        focal_px: focal length in pixels of ``image_srgb`` from EXIF, or None without one. From
            ``FocalLengthIn35mmFilm`` ``f35`` (mm): ``f35 * hypot(W, H) / 43.267`` (the 35 mm frame's
            diagonal); else from ``FocalLength`` (mm) times ``FocalPlaneXResolution`` (sensor pixels per
            mm, rescaled when the image was resized from the camera's ``PixelXDimension``).
        grayscale: the file is single-channel, or its three channels are equal within 3/255 (a scanned
            black-and-white photo; sepia is not grayscale).
        chroma_subsampled: the file stored its colour at a lower resolution than its brightness (a JPEG
            sampled 4:2:0 or 4:2:2), so its colour carries the codec's blocks (:func:`deblock_chroma`).
    """

    path: str
    image_srgb: np.ndarray
    width: int
    height: int
    sha256: str
    exif_orientation: int
    focal_px: float | None
    grayscale: bool
    chroma_subsampled: bool = False


def read_photo(path: str | os.PathLike, max_pixels: int = 100_000_000) -> Photo:
    """Read a JPEG, PNG, WebP or TIFF photo.

    Modes: 1, L, LA, P, PA, RGB, RGBA, CMYK (converted without ICC), YCbCr, and 16-bit (gray, RGB and RGBA
    PNG and TIFF keep their 16 bits). The pixel count is checked from the header, before decoding; Pillow's
    own decompression-bomb limit (about 179 million pixels) applies too.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this.

    Returns:
        The photo, upright, as float sRGB.

    Raises:
        FacetwinError: the file is missing, a folder, unreadable, empty, not an image, of another format,
            cut short or corrupt, smaller than 32 px on a side, or over ``max_pixels``.
    """
    from PIL import Image, UnidentifiedImageError

    name = str(path)
    data = _read_bytes(Path(path))
    try:
        with warnings.catch_warnings():
            # the pixel limit is ours (checked below); Pillow's warning below its own limit is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise FacetwinError(f"{name}: image has too many pixels (limit {max_pixels})") from None
    except UnidentifiedImageError:
        raise FacetwinError(f"{name} is not an image (JPEG, PNG, WebP or TIFF expected)") from None
    except _DECODE_ERRORS as e:
        raise FacetwinError(f"{name}: cannot decode the image header ({e})") from None
    if im.format not in FORMATS:
        raise FacetwinError(f"{name}: {im.format} images are not supported (use JPEG, PNG, WebP or TIFF)")
    width, height = im.size
    if width * height > max_pixels:
        raise FacetwinError(f"{name}: {width}x{height} image has more than {max_pixels} pixels")
    if min(width, height) < MIN_SIDE_PX:
        raise FacetwinError(f"{name}: {width}x{height} image is too small (under {MIN_SIDE_PX} px on a side)")
    from PIL import ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: cut files would decode half grey")
    try:
        exif = im.getexif()
        im.load()
    except _DECODE_ERRORS as e:
        raise FacetwinError(f"{name}: the image is cut short or corrupt ({e})") from None
    orientation = exif.get(_TAG_ORIENTATION, 1)
    if orientation not in range(1, 9):
        orientation = 1
    channels, single_channel = _pixels(im, data, name)
    rgb = _orient(_composite(channels), orientation)
    h, w = rgb.shape[:2]
    return Photo(
        path=name,
        image_srgb=rgb,
        width=w,
        height=h,
        sha256=hashlib.sha256(data).hexdigest(),
        exif_orientation=int(orientation),
        focal_px=_focal_px(exif, stored_width=width, diagonal_px=math.hypot(w, h)),
        grayscale=single_channel or _channels_equal(rgb),
        chroma_subsampled=_chroma_subsampled(im),
    )


def _chroma_subsampled(im) -> bool:
    """Whether a decoded Pillow image is a JPEG whose colour planes are stored at half resolution (4:2:0 or
    4:2:2: Pillow's sampling codes 2 and 1)."""
    if im.format not in ("JPEG", "MPO"):
        return False
    from PIL import JpegImagePlugin

    return JpegImagePlugin.get_sampling(im) in (1, 2)


def deblock_chroma(image_srgb: np.ndarray) -> np.ndarray:
    """Smooth a JPEG's colour blocks away, keeping its luma and the colour edges that follow it.

    A JPEG sampled 4:2:0 stores its colour differences (Cb, Cr) at half resolution and quantises them in
    8 x 8 blocks of that plane: 16-pixel squares of colour with steps at their seams and specks of ringing
    that the scene does not have, which the appearance stage unwrapped onto the skin (green specks in
    classroom_in_tanzania's dark mouth corners, a greenish mottle on laos's nose). Cb and Cr are filtered
    with a guided filter (``cv2.ximgproc.guidedFilter``, radius :data:`CHROMA_DEBLOCK_RADIUS_PX`,
    regularisation :data:`CHROMA_DEBLOCK_EPS`) guided by the luma Y' (:data:`facetwin.frames.YCBCR_FROM_RGB`,
    the codec's own planes): where the luma is flat the colour is averaged over the radius, where it has an
    edge (a lip's outline) the colour follows the edge. Y' is kept as it is.

    Args:
        image_srgb: (H, W, 3) float sRGB in [0, 1].

    Returns:
        (H, W, 3) float32 sRGB, clipped to [0, 1].
    """
    import cv2

    from facetwin.frames import YCBCR_FROM_RGB

    m = np.asarray(YCBCR_FROM_RGB, np.float32)
    ycc = np.asarray(image_srgb, np.float32) @ m.T
    luma = np.ascontiguousarray(ycc[..., 0])
    colour = cv2.ximgproc.guidedFilter(
        luma, np.ascontiguousarray(ycc[..., 1:]), CHROMA_DEBLOCK_RADIUS_PX, CHROMA_DEBLOCK_EPS
    )
    out = np.concatenate([luma[..., None], colour], axis=2) @ np.linalg.inv(m).T
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, with each way of failing as one FacetwinError line."""
    if not path.exists():
        raise FacetwinError(f"{path}: no such file")
    if path.is_dir():
        raise FacetwinError(f"{path} is a folder, not a photo")
    try:
        data = path.read_bytes()
    except PermissionError:
        raise FacetwinError(f"{path}: permission denied") from None
    except OSError as e:
        raise FacetwinError(f"{path}: cannot read ({e.strerror or e})") from None
    if not data:
        raise FacetwinError(f"{path} is empty")
    return data


def _pixels(im, data: bytes, name: str) -> tuple[np.ndarray, bool]:
    """Decoded pixels as (H, W, C) float32 in [0, 1], C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA), as stored
    (before orientation), and whether the source has a single colour channel."""
    mode = im.mode
    if mode.startswith("I;16"):
        return (np.asarray(im).astype(np.float32) / 65535.0)[..., None], True
    if mode in ("LA", "RGB", "RGBA") and _is_16_bit(im, data):
        return _pixels_16_bit(data, name), mode == "LA"
    if mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        raise FacetwinError(f"{name}: pixel mode {mode} is not supported (8- or 16-bit images expected)")
    a = np.asarray(im, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = a[..., None]
    return a, mode in ("1", "L", "LA")


def _is_16_bit(im, data: bytes) -> bool:
    """Whether a colour PNG or TIFF has 16-bit samples (Pillow decodes those to 8 bits)."""
    if im.format == "PNG":
        return data[24] == 16  # IHDR bit depth: 8 signature + 4 length + 4 type + 4 width + 4 height
    if im.format == "TIFF":
        return 16 in np.atleast_1d(im.tag_v2.get(258, 8))  # BitsPerSample
    return False


def _pixels_16_bit(data: bytes, name: str) -> np.ndarray:
    """A 16-bit PNG or TIFF through OpenCV (mediapipe's, no EXIF rotation): (H, W, C) float32 in [0, 1]."""
    import cv2

    a = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16:
        raise FacetwinError(f"{name}: cannot decode the 16-bit image")
    if a.ndim == 2:
        a = a[..., None]
    elif a.shape[2] >= 3:
        a = np.concatenate([a[..., 2::-1], a[..., 3:]], axis=2)  # BGR(A) -> RGB(A)
    return a.astype(np.float32) / 65535.0


def _composite(a: np.ndarray) -> np.ndarray:
    """(H, W, 1|2|3|4) float32 gray/RGB with optional alpha -> (H, W, 3) float32 RGB over grey."""
    has_alpha = a.shape[2] in (2, 4)
    color = a[..., : a.shape[2] - has_alpha]
    if has_alpha:
        alpha = a[..., -1:]
        color = color * alpha + _ALPHA_BACKGROUND * (1.0 - alpha)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    return np.ascontiguousarray(color, dtype=np.float32)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to an (H, W, C) array as stored, giving the upright image.

    Same result as ``PIL.ImageOps.exif_transpose``: 2 mirror, 3 turn 180, 4 flip, 5 transpose,
    6 turn 90 clockwise, 7 transverse, 8 turn 90 counter-clockwise.
    """
    if orientation in (5, 6, 7, 8):
        a = a.transpose(1, 0, 2)  # now 5; 6 = 5 mirrored, 8 = 5 flipped, 7 = 5 turned 180
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        a = a[:, ::-1]
    if orientation in (3, 4):
        a = a[::-1]
    return np.ascontiguousarray(a)


def _focal_px(exif, stored_width: int, diagonal_px: float) -> float | None:
    """Focal length in pixels from EXIF (see :class:`Photo`), or None when the tags are absent or unusable."""
    tags = exif.get_ifd(_IFD_EXIF)
    f35 = _positive(tags.get(_TAG_FOCAL_35MM))
    if f35 is not None:
        return f35 * diagonal_px / FULL_FRAME_DIAGONAL_MM
    focal_mm = _positive(tags.get(_TAG_FOCAL_LENGTH))
    x_res = _positive(tags.get(_TAG_FOCAL_PLANE_X_RES))
    unit_mm = _UNIT_MM.get(tags.get(_TAG_FOCAL_PLANE_UNIT, 2))
    if focal_mm is None or x_res is None or unit_mm is None:
        return None
    camera_width = _positive(tags.get(_TAG_PIXEL_X_DIMENSION)) or stored_width
    return focal_mm * x_res / unit_mm * stored_width / camera_width


def _positive(value) -> float | None:
    """An EXIF number (int or rational) as a positive finite float, else None (0/0 rationals are NaN)."""
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _channels_equal(rgb: np.ndarray) -> bool:
    """Whether R, G and B agree within :data:`_GRAY_TOLERANCE` on nearly all (sampled) pixels."""
    step = max(1, int(math.sqrt(rgb.shape[0] * rgb.shape[1] / _GRAY_SAMPLE)))
    s = rgb[::step, ::step]
    spread = s.max(axis=2) - s.min(axis=2)
    return bool(np.quantile(spread, _GRAY_QUANTILE) <= _GRAY_TOLERANCE)


def encode_png(image: np.ndarray, bits: int = 8) -> bytes:
    """PNG bytes of an image.

    Args:
        image: (H, W), (H, W, 3) or (H, W, 4) gray, RGB or RGBA; float in [0, 1] (clipped), uint8 or uint16.
        bits: 8 or 16 bits per sample in the file; integer input is rescaled (x 257 or / 257) to fit.

    Raises:
        ValueError: wrong shape, dtype or ``bits``, or NaN in a float image.
    """
    import cv2

    a = np.asarray(image)
    if bits not in (8, 16):
        raise ValueError(f"bits: expected 8 or 16, got {bits}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or a.size == 0:
        raise ValueError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    top = 2**bits - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    if np.issubdtype(a.dtype, np.floating):
        if np.isnan(a).any():
            raise ValueError("image: NaN values")
        out = np.round(np.clip(a, 0.0, 1.0) * top).astype(dtype)
    elif a.dtype == dtype:
        out = a
    elif a.dtype in (np.uint8, np.uint16):
        out = np.round(a.astype(np.float64) * (top / np.iinfo(a.dtype).max)).astype(dtype)
    else:
        raise ValueError(f"image: expected float, uint8 or uint16, got {a.dtype}")
    if out.ndim == 3:
        out = np.concatenate([out[..., 2::-1], out[..., 3:]], axis=2)  # RGB(A) -> OpenCV's BGR(A)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out))
    if not ok:
        raise ValueError(f"image: OpenCV could not encode {a.shape} {a.dtype} as PNG")
    return buf.tobytes()


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 8) -> None:
    """Write an image as PNG (see :func:`encode_png` for ``image`` and ``bits``).

    Raises:
        FacetwinError: the file cannot be written (missing folder, permissions, full disk).
        ValueError: as :func:`encode_png`.
    """
    data = encode_png(image, bits)
    try:
        Path(path).write_bytes(data)
    except OSError as e:
        raise FacetwinError(f"cannot write {path}: {e.strerror or e}") from None


@contextmanager
def atomic_output_dir(final: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``final`` that becomes ``final`` only if the block succeeds.

    The folder is created next to ``final`` (same file system, so the last step is a rename) as
    ``.NAME.tmp-XXXXXXXX``; missing parents are created. On success it is renamed to ``final``; an existing
    ``final`` is replaced only with ``force`` (it is moved aside first and deleted after the rename). On any
    exception the temporary folder is deleted and the exception propagates; ``final`` is untouched.

    Args:
        final: the output folder to produce.
        force: replace ``final`` if it exists.

    Yields:
        The temporary folder to write into.

    Raises:
        FacetwinError: ``final`` exists and ``force`` is False (checked before and after the block),
            ``final`` is a file, or the parent folder cannot be written.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "head"
        >>> with atomic_output_dir(out) as tmp:
        ...     _ = (tmp / "report.json").write_text("{}")
        >>> sorted(p.name for p in out.iterdir())
        ['report.json']
        >>> shutil.rmtree(out.parent)
    """
    final = Path(final).absolute()
    _check_replaceable(final, force)
    tmp = final.parent / f".{final.name}.tmp-{secrets.token_hex(4)}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise FacetwinError(f"cannot create the output folder in {final.parent}: {e.strerror or e}") from None
    try:
        yield tmp
        _check_replaceable(final, force)
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_replaceable(final: Path, force: bool) -> None:
    if final.is_file() or final.is_symlink():
        raise FacetwinError(f"{final} exists and is not a folder")
    if final.exists() and not force:
        raise FacetwinError(f"{final} exists, use --force to replace it")


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``, moving an existing ``final`` aside first and deleting it afterwards."""
    old = None
    try:
        if final.exists():
            old = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
            final.rename(old)
        tmp.rename(final)
    except OSError as e:
        if old is not None and not final.exists():
            old.rename(final)
        raise FacetwinError(f"cannot move the output into {final}: {e.strerror or e}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
