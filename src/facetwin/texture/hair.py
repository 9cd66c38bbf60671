"""Hair on the skin of the face tile: beards and moustaches, told from skin by their texture.

The photometric fit rejects what is unlike the skin around it, but a beard is no one colour: a white beard
on dark skin is bright strands over dark gaps, a dark beard on light skin the reverse, and in a grayscale
photo there is no hue to tell either from skin. What a beard has, wherever the photo resolves its strands,
is texture: many of its texels lie well above the mean of their surroundings at the strands' scale
(:data:`HAIR_SCALE_MM`, :data:`HAIR_STEP_LOG`), strands, and as many well below it, the gaps between them.
Bare skin has a few such texels (pores, grain); a wrinkle or a fold has its dark creases and the edge of face
paint one step, so they pass the share of one sign, not of both, except in bands along them, which are
narrower than hair grows (:data:`HAIR_MIN_WIDTH_MM`). Measured on the albedo of the shared photos' beard
regions at 2048: the share of both signs is over :data:`HAIR_SHARE` on 77 % of frederick_douglass_1879's seen
texels, on 0.5-3 % of model_face's, classroom_in_tanzania's and woman_portrait's, and on 6.5 % of
grace_hopper's wrinkles and 12 % of face_paint's (its paint's edges); after the width and area tests, in
the appearance stage at 2048 (before the fold step, whose lines a beard's strands are too), hair covers
45 % of Douglass's beard region, 1.4 % of grace_hopper's, 6.1 % of face_paint's (the edges of white stripes
of paint, which are not skin either), 1.4 % of woman_portrait's (hair at her ear) and 2.3 % of
classroom_in_tanzania's (along the edge of her white headscarf).

Texture alone cannot tell strands from strong noise: a texel noise of 0.2 log (a very noisy or grainy
photo) is taken for hair, 0.1 log is not; a tile whose texels are coarser than :data:`HAIR_SCALE_MM` holds
only texel noise, and no hair is looked for there.

Hair is looked for only where beards grow (:attr:`facetwin.texture.regions.FaceRegions.beard`): above it, a
grainy photo's forehead has as dense a texture as a beard, and hair on the scalp and brows is not on the
face tile's skin. The cover is a region, not the strands: the gaps between strands are hair's shadow and
skin seen through it, not the skin's albedo either.

Texel convention of :mod:`facetwin.texture.uvmap`; albedo linear (:mod:`facetwin.frames`).
"""

from __future__ import annotations

import math

import numpy as np

HAIR_SCALE_MM = 0.8
"""Gaussian sigma, on the surface, of the surroundings a texel is compared with: a few strands' widths."""
HAIR_STEP_LOG = 0.15
"""A texel this far (natural log of its luminance) above or below its surroundings is a strand or a gap
between strands."""
HAIR_WINDOW_MM = 2.4
"""Gaussian sigma, on the surface, of the window whose shares of such texels are taken."""
HAIR_SHARE = 0.15
"""Hair has at least this share of texels above their surroundings, and as many below: strands and the
gaps between them. A wrinkle or a fold has its dark creases, the edge of face paint its one step; skin's
pores and grain reach the step in a few texels only."""
HAIR_CLOSE_MM = 2.0
"""Gaps this wide within hair (a parting of the beard, a patch its strands happen to miss) are hair too."""
HAIR_MIN_WIDTH_MM = 5.0
"""Hair covers patches at least this wide: the share of strong steps is also high in a band along a sharp
edge or line (a fold's shadow, the edge of face paint), a few millimetres wide."""
HAIR_MIN_AREA_MM2 = 50.0
"""Hair covers at least this much of the surface (a small goatee is 3 cm^2); a denser patch of grain or a
wrinkle's crossing is smaller."""
HAIR_EDGE_MM = 0.5
"""Gaussian sigma of the cover's soft edge, which lies outside the patch."""
HAIR_MAX_PER_MM = 7.0
"""Finer tiles (4096 on the face) are judged on blocks of texels: a 2048 tile resolves the strands' scale,
and the filters' cost grows with their reach in texels."""


