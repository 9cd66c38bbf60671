"""Known answers of :func:`facetwin.texture.hair.hair_cover`: strands drawn on synthetic skin albedo are
found, folds, wrinkles, paint edges, pores and grain are not.

The tiles are flat albedo maps made by the tests, in millimetres through ``texels_per_mm``: skin (a base
colour with grain and pores), and strands a texel thick drawn at 4x and reduced, so a strand covers its
texels in part as a photo's would.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from debug_images import save_debug_row
from facetwin.texture.hair import HAIR_MIN_WIDTH_MM, hair_cover

SIZE = 512
PER_MM = 4.0  # the tile spans 128 mm
DARK_SKIN = (0.12, 0.07, 0.045)
LIGHT_SKIN = (0.55, 0.38, 0.3)


def _skin(rng, base, per_mm: float = PER_MM, size: int = SIZE) -> np.ndarray:
    """(S, S, 3) linear albedo: ``base`` with grain (0.04 log, 0.2 mm) and dark pores (0.15 log, 0.3 mm)."""
    grain = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.2 * per_mm)
    log = 0.04 * grain / grain.std()
    pores = np.zeros((size, size), np.float32)
    pores[rng.integers(0, size, 4000), rng.integers(0, size, 4000)] = 1.0
    pores = cv2.GaussianBlur(pores, (0, 0), 0.3 * per_mm)
    log -= 0.15 * np.minimum(pores / pores.max() * 4.0, 1.0)
    return (np.asarray(base, np.float32) * np.exp(log)[..., None]).astype(np.float32)


def _box(x0_mm, y0_mm, x1_mm, y1_mm, per_mm: float = PER_MM, size: int = SIZE) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[round(y0_mm * per_mm) : round(y1_mm * per_mm), round(x0_mm * per_mm) : round(x1_mm * per_mm)] = True
    return m


def _with_strands(albedo, where, rng, colour, per_mm: float = PER_MM, n_per_cm2: float = 40.0) -> np.ndarray:
    """``albedo`` with strands 6 mm long hanging down at random slants over ``where``, about half its
    texels covered, in ``colour`` (linear)."""
    ss = 4
    size = albedo.shape[0]
    ys, xs = np.nonzero(where)
    n = round(n_per_cm2 * where.sum() / (10.0 * per_mm) ** 2)
    pick = rng.integers(0, ys.size, n)
    angle = np.pi / 2 + rng.uniform(-0.5, 0.5, n)
    length = 6.0 * per_mm * ss
    lines = np.zeros((size * ss, size * ss), np.float32)
    for x, y, a in zip(xs[pick] * ss, ys[pick] * ss, angle):
        cv2.line(lines, (int(x), int(y)), (int(x + length * np.cos(a)), int(y + length * np.sin(a))), 1.0, ss)
    cover = cv2.resize(lines, (size, size), interpolation=cv2.INTER_AREA) * where
    return albedo * (1.0 - cover[..., None]) + cover[..., None] * np.asarray(colour, np.float32)


@pytest.mark.parametrize(
    "skin, strand", [(DARK_SKIN, (0.6, 0.58, 0.55)), (LIGHT_SKIN, (0.04, 0.03, 0.025))], ids=["white_on_dark", "dark_on_light"]
)
def test_strands_are_found(skin, strand):
    """A 40 x 30 mm beard of strands is covered whole, gaps between strands included, and nothing beyond
    4 mm of it (the window's reach and the soft edge)."""
    rng = np.random.default_rng(1)
    beard = _box(40, 50, 80, 80)
    albedo = _with_strands(_skin(rng, skin), beard, rng, strand)
    everywhere = np.ones((SIZE, SIZE), bool)
    cover = hair_cover(albedo, everywhere, everywhere, PER_MM)
    save_debug_row("hair_strands", [albedo / albedo.max(), np.repeat(cover[..., None], 3, axis=2)])
    inner = _box(41, 51, 79, 79)
    outside = ~_box(36, 46, 84, 84)
    print(f"\ncover inside {np.mean(cover[inner] > 0.99):.3f}, most outside {cover[outside].max():.3f}")
    assert np.mean(cover[inner] > 0.99) > 0.97
    assert cover[outside].max() < 0.01


def test_skin_marks_folds_and_paint_are_not_hair():
    """Bare skin with grain and pores, a field of wrinkles (dark creases 3 mm apart), a fold's soft shadow
    and the sharp edge of face paint: none is covered."""
    rng = np.random.default_rng(2)
    albedo = _skin(rng, LIGHT_SKIN)
    log = np.zeros((SIZE, SIZE), np.float32)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / PER_MM  # mm
    wrinkles = _box(10, 10, 50, 40) * np.exp(-(((xx + 0.3 * yy) % 3.0 - 1.5) ** 2) / (2 * 0.3**2))
    log -= 0.3 * wrinkles
    log -= 0.4 * np.exp(-((xx - 0.5 * yy - 40.0) ** 2) / (2 * 1.5**2)) * _box(60, 10, 120, 60)
    log += 1.0 * _box(20, 70, 60, 120) * (xx > 40)
    albedo = albedo * np.exp(log)[..., None]
    everywhere = np.ones((SIZE, SIZE), bool)
    cover = hair_cover(albedo, everywhere, everywhere, PER_MM)
    assert cover.max() == 0.0


def test_a_fringe_beside_hidden_hair_is_hair():
    """Where the photometric fit already hid most of a beard, the fringe of strands left along the hidden
    part is thinner than :data:`HAIR_MIN_WIDTH_MM`; counted with the hidden part it is covered. The same
    fringe beside texels the photo does not show is too thin to be hair."""
    rng = np.random.default_rng(3)
    beard = _box(40, 50, 80, 80)
    albedo = _with_strands(_skin(rng, DARK_SKIN), beard, rng, (0.6, 0.58, 0.55))
    fringe = _box(40, 80 - 0.4 * HAIR_MIN_WIDTH_MM, 80, 80)
    seen = ~(beard & ~fringe)
    region = np.ones((SIZE, SIZE), bool)
    cover = hair_cover(albedo, seen, region, PER_MM, hidden=~seen)
    inner = fringe & _box(41, 0, 79, 128)
    assert np.mean(cover[inner] > 0.99) > 0.95
    # Not seen at all (the far side of the face), not hidden: the fringe stands alone.
    assert hair_cover(albedo, seen, region, PER_MM).max() == 0.0


@pytest.mark.parametrize("per_mm", [2.0, 8.0])
def test_scales_are_on_the_surface(per_mm):
    """The same beard at 2 and 8 texels per millimetre (a 512 and a 2048 tile of the face) is covered as at
    4: whole, and nothing beyond 4 mm of it. (At 8 the tile is judged on blocks: HAIR_MAX_PER_MM.)"""
    size = round(128 * per_mm)
    rng = np.random.default_rng(4)
    beard = _box(40, 50, 80, 80, per_mm, size)
    albedo = _with_strands(_skin(rng, DARK_SKIN, per_mm, size), beard, rng, (0.6, 0.58, 0.55), per_mm)
    everywhere = np.ones((size, size), bool)
    cover = hair_cover(albedo, everywhere, everywhere, per_mm)
    assert np.mean(cover[_box(41, 51, 79, 79, per_mm, size)] > 0.99) > 0.97
    assert cover[~_box(36, 46, 84, 84, per_mm, size)].max() < 0.01


@pytest.mark.parametrize("per_mm", [4.0, 8.0])
def test_hair_only_in_the_region(per_mm):
    """Only the region is looked at, and the part of the beard inside it is covered; at 8 texels per
    millimetre the tile is judged on blocks over the region's bounding box."""
    size = round(128 * per_mm)
    rng = np.random.default_rng(5)
    albedo = _with_strands(_skin(rng, DARK_SKIN, per_mm, size), _box(40, 50, 80, 80, per_mm, size), rng, (0.6, 0.58, 0.55), per_mm)
    everywhere = np.ones((size, size), bool)
    region = _box(30, 40, 100, 65, per_mm, size)
    cover = hair_cover(albedo, everywhere, region, per_mm)
    assert cover[~region].max() == 0.0
    assert np.mean(cover[_box(41, 51, 79, 64, per_mm, size)] > 0.99) > 0.97
    assert hair_cover(albedo, ~everywhere, everywhere, per_mm).max() == 0.0


def _noisy_skin(rng, log_std: float, blur_texels: float, size: int = 512) -> np.ndarray:
    noise = rng.standard_normal((size, size)).astype(np.float32)
    if blur_texels:
        noise = cv2.GaussianBlur(noise, (0, 0), blur_texels)
    return (np.asarray(LIGHT_SKIN, np.float32) * np.exp(log_std * noise / noise.std())[..., None]).astype(np.float32)


def test_noise_is_not_hair_up_to_a_limit():
    """A noisy photo's texels (0.1 log, a texel across, at 2048's resolution) are not hair; noise of 0.2 log
    is, as the strands' texture is (the limit of telling them apart by texture alone)."""
    rng = np.random.default_rng(7)
    everywhere = np.ones((512, 512), bool)
    assert hair_cover(_noisy_skin(rng, 0.1, 1.0), everywhere, everywhere, 6.8).max() == 0.0
    assert hair_cover(_noisy_skin(rng, 0.2, 1.0), everywhere, everywhere, 6.8).mean() > 0.9


def test_no_hair_is_looked_for_where_texels_are_coarser_than_strands():
    """A tile whose texel is coarser than the strands' scale (a 256 face tile: 0.85 texels per mm) holds
    texel noise, not texture: nothing is covered, even noise of 0.2 log (at 1.3 texels per mm, it is)."""
    rng = np.random.default_rng(6)
    everywhere = np.ones((512, 512), bool)
    noisy = _noisy_skin(rng, 0.2, 0.0)
    assert hair_cover(noisy, everywhere, everywhere, 0.85).max() == 0.0
    assert hair_cover(noisy, everywhere, everywhere, 1.3).mean() > 0.9


def test_hair_cover_bad_inputs():
    albedo = np.full((64, 64, 3), 0.2, np.float32)
    everywhere = np.ones((64, 64), bool)
    with pytest.raises(ValueError):
        hair_cover(albedo[..., :2], everywhere, everywhere, PER_MM)
    with pytest.raises(ValueError):
        hair_cover(albedo, everywhere[:10], everywhere, PER_MM)
    with pytest.raises(ValueError):
        hair_cover(albedo, everywhere, everywhere, 0.0)
    with pytest.raises(ValueError):
        hair_cover(albedo, everywhere, everywhere, PER_MM, hidden=everywhere[:10])
