"""Orchestration: photo -> Detection -> Fit -> export, timed per stage, written atomically.

Stages are pure functions in their modules; this module is the only place that sequences them, measures
them and writes a result folder (through :mod:`facetwin.io`).
"""

from __future__ import annotations

import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetwin import __version__
from facetwin.errors import FacetwinError, NoFaceError
from facetwin.model.ict import HeadModel

_TEXTURE_OF = {"M_Face": "textures/albedo.png", "M_BackHead": "textures/albedo_back.png"}
"""Which written texture colours which material."""
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


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory in the process instead of handing it back to the system at once.

    The appearance stage allocates and frees hundreds of tile-sized arrays (16 to 100 MB at 2048). By default
    glibc maps each one afresh and unmaps it on free, so every array costs a page fault per 4 KiB touched:
    about 1.5 s of frederick_douglass_1879's 9.7 s appearance stage here (8.2 s without), 8 s of astronaut's
    37 s run at 4096 (28.5 s without). Serving them from the heap, which is never trimmed, reuses the pages.
    The cost is memory: the heap fragments, and the peak resident size rose from 1.55 to 1.8 GB for a photo
    at 2048 and from 4.5 to 5.5 GB at 4096 (a smaller trim threshold or no top pad kept 5.2-5.4 GB).
    Process-wide, so only the command line and the benchmark call it, not the library.

    Returns:
        True where the C library took the settings (glibc); False elsewhere (macOS, musl), changing nothing.
    """
    import ctypes

    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1)) and bool(
        mallopt(m_top_pad, 256 << 20)
    )


def contour_landmark_ids() -> np.ndarray:
    """Indices of the 478 landmarks on the face oval (mediapipe's FACEMESH_FACE_OVAL connections)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    return np.unique(np.asarray(list(FACEMESH_FACE_OVAL)).ravel())


def fit_face(model: HeadModel, points, photo, face, *, focal_px: float | None = None):
    """Landmark fit of one detected face: the detector's 478 points through the correspondence ``points``,
    face-oval points down-weighted (:data:`CONTOUR_WEIGHT`), focal from ``focal_px``, else EXIF, else estimated.
    """
    from facetwin.fit.landmarks import fit_landmarks

    weights = np.ones(points.vertex_ids.shape[0])
    weights[contour_landmark_ids()] = CONTOUR_WEIGHT
    return fit_landmarks(
        model,
        points,
        face.landmarks[:, :2],
        (photo.width, photo.height),
        landmark_weights=weights,
        focal_px=focal_px or photo.focal_px,
    )


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


def _appearance_files(appearance, albedo_bits: int) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """PNG files of the appearance stage, and the 8-bit albedo PNGs the GLB embeds, by material."""
    from facetwin.frames import linear_to_srgb
    from facetwin.io import encode_png

    albedo = {
        "M_Face": linear_to_srgb(appearance.albedo_uv_linear),
        "M_BackHead": linear_to_srgb(appearance.albedo_back_uv_linear),
    }
    images = {("eight", m): (a, 8) for m, a in albedo.items()}
    if albedo_bits != 8:
        images |= {("deep", m): (a, albedo_bits) for m, a in albedo.items()}
    images[("file", "textures/texture_raw.png")] = (appearance.texture_raw_srgb, 8)
    images[("file", "textures/confidence.png")] = (appearance.confidence, 8)
    # Each PNG is compressed on its own, and OpenCV lets go of the GIL while it does.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        encoded = dict(zip(images, pool.map(lambda job: encode_png(*job), images.values())))
    eight = {m: encoded["eight", m] for m in albedo}
    files = {name: encoded["eight" if albedo_bits == 8 else "deep", m] for m, name in _TEXTURE_OF.items()}
    files |= {name: png for (kind, name), png in encoded.items() if kind == "file"}
    return files, eight


def _rounded(x, digits: int = 5):
    """JSON-ready copy of nested dicts, lists, arrays and floats, floats rounded."""
    if isinstance(x, dict):
        return {k: _rounded(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rounded(v, digits) for v in x]
    if isinstance(x, np.ndarray):
        return _rounded(x.tolist(), digits)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return round(v, digits) if np.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _appearance_report(appearance, texture_size: int, albedo_bits: int, stylised: bool) -> dict:
    """The ``lighting``, ``skin`` and ``appearance`` sections of report.json."""
    m = appearance.metrics
    return {
        "lighting": {
            "sh": _rounded(appearance.sh_light, 6),
            "basis": "real SH, Ramamoorthi-Hanrahan order, head frame, radiance",
            "units": "linear sRGB; albedo * irradiance / pi is the photo's linear intensity",
            "sheen": None
            if appearance.sheen is None
            else {
                "direction": _rounded(appearance.sheen.direction, 4),
                "exponent": appearance.sheen.exponent,
                "rgb_linear": _rounded(appearance.sheen.rgb, 5),
                "model": "normalised Blinn-Phong lobe of the key light on the face's skin, the photo's units",
            },
        },
        "skin": _rounded(appearance.skin),
        "appearance": _rounded(
            {
                "texture_size": texture_size,
                "albedo_bits": albedo_bits,
                "albedo_colour_space": "sRGB-encoded PNG of a linear diffuse albedo",
                "monotone_photo": appearance.monotone,
                "grayscale_albedo": appearance.monotone,
                "stylised": stylised,
                "albedo_is_physical": not stylised,
                **{k: v for k, v in m.items()},
            }
        ),
    }


def reconstruct(
    photo_path: str | Path,
    out_dir: str | Path,
    model: HeadModel,
    *,
    face_index: int | None = None,
    focal_px: float | None = None,
    texture_size: int | None = 2048,
    albedo_bits: int = 8,
    log=None,
) -> Result:
    """Photo to a result folder: ``avatar.glb``, ``avatar.obj`` + ``.mtl``, ``renders/overlay.png``, ``report.json``.

    With ``texture_size`` (the default), the appearance stage (:mod:`facetwin.texture.appearance`) also writes
    ``textures/albedo.png`` (face tile), ``textures/albedo_back.png`` (back of the head), both sRGB and used
    by the GLB and OBJ materials ``M_Face`` and ``M_BackHead``, ``textures/texture_raw.png`` (the photo
    unwrapped into the face tile), ``textures/confidence.png`` and ``renders/mesh_overlay.png`` (the fitted
    mesh over the photo); ``renders/overlay.png`` is then the textured head under the fitted light over the
    photo, and the report gains ``lighting``, ``skin`` and ``appearance``.

    Args:
        photo_path: the portrait.
        out_dir: the result folder to create (replaced if it exists; written to a temporary sibling first).
        model: the loaded head model.
        face_index: which detected face (0 = largest); None picks the largest.
        focal_px: focal length in pixels overriding EXIF and the estimate.
        texture_size: texels per side of the albedo maps (64 to 8192; 2048 by default); None skips the
            appearance stage (geometry only, untextured skin).
        albedo_bits: 8 or 16 bits per channel for ``textures/albedo.png`` and ``albedo_back.png`` (the GLB
            always embeds 8-bit PNGs).
        log: optional ``callable(str)`` told each stage's name as it starts.

    Raises:
        FacetwinError: bad input (unreadable photo, no face, bad face index, unwritable output).
    """
    from facetwin.detect import detect_faces
    from facetwin.export.gltf import build_glb
    from facetwin.export.obj import build_obj
    from facetwin.fit.correspondence import landmark_correspondence
    from facetwin.fit.geometry import rotation_angles_deg
    from facetwin.fit.landmarks68 import landmarks68_surface
    from facetwin.io import atomic_output_dir, read_photo, write_png
    from facetwin.render.preview import render_overlay
    from facetwin.stylised import stylisation_score
    from facetwin.texture.appearance import estimate_appearance, render_appearance_overlay

    if texture_size is not None and (int(texture_size) != texture_size or not 64 <= texture_size <= 8192):
        raise FacetwinError(f"texture size must be an integer from 64 to 8192, got {texture_size}")
    if albedo_bits not in (8, 16):
        raise FacetwinError(f"albedo bits must be 8 or 16, got {albedo_bits}")
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
    with timer.stage("detect"):
        stylisation = stylisation_score(photo.image_srgb, tuple(float(v) for v in face.box))

    say("fitting the head")
    with timer.stage("fit"):
        points = landmark_correspondence(model)
        fit = fit_face(model, points, photo, face, focal_px=focal_px)

    appearance = None
    textures: dict[str, bytes] = {}
    material_pngs: dict[str, bytes] = {}
    if texture_size is not None:
        say("estimating the skin's appearance")
        with timer.stage("appearance"):
            appearance = estimate_appearance(model, photo, face, fit, points=points, texture_size=int(texture_size))
            fit = appearance.fit
        with timer.stage("encode textures"):
            textures, material_pngs = _appearance_files(appearance, albedo_bits)

    with timer.stage("fit"):
        surface68 = landmarks68_surface(model, fit.vertices, fit.camera, points)
        landmarks68 = fit.camera.project(surface68.evaluate(fit.vertices))

    say("exporting")
    with timer.stage("export"):
        neutral = model.vertices(fit.identity_coeffs)
        glb = build_glb(model, neutral, fit.expression_weights, camera=fit.camera, textures=material_pngs or None)
        obj_textures = {k: v for k, v in _TEXTURE_OF.items() if v in textures}
        obj_files = build_obj(model, fit.vertices, name="avatar", textures=obj_textures or None)

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
        if appearance is not None:
            mesh_overlay = overlay
            overlay = render_appearance_overlay(model, appearance, photo.image_srgb)

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
            "stylised": bool(stylisation["stylised"]),
            "stylisation": _rounded({k: v for k, v in stylisation.items() if k != "stylised"}),
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
    if appearance is not None:
        report.update(_appearance_report(appearance, int(texture_size), albedo_bits, bool(stylisation["stylised"])))
        report["files"] = sorted([*report["files"], "renders/mesh_overlay.png", *textures])

    say("writing")
    with timer.stage("write"), atomic_output_dir(out_dir, force=True) as tmp:
        (tmp / "renders").mkdir()
        (tmp / "avatar.glb").write_bytes(glb)
        for name, data in obj_files.items():
            (tmp / name).write_bytes(data)
        write_png(tmp / "renders" / "overlay.png", overlay)
        if appearance is not None:
            write_png(tmp / "renders" / "mesh_overlay.png", mesh_overlay)
            (tmp / "textures").mkdir()
            for name, data in textures.items():
                (tmp / name).write_bytes(data)
        timer.seconds["total"] = time.perf_counter() - t_start
        report["timings"] = {k: round(v, 4) for k, v in timer.seconds.items()}
        (tmp / "report.json").write_text(json.dumps(report, indent=1))
    return Result(photo=photo_path, out_dir=out_dir, report=report)
