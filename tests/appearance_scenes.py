"""Synthetic known-answer scenes for the appearance tests: an ICT head with a skin-model albedo under known light.

Not a test module (no ``test_`` prefix); the appearance and photometric tests import it. The albedo map is
built from the biophysical skin model (:mod:`facetwin.texture.skin`) with a base melanin per skin tone, a
blush on the cheeks, redder lips, dark brows and blemishes; the head is rendered with the forward model of
:mod:`facetwin.texture.delight` (Lambert, second-order SH light, light-weighted visibility from 128
shadow maps of the true mesh with the light the skin reflects into its own creases, and a sheen where asked:
:func:`key_sheen`), supersampled 2x, encoded as
8-bit sRGB. The "detected" landmarks are the
model's own correspondence points projected from the true mesh, plus noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from facetwin.camera import Camera, intrinsics
from facetwin.detect import Face
from facetwin.frames import linear_to_srgb, srgb_to_linear
from facetwin.io import Photo
from facetwin.texture.appearance import INTERREFLECTION_MAX_ALBEDO, SCLERA_ALBEDO_LINEAR
from facetwin.texture.delight import (
    Sheen,
    occluding_faces,
    render_textured,
    sh_ambient_light,
    sh_directional_light,
    skin_interreflected,
    sphere_directions,
    vertex_visibility,
    visibility_ratio,
)
from facetwin.texture.regions import face_regions, landmark_uv
from facetwin.texture.skin import ita_degrees, skin_albedo_linear
from facetwin.texture.uvmap import uv_raster

WIDTH = HEIGHT = 640
FOCAL_PX = 2000.0
DISTANCE_CM = 80.0
MATERIAL_ALBEDO = {
    "M_IrisLeft": (0.06, 0.035, 0.02),
    "M_IrisRight": (0.06, 0.035, 0.02),
    "M_Teeth": (0.55, 0.5, 0.42),
    "M_GumsTongue": (0.35, 0.08, 0.08),
}
STRAND_COLOUR_LINEAR = (0.16, 0.075, 0.035)
"""Backlit brown hair: a light skin's hue, darker and a little more saturated."""
TONES = {"very_light": 0.028, "light": 0.06, "tan": 0.11, "brown": 0.17, "dark": 0.21}
"""Base melanin fraction per skin tone: ITA about +62, +42, +20, -12 and -50 degrees at 1.2 % blood."""
BASE_BLOOD = 0.012
SHEEN_SPECULAR_ALBEDO = 0.05
"""Specular albedo of the sheen scenes: skin's Fresnel reflectance (0.028 at normal incidence) raised by an
oily surface and grazing angles."""

KEY_LIGHTS = {
    "front_white": ([0.3, 0.4, 1.0], 2.4),
    "warm_key_blue_fill": ([-0.8, 0.6, 0.8], [2.6, 2.1, 1.5]),
    "one_sided": ([1.0, 0.25, 0.35], 2.9),
}
"""Direction and irradiance of the key light of each of :func:`lights`."""


def lights() -> dict[str, np.ndarray]:
    """Three known SH lights (9, 3), head frame: soft white from the front, warm key with a blue fill from
    the upper left, and a hard white light from the subject's left side with little fill."""
    ambient = {"front_white": 0.25, "warm_key_blue_fill": [0.15, 0.2, 0.3], "one_sided": 0.08}
    return {
        name: sh_directional_light(*KEY_LIGHTS[name]) + sh_ambient_light(ambient[name]) for name in KEY_LIGHTS
    }


def key_sheen(light: str, specular_albedo: float = SHEEN_SPECULAR_ALBEDO, exponent: float = 16.0) -> Sheen:
    """The sheen of skin with this specular albedo under the key of one of :func:`lights`: a lobe as wide as
    skin's (Blinn-Phong 16), in the key's colour, its peak 0.4-1.4 times the diffuse skin it falls on."""
    direction, irradiance = KEY_LIGHTS[light]
    d = np.asarray(direction, np.float64)
    rgb = specular_albedo * np.broadcast_to(np.asarray(irradiance, np.float64), (3,))
    return Sheen(direction=d / np.linalg.norm(d), exponent=exponent, rgb=rgb)


