"""The web viewer in a real browser: Debian's Chromium (/usr/bin/chromium) driven by Playwright.

A synthetic result folder is built once from the real head model with known identity, expression and camera,
so the page's numbers can be checked against known answers (landmarks, silhouette). When the pipeline is
installed (`facetwin reconstruct`), a real result of the astronaut photo is checked too.

Screenshots land in the test's tmp folder (printed at the end of each test; run with ``-s`` to see paths, or
``--basetemp DIR`` to choose where).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from facetwin.camera import Camera, intrinsics
from facetwin.frames import CM_TO_M

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("viewer-browser")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-angle=swiftshader",  # WebGL2 on the CPU: no GPU on test machines
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
]
VIEWPORT = {"width": 1280, "height": 800}
LOAD_TIMEOUT_MS = 60_000

N_GALLERY = 150
"""Results in the big gallery: enough that lazy loading has to matter."""

LANDMARK_TOL_PX = 0.5
"""Page projection vs Python projection of the same points: float32 on the GPU side, so well under a pixel."""
REAL_LANDMARK_TOL_PX = 3.0
"""Real result: the same check against the pipeline's report (its numbers went through a PNG-free float path
too, so this is loose only in case the pipeline rounds what it writes)."""
SILHOUETTE_TOL_PX = 2.0
"""Rendered silhouette bbox vs projected vertex bbox: rasterisation and antialiasing move edges by ~1 px."""
JAW_DIFF_MIN = 0.04
"""jawOpen 0 -> 1: mean |RGBA difference| in the mouth box, in [0, 1]; measured ~0.2 on the synthetic head."""
RESTORE_MAX = 1.0 / 255.0
"""jawOpen back to 0: the render must come back to the same pixels (one 8-bit step for rounding)."""

SH_STUDIO = [[0.9, 0.87, 0.84], [0.15, 0.15, 0.15], [0.25, 0.25, 0.25], [-0.1, -0.1, -0.1]] + [
    [0.0, 0.0, 0.0]
] * 5


# ---------------------------------------------------------------------------------------------------------------
# A synthetic result folder from the real head model.


def _rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Head frame -> OpenCV camera: the head faces the camera, turned by yaw (about y) and pitch (about x)."""
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return np.diag([1.0, -1.0, -1.0]) @ ry @ rx


