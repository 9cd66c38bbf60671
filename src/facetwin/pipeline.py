"""Orchestration: photo -> Detection -> Fit -> export, timed per stage, written atomically.

Stages are pure functions in their modules; this module is the only place that sequences them, measures
them and writes a result folder (through :mod:`facetwin.io`).
"""

from __future__ import annotations

import json
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetwin import __version__
from facetwin.errors import FacetwinError, NoFaceError
from facetwin.model.ict import HeadModel

CONTOUR_WEIGHT = 0.5
"""Prior weight of the detector's face-oval landmarks: they follow the silhouette, which moves with pose."""


@dataclass
class Timer:
    """Per-stage wall-clock seconds, in the order the stages ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True)
class Result:
    """What :func:`reconstruct` wrote."""

    photo: Path
    out_dir: Path
    report: dict


def contour_landmark_ids() -> np.ndarray:
    """Indices of the 478 landmarks on the face oval (mediapipe's FACEMESH_FACE_OVAL connections)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.unique(np.asarray(list(FACEMESH_FACE_OVAL)).ravel())


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"facetwin": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "torch", "mediapipe", "pillow", "pygltflib", "numba"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _face_json(face) -> dict:
    return {
        "box": [round(float(x), 2) for x in face.box],
        "score": round(float(face.score), 4),
        "landmarks478": np.round(face.landmarks, 2).tolist(),
    }


def reconstruct(
    photo_path: str | Path,
    out_dir: str | Path,
    model: HeadModel,
    *,
    face_index: int | None = None,
    focal_px: float | None = None,
    log=None,
) -> Result:
    """Photo to a result folder: ``avatar.glb``, ``avatar.obj`` + ``.mtl``, ``renders/overlay.png``, ``report.json``.

    Args:
        photo_path: the portrait.
        out_dir: the result folder to create (replaced if it exists; written to a temporary sibling first).
        model: the loaded head model.
        face_index: which detected face (0 = largest); None picks the largest.
        focal_px: focal length in pixels overriding EXIF and the estimate.
        log: optional ``callable(str)`` told each stage's name as it starts.

    Raises:
        FacetwinError: bad input (unreadable photo, no face, bad face index, unwritable output).
    """
    from facetwin.detect import detect_faces
    from facetwin.export.gltf import build_glb
    from facetwin.export.obj import build_obj
    from facetwin.fit.correspondence import landmark_correspondence
    from facetwin.fit.geometry import rotation_angles_deg
    from facetwin.fit.landmarks import fit_landmarks
    from facetwin.fit.landmarks68 import landmarks68_surface
    from facetwin.io import atomic_output_dir, read_photo, write_png
    from facetwin.render.preview import render_overlay

    say = log or (lambda _msg: None)
    timer = Timer()
    t_start = time.perf_counter()
    photo_path = Path(photo_path)
    out_dir = Path(out_dir)

    say("reading photo")
    with timer.stage("load"):
        photo = read_photo(photo_path)
    say("detecting faces")
    with timer.stage("detect"):
        detection = detect_faces(photo.image_srgb)
    if not detection.faces:
        raise NoFaceError(f"{photo_path}: no face found")
    index = 0 if face_index is None else face_index
    if not 0 <= index < len(detection.faces):
        raise FacetwinError(f"{photo_path}: --face {index} asked for, but {len(detection.faces)} face(s) found")
    face = detection.faces[index]

    say("fitting the head")
    with timer.stage("fit"):
        points = landmark_correspondence(model)
        weights = np.ones(points.vertex_ids.shape[0])
        weights[contour_landmark_ids()] = CONTOUR_WEIGHT
        focal = focal_px or photo.focal_px
        fit = fit_landmarks(
            model,
            points,
            face.landmarks[:, :2],
            (photo.width, photo.height),
            landmark_weights=weights,
            focal_px=focal,
        )
        surface68 = landmarks68_surface(model, fit.vertices, fit.camera, points)
        landmarks68 = fit.camera.project(surface68.evaluate(fit.vertices))

    say("exporting")
    with timer.stage("export"):
        neutral = model.vertices(fit.identity_coeffs)
        glb = build_glb(model, neutral, fit.expression_weights, camera=fit.camera)
        obj_files = build_obj(model, fit.vertices, name="avatar")

    say("rendering overlay")
    with timer.stage("render"):
        verts_cam = fit.camera.to_camera(fit.vertices)
        overlay = render_overlay(
            photo.image_srgb,
            verts_cam,
            model.faces,
            fit.camera.K,
            face_mask=model.material_faces(("M_Face", "M_ScleraLeft", "M_ScleraRight", "M_IrisLeft", "M_IrisRight")),
            points_px=landmarks68,
        )

    residual = fit.residual_px[np.isfinite(fit.residual_px)]
    report = {
        "facetwin_version": __version__,
        "input": {
            "path": str(photo_path.resolve()),
            "width": photo.width,
            "height": photo.height,
            "sha256": photo.sha256,
            "exif_orientation": photo.exif_orientation,
            "grayscale": bool(photo.grayscale),
        },
        "faces": [_face_json(f) for f in detection.faces],
        "selected_face": index,
        "camera": {
            "K": fit.camera.K.tolist(),
            "R": fit.camera.R.tolist(),
            "t": fit.camera.t.tolist(),
            "width": photo.width,
            "height": photo.height,
            "focal_source": "option" if focal_px else ("exif" if photo.focal_px else "estimated"),
            "frames": "X_cam = R @ X_head + t; head frame cm (x subject's left, y up, z out of the face); "
            "OpenCV camera (x right, y down, z forward); pixels with the top-left corner at (0, 0)",
        },
        "head_pose_deg": rotation_angles_deg(fit.camera.R),
        "landmarks68": np.round(landmarks68, 3).tolist(),
        "landmarks68_surface": {
            "vertex_ids": surface68.vertex_ids.tolist(),
            "bary": np.round(surface68.bary, 6).tolist(),
            "about": "each landmark is bary-weighted ICT vertices of the fitted mesh, projected with camera",
        },
        "identity_coeffs": np.round(fit.identity_coeffs, 5).tolist(),
        "expression_weights": {
            n: round(float(w), 5) for n, w in zip(model.expression_names, fit.expression_weights)
        },
        "fit": {
            "landmarks": int(residual.size),
            "face_size_px": round(fit.face_size_px, 2),
            "residual_px_mean": round(float(residual.mean()), 3),
            "residual_px_median": round(float(np.median(residual)), 3),
            "residual_px_p95": round(float(np.percentile(residual, 95)), 3),
            "residual_mean_over_face_size": round(float(residual.mean() / fit.face_size_px), 5),
            "outlier_landmarks": int((fit.landmark_weights < 0.5 * fit.landmark_weights.max()).sum()),
        },
        "model": {"name": "ICT FaceKit", "sha256": model.source_sha256, "vertices": model.n_vertices},
        "files": sorted(["avatar.glb", "renders/overlay.png", "report.json", *obj_files]),
        "versions": package_versions(),
    }

    say("writing")
    with timer.stage("write"), atomic_output_dir(out_dir, force=True) as tmp:
        (tmp / "renders").mkdir()
        (tmp / "avatar.glb").write_bytes(glb)
        for name, data in obj_files.items():
            (tmp / name).write_bytes(data)
        write_png(tmp / "renders" / "overlay.png", overlay)
        timer.seconds["total"] = time.perf_counter() - t_start
        report["timings"] = {k: round(v, 4) for k, v in timer.seconds.items()}
        (tmp / "report.json").write_text(json.dumps(report, indent=1))
    return Result(photo=photo_path, out_dir=out_dir, report=report)
