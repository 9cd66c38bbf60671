"""glTF 2.0 binary (GLB) export: one mesh, one primitive per ICT material group, 53 shared morph targets.

Layout of the file ``build_glb`` returns:

- One node (``name``) holding one mesh. The mesh has one primitive per ICT material group (``M_Face``,
  ``M_BackHead``, ``M_GumsTongue``, ``M_Teeth``, ``M_ScleraLeft``, ``M_IrisLeft``, ..., ``M_EyeLashes``), in
  the model's material order, so eyes, teeth and lashes are separate primitives with their own materials, and
  every primitive carries the same 53 morph targets.
- Vertices of a primitive are the unique ``(vertex id, uv id)`` corners of its triangles, sorted by vertex id,
  so per-corner UVs survive; ``_ICT_VERTEX_ID`` (SCALAR float, exact integers) gives each exported vertex
  its ICT vertex id (glTF's rule for application-specific attributes: a leading underscore, no unsigned int).
- ``POSITION`` is the identity-applied neutral mesh in metres (head frame, ``frames.CM_TO_M``); ``NORMAL``
  are smooth area-weighted normals per ICT vertex, so the split corners of one vertex share a normal and show
  no seam; ``TEXCOORD_0`` is the ICT UV with its tile's integer offset removed (each material's texture is a
  plain ``[0, 1]`` map) and ``v`` flipped by :func:`facetwin.frames.uv_to_gltf`.
- Morph target ``k`` is ``expression_basis[k]`` in metres (``POSITION``) plus the change of the smooth normal
  (``NORMAL``); names in ``mesh.extras.targetNames`` (read by three.js and Blender), in
  ``HeadModel.expression_names`` order. ``mesh.weights`` are the fitted weights, so the file opens showing
  the fitted expression and stays animatable. A target is stored as a sparse accessor (the vertices it moves)
  where that is smaller than dense; most ICT expressions move under half of the head.
- Materials: one per primitive, named as in ICT, metallic-roughness with the factors of
  :data:`MATERIAL_LOOKS`. Sclera, iris and lashes get small procedural textures (a see-through cornea over
  the iris, iris fibres and a black pupil, lash strands) unless the caller gives textures; the lacrimal,
  eye-blend and eye-occlusion films are kept but (nearly) fully transparent (see :data:`MATERIAL_LOOKS`).
- With a camera, a node ``fitted_camera`` holds a perspective camera that sees the photo's view.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from facetwin import __version__
from facetwin.camera import Camera
from facetwin.frames import CM_TO_M, linear_to_srgb, opencv_to_opengl_camera, srgb_to_linear, uv_to_gltf
from facetwin.model.ict import HeadModel
from facetwin.render.shade import vertex_normals

GENERATOR = f"facetwin {__version__}"
"""``asset.generator`` of the exported files."""

VERTEX_ID_ATTRIBUTE = "_ICT_VERTEX_ID"
"""Application-specific vertex attribute: the ICT FaceKit vertex id of each exported vertex."""

CAMERA_NAME = "fitted_camera"

CAMERA_ZNEAR_M = 0.01
"""Near plane of the exported camera: 1 cm, well in front of any head a portrait camera frames."""

CAMERA_ZFAR_M = 100.0
"""Far plane of the exported camera (three.js needs a finite one to build its projection)."""

NORMAL_DELTA_EPS = 1e-4
"""Morph-target normal changes below this (per component, unit normals: under 0.006 degrees) are stored as 0;
invisible in shading, and it keeps the normal targets sparse (6 MB instead of 18 MB dense)."""

ROTATION_TOL = 1e-4
"""How far ``R^T R`` may be from the identity (max abs entry) for ``Camera.R`` to count as a rotation."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# glTF enums (glTF 2.0 spec, 5.1.3 accessor.componentType, 5.11 bufferView.target, 5.26 sampler).
_FLOAT, _USHORT, _UINT = 5126, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071
_GLB_MAGIC, _GLB_VERSION, _CHUNK_JSON, _CHUNK_BIN = 0x46546C67, 2, 0x4E4F534A, 0x004E4942
_MAX_USHORT_INDEX = 65534  # 65535 is the primitive-restart value, not a usable vertex index


