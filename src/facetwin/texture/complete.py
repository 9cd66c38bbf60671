"""Texture completion: fill what the photo does not show from the mirrored side, a seamless Poisson
fill, and a fallback skin tone.

Given a tile's texture ``T`` (linear), the confidence ``c`` in [0, 1] of each texel (how well the photo
saw it), the tile's left-right mirror map (:func:`facetwin.texture.uvmap.mirror_texels`) and the texels
on the surface:

1. Mirror. ``M`` and ``c_m`` are the texture and the confidence at each texel's mirror image, sampled
   bilinearly, with each texel weighted by its confidence. The two sides of a photographed face are not
   lit alike, and what the delighting leaves differs between them; so ``M`` is first brought to the own
   side's level, ``M <- M exp(r)``, with ``r`` the Gaussian mean (``mirror_level_uv`` of the tile) of
   ``log T - log M`` over the texels both sides saw well (``c c_m`` past :data:`MIRROR_LEVEL_FROM`), in
   full where they are at least :data:`MIRROR_LEVEL_SUPPORT` of the neighbourhood, fading out where fewer
   are. Own and mirrored are then blended where the own confidence is low:
   ``B = (c T + (1 - c) c_m M) / (c + (1 - c) c_m)``, with combined confidence ``c_b = c + (1 - c) c_m``.
2. Fill. Texels with ``c_b >= known_threshold`` keep ``B``. On the others, the unknown region ``U``, the
   output ``F`` minimises (with ``F = B`` on the known texels, sums over 4-neighbour edges of valid texels)
   ``sum (F_i - F_j - g_ij)^2 + sum over U of mu_u (F_u - G_u)^2``. The guidance
   ``g_ij = min(w_i, w_j) (B_i - B_j)``, with ``w = min(c_b / known_threshold, 1)``, is the gradient of
   what was partly seen (own or mirrored), fading with its confidence. The screening
   ``mu = (1 - w) / (fallback_decay_uv * S)^2`` pulls the fill towards the guide
   ``G = w B + (1 - w) fallback`` wherever little was seen. So ``F`` meets the known texels without a
   seam, keeps the detail of what was partly seen, and over ``fallback_decay_uv`` (a fraction of the tile)
   settles to the fallback skin tone in large unseen regions such as the back of the head and the neck.

``F`` is computed as ``G + H``, with the correction ``H`` from a sparse LU solve. ``H`` is smooth where the
confidence varies smoothly. For tiles larger than ``solve_size``, it is solved on a grid downsampled by
blocks and upsampled bilinearly: about 0.3 s for the LU at 256, whatever S is. Detail stays at full
resolution, because it comes from ``G``; only the low-frequency correction is coarse. At the boundary of
the unknown region, the mismatch is the texture detail within one block.

The two UV tiles are completed separately, so where the face tile meets the back-of-head tile on the
surface, both sides only agree once both have faded to the fallback tone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

KNOWN_THRESHOLD = 0.5
"""Combined confidence from which a texel's own-plus-mirrored colour is kept as it is."""
FALLBACK_DECAY_UV = 0.1
"""Distance, as a fraction of the tile (about 2 cm on the face), over which the fill relaxes to the
fallback tone where neither side was seen."""
MIRROR_LEVEL_UV = 0.03
"""Gaussian sigma, a fraction of the tile (about 1 cm on the face), of the neighbourhood over which the
mirrored colour is brought to the own side's level (step 1 of the module docstring). Without it a hole the
photo's side left (a texel given up by a later test) took the other side's colour as it was:
frederick_douglass_1879's lit side put white specks into the darker one at the eye. A third of this drew
the own side's shadow at the eye's corner into the hole."""
MIRROR_LEVEL_FROM = (0.8, 0.95)
"""``c c_m`` over which a texel comes to count fully in the level's mean: only what both sides saw well. A
texel whose confidence a later test lowered (a whitened cheek's shine, a lit nose wing's rim) is what the
mirror is to replace, not a level to bring it to: counted by ``c c_m``, the rims of such patches darkened
the mirrored cheek by 0.17 (log) and lit a nose wing's crescent 0.28 brighter than the skin."""
MIRROR_LEVEL_SUPPORT = 0.2
"""Share of the neighbourhood (Gaussian-weighted, :data:`MIRROR_LEVEL_FROM`) seen well by both sides from
which the level is matched in full; less support, less of it."""
SOLVE_SIZE = 256
"""Largest grid on which the correction is solved exactly. 512 gives a sharper correction at about 2 s
more (sparse LU)."""
NEIGHBOUR_PAIRS = (
    ((slice(None), slice(0, -1)), (slice(None), slice(1, None))),
    ((slice(0, -1), slice(None)), (slice(1, None), slice(None))),
)
"""Index pairs ``(a, b)`` such that ``x[a]`` and ``x[b]`` are the two ends of every horizontal, then every
vertical, 4-neighbour edge of an (S, S, ...) grid."""
_RELAX_SWEEPS = 30
"""Gauss-Seidel sweeps at full resolution after upsampling the block solution: they fix the correction near
the boundary of the unknown region, where it varies within a block."""
_RELAX_BAND_BLOCKS = 2
"""Blocks, from the nearest block with a known texel, within which the fine sweeps run."""
_SCREEN_FLOOR = 1e-9
"""Screening added to every unknown texel so that regions with no known boundary still have one
solution (the fallback). Much smaller than any real screening, 1 / (0.1 * 256)^2 = 1.5e-3."""