def skin_tiles(model, size: int, melanin: float, seed: int = 0) -> dict[int, np.ndarray]:
    """Known albedo tiles ``{0: face, 1: back of head}``, (S, S, 3) float32 linear, from the skin model."""
    rng = np.random.default_rng(seed)
    reg = face_regions(model, size)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    low = np.zeros((size, size))
    for _ in range(4):  # smooth melanin variation, +-10 %
        kx, ky, ph = rng.uniform(1.0, 3.0), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
        low += np.sin(2 * np.pi * (kx * xx + ky * yy) + ph)
    mel = melanin * (1.0 + 0.05 * low)
    blood = np.full((size, size), BASE_BLOOD)
    import cv2

    blush = cv2.GaussianBlur(reg.cheeks.astype(np.float32), (0, 0), size * 0.04)
    blood *= 1.0 + 1.5 * blush / max(blush.max(), 1e-6)
    lips = cv2.GaussianBlur(reg.lips.astype(np.float32), (0, 0), size * 0.004)
    blood = blood * (1.0 - lips) + 0.06 * lips
    mel = mel * (1.0 - 0.3 * lips)
    brow_lines = np.zeros((size, size), np.float32)
    lm_uv = landmark_uv(model)
    for ids in ((17, 18, 19, 20, 21), (22, 23, 24, 25, 26)):
        pts = np.stack([lm_uv[list(ids), 0] * size, (1.0 - lm_uv[list(ids), 1]) * size], axis=1)
        cv2.polylines(
            brow_lines, [np.round(pts - 0.5).astype(np.int32)], False, 1.0, max(int(0.025 * size), 1)
        )
    brows = cv2.GaussianBlur(brow_lines, (0, 0), size * 0.004)
    mel = mel * (1.0 - brows) + 0.4 * brows
    for _ in range(40):  # blemishes: small red or brown spots
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        rad = rng.uniform(1.0, 3.0) * size / 512
        spot = np.exp(-((xx * size - cx) ** 2 + (yy * size - cy) ** 2) / (2 * rad**2))
        if rng.random() < 0.5:
            blood = blood * (1 + 2.0 * spot)
        else:
            mel = mel * (1 + 0.6 * spot)
    mel = np.clip(mel, 0.002, 0.4)
    blood = np.clip(blood, 0.001, 0.1)
    face = skin_albedo_linear(mel, blood).astype(np.float32)
    back = np.broadcast_to(skin_albedo_linear(melanin, BASE_BLOOD).astype(np.float32), (size, size, 3)).copy()
    for tile, tex in ((0, face), (1, back)):
        tex[~uv_raster(model, tile, size).valid] = 0.0
    return {0: face, 1: back}


@dataclass(frozen=True)
class Scene:
    """One synthetic photo with its known answers."""

    photo: Photo
    face: Face
    vertices: np.ndarray  # (V, 3) true mesh, cm, head frame
    camera: Camera
    tiles: dict  # true albedo tiles, linear
    sh_light: np.ndarray  # (9, 3) true light, head frame
    image_linear: np.ndarray  # (H, W, 3) the render before 8-bit sRGB encoding