@dataclass(frozen=True)
class MaterialLook:
    """Default look of one ICT material group (metallic is always 0: every part of a head is dielectric).

    Attributes:
        colour_srgb: base colour, sRGB-encoded in [0, 1] (glTF stores it linear; MTL ``Kd`` too). A built-in
            texture has it baked in; with any texture the colour factor is white (the texture is the colour).
        alpha: opacity factor (glTF ``baseColorFactor`` alpha, OBJ ``d``).
        alpha_mode: glTF ``alphaMode``: OPAQUE, MASK (cut out where texture alpha < 0.5) or BLEND.
        roughness: perceptual roughness in [0, 1].
        double_sided: render both faces (thin cards such as the lashes).
        texture: name of a built-in texture (:func:`builtin_texture_png`) used when the caller gives none.
    """

    colour_srgb: tuple[float, float, float]
    alpha: float = 1.0
    alpha_mode: str = "OPAQUE"
    roughness: float = 0.5
    double_sided: bool = False
    texture: str | None = None

    @property
    def colour_linear(self) -> tuple[float, float, float]:
        return tuple(float(c) for c in srgb_to_linear(np.asarray(self.colour_srgb)))


_SKIN = (0.80, 0.62, 0.53)
_SCLERA = MaterialLook((0.93, 0.91, 0.88), alpha_mode="MASK", roughness=0.15, texture="sclera")
_IRIS = MaterialLook((0.36, 0.22, 0.13), roughness=0.15, texture="iris")
MATERIAL_LOOKS: dict[str, MaterialLook] = {
    "M_Face": MaterialLook(_SKIN, roughness=0.55),
    "M_BackHead": MaterialLook(_SKIN, roughness=0.6),
    "M_GumsTongue": MaterialLook((0.72, 0.33, 0.33), roughness=0.35),
    "M_Teeth": MaterialLook((0.90, 0.88, 0.80), roughness=0.3),
    # ICT's sclera is the whole eyeball, cornea included, with the iris inside it: the built-in sclera
    # texture cuts the cornea out (MASK) so the iris shows, and darkens the limbus.
    "M_ScleraLeft": _SCLERA,
    "M_ScleraRight": _SCLERA,
    "M_IrisLeft": _IRIS,
    "M_IrisRight": _IRIS,
    # The three shells below are see-through films in ICT FaceKit, drawn with textures it does not ship:
    # a wet strip along the lid (lacrimal fluid), a skin-to-sclera blend at the lid edge, and a soft shadow
    # over the eyeball (occlusion). Untextured, a uniform film only greys the eye, so the wet strip keeps a
    # faint glossy film and the other two are fully transparent; they stay in the mesh (full ICT topology,
    # morph targets intact) so an artist can plug ICT-style textures in.
    "M_LacrimalFluid": MaterialLook((1.0, 1.0, 1.0), alpha=0.1, alpha_mode="BLEND", roughness=0.05),
    "M_EyeBlend": MaterialLook(_SKIN, alpha=0.0, alpha_mode="BLEND"),
    "M_EyeOcclusion": MaterialLook((0.0, 0.0, 0.0), alpha=0.0, alpha_mode="BLEND", roughness=1.0),
    # Lash cards: a uniform colour reads as heavy eyeliner; the built-in texture draws hair strands.
    "M_EyeLashes": MaterialLook(
        (0.05, 0.04, 0.035), alpha_mode="BLEND", roughness=0.6, double_sided=True, texture="lashes"
    ),
}
"""Look of each ICT material; other names get :data:`DEFAULT_LOOK`."""

DEFAULT_LOOK = MaterialLook((0.7, 0.7, 0.7))


def material_look(name: str) -> MaterialLook:
    return MATERIAL_LOOKS.get(name, DEFAULT_LOOK)


# Built-in textures, in the tile-local UVs of their material (image row 0 at OBJ v = 1, as glTF reads it).
CORNEA_UV_RADIUS = 0.16
"""Radius of the clear cornea in the sclera UVs: ICT maps the front half of the eyeball to the disc of radius
0.5 around (0.5, 0.5); the iris rim, 0.77 cm from the eye's axis, lands at 0.163-0.170 (measured on the
published mesh; tests/test_export.py checks it against the geometry)."""

LIMBUS_UV_WIDTH = 0.025
"""Width of the dark limbal ring just outside the cornea, sclera UVs (about 1 mm on the eye)."""

