"""Face detection and 478 landmarks per face, offline, with the models bundled in the mediapipe wheel.

FaceMesh run on a whole photo only finds faces that its own short-range detector sees (large, near-frontal
faces), so :func:`detect_faces` splits the work:

1. *Proposals*: mediapipe's full-range and short-range face detectors run on a copy of the photo whose
   longer side is at most :data:`_PROPOSE_MAX_SIDE`, and the full-range one also on overlapping tiles of it,
   so that the small faces of a crowd reach the 192 px network at a usable size. Overlapping proposals are
   merged (non-maximum suppression on IoU).
2. *Landmarks*: for each proposal, FaceMesh (``refine_landmarks=True``: 468 mesh points and 10 iris points)
   runs on a square crop around it, :data:`_CROP_EXPAND` times the box, turned upright by the detector's eye
   keypoints and resampled to :data:`_CROP_PX` pixels from an area-filtered pyramid of the full-resolution
   photo (beyond the border: grey), so small faces are upscaled. FaceMesh then runs once more on a crop
   centred on its own first mesh and turned upright by its eye corners: these are the landmarks returned.
   (Retrying failed crops tighter, wider or tilted by 25 degrees found no more faces on the shared and bench
   photos, nor on 104 occluded, cut, blurred, darkened and noisy variants of them: there are no retries.)
3. *Checks*, against false faces (logos, ears, rockets, colour wheels): FaceMesh's face-presence score must
   pass :data:`_MESH_PRESENCE`; the mesh's box must agree with the proposal and be reproduced by the
   re-centred pass; the short-range detector, run on the two crops that gave the mesh, must score the mesh's
   box at least :data:`_MIN_FACE_SCORE`. Meshes of one face reached from several proposals are kept once (IoU).

Coordinates are in the pixel frame of :mod:`facetwin.frames` (origin at the top-left corner of the top-left
pixel, pixel centres at +0.5) of the image passed in. Faces rolled by more than about 90 degrees (an upside
down photo) are not found: :func:`facetwin.io.read_photo` applies the EXIF orientation beforehand.

The mediapipe graphs are built once per process on first use and cached at module level (:func:`_graphs`);
a lock serialises their use, since one graph must not process two images at once. They run in static-image
mode, so nothing carries over from one image to the next.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

N_LANDMARKS = 478
"""FaceMesh points with ``refine_landmarks=True``: 468 mesh points, then 5 per iris (468-472, 473-477)."""

# Longer side (px) of the copy that proposals are made on. The detectors see 128 or 192 px inputs, so more
# resolution only helps through tiles; with tiles, faces down to ~32 px of this copy are found (~95 px of a
# 3000 px photo, any size in photos up to 1024 px).
_PROPOSE_MAX_SIDE = 1024
# Tiles of the copy for the full-range detector: twice its 192 px input, a step of half a tile, so every face
# under half a tile lies whole in some tile. On classroom_in_tanzania.jpg (~22 faces) 384 px tiles find 16
# faces, as many as 290 px ones with 25 % fewer detector runs; 448 px tiles find 12.
_TILE_PX = 384
_TILE_STEP = 0.5
# Detections touching an inner tile edge within this fraction of the tile are cut faces, seen whole elsewhere.
_TILE_EDGE_MARGIN = 0.02
# Lowest detector score that makes a proposal: low on purpose, the checks of step 3 reject false ones.
_MIN_PROPOSAL_SCORE = 0.4
# Proposals overlapping more than this (IoU) are one face.
_PROPOSAL_NMS_IOU = 0.3
# A proposal lying more than this fraction inside an accepted face's box is that face; it gets no crop.
_COVERED_FRACTION = 0.5
# Crop side over the box's longer side: FaceMesh's own detector (short-range) wants the face at about half
# the crop. 1.6 and 2.4 give the same landmark error on the annotated bench photos within 0.1 % NME.
_CROP_EXPAND = 2.0
# Crop size (px): FaceMesh's landmark network sees a 192 px patch of about 1.5x the face, so a 256 px crop of
# twice the face gives it all the detail it can use.
_CROP_PX = 256
# FaceMesh's internal detector threshold on our crops, which are centred on a proposal already.
_MESH_DETECT_SCORE = 0.3
# FaceMesh's face-presence threshold: mediapipe's default 0.5 passed a 25 px logo in a bench photo; every
# real face of the shared photos, down to 36 px wide, passes 0.995.
_MESH_PRESENCE = 0.9
# Faces FaceMesh may return per crop (a crowd puts neighbours in the crop); the one matching is kept.
_MESH_FACES_PER_CROP = 3
# A first mesh belongs to its proposal when their boxes overlap at least this much (IoU).
_AGREE_IOU = 0.3
# The re-centred mesh must overlap the first this much (IoU), or the face is dropped.
_REPRODUCE_IOU = 0.5
# Below this score a mesh is not a face. The score is the short-range detector's best on the two crops that
# gave the mesh (one crop alone varies by 0.2 with slight reframing): real faces of the shared and bench
# photos score 0.77 to 0.95, the false meshes that got this far (a rocket's nose and a colour wheel, from
# scikit-image's sample images) 0.0 and 0.60.
_MIN_FACE_SCORE = 0.7
# Two meshes whose boxes overlap more than this (IoU) are the same face.
_DUPLICATE_IOU = 0.4
# FaceMesh indices of the outer corners of the subject's right and left eye.
_EYE_OUTER_CORNERS = [33, 263]
# sRGB 8-bit grey that pads crops reaching past the photo's border.
_PAD_GREY = 128


@dataclass(frozen=True)
class Face:
    """One face of a photo.

    Attributes:
        box: (4,) float64 ``[x0, y0, x1, y1]``, pixels of the photo: the tight box around the landmarks' x, y.
        score: in [0, 1], the short-range face detector's best confidence on the two crops that gave the
            landmarks (centred on the face, upright, twice its size: the same framing for every face).
        landmarks: (478, 3) float32 in mediapipe FaceMesh order: x, y in pixels of the photo; z relative
            depth in the same pixel scale as x, origin near the head's centre, smaller is nearer the camera.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray


@dataclass(frozen=True)
class Detection:
    """All faces of a photo.

    Attributes:
        width: photo width in pixels.
        height: photo height in pixels.
        faces: sorted by box area, largest first; empty when none was found.
    """

    width: int
    height: int
    faces: tuple[Face, ...]


def detect_faces(image_srgb: np.ndarray) -> Detection:
    """Find every face of a photo and its 478 FaceMesh landmarks.

    Args:
        image_srgb: (H, W, 3) float sRGB in [0, 1] (values outside are clipped), as from
            :func:`facetwin.io.read_photo`.

    Returns:
        The faces, largest first. None found is not an error here; the caller raises
        :class:`facetwin.errors.NoFaceError` when it needs a face.

    Raises:
        ValueError: ``image_srgb`` is not an (H, W, 3) floating-point array.
    """
    image = np.asarray(image_srgb)
    if image.ndim != 3 or image.shape[2] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"image_srgb: expected (H, W, 3) float, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    pyramid = _Pyramid(_to_uint8(image))
    faces: list[Face] = []
    with _LOCK, _native_stderr_silenced():
        graphs = _graphs()
        for prop in _propose(graphs, pyramid):
            if any(_inside_fraction(prop.box, f.box) > _COVERED_FRACTION for f in faces):
                continue
            face = _face_for(graphs, pyramid, prop)
            if face is not None and all(_iou(face.box, f.box) <= _DUPLICATE_IOU for f in faces):
                faces.append(face)
    faces.sort(key=lambda f: -_area(f.box))
    return Detection(width=width, height=height, faces=tuple(faces))


@contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while mediapipe runs.

    Its C++ side (TFLite, absl, glog) writes info and warning lines straight to fd 2 on graph start-up and
    first inference, which would break the CLI's promise of one clear line per problem. Python-level errors
    are unaffected: they propagate as exceptions after fd 2 is restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _Graphs(NamedTuple):
    full_range: object  # mediapipe FaceDetection, model_selection=1 (192 px input, faces up to ~5 m)
    short_range: object  # mediapipe FaceDetection, model_selection=0 (128 px input, faces within ~2 m)
    mesh: object  # mediapipe FaceMesh, static images, with irises


_GRAPHS: dict[int, _Graphs] = {}
_WARMUP_PX = 64
_LOCK = threading.Lock()


def _graphs() -> _Graphs:
    """The process's mediapipe graphs, built on first use; call with :data:`_LOCK` held.

    Keyed by process id, so that a forked child builds its own rather than use its parent's threads.
    """
    pid = os.getpid()
    if pid not in _GRAPHS:
        from mediapipe.python.solutions import face_detection, face_mesh

        _GRAPHS.clear()
        _GRAPHS[pid] = _Graphs(
            full_range=face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=_MIN_PROPOSAL_SCORE
            ),
            short_range=face_detection.FaceDetection(
                model_selection=0, min_detection_confidence=_MIN_PROPOSAL_SCORE
            ),
            mesh=face_mesh.FaceMesh(
                static_image_mode=True,
                max_num_faces=_MESH_FACES_PER_CROP,
                refine_landmarks=True,
                min_detection_confidence=_MESH_DETECT_SCORE,
                min_tracking_confidence=_MESH_PRESENCE,
            ),
        )
        # One blank run per graph finishes their lazy start-up now, while native stderr is silenced,
        # instead of on a worker thread that would print after the silence ends.
        blank = np.zeros((_WARMUP_PX, _WARMUP_PX, 3), dtype=np.uint8)
        for graph in _GRAPHS[pid]:
            graph.process(blank)
    return _GRAPHS[pid]


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float [0, 1] -> (H, W, 3) uint8, clipped, rounded and C-contiguous, as mediapipe wants."""
    import cv2

    x = np.ascontiguousarray(image, dtype=np.float32)
    return cv2.convertScaleAbs(cv2.max(x, 0.0), alpha=255.0)  # 2 passes; saturates above 255


class _Pyramid:
    """The photo at full resolution, then halved (area filter) until its longer side is within a crop.

    ``levels[k]`` is ``(image, sx, sy)``: the level's (h, w, 3) uint8 image and its pixels per photo pixel
    along x and y (exact for odd sizes, where halving rounds up).
    """

    def __init__(self, rgb8: np.ndarray):
        import cv2

        height, width = rgb8.shape[:2]
        self.levels = [(rgb8, 1.0, 1.0)]
        img = rgb8
        while max(img.shape[:2]) > _CROP_PX:
            h, w = img.shape[:2]
            img = cv2.resize(img, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
            self.levels.append((img, img.shape[1] / width, img.shape[0] / height))

    def level_for(self, scale: float) -> tuple[np.ndarray, float, float]:
        """The smallest level with at least ``scale`` pixels per photo pixel (so resampling it to that
        scale shrinks by less than 2: no aliasing), or the full-resolution one for ``scale`` > 1."""
        for level in reversed(self.levels):
            if level[1] >= scale:
                return level
        return self.levels[0]


class _Proposal(NamedTuple):
    box: np.ndarray  # (4,) float64 [x0, y0, x1, y1], photo pixels
    score: float  # detector confidence
    roll: float  # radians, angle of the line from the right eye to the left eye (clockwise on screen)


def _propose(graphs: _Graphs, pyramid: _Pyramid) -> list[_Proposal]:
    """Face boxes from both detectors on the whole (downscaled) photo and on tiles, merged, best first."""
    import cv2

    height, width = pyramid.levels[0][0].shape[:2]
    scale = min(1.0, _PROPOSE_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    img = pyramid.level_for(scale)[0]
    if (img.shape[1], img.shape[0]) != size:
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / width, size[1] / height
    whole = (False, False, False, False)
    found = _detect(graphs.full_range, img, 0, 0, sx, sy, whole)
    found += _detect(graphs.short_range, img, 0, 0, sx, sy, whole)
    h, w = img.shape[:2]
    tile = min(h, w, _TILE_PX)
    if tile < max(h, w):
        for y0 in _tile_starts(h, tile):
            for x0 in _tile_starts(w, tile):
                crop = np.ascontiguousarray(img[y0 : y0 + tile, x0 : x0 + tile])
                inner = (x0 > 0, y0 > 0, x0 + tile < w, y0 + tile < h)
                found += _detect(graphs.full_range, crop, x0, y0, sx, sy, inner)
    kept: list[_Proposal] = []
    for prop in sorted(found, key=lambda p: -p.score):
        if all(_iou(prop.box, k.box) <= _PROPOSAL_NMS_IOU for k in kept):
            kept.append(prop)
    return kept


def _tile_starts(size: int, tile: int) -> list[int]:
    """Tile origins along one axis, :data:`_TILE_STEP` tiles apart, the last tile flush with the far edge."""
    starts = list(range(0, size - tile, max(1, round(tile * _TILE_STEP))))
    return starts + [size - tile]


def _detect(
    detector, img: np.ndarray, x0: int, y0: int, sx: float, sy: float, inner_edges
) -> list[_Proposal]:
    """One detector on one image or tile; boxes in photo pixels.

    Args:
        img: (h, w, 3) uint8, a tile at ``(x0, y0)`` of an image scaled by ``sx, sy`` from the photo.
        inner_edges: (left, top, right, bottom) bools, True where the tile's edge lies inside the image:
            detections touching those are cut faces, seen whole in a neighbouring tile, and are dropped.
    """
    h, w = img.shape[:2]
    out = []
    for det in detector.process(img).detections or ():
        rb = det.location_data.relative_bounding_box
        rel = (rb.xmin, rb.ymin, rb.xmin + rb.width, rb.ymin + rb.height)
        m = _TILE_EDGE_MARGIN
        cut = (rel[0] < m, rel[1] < m, rel[2] > 1 - m, rel[3] > 1 - m)
        if any(c and e for c, e in zip(cut, inner_edges)):
            continue
        eye_r, eye_l = det.location_data.relative_keypoints[:2]  # subject's right eye, then left
        roll = math.atan2((eye_l.y - eye_r.y) * h, (eye_l.x - eye_r.x) * w)
        box = np.array(
            [(x0 + rel[0] * w) / sx, (y0 + rel[1] * h) / sy, (x0 + rel[2] * w) / sx, (y0 + rel[3] * h) / sy]
        )
        out.append(_Proposal(box=box, score=float(det.score[0]), roll=roll))
    return out


def _face_for(graphs: _Graphs, pyramid: _Pyramid, prop: _Proposal) -> Face | None:
    """FaceMesh on a crop around one proposal, then on a crop framed by its own mesh; None if not a face."""
    first_crop = _crop(pyramid, prop.box, prop.roll)
    first = _best_match(_mesh_on(graphs.mesh, first_crop), prop.box, _AGREE_IOU)
    if first is None:
        return None
    box = _tight_box(first)
    eye_r, eye_l = first[_EYE_OUTER_CORNERS, :2].astype(np.float64)
    crop = _crop(pyramid, box, math.atan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))
    landmarks = _best_match(_mesh_on(graphs.mesh, crop), box, _REPRODUCE_IOU)
    if landmarks is None:
        return None
    score = max(_score_on(graphs.short_range, c, landmarks) for c in (first_crop, crop))
    if score < _MIN_FACE_SCORE:
        return None
    return Face(box=_tight_box(landmarks), score=score, landmarks=landmarks)


def _best_match(candidates: list[np.ndarray], box: np.ndarray, min_iou: float) -> np.ndarray | None:
    """The (478, 3) landmarks whose tight box overlaps ``box`` most, if by at least ``min_iou``; else None."""
    best, best_iou = None, min_iou
    for lm in candidates:
        iou = _iou(_tight_box(lm), box)
        if iou >= best_iou:
            best, best_iou = lm, iou
    return best


class _Crop(NamedTuple):
    """A square patch of the photo resampled for a network: ``q = A @ p + b`` maps photo pixels ``p`` to
    crop pixels ``q`` (both with the origin at the top-left corner)."""

    image: np.ndarray  # (_CROP_PX, _CROP_PX, 3) uint8
    A: np.ndarray  # (2, 2) zoom (crop pixels per photo pixel) times a rotation
    b: np.ndarray  # (2,) crop pixels

    def to_photo(self, q: np.ndarray) -> np.ndarray:
        """(N, 2) crop pixels -> (N, 2) photo pixels."""
        return (q - self.b) @ np.linalg.inv(self.A).T

    def to_crop(self, p: np.ndarray) -> np.ndarray:
        """(N, 2) photo pixels -> (N, 2) crop pixels."""
        return p @ self.A.T + self.b


def _crop(pyramid: _Pyramid, box: np.ndarray, roll: float) -> _Crop:
    """A square crop centred on ``box``, :data:`_CROP_EXPAND` times its longer side, turned by ``-roll``.

    A face whose eye line is rolled by ``roll`` radians (clockwise on screen) is upright in the crop.
    """
    import cv2

    centre = np.array([box[0] + box[2], box[1] + box[3]]) / 2
    zoom = _CROP_PX / (_CROP_EXPAND * max(box[2] - box[0], box[3] - box[1]))
    img, sx, sy = pyramid.level_for(zoom)
    c, s = math.cos(roll), math.sin(roll)
    A = zoom * np.array([[c, s], [-s, c]])
    b = np.full(2, _CROP_PX / 2) - A @ centre
    # the same map from the pyramid level (p = p_level / (sx, sy)), in cv2's pixel-index coordinates
    # (index = corner-origin coordinate - 0.5)
    A_level = A @ np.diag([1 / sx, 1 / sy])
    b_index = b + A_level @ np.full(2, 0.5) - 0.5
    image = cv2.warpAffine(
        img,
        np.hstack([A_level, b_index[:, None]]),
        (_CROP_PX, _CROP_PX),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(_PAD_GREY, _PAD_GREY, _PAD_GREY),
    )
    return _Crop(image=image, A=A, b=b)


def _mesh_on(mesh, crop: _Crop) -> list[np.ndarray]:
    """FaceMesh on a crop: one (478, 3) float32 array per face, x, y, z in photo pixels.

    mediapipe gives x, y as fractions of the crop's width and height and z in the scale of x.
    """
    zoom = math.sqrt(abs(np.linalg.det(crop.A)))
    out = []
    for face in mesh.process(crop.image).multi_face_landmarks or ():
        q = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64) * _CROP_PX
        out.append(np.column_stack([crop.to_photo(q[:, :2]), q[:, 2] / zoom]).astype(np.float32))
    return out


def _score_on(detector, crop: _Crop, landmarks: np.ndarray) -> float:
    """The detector's best score on a crop for a box agreeing with ``landmarks`` (photo pixels); 0 if none."""
    target = _tight_box(crop.to_crop(landmarks[:, :2].astype(np.float64)))
    best = 0.0
    for det in detector.process(crop.image).detections or ():
        rb = det.location_data.relative_bounding_box
        box = np.array([rb.xmin, rb.ymin, rb.xmin + rb.width, rb.ymin + rb.height]) * _CROP_PX
        if _iou(box, target) >= _AGREE_IOU:
            best = max(best, float(det.score[0]))
    return best


def _tight_box(points: np.ndarray) -> np.ndarray:
    """(N, 2+) points -> (4,) float64 ``[x0, y0, x1, y1]``."""
    xy = points[:, :2].astype(np.float64)
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return float(max(0.0, w) * max(0.0, h))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """The fraction of box ``a``'s area that lies inside box ``b``."""
    area = _area(a)
    return _intersection(a, b) / area if area > 0 else 0.0
