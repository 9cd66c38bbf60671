"""Import the exported GLB (and OBJ) into a real Blender, check what arrives, render from the fitted camera.

Not a pytest test (Blender is not a dependency): a manual / ``make bench`` check.

    .venv/bin/python tests/blender_import_check.py [--glb head.glb] [--out DIR] [--samples 24]

Run with the project's Python, it builds a GLB and an OBJ from the head model (random identity, a smile and
a half-open jaw, a camera ~55 cm in front of the face) unless ``--glb`` is given, then runs
``blender -b -P`` on itself with the venv's numpy on ``PYTHONPATH`` (Debian's Blender 3.4 ships without one,
and its glTF importer still uses ``np.bool``, removed in numpy 1.24, so the Blender side sets it back).
Inside Blender it imports the files, checks: 53 shape keys in ``targetNames`` order with the file's default
weights as values, 12 material slots, the ``fitted_camera`` camera (and, for the sample, that it projects the
68 landmarks to the pixels ``Camera.project`` gives), the OBJ's 26,719 vertices; renders
``render.png`` with Cycles on the CPU from the fitted camera, and prints one ``BLENDER_CHECK {json}`` line.
Exit status 0 when every check passes.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

MARK = "BLENDER_CHECK "
PROJECTION_TOL_PX = 0.5
"""Blender's camera vs Camera.project: the render size is rounded to whole pixels, which moves the aspect."""


def _glb_json(path: Path) -> dict:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20 : 20 + length])


# --- inside Blender ------------------------------------------------------------------------------------------


def _in_blender(glb: Path, obj: Path | None, png: Path, samples: int, points: Path | None) -> int:
    import bpy
    import numpy as np
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    if not hasattr(np, "bool"):
        np.bool = bool  # Blender 3.4's glTF importer uses np.bool (removed in numpy 1.24)

    doc = _glb_json(glb)
    expected_names = doc["meshes"][0]["extras"]["targetNames"]
    expected_weights = doc["meshes"][0]["weights"]
    checks: dict[str, object] = {}

    for o in list(bpy.data.objects):  # the factory startup cube, light and camera
        bpy.data.objects.remove(o)
    bpy.ops.import_scene.gltf(filepath=str(glb))
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    cameras = [o for o in bpy.context.scene.objects if o.type == "CAMERA"]
    head = meshes[0] if len(meshes) == 1 else None
    keys = head.data.shape_keys.key_blocks if head is not None and head.data.shape_keys else []
    names = [k.name for k in keys][1:]  # key 0 is Basis
    values = [k.value for k in keys][1:]
    checks["one_mesh_object"] = len(meshes) == 1
    checks["shape_keys_53"] = len(names) == 53
    checks["shape_key_names"] = names == expected_names
    checks["shape_key_values"] = len(values) == 53 and bool(np.allclose(values, expected_weights, atol=1e-6))
    checks["material_slots_12"] = head is not None and len(head.material_slots) == 12
    checks["fitted_camera"] = [c.name for c in cameras] == ["fitted_camera"]
    info = {
        "vertices": len(head.data.vertices) if head else 0,
        "polygons": len(head.data.polygons) if head else 0,
        "materials": [s.material.name for s in head.material_slots] if head else [],
        "nonzero_keys": {n: round(v, 3) for n, v in zip(names, values) if v > 0.05},
    }

    if obj is not None:
        before = set(bpy.context.scene.objects)
        bpy.ops.wm.obj_import(filepath=str(obj))
        new = [o for o in bpy.context.scene.objects if o not in before and o.type == "MESH"]
        info["obj_vertices"] = sum(len(o.data.vertices) for o in new)
        checks["obj_vertices_26719"] = info["obj_vertices"] == 26719
        for o in new:
            o.hide_render = True

    scene = bpy.context.scene
    if cameras:
        scene.camera = cameras[0]
        size = doc["cameras"][0].get("extras", {}).get("image_size_px", [640, 480])
        scale = 480 / max(size)
        scene.render.resolution_x, scene.render.resolution_y = round(size[0] * scale), round(size[1] * scale)
        scene.render.resolution_percentage = 100
        if points is not None:  # the fitted camera in Blender lands head points where Camera.project does
            ref = json.loads(points.read_text())
            px = []
            for x, y, z in ref["points_m"]:  # glTF frame -> Blender's z-up frame, as its glTF importer does
                sx, sy, _ = world_to_camera_view(scene, cameras[0], Vector((x, -z, y)))
                px.append((sx * size[0], (1.0 - sy) * size[1]))
            err = float(np.abs(np.asarray(px) - np.asarray(ref["pixels"])).max())
            info["camera_max_error_px"] = round(err, 4)
            checks["camera_projection"] = err < PROJECTION_TOL_PX
        # key (upper left of the face), fill (right), rim (above, behind): positions in the glTF head frame
        # (metres, y up, z out of the face), turned into Blender's z-up frame as its glTF importer does
        lights = (
            ("key", (0.6, 0.4, 0.5), 20.0),
            ("fill", (-0.7, 0.0, 0.4), 5.0),
            ("rim", (0.0, 0.5, -0.6), 20.0),
        )
        for name, (x, y, z), energy in lights:
            light = bpy.data.lights.new(name, "AREA")
            light.energy, light.size = energy, 0.5
            o = bpy.data.objects.new(name, light)
            o.location = (x, -z, y)
            o.rotation_mode = "QUATERNION"
            o.rotation_quaternion = Vector((-x, z, -y)).to_track_quat("-Z", "Y")  # aimed at the head
            scene.collection.objects.link(o)
        world = bpy.data.worlds.new("world")
        world.use_nodes = True
        world.node_tree.nodes["Background"].inputs[0].default_value = (0.05, 0.05, 0.06, 1)
        scene.world = world
        scene.render.engine = "CYCLES"
        scene.cycles.device = "CPU"
        scene.cycles.samples = samples
        scene.cycles.use_denoising = False
        scene.render.filepath = str(png)
        scene.render.image_settings.file_format = "PNG"
        bpy.ops.render.render(write_still=True)
        checks["rendered"] = png.is_file()

    ok = all(bool(v) for v in checks.values())
    print(MARK + json.dumps({"ok": ok, "checks": checks, "info": info}))
    return 0 if ok else 1