def _checker_png(size: int = 256, squares: int = 16) -> bytes:
    """A skin-coloured checkerboard PNG: an albedo texture whose pattern is easy to see in a render."""
    from PIL import Image

    ij = np.indices((size, size)) // (size // squares)
    light = ((ij[0] + ij[1]) % 2 == 0)[..., None]
    rgb = np.where(light, [225, 180, 155], [150, 95, 75]).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def make_synthetic_result(model, photo: Path, out: Path) -> dict:
    """Write a result folder with known identity, expression and camera; return the known answers."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(7)
    ident = (rng.standard_normal(100) * 0.6).astype(np.float32)
    names = list(model.expression_names)
    w = np.zeros(len(names), np.float32)
    for n, v in {
        "mouthSmile_L": 0.35,
        "mouthSmile_R": 0.3,
        "browInnerUp_L": 0.2,
        "browInnerUp_R": 0.2,
    }.items():
        w[names.index(n)] = v
    neutral_cm = model.vertices(ident)
    posed_cm = model.vertices(ident, w)
    width, height = Image.open(photo).size
    K = intrinsics(2.0 * max(width, height), width, height)
    K[0, 2] -= 0.03 * width  # principal point off-centre: the page must use cx, cy, not the image centre
    K[1, 2] += 0.02 * height
    R = _rotation(14.0, -6.0)
    centre = posed_cm[model.landmark68].mean(0)
    t = np.array([0.0, 0.0, 60.0]) - R @ centre
    cam = Camera(K=K, R=R, t=t, width=width, height=height)
    lm68 = cam.project(posed_cm[model.landmark68])
    pick = model.fitting_vertices[np.linspace(0, len(model.fitting_vertices) - 1, 478).astype(int)]
    lm478 = np.concatenate([cam.project(posed_cm[pick]), cam.to_camera(posed_cm[pick])[:, 2:]], axis=1)

    (out / "renders").mkdir(parents=True, exist_ok=True)
    from facetwin.export.gltf import build_glb

    glb = build_glb(model, neutral_cm, w, camera=cam, textures={"M_Face": _checker_png()})
    (out / "avatar.glb").write_bytes(glb)
    img = Image.open(photo).convert("RGB")
    draw = ImageDraw.Draw(img)
    skin = np.unique(model.faces[model.material_faces(("M_Face",))])
    for u, v in cam.project(posed_cm[skin[::7]]):
        draw.point((u, v), fill=(80, 220, 120))
    for u, v in lm68:
        draw.ellipse((u - 2, v - 2, u + 2, v + 2), fill=(255, 60, 90))
    img.save(out / "renders" / "overlay.png")
    x0, y0 = lm478[:, :2].min(0)
    x1, y1 = lm478[:, :2].max(0)
    report = {
        "facetwin_version": "synthetic",
        "input": {"path": str(photo.resolve()), "width": width, "height": height, "sha256": "0" * 64},
        "faces": [
            {
                "box": [float(x0), float(y0), float(x1), float(y1)],
                "score": 0.97,
                "landmarks478": lm478.tolist(),
            }
        ],
        "selected_face": 0,
        "camera": {"K": K.tolist(), "R": R.tolist(), "t": t.tolist(), "width": width, "height": height},
        "landmarks68": lm68.tolist(),
        "identity_coeffs": ident.tolist(),
        "expression_weights": dict(zip(names, map(float, w))),
        "lighting": {"sh": SH_STUDIO},
        "timings": {"detect": 0.21, "fit": 3.4, "texture": 1.1, "export": 0.3},
        "fit": {"landmarks_rms_px": 0.0, "photometric_rmse": 0.0},
        "files": {"glb": "avatar.glb"},
    }
    (out / "report.json").write_text(json.dumps(report))
    return {"dir": out, "posed_cm": posed_cm, "camera": cam, "lm68": lm68, "weights": w}


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: results, server, browser.


@pytest.fixture(scope="module")
def results(tmp_path_factory, model, photos_dir) -> dict:
    root = tmp_path_factory.mktemp("viewer_results")
    known = make_synthetic_result(model, photos_dir / "astronaut.png", root / "synthetic")
    # a second result whose photo comes from renders/input.jpg (the preferred source)
    other = root / "with_input_jpg"
    shutil.copytree(root / "synthetic", other, copy_function=os.link)
    from PIL import Image

    Image.open(photos_dir / "astronaut.png").convert("RGB").save(other / "renders" / "input.jpg", quality=90)
    return {"root": root, "known": known}


@pytest.fixture(scope="module")
def big_gallery(tmp_path_factory, results) -> Path:
    """N_GALLERY results (hard links to one synthetic result) for the lazy-loading gallery."""
    root = tmp_path_factory.mktemp("viewer_gallery")
    src = results["known"]["dir"]
    for i in range(N_GALLERY):
        d = root / f"portrait_{i:03d}"
        (d / "renders").mkdir(parents=True)
        for rel in ("avatar.glb", "report.json", "renders/overlay.png"):
            os.link(src / rel, d / rel)
    return root


class _Served:
    def __init__(self, path: Path):
        from facetwin.viewer import make_server

        self.srv = make_server(path)
        self.thread = threading.Thread(
            target=self.srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = self.srv.url

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture(scope="module")
def server(results):
    s = _Served(results["root"])
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium (the tests never download a browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A browser page that records console errors, page errors and any request leaving the server."""

    def __init__(self, browser, base_url: str, downloads: bool = False):
        self.ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=downloads)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.base = base_url.rstrip("/")
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def route(r):
            if r.request.url.startswith(self.base + "/") or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_function(
            "() => window.facetwin && (window.facetwin.ready || window.facetwin.error)",
            timeout=LOAD_TIMEOUT_MS,
        )
        err = self.page.evaluate("window.facetwin.error")
        assert err is None, f"page error: {err}; console: {self.errors}"

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def snapshot(self, size: dict | None = None) -> np.ndarray:
        """(H, W, 4) uint8: the current view rendered at ``size`` (default: the photo's size in the fitted view,
        the canvas size otherwise); transparent background in the fitted view."""
        from PIL import Image

        url = self.js("s => window.facetwin.snapshot(s || {})", size)
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture(scope="module")
def viewer(browser, server):
    pg = Page(browser, server.url)
    pg.open("/?r=synthetic")
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("viewer_screenshots")


def _png_of(data_url: str) -> bytes:
    return base64.b64decode(data_url.split(",", 1)[1])


# ---------------------------------------------------------------------------------------------------------------
# The viewer page.


