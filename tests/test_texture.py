"""UV rasterisation, the left-right mirror map and texture completion on the ICT FaceKit tiles.

Set ``FACETWIN_TEST_IMAGES=/some/dir`` to write the completion test images there as PNGs.
"""

from __future__ import annotations

import numpy as np
import pytest

from debug_images import save_debug_row
from facetwin.texture.complete import (
    MIRROR_LEVEL_UV,
    NEIGHBOUR_PAIRS,
    add_skin_detail,
    all_channels,
    channel_mean,
    channel_sum,
    complete_texture,
    detail_scales,
    drop_islands,
    mask_box,
    pad_texture,
    scale_detail,
    skin_detail_spread,
    synthesize_detail,
)
from facetwin.texture.uvmap import (
    mirror_texels,
    texel_positions,
    tile_cm_per_uv,
    tile_triangles,
    uv_raster,
    uv_raster_reference,
)

SIZE = 256
"""Tile size for most tests: a texel is about 1 mm on the face."""


def _texel_of_vertex(model, vertex: int, size: int) -> np.ndarray:
    """Continuous texel (x, y) of a vertex in the face tile."""
    face = model.material_faces(("M_Face",))
    f, k = np.nonzero((model.faces == vertex) & face[:, None])
    u, v = model.uvs[model.face_uv_ids[f[0], k[0]]]
    return np.array([u * size, (1.0 - v) * size])


# --- uv_raster ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tile", [0, 1])
@pytest.mark.parametrize("size", [40, 61])
def test_uv_raster_matches_reference(model, tile, size):
    fast = uv_raster(model, tile, size)
    slow = uv_raster_reference(model, tile, size)
    np.testing.assert_array_equal(fast.tri_id, slow.tri_id)
    np.testing.assert_allclose(fast.bary, slow.bary, atol=1e-6)
    assert fast.size == size and fast.tile == tile


@pytest.mark.parametrize("tile", [0, 1])
def test_uv_raster_texel_centres(model, tile):
    """Barycentrics reproduce each texel centre: u = tile + (j + 0.5) / S, v = 1 - (i + 0.5) / S."""
    uvr = uv_raster(model, tile, SIZE)
    i, j = np.nonzero(uvr.valid)
    corners = model.uvs[model.face_uv_ids[uvr.tri_id[i, j]]].astype(np.float64)  # (N, 3, 2)
    uv = np.einsum("nk,nkd->nd", uvr.bary[i, j].astype(np.float64), corners)
    np.testing.assert_allclose(uv[:, 0], tile + (j + 0.5) / SIZE, atol=1e-5)
    np.testing.assert_allclose(uv[:, 1], 1.0 - (i + 0.5) / SIZE, atol=1e-5)
    assert np.all(uvr.bary[i, j] >= 0.0)
    np.testing.assert_allclose(uvr.bary[i, j].sum(axis=1), 1.0, atol=1e-5)
    assert np.all(uvr.bary[~uvr.valid] == 0.0)


def test_uv_raster_tiles_hold_skin_only(model):
    face = uv_raster(model, 0, SIZE)
    back = uv_raster(model, 1, SIZE)
    names = np.array(model.material_names)
    assert set(names[model.face_material[face.tri_id[face.valid]]]) == {"M_Face"}
    assert set(names[model.face_material[back.tri_id[back.valid]]]) == {"M_BackHead"}
    assert face.valid.mean() > 0.9, "the face island fills most of tile 0"
    assert 0.5 < back.valid.mean() < 0.9
    # The eye corner (landmark 36) lies on the face island, in the top half of the image (v > 0.5).
    x, y = _texel_of_vertex(model, model.landmark68[36], SIZE)
    assert face.valid[int(y), int(x)] and y < SIZE / 2


def test_uv_raster_is_cached_and_read_only(model):
    a = uv_raster(model, 0, 64)
    assert uv_raster(model, 0, 64) is a
    with pytest.raises(ValueError):
        a.tri_id[0, 0] = 5


def test_uv_raster_bad_arguments(model):
    with pytest.raises(ValueError, match="tile"):
        uv_raster(model, 2, 64)
    with pytest.raises(ValueError, match="size"):
        uv_raster(model, 0, 0)
    with pytest.raises(ValueError, match="tile"):
        tile_triangles(model, -1)


def test_texel_positions(model):
    uvr = uv_raster(model, 0, SIZE)
    p = texel_positions(model, model.neutral, uvr)
    assert p.shape == (SIZE, SIZE, 3) and p.dtype == np.float32
    assert np.all(np.isnan(p[~uvr.valid])) and np.all(np.isfinite(p[uvr.valid]))
    i, j = np.argwhere(uvr.valid)[1234]
    expected = uvr.bary[i, j] @ model.neutral[model.faces[uvr.tri_id[i, j]]]
    np.testing.assert_allclose(p[i, j], expected, atol=1e-5)
    # Linear in the vertices.
    np.testing.assert_allclose(
        texel_positions(model, 2.0 * model.neutral, uvr)[uvr.valid], 2.0 * p[uvr.valid], atol=1e-4
    )
    with pytest.raises(ValueError, match="vertices"):
        texel_positions(model, model.neutral[:10], uvr)


