"""The command line as a user meets it: every bad input gives one line on stderr, a non-zero exit, no
traceback and no partial output; one bad photo in a batch does not stop the others."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def facetwin(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "facetwin", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=300,
        check=False,
    )


def _huge_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height pixels (the data is a stub: it must be refused first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, photos_dir) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {"missing": d / "missing.jpg"}
    files["text"] = d / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    files["empty"] = d / "empty.png"
    files["empty"].write_bytes(b"")
    data = (photos_dir / "grace_hopper.jpg").read_bytes()
    files["truncated"] = d / "truncated.jpg"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["tiny"] = d / "tiny.png"
    Image.new("RGB", (1, 1), (128, 100, 90)).save(files["tiny"])
    files["huge"] = d / "huge.png"
    _huge_png(files["huge"], 20000, 20000)
    files["noface"] = d / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((240, 320, 3)) * 255).astype(np.uint8)).save(files["noface"])
    files["folder"] = d / "a_folder.png"
    files["folder"].mkdir()
    return files


def test_version():
    r = facetwin("--version")
    assert r.returncode == 0
    assert r.stdout.strip().startswith("facetwin 0.")


def test_batch_with_bad_inputs(tmp_path, bad_inputs, photos_dir):
    good = photos_dir / "astronaut.png"
    bad = list(bad_inputs.values())
    out = tmp_path / "out"
    r = facetwin("reconstruct", str(bad[0]), str(good), *map(str, bad[1:]), "-o", str(out), "--log-json",
                 "--texture-size", "0")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == len(bad), r.stderr
    for path, line in zip(bad, lines):
        assert line.startswith("facetwin: error: ") and str(path) in line, line
    # what each line says, so a user knows what to fix
    said = dict(zip(bad_inputs, lines))
    assert "no such file" in said["missing"]
    assert "not an image" in said["text"]
    assert "empty" in said["empty"]
    assert "truncated" in said["truncated"] or "damaged" in said["truncated"]
    assert "too small" in said["tiny"]
    assert "pixels" in said["huge"]
    assert "no face" in said["noface"]
    # the good photo went through, and nothing else was written
    assert sorted(p.name for p in out.iterdir()) == ["astronaut"]
    report = json.loads((out / "astronaut" / "report.json").read_text())
    assert len(report["landmarks68"]) == 68
    records = [json.loads(x) for x in r.stdout.splitlines()]
    assert [rec["ok"] for rec in records] == [False, True] + [False] * (len(bad) - 1)


def test_unwritable_output(tmp_path, photos_dir):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    r = facetwin("reconstruct", str(photos_dir / "bryan_small_glasses.png"), "-o", str(blocker / "out"),
                 "--texture-size", "0")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (blocker.parent / "out").exists()


def test_face_index_out_of_range(tmp_path, photos_dir):
    r = facetwin("reconstruct", str(photos_dir / "astronaut.png"), "-o", str(tmp_path), "--face", "3")
    assert r.returncode == 1
    assert "--face 3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_choose_face_and_list_all(tmp_path, photos_dir):
    r = facetwin("reconstruct", str(photos_dir / "laos.jpg"), "-o", str(tmp_path), "--face", "1",
                 "--texture-size", "0")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "laos" / "report.json").read_text())
    assert len(report["faces"]) == 2 and report["selected_face"] == 1
    x0, y0, x1, y1 = report["faces"][1]["box"]
    lm = np.asarray(report["landmarks68"])
    inside = (lm[:, 0] > x0 - 20) & (lm[:, 0] < x1 + 20) & (lm[:, 1] > y0 - 20) & (lm[:, 1] < y1 + 20)
    assert inside.mean() > 0.9


def test_missing_model_names_the_fetch_command(tmp_path, photos_dir):
    r = facetwin("reconstruct", str(photos_dir / "astronaut.png"), "-o", str(tmp_path),
                 env={"FACETWIN_MODEL": str(tmp_path / "nowhere")})
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "git clone" in r.stderr and "ICT-FaceKit" in r.stderr
    r = facetwin("reconstruct", str(photos_dir / "astronaut.png"), "-o", str(tmp_path),
                 env={"FACETWIN_MODEL": "", "FACETWIN_CACHE": str(tmp_path / "empty_cache")})
    assert r.returncode == 1 and "facetwin model fetch" in r.stderr


def test_rerun_replaces_a_result_atomically(tmp_path, photos_dir):
    photo = tmp_path / "p.png"
    shutil.copy(photos_dir / "bryan_small_glasses.png", photo)
    for _ in range(2):
        r = facetwin("reconstruct", str(photo), "-o", str(tmp_path / "out"), "--texture-size", "0")
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p"]
    assert r.stdout.strip() == str(tmp_path / "out" / "p")


def test_texture_size_is_checked(tmp_path, photos_dir):
    r = facetwin("reconstruct", str(photos_dir / "astronaut.png"), "-o", str(tmp_path), "--texture-size", "5000")
    assert r.returncode == 1 and "--texture-size" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_freed_memory_is_kept():
    """Known answer from glibc's own counts (``mallinfo2``): after :func:`keep_freed_memory` a 64 MiB array
    comes from the heap, not a mapping of its own, and its pages stay with the heap once it is freed, ready
    for the next one; by default it is mapped apart and unmapped on free. In a child process, so this test's
    own allocator is left as it was."""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    code = """
import ctypes, sys
import numpy as np
from facetwin.pipeline import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Info
took = keep_freed_memory() if sys.argv[1] == "keep" else True
big = np.ones(64 << 20, np.uint8)
mapped = mallinfo2().hblkhd
del big
print(int(took), mapped >> 20, mallinfo2().arena >> 20)
"""
    mib = {}
    for mode in ("keep", "default"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
        took, *mib[mode] = (int(v) for v in out.stdout.split())
        assert took == 1
    (mapped_keep, heap_keep), (mapped_default, heap_default) = mib["keep"], mib["default"]
    assert mapped_default >= 64 and heap_default < 64, mib
    assert mapped_keep == 0 and heap_keep >= 64, mib


def test_a_run_leaves_out_slow_imports(tmp_path, photos_dir):
    """A whole run with the appearance stage imports neither ``torch._dynamo`` (``torch.optim`` pulls it in:
    1.8 s; the photometric fit has its own Adam) nor scikit-image (``skimage.feature``: 0.9 s; the fold
    lines' Hessian is written out). In a child process, so the test session's imports do not count."""
    code = """
import sys
from pathlib import Path
from facetwin.model import load_model
from facetwin.pipeline import reconstruct
reconstruct(sys.argv[1], Path(sys.argv[2]), load_model(), texture_size=256)
print(sorted(m for m in sys.modules if m == "torch._dynamo" or m.split(".")[0] == "skimage"))
"""
    out = subprocess.run([sys.executable, "-c", code, str(photos_dir / "bryan_small_glasses.png"), str(tmp_path / "out")],
                         capture_output=True, text=True, check=True, timeout=300)
    assert (tmp_path / "out" / "textures" / "albedo.png").is_file()
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