def test_viewer_loads_clean(viewer, model, shots):
    assert viewer.js("window.facetwin.ready") is True
    names = viewer.js("window.facetwin.morphTargetNames")
    assert names == list(model.expression_names)
    sliders = viewer.page.locator("input[type=range][data-target]")
    assert sliders.count() == 53
    assert [sliders.nth(i).get_attribute("data-target") for i in range(53)] == sorted(
        names,
        key=lambda n: next(
            i for i, g in enumerate(["brow", "eye", "cheek", "nose", "jaw", "mouth", ""]) if n.startswith(g)
        ),
    )
    groups = viewer.page.locator("details.group").evaluate_all("ds => ds.map(d => d.dataset.group)")
    assert groups == ["brows", "eyes", "cheeks", "nose", "jaw", "mouth"]
    fitted = viewer.js("window.facetwin.fittedWeights")
    assert fitted["mouthSmile_L"] == pytest.approx(0.35, abs=1e-6) and fitted["jawOpen"] == 0
    assert viewer.js("window.facetwin.hasPhoto") is True
    numbers = viewer.page.locator("#numbers").inner_text()
    for words in ("512 × 512 px", "faces found\t1", "fit (s)\t3.40", "total (s)\t5.01", "landmarks_rms_px"):
        assert words in numbers, words
    viewer.page.screenshot(path=shots / "viewer.png")
    assert viewer.errors == [] and viewer.foreign == []
    print(f"\nscreenshot: {shots / 'viewer.png'}")


def test_fitted_camera_matches_landmarks(viewer, results, model, shots):
    known = results["known"]
    viewer.page.click("#btn-fitted")
    assert viewer.js("window.facetwin.state.view") == "fitted"
    viewer.js("window.facetwin.applyPreset('fitted')")
    report = json.loads((known["dir"] / "report.json").read_text())
    lm68 = np.array(report["landmarks68"])
    # The page's own mesh: its 68 landmark vertices (found by _ICT_VERTEX_ID, fitted expression applied) through
    # its fitted camera land on report.json's landmarks68.
    ids = model.landmark68.tolist()
    uv = np.array(viewer.js("ids => window.facetwin.projectVertices(ids)", ids))
    err = np.linalg.norm(uv - lm68, axis=1)
    assert err.max() < LANDMARK_TOL_PX, err.max()
    # The same through project(): the page's camera alone, fed Python's posed landmark points.
    pts_m = (known["posed_cm"][model.landmark68] * CM_TO_M).tolist()
    assert np.allclose(viewer.js("ids => window.facetwin.vertexPositions(ids)", ids), pts_m, atol=1e-5)
    uv = np.array(viewer.js("p => window.facetwin.project(p)", pts_m))
    assert np.linalg.norm(uv - lm68, axis=1).max() < LANDMARK_TOL_PX
    # The rendered mesh itself: the silhouette in the fitted view is where Python projects the posed vertices.
    img = viewer.snapshot()
    cam = known["camera"]
    assert img.shape[:2] == (cam.height, cam.width)
    ys, xs = np.nonzero(img[..., 3] > 127)
    got = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
    faces = model.faces[
        ~model.material_faces(("M_LacrimalFluid", "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes"))
    ]
    uvall = cam.project(known["posed_cm"][np.unique(faces)])
    want = np.array([*np.clip(uvall.min(0), 0, None), *np.minimum(uvall.max(0), [cam.width, cam.height])])
    assert np.abs(got - want).max() < SILHOUETTE_TOL_PX, (got, want)
    viewer.page.check("#show-lm68")
    viewer.page.check("#show-lm478")
    assert viewer.page.locator("#dots .lm68 circle").count() == 68
    assert viewer.page.locator("#dots .lm478 circle").count() == 478
    viewer.page.locator("#mesh-opacity").fill("0.6")
    viewer.page.screenshot(path=shots / "viewer_fitted.png")
    Path(shots / "viewer_fitted_composite.png").write_bytes(_png_of(viewer.js("window.facetwin.composite()")))
    viewer.page.uncheck("#show-lm68")
    viewer.page.uncheck("#show-lm478")
    assert viewer.errors == []
    print(f"\nscreenshots: {shots / 'viewer_fitted.png'}, {shots / 'viewer_fitted_composite.png'}")