# --- mirror_texels -----------------------------------------------------------------------------------


def _nearest(field: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Values of ``field`` (S, S, ...) at the texels containing the points ``xy`` (N, 2)."""
    size = field.shape[0]
    j = np.clip(np.floor(xy[:, 0]).astype(int), 0, size - 1)
    i = np.clip(np.floor(xy[:, 1]).astype(int), 0, size - 1)
    return field[i, j]


@pytest.mark.parametrize("tile", [0, 1])
def test_mirror_applied_twice_returns(model, tile):
    uvr = uv_raster(model, tile, SIZE)
    mirror = mirror_texels(model, tile, SIZE)
    assert mirror.shape == (SIZE, SIZE, 2) and mirror.dtype == np.float32
    assert np.all(np.isnan(mirror[~uvr.valid]))
    ij = np.argwhere(uvr.valid)
    back = _nearest(mirror, mirror[uvr.valid])
    hit = np.isfinite(back[:, 0])
    assert hit.mean() > 0.999
    err = np.hypot(back[hit, 0] - (ij[hit, 1] + 0.5), back[hit, 1] - (ij[hit, 0] + 0.5))
    assert np.quantile(err, 0.99) < 1.0 and err.max() < 2.0


def test_mirror_is_the_reflected_surface_point(model):
    uvr = uv_raster(model, 0, SIZE)
    p = texel_positions(model, model.neutral, uvr)
    mirror = mirror_texels(model, 0, SIZE)
    reflected = p[uvr.valid] * np.array([-1.0, 1.0, 1.0], np.float32)
    landed = _nearest(p, mirror[uvr.valid])
    # Within a texel of the reflected point: a texel at 256 spans at most ~0.5 cm of the stretched neck.
    dist = np.linalg.norm(landed - reflected, axis=1)
    assert np.median(dist) < 0.05 and np.quantile(dist, 0.99) < 0.3


@pytest.mark.parametrize("left, right", [(36, 45), (39, 42), (48, 54), (31, 35), (17, 26)])
def test_mirror_maps_landmark_to_its_twin(model, left, right):
    """Multi-PIE pairs: eye outer/inner corners, mouth corners, nostril wings, brow ends."""
    size = 512
    mirror = mirror_texels(model, 0, size)
    a = _texel_of_vertex(model, model.landmark68[left], size)
    b = _texel_of_vertex(model, model.landmark68[right], size)
    assert abs(a[0] - b[0]) > 20, "the twins sit on opposite sides"
    # The texel holding landmark a mirrors to within a texel of landmark b (plus the texel's own extent).
    got = _nearest(mirror, a[None])[0]
    assert np.linalg.norm(got - b) < 1.5


def test_mirror_matches_dense_sampling_reference(model):
    """Slow reference: the nearest of ~1.5M surface samples to the reflected point, and that sample's UV."""
    from scipy.spatial import cKDTree

    uvr = uv_raster(model, 0, SIZE)
    mirror = mirror_texels(model, 0, SIZE)
    tris = tile_triangles(model, 0)
    levels = 12
    a, b = np.meshgrid(np.arange(levels + 1), np.arange(levels + 1), indexing="ij")
    keep = a + b <= levels
    bary = np.stack([a[keep], b[keep], levels - a[keep] - b[keep]], axis=1) / levels  # (P, 3)
    xyz = np.einsum("pk,tkd->tpd", bary, model.neutral[model.faces[tris]].astype(np.float64)).reshape(-1, 3)
    uv = np.einsum("pk,tkd->tpd", bary, model.uvs[model.face_uv_ids[tris]].astype(np.float64)).reshape(-1, 2)
    rng = np.random.default_rng(0)
    texels = np.argwhere(uvr.valid)[rng.choice(int(uvr.valid.sum()), 400, replace=False)]
    p = texel_positions(model, model.neutral, uvr)[texels[:, 0], texels[:, 1]].astype(np.float64)
    _, nearest = cKDTree(xyz).query(p * np.array([-1.0, 1.0, 1.0]))
    expected = np.stack([uv[nearest, 0] * SIZE, (1.0 - uv[nearest, 1]) * SIZE], axis=1)
    err = np.linalg.norm(mirror[texels[:, 0], texels[:, 1]] - expected, axis=1)
    # The reference's own error is half a sample spacing: up to ~0.4 texel where triangles are large.
    assert np.median(err) < 0.15 and np.quantile(err, 0.95) < 0.5 and err.max() < 1.0


def test_mirror_bad_arguments(model):
    with pytest.raises(ValueError, match="tile"):
        mirror_texels(model, 3, 64)


def test_mirror_map_is_kept_in_the_user_cache(model, tmp_path, monkeypatch):
    """Derived once, read back identical from the disk cache; a damaged cache file is derived again; an
    unwritable cache only costs time."""
    from facetwin.texture import uvmap

    size = 48
    reference = uvmap._mirror_texels(model, 0, size)
    monkeypatch.setenv("FACETWIN_CACHE", str(tmp_path))
    monkeypatch.setattr(uvmap, "_cache", type(uvmap._cache)())
    first = mirror_texels(model, 0, size)
    (cached,) = tmp_path.glob("mirror-*-t0-48.npz")
    np.testing.assert_array_equal(first, reference)
    monkeypatch.setattr(uvmap, "_cache", type(uvmap._cache)())
    monkeypatch.setattr(uvmap, "_mirror_texels", lambda *a: pytest.fail("derived again despite the cache"))
    again = mirror_texels(model, 0, size)
    np.testing.assert_array_equal(again, reference)
    assert not again.flags.writeable
    monkeypatch.undo()
    monkeypatch.setenv("FACETWIN_CACHE", str(tmp_path))
    monkeypatch.setattr(uvmap, "_cache", type(uvmap._cache)())
    cached.write_bytes(b"not an npz")
    np.testing.assert_array_equal(mirror_texels(model, 0, size), reference)
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("FACETWIN_CACHE", str(blocked / "sub"))  # cannot be created
    monkeypatch.setattr(uvmap, "_cache", type(uvmap._cache)())
    np.testing.assert_array_equal(mirror_texels(model, 0, size), reference)


# --- complete_texture --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def face_tile(model):
    uvr = uv_raster(model, 0, SIZE)
    p = np.nan_to_num(texel_positions(model, model.neutral, uvr))
    return uvr.valid, mirror_texels(model, 0, SIZE), p


def _symmetric_texture(p: np.ndarray) -> np.ndarray:
    """A smooth colour field of (|x|, y, z): the same on both sides of the face."""
    x, y, z = np.abs(p[..., 0]), p[..., 1], p[..., 2]
    return np.stack(
        [0.45 + 0.03 * np.sin(0.5 * x) + 0.01 * y, 0.3 + 0.02 * np.cos(0.4 * y) + 0.005 * x, 0.25 + 0.01 * z],
        axis=-1,
    ).astype(np.float32)


def test_half_removed_is_restored_by_the_mirror(face_tile):
    valid, mirror, p = face_tile
    truth = _symmetric_texture(p)
    confidence = (p[..., 0] < 0.0).astype(np.float32)  # the photo saw only the subject's right half
    seen = np.where(confidence[..., None] > 0, truth, np.nan)  # unseen texels are never read
    out = complete_texture(seen, confidence, mirror, valid, np.array([1.0, 0.0, 1.0]))
    err = np.abs(out.texture_linear - truth)[valid]
    save_debug_row(
        "half_removed", [seen, out.texture_linear, np.abs(out.texture_linear - truth) * 50 * valid[..., None]]
    )
    assert err.max() < 2e-3 and err.mean() < 1e-4
    assert (out.confidence[valid] >= 0.5).mean() > 0.999
    np.testing.assert_array_equal(out.texture_linear[~valid], 0.0)


def test_mirror_is_brought_to_the_own_sides_level(face_tile):
    """A hole in the subject's right cheek, with both sides seen around it, and the right side lit to 0.8 of
    the left: the hole is filled at its own side's level, not at the other's (log error 0.22 without the
    level matching)."""
    valid, mirror, p = face_tile
    truth = _symmetric_texture(p)
    level = np.where(p[..., 0] < 0.0, 0.8, 1.0).astype(np.float32)[..., None]
    hole = valid & (np.hypot(p[..., 0] + 4.0, p[..., 1] + 1.0) < 0.5)  # 1 cm across, 4 cm off the midline
    assert hole.sum() > 15
    confidence = np.where(hole, 0.0, 1.0).astype(np.float32)
    seen = np.where(hole[..., None], np.nan, truth * level)
    fallback = np.array([0.5, 0.4, 0.3])
    errors = {}
    # 0.05 of this tile is wide enough for the level to be found on blocks (3 texels), as on a 2048 tile.
    for name, level_uv in (("matched", MIRROR_LEVEL_UV), ("on blocks", 0.05), ("as it is", None)):
        out = complete_texture(seen, confidence, mirror, valid, fallback, mirror_level_uv=level_uv)
        errors[name] = float(np.abs(np.log(out.texture_linear[hole]) - np.log((truth * level)[hole])).mean())
        assert (out.confidence[hole] >= 0.5).all()
    print(f"\nmean log error in the hole: {errors}")
    assert errors["matched"] < 0.01
    assert errors["on blocks"] < 0.02
    assert errors["as it is"] > 0.2
    with pytest.raises(ValueError, match="mirror_level_uv"):
        complete_texture(seen, confidence, mirror, valid, fallback, mirror_level_uv=0.0)


def test_seen_texels_are_kept(face_tile):
    valid, mirror, p = face_tile
    texture = np.random.default_rng(1).uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32)
    confidence = np.clip(1.0 - np.abs(p[..., 1] + 2.0) / 6.0, 0.0, 1.0).astype(np.float32)
    out = complete_texture(texture, confidence, mirror, valid, np.array([0.5, 0.4, 0.3]))
    full = valid & (confidence == 1.0)
    np.testing.assert_array_equal(out.texture_linear[full], texture[full])