# --- driver (project Python) ---------------------------------------------------------------------------------


def _build_sample(out: Path) -> tuple[Path, Path, Path]:
    import numpy as np

    from facetwin.camera import Camera, intrinsics
    from facetwin.export.gltf import build_glb
    from facetwin.export.obj import build_obj
    from facetwin.model import load_model

    model = load_model()
    rng = np.random.default_rng(7)
    identity = rng.normal(size=100).astype(np.float32) * 0.8
    weights = np.zeros(53, np.float32)
    for name, w in (("mouthSmile_L", 0.7), ("mouthSmile_R", 0.7), ("jawOpen", 0.25), ("browInnerUp_L", 0.3)):
        weights[model.expression_names.index(name)] = w
    yaw = np.deg2rad(20.0)
    R_yaw = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    R = np.diag([1.0, -1.0, -1.0]) @ R_yaw  # OpenCV camera facing the face, head turned 20 degrees
    width, height = 768, 1024
    camera = Camera(
        K=intrinsics(2200.0, width, height), R=R, t=np.array([0.0, 1.0, 60.0]), width=width, height=height
    )
    glb = out / "head.glb"
    glb.write_bytes(build_glb(model, model.vertices(identity), weights, camera=camera))
    posed = model.vertices(identity, weights)
    for name, data in build_obj(model, posed, name="head").items():
        (out / name).write_bytes(data)
    points_cm = posed[model.landmark68].astype(np.float64)
    ref = {"points_m": (points_cm * 0.01).tolist(), "pixels": camera.project(points_cm).tolist()}
    (out / "points.json").write_text(json.dumps(ref))
    return glb, out / "head.obj", out / "points.json"


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glb", type=Path, help="GLB to check (default: build a sample one)")
    parser.add_argument("--obj", type=Path, help="OBJ to check alongside")
    parser.add_argument("--out", type=Path, default=Path("out/blender_check"))
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--blender", default="blender")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    glb, obj, points = (args.glb, args.obj, None) if args.glb else _build_sample(args.out)

    import numpy

    env = dict(os.environ)
    numpy_site = str(Path(numpy.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (numpy_site, env.get("PYTHONPATH")) if p)
    cmd = [args.blender, "-b", "--factory-startup", "--python-exit-code", "1", "-P", __file__, "--"]
    cmd += [str(glb.resolve()), str(obj.resolve()) if obj else "-", str((args.out / "render.png").resolve())]
    cmd += [str(args.samples), str(points.resolve()) if points else "-"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        print(f"blender check: no result (exit {proc.returncode})")
        return 1
    result = json.loads(lines[-1][len(MARK) :])
    print(json.dumps(result, indent=1))
    print(f"render: {args.out / 'render.png'}")
    return 0 if result["ok"] and proc.returncode == 0 else 1


if __name__ == "__main__":
    try:
        import bpy  # noqa: F401
    except ImportError:
        sys.exit(main(sys.argv[1:]))
    rest = sys.argv[sys.argv.index("--") + 1 :]
    sys.exit(
        _in_blender(
            Path(rest[0]),
            None if rest[1] == "-" else Path(rest[1]),
            Path(rest[2]),
            int(rest[3]),
            None if rest[4] == "-" else Path(rest[4]),
        )
    )
