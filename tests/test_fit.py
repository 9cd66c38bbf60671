"""Known-answer tests of the landmark fit and the 478 -> ICT correspondence.

Scenes are made here from the model with known identity, expression, pose and camera; the detector's
landmarks are replaced by the model's own projected correspondence points plus noise, dropouts and outliers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facetwin.camera import Camera, intrinsics
from facetwin.errors import FacetwinError
from facetwin.fit.correspondence import landmark_correspondence
from facetwin.fit.geometry import rotation_angles_deg
from facetwin.fit.landmarks import fit_landmarks

WIDTH, HEIGHT, FOCAL = 720, 900, 1500.0


@pytest.fixture(scope="module")
def points(model):
    return landmark_correspondence(model)


def _scene(model, points, rng, yaw, pitch=8.0, n_expr=5, noise_px=1.0):
    alpha = rng.normal(0.0, 1.0, 100).astype(np.float32)
    w = np.zeros(53, np.float32)
    w[rng.choice(53, n_expr, replace=False)] = rng.uniform(0.2, 0.8, n_expr)
    verts = model.vertices(alpha, w)
    R = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_euler("YX", [yaw, pitch], degrees=True).as_matrix()
    cam = Camera(intrinsics(FOCAL, WIDTH, HEIGHT), R, np.array([1.5, -2.0, 70.0]), WIDTH, HEIGHT)
    uv = cam.project(points.evaluate(verts)) + rng.normal(0.0, noise_px, (points.bary.shape[0], 2))
    return verts, cam, uv


def _face_error_mm(model, fitted, truth):
    """Mean vertex distance over ICT's fitting region (the face), millimetres, head frame."""
    idx = model.fitting_vertices
    return float(np.linalg.norm(fitted[idx] - truth[idx], axis=1).mean() * 10.0)


@pytest.mark.parametrize("yaw", [0.0, 35.0, -70.0])
def test_known_answer_pose_shape_expression(model, points, yaw):
    rng = np.random.default_rng(int(abs(yaw)) + 1)
    verts, cam, uv = _scene(model, points, rng, yaw)
    uv[rng.random(uv.shape[0]) < 0.1] = np.nan  # 10 % of the landmarks missing
    fit = fit_landmarks(model, points, uv, (WIDTH, HEIGHT), focal_px=FOCAL)

    err = _face_error_mm(model, fit.vertices, verts)
    mean_face_err = _face_error_mm(model, model.neutral, verts)
    assert err < 2.4, f"face vertex error {err:.2f} mm at yaw {yaw}"
    assert err < 0.6 * mean_face_err, (err, mean_face_err)
    got, want = rotation_angles_deg(fit.camera.R), rotation_angles_deg(cam.R)
    for k in ("yaw", "pitch", "roll"):
        assert abs(got[k] - want[k]) < 2.0, (k, got, want)
    # Projected Multi-PIE landmarks within 1 px on average of the true ones (face is ~300 px).
    truth68 = cam.project(verts[model.landmark68])
    assert np.abs(fit.camera.project(fit.vertices[model.landmark68]) - truth68).max() < 3.0
    assert np.linalg.norm(fit.camera.project(fit.vertices[model.landmark68]) - truth68, axis=1).mean() < 1.0
    assert np.all((fit.expression_weights >= 0) & (fit.expression_weights <= 1))


def test_unknown_focal_is_estimated(model, points):
    rng = np.random.default_rng(7)
    verts, cam, uv = _scene(model, points, rng, 20.0, noise_px=0.5)
    fit = fit_landmarks(model, points, uv, (WIDTH, HEIGHT))
    truth68 = cam.project(verts[model.landmark68])
    assert np.linalg.norm(fit.camera.project(fit.vertices[model.landmark68]) - truth68, axis=1).mean() < 1.0
    assert _face_error_mm(model, fit.vertices, verts) < 3.0