def true_geometry(model, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    alpha = rng.normal(0.0, 0.7, 100).astype(np.float32)
    w = np.zeros(53, np.float32)
    return model.vertices(alpha, w)


def true_camera(yaw: float = 15.0, pitch: float = 5.0) -> Camera:
    R = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_euler("YX", [yaw, pitch], degrees=True).as_matrix()
    return Camera(intrinsics(FOCAL_PX, WIDTH, HEIGHT), R, np.array([0.5, -1.5, DISTANCE_CM]), WIDTH, HEIGHT)


def visibility_of(model, vertices) -> tuple[np.ndarray, np.ndarray]:
    """(V, 128) shadow-map visibility of the true mesh and its directions (fine sampling for the truth)."""
    dirs = sphere_directions(128)
    return vertex_visibility(vertices, model.faces[occluding_faces(model)], dirs, resolution=384), dirs


def make_scene(
    model,
    points,
    tiles: dict,
    sh_light: np.ndarray,
    vertices: np.ndarray,
    camera: Camera,
    visibility: tuple[np.ndarray, np.ndarray],
    *,
    noise_px: float = 0.5,
    seed: int = 0,
    occluder: str | None = None,
    background_srgb=(0.45, 0.5, 0.55),
    sheen: Sheen | None = None,
) -> Scene:
    """Render a scene; ``occluder`` is None, "sunglasses" (dark lenses over both eyes), "glasses" (thin soft
    frames around them), "hair" (a dark strand across the forehead from the image border), "beard" (gray strands
    over the lower face: :func:`_beard`), "strands" (hair in the skin's hue over
    the face's side, :func:`strands_outline`) or "fold" (the
    shadows of nasolabial folds the mesh lacks); ``sheen`` the skin's broad shine, or None for a matte
    skin."""
    import cv2

    from facetwin.render.shade import vertex_normals

    rng = np.random.default_rng(seed)
    vis, dirs = visibility
    normals = vertex_normals(vertices.astype(np.float64), model.faces)
    # A white head (the irradiance's reference) would light its creases without end: capped as the product does.
    bounce = np.minimum(np.median(tiles[0][tiles[0].max(axis=2) > 0.0], axis=0), INTERREFLECTION_MAX_ALBEDO)
    ratio = skin_interreflected(model, visibility_ratio(normals, vis, dirs, sh_light), bounce)
    mats = dict(MATERIAL_ALBEDO)
    mats["M_ScleraLeft"] = mats["M_ScleraRight"] = SCLERA_ALBEDO_LINEAR
    ss = 2
    K2 = camera.K.copy()
    K2[:2] *= ss
    big, _ = render_textured(
        model, vertices, camera.R, camera.t, K2, HEIGHT * ss, WIDTH * ss, tiles, sh_light, ratio, mats, sheen
    )
    covered = np.any(big > 0, axis=2)
    bg = srgb_to_linear(np.asarray(background_srgb, np.float32))
    big[~covered] = bg
    img = cv2.resize(big, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    lm2 = camera.project(points.evaluate(vertices))
    jaw = camera.project(vertices[model.landmark68[[0, 16]]])
    face_px = float(np.linalg.norm(jaw[1] - jaw[0]))
    if occluder == "sunglasses":
        for eye in (slice(36, 42), slice(42, 48)):
            c = camera.project(vertices[model.landmark68[eye]]).mean(axis=0)
            axes = (int(0.15 * face_px), int(0.11 * face_px))
            cv2.ellipse(
                img, (int(c[0]), int(c[1] + 0.02 * face_px)), axes, 0, 0, 360, (0.01, 0.012, 0.015), -1
            )
        bridge = camera.project(vertices[model.landmark68[[39, 42]]]).astype(int)
        cv2.line(img, tuple(bridge[0]), tuple(bridge[1]), (0.01, 0.012, 0.015), 4)
    elif occluder == "glasses":
        # Thin brown frames, soft as in a small or compressed photo: a rim around each eye and a bridge.
        frame = np.zeros(img.shape[:2], np.float32)
        thick = max(round(0.022 * face_px), 2)
        for eye in (slice(36, 42), slice(42, 48)):
            c = camera.project(vertices[model.landmark68[eye]]).mean(axis=0)
            axes = (int(0.14 * face_px), int(0.09 * face_px))
            cv2.ellipse(frame, (int(c[0]), int(c[1] + 0.02 * face_px)), axes, 0, 0, 360, 1.0, thick)
        bridge = camera.project(vertices[model.landmark68[[39, 42]]])
        mid_y = int(bridge[:, 1].mean() - 0.01 * face_px)
        cv2.line(frame, (int(bridge[0, 0]), mid_y), (int(bridge[1, 0]), mid_y), 1.0, thick)
        frame = cv2.GaussianBlur(frame, (0, 0), 0.006 * face_px)[..., None]
        img = img * (1.0 - frame) + frame * np.array([0.035, 0.02, 0.012], np.float32)
    elif occluder == "fold":
        # A nasolabial fold's shadow, which the mesh lacks: 40 % darker at its line, about 3 mm wide.
        lm68 = camera.project(vertices[model.landmark68])
        for wing, corner in ((31, 48), (35, 54)):
            start = lm68[wing] + 0.3 * (lm68[wing] - lm68[33])
            end = lm68[corner] + 0.6 * (lm68[corner] - lm68[wing])
            line = np.zeros(img.shape[:2], np.float32)
            cv2.line(line, tuple(np.round(start).astype(int)), tuple(np.round(end).astype(int)), 1.0, 1)
            line = cv2.GaussianBlur(line, (0, 0), 0.01 * face_px)
            img = img * (1.0 - 0.4 * line / line.max())[..., None]
    elif occluder == "strands":
        outline = strands_outline(model, vertices, camera)
        inside = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(inside, [np.round(outline).astype(np.int32)], 1)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]].astype(np.float32)
        # Strands slanting down and in, lit from behind: the skin's hue, darker and more saturated.
        stripes = 1.0 + 0.35 * np.sin(2.0 * np.pi * (xx + 0.25 * yy) / (0.025 * face_px))
        hair = np.array(STRAND_COLOUR_LINEAR, np.float32)[None, None, :] * stripes[..., None]
        img = np.where(inside[..., None].astype(bool), hair, img)
    elif occluder == "beard":
        img = _beard(model, vertices, camera, img, face_px, rng)
    elif occluder == "hair":
        top = camera.project(vertices[model.landmark68[[17, 19, 24, 26]]])
        y0 = top[:, 1].min() - 12
        pts = np.array([[0, y0 - 25], [top[2, 0] + 10, y0 - 6], [top[2, 0] + 10, y0 + 14], [0, y0 + 25]])
        cv2.fillPoly(img, [pts.astype(np.int32)], (0.03, 0.02, 0.012))
    lin = img.astype(np.float32)
    lm = lm2 + rng.normal(0.0, noise_px, lm2.shape)
    z = camera.to_camera(points.evaluate(vertices))[:, 2]
    lm3 = np.concatenate([lm, ((z - z.mean()) * FOCAL_PX / z.mean())[:, None]], axis=1).astype(np.float32)
    box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
    face = Face(box=box, score=1.0, landmarks=lm3)
    return Scene(encode_photo(lin), face, vertices, camera, tiles, sh_light, lin)


