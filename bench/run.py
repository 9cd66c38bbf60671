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
    lines += ["", nme.get("summary", "")]
    (args.out / "bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
