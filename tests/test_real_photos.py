"""Real portraits from ../shared/photos: the fit succeeds and lands on the detected face."""

from __future__ import annotations

import numpy as np
import pytest

from facetwin.detect import detect_faces
from facetwin.fit.correspondence import landmark_correspondence
from facetwin.fit.landmarks68 import landmarks68_px
from facetwin.io import read_photo
from facetwin.pipeline import fit_face

PHOTOS = [
    "astronaut.png",
    "bryan_small_glasses.png",
    "classroom_in_tanzania.jpg",
    "face_paint.png",
    "frederick_douglass_1879.jpg",
    "grace_hopper.jpg",
    "laos.jpg",
    "luciano.png",
    "model_face.jpg",
    "smiling_woman.png",
    "woman_portrait.jpg",
    "woman_three_quarter.png",
]
# FaceMesh indices of anatomical points and their Multi-PIE numbers: eye corners, nose tip, mouth corners.
ANATOMY = {33: 36, 133: 39, 362: 42, 263: 45, 4: 30, 61: 48, 291: 54}


@pytest.mark.parametrize("name", PHOTOS)
def test_fit_lands_on_the_detected_face(model, photos_dir, name):
    photo = read_photo(photos_dir / name)
    face = detect_faces(photo.image_srgb).faces[0]
    points = landmark_correspondence(model)
    fit = fit_face(model, points, photo, face)
    size = fit.face_size_px
    # the fitted surface points follow the detector: median under 1.5 % of the face, nearly all under 5 %
    rel = fit.residual_px / size
    assert np.median(rel) < 0.015, np.median(rel)
    assert np.mean(rel < 0.05) > 0.95
    # ICT's own Multi-PIE vertices agree with the detector on the anatomical points
    lm68 = landmarks68_px(model, fit.vertices, fit.camera, points)
    for mp_id, mpie in ANATOMY.items():
        err = np.linalg.norm(lm68[mpie] - face.landmarks[mp_id, :2]) / size
        assert err < 0.06, f"{name}: Multi-PIE {mpie} is {err:.1%} of the face from the detector's"
    # a plausible head: identity within 4 standard deviations, camera in front, face inside the photo
    assert np.abs(fit.identity_coeffs).max() < 4.0
    assert fit.camera.t[2] > 0
    assert np.all((lm68 > -0.05 * size) & (lm68 < np.array([photo.width, photo.height]) + 0.05 * size))
