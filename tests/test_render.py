"""Renderer stages: rasteriser vs its reference and analytic scenes, differentiable barycentrics and
interpolation, normals, SH irradiance, previews.

Set ``FACETWIN_DEBUG_RENDERS=<folder>`` to write the preview images the tests make, to look at them.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facetwin.camera import intrinsics, project_points
from facetwin.frames import linear_to_srgb
from facetwin.render import (
    NEAR_PLANE_CM,
    barycentrics_torch,
    interpolate,
    rasterize,
    rasterize_reference,
    render_overlay,
    render_shaded,
    sh_basis,
    sh_irradiance,
    vertex_normals,
)
from facetwin.render.preview import AMBIENT, DOT_SRGB, MESH_ALBEDO_LINEAR

# Frontal camera of the brief: head frame -> OpenCV camera, the face looking into the lens from 60 cm.
R_FRONT = np.diag([1.0, -1.0, -1.0])
T_FRONT = np.array([0.0, 0.0, 60.0])
BARY_TOL = 1e-5  # float32 buffers of values of order 1
DEPTH_RTOL = 1e-6  # float32 depth, relative


def _debug_write(name: str, image: np.ndarray) -> None:
    folder = os.environ.get("FACETWIN_DEBUG_RENDERS")
    if folder:
        from PIL import Image

        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(Path(folder) / name)


def _random_scene(seed: int, n_tris: int = 12, height: int = 24, width: int = 32):
    """Random triangles in front of a camera with skew, partly off-image, some crossing in depth."""
    rng = np.random.default_rng(seed)
    K = np.array([[30.0, 2.0, width / 2 + 0.3], [0.5, 28.0, height / 2 - 0.2], [0.0, 0.0, 1.0]])
    centres = np.column_stack(
        [rng.uniform(-6, 6, n_tris), rng.uniform(-5, 5, n_tris), rng.uniform(8, 20, n_tris)]
    )
    verts = (centres[:, None, :] + rng.normal(scale=[3.0, 3.0, 2.0], size=(n_tris, 3, 3))).reshape(-1, 3)
    faces = np.arange(3 * n_tris).reshape(-1, 3)
    return verts, faces, K, height, width


def _square(z: float = 10.0, half: float = 1.0):
    """Square facing the camera: corners counter-clockwise as the camera sees them (normal -z)."""
    verts = np.array([[-half, -half, z], [-half, half, z], [half, half, z], [half, -half, z]])
    return verts, np.array([[0, 1, 2], [0, 2, 3]])


def _icosphere(subdivisions: int = 3):
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return np.asarray(sphere.vertices), np.asarray(sphere.faces)


def _head_cam(model) -> np.ndarray:
    return model.neutral.astype(np.float64) @ R_FRONT.T + T_FRONT


# --- rasterize ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cull", [False, True])
def test_rasterize_matches_reference(seed, cull):
    verts, faces, K, h, w = _random_scene(seed)
    fast = rasterize(verts, faces, K, h, w, cull_backfaces=cull)
    ref = rasterize_reference(verts, faces, K, h, w, cull_backfaces=cull)
    assert fast.tri_id.shape == (h, w) and fast.tri_id.dtype == np.int32
    assert fast.bary.shape == (h, w, 3) and fast.bary.dtype == np.float32
    assert fast.depth.shape == (h, w) and fast.depth.dtype == np.float32
    assert fast.covered.sum() > 50  # the scene is not trivially empty
    np.testing.assert_array_equal(fast.tri_id, ref.tri_id)
    np.testing.assert_allclose(fast.bary, ref.bary, atol=BARY_TOL)
    np.testing.assert_allclose(fast.depth, ref.depth, rtol=DEPTH_RTOL)
    assert np.all(np.isinf(fast.depth[~fast.covered])) and np.all(fast.bary[~fast.covered] == 0)


@pytest.mark.parametrize("raster_fn", [rasterize, rasterize_reference])
def test_square_covers_expected_pixels(raster_fn):
    # K maps x = +-1 at z = 10 to u = 16 +- 10.3: pixel centres j + 0.5 in [5.7, 26.3] are j = 6..25.
    K = np.array([[103.0, 0.0, 16.0], [0.0, 103.0, 12.0], [0.0, 0.0, 1.0]])
    verts, faces = _square()
    r = raster_fn(verts, faces, K, 24, 32)
    expected = np.zeros((24, 32), dtype=bool)
    expected[2:22, 6:26] = True  # rows: v = 12 +- 10.3 -> i + 0.5 in [1.7, 22.3]
    np.testing.assert_array_equal(r.covered, expected)
    np.testing.assert_allclose(r.depth[expected], 10.0, rtol=DEPTH_RTOL)


@pytest.mark.parametrize("raster_fn", [rasterize, rasterize_reference])
def test_square_edges_on_pixel_centres_are_covered(raster_fn):
    # Corners on pixel centres (u, v in {4.5, 12.5}) and the shared diagonal through pixel centres: the
    # boundary is inclusive and the diagonal leaves no crack.
    K = np.array([[4.0, 0.0, 8.5], [0.0, 4.0, 8.5], [0.0, 0.0, 1.0]])
    verts, faces = _square(z=10.0, half=10.0)
    r = raster_fn(verts, faces, K, 16, 16)
    expected = np.zeros((16, 16), dtype=bool)
    expected[4:13, 4:13] = True
    np.testing.assert_array_equal(r.covered, expected)


def test_plane_depth_and_barycentrics():
    # A large tilted plane z = 20 + 0.3 x - 0.2 y covering the image: each pixel's depth and the point its
    # barycentrics reconstruct lie where the pixel's ray meets the plane.
    h, w = 20, 30
    K = intrinsics(25.0, w, h)
    xy = np.array([[-30.0, -30.0], [30.0, -30.0], [30.0, 30.0], [-30.0, 30.0]])
    verts = np.column_stack([xy, 20.0 + 0.3 * xy[:, 0] - 0.2 * xy[:, 1]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    r = rasterize(verts, faces, K, h, w)
    assert r.covered.all()
    rows, cols = np.mgrid[0:h, 0:w]
    rays = np.stack([cols + 0.5, rows + 0.5, np.ones((h, w))], axis=-1) @ np.linalg.inv(K).T  # z = 1
    t = 20.0 / (1.0 - 0.3 * rays[..., 0] + 0.2 * rays[..., 1])
    np.testing.assert_allclose(r.depth, t, rtol=DEPTH_RTOL)
    points = np.einsum("hwk,hwkc->hwc", r.bary.astype(np.float64), verts[faces[r.tri_id]])
    np.testing.assert_allclose(points, rays * t[..., None], atol=1e-4)


def test_point_on_axis():
    # The principal point is the centre of pixel (8, 8): a triangle with a corner on the optical axis
    # covers it with all weight on that corner, at that corner's depth.
    K = np.array([[50.0, 0.0, 8.5], [0.0, 50.0, 8.5], [0.0, 0.0, 1.0]])
    verts = np.array([[0.0, 0.0, 7.0], [1.0, 0.0, 9.0], [0.0, 1.0, 8.0]])
    for fn in (rasterize, rasterize_reference):
        r = fn(verts, np.array([[0, 1, 2]]), K, 16, 16)
        assert r.tri_id[8, 8] == 0
        np.testing.assert_allclose(r.bary[8, 8], [1.0, 0.0, 0.0], atol=BARY_TOL)
        assert r.depth[8, 8] == pytest.approx(7.0, rel=DEPTH_RTOL)
        assert r.tri_id[7, 8] == -1 and r.tri_id[8, 7] == -1  # the triangle spans +x, +y only


def test_nearest_triangle_wins_in_any_order():
    K = intrinsics(20.0, 16, 16)
    near, faces = _square(z=10.0)
    far, _ = _square(z=20.0, half=2.0)
    verts = np.vstack([far, near])
    for order in (np.vstack([faces, faces + 4]), np.vstack([faces + 4, faces])):
        r = rasterize(verts, order, K, 16, 16)
        np.testing.assert_allclose(r.depth[8, 8], 10.0, rtol=DEPTH_RTOL)
        assert np.all(order[r.tri_id[8, 8]] >= 4)


def test_near_plane_and_backface_culling():
    K = intrinsics(20.0, 16, 16)
    # Corners counter-clockwise seen from the camera (normal towards it, -z): front-facing.
    front = np.array([[-1.0, -1.0, 5.0], [-1.0, 1.0, 5.0], [1.0, -1.0, 5.0]])
    tri = np.array([[0, 1, 2]])
    assert rasterize(front, tri, K, 16, 16, cull_backfaces=True).covered.any()
    assert not rasterize(front, tri[:, ::-1], K, 16, 16, cull_backfaces=True).covered.any()
    assert rasterize(front, tri[:, ::-1], K, 16, 16).covered.any()
    touching = front.copy()
    touching[0, 2] = NEAR_PLANE_CM
    assert not rasterize(touching, tri, K, 16, 16).covered.any()
    behind = front * [1.0, 1.0, -1.0]
    assert not rasterize(behind, tri, K, 16, 16).covered.any()


@pytest.mark.parametrize(
    ("verts", "faces", "K", "hw", "match"),
    [
        (np.zeros((3, 2)), [[0, 1, 2]], np.eye(3), (4, 4), "verts_cam"),
        (np.full((3, 3), np.nan), [[0, 1, 2]], np.eye(3), (4, 4), "NaN"),
        (np.ones((3, 3)), [[0, 1, 3]], np.eye(3), (4, 4), "faces"),
        (np.ones((3, 3)), [[0.0, 1.0, 2.0]], np.eye(3), (4, 4), "faces"),
        (np.ones((3, 3)), [[0, 1, 2]], np.ones((3, 3)), (4, 4), "K"),
        (np.ones((3, 3)), [[0, 1, 2]], np.eye(3), (0, 4), "height"),
    ],
)
def test_rasterize_bad_inputs(verts, faces, K, hw, match):
    for fn in (rasterize, rasterize_reference):
        with pytest.raises(ValueError, match=match):
            fn(verts, np.asarray(faces), K, *hw)


def test_head_raster_and_speed(model):
    verts = _head_cam(model)
    K = intrinsics(1000.0, 512, 512)
    rasterize(verts, model.faces, K, 512, 512)  # JIT (from cache) and warm-up
    t0 = time.perf_counter()
    r = rasterize(verts, model.faces, K, 512, 512)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5  # ~0.02 s measured; generous for a loaded 2-core machine
    # The nose tip (landmark 30 of the 68) is visible: its pixel shows it, at its own depth.
    nose = verts[model.landmark68[30]]
    u, v = project_points(nose[None], K)[0]
    assert r.depth[int(v), int(u)] == pytest.approx(nose[2], abs=0.2)
    # Outward counter-clockwise winding: culling back faces changes no covered pixel.
    np.testing.assert_array_equal(
        rasterize(verts, model.faces, K, 512, 512, cull_backfaces=True).covered, r.covered
    )


# --- differentiable stage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_barycentrics_torch_matches_raster(seed):
    verts, faces, K, h, w = _random_scene(seed)
    r = rasterize(verts, faces, K, h, w)
    b = barycentrics_torch(torch.from_numpy(verts), faces, K, r)
    assert b.shape == (r.covered.sum(), 3) and b.dtype == torch.float64
    np.testing.assert_allclose(b.numpy(), r.bary[r.covered], atol=1e-4)


def test_barycentrics_torch_on_head(model):
    verts = _head_cam(model)
    K = intrinsics(300.0, 96, 96)
    r = rasterize(verts, model.faces, K, 96, 96)
    b = barycentrics_torch(torch.from_numpy(verts), model.faces, K, r)
    np.testing.assert_allclose(b.numpy(), r.bary[r.covered], atol=1e-4)


def test_barycentrics_torch_gradcheck():
    K = intrinsics(10.0, 8, 8)
    verts = np.array([[-1.0, -1.2, 4.0], [1.3, -0.8, 5.0], [0.1, 1.4, 4.5], [1.5, 1.5, 6.0]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    r = rasterize(verts, faces, K, 8, 8)
    assert r.covered.sum() >= 10
    v = torch.tensor(verts, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: barycentrics_torch(x, faces, K, r), (v,))


def test_interpolate_positions_reproject_to_pixel_centres():
    verts, faces, K, h, w = _random_scene(0)
    r = rasterize(verts, faces, K, h, w)
    b = barycentrics_torch(torch.from_numpy(verts), faces, K, r)
    points = interpolate(torch.from_numpy(verts), faces, r.tri_id[r.covered], b)
    rows, cols = np.nonzero(r.covered)
    np.testing.assert_allclose(
        project_points(points.numpy(), K), np.column_stack([cols, rows]) + 0.5, atol=1e-9
    )


def test_interpolate_gradcheck_and_bad_inputs():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    attr = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    tri = torch.tensor([0, 1, 1])
    bary = torch.tensor(
        [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]], dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(lambda a, b: interpolate(a, faces, tri, b), (attr, bary))
    out = interpolate(attr, faces, tri, bary)
    torch.testing.assert_close(out[1], attr[2])
    with pytest.raises(ValueError, match="attr"):
        interpolate(torch.zeros(4), faces, tri, bary)
    with pytest.raises(ValueError, match="tri_ids"):
        interpolate(attr, faces, torch.tensor([0, 1, 2]), bary)
    with pytest.raises(ValueError, match="bary"):
        interpolate(attr, faces, tri, bary[:, :2])


# --- normals -----------------------------------------------------------------------------------------------


def test_vertex_normals_of_sphere_are_positions():
    # On an icosphere the area-weighted normals converge to the radial direction at O(edge length):
    # 0.011 at 3 subdivisions, halving with each further one.
    errors = []
    for subdivisions in (3, 4):
        verts, faces = _icosphere(subdivisions)
        n = vertex_normals(verts, faces)
        assert isinstance(n, np.ndarray) and n.shape == verts.shape and n.dtype == np.float64
        errors.append(np.abs(n - verts / np.linalg.norm(verts, axis=1, keepdims=True)).max())
    assert errors[0] < 0.015 and errors[1] < 0.6 * errors[0]
    nt = vertex_normals(torch.from_numpy(verts).float(), torch.from_numpy(faces))
    assert isinstance(nt, torch.Tensor) and nt.dtype == torch.float32
    np.testing.assert_allclose(nt.numpy(), n, atol=1e-5)


def test_vertex_normals_area_weighted_and_isolated():
    # Vertex 0 is in a large triangle with normal +z and a small one with normal +x: area weighting makes
    # the large one dominate in proportion. Vertex 5 is in no triangle.
    verts = np.array(
        [[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [9.0, 9.0, 9.0]]
    )
    faces = np.array([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(verts, faces)
    expected = np.array([1.0, 0.0, 16.0]) / math.hypot(1.0, 16.0)  # twice the areas: 16 and 1
    np.testing.assert_allclose(n[0], expected, atol=1e-12)
    np.testing.assert_allclose(n[1], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(n[5], 0.0)
    with pytest.raises(ValueError, match="faces"):
        vertex_normals(verts, np.array([[0, 1, 6]]))


def test_vertex_normals_gradcheck():
    verts, faces = _icosphere()
    sub = faces[:6]
    ids, inverse = np.unique(sub, return_inverse=True)
    v = torch.tensor(verts[ids], requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, inverse.reshape(-1, 3)), (v,))


# --- spherical harmonics -----------------------------------------------------------------------------------


def _fibonacci_sphere(n: int) -> torch.Tensor:
    """(n, 3) float64 near-uniform unit directions."""
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = math.pi * (1.0 + math.sqrt(5.0)) * k
    r = torch.sqrt(1.0 - z * z)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=1)


def test_sh_basis_is_orthonormal():
    dirs = _fibonacci_sphere(20000)
    y = sh_basis(dirs)
    assert y.shape == (20000, 9)
    gram = 4.0 * math.pi * (y.T @ y) / dirs.shape[0]
    torch.testing.assert_close(gram, torch.eye(9, dtype=torch.float64), atol=1e-3, rtol=0)


def test_sh_basis_known_values():
    # Y_00 = 1 / (2 sqrt(pi)); on +z: Y_10 = sqrt(3 / (4 pi)), Y_20 = sqrt(5 / (16 pi)) * 2, the rest 0.
    y = sh_basis(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    expected = torch.zeros(9, dtype=torch.float64)
    expected[0] = 0.5 / math.sqrt(math.pi)
    expected[2] = math.sqrt(3.0 / (4.0 * math.pi))
    expected[6] = 2.0 * math.sqrt(5.0 / (16.0 * math.pi))
    torch.testing.assert_close(y, expected)
    with pytest.raises(ValueError, match="normals"):
        sh_basis(torch.zeros(4, 2))


def test_sh_irradiance_constant_light():
    # Only L_00 = c per channel: E = pi * L_00 * Y_00 = c sqrt(pi) / 2 for every normal. (A uniform
    # radiance L has L_00 = 2 sqrt(pi) L, so E = pi L: the irradiance of a uniform sky.)
    light = torch.zeros(9, 3, dtype=torch.float64)
    light[0] = torch.tensor([1.0, 0.5, 2.0])
    e = sh_irradiance(_fibonacci_sphere(100), light)
    expected = light[0] * math.sqrt(math.pi) / 2.0
    torch.testing.assert_close(e, expected.expand(100, 3))
    uniform = torch.zeros(9, 3, dtype=torch.float64)
    uniform[0] = 2.0 * math.sqrt(math.pi)
    torch.testing.assert_close(
        sh_irradiance(_fibonacci_sphere(10), uniform), torch.full((10, 3), math.pi, dtype=torch.float64)
    )


def test_sh_irradiance_directional_light_on_sphere():
    # A unit directional light from d projects to L_lm = Y_lm(d); the exact irradiance is max(0, n . d).
    # Its 2nd-order SH approximation is E9(t) = 1/4 + t/2 + 5/32 (3 t^2 - 1) for t = n . d (Ramamoorthi &
    # Hanrahan 2001), whose largest error is 3/32 at the terminator t = 0.
    d = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    d = d / d.norm()
    light = sh_basis(d)[:, None].expand(9, 3)
    normals = _fibonacci_sphere(5000)
    e = sh_irradiance(normals, light)
    t = normals @ d
    torch.testing.assert_close(e[:, 1], 0.25 + t / 2 + 5.0 / 32.0 * (3 * t * t - 1))
    err = (e[:, 0] - t.clamp_min(0.0)).abs()
    assert err.max() <= 3.0 / 32.0 + 1e-9
    assert err.max() > 0.09  # the bound is tight: the sphere reaches the terminator
    assert err.mean() < 0.05


def test_sh_irradiance_gradcheck_and_bad_input():
    n = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64), dim=1).requires_grad_()
    light = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sh_irradiance, (n, light))
    with pytest.raises(ValueError, match="sh_light"):
        sh_irradiance(n, torch.zeros(9))


# --- previews ----------------------------------------------------------------------------------------------


def test_render_shaded_square_known_values():
    # A square facing a camera on its axis. Its corners (+-2, +-2, 10) see the head light at cos = 10 /
    # sqrt(108), so the Gouraud-shaded square is uniformly albedo * (AMBIENT + (1 - AMBIENT) cos).
    K = np.array([[40.0, 0.0, 16.5], [0.0, 40.0, 16.5], [0.0, 0.0, 1.0]])
    verts, faces = _square(z=10.0, half=2.0)
    img = render_shaded(verts, faces, K, 33, 33, background_srgb=(0.0, 0.25, 1.0))
    assert img.shape == (33, 33, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[0, 0], [0, 64, 255])
    light = AMBIENT + (1.0 - AMBIENT) * 10.0 / math.sqrt(108.0)
    grey = np.round(linear_to_srgb(MESH_ALBEDO_LINEAR * light) * 255)
    np.testing.assert_array_equal(img[9:25, 9:25], np.full((16, 16, 3), grey))
    # Turned away from the camera, only the ambient light is left.
    back = render_shaded(verts, faces[:, ::-1], K, 33, 33)
    np.testing.assert_array_equal(
        back[16, 16], [np.round(linear_to_srgb(MESH_ALBEDO_LINEAR * AMBIENT) * 255)] * 3
    )
    red = np.tile([1.0, 0.0, 0.0], (4, 1))
    img_red = render_shaded(verts, faces, K, 33, 33, vertex_albedo_linear=red)
    np.testing.assert_array_equal(img_red[16, 16], [np.round(linear_to_srgb(light) * 255), 0, 0])
    with pytest.raises(ValueError, match="vertex_albedo_linear"):
        render_shaded(verts, faces, K, 33, 33, vertex_albedo_linear=red[:3])


def test_render_overlay_blend_mask_and_dots():
    K = intrinsics(40.0, 32, 32)
    verts, faces = _square(z=10.0, half=2.0)
    photo = np.full((32, 32, 3), 0.5)
    photo[:, :, 2] = 0.9
    untouched = np.round(photo * 255).astype(np.uint8)
    see_through = render_overlay(photo, verts, faces, K, alpha=0.0)
    assert np.abs(see_through.astype(int) - untouched).max() <= 1  # sRGB -> linear -> sRGB rounding
    hidden = render_overlay(photo, verts, faces, K, face_mask=np.zeros(2, dtype=bool), alpha=1.0)
    np.testing.assert_array_equal(hidden, untouched)
    half = render_overlay(photo, verts, faces, K, face_mask=np.array([True, False]), alpha=1.0)
    drawn = np.any(half != untouched, axis=-1)
    assert drawn[20, 10] and not drawn[10, 20]  # lower-left triangle (0, 1, 2) only
    opaque = render_overlay(photo, verts, faces, K, alpha=1.0)
    assert np.all(opaque[16, 16] == opaque[16, 16, 0])  # grey mesh over the blue-ish photo
    dots = render_overlay(photo, verts, faces, K, points_px=np.array([[3.5, 28.5]]))
    np.testing.assert_array_equal(dots[28, 3], np.round(np.asarray(DOT_SRGB) * 255))
    with pytest.raises(ValueError, match="image_srgb"):
        render_overlay(untouched, verts, faces, K)
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(photo, verts, faces, K, alpha=1.5)
    with pytest.raises(ValueError, match="face_mask"):
        render_overlay(photo, verts, faces, K, face_mask=np.ones(3, dtype=bool))


def test_head_previews(model):
    verts = _head_cam(model)
    K = intrinsics(250.0, 128, 128)
    shaded = render_shaded(verts, model.faces, K, 128, 128)
    covered = np.any(shaded != shaded[0, 0], axis=-1)
    # Frontal and upright: left-right symmetric silhouette; the head top is near the top of the image and
    # the neck cut at the bottom.
    assert (covered & covered[:, ::-1]).sum() / (covered | covered[:, ::-1]).sum() > 0.95
    rows = np.flatnonzero(covered.any(axis=1))
    assert rows[0] < 15 and rows[-1] == 127
    skin = model.material_faces(("M_Face", "M_BackHead"))
    points = project_points(verts[model.landmark68], K)
    overlay = render_overlay(np.zeros((128, 128, 3)), verts, model.faces, K, face_mask=skin, points_px=points)
    _debug_write("head_shaded.png", shaded)
    _debug_write("head_overlay.png", overlay)


def test_drawn_box_known_answer():
    """The pixel box of a triangle 100 cm ahead, f = 100 px: its corners at (20, 30) and (60, 50) px from the
    principal point, plus the 2 px margin, clipped to the image; nothing in front gives an empty box."""
    from facetwin.render.preview import drawn_box

    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    verts = np.array([[20.0, 30.0, 100.0], [60.0, 30.0, 100.0], [20.0, 50.0, 100.0], [0.0, 0.0, -5.0]])
    assert drawn_box(verts, np.array([[0, 1, 2]]), K, 200, 200) == (68, 68, 112, 92)
    assert drawn_box(verts, np.array([[0, 1, 2]]), K, 100, 80) == (68, 68, 100, 80)
    assert drawn_box(verts, np.array([[3, 3, 3]]), K, 200, 200)[2] == 0
