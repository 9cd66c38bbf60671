"""Correspondence from the detector's 478 landmarks to points on the ICT FaceKit surface.

How it is derived (by this module, at model import, never shipped as data): the mean ICT head, neutral,
is rendered with painted eyes and skin-coloured Lambert shading from a grid of views (yaw -30..30 degrees,
pitch -10..10 degrees). The face-landmark model bundled with mediapipe runs on each render, exactly as on a
photo. Each detected landmark's pixel is looked up in the render's raster (triangle id + barycentrics),
which gives the surface point that landmark sits on in that view. Per landmark, the candidates of all
views are pooled, weighted by how squarely the surface faces the camera there (contour landmarks sit on
the silhouette and move over the surface with the view; a frontal look at that surface pins them best),
outliers farther than :data:`OUTLIER_CM` from the median are dropped, and the weighted mean is snapped to
the closest point of the face surface. The result is cached next to the imported model.
"""

from __future__ import annotations

import hashlib

import numpy as np

from facetwin.camera import intrinsics
from facetwin.errors import FacetwinError
from facetwin.fit.landmarks import SurfacePoints
from facetwin.frames import linear_to_srgb
from facetwin.model.ict import HeadModel
from facetwin.model.locate import cached_arrays
from facetwin.render.raster import rasterize
from facetwin.render.shade import vertex_normals

N_LANDMARKS = 478
CORRESPONDENCE_VERSION = 2
"""Bump when the derivation changes, so cached correspondences are rebuilt."""

VIEW_YAWS_DEG = (-30.0, -15.0, 0.0, 15.0, 30.0)
VIEW_PITCHES_DEG = (-10.0, 0.0, 10.0)
RENDER_SIZE = 512
RENDER_FOCAL_PX = 1400.0
RENDER_DISTANCE_CM = 60.0
OUTLIER_CM = 0.8
"""A view's surface point this far from the per-landmark median is a detector slip, not a view effect."""
MIN_VIEWS = 3

# Flat colours (linear RGB) that make a grey render read as a face to the landmark model.
_MATERIAL_COLOURS = {
    "M_Face": (0.55, 0.36, 0.28),
    "M_BackHead": (0.55, 0.36, 0.28),
    "M_ScleraLeft": (0.85, 0.85, 0.82),
    "M_ScleraRight": (0.85, 0.85, 0.82),
    "M_IrisLeft": (0.05, 0.03, 0.02),
    "M_IrisRight": (0.05, 0.03, 0.02),
    "M_Teeth": (0.8, 0.78, 0.7),
    "M_GumsTongue": (0.4, 0.08, 0.08),
    "M_EyeLashes": (0.02, 0.02, 0.02),
}
IRIS_COS = np.cos(np.radians(38.0))
"""Angular radius of the iris on the eyeball (about 6 mm on a 12 mm-radius eye)."""
PUPIL_COS = np.cos(np.radians(14.0))
IRIS_COLOUR = (0.12, 0.07, 0.04)
PUPIL_COLOUR = (0.01, 0.01, 0.01)
# See-through layers over the eyes: leaving them out shows the painted eyes.
_HIDDEN_MATERIALS = ("M_EyeOcclusion", "M_LacrimalFluid", "M_EyeBlend")
SNAP_MATERIALS = ("M_Face", "M_ScleraLeft", "M_ScleraRight")
"""Surfaces a landmark may land on; the first is where hits on lashes and teeth are counted."""
SNAP_GRID = 6
"""Barycentric grid step 1/6 per triangle: ICT face edges are ~3 mm, so snapping errs by < 0.3 mm."""
MIN_VIEW_COSINE = 0.05


