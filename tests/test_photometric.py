"""Photometric refinement: known light from a synthetic scene, geometry kept, robust masks, helper maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import appearance_scenes as S
from facetwin.fit.photometric import (
    Adam,
    _channels,
    _light_columns,
    _residual,
    _rodrigues,
    _sh_design,
    _solve_light,
    face_oval_px,
    landmark_polygon,
    psnr_masked,
    refine_photometric,
    sheen_colours,
    ssim_masked,
    work_view,
)
from facetwin.frames import srgb_to_linear
from facetwin.pipeline import fit_face
from facetwin.texture.delight import render_textured, visibility_ratio

SHADING_ERR_MAX = 0.08
"""RMS of the log shading error on the skin mask, after one scale per channel (measured 0.02-0.07)."""


@pytest.fixture(scope="module")
def points(model):
    from facetwin.fit.correspondence import landmark_correspondence

    return landmark_correspondence(model)


@pytest.fixture(scope="module")
def scene(model, points):
    verts = S.true_geometry(model)
    cam = S.true_camera(yaw=-20.0, pitch=3.0)
    vis = S.visibility_of(model, verts)
    tiles = S.skin_tiles(model, 256, S.TONES["brown"])
    light = S.lights()["one_sided"]
    sc = S.make_scene(model, points, tiles, light, verts, cam, vis)

    fit = fit_face(model, points, sc.photo, sc.face)
    return {"scene": sc, "fit": fit, "visibility": vis, "light": light}


@pytest.fixture(scope="module")
def refined(model, points, scene):
    sc = scene["scene"]
    return refine_photometric(
        model, srgb_to_linear(sc.photo.image_srgb), sc.face.landmarks, scene["fit"], points
    )


def _face_error_mm(model, verts, truth):
    idx = model.fitting_vertices
    return float(np.linalg.norm(verts[idx] - truth[idx], axis=1).mean() * 10.0)


def test_recovers_the_shading(model, scene, refined):
    """The fitted light on the true mesh shades the skin mask like the true light, up to one scale per
    channel (light and albedo share it)."""
    from facetwin.render.shade import vertex_normals

    sc = scene["scene"]
    vis, dirs = scene["visibility"]
    normals = vertex_normals(sc.vertices.astype(np.float64), model.faces)
    h, w = refined.skin_mask.shape
    ones = {0: np.ones((8, 8, 3), np.float32), 1: np.ones((8, 8, 3), np.float32)}

    def white_shading(light):
        shading, _ = render_textured(
            model,
            sc.vertices,
            sc.camera.R,
            sc.camera.t,
            refined.view.K,
            h,
            w,
            ones,
            light,
            visibility_ratio(normals, vis, dirs, light),
        )
        return shading

    true_s, est_s = white_shading(scene["light"]), white_shading(refined.sh_light)
    m = refined.skin_mask & (true_s.min(axis=2) > 1e-3) & (est_s.min(axis=2) > 1e-4)
    r = np.log(est_s[m] / true_s[m])
    r -= np.median(r, axis=0)
    err = float(np.sqrt(np.mean(r**2)))
    assert err < SHADING_ERR_MAX, err
    assert refined.metrics["psnr_db"] > 35.0, refined.metrics
    assert refined.sheen is None
    assert refined.sh_light.shape == (9, 3)
    assert refined.albedo_grid_linear.ndim == 3 and refined.albedo_grid_linear.shape[2] == 3


def test_shape_does_not_drift(model, scene, refined):
    truth = scene["scene"].vertices
    before = _face_error_mm(model, scene["fit"].vertices, truth)
    after = _face_error_mm(model, refined.fit.vertices, truth)
    assert after < before + 0.3, (before, after)
    assert refined.metrics["face_vertex_shift_mm"] < 1.0
    assert refined.metrics["landmark_loss_after"] < 1.5 * refined.metrics["landmark_loss_before"]
    assert np.all((refined.fit.expression_weights >= 0) & (refined.fit.expression_weights <= 1))
    np.testing.assert_allclose(refined.fit.camera.R @ refined.fit.camera.R.T, np.eye(3), atol=1e-5)


def test_masks(refined):
    assert refined.skin_mask.dtype == bool
    assert not np.any(refined.skin_mask & ~refined.candidate_mask)
    assert not np.any(refined.outlier_mask & refined.skin_mask)
    assert not np.any(refined.feature_mask & refined.candidate_mask)
    assert refined.skin_mask.sum() > 0.8 * refined.candidate_mask.sum()  # a clean synthetic face


def test_light_only_keeps_geometry(model, points, scene):
    sc = scene["scene"]
    out = refine_photometric(
        model,
        srgb_to_linear(sc.photo.image_srgb),
        sc.face.landmarks,
        scene["fit"],
        points,
        refine_geometry=False,
        outer_iterations=2,
    )
    np.testing.assert_array_equal(out.fit.vertices, scene["fit"].vertices)


def test_mottled_monotone_photo_keeps_its_skin(model, points, scene):
    """A grayscale photo whose skin is mottled beyond what the low-resolution albedo can follow (blotches of
    about 2 % of the face, 0.1 on the square root of the intensity: an old print's grain and wrinkles, as
    in frederick_douglass_1879). The core skin itself fits no better than that, so a monotone photo's
    residual cap rises to its spread and the skin stays skin; with the colour photos' fixed cap, much of
    it is cast out."""
    import cv2

    sc = scene["scene"]
    rng = np.random.default_rng(0)
    gray = srgb_to_linear(sc.photo.image_srgb).mean(axis=2)
    blotches = cv2.GaussianBlur(rng.normal(0.0, 1.0, gray.shape).astype(np.float32), (0, 0), 4.0)
    blotches *= 0.1 / blotches.std()
    mottled = np.maximum(np.sqrt(gray) + blotches, 0.0) ** 2
    image = np.repeat(mottled[..., None], 3, axis=2).astype(np.float32)
    args = (model, image, sc.face.landmarks, scene["fit"], points)
    kw = {"refine_geometry": False, "outer_iterations": 2}
    fixed = refine_photometric(*args, **kw)
    adaptive = refine_photometric(*args, monotone=True, **kw)
    assert fixed.metrics["residual_sigma_sqrt"] == pytest.approx(0.03)
    assert adaptive.metrics["residual_sigma_sqrt"] > 0.04
    assert adaptive.metrics["outlier_fraction"] < 0.05, adaptive.metrics
    assert fixed.metrics["outlier_fraction"] > 2.0 * adaptive.metrics["outlier_fraction"], fixed.metrics


def test_excluded_pixels_are_left_out_of_the_light(model, points, scene):
    """Pixels given as ``exclude`` (what the appearance stage found to be hair) are not skin, and what they
    show does not move the fit: the lower face brightened 1.4 times (a beard the outlier test lets through)
    moves the fitted light by 15 %, but with those pixels excluded the light is the one fitted to the clean
    photo with the same pixels excluded."""
    sc = scene["scene"]
    clean = srgb_to_linear(sc.photo.image_srgb)
    lm = sc.face.landmarks[:, :2]
    kw = {"refine_geometry": False, "outer_iterations": 2}
    base = refine_photometric(model, clean, sc.face.landmarks, scene["fit"], points, **kw)
    view = base.view
    # Below the nose's tip, in photo pixels and in the crop (the same for the same photo, landmarks, fit).
    line = lm[1, 1] + 0.1 * (lm[152, 1] - lm[1, 1])
    brighter = clean.copy()
    brighter[np.arange(clean.shape[0]) > line] *= 1.4
    h, w = base.skin_mask.shape
    below = np.repeat(((np.arange(h) + 0.5) / view.scale + view.origin_px[1] > line)[:, None], w, axis=1)

    def light_change(a, b) -> float:
        return float(np.linalg.norm(a.sh_light[:4] - b.sh_light[:4]) / np.linalg.norm(b.sh_light[:4]))

    pulled = refine_photometric(model, brighter, sc.face.landmarks, scene["fit"], points, **kw)
    left_out = refine_photometric(model, brighter, sc.face.landmarks, scene["fit"], points, exclude=below, **kw)
    clean_left_out = refine_photometric(model, clean, sc.face.landmarks, scene["fit"], points, exclude=below, **kw)
    assert not np.any(left_out.skin_mask & below)
    moved, kept = light_change(pulled, base), light_change(left_out, clean_left_out)
    print(f"\nlight moved by the bright lower face: {moved:.3f}; with it excluded: {kept:.4f}")
    assert moved > 0.05
    assert kept < 0.1 * moved
    with pytest.raises(ValueError, match="exclude"):
        refine_photometric(model, clean, sc.face.landmarks, scene["fit"], points, exclude=below[:10], **kw)
    # A second pass over the same fit (the appearance stage's refit without hair) may hand back the first's
    # vertex visibility instead of computing it again: the same fit.
    again = refine_photometric(
        model, clean, sc.face.landmarks, scene["fit"], points, exclude=below, visibility=base.visibility, **kw
    )
    np.testing.assert_array_equal(again.sh_light, clean_left_out.sh_light)
    np.testing.assert_array_equal(again.albedo_grid_linear, clean_left_out.albedo_grid_linear)
    with pytest.raises(ValueError, match="visibility"):
        refine_photometric(model, clean, sc.face.landmarks, scene["fit"], points, visibility=base.visibility[:, :5], **kw)


def test_bad_inputs(model, points, scene):
    sc = scene["scene"]
    img = srgb_to_linear(sc.photo.image_srgb)
    with pytest.raises(ValueError, match="image_linear"):
        refine_photometric(model, img[..., 0], sc.face.landmarks, scene["fit"], points)
    with pytest.raises(ValueError, match="landmarks_px"):
        refine_photometric(model, img, sc.face.landmarks[:10], scene["fit"], points)
    with pytest.raises(ValueError, match="which"):
        landmark_polygon(sc.face.landmarks, "nose")


def test_adam_takes_torchs_steps():
    """Known answer: the same trajectory as ``torch.optim.Adam`` (defaults, one group per tensor) on a
    quadratic with gradients of mixed sign and scale, a tensor left without gradient on some steps."""
    gen = torch.Generator().manual_seed(3)
    targets = [torch.randn(5, generator=gen) * 10.0, torch.randn(3, 2, generator=gen)]
    lrs = [0.03, 2e-3]
    ours = [torch.zeros_like(t, requires_grad=True) for t in targets]
    theirs = [torch.zeros_like(t, requires_grad=True) for t in targets]
    opt_ours = Adam(ours, lrs)
    opt_theirs = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(theirs, lrs)])
    for step in range(60):
        for params, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            used = params if step % 7 else params[:1]
            sum((((p - t) * (1 + t.abs())) ** 2).sum() for p, t in zip(used, targets)).backward()
            opt.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    assert float((ours[0].detach() - targets[0]).abs().max()) < float(targets[0].abs().max())
    with pytest.raises(ValueError, match="one learning rate per tensor"):
        Adam(ours, lrs[:1])


def test_landmark_polygons(scene):
    lm = scene["scene"].face.landmarks
    assert face_oval_px(lm).shape == (36, 2)
    for which in ("mouth", "left_eye", "right_eye"):
        poly = landmark_polygon(lm, which)
        assert poly.shape == (16 if which != "mouth" else 20, 2)
        # A closed, simple loop: consecutive points are near each other.
        steps = np.linalg.norm(np.diff(np.vstack([poly, poly[:1]]), axis=0), axis=1)
        assert steps.max() < 0.5 * np.ptp(poly, axis=0).max()


def test_solve_light_known_answer():
    """Noise-free Lambertian pixels under a known light: the light comes back exactly (no colour ridge
    bias, since the light is gray-shaped and the albedo carries the colour)."""
    rng = np.random.default_rng(1)
    n = rng.normal(size=(4000, 3))
    n[:, 2] = np.abs(n[:, 2])  # the half-sphere a face shows
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    light = np.zeros((9, 3))
    light[:, :] = np.array([1.5, 0.6, 0.9, -0.3, 0.1, 0.05, -0.2, 0.1, 0.05])[:, None]
    albedo = np.broadcast_to([0.5, 0.3, 0.2], (4000, 3)).astype(np.float32)
    ratio = np.ones((4000, 3), np.float32)
    design = _sh_design(n)
    I = albedo * (design @ light)
    weights = np.ones(4000)
    got, exponent, rgb = _solve_light(I, albedo, ratio, design, weights, {}, weights)
    pred = albedo * (design @ got)
    np.testing.assert_allclose(pred, I, atol=2e-3)
    assert exponent == 0.0 and not rgb.any()
    # With a sheen of known strength, exponent and (warm) colour: all come back, and the light with them.
    from facetwin.texture.delight import sheen_lobe

    view = np.broadcast_to([0.0, 0.0, 1.0], (4000, 3))
    lobes = {p: sheen_lobe(n, view, np.array([0.6, 0.3, 0.74]), p) for p in (8.0, 16.0)}
    colour = sheen_colours()[-2]
    shiny = I + 0.07 * lobes[16.0][:, None] * colour[None, :]
    got, exponent, rgb = _solve_light(shiny, albedo, ratio, design, weights, lobes, weights)
    assert exponent == 16.0
    np.testing.assert_allclose(rgb, 0.07 * colour, rtol=0.02)
    np.testing.assert_allclose(albedo * (design @ got), I, atol=2e-3)
    # The residual from the normal equations' products is the one summed over the pixels.
    columns = _light_columns(albedo, ratio, design)
    judge = rng.uniform(0.0, 2.0, 4000)
    channels = _channels(shiny, columns, judge, lobes[8.0])
    x = rng.normal(size=37)
    pred = np.stack([columns[c] @ (x[:9] + x[9 + 9 * c : 18 + 9 * c]) for c in range(3)], axis=1)
    pred += x[36] * lobes[8.0][:, None] * colour[None, :]
    direct = float((judge[:, None] * (shiny - pred) ** 2).sum())
    assert _residual(x, channels, colour) == pytest.approx(direct, rel=1e-9)


def _peak(sheen) -> float:
    """Mean radiance of a sheen where the normal is the half vector and faces the light."""
    return float(sheen.rgb.mean()) * (sheen.exponent + 8.0) / (8.0 * math.pi)


def test_finds_the_sheen_and_its_key(model, points, scene):
    """Oily skin under a warm key (:func:`appearance_scenes.key_sheen`): the lobe's direction, strength and
    colour come back, and with it the light explains the pixels as well as for matte skin. The matte scene
    of the other tests gets no sheen."""
    sc = scene["scene"]
    truth = S.key_sheen("warm_key_blue_fill")
    shiny = S.make_scene(
        model,
        points,
        sc.tiles,
        S.lights()["warm_key_blue_fill"],
        sc.vertices,
        sc.camera,
        scene["visibility"],
        sheen=truth,
    )
    fit = fit_face(model, points, shiny.photo, shiny.face)
    got = refine_photometric(model, srgb_to_linear(shiny.photo.image_srgb), shiny.face.landmarks, fit, points)
    assert got.sheen is not None
    angle = math.degrees(math.acos(float(np.clip(got.sheen.direction @ truth.direction, -1.0, 1.0))))
    assert angle < 8.0, angle
    # The lobe's peak radiance (exponent and strength trade off a little), and the key's warm colour.
    print(f"\nsheen: {angle:.1f} deg off, peak {_peak(got.sheen):.4f} (true {_peak(truth):.4f}), {got.sheen}")
    assert _peak(got.sheen) == pytest.approx(_peak(truth), rel=0.25), (got.sheen, truth)
    assert got.sheen.rgb[0] > got.sheen.rgb[2]
    assert got.metrics["psnr_db"] > 35.0, got.metrics


def test_rodrigues_matches_scipy_and_gradcheck():
    from scipy.spatial.transform import Rotation

    w = np.array([0.3, -0.2, 0.5])
    np.testing.assert_allclose(
        _rodrigues(torch.tensor(w)).numpy(), Rotation.from_rotvec(w).as_matrix(), atol=1e-12
    )
    np.testing.assert_allclose(_rodrigues(torch.zeros(3, dtype=torch.float64)).numpy(), np.eye(3))
    for x in (
        torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64),
        torch.tensor([1e-6, 0.0, 2e-6], dtype=torch.float64),
    ):
        assert torch.autograd.gradcheck(_rodrigues, (x.requires_grad_(),))


def test_psnr_ssim_known_answers():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(32, 32, 3))
    m = np.ones((32, 32), bool)
    assert psnr_masked(a, a, m) == math.inf
    assert ssim_masked(a, a, m) == pytest.approx(1.0)
    b = np.clip(a + 0.1, 0, 1)
    mse = np.mean((a - b) ** 2)
    assert psnr_masked(a, b, m) == pytest.approx(10 * math.log10(1 / mse))
    assert math.isnan(psnr_masked(a, b, np.zeros_like(m)))


def test_work_view_maps_points():
    """A photo point lands at (p - origin) * scale in the crop, and K follows."""
    img = np.zeros((200, 300, 3), np.float32)
    img[100, 150] = 1.0  # pixel centre (150.5, 100.5)
    K = np.array([[500.0, 0, 150], [0, 500.0, 100], [0, 0, 1]])
    view = work_view(img, np.array([120.0, 70.0, 180.0, 130.0]), K, work_px=90)
    q = (np.array([150.5, 100.5]) - view.origin_px) * view.scale
    i, j = np.unravel_index(np.argmax(view.image_linear[..., 0]), view.image_linear.shape[:2])
    assert abs(j + 0.5 - q[0]) < 1.0 and abs(i + 0.5 - q[1]) < 1.0
    np.testing.assert_allclose(view.K[:2, 2], (K[:2, 2] - view.origin_px) * view.scale)
