"""Import of the ICT FaceKit FaceXModel folder into a fast ``.npz`` cache, and the :class:`HeadModel` it holds.

The OBJs are read exactly as published: vertex order kept, quads split along the diagonal from their first
corner ``(a, b, c, d) -> (a, b, c), (a, c, d)``, per-corner UVs kept (``face_uv_ids``), material groups
kept per triangle. ``identityNNN.obj`` is the neutral mesh plus one standard deviation of mode NNN, so
``identity_basis[k] = identityNNN - neutral`` and identity coefficients are ~N(0, 1). Expression OBJs are
the neutral mesh at blendshape weight 1, so ``expression_basis[k] = expr_k - neutral`` with weights in [0, 1].
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from facetwin.errors import FacetwinError
from facetwin.model.locate import cache_dir, find_model_dir

N_IDENTITY = 100
CACHE_FORMAT = 1
"""Bump when the cache layout or the import rules change, so old caches are rebuilt."""

# Material groups that are the skin surface of the head (the rest are eyes, mouth interior, lashes).
SKIN_MATERIALS = ("M_Face", "M_BackHead")
EYE_MATERIALS = (
    "M_ScleraLeft",
    "M_IrisLeft",
    "M_ScleraRight",
    "M_IrisRight",
    "M_LacrimalFluid",
    "M_EyeBlend",
    "M_EyeOcclusion",
)
MOUTH_MATERIALS = ("M_GumsTongue", "M_Teeth")
LASH_MATERIALS = ("M_EyeLashes",)


@dataclass(frozen=True)
class HeadModel:
    """The ICT FaceKit linear head model.

    Attributes:
        neutral: (V, 3) float32, centimetres, head frame; V = 26,719.
        identity_basis: (100, V, 3) float32, centimetres per unit coefficient (one standard deviation).
        expression_basis: (53, V, 3) float32, centimetres at blendshape weight 1.
        expression_names: (53,) ARKit-style names, the order of ``vertex_indices.json["expressions"]``.
        faces: (F, 3) int32 vertex ids of the triangles.
        face_uv_ids: (F, 3) int32 ids into ``uvs`` for each triangle corner.
        uvs: (T, 2) float32, OBJ convention (v up); the integer part of ``u`` is the UV tile.
        face_material: (F,) int16 index into ``material_names``.
        material_names: (M,) names of the OBJ material groups (``M_Face``, ``M_BackHead``, ...).
        landmark68: (68,) int32 vertex ids of the Multi-PIE 68 landmarks.
        rigid_vertices: (R,) int32 vertex ids that move rigidly with the skull.
        fitting_vertices: (G,) int32 vertex ids ICT fits to scans (face region).
        source_sha256: sha256 over the imported source files, for reports.
    """

    neutral: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    faces: np.ndarray
    face_uv_ids: np.ndarray
    uvs: np.ndarray
    face_material: np.ndarray
    material_names: tuple[str, ...]
    landmark68: np.ndarray
    rigid_vertices: np.ndarray
    fitting_vertices: np.ndarray
    source_sha256: str

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    def material_faces(self, names: tuple[str, ...]) -> np.ndarray:
        """(F,) bool mask of the triangles whose material is one of ``names``."""
        ids = [self.material_names.index(n) for n in names if n in self.material_names]
        return np.isin(self.face_material, ids)

    def vertices(
        self, identity_coeffs: np.ndarray | None = None, expression_weights: np.ndarray | None = None
    ) -> np.ndarray:
        """Evaluate the linear model.

        Args:
            identity_coeffs: (100,) or (k,) for the first k modes; None for the mean face.
            expression_weights: (53,) blendshape weights, nominally in [0, 1]; None for neutral.

        Returns:
            (V, 3) float32, centimetres, head frame.
        """
        out = self.neutral.astype(np.float32, copy=True)
        if identity_coeffs is not None:
            c = np.asarray(identity_coeffs, dtype=np.float32).reshape(-1)
            if c.size > self.identity_basis.shape[0]:
                raise ValueError(f"identity_coeffs: at most {self.identity_basis.shape[0]}, got {c.size}")
            out += np.tensordot(c, self.identity_basis[: c.size], axes=1)
        if expression_weights is not None:
            w = np.asarray(expression_weights, dtype=np.float32).reshape(-1)
            if w.size != self.expression_basis.shape[0]:
                raise ValueError(f"expression_weights: expected {self.expression_basis.shape[0]}, got {w.size}")
            out += np.tensordot(w, self.expression_basis, axes=1)
        return out


def _read_obj_vertices(path: Path) -> np.ndarray:
    """(V, 3) float32 positions of the ``v`` lines of an OBJ."""
    lines = path.read_bytes().split(b"\n")
    v = [ln[2:] for ln in lines if ln.startswith(b"v ")]
    return np.array(b" ".join(v).split()).astype(np.float32).reshape(-1, 3)


def _read_obj_topology(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Triangles, per-corner UV ids, UVs and material groups of the neutral OBJ (quads split a-b-c, a-c-d)."""
    uvs, faces, fuv, fmat, materials = [], [], [], [], []
    current = -1
    for ln in path.read_text().splitlines():
        if ln.startswith("vt "):
            uvs.append(ln.split()[1:3])
        elif ln.startswith("usemtl "):
            name = ln.split(maxsplit=1)[1].strip()
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
        elif ln.startswith("f "):
            corners = [c.split("/") for c in ln.split()[1:]]
            vid = [int(c[0]) - 1 for c in corners]
            tid = [int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners]
            for k in range(1, len(corners) - 1):
                faces.append((vid[0], vid[k], vid[k + 1]))
                fuv.append((tid[0], tid[k], tid[k + 1]))
                fmat.append(current)
    if current < 0 and faces:
        raise FacetwinError(f"{path}: faces before any usemtl; not the published ICT FaceKit mesh")
    return (
        np.asarray(faces, dtype=np.int32),
        np.asarray(fuv, dtype=np.int32),
        np.asarray(uvs, dtype=np.float32),
        np.asarray(fmat, dtype=np.int16),
        materials,
    )