def test_outliers_do_not_distort_the_face(model, points):
    rng = np.random.default_rng(11)
    verts, _cam, uv = _scene(model, points, rng, 15.0)
    clean = fit_landmarks(model, points, uv, (WIDTH, HEIGHT), focal_px=FOCAL)
    bad = rng.choice(uv.shape[0], 25, replace=False)  # ~5 % wild landmarks, 20 % of the face size away
    uv_bad = uv.copy()
    uv_bad[bad] += rng.normal(0.0, 60.0, (bad.size, 2))
    fit = fit_landmarks(model, points, uv_bad, (WIDTH, HEIGHT), focal_px=FOCAL)
    err_clean = _face_error_mm(model, clean.vertices, verts)
    err = _face_error_mm(model, fit.vertices, verts)
    assert err < err_clean + 0.5, (err, err_clean)
    assert fit.landmark_weights[bad].mean() < 0.2 * np.median(fit.landmark_weights)


def test_heavy_noise_keeps_a_plausible_face(model, points):
    """5 px noise on a ~300 px face: the identity prior keeps coefficients in a plausible range."""
    rng = np.random.default_rng(3)
    verts, _cam, uv = _scene(model, points, rng, 0.0, noise_px=5.0)
    fit = fit_landmarks(model, points, uv, (WIDTH, HEIGHT), focal_px=FOCAL)
    assert np.abs(fit.identity_coeffs).max() < 4.0
    assert _face_error_mm(model, fit.vertices, verts) < 4.0


def test_too_few_landmarks_is_an_error(model, points):
    uv = np.full((points.bary.shape[0], 2), np.nan)
    uv[:3] = 100.0
    with pytest.raises(FacetwinError, match="usable landmarks"):
        fit_landmarks(model, points, uv, (WIDTH, HEIGHT))


def test_bad_landmark_shape_is_rejected(model, points):
    with pytest.raises(ValueError, match="landmarks_px"):
        fit_landmarks(model, points, np.zeros((10, 2)), (WIDTH, HEIGHT))


# Mediapipe landmark index -> Multi-PIE index of the same anatomical point (eye corners, mouth corners, chin).
SEMANTIC_PAIRS = {33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54, 152: 8}


def test_correspondence_lands_on_anatomy(model, points):
    """Derived surface points sit on the same anatomy as ICT's own Multi-PIE landmark vertices."""
    pts = points.evaluate(model.neutral)
    lm = model.neutral[model.landmark68]
    for mp_id, mpie in SEMANTIC_PAIRS.items():
        d = np.linalg.norm(pts[mp_id] - lm[mpie]) * 10
        assert d < 5.0, f"mediapipe {mp_id} vs Multi-PIE {mpie}: {d:.1f} mm"
    assert np.allclose(points.bary.sum(axis=1), 1.0)


def test_correspondence_is_left_right_symmetric(model, points):
    """Mirror-image landmarks (mediapipe's symmetric pairs) land on mirror-image points of the head."""
    pts = points.evaluate(model.neutral)
    # Inner-face pairs only: the face-oval points follow the silhouette and are not surface-fixed.
    pairs = [(33, 263), (133, 362), (61, 291), (70, 300), (468, 473), (159, 386)]
    for a, b in pairs:
        mirrored = pts[b] * np.array([-1.0, 1.0, 1.0])
        assert np.linalg.norm(pts[a] - mirrored) * 10 < 4.0, (a, b)


def test_iris_landmarks_sit_on_the_eyes(model, points):
    eyes = {model.material_names.index(n) for n in ("M_ScleraLeft", "M_ScleraRight")}
    for i in (468, 473):  # iris centres; the iris rim points may sit on the lids that cover it
        tris = np.flatnonzero((model.faces == points.vertex_ids[i][0]).any(axis=1))
        assert {int(m) for m in model.face_material[tris]} & eyes, f"iris landmark {i} not on an eyeball"


