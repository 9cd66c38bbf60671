"""Preview images from the render stages: the shaded mesh over the photo, or alone on a background.

Shading is Lambertian in linear light under a head light at the camera centre plus an ambient term,
evaluated per vertex and interpolated (Gouraud); only the final image is encoded to sRGB (:mod:`facetwin.frames`). These images are for people to judge a fit and for
synthetic test inputs, not for photometric fitting (see :mod:`facetwin.render.shade`).
"""

from __future__ import annotations

import numpy as np
import torch

from facetwin.frames import linear_to_srgb, srgb_to_linear
from facetwin.render.interpolate import interpolate
from facetwin.render.raster import Raster, rasterize
from facetwin.render.shade import NORMAL_EPS, vertex_normals

MESH_ALBEDO_LINEAR = 0.45
"""Grey albedo of the preview mesh: about 0.7 once sRGB-encoded, light enough to show the shading."""
AMBIENT = 0.25
"""Share of the light that is ambient, so surfaces at grazing angles stay readable."""
WIRE_DARKEN = 0.35
"""Fraction the albedo is darkened on triangle edges in :func:`render_overlay`."""
WIRE_HALF_WIDTH_PX = 0.75
"""Pixel distance from an edge at which the wire darkening has faded out."""
WIRE_MIN_TRI_PX = 3.0
"""Triangles whose smallest altitude is under this many pixels get no wire (it would darken them whole);
it fades in up to twice this."""
DOT_SRGB = (0.1, 1.0, 0.25)
"""Colour of the landmark dots (bright green reads over skin and the grey mesh)."""


def _drawn_faces(faces: np.ndarray, face_mask) -> np.ndarray:
    """``faces[face_mask]`` (all when None), the mask checked."""
    f = np.asarray(faces)
    if face_mask is None:
        return f
    m = np.asarray(face_mask)
    if m.dtype != bool or m.shape != (f.shape[0],):
        raise ValueError(f"face_mask: expected ({f.shape[0]},) bool, got {m.shape} {m.dtype}")
    return f[m]