DETAIL_PERIOD = 1024
"""The synthesized detail repeats every this many texels (7 cm of the face at 4096): one FFT of this size
instead of the whole tile's."""
DETAIL_COARSEST_CM = 0.15
"""Skin detail is what is finer than a Gaussian of this (1.5 mm: pores, fine lines, not the skin's colour
or shading); it is measured and synthesized in octaves below it (:func:`detail_scales`)."""
DETAIL_FINEST_TEXELS = 0.5
"""The finest octave edge, texels: finer bands are the texel's own (the first band runs from 0 to it)."""
DETAIL_MIN_CM2 = 1.0
"""A source of skin detail smaller than this gives no statistics (an empty spread)."""
_DETAIL_SAMPLES = 200_000
"""At most about this many source texels are taken for the band spreads' medians."""
DETAIL_SPECTRUM_SMOOTH = 0.05
"""Weight of the curvature of the log spectrum from node to node, against the misfit of the bands' log
variances. The bands overlap: unpenalised, the fit met the nearly equal spreads of a grainy photo (bands
capped at the appearance stage's ``DETAIL_MAX_SPREAD``) with a spectrum spiking at one band and near zero at
the next, and the field showed rings 6 texels across (frederick_douglass_1879's fill). With it, the round
trip stays within 6 % on the coarse bands and 12 % on the finest."""
_DETAIL_RINGS = 64
"""Log-spaced rings of frequency over which the synthesized detail's spectrum is summed to fit it."""


@dataclass(frozen=True)
class Completion:
    """A completed tile texture.

    Attributes:
        texture_linear: (S, S, 3) float32, linear; every valid texel is filled; invalid ones are 0.
        confidence: (S, S) float32 in [0, 1], the combined own-plus-mirrored confidence ``c_b``; 0 where
            the texel was filled from the fallback tone alone, or is off the surface.
    """

    texture_linear: np.ndarray
    confidence: np.ndarray


@numba.njit(cache=True, parallel=True)
def _mirror_blend(texture, conf, own, valid, mirror, gain, blended, c_b):  # pragma: no cover - compiled
    """Stage 1: ``B`` and ``c_b`` from the own texel, with confidence ``own``, and the bilinear, ``conf``
    weighted mirror sample times ``gain`` (S, S, 3); with ``own`` 0, ``M`` and ``c_m``.

    ``conf`` is 0 off the surface, so those texels are never read; off the surface both outputs are 0.
    """
    h, w = conf.shape
    for i in numba.prange(h):
        acc = np.zeros(3)
        for j in range(w):
            c = own[i, j]
            acc[:] = 0.0
            total = 0.0
            if not valid[i, j]:
                c_b[i, j] = 0.0
                blended[i, j, :] = 0.0
                continue
            x = mirror[i, j, 0] - 0.5
            y = mirror[i, j, 1] - 0.5
            if np.isfinite(x) and np.isfinite(y):
                j0 = int(np.floor(x))
                i0 = int(np.floor(y))
                tx = x - j0
                ty = y - i0
                for di in range(2):
                    ii = min(max(i0 + di, 0), h - 1)
                    wy = ty if di == 1 else 1.0 - ty
                    for dj in range(2):
                        jj = min(max(j0 + dj, 0), w - 1)
                        wgt = wy * (tx if dj == 1 else 1.0 - tx) * conf[ii, jj]
                        if wgt > 0.0:
                            total += wgt
                            for k in range(3):
                                acc[k] += wgt * texture[ii, jj, k]
            # (1 - c) c_m M = (1 - c) acc, since M = acc / c_m with c_m = total.
            cb = c + (1.0 - c) * total
            c_b[i, j] = cb
            for k in range(3):
                own_part = c * texture[i, j, k] if c > 0.0 else 0.0
                blended[i, j, k] = (own_part + (1.0 - c) * gain[i, j, k] * acc[k]) / cb if cb > 0.0 else 0.0


@numba.njit(cache=True)
def _guide_weight(cb, threshold):  # pragma: no cover - compiled
    return min(cb / threshold, 1.0)


@numba.njit(cache=True, parallel=True)
def _relax(h, blended, c_b, valid, rows, cols, n_even, threshold, fallback, beta, sweeps):  # pragma: no cover
    """Gauss-Seidel sweeps of the fine-grid equations for H at the unknown texels ``rows, cols``, in place.

    Red-black: the first ``n_even`` texels have ``row + col`` even, the rest odd; texels of one parity
    have no neighbours of the same parity, so each half updates in parallel.
    """
    n_rows, n_cols = c_b.shape
    for _ in range(sweeps):
        for lo, hi in ((0, n_even), (n_even, rows.size)):
            for t in numba.prange(lo, hi):
                i, j = rows[t], cols[t]
                wu = _guide_weight(c_b[i, j], threshold)
                diag = (1.0 - wu) * beta + _SCREEN_FLOOR
                a0 = a1 = a2 = 0.0
                for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                    ni, nj = i + di, j + dj
                    if ni < 0 or ni >= n_rows or nj < 0 or nj >= n_cols or not valid[ni, nj]:
                        continue
                    diag += 1.0
                    known = c_b[ni, nj] >= threshold
                    wn = 1.0 if known else _guide_weight(c_b[ni, nj], threshold)
                    wmin = min(wu, wn)
                    for k in range(3):
                        g = wmin * (blended[i, j, k] - blended[ni, nj, k])
                        gu = wu * blended[i, j, k] + (1.0 - wu) * fallback[k]
                        if known:
                            v = blended[ni, nj, k] + g - gu
                        else:
                            gn = wn * blended[ni, nj, k] + (1.0 - wn) * fallback[k]
                            v = h[ni, nj, k] + g - (gu - gn)
                        if k == 0:
                            a0 += v
                        elif k == 1:
                            a1 += v
                        else:
                            a2 += v
                h[i, j, 0] = a0 / diag
                h[i, j, 1] = a1 / diag
                h[i, j, 2] = a2 / diag