def test_landmarks68_jaw_slides_towards_the_outline(model, points):
    """At 45 degrees of yaw the far-side contour landmarks slide outwards, towards the outline, staying on
    the head (they may slide at most BEHIND_CM over the surface, so not always all the way)."""
    from facetwin.fit.landmarks68 import landmarks68_px
    from facetwin.render.raster import rasterize

    rng = np.random.default_rng(5)
    verts, cam, _ = _scene(model, points, rng, 45.0, pitch=0.0, n_expr=0)
    lm = landmarks68_px(model, verts, cam, points)
    raster = rasterize(cam.to_camera(verts), model.faces[model.material_faces(("M_Face",))],
                       cam.K, HEIGHT, WIDTH)
    fixed = cam.project(verts[model.landmark68])
    centre = cam.project(verts[model.landmark68].mean(axis=0, keepdims=True))[0]
    # the side turned away from the camera: its ICT vertices project towards the face centre
    far = [0, 1, 2, 3, 4, 5] if fixed[0, 0] > centre[0] else [11, 12, 13, 14, 15, 16]
    moved_out = 0
    for j in far:
        x, y = lm[j].astype(int)
        assert raster.tri_id[y, x] >= 0 or raster.tri_id[y, x - 1] >= 0, f"jaw landmark {j} is off the head"
        moved_out += abs(lm[j, 0] - centre[0]) > abs(fixed[j, 0] - centre[0]) + 1.0
    assert moved_out >= len(far) - 1  # the outline is outside the fixed vertices on that side


def test_landmarks68_frontal_agree_with_the_model_vertices(model, points):
    """Frontal: eye, nose and mouth points are within a few mm of ICT's own Multi-PIE vertices (same anatomy,
    the detector's convention); the jaw moves little, the chin points move down to the chin's outline;
    brows are on the brows."""
    from facetwin.fit.landmarks68 import BROW_IDS, landmarks68_px

    rng = np.random.default_rng(6)
    verts, cam, _ = _scene(model, points, rng, 0.0, pitch=0.0, n_expr=0)
    lm = landmarks68_px(model, verts, cam, points)
    fixed = cam.project(verts[model.landmark68])
    px_per_cm = FOCAL / (cam.t[2] - verts[model.landmark68, 2].mean())
    eyes_mouth = np.r_[36:68]
    assert np.median(np.linalg.norm(lm[eyes_mouth] - fixed[eyes_mouth], axis=1)) < 0.25 * px_per_cm
    assert np.linalg.norm(lm[27:] - fixed[27:], axis=1).max() < 1.0 * px_per_cm
    assert np.linalg.norm(lm[:17] - fixed[:17], axis=1).max() < 1.0 * px_per_cm  # ICT's contour is near the outline
    assert np.all(lm[6:11, 1] >= fixed[6:11, 1])  # image y grows downwards
    assert np.all(lm[7:10, 1] > fixed[7:10, 1] + 0.1 * px_per_cm)
    # brows: between the eyes' top and ICT's brow-ridge vertices, i.e. below the ridge, above the eyes
    eye_top = fixed[[37, 38, 43, 44], 1].min()
    assert np.all(lm[BROW_IDS, 1] > fixed[BROW_IDS, 1]) and np.all(lm[BROW_IDS, 1] < eye_top)


def test_antagonist_blendshapes_are_not_both_on(model, points):
    """A smile is fitted as a smile, not as smile plus frown of the same mouth corner."""
    rng = np.random.default_rng(9)
    names = model.expression_names
    alpha = rng.normal(0.0, 1.0, 100).astype(np.float32)
    w = np.zeros(53, np.float32)
    w[[names.index("mouthSmile_L"), names.index("mouthSmile_R")]] = 0.8
    verts = model.vertices(alpha, w)
    cam = Camera(intrinsics(FOCAL, WIDTH, HEIGHT), np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 70.0]),
                 WIDTH, HEIGHT)
    uv = cam.project(points.evaluate(verts)) + rng.normal(0.0, 1.0, (points.bary.shape[0], 2))
    fit = fit_landmarks(model, points, uv, (WIDTH, HEIGHT), focal_px=FOCAL)
    got = dict(zip(names, fit.expression_weights))
    for side in ("L", "R"):
        assert got[f"mouthSmile_{side}"] > 0.5
        assert got[f"mouthSmile_{side}"] * got[f"mouthFrown_{side}"] < 0.05