def test_jaw_open_changes_mouth_pixels(viewer, results):
    viewer.js("window.facetwin.setView('fitted')")
    viewer.js("window.facetwin.applyPreset('fitted')")
    lm = results["known"]["lm68"]
    mouth = lm[48:68]
    (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
    h = y1 - y0
    box = (slice(int(y0 - 0.5 * h), int(y1 + 2.0 * h)), slice(int(x0 - 0.3 * h), int(x1 + 0.3 * h)))
    viewer.js("window.facetwin.setExpression('jawOpen', 0)")
    a = viewer.snapshot()[box].astype(np.float32) / 255
    viewer.page.locator("input[data-target=jawOpen]").fill("1")  # through the slider, as a person would
    assert viewer.js("window.facetwin.getExpression().jawOpen") == 1
    b = viewer.snapshot()[box].astype(np.float32) / 255
    viewer.js("window.facetwin.setExpression('jawOpen', 0)")
    c = viewer.snapshot()[box].astype(np.float32) / 255
    moved = np.abs(b - a).mean()
    assert moved > JAW_DIFF_MIN, moved
    assert np.abs(c - a).max() <= RESTORE_MAX + 1e-6
    assert viewer.errors == []


def test_presets_reset_and_options(viewer, shots):
    fw = viewer.js("window.facetwin.fittedWeights")
    viewer.js("window.facetwin.setView('free')")
    viewer.js("window.facetwin.resetView()")
    size = {"width": 400, "height": 320}
    base = viewer.snapshot(size)
    for preset, check in [
        ("neutral", lambda e: all(v == 0 for v in e.values())),
        ("smile", lambda e: e["mouthSmile_L"] > 0.5 and e["jawOpen"] == 0),
        ("surprise", lambda e: e["browInnerUp_R"] > 0.5 and e["jawOpen"] > 0),
        ("blink", lambda e: e["eyeBlink_L"] == 1 and e["mouthSmile_L"] == 0),
    ]:
        viewer.page.click(f"#preset-{preset}")
        ex = viewer.js("window.facetwin.getExpression()")
        assert check(ex), preset
        value = viewer.page.locator("input[data-target=eyeBlink_L]").input_value()
        assert float(value) == pytest.approx(ex["eyeBlink_L"])
    viewer.page.screenshot(path=shots / "viewer_blink.png")
    viewer.page.click("#btn-reset-expr")
    assert viewer.js("window.facetwin.getExpression()") == fw
    # Each switch changes the picture; switching back restores it exactly.
    assert viewer.js("window.facetwin.skinTextured") is True
    for on, off, min_change in [
        ("#wireframe", None, 2.0),
        ("#lighting-fitted", "#lighting-studio", 1.0),
        ("#texture-albedo", "#texture-shaded", 1.0),
    ]:
        viewer.page.check(on)
        changed = viewer.snapshot(size)
        viewer.page.uncheck(on) if off is None else viewer.page.check(off)
        assert np.abs(changed.astype(int) - base).mean() > min_change, on
    assert np.array_equal(viewer.snapshot(size), base)
    assert viewer.errors == []


def test_save_screenshot_downloads_png(browser, server, shots):
    pg = Page(browser, server.url, downloads=True)
    try:
        pg.open("/?r=with_input_jpg")
        assert pg.js("window.facetwin.hasPhoto") is True
        pg.page.click("#btn-fitted")
        with pg.page.expect_download() as dl:
            pg.page.click("#btn-screenshot")
        path = shots / "download.png"
        dl.value.save_as(path)
        from PIL import Image

        im = Image.open(path)
        w, h = pg.js("[document.getElementById('gl').width, document.getElementById('gl').height]")
        assert im.format == "PNG" and im.size == (w, h)
        assert dl.value.suggested_filename == "with_input_jpg.png"
        assert pg.errors == [] and pg.foreign == []
    finally:
        pg.close()


def test_lone_glb_uses_its_camera(browser, results, model):
    """`facetwin view avatar.glb`: no report, so the fitted camera comes from the GLB's fitted_camera node."""
    s = _Served(results["known"]["dir"] / "avatar.glb")
    pg = Page(browser, s.url)
    try:
        pg.open("/")
        assert pg.js("window.facetwin.cameraSource") == "GLB"
        assert pg.js("window.facetwin.hasPhoto") is False
        assert len(pg.js("window.facetwin.morphTargetNames")) == 53
        uv = np.array(pg.js("ids => window.facetwin.projectVertices(ids)", model.landmark68.tolist()))
        err = np.linalg.norm(uv - results["known"]["lm68"], axis=1)
        assert err.max() < LANDMARK_TOL_PX, err.max()
        assert pg.errors == [] and pg.foreign == []
    finally:
        pg.close()
        s.close()


# ---------------------------------------------------------------------------------------------------------------
# The gallery.


def _wait_thumbnails(pg: Page) -> None:
    """Every thumbnail of a visible card has loaded (a real image, not a broken one) and is decoded."""
    visible = "[...document.querySelectorAll('a.card:not([hidden]) .thumb img')]"
    pg.page.wait_for_function(f"() => {visible}.every(i => i.complete && i.naturalWidth > 0)")
    pg.js(f"() => Promise.all({visible}.map(i => i.decode()))")


def test_gallery_lists_results_and_opens_viewer(browser, server, results, shots):
    pg = Page(browser, server.url)
    try:
        pg.open("/")
        assert pg.js("window.facetwin.mode") == "gallery"
        assert pg.js("window.facetwin.results") == ["synthetic", "with_input_jpg"]
        cards = pg.page.locator("a.card")
        assert cards.count() == 2
        assert cards.nth(0).locator(".nums").first.inner_text() == "512×512 · 1 face · 5 s"
        pg.page.wait_for_function("() => window.facetwin.loadedThumbnails() == 2")
        _wait_thumbnails(pg)
        pg.page.screenshot(path=shots / "gallery.png")
        cards.nth(1).click()
        pg.page.wait_for_function(
            "() => window.facetwin && window.facetwin.mode === 'viewer' && window.facetwin.ready",
            timeout=LOAD_TIMEOUT_MS,
        )
        assert pg.js("window.facetwin.result") == "with_input_jpg"
        pg.page.click("#back")
        pg.page.wait_for_function("() => window.facetwin && window.facetwin.mode === 'gallery'")
        assert pg.page.locator("a.card").count() == 2
        assert pg.errors == [] and pg.foreign == []
    finally:
        pg.close()
    print(f"\nscreenshot: {shots / 'gallery.png'}")


def test_gallery_hundreds_lazy(browser, big_gallery, shots):
    s = _Served(big_gallery)
    pg = Page(browser, s.url)
    try:
        t0 = time.monotonic()
        pg.open("/")
        assert len(pg.js("window.facetwin.results")) == N_GALLERY
        assert pg.page.locator("a.card").count() == N_GALLERY
        loaded = pg.js("window.facetwin.loadedThumbnails()")
        assert 0 < loaded < N_GALLERY / 2, loaded  # only the first screens' thumbnails
        pg.page.locator("a.card").last.scroll_into_view_if_needed()
        pg.page.wait_for_function(f"() => window.facetwin.loadedThumbnails() > {loaded}")
        pg.page.fill("#filter", "portrait_14")
        assert pg.page.locator("a.card:visible").count() == 10
        _wait_thumbnails(pg)
        pg.page.screenshot(path=shots / "gallery_big.png")
        assert time.monotonic() - t0 < 20
        assert pg.errors == [] and pg.foreign == []
    finally:
        pg.close()
        s.close()


# ---------------------------------------------------------------------------------------------------------------
# A real result from the pipeline, when the pipeline exists.


@pytest.fixture(scope="session")
def real_result(tmp_path_factory, photos_dir) -> Path:
    """The astronaut photo through `facetwin reconstruct` (the CLI writes OUT/<photo stem>/)."""
    exe = Path(sys.executable).with_name("facetwin")
    out = tmp_path_factory.mktemp("viewer_real")
    r = subprocess.run(
        [str(exe), "reconstruct", str(photos_dir / "astronaut.png"), "-o", str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    found = sorted(p.parent for p in out.rglob("avatar.glb"))
    assert len(found) == 1, found
    return found[0]


def test_real_result(browser, real_result, model, shots):
    s = _Served(real_result)
    pg = Page(browser, s.url)
    try:
        pg.open("/")
        assert pg.js("window.facetwin.morphTargetNames") == list(model.expression_names)
        assert pg.page.locator("input[type=range][data-target]").count() == 53
        report = json.loads((real_result / "report.json").read_text())
        pg.js("window.facetwin.setView('fitted')")
        surface = report["landmarks68_surface"]
        uv = np.array(pg.js("([ids, b]) => window.facetwin.projectSurfacePoints(ids, b)",
                            [surface["vertex_ids"], surface["bary"]]))
        err = np.linalg.norm(uv - np.array(report["landmarks68"]), axis=1)
        assert err.max() < REAL_LANDMARK_TOL_PX, err.max()
        pg.page.check("#show-lm68")
        pg.page.screenshot(path=shots / "real_fitted.png")
        pg.js("window.facetwin.setView('free')")
        pg.page.screenshot(path=shots / "real_free.png")
        assert pg.errors == [] and pg.foreign == []
    finally:
        pg.close()
        s.close()