def view_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """(3, 3) head-to-camera rotation for a head turned by ``yaw`` and nodded by ``pitch`` (degrees)."""
    from scipy.spatial.transform import Rotation

    turn = Rotation.from_euler("YX", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    return np.diag([1.0, -1.0, -1.0]) @ turn


def render_painted(model: HeadModel, vertices: np.ndarray, R: np.ndarray, t: np.ndarray, K: np.ndarray, size: int):
    """Render the head with flat material colours and Lambert shading from a light at the camera.

    Returns:
        image_srgb: (size, size, 3) float32.
        raster: the :class:`~facetwin.render.raster.Raster`; its triangle ids index ``draw_ids``.
        draw_ids: (F',) int64 ids into ``model.faces`` of the rasterised triangles.
    """
    verts_cam = vertices.astype(np.float64) @ R.T + t
    draw_ids = np.flatnonzero(~model.material_faces(_HIDDEN_MATERIALS))
    faces = model.faces[draw_ids]
    raster = rasterize(verts_cam, faces, K, size, size)
    colours = np.full((len(model.material_names), 3), 0.3)
    for name, rgb in _MATERIAL_COLOURS.items():
        if name in model.material_names:
            colours[model.material_names.index(name)] = rgb
    face_colour = colours[model.face_material]
    _paint_irises(model, vertices, face_colour)
    normals = vertex_normals(verts_cam, model.faces)
    cov = raster.covered
    tri = raster.tri_id[cov]
    n = np.einsum("nk,nkd->nd", raster.bary[cov], normals[faces[tri]])
    view = -np.einsum("nk,nkd->nd", raster.bary[cov], verts_cam[faces[tri]])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    shade = 0.25 + 0.75 * np.clip((n * view).sum(axis=1), 0.0, 1.0)
    img = np.full((size, size, 3), 0.9, dtype=np.float32)
    img[cov] = face_colour[draw_ids][tri] * shade[:, None]
    return linear_to_srgb(img), raster, draw_ids


def _paint_irises(model: HeadModel, vertices: np.ndarray, face_colour: np.ndarray) -> None:
    """Paint iris and pupil onto the sclera meshes, in place: the ICT iris meshes sit behind the sclera."""
    for name in ("M_ScleraLeft", "M_ScleraRight"):
        if name not in model.material_names:
            continue
        sel = np.flatnonzero(model.face_material == model.material_names.index(name))
        centroids = vertices[model.faces[sel]].mean(axis=1)
        centre = vertices[np.unique(model.faces[sel])].mean(axis=0)
        d = centroids - centre
        cos_forward = d[:, 2] / np.linalg.norm(d, axis=1)
        face_colour[sel[cos_forward > IRIS_COS]] = IRIS_COLOUR
        face_colour[sel[cos_forward > PUPIL_COS]] = PUPIL_COLOUR


def derive_correspondence(model: HeadModel) -> SurfacePoints:
    """Derive the 478 -> ICT surface correspondence by detecting landmarks on renders (module docstring).

    Raises:
        FacetwinError: the detector missed the rendered face in too many views.
    """
    from scipy.spatial import cKDTree

    from facetwin.detect import detect_faces

    verts = model.neutral.astype(np.float64)
    K = intrinsics(RENDER_FOCAL_PX, RENDER_SIZE, RENDER_SIZE)
    # Centre the render on the face: the head-frame origin is not at the face centre.
    face_centre = verts[model.landmark68].mean(axis=0)
    candidates = [[] for _ in range(N_LANDMARKS)]
    weights = [[] for _ in range(N_LANDMARKS)]
    materials = [[] for _ in range(N_LANDMARKS)]
    snap_ids = [model.material_names.index(n) for n in SNAP_MATERIALS]
    face_id = snap_ids[0]
    n_views = 0
    normals_head = vertex_normals(verts, model.faces)
    for yaw in VIEW_YAWS_DEG:
        for pitch in VIEW_PITCHES_DEG:
            R = view_rotation(yaw, pitch)
            t = np.array([0.0, 0.0, RENDER_DISTANCE_CM]) - R @ face_centre
            image, raster, draw_ids = render_painted(model, verts, R, t, K, RENDER_SIZE)
            det = detect_faces(image)
            if not det.faces:
                continue
            n_views += 1
            lm = det.faces[0].landmarks[:, :2]
            px = np.clip(np.floor(lm).astype(int), 0, RENDER_SIZE - 1)
            tri = raster.tri_id[px[:, 1], px[:, 0]]
            for i in np.flatnonzero(tri >= 0):
                ids = model.faces[draw_ids[tri[i]]]
                b = raster.bary[px[i, 1], px[i, 0]].astype(np.float64)
                point = b @ verts[ids]
                normal = b @ normals_head[ids]
                view_dir = -(R.T @ (R @ point + t))
                cosine = float(normal @ view_dir / (np.linalg.norm(normal) * np.linalg.norm(view_dir) + 1e-12))
                candidates[i].append(point)
                weights[i].append(max(cosine, MIN_VIEW_COSINE) ** 2)
                mat = int(model.face_material[draw_ids[tri[i]]])
                materials[i].append(mat if mat in snap_ids else face_id)
    if n_views < MIN_VIEWS:
        raise FacetwinError(f"landmark detector found the rendered head in only {n_views} views; cannot derive correspondence")

    # Dense samples of each surface a landmark may sit on (triangle + barycentrics), to snap to the surface.
    sample_bary = _barycentric_grid(SNAP_GRID)
    surfaces = {}
    for mat in snap_ids:
        tris = model.faces[model.face_material == mat]
        pts = np.einsum("sk,fkd->fsd", sample_bary, verts[tris]).reshape(-1, 3)
        surfaces[mat] = (tris, cKDTree(pts))
    vertex_ids = np.zeros((N_LANDMARKS, 3), dtype=np.int64)
    bary = np.zeros((N_LANDMARKS, 3))
    for i in range(N_LANDMARKS):
        if len(candidates[i]) < MIN_VIEWS:
            raise FacetwinError(f"landmark {i} was seen in only {len(candidates[i])} rendered views")
        pts = np.asarray(candidates[i])
        w = np.asarray(weights[i])
        keep = np.linalg.norm(pts - np.median(pts, axis=0), axis=1) < OUTLIER_CM
        if keep.sum() == 0:
            keep[:] = True
        mean = (w[keep, None] * pts[keep]).sum(axis=0) / w[keep].sum()
        # Snap to the surface most views saw it on: iris landmarks belong on the eyeball, lid ones on skin.
        mats, counts = np.unique(np.asarray(materials[i])[keep], return_counts=True)
        tris, tree = surfaces[int(mats[np.argmax(counts)])]
        _, j = tree.query(mean)
        f, k = divmod(int(j), sample_bary.shape[0])
        vertex_ids[i] = tris[f]
        bary[i] = sample_bary[k]
    return SurfacePoints(vertex_ids=vertex_ids, bary=bary)


def _barycentric_grid(n: int) -> np.ndarray:
    """(M, 3) barycentric coordinates on a regular grid of step 1/n over a triangle."""
    pts = [(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)]
    return np.asarray(pts, dtype=np.float64) / n


def landmark_correspondence(model: HeadModel) -> SurfacePoints:
    """The cached 478 -> ICT correspondence, derived on first use (a few seconds)."""
    key = hashlib.sha256(f"{model.source_sha256}|{CORRESPONDENCE_VERSION}".encode()).hexdigest()[:20]

    def derive() -> dict:
        points = derive_correspondence(model)
        return {"vertex_ids": points.vertex_ids, "bary": points.bary}

    data = cached_arrays(f"correspondence478-{key}.npz", derive)
    return SurfacePoints(vertex_ids=data["vertex_ids"], bary=data["bary"])