@pytest.mark.parametrize("solve_size, tol", [(SIZE, 1e-6), (64, 2e-4)])
def test_constant_colour_fills_a_hole_exactly(face_tile, solve_size, tol):
    """Exact on one grid (float32 rounding); the block solution plus relaxation is within 2e-4."""
    valid, mirror, p = face_tile
    colour = np.array([0.4, 0.3, 0.2], np.float32)
    texture = np.broadcast_to(colour, (SIZE, SIZE, 3))
    hole = valid & (np.hypot(p[..., 0], p[..., 1] + 1.0) < 3.0)  # nose and upper lip, both sides
    confidence = np.where(hole, 0.0, 1.0).astype(np.float32)
    far = np.array([1.0, 0.0, 1.0])
    harmonic = complete_texture(
        texture, confidence, mirror, valid, far, fallback_decay_uv=None, solve_size=solve_size
    )
    assert (harmonic.confidence[hole] < 0.5).mean() > 0.9, "the hole is unknown, bar its rim"
    assert np.abs(harmonic.texture_linear[valid] - colour).max() < tol
    same = complete_texture(texture, confidence, mirror, valid, colour, solve_size=solve_size)
    assert np.abs(same.texture_linear[valid] - colour).max() < 1e-6


def _boundary_jumps(out: np.ndarray, known: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """|F_u - F_k| over the 4-neighbour edges between unknown and known texels."""
    jumps = []
    for a, b in NEIGHBOUR_PAIRS:
        edge = (known[a] & unknown[b]) | (unknown[a] & known[b])
        jumps.append(np.abs(out[a] - out[b])[edge].max(axis=-1))
    return np.concatenate(jumps)


def _edge_steps(texture: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|T_i - T_j| over all 4-neighbour edges of valid texels: the texture's own texel-to-texel change."""
    steps = []
    for a, b in NEIGHBOUR_PAIRS:
        steps.append(np.abs(texture[a] - texture[b])[valid[a] & valid[b]].max(axis=-1))
    return np.concatenate(steps)


@pytest.mark.parametrize("solve_size", [SIZE, 64])
def test_fill_has_no_seam(face_tile, solve_size):
    valid, mirror, p = face_tile
    # A smooth texture, a hole on the midline that neither side saw, and a fallback colour far from the
    # texture: a fill that ignored its surroundings would jump by ~0.6 at the hole's edge.
    x, y, z = np.abs(p[..., 0]), p[..., 1], p[..., 2]
    texture = np.stack([0.5 + 0.02 * x, 0.35 + 0.01 * y, 0.25 + 0.01 * z], axis=-1).astype(np.float32)
    hole = valid & (np.hypot(p[..., 0], p[..., 1] + 1.0) < 3.0)
    confidence = np.where(hole, 0.0, 1.0).astype(np.float32)
    far = np.array([1.0, 0.0, 1.0])
    steps = np.quantile(_edge_steps(texture, valid), 0.99)  # the texture's own change from texel to texel
    out = complete_texture(
        texture, confidence, mirror, valid, far, fallback_decay_uv=None, solve_size=solve_size
    )
    unknown = out.confidence < 0.5
    jumps = _boundary_jumps(out.texture_linear, valid & ~unknown, valid & unknown)
    assert jumps.max() < 3.0 * steps, (jumps.max(), steps)
    # Harmonic, not the field itself (the nose bulges in z, |x| has a kink): close, not equal.
    assert np.abs(out.texture_linear[hole] - texture[hole]).max() < 0.06
    # With the default decay the fill turns towards the fallback, but smoothly: its slope at the edge is
    # about |fallback - texture| / (decay in texels).
    decayed = complete_texture(texture, confidence, mirror, valid, far, solve_size=solve_size)
    save_debug_row(
        f"seamless_fill_{solve_size}", [np.where(hole[..., None], far, texture), decayed.texture_linear]
    )
    jumps = _boundary_jumps(decayed.texture_linear, valid & ~unknown, valid & unknown)
    assert jumps.max() < steps + 2.0 * 0.8 / (0.1 * SIZE), jumps.max()


def test_small_islands_are_dropped_before_the_fill(face_tile):
    """A dark patch of 3 mm seen amid an unseen region (a shadowed eye's corner) leaves no dot in the fill,
    nor in its mirror; one of 10 mm stays; a hole in what was seen stays a hole."""
    valid, mirror, p = face_tile
    skin = np.array([0.5, 0.35, 0.3], np.float32)
    dark = np.array([0.05, 0.04, 0.04], np.float32)

    def disc(x, y, r):
        return valid & (np.hypot(p[..., 0] - x, p[..., 1] - y) < r)

    # Unseen: both cheeks (4 cm across) and both sides of the forehead (3 cm).
    unseen = valid & (np.hypot(np.abs(p[..., 0]) - 4.0, p[..., 1] - 1.0) < 2.0)
    unseen |= valid & (np.hypot(np.abs(p[..., 0]) - 3.0, p[..., 1] - 6.0) < 1.5)
    # A texel is about 1.2 mm here; the small patch has a 3.5 mm rim of confidence 0.3.
    small, large, rim = disc(3.0, 1.0, 0.15), disc(3.0, 6.0, 0.5), disc(3.0, 1.0, 0.35)
    rim &= ~small
    confidence = np.where(unseen, 0.0, 1.0).astype(np.float32)
    confidence[small | large] = 1.0
    confidence[rim] = 0.3
    confidence[disc(-4.0, -2.0, 0.1)] = 0.0  # a hole, no island
    n_small, n_large = int(small.sum()), int(large.sum())
    assert 3 <= n_small < 20 < n_large, (n_small, n_large)
    kept = drop_islands(confidence, 20)
    assert np.all(kept[small | rim] == 0.0)
    np.testing.assert_array_equal(kept[~(small | rim)], confidence[~(small | rim)])
    np.testing.assert_array_equal(drop_islands(confidence, 0), confidence)
    # Amid partly seen texels, the rim's confidence comes back smoothly from r (3 texels for 20) to 2 r.
    partly = np.full((41, 41), 0.3, np.float32)
    partly[20, 20] = 1.0
    faded = drop_islands(partly, 20)
    dist = np.hypot(*np.mgrid[-20:21, -20:21])
    assert np.all(faded[dist <= 2.5] == 0.0) and np.all(faded[dist >= 6.5] == 0.3)
    ring = faded[20, 20:]
    assert np.all(np.diff(ring) >= 0.0) and np.abs(np.diff(ring)).max() < 0.15, ring
    texture = np.where((small | large | rim)[..., None], dark, skin).astype(np.float32)
    out = complete_texture(texture, kept, mirror, valid, skin)
    before = complete_texture(texture, confidence, mirror, valid, skin)
    mirrored = np.zeros_like(small)
    m = np.round(mirror[small] - 0.5).astype(int)
    mirrored[m[:, 1], m[:, 0]] = True
    for where in (small, mirrored):
        assert np.abs(before.texture_linear[where] - skin).max() > 0.3, "the dot is there without the drop"
        assert np.abs(out.texture_linear[where] - skin).max() < 0.02
    np.testing.assert_array_equal(out.texture_linear[large], texture[large])
    with pytest.raises(ValueError, match="min_texels"):
        drop_islands(confidence, -1)
    with pytest.raises(ValueError, match="confidence"):
        drop_islands(confidence[0], 4)


def test_unseen_tile_is_the_fallback(model):
    uvr = uv_raster(model, 1, 128)
    mirror = mirror_texels(model, 1, 128)
    fallback = np.array([0.42, 0.3, 0.24], np.float32)
    texture = np.zeros((128, 128, 3), np.float32)
    out = complete_texture(texture, np.zeros((128, 128), np.float32), mirror, uvr.valid, fallback)
    np.testing.assert_allclose(
        out.texture_linear[uvr.valid], np.broadcast_to(fallback, (int(uvr.valid.sum()), 3)), atol=1e-6
    )
    assert np.all(out.confidence == 0.0)


def test_large_unseen_region_settles_to_fallback(face_tile):
    valid, mirror, p = face_tile
    colour = np.array([0.6, 0.45, 0.35], np.float32)
    texture = np.broadcast_to(colour, (SIZE, SIZE, 3))
    seen = p[..., 1] > 2.0  # only the forehead and eyes were seen; nothing from the nose down
    fallback = np.array([0.3, 0.2, 0.15], np.float32)
    out = complete_texture(texture, seen.astype(np.float32), mirror, valid, fallback)
    unknown = valid & (out.confidence < 0.5)
    # Continuous at the edge of what was seen (slope about |colour - fallback| / 25 texels) ...
    assert _boundary_jumps(out.texture_linear, valid & ~unknown, unknown).max() < 0.3 / 25 * 2
    # ... and the fallback tone on the neck, more than 5 decay lengths (10 cm) below.
    far = valid & (p[..., 1] < -8.0)
    assert np.abs(out.texture_linear[far] - fallback).max() < 0.01


def test_complete_bad_inputs(face_tile):
    valid, mirror, _ = face_tile
    tex = np.zeros((SIZE, SIZE, 3), np.float32)
    conf = np.ones((SIZE, SIZE), np.float32)
    fb = np.zeros(3)
    with pytest.raises(ValueError, match="texture_linear"):
        complete_texture(tex[:, :-1], conf, mirror, valid, fb)
    with pytest.raises(ValueError, match="confidence"):
        complete_texture(tex, conf * 2.0, mirror, valid, fb)
    with pytest.raises(ValueError, match="mirror"):
        complete_texture(tex, conf, mirror[:-1], valid, fb)
    with pytest.raises(ValueError, match="fallback_linear"):
        complete_texture(tex, conf, mirror, valid, np.zeros(4))
    with pytest.raises(ValueError, match="known_threshold"):
        complete_texture(tex, conf, mirror, valid, fb, known_threshold=0.0)


def test_pad_texture(face_tile):
    valid, _, _ = face_tile
    texture = np.random.default_rng(2).uniform(0, 1, (SIZE, SIZE, 3)).astype(np.float32)
    padded = pad_texture(np.where(valid[..., None], texture, 0.0), valid)
    np.testing.assert_array_equal(padded[valid], texture[valid])
    assert padded.min() >= texture[valid].min() and padded.max() <= texture[valid].max()
    with pytest.raises(ValueError, match="valid"):
        pad_texture(texture, np.zeros((SIZE, SIZE), bool))


def test_pad_texture_shades_across_a_slit():
    """A slit between a red and a blue region (the gap between the lips) shades from one to the other: next
    to each border it has that border's colour, and no step between neighbours is larger than a linear
    ramp across the slit would make four times over."""
    s, gap = 96, 16
    valid = np.ones((s, s), bool)
    valid[40 : 40 + gap, 20:76] = False
    tex = np.zeros((s, s, 3), np.float32)
    tex[: 40 + gap // 2, :, 0] = 1.0
    tex[40 + gap // 2 :, :, 2] = 1.0
    padded = pad_texture(np.where(valid[..., None], tex, 0.0), valid)
    np.testing.assert_array_equal(padded[valid], tex[valid])
    column = padded[39 : 41 + gap, 48]
    assert column[1, 0] > 0.8 and column[-2, 2] > 0.8, column
    steps = np.abs(np.diff(padded[:, 20:76], axis=0)).max()
    assert steps < 4.0 / gap, steps


def _grain(shape, sigma_px: float, amplitude: float, seed: int) -> np.ndarray:
    """Smooth Gaussian noise with a known spread: ``amplitude`` standard deviation, ``sigma_px`` grain."""
    import cv2

    white = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    n = cv2.GaussianBlur(white, (0, 0), sigma_px)
    return n * (amplitude / n.std())


def test_detail_scales_are_octaves_on_the_surface():
    e = detail_scales(40.0)  # 40 texels per cm: 6 texels at the coarsest
    np.testing.assert_allclose(e, [0.0, 0.75, 1.5, 3.0, 6.0])
    # Half the resolution: the same coarse edges in cm, the finest band dropped.
    np.testing.assert_allclose(detail_scales(20.0), [0.0, 0.75, 1.5, 3.0])
    assert detail_scales(4.0).size == 2  # one band, the texel's own
    assert detail_scales(2.0).size == 1  # texels coarser than the detail: no band
    with pytest.raises(ValueError, match="texels_per_cm"):
        detail_scales(0.0)


def test_skin_detail_spread_known_answer():
    """Gaussian grain, coarse or fine, shows in the bands that hold it, in proportion to its amplitude; the
    colour, a mole and anything outside the source do not count; too small a source gives none."""
    s = 256
    edges = detail_scales(40.0)
    base = np.array([0.5, 0.3, 0.2], np.float32)
    source = np.zeros((s, s), bool)
    source[:, :190] = True

    def spread(sigma, amplitude, mole=False):
        tex = base * np.exp(_grain((s, s), sigma, amplitude, 0))[..., None]
        if mole:
            tex[40:44, 40:44] *= 0.2
        tex[:, 200:] = [0.0, 1.0, 0.0]  # not skin, outside the source
        return skin_detail_spread(tex, source, edges)

    fine, broad = spread(0.7, 0.05), spread(3.0, 0.05)
    assert fine.shape == (edges.size - 1, 3)
    np.testing.assert_allclose(fine[:, 0], fine[:, 2], rtol=1e-3)  # gray grain, whatever the colour
    assert fine[0, 0] > 3 * broad[0, 0] and broad[-1, 0] > 2 * fine[-1, 0], (fine, broad)
    np.testing.assert_allclose(spread(0.7, 0.1), 2 * fine, rtol=0.02)  # log detail: linear in amplitude
    np.testing.assert_allclose(spread(0.7, 0.05, mole=True), fine, rtol=0.03)
    tiny = np.zeros((s, s), bool)
    tiny[:30, :30] = True  # 0.56 cm2 at 40 texels per cm
    assert skin_detail_spread(np.broadcast_to(base, (s, s, 3)), tiny, edges).shape == (0, 3)
    with pytest.raises(ValueError, match="edges"):
        skin_detail_spread(np.broadcast_to(base, (s, s, 3)), source, [0.5, 1.0])


def test_scale_detail_known_answer():
    """Round trip with the measurement: grain whose bands are all scaled by one gain measures as that gain
    times what it measured; scaled apart, each band ends between its gain and its neighbours'; a smooth
    gradient (no detail) and the texels outside the source are unchanged; gains of 1 change nothing."""
    s = 256
    edges = detail_scales(40.0)
    source = np.zeros((s, s), bool)
    source[:, :190] = True
    yy, xx = np.mgrid[:s, :s].astype(np.float32)
    smooth = np.stack([0.3 + 0.001 * xx, 0.2 + 0.0005 * yy, np.full((s, s), 0.1, np.float32)], axis=-1)
    tex = smooth * np.exp(_grain((s, s), 1.5, 0.05, 0))[..., None]
    tex[:, 200:] = [0.0, 1.0, 0.0]
    gains = np.linspace(0.3, 1.0, edges.size - 1)[:, None] * np.array([1.0, 0.5, 1.0])
    out = scale_detail(tex, source, edges, gains)
    assert out.dtype == np.float32 and out.shape == tex.shape
    np.testing.assert_array_equal(out[~source], tex[~source])
    before = skin_detail_spread(tex, source, edges)
    half = skin_detail_spread(scale_detail(tex, source, edges, np.full_like(gains, 0.5)), source, edges) / before
    np.testing.assert_allclose(half[:-1], 0.5, rtol=0.03)
    # The coarsest band overlaps what is coarser than the bands, which is kept.
    assert np.all((half[-1] > 0.5) & (half[-1] < 0.6)), half
    # Bands scaled apart overlap their neighbours: they end in the gains' order, within their range, and
    # nearer the gains than unscaled.
    ratio = skin_detail_spread(out, source, edges) / before
    assert np.all(np.diff(ratio, axis=0) > 0) and ratio.min() > gains.min() and ratio.max() <= 1.0, ratio
    assert np.abs(ratio - gains).mean() < 0.5 * np.abs(1.0 - gains).mean(), ratio
    inner = np.s_[20:-20, 20:170]  # a gradient has no detail, away from the source's edges
    np.testing.assert_allclose(scale_detail(smooth, source, edges, gains)[inner], smooth[inner], rtol=1e-3)
    np.testing.assert_allclose(scale_detail(tex, source, edges, np.ones_like(gains)), tex)
    with pytest.raises(ValueError, match="gains"):
        scale_detail(tex, source, edges, gains[:-1])


def test_synthesize_detail_keeps_the_band_spreads():
    """Round trip: the field synthesized from measured spreads measures as them (steep spectra of skin
    seen through an upsampled photo included), is the same for the same seed, tiles without a seam past
    its period, and moves the channels together."""
    for texels_per_cm, size in ((35.0, 1024), (138.0, 2048)):
        edges = detail_scales(texels_per_cm)
        target = np.geomspace(0.002, 0.012, edges.size - 1)[:, None] * np.array([1.0, 0.8, 0.6])
        field = synthesize_detail(size, target, edges, seed=3)
        assert field.shape == (size, size, 3) and field.dtype == np.float32
        got = skin_detail_spread(np.exp(field[:1024, :1024]), np.ones((1024, 1024), bool), edges)
        np.testing.assert_allclose(got, target, rtol=0.15)
        # The coarse bands, which hold most of the grain, closer still.
        np.testing.assert_allclose(got[-2:], target[-2:], rtol=0.06)
        seam = np.abs(field[1023] - field[1024]).mean() if size > 1024 else 0.0
        assert seam < 1.5 * np.abs(field[511] - field[512]).mean()
        assert np.corrcoef(field[..., 0].ravel(), field[..., 2].ravel())[0, 1] > 0.99
    edges = detail_scales(35.0)
    target = np.full((edges.size - 1, 3), 0.01)
    np.testing.assert_array_equal(
        synthesize_detail(64, target, edges, 7), synthesize_detail(64, target, edges, 7)
    )
    assert not np.array_equal(
        synthesize_detail(64, target, edges, 7), synthesize_detail(64, target, edges, 8)
    )
    with pytest.raises(ValueError, match="spread"):
        synthesize_detail(64, target[:-1], edges)


def test_synthesize_detail_has_no_rings():
    """Spreads nearly equal across the bands (a grainy old print's, capped: frederick_douglass_1879's at
    2048) give grain, not rings: the field's autocorrelation falls with distance over the first 12 texels
    instead of rising again at the rings' period (it rose by 0.18 between 4 and 6 texels before the
    spectrum's curvature was penalised); the spreads still round-trip within 15 %."""
    edges = np.array([0.0, 0.65, 1.3, 2.6, 5.19, 10.38])
    target = np.array([0.0078, 0.0158, 0.016, 0.016, 0.016])[:, None]
    field = synthesize_detail(512, target, edges)[..., 0]
    got = skin_detail_spread(np.exp(field[..., None]), np.ones((512, 512), bool), edges)
    np.testing.assert_allclose(got, target, rtol=0.15)
    f = np.fft.fft2(field - field.mean())
    acf = np.real(np.fft.ifft2(np.abs(f) ** 2))
    yy, xx = np.mgrid[0:512, 0:512]
    lag = np.round(np.hypot(np.minimum(yy, 512 - yy), np.minimum(xx, 512 - xx))).astype(int)
    profile = np.bincount(lag.ravel(), acf.ravel()) / np.bincount(lag.ravel()) / acf[0, 0]
    assert np.all(np.diff(profile[:12]) < 0.02), np.round(profile[:12], 2)


def test_add_skin_detail_only_where_filled():
    s = 32
    tex = np.full((s, s, 3), 0.4, np.float32)
    conf = np.zeros((s, s), np.float32)
    conf[:, :16] = 1.0
    conf[:, 16:20] = 0.5
    valid = np.ones((s, s), bool)
    valid[0] = False
    detail = np.full((s, s, 3), 0.1, np.float32)
    out = add_skin_detail(tex, conf, valid, detail)
    np.testing.assert_array_equal(out[:, :16], tex[:, :16])  # seen: its own detail
    np.testing.assert_allclose(out[1:, 16:20], 0.4 * np.exp(0.05), rtol=1e-6)
    np.testing.assert_allclose(out[1:, 20:], 0.4 * np.exp(0.1), rtol=1e-6)
    np.testing.assert_array_equal(out[0], tex[0])  # off the surface
    with pytest.raises(ValueError, match="disagree"):
        add_skin_detail(tex, conf, valid, detail[:-1])


def test_tile_cm_per_uv(model):
    """The face tile spans about 30 cm per UV unit, the back of the head about 42 (the texel density that
    turns the detail's size in cm into texels)."""
    assert 25.0 < tile_cm_per_uv(model, 0) < 35.0
    assert 35.0 < tile_cm_per_uv(model, 1) < 50.0


def test_smooth_matches_the_full_size_blur():
    """The wide blur done on a reduced copy (the detail's base) against cv2's blur at full size."""
    import cv2

    from facetwin.texture.complete import gaussian_blur

    x = _grain((640, 560), 4.0, 1.0, 5)
    for sigma in (3.0, 12.0, 30.0):
        ref = cv2.GaussianBlur(x, (0, 0), sigma)
        err = np.abs(gaussian_blur(x, sigma) - ref)[100:-100, 100:-100].max()  # borders: both extrapolate
        assert err < 0.03 * np.abs(ref).max(), (sigma, err, np.abs(ref).max())  # measured 1.4 % at most


def test_channel_reductions_match_numpys():
    """channel_sum, channel_mean and all_channels give numpy's own reductions over the last axis, to the bit."""
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64):
        x = rng.random((5, 7, 3)).astype(dtype) * 100.0
        np.testing.assert_array_equal(channel_sum(x), x.sum(axis=-1))
        np.testing.assert_array_equal(channel_mean(x), x.mean(axis=-1))
        np.testing.assert_array_equal(channel_mean(x, keepdims=True), x.mean(axis=-1, keepdims=True))
        assert channel_mean(x).dtype == dtype
    flat = rng.random((1, 50, 3)).astype(np.float32)
    np.testing.assert_array_equal(channel_mean(flat), flat.mean(axis=2))
    finite = np.isfinite(np.where(rng.random((6, 6, 3)) < 0.2, np.nan, 1.0))
    np.testing.assert_array_equal(all_channels(finite), finite.all(axis=-1))
    assert channel_mean(np.array([[1.0, 2.0, 6.0]]))[0] == 3.0


def test_mask_box_known_answers():
    """The bounding box of a mask's true entries, grown by the pad and clipped to the array."""
    mask = np.zeros((10, 12), bool)
    mask[3, 4] = mask[6, 8] = True
    assert mask_box(mask) == (slice(3, 7), slice(4, 9))
    assert mask_box(mask, 2) == (slice(1, 9), slice(2, 11))
    assert mask_box(mask, 5) == (slice(0, 10), slice(0, 12))
    assert mask[mask_box(mask)].sum() == 2
    with pytest.raises(ValueError):
        mask_box(np.zeros((4, 4), bool))
    with pytest.raises(ValueError):
        mask_box(mask, -1)
