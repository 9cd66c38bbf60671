"""The 68 Multi-PIE / iBUG landmarks of a fitted head, as annotators place them in a photo.

Three kinds of points, by what the annotation convention means:

* Eyes, nose and mouth (27-67): ICT FaceKit's own published Multi-PIE vertices; they are anatomical points
  fixed on the surface.
* Brows (17-26): the iBUG convention traces the *upper* edge of each eyebrow. ICT's brow vertices sit on the
  brow ridge about 13 mm above the detector's brow points, on a mesh that has no eyebrows, so the brows come
  from the correspondence points of the detector's upper-brow contour instead
  (:data:`UPPER_BROW_LANDMARKS`), which the fit has placed on the person's brows.
* Jaw (0-16): annotators follow the visible outline of the face, which slides over the surface as the head
  turns. Landmark marching (as in 3DDFA / HPEN, Zhu et al. 2015): each contour landmark owns a horizontal
  band of face vertices on its side of the head; of those, the one farthest out along the image direction
  of the head's left-right axis is the silhouette point. The chin and its neighbours (6-10) stay on their vertices.
"""

from __future__ import annotations

import numpy as np

from facetwin.camera import Camera
from facetwin.fit.landmarks import SurfacePoints
from facetwin.model.ict import HeadModel

UPPER_BROW_LANDMARKS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)
"""Detector (FaceMesh) indices of the upper brow edge: subject's right brow outer to inner, then left brow
inner to outer, the order of Multi-PIE points 17-26."""
BROW_IDS = np.arange(17, 27)
JAW_IDS = np.arange(0, 17)
MARCHING_IDS = frozenset((0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16))
"""Contour landmarks that slide: the cheek and the upper jaw, where the outline runs up and down. Near the
chin (6-10) the outline turns horizontal, a horizontal band no longer crosses it, and they stay put."""
BAND_CM = 0.35
"""Half-height of a contour landmark's horizontal band of candidate vertices (ICT edges are ~3 mm)."""
BEHIND_CM = 1.0
"""Candidates may lie this far behind their landmark's vertex, no farther: the outline annotators draw is
the cheek and jaw, not the ear. (Chosen among 1 and 2 cm on the bench photos: 1 cm gave 6.4 % jaw NME,
2 cm 7.2 %.)"""


def jaw_candidates(model: HeadModel) -> tuple[np.ndarray, ...]:
    """For each of the 17 contour landmarks, (k,) int vertex ids it may slide to (its own vertex first)."""
    face_vertices = np.unique(model.faces[model.material_faces(("M_Face",))])
    pts = model.neutral[face_vertices]
    out = []
    for j in JAW_IDS:
        own = int(model.landmark68[j])
        p = model.neutral[own]
        if j not in MARCHING_IDS:
            out.append(np.array([own]))
            continue
        sel = (
            (np.abs(pts[:, 1] - p[1]) < BAND_CM)
            & (np.sign(pts[:, 0]) == np.sign(p[0]))
            & (np.abs(pts[:, 0]) >= 0.5 * abs(p[0]))
            & (pts[:, 2] >= p[2] - BEHIND_CM)
        )
        ids = face_vertices[sel]
        out.append(np.concatenate([[own], ids[ids != own]]))
    return tuple(out)


def landmarks68_surface(
    model: HeadModel,
    vertices: np.ndarray,
    camera: Camera,
    points: SurfacePoints,
    candidates: tuple[np.ndarray, ...] | None = None,
) -> SurfacePoints:
    """Where on the fitted surface the 68 landmarks are, seen from ``camera`` (module docstring).

    Args:
        model: the head model.
        vertices: (V, 3) fitted mesh, centimetres, head frame.
        camera: the fitted camera (the jaw outline depends on the view).
        points: the 478-point correspondence (for the brows).
        candidates: :func:`jaw_candidates` of ``model`` (computed when None).

    Returns:
        68 :class:`SurfacePoints`, Multi-PIE order; ``camera.project(result.evaluate(vertices))`` are the
        landmarks in the photo.
    """
    cands = jaw_candidates(model) if candidates is None else candidates
    ids = np.repeat(model.landmark68.astype(np.int64)[:, None], 3, axis=1)
    bary = np.tile([1.0, 0.0, 0.0], (68, 1))
    brows = list(UPPER_BROW_LANDMARKS)
    ids[BROW_IDS], bary[BROW_IDS] = points.vertex_ids[brows], points.bary[brows]
    # Image direction of the head's +x axis (towards the subject's left) at the head's centre.
    centre = vertices[model.landmark68].mean(axis=0)
    axis_px = camera.project(np.stack([centre, centre + np.array([1.0, 0.0, 0.0])]))
    direction = (axis_px[1] - axis_px[0]) / np.linalg.norm(axis_px[1] - axis_px[0])
    for j, cand in zip(JAW_IDS, cands):
        if cand.size == 1:
            continue
        along = camera.project(vertices[cand]) @ direction
        ids[j] = cand[np.argmax(np.sign(model.neutral[cand[0], 0]) * along)]
    return SurfacePoints(vertex_ids=ids, bary=bary)


def landmarks68_px(
    model: HeadModel,
    vertices: np.ndarray,
    camera: Camera,
    points: SurfacePoints,
    candidates: tuple[np.ndarray, ...] | None = None,
) -> np.ndarray:
    """(68, 2) float64 pixels of the photo, Multi-PIE order: :func:`landmarks68_surface` projected."""
    surface = landmarks68_surface(model, vertices, camera, points, candidates)
    return camera.project(surface.evaluate(vertices))