IRIS_UV_RADIUS = 0.5
"""ICT's iris UVs: the front of the iris is the disc of radius 0.5 around (0.5, 0.5); the pupil is a hole in
it, and the pupil's far side and the iris's back lie outside the disc (drawn black)."""

LASH_CARD_ROWS = 6
"""ICT's lash UVs: 6 rows of cards (3 lower-lid rows, then 3 upper-lid rows, bottom to top), each split in
u between the two eyes; a card's root is at its top edge (high v), the tip at its bottom edge."""

_TEXTURE_SIZE = {"sclera": 256, "iris": 256, "lashes": 512}
_PATTERN_SEED = 7  # fixed iris and lash patterns: exports are byte-for-byte reproducible


def _png_bytes(rgba: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(rgba * 255), 0, 255).astype(np.uint8)).save(
        buf, format="PNG", optimize=True
    )
    return buf.getvalue()


def _radius_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """UV radius from (0.5, 0.5) and angle at the pixel centres of a square texture."""
    c = (np.arange(size) + 0.5) / size - 0.5
    du, dv = np.meshgrid(c, -c)
    return np.hypot(du, dv), np.arctan2(dv, du)


@functools.lru_cache(maxsize=16)
def builtin_texture_png(kind: str, colour_srgb: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> bytes:
    """A small procedural RGBA texture for an ICT material that looks wrong as a flat colour.

    ``sclera``: white, a dark limbal ring, alpha 0 over the cornea. ``iris``: radial fibres, a darker rim and
    a lighter collarette, black outside the iris disc. ``lashes``: tapered strands on each card, alpha 0
    between them.

    Args:
        kind: ``"sclera"``, ``"iris"`` or ``"lashes"``.
        colour_srgb: colour the pattern is multiplied by (in linear light), sRGB-encoded in [0, 1].

    Returns:
        PNG bytes (sRGB, straight alpha).
    """
    if kind not in _TEXTURE_SIZE:
        raise ValueError(f"kind: expected one of {sorted(_TEXTURE_SIZE)}, got {kind!r}")
    size = _TEXTURE_SIZE[kind]
    rgba = np.ones((size, size, 4))
    if kind == "sclera":
        rho, _ = _radius_grid(size)
        ring = np.clip((rho - CORNEA_UV_RADIUS) / LIMBUS_UV_WIDTH, 0.0, 1.0)
        rgba[..., :3] = (0.45 + 0.55 * ring**0.7)[..., None]
        rgba[..., 3] = np.clip((rho - CORNEA_UV_RADIUS) * size + 0.5, 0.0, 1.0)
    elif kind == "iris":
        rho, phi = _radius_grid(size)
        r = rho / IRIS_UV_RADIUS
        rng = np.random.default_rng(_PATTERN_SEED)
        fibres = sum(
            a * np.cos(k * phi + p)
            for k, a, p in zip((37, 61, 89, 131), (0.1, 0.08, 0.06, 0.05), rng.uniform(0, 2 * np.pi, 4))
        )
        value = 1.0 + fibres * np.clip(r * 3 - 0.3, 0, 1)
        value *= 1.0 - 0.6 * np.clip((r - 0.8) / 0.2, 0, 1)  # dark limbal rim
        value *= 1.0 + 0.35 * np.exp(-(((r - 0.33) / 0.07) ** 2))  # lighter collarette
        rgba[..., :3] = np.where(r < 1.0, np.clip(value, 0, 1.6) / 1.6, 0.0)[..., None]
    else:
        rgba[..., 3] = 0.0
        rgba = _draw_lashes(rgba, size)
    tint = srgb_to_linear(np.asarray(colour_srgb, dtype=np.float32))
    rgba[..., :3] = linear_to_srgb(srgb_to_linear(rgba[..., :3]) * tint)
    return _png_bytes(rgba)


def _draw_lashes(rgba: np.ndarray, size: int) -> np.ndarray:
    """Tapered strands from each card's root (top) edge towards its tip, alpha-only (RGB stays white)."""
    from PIL import Image, ImageDraw

    scale = 4  # draw at 4x and downsample: anti-aliased strands
    big = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(big)
    rng = np.random.default_rng(_PATTERN_SEED)
    row_h = 1.0 / LASH_CARD_ROWS
    for row in range(LASH_CARD_ROWS):
        upper = row >= LASH_CARD_ROWS // 2
        spacing, length = (0.006, 0.8) if upper else (0.012, 0.55)
        v_root, v_tip = (row + 1) * row_h - 0.012, row * row_h + 0.014  # OBJ v of the card's edges
        for u0, u1 in ((0.012, 0.49), (0.51, 0.988)):
            for u in np.arange(u0 + spacing / 2, u1, spacing):
                u_root = u + rng.uniform(-0.3, 0.3) * spacing
                frac = length * rng.uniform(0.6, 1.0)
                u_tip = u_root + rng.uniform(-0.4, 0.4) * spacing * 2
                v_end = v_root - frac * (v_root - v_tip)
                n_seg = 6
                for k in range(n_seg):  # taper: wide at the root, thin at the tip
                    t0, t1 = k / n_seg, (k + 1) / n_seg
                    p0 = (u_root + (u_tip - u_root) * t0, v_root + (v_end - v_root) * t0)
                    p1 = (u_root + (u_tip - u_root) * t1, v_root + (v_end - v_root) * t1)
                    width = max(1, round(scale * 1.6 * (1.0 - 0.75 * t0)))
                    xy = [(p[0] * size * scale, (1.0 - p[1]) * size * scale) for p in (p0, p1)]
                    draw.line(xy, fill=255, width=width)
    alpha = np.asarray(big.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0
    rgba[..., 3] = np.clip(alpha * 1.5, 0.0, 1.0)
    return rgba


def triangle_tiles(model: HeadModel) -> np.ndarray:
    """UV tile of each triangle: the integer part of its corners' mean ``u``.

    ICT FaceKit lays its material groups out in UDIM-like tiles along ``u`` (face 0, back of head 1, ...); no
    triangle crosses a tile edge, and taking the mean keeps a corner that sits exactly on an edge in its
    triangle's tile.

    Returns:
        (F,) int64 tile index per triangle.
    """
    return np.floor(model.uvs[model.face_uv_ids, 0].astype(np.float64).mean(axis=1)).astype(np.int64)


def smooth_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals for export; a vertex in no (or only degenerate) triangle gets +z.

    Args:
        vertices: (V, 3) float, any unit.
        faces: (F, 3) int vertex ids, counter-clockwise seen from outside.

    Returns:
        (V, 3) float32 unit normals (glTF requires unit length for every ``NORMAL``).
    """
    n = vertex_normals(np.asarray(vertices, dtype=np.float64), faces)
    n[np.linalg.norm(n, axis=1) < 0.5] = (0.0, 0.0, 1.0)  # in no triangle: vertex_normals leaves it zero
    return n.astype(np.float32)


def check_vertices(model: HeadModel, vertices: np.ndarray, what: str) -> np.ndarray:
    """(V, 3) finite float input -> float32 copy, or ValueError naming ``what``."""
    v = np.asarray(vertices)
    if v.shape != model.neutral.shape or not np.issubdtype(v.dtype, np.floating):
        raise ValueError(f"{what}: expected {model.neutral.shape} float, got {v.shape} {v.dtype}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what}: contains NaN or inf")
    return v.astype(np.float32)


def check_textures(model: HeadModel, textures: Mapping | None, allow_paths: bool = False) -> dict:
    """Validate ``{material name: PNG bytes}`` (or a file name, when ``allow_paths``)."""
    if textures is None:
        return {}
    out = {}
    for material, data in textures.items():
        if material not in model.material_names:
            raise ValueError(
                f"textures: unknown material {material!r}; expected one of {model.material_names}"
            )
        if allow_paths and isinstance(data, str):
            out[material] = data
        elif isinstance(data, (bytes, bytearray)) and bytes(data[:8]) == PNG_SIGNATURE:
            out[material] = bytes(data)
        else:
            raise ValueError(f"textures[{material!r}]: expected PNG bytes, got {type(data).__name__}")
    return out


def material_textures(
    model: HeadModel, textures: Mapping[str, bytes | str], builtin: bool
) -> dict[str, tuple[bytes | str, str | None]]:
    """``{material: (PNG bytes or file name, built-in kind or None)}`` for the materials that get a texture.

    A caller's texture wins; otherwise, with ``builtin``, a material whose look names a built-in texture gets
    it, tinted with the look's colour (materials with the same look share the same bytes).
    """
    cache: dict[MaterialLook, bytes] = {}
    out = {}
    for material in model.material_names:
        look = material_look(material)
        if material in textures:
            out[material] = (textures[material], None)
        elif builtin and look.texture is not None:
            if look not in cache:
                cache[look] = builtin_texture_png(look.texture, look.colour_srgb)
            out[material] = (cache[look], look.texture)
    return out


class _Bin:
    """The GLB binary chunk and the glTF arrays that point into it."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.buffer_views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        view = {"buffer": 0, "byteOffset": self.size, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        pad = -len(data) % 4  # every view starts 4-byte aligned (glTF 2.0 spec, 3.6.2.4)
        self.chunks.append(data + b"\0" * pad)
        self.size += len(data) + pad
        self.buffer_views.append(view)
        return len(self.buffer_views) - 1

    def accessor(self, acc: dict) -> int:
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def dense(self, array: np.ndarray, type_: str, target: int | None = None, bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint16): _USHORT, np.dtype(np.uint32): _UINT}
        acc = {
            "bufferView": self.view(array.tobytes(), target),
            "componentType": component[array.dtype],
            "count": int(array.shape[0]),
            "type": type_,
        }
        if bounds:
            acc.update(_bounds(array))
        return self.accessor(acc)

    def vec3_target(self, deltas: np.ndarray, bounds: bool) -> int:
        """A morph-target VEC3 accessor: sparse (moved vertices only) when smaller than dense."""
        deltas = np.ascontiguousarray(deltas, dtype=np.float32)
        n = deltas.shape[0]
        moved = np.flatnonzero(np.any(deltas != 0, axis=1))
        index_dtype = np.uint16 if n <= _MAX_USHORT_INDEX + 1 else np.uint32
        if moved.size * (np.dtype(index_dtype).itemsize + 12) >= n * 12:
            return self.dense(deltas, "VEC3", _ARRAY_BUFFER, bounds=bounds)
        acc = {"componentType": _FLOAT, "count": int(n), "type": "VEC3"}
        if bounds:
            acc.update(_bounds(deltas))
        if moved.size:  # no bufferView and no sparse: all zeros (glTF 2.0 spec, 3.6.2.3)
            acc["sparse"] = {
                "count": int(moved.size),
                "indices": {
                    "bufferView": self.view(moved.astype(index_dtype).tobytes()),
                    "componentType": _USHORT if index_dtype == np.uint16 else _UINT,
                },
                "values": {"bufferView": self.view(np.ascontiguousarray(deltas[moved]).tobytes())},
            }
        return self.accessor(acc)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _bounds(array: np.ndarray) -> dict:
    return {"min": [float(x) for x in array.min(axis=0)], "max": [float(x) for x in array.max(axis=0)]}


def _rotation_to_quaternion(M: np.ndarray) -> list[float]:
    """(3, 3) rotation -> unit quaternion ``[x, y, z, w]`` (glTF order), via the largest diagonal term."""
    m = np.asarray(M, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q) / np.linalg.norm(q)
    return [float(x) for x in q]


def camera_gltf(camera: Camera) -> tuple[dict, dict]:
    """The glTF camera and the node that places it so that it sees what ``camera`` sees.

    glTF cameras have square pixels and the principal point at the image centre: ``yfov`` comes from
    ``K[1, 1]`` and the height, ``aspectRatio`` is ``width / height``. An off-centre principal point cannot be
    stored and shifts the view by ``(cx - width / 2, cy - height / 2)`` pixels; the exact ``K`` is kept in the
    camera's ``extras`` for tools that can use it.

    Returns:
        (camera, node): glTF JSON objects; the node's ``camera`` index is 0.
    """
    K = np.asarray(camera.K, dtype=np.float64)
    R = np.asarray(camera.R, dtype=np.float64)
    t = np.asarray(camera.t, dtype=np.float64).reshape(-1)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[1, 1] <= 0:
        raise ValueError(f"camera.K: expected (3, 3) finite with K[1, 1] > 0, got {K.shape}")
    if R.shape != (3, 3) or np.abs(R.T @ R - np.eye(3)).max() > ROTATION_TOL or np.linalg.det(R) <= 0:
        raise ValueError("camera.R: expected a (3, 3) rotation matrix")
    if t.shape != (3,) or not np.all(np.isfinite(t)):
        raise ValueError(f"camera.t: expected (3,) finite, got {t.shape}")
    if int(camera.width) <= 0 or int(camera.height) <= 0:
        raise ValueError(f"camera: expected a positive image size, got {camera.width} x {camera.height}")
    pose = opencv_to_opengl_camera(R, t * CM_TO_M)
    cam = {
        "name": CAMERA_NAME,
        "type": "perspective",
        "perspective": {
            "yfov": float(2.0 * np.arctan(0.5 * camera.height / K[1, 1])),
            "aspectRatio": float(camera.width / camera.height),
            "znear": CAMERA_ZNEAR_M,
            "zfar": CAMERA_ZFAR_M,
        },
        "extras": {"K_px": K.tolist(), "image_size_px": [int(camera.width), int(camera.height)]},
    }
    node = {
        "name": CAMERA_NAME,
        "camera": 0,
        "rotation": _rotation_to_quaternion(pose[:3, :3]),
        "translation": [float(x) for x in pose[:3, 3]],
    }
    return cam, node


def _material(name: str, texture: int | None) -> dict:
    """glTF material: the look's factors; with a texture, the colour factor is white (the texture is the colour)."""
    look = material_look(name)
    colour = (1.0, 1.0, 1.0) if texture is not None else look.colour_linear
    pbr = {
        "baseColorFactor": [*colour, float(look.alpha)],
        "metallicFactor": 0.0,
        "roughnessFactor": float(look.roughness),
    }
    if texture is not None:
        pbr["baseColorTexture"] = {"index": texture}
    mat = {"name": name, "pbrMetallicRoughness": pbr}
    if look.alpha_mode != "OPAQUE":
        mat["alphaMode"] = look.alpha_mode
    if look.double_sided:
        mat["doubleSided"] = True
    return mat


def build_glb(
    model: HeadModel,
    neutral_cm: np.ndarray,
    expression_weights: np.ndarray,
    *,
    camera: Camera | None = None,
    textures: Mapping[str, bytes] | None = None,
    builtin_textures: bool = True,
    name: str = "facetwin_head",
) -> bytes:
    """The fitted head as a GLB: neutral geometry, 53 morph targets set to the fitted weights, materials.

    See the module docstring for the layout.

    Args:
        model: the ICT FaceKit head model (topology, UVs, materials, expression basis).
        neutral_cm: (V, 3) float, centimetres, head frame: the identity-applied neutral mesh.
        expression_weights: (53,) float, fitted blendshape weights in ``model.expression_names`` order; they
            become the mesh's default ``weights``.
        camera: the fitted camera; adds a perspective camera node ``fitted_camera`` that sees the photo's view.
        textures: ``{material name: PNG bytes}``, each used as that material's ``baseColorTexture`` (sRGB, in
            the material's tile-local ``[0, 1]`` UVs), e.g. an albedo map for ``M_Face`` and ``M_BackHead``.
        builtin_textures: give the sclera, iris and lashes their procedural textures
            (:func:`builtin_texture_png`) where ``textures`` has none; False leaves them flat colours.
        name: name of the mesh and its node.

    Returns:
        The ``.glb`` file's bytes.

    Raises:
        ValueError: an input of the wrong shape, non-finite values, an unknown material or non-PNG texture.
    """
    neutral = check_vertices(model, neutral_cm, "neutral_cm")
    n_expr = model.expression_basis.shape[0]
    weights = np.asarray(expression_weights, dtype=np.float64).reshape(-1)
    if weights.shape != (n_expr,) or not np.all(np.isfinite(weights)):
        raise ValueError(
            f"expression_weights: expected ({n_expr},) finite, got {np.shape(expression_weights)}"
        )
    textures = check_textures(model, textures)
    camera_json = camera_gltf(camera) if camera is not None else None

    scale = np.float32(CM_TO_M)
    positions = neutral * scale
    normals = smooth_normals(neutral, model.faces)
    tiles = triangle_tiles(model)
    bin_ = _Bin()

    gltf: dict = {
        "asset": {"version": "2.0", "generator": GENERATOR},
        "extras": {"topology": "ICT FaceKit", "ict_model_sha256": model.source_sha256},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "materials": [],
    }

    texture_of: dict[str, int] = {}
    image_of: dict[bytes, int] = {}  # one image for identical PNGs (both scleras, both irises)
    chosen = material_textures(model, textures, builtin_textures)
    for material, (png, kind) in chosen.items():
        if not image_of:
            gltf["samplers"] = [
                {
                    "magFilter": _LINEAR,
                    "minFilter": _LINEAR_MIPMAP_LINEAR,
                    "wrapS": _CLAMP_TO_EDGE,
                    "wrapT": _CLAMP_TO_EDGE,
                }
            ]
            gltf["images"], gltf["textures"] = [], []
        if png not in image_of:
            image = {"name": kind or material, "mimeType": "image/png", "bufferView": bin_.view(png)}
            gltf["images"].append(image)
            gltf["textures"].append({"sampler": 0, "source": len(gltf["images"]) - 1})
            image_of[png] = len(gltf["textures"]) - 1
        texture_of[material] = image_of[png]

    # Per-primitive corner split; the morph deltas are gathered from these vertex ids below.
    primitives, prim_vertex_ids = [], []
    for m_index, material in enumerate(model.material_names):
        tri = np.flatnonzero(model.face_material == m_index)
        if tri.size == 0:
            continue
        corners = np.stack(
            [
                model.faces[tri].reshape(-1),
                model.face_uv_ids[tri].reshape(-1),
                np.repeat(tiles[tri], 3),
            ],
            axis=1,
        ).astype(np.int64)
        keys, inverse = np.unique(corners, axis=0, return_inverse=True)
        vids = keys[:, 0]
        uv = model.uvs[keys[:, 1]].astype(np.float32)
        uv[:, 0] -= keys[:, 2].astype(np.float32)  # exact: u and its tile are within a factor of 2
        index_dtype = np.uint16 if keys.shape[0] <= _MAX_USHORT_INDEX + 1 else np.uint32
        attributes = {
            "POSITION": bin_.dense(positions[vids], "VEC3", _ARRAY_BUFFER, bounds=True),
            "NORMAL": bin_.dense(normals[vids], "VEC3", _ARRAY_BUFFER),
            "TEXCOORD_0": bin_.dense(uv_to_gltf(uv), "VEC2", _ARRAY_BUFFER),
            VERTEX_ID_ATTRIBUTE: bin_.dense(vids.astype(np.float32), "SCALAR", _ARRAY_BUFFER),
        }
        indices = bin_.dense(inverse.reshape(-1).astype(index_dtype), "SCALAR", _ELEMENT_ARRAY_BUFFER)
        gltf["materials"].append(_material(material, texture_of.get(material)))
        primitives.append(
            {
                "attributes": attributes,
                "indices": indices,
                "material": len(gltf["materials"]) - 1,
                "targets": [],
            }
        )
        prim_vertex_ids.append(vids)

    for k in range(n_expr):
        basis = model.expression_basis[k].astype(np.float32)
        d_position = basis * scale
        d_normal = smooth_normals(neutral + basis, model.faces) - normals
        d_normal[np.abs(d_normal) < NORMAL_DELTA_EPS] = 0.0
        for prim, vids in zip(primitives, prim_vertex_ids):
            prim["targets"].append(
                {
                    "POSITION": bin_.vec3_target(d_position[vids], bounds=True),
                    "NORMAL": bin_.vec3_target(d_normal[vids], bounds=False),
                }
            )

    gltf["meshes"] = [
        {
            "name": name,
            "primitives": primitives,
            "weights": [float(w) for w in weights],
            "extras": {"targetNames": list(model.expression_names)},
        }
    ]
    if camera_json is not None:
        cam, node = camera_json
        gltf["cameras"] = [cam]
        gltf["nodes"].append(node)
        gltf["scenes"][0]["nodes"].append(len(gltf["nodes"]) - 1)
    gltf["accessors"] = bin_.accessors
    gltf["bufferViews"] = bin_.buffer_views
    data = bin_.data()
    gltf["buffers"] = [{"byteLength": len(data)}]
    return pack_glb(gltf, data)


def pack_glb(gltf: dict, data: bytes) -> bytes:
    """GLB container (glTF 2.0 spec, 4.4): 12-byte header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
    js = json.dumps(gltf, separators=(",", ":"), allow_nan=False).encode("utf-8")
    js += b" " * (-len(js) % 4)
    data += b"\0" * (-len(data) % 4)
    total = 12 + 8 + len(js) + 8 + len(data)
    return b"".join(
        [
            struct.pack("<III", _GLB_MAGIC, _GLB_VERSION, total),
            struct.pack("<II", len(js), _CHUNK_JSON),
            js,
            struct.pack("<II", len(data), _CHUNK_BIN),
            data,
        ]
    )