def hair_cover(
    albedo: np.ndarray,
    seen: np.ndarray,
    region: np.ndarray,
    texels_per_mm: float,
    hidden: np.ndarray | None = None,
) -> np.ndarray:
    """How much of each texel of ``region`` is covered by hair (module docstring).

    Args:
        albedo: (S, S, 3) linear albedo of the face tile (or (H, W, 3) of a part of it), NaN where missing.
        seen: (S, S) bool texels whose sample of the photo is taken for skin.
        region: (S, S) bool where hair may be looked for.
        texels_per_mm: texels per millimetre of the surface.
        hidden: (S, S) bool texels the photo shows but whose sample was taken for something over the skin
            (the photometric fit's occluders), or None for none. Hair left along them is a fringe of
            what they hide, and counts with them in the width and area tests.

    Returns:
        (S, S) float32 in [0, 1], 0 outside ``region``; 0 everywhere when a texel is coarser than
        :data:`HAIR_SCALE_MM`.
    """
    import cv2
    from scipy.ndimage import binary_fill_holes

    from facetwin.texture.complete import channel_mean, mask_box, weighted_blur

    albedo = np.asarray(albedo, np.float32)
    shapes = [np.shape(seen), np.shape(region)] + ([] if hidden is None else [np.shape(hidden)])
    if albedo.ndim != 3 or albedo.shape[2] != 3 or any(sh != albedo.shape[:2] for sh in shapes):
        raise ValueError(f"albedo, seen, region, hidden: expected (S, S, 3) and (S, S); got {albedo.shape}, {shapes}")
    if not texels_per_mm > 0:
        raise ValueError(f"texels_per_mm: expected > 0, got {texels_per_mm!r}")
    if HAIR_SCALE_MM * texels_per_mm < 1.0:
        # The tile does not resolve the strands' scale (a 256 face tile): texel noise is no texture.
        return np.zeros(albedo.shape[:2], np.float32)
    k = math.ceil(texels_per_mm / HAIR_MAX_PER_MM)
    if k > 1:
        return _on_blocks(albedo, seen, region, texels_per_mm, hidden, k)
    height, width = albedo.shape[:2]
    cover = np.zeros((height, width), np.float32)
    looked = np.asarray(seen, bool) & np.asarray(region, bool)
    if not looked.any():
        return cover
    # Only the region's bounding box, with room for the widest filter, is read and filtered (the seen
    # part's box holds the box of its texels with some brightness).
    reach = math.ceil(3.0 * max(HAIR_SCALE_MM, HAIR_WINDOW_MM) * texels_per_mm)
    outer = mask_box(looked, reach)
    lum = channel_mean(np.nan_to_num(albedo[outer], nan=0.0))
    look_outer = looked[outer] & (lum > 0)
    if not look_outer.any():
        return cover
    inner = mask_box(look_outer, reach)
    box = tuple(slice(o.start + i.start, o.start + i.stop) for o, i in zip(outer, inner))
    look = look_outer[inner]  # over box
    weight = look.astype(np.float32)
    log_lum = np.log(np.maximum(lum[inner], 1e-4))

    def mean_around(x: np.ndarray, sigma_mm: float) -> np.ndarray:
        return weighted_blur(x, weight, sigma_mm * texels_per_mm)

    detail = log_lum - mean_around(log_lum, HAIR_SCALE_MM)
    above = mean_around((detail > HAIR_STEP_LOG).astype(np.float32), HAIR_WINDOW_MM)
    below = mean_around((detail < -HAIR_STEP_LOG).astype(np.float32), HAIR_WINDOW_MM)
    hairy = np.minimum(above, below) > HAIR_SHARE
    # Where the photometric fit already hid most of a beard, what is left of it is a fringe along the
    # hidden part, as thin as a fold's band.
    grown = hairy & look
    if hidden is not None:
        grown |= np.asarray(hidden, bool)[box] & np.asarray(region, bool)[box]
    r = max(round(HAIR_CLOSE_MM * texels_per_mm), 1)
    grown = cv2.morphologyEx(grown.astype(np.uint8), cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    r = max(round(0.5 * HAIR_MIN_WIDTH_MM * texels_per_mm), 1)
    grown = cv2.morphologyEx(grown, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    n, labels = cv2.connectedComponents(grown, connectivity=8)
    hair_texels = np.bincount(labels[hairy & look], minlength=n)
    big = hair_texels >= HAIR_MIN_AREA_MM2 * texels_per_mm**2
    big[0] = False
    # A dense beard's middle is the strands' colour alone, with little texture of its own.
    patch = (binary_fill_holes(big[labels]) & look).astype(np.float32)
    # Fully covered up to the patch's edge, fading out beyond it.
    cover[box] = 2.0 * cv2.GaussianBlur(patch, (0, 0), max(HAIR_EDGE_MM * texels_per_mm, 0.5))
    return np.where(region, np.clip(cover, 0.0, 1.0), 0.0).astype(np.float32)


def _on_blocks(albedo, seen, region, texels_per_mm: float, hidden, k: int) -> np.ndarray:
    """:func:`hair_cover` judged on blocks of ``k`` x ``k`` texels over the region's bounding box (the mean
    albedo of their seen texels; a block is seen, in the region or hidden where most of its texels are),
    enlarged bilinearly."""
    import cv2

    height, width = albedo.shape[:2]
    region = np.asarray(region, bool)
    cover = np.zeros((height, width), np.float32)
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    if rows.size == 0:
        return cover
    # Whole blocks from the tile's corner, so that the blocks are the same whatever the region.
    r0, c0 = rows[0] // k * k, cols[0] // k * k
    r1, c1 = min(-(-(rows[-1] + 1) // k) * k, height), min(-(-(cols[-1] + 1) // k) * k, width)
    box = (slice(r0, r1), slice(c0, c1))
    shape = ((c1 - c0) // k, (r1 - r0) // k)  # cv2's (width, height)

    def blocks(x: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(x, np.float32), shape, interpolation=cv2.INTER_AREA)

    seen = np.asarray(seen, bool)[box]
    seen_share = blocks(seen)
    albedo_seen = np.where(seen[..., None], np.nan_to_num(np.asarray(albedo)[box], nan=0.0), 0.0)
    small = hair_cover(
        blocks(albedo_seen) / np.maximum(seen_share, 1e-6)[..., None],
        seen_share > 0.5,
        blocks(region[box]) > 0.5,
        texels_per_mm / k,
        None if hidden is None else blocks(np.asarray(hidden)[box]) > 0.5,
    )
    cover[box] = cv2.resize(small, (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
    return np.where(region, cover, 0.0).astype(np.float32)
