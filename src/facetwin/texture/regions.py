"""Facial regions in the face UV tile (tile 0), drawn from the model's Multi-PIE 68 landmark vertices.

The regions are fixed in UV, so they follow the surface through any identity, expression and pose: the
photometric fit leaves the eyes, brows, lips and nostrils out of its skin mask by looking each pixel's UV
up here, and the skin colour is measured on the cheeks. Texel convention of :mod:`facetwin.texture.uvmap`
(row 0 at ``v = 1``). Multi-PIE numbering (0-based): jaw 0-16 (0 on the subject's right), brows 17-21 and
22-26, nose 27-35, eyes 36-41 and 42-47, outer lips 48-59, inner lips 60-67.

Region widths are fractions of the tile side; on the ICT face tile one unit of ``u`` spans about 19 cm
(jaw landmark 0 to 16, 14 cm, spans 0.73), so 0.01 is about 2 mm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from facetwin.model.ict import HeadModel

EYE_MARGIN_UV = 0.022
"""Eye contours widened by this (about 4 mm): lashes, the lid crease and eyeliner are not skin."""
BROW_HALF_WIDTH_UV = 0.03
"""Half thickness of the band around the brow landmarks (about 6 mm): brows are 10-15 mm tall and the
landmarks run along their middle."""
LIP_MARGIN_UV = 0.008
"""Outer lip contour widened by this (about 1.5 mm): the vermilion border."""
NOSTRIL_MARGIN_UV = 0.015
"""The nostril landmarks 31-35 widened by this (about 3 mm): the dark openings beside and above them."""
CHEEK_SHRINK = 0.6
"""Cheek polygons scaled by this about their centroid, so they stay clear of eyes, nose, mouth and jaw."""
CORE_LIFT = 0.8
"""The core region reaches this many brow-to-eye distances above the brows (the lower forehead)."""
MOUTH_CORNER_MARGIN_UV = 0.015
"""The lips' corners: the segment from each inner lip corner to the outer one (landmarks 60-48, 64-54),
widened by this (about 3 mm)."""
BEARD_BELOW_JAW_UV = 0.02
"""The beard region reaches this far past the jaw line (about 4 mm): beards go on under the chin."""

_EYES = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
_BROWS = ((17, 18, 19, 20, 21), (22, 23, 24, 25, 26))
_LIPS = tuple(range(48, 60))
_NOSTRILS = (31, 32, 33, 34, 35)
# Subject's right cheek (image left): jaw 1-4, mouth corner 48, nose wing 31, lower lid 39-41 and corner 36.
_CHEEKS = ((1, 2, 3, 4, 48, 31, 39, 40, 41, 36), (15, 14, 13, 12, 54, 35, 42, 47, 46, 45))
# Each brow, outer to inner end, then its eye's upper lid from the inner corner to the outer one.
_LIDS = ((17, 18, 19, 20, 21, 39, 38, 37, 36), (26, 25, 24, 23, 22, 42, 43, 44, 45))
# Each inner lip corner with the outer one beside it.
_MOUTH_CORNERS = ((60, 48), (64, 54))
# Jaw 1-15 (from below one ear to below the other), then the nose's base 35-31.
_BEARD = tuple(range(1, 16)) + (35, 34, 33, 32, 31)


@dataclass(frozen=True)
class FaceRegions:
    """Boolean masks of one face-tile size, (S, S) each, read-only.

    Attributes:
        eyes: both eye openings with their lashes and lid margins.
        brows: both eyebrows.
        lips: the lips (outer contour).
        nostrils: the nostril openings.
        cheeks: the two cheeks, away from every feature: where skin colour is measured.
        core: the central band from above the brows to the nostrils and between the outer eye corners,
            features left out: skin that beards, moustaches and most hair styles leave bare.
        beard: where beards and moustaches grow: below the nose's base and a line from it to the jaw
            below the ears (landmarks 1 and 15), down past the jaw line (:data:`BEARD_BELOW_JAW_UV`),
            features left out.
        lids: the upper lids and the skin up to the brows, features left out: skin, but where eye shadow
            (make-up) is worn, so a dark patch there may be colour rather than shading.
        mouth_corners: the lips' two corners (:data:`MOUTH_CORNER_MARGIN_UV`), within the lips: where they
            meet in a recess the model's lips, meeting in an edge, do not have.
    """

    eyes: np.ndarray
    brows: np.ndarray
    lips: np.ndarray
    nostrils: np.ndarray
    cheeks: np.ndarray
    core: np.ndarray
    beard: np.ndarray
    lids: np.ndarray
    mouth_corners: np.ndarray

    @property
    def features(self) -> np.ndarray:
        """(S, S) bool: eyes, brows, lips and nostrils, the parts of the face tile that are not plain skin."""
        return self.eyes | self.brows | self.lips | self.nostrils


def landmark_uv(model: HeadModel) -> np.ndarray:
    """Face-tile UVs of the 68 landmark vertices.

    Returns:
        (68, 2) float64 OBJ ``(u, v)`` in tile 0.
    """
    face = np.flatnonzero(model.material_faces(("M_Face",)))
    vuv = np.full((model.n_vertices, 2), np.nan)
    vuv[model.faces[face].ravel()] = model.uvs[model.face_uv_ids[face].ravel()]
    out = vuv[model.landmark68].astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("model: a landmark vertex is not on M_Face")
    return out


def face_regions(model: HeadModel, size: int) -> FaceRegions:
    """The :class:`FaceRegions` of the face tile at ``size`` texels (cached per model and size).

    Args:
        model: the head model.
        size: S, texels per side.
    """
    if int(size) != size or size < 8:
        raise ValueError(f"size: expected an integer >= 8, got {size!r}")
    return _face_regions(model.source_sha256, int(size), _Key(model))


class _Key:
    """Carries the model into the cached function without hashing its arrays (the sha256 is the key)."""

    def __init__(self, model: HeadModel):
        self.model = model

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other) -> bool:
        return isinstance(other, _Key)


@functools.lru_cache(maxsize=4)
def _face_regions(sha: str, size: int, key: _Key) -> FaceRegions:
    import cv2

    uv = landmark_uv(key.model)
    xy = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], axis=1)  # continuous texel (x, y)

    def poly(ids, shrink: float = 1.0) -> np.ndarray:
        p = xy[list(ids)]
        c = p.mean(axis=0)
        p = c + shrink * (p - c)
        mask = np.zeros((size, size), np.uint8)
        # fillPoly works on pixel centres at integers: shift by -0.5 and use 8 fractional bits.
        cv2.fillPoly(mask, [np.round((p - 0.5) * 256).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=8)
        return mask

    def widen(mask: np.ndarray, margin_uv: float) -> np.ndarray:
        # Texels within the margin of the mask, by an exact Euclidean distance transform: its cost does not
        # grow with the margin, so every size is drawn at its own resolution (drawn at 512 and enlarged, the
        # regions' edges were stairs of 8 texels at 4096, which the features' confidence steps showed).
        r = max(margin_uv * size, 1.0)
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        out = np.zeros_like(mask)
        if rows.size:
            # Only the mask's box and the margin around it: the features are small on the tile.
            y0, x0 = max(rows[0] - int(r) - 1, 0), max(cols[0] - int(r) - 1, 0)
            y1, x1 = rows[-1] + int(r) + 2, cols[-1] + int(r) + 2
            box = (mask[y0:y1, x0:x1] == 0).astype(np.uint8)
            far = cv2.distanceTransform(box, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            out[y0:y1, x0:x1] = far <= r
        return out

    def lines(groups) -> np.ndarray:
        mask = np.zeros((size, size), np.uint8)
        for ids in groups:
            pts = np.round((xy[list(ids)] - 0.5) * 256).astype(np.int32)
            cv2.polylines(mask, [pts], False, 1, thickness=1, lineType=cv2.LINE_8, shift=8)
        return mask

    eyes = widen(poly(_EYES[0]) | poly(_EYES[1]), EYE_MARGIN_UV)
    brows = widen(lines(_BROWS), BROW_HALF_WIDTH_UV)
    lips = widen(poly(_LIPS), LIP_MARGIN_UV)
    nostrils = widen(poly(_NOSTRILS), NOSTRIL_MARGIN_UV)
    cheeks = poly(_CHEEKS[0], CHEEK_SHRINK) | poly(_CHEEKS[1], CHEEK_SHRINK)
    # Core: from a brow-to-eye distance above the brows down to the nostrils, between the outer eye corners.
    lift = np.array([0.0, (xy[[36, 45], 1].mean() - xy[[19, 24], 1].mean()) * CORE_LIFT])
    core_pts = np.array([xy[17] - lift, xy[19] - lift, xy[24] - lift, xy[26] - lift, xy[35], xy[33], xy[31]])
    core = np.zeros((size, size), np.uint8)
    cv2.fillPoly(core, [np.round((core_pts - 0.5) * 256).astype(np.int32)], 1, shift=8)
    beard = widen(poly(_BEARD), BEARD_BELOW_JAW_UV)
    lids = widen(poly(_LIDS[0]) | poly(_LIDS[1]), EYE_MARGIN_UV)
    corners = widen(lines(_MOUTH_CORNERS), MOUTH_CORNER_MARGIN_UV) & lips
    masks = [m.astype(bool) for m in (eyes, brows, lips, nostrils, cheeks, core, beard, lids, corners)]
    features = masks[0] | masks[1] | masks[2] | masks[3]
    for m in masks[4:8]:
        m &= ~features
    for m in masks:
        m.setflags(write=False)
    return FaceRegions(*masks)