def _shade(
    verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, height: int, width: int, face_mask
) -> tuple[Raster, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise the drawn triangles and light them from the camera.

    The light is evaluated at the vertices and interpolated (Gouraud), which keeps full-resolution
    previews cheap; at preview triangle sizes it looks the same as per-pixel normals.

    Returns:
        raster: :class:`Raster` of ``faces[face_mask]``.
        faces: (F', 3) int64, those faces.
        tri: (N,) int32 triangle of each of the N covered pixels (row-major).
        bary: (N, 3) float32 their barycentrics.
        shading: (N,) float32 ``AMBIENT + (1 - AMBIENT) * max(0, n . l)``.
    """
    v = np.asarray(verts_cam, dtype=np.float64)
    f = _drawn_faces(faces, face_mask)
    raster = rasterize(v, f, K, height, width)
    f = f.astype(np.int64)
    tri = raster.tri_id[raster.covered]
    bary = raster.bary[raster.covered]
    # Head light: it sits at the camera centre, so l is the unit vector from the vertex to the origin.
    cos = -(vertex_normals(v, f) * v).sum(axis=1) / np.maximum(np.linalg.norm(v, axis=1), NORMAL_EPS)
    light = (AMBIENT + (1.0 - AMBIENT) * np.clip(cos, 0.0, 1.0)).astype(np.float32)
    shading = interpolate(torch.from_numpy(light[:, None]), f, tri, bary)[:, 0].numpy()
    return raster, f, tri, bary, shading


def _wire(
    verts_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, tri: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """(N,) float32 in [0, 1]: how much each covered pixel lies on a triangle edge (large triangles only).

    Args:
        verts_cam: (V, 3) camera frame; faces: (F, 3) int64; K: (3, 3) pixels.
        tri: (N,) triangle of each covered pixel; bary: (N, 3) its perspective-correct barycentrics.
    """
    v = np.asarray(verts_cam, dtype=np.float64)
    used = np.zeros(faces.shape[0], dtype=bool)
    used[tri] = True
    corners = v[faces[used]]  # (U, 3, 3), all in front of the near plane
    uv = (corners[..., :2] / corners[..., 2:]) @ np.asarray(K, dtype=np.float64)[:2, :2].T  # up to (cx, cy)
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    area2 = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    opposite = np.linalg.norm(uv[:, [2, 0, 1]] - uv[:, [1, 2, 0]], axis=2)  # (U, 3) edge lengths
    altitude = np.zeros((faces.shape[0], 3), dtype=np.float32)
    altitude[used] = area2[:, None] / np.maximum(opposite, NORMAL_EPS)
    fade = np.clip(altitude.min(axis=1) / WIRE_MIN_TRI_PX - 1.0, 0.0, 1.0)
    out = np.zeros(tri.shape[0], dtype=np.float32)
    wired = fade[tri] > 0.0
    t = tri[wired]
    # Screen-space weights from perspective-correct ones: l_k is proportional to b_k z_k.
    screen = bary[wired] * v[faces[t], 2].astype(np.float32)
    screen /= screen.sum(axis=1, keepdims=True)
    dist = (screen * altitude[t]).min(axis=1)
    out[wired] = np.clip(1.0 - dist / WIRE_HALF_WIDTH_PX, 0.0, 1.0) * fade[t]
    return out


def _draw_dots(image_srgb: np.ndarray, points_px: np.ndarray) -> None:
    """Draw anti-aliased filled discs at (N, 2) pixel positions (u, v) into (H, W, 3) float sRGB in place."""
    height, width = image_srgb.shape[:2]
    radius = max(1.5, min(height, width) / 300.0)
    reach = int(np.ceil(radius + 1.0))
    for u, v in points_px:
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        j0, j1 = max(0, int(u) - reach), min(width, int(u) + reach + 1)
        i0, i1 = max(0, int(v) - reach), min(height, int(v) + reach + 1)
        if j0 >= j1 or i0 >= i1:
            continue
        yy, xx = np.mgrid[i0:i1, j0:j1] + 0.5
        cover = np.clip(radius + 0.5 - np.hypot(xx - u, yy - v), 0.0, 1.0)[..., None]
        patch = image_srgb[i0:i1, j0:j1]
        patch[:] = (1.0 - cover) * patch + cover * np.asarray(DOT_SRGB)


def _to_uint8(image_srgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image_srgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_overlay(
    image_srgb: np.ndarray,
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    *,
    face_mask: np.ndarray | None = None,
    points_px: np.ndarray | None = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """The grey, camera-lit mesh with darkened triangle edges blended over a photo, plus landmark dots.

    Args:
        image_srgb: (H, W, 3) float sRGB in [0, 1], the photo ``K`` belongs to.
        verts_cam: (V, 3) float, centimetres, OpenCV camera frame.
        faces: (F, 3) int vertex ids.
        K: (3, 3) intrinsics, pixels of ``image_srgb``.
        face_mask: (F,) bool, the triangles to draw (others neither drawn nor occluding); None for all.
        points_px: (N, 2) float pixel positions (u, v) to mark with dots, e.g. detected landmarks.
        alpha: opacity of the mesh over the photo, in [0, 1].

    Returns:
        (H, W, 3) uint8 sRGB image.
    """
    img = np.asarray(image_srgb)
    if img.ndim != 3 or img.shape[2] != 3 or not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"image_srgb: expected (H, W, 3) float in [0, 1], got {img.shape} {img.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    pts = np.zeros((0, 2)) if points_px is None else np.asarray(points_px, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points_px: expected (N, 2), got {pts.shape}")
    out = np.array(img, dtype=np.float32)
    # Only the mesh's box is rasterised: on a large photo the head is a small part of it.
    drawn = _drawn_faces(faces, face_mask)
    x0, y0, x1, y1 = drawn_box(verts_cam, drawn, K, out.shape[1], out.shape[0])
    if x1 > x0 and y1 > y0:
        K_box = np.array(K)  # same dtype as K: no second compiled variant of the rasteriser
        K_box[0, 2] -= x0
        K_box[1, 2] -= y0
        raster, f, tri, bary, shading = _shade(verts_cam, drawn, K_box, y1 - y0, x1 - x0, None)
        albedo = MESH_ALBEDO_LINEAR * (1.0 - WIRE_DARKEN * _wire(verts_cam, f, K_box, tri, bary))
        box = out[y0:y1, x0:x1]
        mask = raster.covered
        blend_linear = (1.0 - alpha) * srgb_to_linear(box[mask]) + alpha * (albedo * shading)[:, None]
        box[mask] = linear_to_srgb(blend_linear)
    _draw_dots(out, pts)
    return _to_uint8(out)


def drawn_box(verts_cam, drawn: np.ndarray, K, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box ``(x0, y0, x1, y1)`` (end exclusive, clipped to the image, 2 px margin) around the vertices of
    the ``drawn`` (F', 3) triangles in front of the camera (``verts_cam`` (V, 3), OpenCV camera frame);
    empty (x1 <= x0) when none is. Renders of a large photo rasterise only this box."""
    v = np.asarray(verts_cam, dtype=np.float64)[np.unique(drawn)]
    v = v[v[:, 2] > 1e-6]
    if v.shape[0] == 0:
        return 0, 0, 0, 0
    uv = (v @ np.asarray(K, dtype=np.float64).T)[:, :2] / v[:, 2:3]
    x0, y0 = np.clip(np.floor(uv.min(axis=0)).astype(int) - 2, 0, [width, height])
    x1, y1 = np.clip(np.ceil(uv.max(axis=0)).astype(int) + 2, 0, [width, height])
    return int(x0), int(y0), int(x1), int(y1)


def render_shaded(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    *,
    face_mask: np.ndarray | None = None,
    vertex_albedo_linear: np.ndarray | None = None,
    background_srgb: tuple[float, float, float] = (0.5, 0.5, 0.5),
) -> np.ndarray:
    """The camera-lit mesh alone on a flat background (synthetic images, previews).

    Args:
        verts_cam: (V, 3) float, centimetres, OpenCV camera frame.
        faces: (F, 3) int vertex ids.
        K: (3, 3) intrinsics, pixels.
        height: image rows H.
        width: image columns W.
        face_mask: (F,) bool, the triangles to draw; None for all.
        vertex_albedo_linear: (V, 3) linear RGB albedo in [0, 1] per vertex, interpolated across triangles;
            None for a uniform grey :data:`MESH_ALBEDO_LINEAR`.
        background_srgb: RGB in [0, 1] of the uncovered pixels.

    Returns:
        (H, W, 3) uint8 sRGB image.
    """
    bg = np.asarray(background_srgb, dtype=np.float32)
    if bg.shape != (3,):
        raise ValueError(f"background_srgb: expected 3 values, got {bg.shape}")
    alb = None if vertex_albedo_linear is None else np.asarray(vertex_albedo_linear, dtype=np.float32)
    n_verts = np.asarray(verts_cam).shape[0]
    if alb is not None and alb.shape != (n_verts, 3):
        raise ValueError(f"vertex_albedo_linear: expected ({n_verts}, 3), got {alb.shape}")
    raster, f, tri, bary, shading = _shade(verts_cam, faces, K, height, width, face_mask)
    if alb is None:
        albedo = np.full((shading.shape[0], 3), MESH_ALBEDO_LINEAR, dtype=np.float32)
    else:
        albedo = interpolate(torch.from_numpy(alb), f, tri, bary).numpy()
    out = np.empty((height, width, 3), dtype=np.float32)
    out[:] = bg
    out[raster.covered] = linear_to_srgb(albedo * shading[:, None])
    return _to_uint8(out)
