"""Delighting: the shading a photo's lighting puts on the head, and taking it (and the shine) off.

Forward model, in linear light (see :mod:`facetwin.frames`), for a point ``x`` of the skin with unit normal
``n`` in the head frame:

    ``I(x) = albedo(x) * S(x) + specular(x)``,   ``S(x) = E(n) / pi * V(x)``

* ``E(n)`` is the irradiance of second-order spherical-harmonic lighting ``sh_light`` (9, 3), radiance
  coefficients in the head frame (:func:`facetwin.render.shade.sh_irradiance`, Ramamoorthi & Hanrahan 2001),
  so ``albedo * E / pi`` is Lambertian radiance.
* ``V(x)`` in [0, 1] is the share of that irradiance that is not blocked by the head itself: ambient occlusion
  weighted by the light. It is estimated per vertex from :data:`N_DIRECTIONS` shadow maps of the mesh
  (:func:`vertex_visibility`) as ``V = sum_d vis_d max(n.d, 0) L+(d) / sum_d max(n.d, 0) L+(d)``, with
  ``L+(d)`` the (clamped) SH radiance arriving from direction ``d``. A vertex that sees every direction gets
  exactly 1 whatever the sampling, so the coarse sampling only matters in the eye sockets, under the nose
  and chin and behind the ears, where it gives soft, light-dependent shadows. The skin around a crease
  lights it too: the blocked share of the sky is partly replaced by light the skin reflects, and the
  skin's shading uses :func:`interreflected` ``V`` (a darker skin reflects less); the eyes, lit by it too,
  keep the plain ``V``, as their white is what calibrates the light before the skin's albedo is known.
* ``specular`` is the shine of the skin's surface (Shafer's dichromatic model, 1985): it has the colour of the
  light. Its broad part, the sheen of the key light over a cheek or the forehead, is a :class:`Sheen`: a
  normalised Blinn-Phong lobe around the mirror direction of the SH light's dominant direction
  (:func:`key_direction`), fitted with the light by :func:`facetwin.fit.photometric.refine_photometric` and
  subtracted before dividing by ``S``. What is left, glints sharper than the lobe, adds a grey offset to the
  albedo once it is divided by ``S`` (which carries the light's colour); :func:`remove_specular` takes it off
  against the local colour of the diffuse skin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_DIRECTIONS = 64
"""Shadow-map directions over the sphere for :func:`vertex_visibility`: enough for soft shadows of the nose
and eye sockets under smooth (second-order SH) light; the ratio form keeps open surfaces exactly at 1."""
SHADOW_MAP_PX = 256
"""Side of each shadow map: about 1.2 mm per pixel over a 30 cm head."""
SHADOW_BIAS_PX = 3.0
"""Depth tolerance of the shadow test, in shadow-map pixels: a vertex is lit when it is at most this much
behind the nearest surface, so surfaces at grazing angles do not shadow themselves."""
SHADOW_DISTANCE_CM = 1.0e4
"""Distance of the shadow-map cameras: at 100 m the perspective is orthographic to within 0.02 %."""
VISIBILITY_FLOOR = 1e-6
"""Added to both sums of the visibility ratio: where no light reaches the normal at all, V is 1 (the
shading is 0 anyway)."""
SHADING_FLOOR = 1e-3
"""Smallest shading divided by when delighting (0.1 % of a white, frontally lit surface); below it a
texel is in shadow and its confidence is 0."""

SPECULAR_CHROMA_BLOCKS = 64
"""The diffuse skin colour for :func:`remove_specular` is a robust average over blocks of 1/64 of the tile
(3 mm on the face): skin colour changes slowly, highlights are smaller or brighter."""
SPECULAR_FIT_TOL = 0.06
"""A texel is treated only if it is within this fraction of its length of the plane spanned by the local
skin colour and gray, i.e. it is skin plus some shine and not another colour."""
SPECULAR_NOISE_MAD = 3.0
"""A texel's grey offset must exceed the median by this many robust standard deviations (MAD x 1.4826)
before any of it is taken as shine: texture and noise stay in the albedo."""


def sphere_directions(n: int = N_DIRECTIONS) -> np.ndarray:
    """Nearly uniform unit directions on the sphere (Fibonacci lattice).

    Args:
        n: how many.

    Returns:
        (n, 3) float64 unit vectors.

    Example:
        >>> d = sphere_directions(100)
        >>> bool(np.allclose(np.linalg.norm(d, axis=1), 1.0)), bool(np.abs(d.mean(axis=0)).max() < 0.02)
        (True, True)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(np.maximum(1.0 - z * z, 0.0))
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def vertex_visibility(
    vertices: np.ndarray,
    faces: np.ndarray,
    directions: np.ndarray,
    *,
    resolution: int = SHADOW_MAP_PX,
) -> np.ndarray:
    """Which vertices each direction's distant light reaches (shadow maps of the mesh, numba rasteriser).

    For each direction ``d`` the mesh is rasterised by a distant camera at ``d`` looking at the mesh's
    centre; a vertex is lit from ``d`` when it is no more than :data:`SHADOW_BIAS_PX` pixels behind the
    nearest surface at its pixel.

    Args:
        vertices: (V, 3) float, centimetres, any frame (e.g. the head frame).
        faces: (F, 3) int, the occluding triangles (leave out see-through shells).
        directions: (D, 3) unit vectors towards the light, the frame of ``vertices``.
        resolution: shadow-map side, pixels.

    Returns:
        (V, D) bool; vertices in no face of ``faces`` are lit from everywhere.
    """
    from facetwin.camera import intrinsics
    from facetwin.render.raster import rasterize

    v = np.asarray(vertices, np.float64)
    d = np.asarray(directions, np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices: expected (V, 3), got {v.shape}")
    if d.ndim != 2 or d.shape[1] != 3:
        raise ValueError(f"directions: expected (D, 3), got {d.shape}")
    used = np.unique(np.asarray(faces))
    centre = 0.5 * (v[used].min(axis=0) + v[used].max(axis=0))
    radius = float(np.linalg.norm(v[used] - centre, axis=1).max()) * 1.02
    focal = SHADOW_DISTANCE_CM * (resolution / 2.0) / radius
    K = intrinsics(focal, resolution, resolution)
    bias = SHADOW_BIAS_PX * 2.0 * radius / resolution
    lit = np.ones((v.shape[0], d.shape[0]), dtype=bool)
    for k, dk in enumerate(d / np.linalg.norm(d, axis=1, keepdims=True)):
        R = _look_rotation(-dk)
        t = np.array([0.0, 0.0, SHADOW_DISTANCE_CM]) - R @ centre
        cam = v @ R.T + t
        raster = rasterize(cam, faces, K, resolution, resolution)
        uv = cam[used, :2] / cam[used, 2:3] * focal + resolution / 2.0
        j = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, resolution - 1)
        i = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, resolution - 1)
        lit[used, k] = cam[used, 2] <= raster.depth[i, j] + bias
    return lit