BEARD_STRANDS = 800
"""Strands of the "beard" occluder: about a third of its pixels are hair."""
BEARD_GAIN = 2.0
"""A strand of the "beard" occluder is this many times as bright as the skin beside it: a grizzled beard
the photometric fit's outlier test takes in part only (at 4 times, it hides the whole lower face)."""


def _beard(model, vertices, camera: Camera, img: np.ndarray, face_px: float, rng) -> np.ndarray:
    """The photo with a gray beard drawn over it: short strands, a pixel thick, hanging down at random
    slants, from the lower cheeks and the nose's base down past the jaw, the lips left bare. A strand is
    :data:`BEARD_GAIN` times as bright as the skin beside it and gray (a white beard on dark skin, lit as the
    skin is)."""
    import cv2

    lm68 = camera.project(vertices[model.landmark68])
    ss = 4  # strands drawn at 4x and reduced: a pixel-thick strand covers its pixels in part
    zone = np.zeros((img.shape[0] * ss, img.shape[1] * ss), np.uint8)
    cv2.fillPoly(zone, [np.round(lm68[[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 35, 33, 31]] * ss).astype(np.int32)], 1)
    cv2.fillPoly(zone, [np.round(lm68[48:60] * ss).astype(np.int32)], 0)
    ys, xs = np.nonzero(zone)
    pick = rng.integers(0, ys.size, BEARD_STRANDS)
    length = 0.04 * face_px * ss
    angle = np.pi / 2 + rng.uniform(-0.5, 0.5, BEARD_STRANDS)
    strands = np.zeros(zone.shape, np.float32)
    for x, y, a in zip(xs[pick], ys[pick], angle):
        end = (int(x + length * np.cos(a)), int(y + length * np.sin(a)))
        cv2.line(strands, (int(x), int(y)), end, 1.0, ss)
    strands *= zone
    cover = cv2.resize(strands, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)[..., None]
    hair = np.minimum(BEARD_GAIN * img.mean(axis=2, keepdims=True), 0.9)
    return img * (1.0 - cover) + hair * cover


def strands_outline(model, vertices: np.ndarray, camera: Camera) -> np.ndarray:
    """(N, 2) pixel polygon of the "strands" occluder: hair hanging from the image's top-left corner over
    the face's side, a quarter of the face's width in from its outline, from the temple to the jaw."""
    lm68 = camera.project(vertices[model.landmark68])
    centre = lm68[30]
    side = lm68[0:6]
    inner = side + 0.25 * (centre - side) / np.linalg.norm(centre - side, axis=1, keepdims=True) * np.linalg.norm(
        lm68[16] - lm68[0]
    )
    top = np.array([[inner[0, 0], 0.0]])
    return np.concatenate([[[0.0, 0.0]], top, inner, [[0.0, inner[-1, 1]]]], axis=0)


def encode_photo(image_linear: np.ndarray) -> Photo:
    """The 8-bit sRGB photo of a linear (HEIGHT, WIDTH, 3) render."""
    srgb = np.round(linear_to_srgb(image_linear) * 255.0) / 255.0
    return Photo(
        path="synthetic",
        image_srgb=srgb.astype(np.float32),
        width=WIDTH,
        height=HEIGHT,
        sha256="0" * 64,
        exif_orientation=1,
        focal_px=FOCAL_PX,
        grayscale=False,
    )


def cheek_ita(model, albedo_tile: np.ndarray) -> float:
    """ITA (degrees) of the mean cheek albedo of a face tile."""
    reg = face_regions(model, albedo_tile.shape[0])
    return float(ita_degrees(albedo_tile[reg.cheeks].mean(axis=0)))