@numba.njit(cache=True, parallel=True)
def _block_reduce(blended, c_b, valid, threshold, k, b_c, w_c, n_unknown, n_known):  # pragma: no cover
    """Per k x k block: mean B (weighted by the guide weight), mean w over unknown texels, and counts."""
    n = b_c.shape[0]
    size = c_b.shape[0]
    for bi in numba.prange(n):
        for bj in range(n):
            wsum = 0.0
            usum = 0.0
            acc = np.zeros(3)
            nu = 0
            nk = 0
            for i in range(bi * k, min(bi * k + k, size)):
                for j in range(bj * k, min(bj * k + k, size)):
                    if not valid[i, j]:
                        continue
                    w = _guide_weight(c_b[i, j], threshold)
                    if c_b[i, j] >= threshold:
                        nk += 1
                    else:
                        nu += 1
                        usum += w
                    wsum += w
                    for c in range(3):
                        acc[c] += w * blended[i, j, c]
            for c in range(3):
                b_c[bi, bj, c] = acc[c] / wsum if wsum > 0.0 else 0.0
            w_c[bi, bj] = usum / nu if nu > 0 else 1.0
            n_unknown[bi, bj] = nu
            n_known[bi, bj] = nk


@numba.njit(cache=True, parallel=True)
def _upsample(coarse, factor, out):  # pragma: no cover - compiled
    """Bilinear upsampling of ``coarse`` (n, n, 3) by ``factor`` into ``out`` (S, S, 3), centres aligned."""
    n = coarse.shape[0]
    h, w = out.shape[:2]
    for i in numba.prange(h):
        y = (i + 0.5) / factor - 0.5
        i0 = min(max(int(np.floor(y)), 0), n - 1)
        i1 = min(i0 + 1, n - 1)
        ty = min(max(y - i0, 0.0), 1.0)
        for j in range(w):
            x = (j + 0.5) / factor - 0.5
            j0 = min(max(int(np.floor(x)), 0), n - 1)
            j1 = min(j0 + 1, n - 1)
            tx = min(max(x - j0, 0.0), 1.0)
            for c in range(3):
                top = (1.0 - tx) * coarse[i0, j0, c] + tx * coarse[i0, j1, c]
                bottom = (1.0 - tx) * coarse[i1, j0, c] + tx * coarse[i1, j1, c]
                out[i, j, c] = (1.0 - ty) * top + ty * bottom


@numba.njit(cache=True, parallel=True)
def _compose(blended, c_b, valid, h, threshold, fallback, out):  # pragma: no cover - compiled
    """Known texels keep B; unknown ones get G + H."""
    n_rows, n_cols = c_b.shape
    for i in numba.prange(n_rows):
        for j in range(n_cols):
            for k in range(3):
                if not valid[i, j]:
                    out[i, j, k] = 0.0
                elif c_b[i, j] >= threshold:
                    out[i, j, k] = blended[i, j, k]
                else:
                    w = _guide_weight(c_b[i, j], threshold)
                    out[i, j, k] = w * blended[i, j, k] + (1.0 - w) * fallback[k] + h[i, j, k]