def _look_rotation(forward: np.ndarray) -> np.ndarray:
    """(3, 3) rotation whose third row is ``forward``: maps the world to an OpenCV camera looking along it."""
    up = np.array([0.0, 1.0, 0.0]) if abs(forward[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(up, forward)
    x /= np.linalg.norm(x)
    y = np.cross(forward, x)
    return np.stack([x, y, forward])


def sh_radiance(directions: np.ndarray, sh_light: np.ndarray) -> np.ndarray:
    """Radiance ``L(d) = sum_lm L_lm Y_lm(d)`` of SH lighting arriving from each direction.

    Args:
        directions: (D, 3) unit vectors, the frame of ``sh_light``.
        sh_light: (9, 3) radiance coefficients per RGB channel.

    Returns:
        (D, 3) float64, linear.
    """
    import torch

    from facetwin.render.shade import sh_basis

    basis = sh_basis(torch.from_numpy(np.asarray(directions, np.float64))).numpy()
    return basis @ np.asarray(sh_light, np.float64)


def visibility_ratio(
    normals: np.ndarray, visibility: np.ndarray, directions: np.ndarray, sh_light: np.ndarray
) -> np.ndarray:
    """Light-weighted share of the irradiance that reaches each vertex (module docstring, ``V``).

    Args:
        normals: (V, 3) unit normals, the frame of ``directions`` and ``sh_light``.
        visibility: (V, D) bool from :func:`vertex_visibility`.
        directions: (D, 3) unit vectors.
        sh_light: (9, 3) radiance coefficients.

    Returns:
        (V, 3) float32 in [0, 1] per RGB channel.
    """
    n = np.asarray(normals, np.float64)
    vis = np.asarray(visibility)
    if vis.shape != (n.shape[0], np.asarray(directions).shape[0]):
        raise ValueError(
            f"visibility: expected {(n.shape[0], np.asarray(directions).shape[0])}, got {vis.shape}"
        )
    cos = np.clip(n @ np.asarray(directions, np.float64).T, 0.0, None)  # (V, D)
    light = np.clip(sh_radiance(directions, sh_light), 0.0, None)  # (D, 3)
    num = (cos * vis) @ light
    den = cos @ light
    return ((num + VISIBILITY_FLOOR) / (den + VISIBILITY_FLOOR)).astype(np.float32)


def interreflected(ratio: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Visibility ratio with the light the surrounding skin reflects into a crease, all bounces.

    A point whose share ``V`` of the light arrives directly sees surfaces of albedo ``rho`` over the rest.
    In a spherical cavity every point has the same ``V``, and the walls' Lambertian radiance ``L_w``, in units
    of the sky's, satisfies ``L_w = rho (V + (1 - V) L_w)``. The point's irradiance relative to the sky's
    is then ``V + (1 - V) L_w = V / (1 - rho (1 - V))``. That is the closed form used here for every
    concavity. Jimenez et al.'s cubic fit to path-traced multi-bounce occlusion ("Practical real-time
    strategies for accurate indirect occlusion", 2016) agrees with it within 0.025 for ``V`` >= 0.3 and
    ``rho`` <= 0.7 (0.07 at ``rho`` 0.8, where this form is the brighter). Dark skin reflects little, and
    its creases stay nearly as dark as ``V``.

    Args:
        ratio: (..., 3) visibility ratio ``V`` in [0, 1] (:func:`visibility_ratio`), per RGB channel.
        albedo: (3,) or (..., 3) linear albedo of the surroundings in [0, 1).

    Returns:
        (..., 3) float32 in [``V``, 1].
    """
    v = np.asarray(ratio, np.float32)
    rho = np.asarray(albedo, np.float32)
    if v.shape[-1] != 3 or rho.shape[-1] != 3:
        raise ValueError(f"ratio and albedo: expected (..., 3), got {v.shape} and {rho.shape}")
    if not np.all((rho >= 0.0) & (rho < 1.0)):
        raise ValueError(f"albedo: expected values in [0, 1), got {rho}")
    return (v / (1.0 - rho * (1.0 - v))).astype(np.float32)


def skin_interreflected(model, ratio: np.ndarray, albedo: np.ndarray) -> np.ndarray:
    """Per-vertex visibility ratio (V, 3) with :func:`interreflected` applied on the skin's vertices
    (:data:`facetwin.model.ict.SKIN_MATERIALS`), those whose albedo is the skin's; the eyes, teeth and mouth
    keep the plain ratio."""
    from facetwin.model.ict import SKIN_MATERIALS

    out = np.array(ratio, np.float32)
    skin = np.unique(model.faces[model.material_faces(SKIN_MATERIALS)])
    out[skin] = interreflected(out[skin], albedo)
    return out


def shading_linear(normals: np.ndarray, ratio: np.ndarray, sh_light: np.ndarray) -> np.ndarray:
    """Shading ``S = E(n) / pi * V`` (module docstring) at points with these normals.

    Args:
        normals: (..., 3) unit normals, the frame of ``sh_light``; NaN rows give NaN.
        ratio: (..., 3) visibility ratio ``V`` per channel (:func:`visibility_ratio`, interpolated), or
            (..., 1) or None for no occlusion.
        sh_light: (9, 3) radiance coefficients.

    Returns:
        (..., 3) float32, clipped at 0: linear radiance of a white Lambertian surface.
    """
    import torch

    from facetwin.render.shade import sh_irradiance

    n = torch.from_numpy(np.ascontiguousarray(normals, np.float32))
    e = sh_irradiance(n, torch.as_tensor(np.asarray(sh_light, np.float32))).numpy() / np.float32(math.pi)
    if ratio is not None:
        e = e * np.asarray(ratio, np.float32)
    return np.clip(e, 0.0, None)


def sh_directional_light(direction: np.ndarray, irradiance_rgb) -> np.ndarray:
    """SH coefficients of a distant light of given irradiance from one direction (projected to band 2).

    A delta of radiance in direction ``l`` has ``L_lm = E0 Y_lm(l)``; the irradiance it gives through
    :func:`facetwin.render.shade.sh_irradiance` is ``E0 max(n.l, 0)`` to within 3/32 of ``E0``.

    Args:
        direction: (3,) towards the light, any length, head frame.
        irradiance_rgb: (3,) or scalar ``E0`` per channel, linear.

    Returns:
        (9, 3) float64 radiance coefficients.
    """
    d = np.asarray(direction, np.float64).reshape(3)
    d = d / np.linalg.norm(d)
    import torch

    from facetwin.render.shade import sh_basis

    basis = sh_basis(torch.from_numpy(d)).numpy()  # (9,)
    return basis[:, None] * np.broadcast_to(np.asarray(irradiance_rgb, np.float64), (3,))[None, :]


def sh_ambient_light(radiance_rgb) -> np.ndarray:
    """SH coefficients of constant radiance from every direction (irradiance ``pi L`` on any normal).

    Args:
        radiance_rgb: (3,) or scalar radiance per channel, linear.

    Returns:
        (9, 3) float64 with only the band-0 row non-zero: ``L_00 = 2 sqrt(pi) L``.
    """
    out = np.zeros((9, 3))
    out[0] = 2.0 * math.sqrt(math.pi) * np.broadcast_to(np.asarray(radiance_rgb, np.float64), (3,))
    return out

FOLD_PIGMENT_RIDGE = 0.03
"""Ridge of :func:`residual_shading`'s gray split. A gray log offset ``s`` shows off the pigments' plane as
``s g`` with ``g`` its reach (``sqrt(3) sin`` of the angle between gray and the plane); it is read as
``s g^2 / (g^2 + ridge)``: 90 % of it on very light skin (angle 17 degrees), 70 % on tan (9), 15 % on brown
and dark skin (2 degrees), where a melanin change is a gray change and a fold cannot be told from a mark."""
FOLD_LINE_ANISOTROPY = (0.5, 0.9)
"""Anisotropy of the luminance's curvature (:func:`fold_lines`) from which a texel starts to be, and is
fully, on a line: a fold's shadow or its lit rim, which :func:`residual_shading` reads as shading whatever
the skin's colour says."""
FOLD_LINE_MIN_LOG = 0.1
"""A line's change in the band (natural log) from which it is read as a fold (in full from twice this):
fainter lines are the skin's own grain."""
SHEEN_EXPONENTS = (8.0, 16.0, 32.0, 64.0)
"""Blinn-Phong exponents a :class:`Sheen` is fitted with: skin's roughness (Beckmann m about 0.3-0.45,
Weyrich et al. 2006) is p = 2 / m^2 - 2, about 8 to 20; oily skin's sharper lobes reach 64."""
KEY_DIRECTIONS = 2048
"""Directions :func:`key_direction` searches: 4.5 degrees apart, a fifth of the narrowest lobe's width."""
KEY_MIN_CONTRAST = 0.05
"""Light whose strongest irradiance is within this fraction of its mean over the camera's side has no key
(:func:`key_direction`): an even light's sheen is spread over the whole face, not a lobe."""


@dataclass(frozen=True)
class Sheen:
    """Broad shine of the skin under the key light: a normalised Blinn-Phong lobe (module docstring).

    Radiance ``L_s = rgb (p + 8) / (8 pi) max(n.h, 0)^p max(n.l, 0) V`` with ``l`` the unit direction
    towards the key light, ``h`` the half vector of ``l`` and the direction towards the camera, ``V`` the
    mean of the point's visibility ratio (the key's shadows).

    Attributes:
        direction: (3,) float64 unit vector towards the key light, head frame.
        exponent: the Blinn-Phong exponent ``p``.
        rgb: (3,) float64 linear, the photo's units: the key's irradiance times the skin's specular albedo.
    """

    direction: np.ndarray
    exponent: float
    rgb: np.ndarray


def key_direction(sh_light: np.ndarray, towards: np.ndarray, n_directions: int = KEY_DIRECTIONS) -> np.ndarray | None:
    """Unit direction (3,) of the largest irradiance of SH light on the side of ``towards``, or None.

    The light of a photo is only seen through the normals that face the camera, and a fit of nine
    coefficients to them trades band 1 for band 2 freely: the band-1 vector alone can point anywhere.
    Irradiance is what the fit pins down, so the key is where a surface facing it would be lit most.

    Args:
        sh_light: (9, 3) radiance coefficients.
        towards: (3,) the hemisphere to look in (the direction towards the camera), head frame.
        n_directions: directions searched over the sphere (about half of them on that side).

    Returns:
        (3,) float64 head-frame unit vector, or None where no irradiance reaches that side or it varies
        by less than :data:`KEY_MIN_CONTRAST` of its mean over the side (no key light to speak of).
    """
    sh = np.asarray(sh_light, np.float64)
    if sh.shape != (9, 3):
        raise ValueError(f"sh_light: expected (9, 3), got {sh.shape}")
    dirs = sphere_directions(n_directions)
    side = dirs[dirs @ np.asarray(towards, np.float64) >= 0.0]
    e = shading_linear(side, None, sh).mean(axis=1)
    best = int(np.argmax(e))
    mean = float(e.mean())
    if e[best] <= 0.0 or e[best] - mean <= KEY_MIN_CONTRAST * mean:
        return None
    return side[best].astype(np.float64)


def view_directions(points: np.ndarray, camera_centre: np.ndarray) -> np.ndarray:
    """(N, 3) float64 unit vectors from surface points (N, 3) towards the camera's centre (3,), same frame."""
    view = np.asarray(camera_centre, np.float64)[None, :] - np.asarray(points, np.float64)
    return view / np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)


def sheen_lobe(normals: np.ndarray, view: np.ndarray, direction: np.ndarray, exponent: float) -> np.ndarray:
    """The normalised Blinn-Phong lobe ``(p + 8) / (8 pi) max(n.h, 0)^p max(n.l, 0)`` at surface points.

    Args:
        normals: (N, 3) unit normals, head frame.
        view: (N, 3) unit vectors towards the camera (:func:`view_directions`).
        direction: (3,) unit vector towards the light.
        exponent: ``p``.

    Returns:
        (N,) float64, 0 where the light or the camera is behind the surface.
    """
    n = np.asarray(normals, np.float64)
    light = np.asarray(direction, np.float64)
    half = view + light[None, :]
    half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
    n_h = np.clip(np.einsum("nd,nd->n", n, half), 0.0, None)
    n_l = np.clip(n @ light, 0.0, None)
    facing = np.einsum("nd,nd->n", n, view) > 0.0
    return np.where(facing, (exponent + 8.0) / (8.0 * math.pi) * n_h**exponent * n_l, 0.0)


def sheen_radiance(
    normals: np.ndarray,
    points: np.ndarray,
    camera_centre: np.ndarray,
    sheen: Sheen | None,
    ratio: np.ndarray | None = None,
) -> np.ndarray:
    """(N, 3) float32 linear radiance of a :class:`Sheen` at surface points (0 for None).

    Args:
        normals: (N, 3) unit normals, head frame.
        points: (N, 3) positions, head frame (cm).
        camera_centre: (3,) the camera's centre, head frame (cm).
        sheen: the sheen, or None.
        ratio: (N, 3) visibility ratio at the points (:func:`visibility_ratio`), or None for none.
    """
    n = np.asarray(normals).shape[0]
    if sheen is None:
        return np.zeros((n, 3), np.float32)
    lobe = sheen_lobe(normals, view_directions(points, camera_centre), sheen.direction, sheen.exponent)
    if ratio is not None:
        lobe = lobe * np.asarray(ratio, np.float64).mean(axis=1)
    return (lobe[:, None] * np.asarray(sheen.rgb, np.float64)[None, :]).astype(np.float32)


def render_sheen(
    model,
    vertices: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    sheen: Sheen | None,
    ratio: np.ndarray | None,
) -> np.ndarray:
    """(H, W, 3) float32 linear radiance of the sheen alone (arguments as :func:`render_textured`; zeros for
    None): it is added to a render after the photo's colour rendering, which the diffuse part goes through."""
    if sheen is None:
        return np.zeros((height, width, 3), np.float32)
    black = {name: (0.0, 0.0, 0.0) for name in model.material_names}
    tiles = {0: np.zeros((2, 2, 3), np.float32), 1: np.zeros((2, 2, 3), np.float32)}
    return render_textured(model, vertices, R, t, K, height, width, tiles, np.zeros((9, 3)), ratio, black, sheen)[0]


def remove_specular(
    albedo_linear: np.ndarray,
    mask: np.ndarray,
    *,
    blocks: int = SPECULAR_CHROMA_BLOCKS,
    noise_mad: float = SPECULAR_NOISE_MAD,
) -> tuple[np.ndarray, np.ndarray]:
    """Take the shine off a delighted skin texture (dichromatic model, module docstring).

    In a texture already divided by the shading, shine adds a grey offset ``m (1, 1, 1)`` to the diffuse
    colour, while the diffuse skin colour changes only slowly. Per texel, the observed colour is split as
    ``A = s c + m (1, 1, 1)`` with ``c`` the local diffuse chromaticity (a robust block average, highlights
    left out) by least squares, ``s, m >= 0``. Only the part of ``m`` above the texture's own scatter (median
    + :data:`SPECULAR_NOISE_MAD` robust sigmas) is taken off, so pores, freckles and noise stay.

    Args:
        albedo_linear: (S, S, 3) delighted texture, linear, white-balanced (the light's colour divided out).
        mask: (S, S) bool, the skin texels to treat (leave out eyes, lips, teeth, unseen texels).
        blocks: blocks per side for the local diffuse chromaticity.
        noise_mad: the threshold, in robust standard deviations of ``m``.

    Returns:
        diffuse_linear: (S, S, 3) float32, ``A - m'`` with ``m'`` the shine taken off (0 outside ``mask``).
        specular: (S, S) float32, ``m'``, the grey shine per texel (linear).
    """
    import cv2

    a = np.asarray(albedo_linear, np.float32)
    if a.ndim != 3 or a.shape[2] != 3 or np.shape(mask) != a.shape[:2]:
        raise ValueError(f"albedo_linear (S, S, 3) and mask (S, S) disagree: {a.shape}, {np.shape(mask)}")
    size = a.shape[0]
    idx = np.flatnonzero(np.asarray(mask, bool).ravel())
    flat = a.reshape(-1, 3)
    av = flat[idx]
    good = np.isfinite(av).all(axis=1) & (av.min(axis=1) > 0.0)
    idx, av = idx[good], av[good]
    spec = np.zeros(a.shape[:2], np.float32)
    if idx.size < 16:
        return a.copy(), spec
    chroma = av / np.maximum(av.sum(axis=1, keepdims=True), 1e-6)
    # The shine whitens: the least saturated texels (min / sum large) are left out of the local colour.
    sat = chroma.min(axis=1)
    keep = sat <= np.quantile(sat, 0.7)
    w = np.zeros(size * size, np.float32)
    w[idx[keep]] = 1.0
    cw = np.zeros((size * size, 3), np.float32)
    cw[idx[keep]] = chroma[keep]
    small = (blocks, blocks)
    num = cv2.resize(cw.reshape(size, size, 3), small, interpolation=cv2.INTER_AREA)
    den = cv2.resize(w.reshape(size, size), small, interpolation=cv2.INTER_AREA)
    filled = _fill_nearest(num / np.maximum(den, 1e-9)[..., None], den > 1e-3)
    c = cv2.resize(filled, (size, size), interpolation=cv2.INTER_LINEAR).reshape(-1, 3)[idx]
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-6)
    g = np.full(3, 1.0 / math.sqrt(3.0), np.float32)
    # Least squares for A = s c + m' g with unit c, g: 2x2 normal equations per texel.
    cg = c @ g
    ac = (av * c).sum(axis=1)
    ag = av @ g
    det = np.maximum(1.0 - cg * cg, 1e-6)
    s_c = (ac - cg * ag) / det  # diffuse amount along c
    m_g = (ag - cg * ac) / det  # grey amount along g
    resid = av - s_c[:, None] * c - m_g[:, None] * g
    # Only colours between the local skin colour and gray are skin with shine; paint, brows, moles and
    # other colours are left alone.
    fits = (s_c > 0.0) & (np.linalg.norm(resid, axis=1) <= SPECULAR_FIT_TOL * np.linalg.norm(av, axis=1))
    m = np.where(fits, np.clip(m_g / math.sqrt(3.0), 0.0, None), 0.0)  # grey offset per channel
    med = float(np.median(m))
    sigma = 1.4826 * float(np.median(np.abs(m - med))) + 1e-6
    # Never take off more than leaves every channel positive.
    m_off = np.minimum(np.clip(m - (med + noise_mad * sigma), 0.0, None), 0.95 * av.min(axis=1))
    spec.reshape(-1)[idx] = m_off
    out = a.copy()
    out.reshape(-1, 3)[idx] -= m_off[:, None]
    return out, spec


def residual_shading(
    albedo_linear: np.ndarray,
    weight: np.ndarray,
    melanin: float | None,
    haemoglobin: float | None,
    sigmas_texels: tuple[float, float],
) -> np.ndarray:
    """The shading left in a delighted skin texture: its gray log offset that the skin's pigments do not
    explain, between two scales.

    A fold, a crease or a dimple the fitted mesh lacks leaves its shadow in the albedo. Near the person's
    tone, a change of melanin or of blood changes the log colour along the skin model's own directions
    (:func:`facetwin.texture.skin.skin_albedo_linear`, differentiated at ``melanin, haemoglobin``), a change
    of light along gray (the texture is white-balanced); per texel the log colour's departure from the tone
    is split among the three, and the gray part, kept between the two scales (a difference of Gaussian
    blurs weighted by ``weight``), is the shading. Pigment marks (freckles, moles, blush) change colour and
    stay; pores and grain are finer than the first scale, the light's own gradients coarser than the second.

    Colour tells a shadow from a mark only where the pigments are far from gray (light skin); shape tells
    them apart on every skin: a fold's shadow (and its lit rim) is a line, a mark a spot or a patch. Where
    the luminance curves one way only (:func:`fold_lines`) and changes by more than
    :data:`FOLD_LINE_MIN_LOG` in the band, its whole change is read as shading, the share smoothed over the
    fold's width; that change is measured at the line's own width (half the fine scale) against the skin
    beside it (the coarse blur without the line's texels). A nasolabial fold's shadow on dark skin: a quarter
    came off by colour, 40 % with the line, half with its change so measured.

    A shadow darkens every channel, so the shading read is never larger than the texel's own mean log
    change in the band, nor of the other sign: where the colour says "brighter" but the texel is darker
    than its surroundings (or the reverse), the change is not the split's gray, and nothing is read. Light
    scattered under the skin reddens a crease's shadow, which the split reads as brighter gray beside
    pigment; without this bound the step deepened grace_hopper's wrinkles by 44 % instead of easing them.

    Args:
        albedo_linear: (S, S, 3) delighted, white-balanced texture, linear.
        weight: (S, S) float in [0, 1], the texels to count (skin, seen; 0 for features and unseen texels).
        melanin, haemoglobin: the skin's tone (volume fractions); None for a monotone texture (a grayscale
            photo's), whose colour tells nothing: only its lines are read.
        sigmas_texels: (fine, coarse) Gaussian sigmas of the band, texels.

    Returns:
        (S, S) float32 natural-log gray offset (negative in a shadow), 0 where ``weight`` is 0.
    """
    from facetwin.texture.complete import channel_mean, weighted_blur
    from facetwin.texture.skin import skin_albedo_linear

    a = np.asarray(albedo_linear, np.float32)
    w = np.asarray(weight, np.float32)
    if a.ndim != 3 or a.shape[2] != 3 or w.shape != a.shape[:2]:
        raise ValueError(f"albedo_linear (S, S, 3) and weight (S, S) disagree: {a.shape}, {w.shape}")
    step = 1e-3
    seen = w > 0.0
    ws = np.where(seen, w, 0.0).astype(np.float32)
    if melanin is None or haemoglobin is None:
        level = np.where(seen, channel_mean(np.log(np.maximum(np.nan_to_num(a), 1e-4))), 0.0).astype(np.float32)
        return _line_shading(level, ws, np.zeros_like(level), sigmas_texels)

    def log_skin(m, b):
        return np.log(np.asarray(skin_albedo_linear(m, b), np.float64))

    d_mel = (log_skin(melanin + step, haemoglobin) - log_skin(max(melanin - step, 0.0), haemoglobin)) / (
        melanin + step - max(melanin - step, 0.0)
    )
    d_blood = (log_skin(melanin, haemoglobin + step) - log_skin(melanin, max(haemoglobin - step, 0.0))) / (
        haemoglobin + step - max(haemoglobin - step, 0.0)
    )
    # The gray part is read off the normal to the pigments' plane; where gray nearly lies in that plane
    # (brown skin: more melanin darkens all channels alike) the ridge hands the offset to the pigments.
    normal = np.cross(d_mel, d_blood)
    normal /= max(float(np.linalg.norm(normal)), 1e-12)
    reach = float(normal.sum())  # the normal's component along (1, 1, 1)
    gray_row = normal * reach / (reach * reach + FOLD_PIGMENT_RIDGE)
    log_a = np.log(np.maximum(np.nan_to_num(a), 1e-4)) - log_skin(melanin, haemoglobin).astype(np.float32)
    gray = np.where(seen, log_a @ gray_row.astype(np.float32), 0.0).astype(np.float32)
    band = weighted_blur(gray, ws, sigmas_texels[0]) - weighted_blur(gray, ws, sigmas_texels[1])
    level = np.where(seen, channel_mean(log_a), 0.0).astype(np.float32)
    return _line_shading(level, ws, band, sigmas_texels)


def _line_shading(level: np.ndarray, ws: np.ndarray, band: np.ndarray, sigmas_texels: tuple[float, float]) -> np.ndarray:
    """:func:`residual_shading` from the texture's log luminance ``level`` (S, S), its texels' weights ``ws``
    and the gray offset its colour read in the band, ``band`` (zeros where colour tells nothing): the lines'
    change taken in, bounded by the texel's own change."""
    import cv2

    from facetwin.texture.complete import weighted_blur

    seen = ws > 0.0
    fine = weighted_blur(level, ws, sigmas_texels[0])
    darkening = fine - weighted_blur(level, ws, sigmas_texels[1])
    # Whatever its colour, a line is a fold: its whole change in the band is read as shading there. Lines
    # are judged on the fine blur, which a grid of half its sigma resolves.
    k = max(int(sigmas_texels[0] // 2), 1)
    rows, cols = fine.shape
    line = fold_lines(cv2.resize(fine, (max(cols // k, 3), max(rows // k, 3)), interpolation=cv2.INTER_AREA))
    line = cv2.resize(line, (cols, rows), interpolation=cv2.INTER_LINEAR) * smoothstep(
        np.abs(darkening), FOLD_LINE_MIN_LOG, 2.0 * FOLD_LINE_MIN_LOG
    )
    # The same share across a fold's dark line and its lit flanks: a share that changed across them would
    # draw new edges of its own. Over twice the fine scale it fell to half on a fold as narrow as that.
    share = weighted_blur(line, ws, sigmas_texels[0])
    if np.any(share > 0.0):
        # The fine blur spreads a fold as narrow as itself, and the coarse one counts the fold into its
        # own surroundings: a line's change is measured at its own width against the skin beside it.
        sharp = weighted_blur(level, ws, 0.5 * sigmas_texels[0])
        beside = weighted_blur(level, ws * (1.0 - line), sigmas_texels[1])
        darkening = darkening + share * (sharp - beside - darkening)
    band = band + share * (darkening - band)
    band = np.where(band * darkening > 0.0, np.sign(band) * np.minimum(np.abs(band), np.abs(darkening)), 0.0)
    return np.where(seen, band, 0.0).astype(np.float32)


def smoothstep(x, lo: float, hi: float) -> np.ndarray:
    """float32: 0 up to ``lo``, 1 from ``hi``, Hermite-smooth between."""
    t = np.clip((np.asarray(x, np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def fold_lines(level: np.ndarray) -> np.ndarray:
    """How much each texel of a smooth (H, W) image lies on a line, dark or bright: 0 on a blob or a flat
    patch, 1 along a valley or a ridge.

    The Hessian's eigenvalue of larger magnitude ``a`` and the other ``b`` (finite differences after half a
    texel of Gaussian smoothing, zero outside: the image is smooth already; scikit-image's
    ``hessian_matrix(..., use_gaussian_derivatives=False)`` and ``hessian_matrix_eigvals``, the test's
    reference, give the same to float32 rounding, but importing ``skimage.feature`` takes 0.9 s); the
    anisotropy ``(|a| - |b|) / (|a| + |b|)`` is 1 across a line (curved one way only) and 0 on a round spot,
    ramped between :data:`FOLD_LINE_ANISOTROPY`.
    """
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.asarray(level, np.float32), 0.5, mode="constant")
    d_row, d_col = np.gradient(smooth)
    h_rr, h_rc = np.gradient(d_row)
    h_cc = np.gradient(d_col, axis=1)
    half_trace = (h_rr + h_cc) / 2
    radius = np.sqrt(h_rc**2 + ((h_rr - h_cc) / 2) ** 2)
    first, second = np.abs(half_trace + radius), np.abs(half_trace - radius)
    big, small = np.maximum(first, second), np.minimum(first, second)
    anisotropy = (big - small) / np.maximum(big + small, 1e-12)
    return smoothstep(anisotropy, *FOLD_LINE_ANISOTROPY)


def _fill_nearest(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Copy of (n, n, C) ``image`` with the texels outside ``known`` set to their nearest known one."""
    from scipy.ndimage import distance_transform_edt

    if not known.any():
        return np.full_like(image, 1.0 / image.shape[2])
    idx = distance_transform_edt(~known, return_distances=False, return_indices=True)
    return image[idx[0], idx[1]].astype(np.float32)


HIDDEN_MATERIALS = ("M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend", "M_EyeLashes")
"""See-through shells and cut-out lashes of ICT FaceKit: neither drawn nor casting shadows here."""


def occluding_faces(model) -> np.ndarray:
    """(F',) int64 ids into ``model.faces`` of the opaque triangles (all but :data:`HIDDEN_MATERIALS`)."""
    return np.flatnonzero(~model.material_faces(HIDDEN_MATERIALS))


def sample_tile(texture: np.ndarray, uv: np.ndarray, tile: int) -> np.ndarray:
    """Bilinear lookup of a tile texture at OBJ UVs (texel convention of :mod:`facetwin.texture.uvmap`).

    Args:
        texture: (S, S, C) float32 tile image, row 0 at ``v = 1``.
        uv: (..., 2) OBJ ``(u, v)``; ``u`` in ``[tile, tile + 1)``.
        tile: the tile the texture belongs to.

    Returns:
        (..., C) float32; the border texel continues past the edges.
    """
    import cv2

    tex = np.asarray(texture, np.float32)
    size = tex.shape[0]
    uv = np.asarray(uv, np.float32)
    flat = uv.reshape(-1, 2)
    mx = ((flat[:, 0] - tile) * size - 0.5).astype(np.float32)
    my = ((1.0 - flat[:, 1]) * size - 0.5).astype(np.float32)
    out = remap_points(tex, mx, my, cv2.INTER_LINEAR)
    return out.reshape(uv.shape[:-1] + (tex.shape[2],))


_REMAP_COLUMNS = 4096
"""Row length of the maps :func:`remap_points` hands to OpenCV, whose maps must be under 32767 a side."""


def remap_points(image: np.ndarray, x: np.ndarray, y: np.ndarray, interpolation: int) -> np.ndarray:
    """OpenCV ``remap`` at N scattered points (pixel-centre coordinates: the centre of pixel (i, j) is (j, i)).

    Args:
        image: (H, W) or (H, W, C) float32.
        x: (N,) column coordinates; y: (N,) row coordinates.
        interpolation: an OpenCV flag (``cv2.INTER_LINEAR``, ``cv2.INTER_NEAREST``).

    Returns:
        (N,) or (N, C) float32; the border pixel continues outside the image.
    """
    import cv2

    n = int(np.asarray(x).shape[0])
    rows = max(-(-n // _REMAP_COLUMNS), 1)
    pad = rows * _REMAP_COLUMNS - n
    mx = np.concatenate([np.asarray(x, np.float32), np.zeros(pad, np.float32)]).reshape(rows, _REMAP_COLUMNS)
    my = np.concatenate([np.asarray(y, np.float32), np.zeros(pad, np.float32)]).reshape(rows, _REMAP_COLUMNS)
    out = cv2.remap(np.asarray(image, np.float32), mx, my, interpolation, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((rows * _REMAP_COLUMNS,) + out.shape[2:])[:n]


def render_textured(
    model,
    vertices: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    tiles: dict,
    sh_light: np.ndarray,
    ratio: np.ndarray | None,
    material_albedo: dict | None = None,
    sheen: Sheen | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render of the head with albedo tiles under SH light (the forward model of this module): Lambertian,
    plus the sheen on the face's skin (``M_Face``) where one is given.

    Args:
        model: the head model.
        vertices: (V, 3) centimetres, head frame.
        R: (3, 3) head -> OpenCV camera rotation; t: (3,) centimetres.
        K: (3, 3) intrinsics, pixels.
        height: H; width: W, pixels.
        tiles: ``{tile index: (S, S, 3) albedo, linear}`` for the skin tiles (0 face, 1 back of head);
            a missing tile renders grey 0.5.
        sh_light: (9, 3) radiance coefficients, head frame.
        ratio: (V, 3) per-vertex visibility ratio (:func:`visibility_ratio`), or None for none.
        material_albedo: ``{material name: (3,) linear albedo}`` for the other opaque materials; grey 0.5
            for any not given.
        sheen: the skin's :class:`Sheen`, or None for none.

    Returns:
        radiance_linear: (H, W, 3) float32, 0 where nothing is drawn.
        material: (H, W) int16 material index of each pixel (``model.material_names``), -1 where none.
    """
    from facetwin.render.raster import rasterize
    from facetwin.render.shade import vertex_normals

    draw = occluding_faces(model)
    faces = model.faces[draw]
    v = np.asarray(vertices, np.float64)
    cam = v @ np.asarray(R, np.float64).T + np.asarray(t, np.float64)
    raster = rasterize(cam, faces, K, height, width)
    cov = raster.covered
    tri = draw[raster.tri_id[cov]]
    bary = raster.bary[cov].astype(np.float32)
    normals = vertex_normals(v, model.faces)
    n = np.einsum("nk,nkd->nd", bary, normals[model.faces[tri]].astype(np.float32))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    r = (
        None
        if ratio is None
        else np.einsum("nk,nkd->nd", bary, np.asarray(ratio, np.float32)[model.faces[tri]])
    )
    shade = shading_linear(n, r, sh_light)
    mat = model.face_material[tri]
    albedo = np.full((tri.size, 3), 0.5, np.float32)
    uv = np.einsum("nk,nkd->nd", bary, model.uvs[model.face_uv_ids[tri]])
    for tile, tex in tiles.items():
        sel = np.floor(uv[:, 0]) == tile
        sel &= np.isin(mat, [model.material_names.index(n) for n in ("M_Face", "M_BackHead")])
        if sel.any():
            albedo[sel] = sample_tile(tex, uv[sel], tile)
    for name, colour in (material_albedo or {}).items():
        if name in model.material_names:
            albedo[mat == model.material_names.index(name)] = np.asarray(colour, np.float32)
    radiance = albedo * shade
    if sheen is not None:
        on_face = mat == model.material_names.index("M_Face")
        points = np.einsum("nk,nkd->nd", bary[on_face], v[model.faces[tri[on_face]]])
        centre = -np.asarray(R, np.float64).T @ np.asarray(t, np.float64)
        radiance[on_face] += sheen_radiance(n[on_face], points, centre, sheen, None if r is None else r[on_face])
    out = np.zeros((height, width, 3), np.float32)
    out[cov] = radiance
    material = np.full((height, width), -1, np.int16)
    material[cov] = mat
    return out, material
