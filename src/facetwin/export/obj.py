"""Wavefront OBJ + MTL export of one posed head, in ICT FaceKit vertex order.

- ``v``: the ICT vertices in their published order, in **metres** (head frame: x the subject's left, y up,
  z out of the face). OBJ has no units; metres match the GLB and Blender's OBJ importer, which reads OBJ
  units as metres. Printed with 9 significant digits, so float32 values read back exactly.
- ``vt``: the published ICT UVs in their published order, OBJ convention (v up), with each triangle's UV tile
  removed from ``u`` (``u - tile``): ICT lays its material groups out in UDIM-like tiles along ``u``, and a
  plain OBJ viewer expects each material's texture in ``[0, 1]``.
- ``vn``: smooth area-weighted normals, one per vertex (same index as ``v``).
- ``f v/vt/vn``: triangles (ICT quads split from their first corner, as :mod:`facetwin.model.ict` reads them),
  one ``usemtl`` group per ICT material, in the model's material and triangle order.
- MTL: one ``newmtl`` per ICT material with the same look as the GLB (``Kd`` linear, ``d`` for the
  see-through eye films), ``map_Kd`` (and ``map_d`` for cut-out or blended materials) where a texture is
  given or built in (sclera, iris, lashes: the same PNGs as the GLB).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from facetwin.export.gltf import (
    GENERATOR,
    check_textures,
    check_vertices,
    material_look,
    material_textures,
    smooth_normals,
    triangle_tiles,
)
from facetwin.frames import CM_TO_M
from facetwin.model.ict import HeadModel

_FLOAT_FORMAT = "%.9g"  # 9 significant digits: every float32 survives a text round trip (IEEE 754, 5.12.2)


def _rows(prefix: str, array: np.ndarray) -> str:
    fmt = prefix + " " + " ".join([_FLOAT_FORMAT] * array.shape[1])
    return "\n".join(fmt % tuple(row) for row in array.tolist()) + "\n"


def tile_local_uvs(model: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """UVs with each triangle's tile offset removed, and which of them each triangle corner uses.

    Returns:
        (uvs, corner_uv_ids): (T', 2) float32 OBJ-convention UVs with ``u`` in ``[0, 1]`` (T' = T for the
        published model: every ICT uv id lies in a single tile), and (F, 3) int64 ids into them. The order
        follows the published uv ids.
    """
    tiles = np.repeat(triangle_tiles(model), 3)
    keys = np.stack([model.face_uv_ids.reshape(-1).astype(np.int64), tiles], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    uvs = model.uvs[unique[:, 0]].astype(np.float32)
    uvs[:, 0] -= unique[:, 1].astype(np.float32)  # exact: u and its tile are within a factor of 2
    return uvs, inverse.reshape(-1, 3)


def build_obj(
    model: HeadModel,
    vertices_cm: np.ndarray,
    *,
    name: str = "avatar",
    textures: Mapping[str, bytes | str] | None = None,
    builtin_textures: bool = True,
) -> dict[str, bytes]:
    """The head as an OBJ with its MTL (see the module docstring for the conventions).

    Args:
        model: the ICT FaceKit head model (topology, UVs, materials).
        vertices_cm: (V, 3) float, centimetres, head frame: the posed mesh (identity and expression applied).
        name: base file name: the result holds ``{name}.obj`` and ``{name}.mtl``.
        textures: ``{material name: PNG bytes or file name}`` for ``map_Kd``. Bytes are returned as
            ``{name}_{material}.png`` beside the OBJ; a file name is referenced as given (the caller writes it).
        builtin_textures: give the sclera, iris and lashes their procedural textures (returned as
            ``{name}_{kind}.png``; see :func:`facetwin.export.gltf.builtin_texture_png`) where ``textures`` has
            none; False leaves them flat colours.

    Returns:
        ``{file name: bytes}``: ``{name}.obj``, ``{name}.mtl`` and the texture PNGs the MTL names.

    Raises:
        ValueError: vertices of the wrong shape or non-finite, an unknown material or a non-PNG texture.
    """
    vertices = check_vertices(model, vertices_cm, "vertices_cm")
    textures = check_textures(model, textures, allow_paths=True)
    if not name or any(c in name for c in "/\\\n"):
        raise ValueError(f"name: expected a plain file stem, got {name!r}")

    positions = vertices * np.float32(CM_TO_M)
    normals = smooth_normals(vertices, model.faces)
    uvs, corner_uv = tile_local_uvs(model)
    files: dict[str, bytes] = {}

    parts = [
        f"# {GENERATOR}: ICT FaceKit topology, {model.n_vertices} vertices in ICT order\n",
        "# units: metres; head frame: x = subject's left, y up, z out of the face\n",
        "# vt: ICT UVs with the tile offset removed per material (u - tile), each material in [0, 1]\n",
        f"mtllib {name}.mtl\no {name}\n",
        _rows("v", positions),
        _rows("vt", uvs),
        _rows("vn", normals),
    ]
    corners = np.stack([model.faces + 1, corner_uv + 1, model.faces + 1], axis=2).reshape(-1, 9)
    for m_index, material in enumerate(model.material_names):
        tri = np.flatnonzero(model.face_material == m_index)
        if tri.size == 0:
            continue
        parts.append(f"usemtl {material}\n")
        parts.append("".join("f {}/{}/{} {}/{}/{} {}/{}/{}\n".format(*c) for c in corners[tri].tolist()))
    files[f"{name}.obj"] = "".join(parts).encode("ascii")

    mtl = [
        f"# {GENERATOR}: materials of {name}.obj (Kd linear RGB; white where a texture gives the colour)\n"
    ]
    chosen = material_textures(model, textures, builtin_textures)
    for m_index, material in enumerate(model.material_names):
        if not np.any(model.face_material == m_index):
            continue
        look = material_look(material)
        kd = (1.0, 1.0, 1.0) if material in chosen else look.colour_linear
        mtl.append(f"\nnewmtl {material}\n")
        # Ns = 1000 (1 - roughness)^2 is the inverse of Blender's OBJ import rule roughness = 1 - sqrt(Ns / 1000).
        ns = 1000.0 * (1.0 - look.roughness) ** 2
        mtl.append(f"Kd {kd[0]:.6f} {kd[1]:.6f} {kd[2]:.6f}\nNs {ns:.1f}\nd {look.alpha:.3f}\nillum 2\n")
        if material not in chosen:
            continue
        data, kind = chosen[material]
        if isinstance(data, str):
            file_name = data
        else:
            file_name = f"{name}_{kind or material}.png"
            files[file_name] = data
        mtl.append(f"map_Kd {file_name}\n")
        if look.alpha_mode != "OPAQUE":
            mtl.append(f"map_d {file_name}\n")  # cut-out / see-through from the PNG's alpha
    files[f"{name}.mtl"] = "".join(mtl).encode("ascii")
    return files
