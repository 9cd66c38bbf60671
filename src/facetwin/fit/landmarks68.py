"""The 68 Multi-PIE / iBUG landmarks of a fitted head, as annotators place them in a photo.

Two kinds of points, by what the annotation convention means:

* Brows, nose, eyes and mouth (17-67): the correspondence points (:mod:`facetwin.fit.correspondence`) of the
  detector landmarks that trace the same features (:data:`DETECTOR_OF_INNER`), i.e. where the detector's
  iBUG-like convention puts them on the fitted surface. ICT FaceKit's own Multi-PIE vertices are anatomical
  points of its artist and sit elsewhere: its brow vertices are on the brow ridge about 13 mm above the upper
  brow edge that iBUG traces (the mesh has no eyebrows), and on the 9 annotated bench photos its eye, nose and
  mouth vertices gave 2.7 / 3.1 / 2.7 % NME against 2.2 / 3.1 / 2.6 % for the detector's points on the same
  fitted heads.
* Jaw (0-16): annotators follow the visible outline of the face, which slides over the surface as the head
  turns. Landmark marching (as in 3DDFA / HPEN, Zhu et al. 2015): each contour landmark owns a band of face
  vertices through ICT's vertex for it, across the outline; of those, the one farthest out along the image
  direction of the band is the outline point. On the cheeks and the jaw the bands are horizontal (the head's
  left-right axis); under the chin (6-10) they follow the outward normal of ICT's contour, so the chin
  points reach the chin's lower outline instead of its front.
"""

from __future__ import annotations

import numpy as np

from facetwin.camera import Camera
from facetwin.fit.landmarks import SurfacePoints
from facetwin.model.ict import HeadModel

DETECTOR_OF_INNER = (
    # brows (17-26), upper edge: subject's right brow outer to inner, then left brow inner to outer
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose (27-35): bridge top to tip, then the lower nostril line from right to left
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # eyes (36-47): right eye from the outer corner, clockwise; then the left eye from the inner corner
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # mouth (48-67): outer lip contour from the right corner, then the inner contour
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)
"""Detector (FaceMesh) index of each Multi-PIE point 17-67: the usual 478 -> 68 correspondence of
mediapipe's face mesh."""
BROW_IDS = np.arange(17, 27)
INNER_IDS = np.arange(17, 68)
JAW_IDS = np.arange(0, 17)
CHIN_IDS = frozenset((6, 7, 8, 9, 10))
"""Contour landmarks whose outline runs across, not up and down: their bands follow ICT's contour normal."""
BAND_CM = 0.35
"""Half-height of a contour landmark's horizontal band of candidate vertices (ICT edges are ~3 mm)."""
BEHIND_CM = 1.0
"""Candidates may lie this far behind their landmark's vertex, no farther: the outline annotators draw is
the cheek and jaw, not the ear. (Chosen among 1 and 2 cm on the bench photos: 1 cm gave 6.4 % jaw NME,
2 cm 7.2 %.)"""


def jaw_directions(model: HeadModel) -> np.ndarray:
    """(17, 3) unit vectors, head frame, z = 0: the outward direction each contour landmark slides along.

    The head's left-right axis on the cheeks and jaw; for :data:`CHIN_IDS` the outward normal, in the
    frontal (x, y) plane, of the polyline through ICT's 17 contour vertices.
    """
    contour = model.neutral[model.landmark68[JAW_IDS], :2].astype(np.float64)
    out = np.zeros((17, 3))
    for j in JAW_IDS:
        if j not in CHIN_IDS:
            out[j, 0] = np.sign(contour[j, 0])
            continue
        tangent = contour[min(j + 1, 16)] - contour[max(j - 1, 0)]
        normal = np.array([tangent[1], -tangent[0]])  # contour runs right ear -> chin -> left ear
        out[j, :2] = normal / np.linalg.norm(normal)
    return out


def jaw_candidates(model: HeadModel) -> tuple[np.ndarray, ...]:
    """For each of the 17 contour landmarks, (k,) int vertex ids it may slide to (its own vertex first):
    face vertices within :data:`BAND_CM` of the line through its vertex along :func:`jaw_directions`, at
    most half its distance from the head's centre line inwards, at most :data:`BEHIND_CM` behind it."""
    face_vertices = np.unique(model.faces[model.material_faces(("M_Face",))])
    pts = model.neutral[face_vertices].astype(np.float64)
    out = []
    for j, d in zip(JAW_IDS, jaw_directions(model)):
        own = int(model.landmark68[j])
        p = model.neutral[own].astype(np.float64)
        rel = pts[:, :2] - p[:2]
        along, across = rel @ d[:2], rel @ np.array([d[1], -d[0]])
        sel = (np.abs(across) < BAND_CM) & (along >= -0.5 * abs(p[:2] @ d[:2])) & (pts[:, 2] >= p[2] - BEHIND_CM)
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
    inner = list(DETECTOR_OF_INNER)
    ids[INNER_IDS], bary[INNER_IDS] = points.vertex_ids[inner], points.bary[inner]
    centre = vertices[model.landmark68].mean(axis=0)
    for j, cand, d in zip(JAW_IDS, cands, jaw_directions(model)):
        # the slide direction as the camera sees it at the head's centre
        ends = camera.project(np.stack([centre, centre + d]))
        direction = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
        ids[j] = cand[np.argmax(camera.project(vertices[cand]) @ direction)]
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