def _solve_correction(
    known: np.ndarray,
    unknown: np.ndarray,
    blended: np.ndarray,
    w: np.ndarray,
    fallback: np.ndarray,
    screen: np.ndarray,
) -> np.ndarray:
    """Solve for the correction H on ``unknown`` (see the module docstring) on one grid.

    Args:
        known: (n, n) bool texels with fixed colour ``B``.
        unknown: (n, n) bool texels to solve for (disjoint from ``known``).
        blended: (n, n, 3) ``B``: the own-plus-mirrored colour.
        w: (n, n) guide weight in [0, 1] (1 on known texels).
        fallback: (3,) fallback colour.
        screen: (n, n) screening weight ``mu`` at the unknown texels.

    Returns:
        (n, n, 3) float64, H on ``unknown``, 0 elsewhere.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    n_unknown = int(unknown.sum())
    out = np.zeros(unknown.shape + (3,))
    if n_unknown == 0:
        return out
    guide = w[..., None] * blended + (1.0 - w[..., None]) * fallback
    index = np.full(unknown.shape, -1, np.int64)
    index[unknown] = np.arange(n_unknown)
    diag = screen[unknown].astype(np.float64) + _SCREEN_FLOOR
    rhs = np.zeros((n_unknown, 3))
    rows, cols = [], []
    for a, b in NEIGHBOUR_PAIRS:
        ia, ib = index[a], index[b]
        # Guidance across the edge a -> b: B's gradient where both ends were (partly) seen.
        g = np.minimum(w[a], w[b])[..., None] * (blended[a] - blended[b])
        both = (ia >= 0) & (ib >= 0)
        rows += [ia[both], ib[both]]
        cols += [ib[both], ia[both]]
        np.add.at(diag, ia[both], 1.0)
        np.add.at(diag, ib[both], 1.0)
        s_ab = (g - (guide[a] - guide[b]))[both]  # (H_a - H_b - s_ab)^2
        np.add.at(rhs, ia[both], s_ab)
        np.add.at(rhs, ib[both], -s_ab)
        for iu, k_side, sign in ((ia, b, 1.0), (ib, a, -1.0)):
            # (F_u - B_k - g_uk)^2 with F_u = G_u + H_u; g_uk = +g when u is the a end, -g when it is b.
            edge = (iu >= 0) & known[k_side]
            u_side = a if sign > 0 else b
            np.add.at(diag, iu[edge], 1.0)
            np.add.at(rhs, iu[edge], (blended[k_side] + sign * g - guide[u_side])[edge])
    r = np.concatenate(rows + [np.arange(n_unknown)])
    c = np.concatenate(cols + [np.arange(n_unknown)])
    values = np.concatenate([np.full(r.size - n_unknown, -1.0), diag])
    A = sp.csc_matrix((values, (r, c)), shape=(n_unknown, n_unknown))
    out[unknown] = splu(A, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    return out


def _correction(
    blended: np.ndarray,
    c_b: np.ndarray,
    valid: np.ndarray,
    threshold: float,
    fallback: np.ndarray,
    decay_uv: float | None,
    solve_size: int,
) -> np.ndarray:
    """The correction H, (S, S, 3) float32: exact up to ``solve_size``, else solved on blocks and refined."""
    from scipy.ndimage import binary_dilation, distance_transform_edt

    size = c_b.shape[0]

    def beta(grid: int) -> float:
        return 0.0 if decay_uv is None else 1.0 / (decay_uv * grid) ** 2

    if size <= solve_size:
        known = valid & (c_b >= threshold)
        w = np.where(known, 1.0, np.minimum(c_b / threshold, 1.0))
        h = _solve_correction(
            known, valid & ~known, blended.astype(np.float64), w, fallback, (1.0 - w) * beta(size)
        )
        return h.astype(np.float32)
    k = -(-size // solve_size)
    n = -(-size // k)
    b_c = np.zeros((n, n, 3))
    w_c = np.zeros((n, n))
    n_unknown = np.zeros((n, n), np.int64)
    n_known = np.zeros((n, n), np.int64)
    _block_reduce(blended, c_b, valid, threshold, k, b_c, w_c, n_unknown, n_known)
    unknown_c = n_unknown > 0  # a block with any unknown texel is unknown; the others are known or empty
    known_c = (n_known > 0) & ~unknown_c
    h_c = _solve_correction(known_c, unknown_c, b_c, w_c, fallback, (1.0 - w_c) * beta(n))
    if unknown_c.any():
        # Continue H past the unknown blocks by their nearest value so that bilinear upsampling near the
        # boundary does not pull it towards 0.
        nearest = distance_transform_edt(~unknown_c, return_distances=False, return_indices=True)
        h_c = h_c[nearest[0], nearest[1]]
    h = np.empty((size, size, 3), np.float32)
    _upsample(h_c.astype(np.float32), k, h)
    # Relax the unknown texels in the blocks within two blocks of a known texel; deeper inside, the block
    # solution is smooth and final.
    band_c = binary_dilation(n_known > 0, iterations=_RELAX_BAND_BLOCKS) & unknown_c
    band = np.repeat(np.repeat(band_c, k, axis=0), k, axis=1)[:size, :size]
    rows, cols = np.nonzero(band & valid & (c_b < threshold))
    order = np.argsort((rows + cols) % 2, kind="stable")
    rows, cols = rows[order], cols[order]
    n_even = int(np.count_nonzero((rows + cols) % 2 == 0))
    fb32 = fallback.astype(np.float32)
    _relax(h, blended, c_b, valid, rows, cols, n_even, threshold, fb32, beta(size), _RELAX_SWEEPS)
    return h


def complete_texture(
    texture_linear: np.ndarray,
    confidence: np.ndarray,
    mirror: np.ndarray,
    valid: np.ndarray,
    fallback_linear: np.ndarray,
    *,
    known_threshold: float = KNOWN_THRESHOLD,
    fallback_decay_uv: float | None = FALLBACK_DECAY_UV,
    mirror_level_uv: float | None = MIRROR_LEVEL_UV,
    solve_size: int = SOLVE_SIZE,
) -> Completion:
    """Complete one UV tile: mirror, then a seamless fill, then the fallback tone (see the module docstring).

    Args:
        texture_linear: (S, S, 3) linear colour per texel (e.g. albedo); only texels with confidence > 0
            are read, so the others may hold anything, NaN included.
        confidence: (S, S) in [0, 1], how well the photo saw each texel (0: not at all).
        mirror: (S, S, 2) texel coordinates of each texel's mirror image
            (:func:`facetwin.texture.uvmap.mirror_texels`); NaN for none.
        valid: (S, S) bool, texels on the surface (:attr:`facetwin.texture.uvmap.UVRaster.valid`).
        fallback_linear: (3,) linear colour for what neither side shows (e.g. the median skin albedo).
        known_threshold: combined confidence in (0, 1] from which a texel keeps its own-plus-mirrored colour.
        fallback_decay_uv: distance (fraction of the tile) over which the fill relaxes to the fallback where
            nothing was seen; None for a pure harmonic fill (the fallback then only fills regions with no
            known texel at all).
        mirror_level_uv: Gaussian sigma (a fraction of the tile) over which the mirrored colour is brought to
            the own side's level where both sides were seen (step 1); None takes it as it is.
        solve_size: the largest grid on which the correction is solved exactly; larger tiles solve it on
            blocks and upsample it.

    Returns:
        :class:`Completion`.

    Raises:
        ValueError: inconsistent shapes or values out of range.
    """
    tex = np.asarray(texture_linear, np.float32)
    if tex.ndim != 3 or tex.shape[0] != tex.shape[1] or tex.shape[2] != 3:
        raise ValueError(f"texture_linear: expected (S, S, 3), got {tex.shape}")
    size = tex.shape[0]
    conf = np.asarray(confidence, np.float32)
    mir = np.asarray(mirror, np.float32)
    ok = np.asarray(valid, bool)
    fb = np.asarray(fallback_linear, np.float32).reshape(-1)
    expected = {"confidence": (conf, (size, size)), "mirror": (mir, (size, size, 2))}
    expected |= {"valid": (ok, (size, size)), "fallback_linear": (fb, (3,))}
    for name, (arr, shape) in expected.items():
        if arr.shape != shape:
            raise ValueError(f"{name}: expected {shape}, got {arr.shape}")
    if not np.all((conf >= 0.0) & (conf <= 1.0)):
        raise ValueError(f"confidence: expected values in [0, 1], got [{conf.min()}, {conf.max()}]")
    if not 0.0 < known_threshold <= 1.0:
        raise ValueError(f"known_threshold: expected (0, 1], got {known_threshold}")
    if fallback_decay_uv is not None and not fallback_decay_uv > 0.0:
        raise ValueError(f"fallback_decay_uv: expected > 0 or None, got {fallback_decay_uv}")
    if mirror_level_uv is not None and not mirror_level_uv > 0.0:
        raise ValueError(f"mirror_level_uv: expected > 0 or None, got {mirror_level_uv}")
    if int(solve_size) != solve_size or solve_size < 8:
        raise ValueError(f"solve_size: expected an integer >= 8, got {solve_size}")

    c = np.where(ok, conf, 0.0).astype(np.float32)
    blended = np.empty_like(tex)
    c_b = np.empty_like(c)
    if mirror_level_uv is None:
        gain = np.ones_like(tex)
    else:
        gain = _mirror_gain(tex, c, ok, mir, mirror_level_uv * size)
    _mirror_blend(tex, c, c, ok, mir, gain, blended, c_b)
    out = np.empty_like(tex)
    if np.any(ok & (c_b < known_threshold)):
        h = _correction(
            blended, c_b, ok, known_threshold, fb.astype(np.float64), fallback_decay_uv, int(solve_size)
        )
    else:
        h = np.zeros_like(tex)
    _compose(blended, c_b, ok, h, known_threshold, fb, out)
    return Completion(texture_linear=out, confidence=c_b)


def _mirror_gain(texture, conf, valid, mirror, sigma: float) -> np.ndarray:
    """(S, S, 3) float32 ``exp(r)`` of step 1 of the module docstring: the factor that brings the mirrored
    colour to the own side's level, from the texels both sides saw within ``sigma`` texels. It is smooth at
    that scale, so it is found on blocks of about a quarter of ``sigma`` (each block's confidence-weighted
    mean colour, and its centre's mirror) and enlarged bilinearly."""
    import cv2

    from facetwin.texture.delight import smoothstep

    size = conf.shape[0]
    k = max(int(sigma // 4), 1)
    n = -(-size // k)
    weight = np.where(valid, conf, 0.0).astype(np.float32)
    small_conf = cv2.resize(weight, (n, n), interpolation=cv2.INTER_AREA)
    colour = np.where(weight[..., None] > 0.0, np.nan_to_num(texture), 0.0) * weight[..., None]
    small = cv2.resize(colour.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)
    small /= np.maximum(small_conf, 1e-6)[..., None]
    # The mirror of each block's centre texel, in block units.
    centres = np.minimum(np.arange(n) * k + k // 2, size - 1)
    small_mirror = np.ascontiguousarray(mirror[np.ix_(centres, centres)] / k, np.float32)
    small_valid = small_conf > 0.0
    mirrored = np.empty_like(small)
    c_m = np.empty_like(small_conf)
    _mirror_blend(small, small_conf, np.zeros_like(small_conf), small_valid, small_mirror, np.ones_like(small), mirrored, c_m)
    both = smoothstep(small_conf * c_m, *MIRROR_LEVEL_FROM)
    seen = both > 0.0
    ratio = np.zeros_like(small)
    ratio[seen] = np.log(np.maximum(small[seen], 1e-4)) - np.log(np.maximum(mirrored[seen], 1e-4))
    support = np.clip(gaussian_blur(both, sigma / k) / MIRROR_LEVEL_SUPPORT, 0.0, 1.0)
    log_gain = weighted_blur(ratio, both, sigma / k) * support[..., None]
    return np.exp(cv2.resize(log_gain, (size, size), interpolation=cv2.INTER_LINEAR)).astype(np.float32)


def drop_islands(confidence: np.ndarray, min_texels: int, threshold: float = KNOWN_THRESHOLD) -> np.ndarray:
    """The confidence with every small known island set to 0, with its rim.

    An island is an 8-connected patch of texels with confidence at or above ``threshold`` smaller than
    ``min_texels``; its rim, the texels below the threshold within the radius ``r`` of a disc of
    ``min_texels``, goes with it, since the fill would still be guided by their colour, and their confidence
    comes back smoothly from ``r`` to ``2 r``. A patch this small
    amid what the photo did not show is mostly a mistake of the tests before (a shadowed eye's corner
    passing them, frederick_douglass_1879), and a real mark there cannot be told from one.

    Args:
        confidence: (S, S) in [0, 1].
        min_texels: islands with fewer texels than this are dropped; >= 0.
        threshold: the confidence from which a texel is known (:data:`KNOWN_THRESHOLD`).

    Returns:
        (S, S) float32, a new array.

    Raises:
        ValueError: a bad shape or ``min_texels``.
    """
    import cv2

    from facetwin.texture.delight import smoothstep

    conf = np.asarray(confidence, np.float32)
    if conf.ndim != 2:
        raise ValueError(f"confidence: expected (S, S), got {conf.shape}")
    if int(min_texels) != min_texels or min_texels < 0:
        raise ValueError(f"min_texels: expected an integer >= 0, got {min_texels!r}")
    out = conf.copy()
    known = (conf >= threshold).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(known, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < min_texels
    small[0] = False  # the background: every texel below the threshold
    if not small.any():
        return out
    islands = small[labels]
    r = max(round(math.sqrt(min_texels / math.pi)), 1)
    # The rim fades back in over as far again: a hole with a sharp edge amid partly seen texels is an
    # outline in the fill, which keeps the detail of what was partly seen.
    away = cv2.distanceTransform((~islands).astype(np.uint8), cv2.DIST_L2, 5)
    out = np.where(known.astype(bool), out, out * smoothstep(away, r, 2 * r))
    out[islands] = 0.0
    return out.astype(np.float32)


def detail_scales(texels_per_cm: float) -> np.ndarray:
    """Band edges of the skin detail at a texture's resolution: Gaussian sigmas, texels, finest first.

    ``0`` (the texture itself), then octaves ``DETAIL_COARSEST_CM * texels_per_cm / 2^k`` down to
    :data:`DETAIL_FINEST_TEXELS`. Band ``k`` is the blur by edge ``k`` minus the blur by edge ``k + 1``.
    Textures of the same surface at other resolutions share the coarse edges: a coarser one has fewer
    bands, the finest ones dropped.

    Args:
        texels_per_cm: the texture's resolution on the surface.

    Returns:
        (B + 1,) float64 ascending, ``[0, ..., DETAIL_COARSEST_CM * texels_per_cm]``; just ``[0]`` (no band)
        when the coarsest edge is under :data:`DETAIL_FINEST_TEXELS`: the detail is finer than a texel.
    """
    if not texels_per_cm > 0:
        raise ValueError(f"texels_per_cm: expected > 0, got {texels_per_cm}")
    edges = [DETAIL_COARSEST_CM * float(texels_per_cm)]
    if edges[0] < DETAIL_FINEST_TEXELS:
        return np.zeros(1)
    while edges[-1] / 2.0 >= DETAIL_FINEST_TEXELS:
        edges.append(edges[-1] / 2.0)
    return np.array([0.0] + edges[::-1])


def skin_detail_spread(texture_linear: np.ndarray, source: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Robust spread of each band of a well-seen region's fine skin detail, for :func:`synthesize_detail`.

    The natural-log texture is split into the bands of ``edges`` (differences of Gaussian blurs over the
    source texels alone, normalised, so nothing from outside leaks in); each band's spread is 1.4826
    median absolute deviations over the source: moles, a lash or a hair widen the tails, not the spread.

    Args:
        texture_linear: (S, S, C) linear texture.
        source: (S, S) bool texels whose detail is the person's skin (well seen, plain skin).
        edges: (B + 1,) band edges (:func:`detail_scales`).

    Returns:
        (B, C) float64 spreads, finest band first; (0, C) when ``source`` holds fewer than
        ``DETAIL_MIN_CM2`` worth of texels (taken from the coarsest edge).
    """
    tex = np.asarray(texture_linear, np.float32)
    src = np.asarray(source, bool)
    e = _check_edges(edges)
    if tex.ndim != 3 or src.shape != tex.shape[:2]:
        raise ValueError(f"texture_linear (S, S, C) and source (S, S) disagree: {tex.shape}, {src.shape}")
    texels_per_cm = e[-1] / DETAIL_COARSEST_CM
    if src.sum() < DETAIL_MIN_CM2 * texels_per_cm**2:
        return np.zeros((0, tex.shape[2]))
    box = mask_box(src)
    src = src[box]
    w = src.astype(np.float32)
    log = np.log(np.maximum(np.nan_to_num(tex[box], nan=1.0), 1e-4)) * w[..., None]
    blurs = [log] + [weighted_blur(log, w, x) for x in e[1:]]
    # A regular subsample is plenty for a median (and the whole source of a 4096 tile is millions).
    where = np.flatnonzero(src.ravel())
    where = where[:: max(1, where.size // _DETAIL_SAMPLES)]
    spread = np.empty((e.size - 1, tex.shape[2]))
    for k in range(e.size - 1):
        band = (blurs[k] - blurs[k + 1]).reshape(-1, tex.shape[2])[where].astype(np.float64)
        spread[k] = 1.4826 * np.median(np.abs(band - np.median(band, axis=0)), axis=0)
    return spread


def scale_detail(texture_linear: np.ndarray, source: np.ndarray, edges: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """The texture with each band of its fine detail scaled: the bands of :func:`skin_detail_spread` (over
    the ``source`` texels alone), band ``k`` of channel ``c`` multiplied by ``gains[k, c]``.

    One gain for all bands scales what they measure by it (the coarsest band a little less: it overlaps what
    is coarser than the bands, which is kept). Gains apart from band to band scale their measures less
    far apart: the Gaussians' bands overlap, and each band measures some of its neighbours'.

    Args:
        texture_linear: (S, S, C) linear texture.
        source: (S, S) bool texels whose detail is scaled; the others are neither changed nor read.
        edges: (B + 1,) band edges (:func:`detail_scales`).
        gains: (B, C) the bands' factors, finest first.

    Returns:
        (S, S, C) float32.
    """
    tex = np.asarray(texture_linear, np.float32)
    src = np.asarray(source, bool)
    e = _check_edges(edges)
    g = np.asarray(gains, np.float32)
    if tex.ndim != 3 or src.shape != tex.shape[:2] or g.shape != (e.size - 1, tex.shape[2]):
        raise ValueError(
            f"texture_linear (S, S, C), source (S, S), gains (B, C) disagree: {tex.shape}, {src.shape}, {g.shape}"
        )
    out = tex.copy()
    # Only the channels and bands that change are filtered (most photos' detail is within skin's).
    channels = np.flatnonzero((g != 1.0).any(axis=0))
    bands = np.flatnonzero((g != 1.0).any(axis=1))
    if not src.any() or channels.size == 0:
        return out
    box = mask_box(src)
    w = src[box].astype(np.float32)
    log = np.log(np.maximum(np.nan_to_num(tex[box][..., channels], nan=1.0), 1e-4))
    blurs = {k: log if k == 0 else weighted_blur(log, w, e[k]) for k in np.union1d(bands, bands + 1)}
    scaled = log.copy()
    for k in bands:
        scaled -= (1.0 - g[k, channels]) * (blurs[k] - blurs[k + 1])
    region = out[box]
    region[..., channels] = np.where(src[box][..., None], np.exp(scaled), region[..., channels])
    return out


def _check_edges(edges) -> np.ndarray:
    e = np.asarray(edges, np.float64)
    if e.ndim != 1 or e.size < 2 or e[0] != 0.0 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges: expected ascending sigmas from 0 (detail_scales), got {edges!r}")
    return e


def mask_box(mask: np.ndarray, pad: int = 0) -> tuple[slice, slice]:
    """Row and column slices of the bounding box of a (H, W) bool mask's true entries, grown by ``pad``
    on each side and clipped to the array: the part of a tile a step on a small region needs to read.

    Raises:
        ValueError: an empty mask or a negative ``pad``.
    """
    m = np.asarray(mask, bool)
    if m.ndim != 2 or not m.any():
        raise ValueError(f"mask: expected a non-empty (H, W) bool array, got shape {m.shape}")
    if pad < 0:
        raise ValueError(f"pad: expected >= 0, got {pad}")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return (
        slice(max(rows[0] - pad, 0), min(rows[-1] + pad + 1, m.shape[0])),
        slice(max(cols[0] - pad, 0), min(cols[-1] + pad + 1, m.shape[1])),
    )


def channel_sum(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=-1)`` of a float (..., C) array, the same values: numpy's reduction over a short last
    axis is several times slower than adding the channels, and tiles of 2048 x 2048 texels take it often."""
    x = np.asarray(x)
    total = x[..., 0].copy()
    for c in range(1, x.shape[-1]):
        total += x[..., c]
    return total


def channel_mean(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """``x.mean(axis=-1, keepdims=keepdims)`` of a float (..., C) array, the same values (:func:`channel_sum`)."""
    mean = channel_sum(x)
    mean /= np.shape(x)[-1]
    return mean[..., None] if keepdims else mean


def all_channels(x: np.ndarray) -> np.ndarray:
    """``x.all(axis=-1)`` of a (..., C) bool array, faster (:func:`channel_sum`)."""
    out = np.array(x[..., 0], bool)
    for c in range(1, x.shape[-1]):
        out &= x[..., c]
    return out


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (H, W[, C]) by ``sigma`` texels; wide ones on a reduced copy (the result is smooth
    at that scale anyway), about 4 texels of blur at the reduced size."""
    import cv2

    k = max(int(sigma // 4), 1)
    if k == 1:
        return cv2.GaussianBlur(x, (0, 0), sigma).reshape(x.shape)
    h, w = x.shape[:2]
    small = cv2.resize(x, (max(w // k, 1), max(h // k, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / k)
    # cv2 drops a channel axis of length 1.
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(x.shape)


def weighted_blur(x: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised convolution: the Gaussian mean of (H, W[, C]) ``x`` by ``sigma`` texels where each texel
    counts by ``weight`` (H, W), :func:`gaussian_blur` of ``x weight`` over that of ``weight`` (float32;
    where no weight is near, 0)."""
    w = np.asarray(weight, np.float32)
    wx = np.asarray(x, np.float32) * (w[..., None] if np.ndim(x) == 3 else w)
    norm = np.maximum(gaussian_blur(w, sigma), 1e-6)
    return gaussian_blur(wx, sigma) / (norm[..., None] if np.ndim(x) == 3 else norm)


def _blur_transfer(sigma: float, n: int) -> np.ndarray:
    """(n, n // 2 + 1) real transfer function of :func:`gaussian_blur` by ``sigma`` (1 for 0) on an n-periodic grid.

    The blur is separable (one 1-D kernel along rows and columns), so its transfer is the outer product of
    the 1-D one, read off a blurred impulse in a single row (whose vertical pass is the identity).
    """
    if sigma == 0.0:
        return np.ones((n, n // 2 + 1))
    delta = np.zeros((1, n), np.float32)
    delta[0, n // 2] = 1.0
    line = np.fft.ifftshift(gaussian_blur(delta, sigma)[0].astype(np.float64))
    return np.fft.fft(line).real[:, None] * np.fft.rfft(line).real[None, :]


def synthesize_detail(size: int, spread: np.ndarray, edges: np.ndarray, seed: int = 0) -> np.ndarray:
    """A (size, size, C) field of stationary skin detail with the band spreads of the seen skin.

    Copying seen skin repeats whatever it holds (a stubble hair, a pore darker than the rest) as a visible
    pattern; only its statistics are kept instead: one white noise, shared by the channels (skin detail is
    mostly brightness, so the channels move together), is shaped in the Fourier domain by a smooth radial
    spectrum (log-linear between one node per band), solved for so that each band of the field (the
    differences of Gaussians :func:`skin_detail_spread` measures with) has the spread asked of it. It is
    synthesized over :data:`DETAIL_PERIOD` texels at most and tiled (noise made by an FFT is periodic, so
    the copies meet without a seam).

    Args:
        size: S.
        spread: (B, C) the spread of each band, finest first (:func:`skin_detail_spread`).
        edges: (B + 1,) the bands' edges at this texture's resolution (:func:`detail_scales`).
        seed: the noise (the same seed gives the same field).

    Returns:
        (S, S, C) float32 log detail, mean 0.
    """
    from scipy.optimize import least_squares

    e = _check_edges(edges)
    target = np.asarray(spread, np.float64)
    if target.ndim != 2 or target.shape[0] != e.size - 1 or not np.all(np.isfinite(target) & (target >= 0)):
        raise ValueError(f"spread: expected ({e.size - 1}, C) finite values >= 0, got {np.shape(spread)}")
    rng = np.random.default_rng(seed)
    n = min(int(size), DETAIL_PERIOD)
    noise = np.fft.rfft2(rng.standard_normal((n, n)))
    # The transfer functions of the very blurs skin_detail_spread measures with (a sampled Gaussian of
    # under a texel is far from the continuous one).
    gauss = np.stack([_blur_transfer(x, n) for x in e])
    bands = gauss[:-1] - gauss[1:]  # (B, n, n // 2 + 1)
    # Half-spectrum weights: the columns with a conjugate twin count twice in the field's variance.
    half = np.full(gauss.shape[2], 2.0)
    half[0] = 1.0
    if n % 2 == 0:
        half[-1] = 1.0
    half /= float(n) * n

    # The field's variance density over frequency is a smooth radial profile (log-linear between one node
    # per band); the nodes are solved for so that each band's expected variance is its target squared.
    radius = np.sqrt(np.fft.fftfreq(n)[:, None] ** 2 + np.fft.rfftfreq(n)[None, :] ** 2)
    rings = np.geomspace(0.5 / n, 0.75, _DETAIL_RINGS + 1)
    ring = np.clip(np.digitize(radius.ravel(), rings) - 1, 0, _DETAIL_RINGS - 1)
    ring_r = np.sqrt(rings[:-1] * rings[1:])
    per_ring = np.stack(
        [np.bincount(ring, (b**2 * half).ravel(), minlength=_DETAIL_RINGS) for b in bands]
    )  # (B, rings): each band's variance per unit density in each ring
    # Node k at the middle of band k's pass band: Nyquist-ward for the finest.
    node_r = np.concatenate([[0.35], 1.0 / (2.0 * np.pi * np.sqrt(e[1:-1] * e[2:]))])
    order = np.argsort(node_r)

    def density(nodes: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.exp(np.interp(np.log(r), np.log(node_r[order]), nodes[order]))

    field = np.empty((n, n, target.shape[1]), np.float32)
    for c in range(target.shape[1]):
        goal = np.log(np.maximum(target[:, c], 1e-6 * max(target[:, c].max(), 1e-12)) ** 2)
        first = goal - np.log(np.maximum(per_ring.sum(axis=1), 1e-30))
        # Bounded: a band the grid barely resolves must not ask for an unbounded density.
        bounds = (first.min() - 40.0, first.max() + 10.0)
        fit = least_squares(
            lambda y, g=goal: np.concatenate(
                [np.log(per_ring @ density(y, ring_r)) - g, DETAIL_SPECTRUM_SMOOTH * np.diff(y[order], 2)]
            ),
            first,
            bounds=bounds,
        )
        amp = np.sqrt(density(fit.x, np.maximum(radius, 0.5 / n)))
        amp[0, 0] = 0.0
        field[..., c] = np.fft.irfft2(noise * amp, s=(n, n))
    reps = -(-int(size) // n)
    return np.tile(field, (reps, reps, 1))[:size, :size]


def add_skin_detail(
    texture_linear: np.ndarray, confidence: np.ndarray, valid: np.ndarray, detail: np.ndarray
) -> np.ndarray:
    """The completed texture with skin detail where it was filled rather than seen.

    Filled texels are smooth (the fallback tone and a harmonic fill), which shows as a blurred patch next to
    the photo's pores. Each valid texel is multiplied by ``exp((1 - c) detail)``, ``c`` its combined
    confidence (:attr:`Completion.confidence`): seen texels keep their own detail, filled ones take the
    synthesized one (:func:`synthesize_detail`), and the mean colour stays the fill's.

    Args:
        texture_linear: (S, S, 3) completed texture, linear.
        confidence: (S, S) in [0, 1], the combined confidence of the completion.
        valid: (S, S) bool texels on the surface.
        detail: (S, S, 3) log detail.

    Returns:
        (S, S, 3) float32.
    """
    tex = np.asarray(texture_linear, np.float32)
    conf = np.asarray(confidence, np.float32)
    d = np.asarray(detail, np.float32)
    if tex.ndim != 3 or conf.shape != tex.shape[:2] or d.shape != tex.shape or np.shape(valid) != conf.shape:
        raise ValueError(
            f"texture_linear {tex.shape}, confidence {conf.shape}, valid {np.shape(valid)} and detail "
            f"{d.shape} disagree"
        )
    weight = np.where(np.asarray(valid, bool), np.clip(1.0 - conf, 0.0, 1.0), 0.0).astype(np.float32)
    gain = weight[..., None] * d
    np.exp(gain, out=gain)
    return gain * tex


def pad_texture(texture_linear: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill every texel off the surface smoothly from the valid texels around it (a gutter for mipmaps).

    Push-pull: the valid texels are averaged down a pyramid of 2x2 blocks (each block weighted by how many
    valid texels it holds) until every block has one, and the coarse averages are enlarged bilinearly back
    into the gaps. A gap between two differently coloured borders (the slit between the lips) shades from
    one to the other instead of meeting in a line; next to a border the gutter has the border's colour.

    Args:
        texture_linear: (S, S, C) texture.
        valid: (S, S) bool texels on the surface; at least one.

    Returns:
        (S, S, C) float32 copy, the valid texels unchanged, the others filled.
    """
    tex = np.asarray(texture_linear, np.float32)
    ok = np.asarray(valid, bool)
    if tex.ndim != 3 or ok.shape != tex.shape[:2]:
        raise ValueError(f"texture_linear (S, S, C) and valid (S, S) disagree: {tex.shape}, {ok.shape}")
    if not ok.any():
        raise ValueError("valid: no texel on the surface")
    return _push_pull(np.where(ok[..., None], tex, 0.0), ok.astype(np.float32))


def _push_pull(tex: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One level of :func:`pad_texture`: (H, W, C) colours, known where the (H, W) ``weight`` is above 0;
    fills the zero-weight texels of ``tex`` in place from the next coarser level and returns it."""
    import cv2

    hole = weight <= 0
    if not hole.any():
        return tex
    h, w = weight.shape
    wt, sums = weight, tex * weight[..., None]
    if h % 2 or w % 2:
        pad = ((0, h % 2), (0, w % 2))
        wt, sums = np.pad(wt, pad), np.pad(sums, pad + ((0, 0),))
    half = (wt.shape[1] // 2, wt.shape[0] // 2)
    # INTER_AREA at exactly half size is the mean of each 2x2 block.
    w2 = cv2.resize(wt, half, interpolation=cv2.INTER_AREA)
    s2 = cv2.resize(sums, half, interpolation=cv2.INTER_AREA).reshape(half[1], half[0], -1)
    coarse = _push_pull(s2 / np.maximum(w2, 1e-30)[..., None], w2)
    up = cv2.resize(coarse, (wt.shape[1], wt.shape[0]), interpolation=cv2.INTER_LINEAR)
    np.copyto(tex, up.reshape(wt.shape[0], wt.shape[1], -1)[:h, :w], where=hole[..., None])
    return tex
