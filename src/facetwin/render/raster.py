"""Rasterisation: which triangle covers each pixel centre, where on it, and how far (no gradients).

A z-buffer over pixel centres ``(j + 0.5, i + 0.5)`` (see :mod:`facetwin.frames`). A pixel centre is
covered when it lies inside the projected triangle or on its boundary, and the nearest triangle wins.
:func:`rasterize` is the numba fast path; :func:`rasterize_reference` the slow, obvious one written
independently for tests. They agree exactly on triangle ids except where a pixel centre lies within
rounding of an edge or two triangles tie in depth, which random float meshes never hit. The fast path is
watertight: a pixel centre on an edge shared by two triangles is covered by at least one of them.

Barycentrics are perspective-correct: the weights of the triangle's 3 vertices of the 3D point that
projects to the pixel centre. With screen-space weights ``l_k`` and vertex depths ``z_k``, that point has
``b_k = (l_k / z_k) / sum_m (l_m / z_m)`` and depth ``1 / sum_m (l_m / z_m)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

NEAR_PLANE_CM = 0.1
"""Triangles with any vertex at camera z <= this are dropped: projection blows up near z = 0, and no
real camera is within a millimetre of a face. There is no clipping against this plane."""


@dataclass(frozen=True)
class Raster:
    """Output of :func:`rasterize`: per-pixel triangle, barycentrics and depth.

    Attributes:
        tri_id: (H, W) int32 index into the rasterised ``faces``; -1 where no triangle covers the pixel
            centre.
        bary: (H, W, 3) float32 perspective-correct barycentrics w.r.t. the triangle's 3 vertices in the
            order of ``faces[tri_id]``; they sum to 1. Zero on background.
        depth: (H, W) float32 camera-frame z of the surface point, centimetres; ``inf`` on background.
    """

    tri_id: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def covered(self) -> np.ndarray:
        """(H, W) bool, pixels a triangle covers. ``x[raster.covered]`` lists them in row-major order."""
        return self.tri_id >= 0


def _check_inputs(
    verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 vertices, int64 faces and float64 K; raises ValueError on bad input."""
    v = np.asarray(verts_cam, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"verts_cam: expected (V, 3), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("verts_cam: contains NaN or inf")
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces: expected (F, 3) integer, got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
        raise ValueError(f"faces: ids must be in [0, {v.shape[0]}), got [{f.min()}, {f.max()}]")
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3) or not np.array_equal(k[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"K: expected (3, 3) with last row (0, 0, 1), got {k.tolist()}")
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise ValueError(f"height, width: expected positive integers, got {height}, {width}")
    return v, np.ascontiguousarray(f, dtype=np.int64), k


def _project(v: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V,) pixel u and v (float64) of camera-frame vertices; finite placeholders behind the near plane."""
    # Vertices behind the near plane are never drawn (their triangles are dropped); keep them finite.
    z = np.where(v[:, 2] > NEAR_PLANE_CM, v[:, 2], 1.0)
    uvw = v / z[:, None] @ K.T
    return np.ascontiguousarray(uvw[:, 0]), np.ascontiguousarray(uvw[:, 1])


@njit(cache=True)
def _setup(pu, pv, pz, faces, near, cull_backfaces, height, width):  # pragma: no cover - numba
    """Per-triangle constants ``coef, inv_z, bbox, drawn`` of :func:`_zbuffer` and :func:`_resolve`.

    Edge ``k`` (opposite corner ``k``) gets ``coef[f, k] = (A, B, C)``: the edge function
    ``e_k(x, y) = A x + (B y + C)``, ``|area|`` times the screen-space barycentric of corner ``k``, >= 0 on
    the triangle. It is evaluated from the edge's lower vertex id to the higher one and then negated as
    needed, so two triangles sharing an edge get exactly opposite values: no pixel centre falls through the
    crack. ``inv_z`` (F, 3) holds ``1 / (z_k |area|)``, so ``sum_k e_k inv_z[f, k]`` is ``1 / z`` at the pixel.
    ``bbox`` (F, 4) holds the inclusive candidate rows and columns ``i0, i1, j0, j1`` clamped to the image,
    ``drawn`` (F,) whether the triangle is in front of the near plane, not degenerate and not culled.
    """
    n = faces.shape[0]
    coef, inv_z = np.empty((n, 3, 3)), np.empty((n, 3))
    bbox, drawn = np.empty((n, 4), dtype=np.int64), np.empty(n, dtype=np.bool_)
    for f in range(n):
        c = faces[f]
        if pz[c[0]] <= near or pz[c[1]] <= near or pz[c[2]] <= near:
            drawn[f] = False
            continue
        u0, v0, u1, v1, u2, v2 = pu[c[0]], pv[c[0]], pu[c[1]], pv[c[1]], pu[c[2]], pv[c[2]]
        area = (u1 - u0) * (v2 - v0) - (v1 - v0) * (u2 - u0)
        drawn[f] = area != 0.0 and not (cull_backfaces and area > 0.0)
        if not drawn[f]:
            continue
        orient = 1.0 if area > 0.0 else -1.0
        for k in range(3):
            p, q = c[(k + 1) % 3], c[(k + 2) % 3]
            lo, hi, sign = (p, q, orient) if p < q else (q, p, -orient)
            du, dv = pu[hi] - pu[lo], pv[hi] - pv[lo]
            coef[f, k, 0] = -dv * sign
            coef[f, k, 1] = du * sign
            coef[f, k, 2] = (dv * pu[lo] - du * pv[lo]) * sign
            inv_z[f, k] = 1.0 / (pz[c[k]] * abs(area))
        bbox[f, 0] = _clamp_int(np.ceil(min(v0, v1, v2) - 0.5), 0, height)
        bbox[f, 1] = _clamp_int(np.floor(max(v0, v1, v2) - 0.5), -1, height - 1)
        bbox[f, 2] = _clamp_int(np.ceil(min(u0, u1, u2) - 0.5), 0, width)
        bbox[f, 3] = _clamp_int(np.floor(max(u0, u1, u2) - 0.5), -1, width - 1)
    return coef, inv_z, bbox, drawn


@njit(cache=True)
def _clamp_int(x, lo, hi):  # pragma: no cover - numba
    """``x`` (float, maybe +-inf) clamped to ``[lo, hi]`` as an int."""
    return int(min(max(x, lo), hi))


@njit(cache=True)
def _span(a, r, j0, j1):  # pragma: no cover - numba
    """Columns ``[j0, j1]`` narrowed to where ``a (j + 0.5) + r >= 0``, widened by one for rounding."""
    if a > 0.0:
        j0 = _clamp_int(np.ceil(-r / a - 0.5) - 1.0, j0, j1 + 1)
    elif a < 0.0:
        j1 = _clamp_int(np.floor(-r / a - 0.5) + 1.0, j0 - 1, j1)
    elif r < 0.0:
        j1 = j0 - 1
    return j0, j1


@njit(cache=True)
def _zbuffer(coef, inv_z, bbox, drawn, tri_id, inv_depth):  # pragma: no cover - numba
    """Fill ``tri_id`` (H, W) int32 and ``inv_depth`` (H, W) float64 ``1 / z`` (0 empty) in place."""
    for f in range(coef.shape[0]):
        if not drawn[f]:
            continue
        a0, b0, c0 = coef[f, 0, 0], coef[f, 0, 1], coef[f, 0, 2]
        a1, b1, c1 = coef[f, 1, 0], coef[f, 1, 1], coef[f, 1, 2]
        a2, b2, c2 = coef[f, 2, 0], coef[f, 2, 1], coef[f, 2, 2]
        iz0, iz1, iz2 = inv_z[f, 0], inv_z[f, 1], inv_z[f, 2]
        for i in range(bbox[f, 0], bbox[f, 1] + 1):
            yc = i + 0.5
            r0, r1, r2 = b0 * yc + c0, b1 * yc + c1, b2 * yc + c2
            j0, j1 = _span(a0, r0, bbox[f, 2], bbox[f, 3])
            j0, j1 = _span(a1, r1, j0, j1)
            j0, j1 = _span(a2, r2, j0, j1)
            for j in range(j0, j1 + 1):
                xc = j + 0.5
                e0, e1, e2 = a0 * xc + r0, a1 * xc + r1, a2 * xc + r2
                if e0 < 0.0 or e1 < 0.0 or e2 < 0.0:
                    continue
                iz = e0 * iz0 + e1 * iz1 + e2 * iz2
                if iz > inv_depth[i, j]:
                    inv_depth[i, j] = iz
                    tri_id[i, j] = f


@njit(cache=True)
def _resolve(coef, inv_z, tri_id, inv_depth, bary, depth):  # pragma: no cover - numba
    """Write barycentrics (H, W, 3) float32 and depth (H, W) float32 of the covered pixels in place."""
    height, width = tri_id.shape
    for i in range(height):
        yc = i + 0.5
        for j in range(width):
            f = tri_id[i, j]
            if f < 0:
                continue
            xc = j + 0.5
            s = 1.0 / inv_depth[i, j]
            for k in range(3):
                bary[i, j, k] = (coef[f, k, 0] * xc + (coef[f, k, 1] * yc + coef[f, k, 2])) * inv_z[f, k] * s
            depth[i, j] = s


def rasterize(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
) -> Raster:
    """Z-buffer rasterisation of a triangle mesh at pixel centres (numba).

    Args:
        verts_cam: (V, 3) float, centimetres, OpenCV camera frame.
        faces: (F, 3) int vertex ids.
        K: (3, 3) intrinsics, pixels; last row (0, 0, 1).
        height: image rows H.
        width: image columns W.
        cull_backfaces: drop triangles whose corners run clockwise in the image as displayed (row 0 at
            the top): those facing away from the camera for outward counter-clockwise winding such as
            ICT FaceKit's.

    Returns:
        :class:`Raster` of (H, W) buffers. Triangles with a vertex at z <= :data:`NEAR_PLANE_CM` are dropped.

    Example:
        >>> import numpy as np
        >>> K = np.array([[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]])
        >>> sq = np.array([[-1.0, -1, 10], [1, -1, 10], [1, 1, 10], [-1, 1, 10]])
        >>> r = rasterize(sq, np.array([[0, 1, 2], [0, 2, 3]]), K, 4, 4)
        >>> r.covered.astype(int).tolist()
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        >>> float(r.depth[1, 1])
        10.0
    """
    v, f, k = _check_inputs(verts_cam, faces, K, height, width)
    pu, pv = _project(v, k)
    coef, inv_z, bbox, drawn = _setup(
        pu, pv, v[:, 2].copy(), f, NEAR_PLANE_CM, bool(cull_backfaces), height, width
    )
    tri_id = np.full((height, width), -1, dtype=np.int32)
    inv_depth = np.zeros((height, width))
    _zbuffer(coef, inv_z, bbox, drawn, tri_id, inv_depth)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    depth = np.full((height, width), np.inf, dtype=np.float32)
    _resolve(coef, inv_z, tri_id, inv_depth, bary, depth)
    return Raster(tri_id=tri_id, bary=bary, depth=depth)


def rasterize_reference(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    *,
    cull_backfaces: bool = False,
) -> Raster:
    """Slow, obvious version of :func:`rasterize` (numpy per triangle) for tests on tiny meshes.

    Same arguments and result as :func:`rasterize`.
    """
    v, f, k = _check_inputs(verts_cam, faces, K, height, width)
    yc, xc = np.mgrid[0:height, 0:width] + 0.5
    tri_id = np.full((height, width), -1, dtype=np.int32)
    zbuf = np.full((height, width), np.inf)
    bary = np.zeros((height, width, 3))

    def cross(a, b):
        return a[0] * b[1] - a[1] * b[0]

    for t, corners in enumerate(f):
        p = v[corners]
        if np.any(p[:, 2] <= NEAR_PLANE_CM):
            continue
        uv = (p / p[:, 2:]) @ k[:2].T  # (3, 2) pixel positions of the corners
        area = cross(uv[1] - uv[0], uv[2] - uv[0])
        if area == 0.0 or (cull_backfaces and area > 0.0):
            continue
        pix = np.stack([xc, yc])
        # Screen-space barycentric of corner m: signed area of (next corner, the one after, pixel) / area.
        screen = np.stack(
            [
                cross(uv[(m + 2) % 3] - uv[(m + 1) % 3], pix - uv[(m + 1) % 3][:, None, None]) / area
                for m in range(3)
            ],
            axis=-1,
        )
        w = screen / p[:, 2]
        with np.errstate(divide="ignore"):  # outside the triangle the sum may be 0; those pixels are unused
            depth = 1.0 / w.sum(axis=-1)
        win = np.all(screen >= 0.0, axis=-1) & (depth < zbuf)
        zbuf[win] = depth[win]
        tri_id[win] = t
        bary[win] = w[win] * depth[win][:, None]
    return Raster(tri_id=tri_id, bary=bary.astype(np.float32), depth=zbuf.astype(np.float32))
