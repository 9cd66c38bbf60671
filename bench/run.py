"""facetwin benchmark: per-stage median seconds and peak memory on the shared photos, plus landmark NME.

usage: python bench/run.py [--shared ../shared] [--repeats 3] [--out bench/results]
Writes bench/results/bench.json and bench/results/bench.md (a table). Not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"}


PHOTOMETRIC = "appearance/photometric"
TO_ALBEDO = ("load", "detect", "fit", "appearance", "encode textures")
"""The stages from the photo to the written albedo (export and the overlay render come after)."""


def _stage_seconds(report: dict) -> dict[str, float]:
    """The pipeline's stage seconds, and the appearance stage's own steps as ``appearance/<step>``."""
    out = dict(report["timings"])
    for step, sec in report.get("appearance", {}).get("seconds", {}).items():
        out[f"appearance/{step}"] = sec
    return out


def _seen_face_contrast(out_dir: Path, model) -> dict[str, float] | None:
    """How far the albedo's seen face stands out from its own edge and from the fill: median log luminance
    of well-seen plain skin (confidence > 0.5, the features and 1.5 mm around them left out) within 4 mm of
    the seen region's outer edge (``rim``), of the fill up to 12 mm beyond it (``halo``) and from 40 mm
    beyond it (``fill``), each less that of the seen skin more than 15 mm inside (natural log). Light the
    delighting left in shows here as a face lighter in its middle than at its edge and than the fill (the
    "mask" an albedo map opened as an image shows); 0 everywhere is a map without it. None without maps."""
    import cv2
    import numpy as np
    from PIL import Image

    from facetwin.frames import srgb_to_linear
    from facetwin.texture.regions import face_regions
    from facetwin.texture.uvmap import tile_cm_per_uv

    albedo_png, confidence_png = out_dir / "textures" / "albedo.png", out_dir / "textures" / "confidence.png"
    if not albedo_png.is_file() or not confidence_png.is_file():
        return None
    albedo = np.asarray(Image.open(albedo_png).convert("RGB"), np.float32) / 255.0
    confidence = np.asarray(Image.open(confidence_png).convert("L"), np.float32) / 255.0
    size = albedo.shape[0]
    per_mm = size / (10.0 * tile_cm_per_uv(model, 0))
    lum = np.log(np.maximum(srgb_to_linear(albedo).mean(axis=2), 1e-4))
    grow = max(round(1.5 * per_mm), 1)
    features = cv2.dilate(face_regions(model, size).features.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8))
    seen = (confidence > 0.5).astype(np.uint8)
    close = max(round(3.0 * per_mm), 1)
    hull = cv2.morphologyEx(seen, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close + 1,) * 2))
    outline, _ = cv2.findContours(hull, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    solid = cv2.drawContours(np.zeros_like(seen), outline, -1, 1, -1)
    inside = cv2.distanceTransform(solid, cv2.DIST_L2, 5) / per_mm
    outside = cv2.distanceTransform(1 - solid, cv2.DIST_L2, 5) / per_mm
    plain = features == 0
    parts = {"interior": (seen > 0) & (inside > 15.0), "rim": (seen > 0) & (inside <= 4.0),
             "halo": (outside > 0.0) & (outside <= 12.0), "fill": outside > 40.0}
    level = {k: float(np.median(lum[m & plain])) for k, m in parts.items() if (m & plain).sum() >= 500}
    if "interior" not in level:
        return None
    return {k: round(v - level["interior"], 3) for k, v in level.items() if k != "interior"}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--texture-size", type=int, default=2048, help="albedo size for the per-photo runs")
    ap.add_argument("--big-texture", type=int, default=4096, help="albedo size timed once on a few photos")
    args = ap.parse_args()

    from facetwin.model import load_model
    from facetwin.pipeline import keep_freed_memory, reconstruct

    keep_freed_memory()  # as the command line does
    t0 = time.perf_counter()
    model = load_model()
    model_load_s = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    photos = sorted(p for p in (args.shared / "photos").iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up: numba JIT, mediapipe graphs, correspondence cache
        reconstruct(photos[0], Path(tmp) / "warmup", model, texture_size=args.texture_size)
        for photo in photos:
            stage_runs: dict[str, list[float]] = {}
            error = None
            for k in range(args.repeats):
                try:
                    res = reconstruct(photo, Path(tmp) / f"{photo.stem}_{k}", model, texture_size=args.texture_size)
                except Exception as exc:  # noqa: BLE001 - a failing photo is a benchmark row too
                    error = f"{type(exc).__name__}: {exc}"
                    break
                for stage, sec in _stage_seconds(res.report).items():
                    stage_runs.setdefault(stage, []).append(sec)
            row = {"photo": photo.name, "error": error,
                   "median_s": {s: round(statistics.median(v), 4) for s, v in stage_runs.items()}}
            if error is None:
                row["seen_face_contrast_log"] = _seen_face_contrast(res.out_dir, model)
                row["faces"] = len(res.report["faces"])
                row["size"] = [res.report["input"]["width"], res.report["input"]["height"]]
                det_fit = [d + f for d, f in zip(stage_runs["detect"], stage_runs["fit"])]
                row["median_s"]["detect+fit"] = round(statistics.median(det_fit), 4)
            rows.append(row)
            print(f"{photo.name:32s} " + ("ERROR " + error if error else
                  " ".join(f"{s}={v:.3f}" for s, v in row["median_s"].items())), flush=True)

        big = []
        for photo in photos[:2]:
            t1 = time.perf_counter()
            res = reconstruct(photo, Path(tmp) / f"{photo.stem}_big", model, texture_size=args.big_texture)
            big.append({"photo": photo.name, "wall_s": round(time.perf_counter() - t1, 3),
                        "timings": _stage_seconds(res.report)})
            print(f"{photo.name} at {args.big_texture}: {res.report['timings']}", flush=True)

        # What a user sees: the slowest photo once in a fresh command-line process (imports, first calls).
        slowest = max((r for r in rows if r["error"] is None), key=lambda r: r["median_s"]["total"], default=None)
        cold = None
        if slowest is not None:
            cli = [sys.executable, "-c", "from facetwin.cli import main; main()", "reconstruct",
                   str(args.shared / "photos" / slowest["photo"]), "--out", str(Path(tmp) / "cold"), "--log-json"]
            t1 = time.perf_counter()
            proc = subprocess.run(cli, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t1
            if proc.returncode == 0:
                timings = json.loads(proc.stdout.splitlines()[-1])["timings"]
                cold = {"photo": slowest["photo"], "wall_s": round(wall, 3), "timings": timings,
                        "photo_to_albedo_s": round(sum(timings.get(s, 0.0) for s in TO_ALBEDO), 3)}
                print(f"fresh process: {cold}", flush=True)
            else:
                print(f"fresh process failed: {proc.stderr.strip()}", flush=True)

    # Landmark accuracy on annotated photos, scored by the shared script (geometry only).
    nme = {}
    gt_dir = args.shared / "bench" / "landmarks68"
    if gt_dir.is_dir():
        nme_out = args.out / "landmarks68"
        images = sorted(p for p in gt_dir.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        for img in images:
            try:
                reconstruct(img, nme_out / img.stem, model, texture_size=None)
            except Exception as exc:  # noqa: BLE001
                print(f"{img.name}: {type(exc).__name__}: {exc}")
        proc = subprocess.run([sys.executable, str(args.shared / "bench" / "nme.py"), str(gt_dir), str(nme_out),
                               "4.0", "facetwin"], capture_output=True, text=True, check=False)
        nme = {"summary": proc.stdout.strip(), "passed_bar": proc.returncode == 0}
        print(nme["summary"])

    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                    "platform": platform.platform()},
        "repeats": args.repeats,
        "texture_size": args.texture_size,
        "big_texture": {"size": args.big_texture, "runs": big},
        "fresh_process": cold,
        "model_load_s": round(model_load_s, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "photos": rows,
        "nme_landmarks68": nme,
    }
    (args.out / "bench.json").write_text(json.dumps(result, indent=1))
    # The table keeps the top-level stages and the photometric refinement; bench.json has every step.
    stages = sorted({s for r in rows for s in r["median_s"] if "/" not in s or s == PHOTOMETRIC},
                    key=lambda s: (s == "total", s))
    lines = ["| photo | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['photo']} | " + " | ".join(f"{r['median_s'].get(s, float('nan')):.3f}" for s in stages)
                     + " |" + (f" {r['error']}" if r["error"] else ""))
    summary = (f"peak RSS {result['peak_rss_mb']} MB; model load {result['model_load_s']} s; "
               f"median of {args.repeats} runs, seconds, albedo at {args.texture_size}")
    lines += ["", summary, ""]
    lines += [f"at {args.big_texture}: {b['photo']} appearance "
              f"{b['timings'].get('appearance', float('nan')):.2f} s "
              f"(photometric {b['timings'].get(PHOTOMETRIC, float('nan')):.2f} s), "
              f"total {b['timings']['total']:.2f} s" for b in big]
    if cold is not None:
        lines += ["", (f"fresh process (command line, imports and first calls included): {cold['photo']} "
                       f"{cold['wall_s']:.2f} s wall, report total {cold['timings']['total']:.2f} s, "
                       f"photo to albedo {cold['photo_to_albedo_s']:.2f} s")]
    lines += ["", "seen face against its rim / the fill beside it / the far fill (median log luminance of the albedo, "
              "0 = no mask): " + "; ".join(
                  f"{r['photo']} " + "/".join(f"{c.get(k, float('nan')):+.2f}" for k in ("rim", "halo", "fill"))
                  for r in rows if (c := r.get("seen_face_contrast_log")))]
    lines += ["", nme.get("summary", "")]
    (args.out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