def _source_files(model_dir: Path) -> tuple[dict, list[str], list[Path]]:
    index_path = model_dir / "vertex_indices.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise FacetwinError(f"cannot read {index_path}: {exc}") from exc
    names = list(index["expressions"])
    files = [model_dir / "generic_neutral_mesh.obj", index_path]
    files += [model_dir / f"identity{k:03d}.obj" for k in range(N_IDENTITY)]
    files += [model_dir / f"{n}.obj" for n in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FacetwinError(f"ICT FaceKit model in {model_dir} is incomplete: missing {', '.join(missing[:3])}")
    return index, names, files


def _cache_key(files: list[Path]) -> str:
    """Cheap key over names, sizes and mtimes: lets a cached import load without re-hashing 387 MB."""
    h = hashlib.sha256(str(CACHE_FORMAT).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def import_model(model_dir: Path) -> HeadModel:
    """Parse the FaceXModel folder (slow path, a few seconds); see the module docstring for the rules."""
    index, names, files = _source_files(model_dir)
    sha = hashlib.sha256()
    for f in files:
        sha.update(f.read_bytes())
    neutral = _read_obj_vertices(files[0])
    faces, fuv, uvs, fmat, materials = _read_obj_topology(files[0])
    n_v = neutral.shape[0]

    def delta(path: Path) -> np.ndarray:
        v = _read_obj_vertices(path)
        if v.shape != neutral.shape:
            raise FacetwinError(f"{path.name}: {v.shape[0]} vertices, the neutral mesh has {n_v}")
        return v - neutral

    identity = np.stack([delta(f) for f in files[2 : 2 + N_IDENTITY]])
    expression = np.stack([delta(f) for f in files[2 + N_IDENTITY :]])
    return HeadModel(
        neutral=neutral,
        identity_basis=identity,
        expression_basis=expression,
        expression_names=tuple(names),
        faces=faces,
        face_uv_ids=fuv,
        uvs=uvs,
        face_material=fmat,
        material_names=tuple(materials),
        landmark68=np.asarray(index["idx_to_landmark_verts"], dtype=np.int32),
        rigid_vertices=np.asarray(index["idx_to_rigid_verts"], dtype=np.int32),
        fitting_vertices=np.asarray(index["idx_to_fitting_verts"], dtype=np.int32),
        source_sha256=sha.hexdigest(),
    )


def _to_npz_dict(model: HeadModel) -> dict[str, np.ndarray]:
    out = {}
    for f in fields(HeadModel):
        out[f.name] = np.asarray(getattr(model, f.name))
    return out


def _from_npz(data) -> HeadModel:
    kw = {}
    for f in fields(HeadModel):
        val = data[f.name]
        if f.name in ("expression_names", "material_names"):
            kw[f.name] = tuple(str(s) for s in val)
        elif f.name == "source_sha256":
            kw[f.name] = str(val)
        else:
            kw[f.name] = val
    return HeadModel(**kw)


def cached_model_path(model_dir: Path) -> Path:
    _, _, files = _source_files(model_dir)
    return cache_dir() / f"ict-model-{_cache_key(files)}.npz"


def load_model(model: str | os.PathLike | None = None, *, verbose: bool = False) -> HeadModel:
    """Load the head model, importing it into the cache on first use.

    Args:
        model: ``--model`` folder, or None for ``$FACETWIN_MODEL`` / the user cache.

    Raises:
        ModelNotFoundError: no model where the search order looks.
        FacetwinError: the folder is incomplete or unreadable.
    """
    model_dir = find_model_dir(model)
    path = cached_model_path(model_dir)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return _from_npz(data)
    t0 = time.perf_counter()
    head = import_model(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ict-model-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **_to_npz_dict(head))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if verbose:
        print(f"imported ICT FaceKit model from {model_dir} in {time.perf_counter() - t0:.1f} s -> {path}")
    return head
