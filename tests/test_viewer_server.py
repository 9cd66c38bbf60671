"""The viewer's HTTP server: what it serves, what it refuses, how it starts and stops.

Requests go out through :mod:`http.client` so the request line is sent exactly as written (no client-side
normalisation of ``..`` or percent-escapes).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from facetwin.errors import FacetwinError
from facetwin.viewer import server as vs
from facetwin.viewer.server import Site, make_server

SECRET = b"top secret, outside PATH"
FAKE_GLB = b"glTF\x02\x00\x00\x00" + (20).to_bytes(4, "little") + b"\x00" * 8
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a5f0bf5d0000000049454e44ae426082"
)


def _result(d: Path, photo: Path | None = None, input_jpg: bool = False) -> Path:
    (d / "renders").mkdir(parents=True)
    (d / "avatar.glb").write_bytes(FAKE_GLB)
    (d / "renders" / "overlay.png").write_bytes(PNG_1PX)
    report = {
        "facetwin_version": "0",
        "input": {"path": str(photo) if photo else "", "width": 1, "height": 1},
        "faces": [{"box": [0, 0, 1, 1], "score": 0.9}],
        "timings": {"detect": 0.5, "fit": 1.5},
        "fit": {"landmarks_rms_px": 1.25},
    }
    (d / "report.json").write_text(json.dumps(report))
    if input_jpg:
        (d / "renders" / "input.jpg").write_bytes(b"\xff\xd8\xff own input.jpg")
    return d


@pytest.fixture()
def tree(tmp_path: Path) -> dict[str, Path]:
    """PATH = tmp/results with three results (one nested), secrets and symlinks around it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(SECRET)
    secret_png = outside / "secret.png"
    secret_png.write_bytes(SECRET)
    photo = outside / "photo.png"
    photo.write_bytes(PNG_1PX)
    root = tmp_path / "results"
    root.mkdir()
    _result(root / "alice", photo=photo)
    _result(root / "bob", photo=photo, input_jpg=True)
    _result(root / "batch" / "carol")
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("hello")
    (root / "link_to_secret.txt").symlink_to(secret)
    (root / "link_dir").symlink_to(outside, target_is_directory=True)
    # a "result" whose report names a non-image file outside PATH as its photo
    evil = _result(root / "evil")
    rep = json.loads((evil / "report.json").read_text())
    rep["input"]["path"] = str(secret)
    (evil / "report.json").write_text(json.dumps(rep))
    return {"root": root, "secret": secret, "photo": photo, "outside": outside}


@pytest.fixture()
def running(tree):
    """A gallery server on a free loopback port, serving in a thread."""
    srv = make_server(tree["root"])
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, target: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = srv.server_address[:2]
    c = http.client.HTTPConnection(host, port, timeout=5)
    c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for k, v in ({"Host": f"127.0.0.1:{port}"} | (headers or {})).items():
        c.putheader(k, v)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


# ---------------------------------------------------------------------------------------------------------------
# What is served.


def test_page_and_listing(running):
    status, headers, body = request(running, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="/static/app.js">' in body
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self' 'sha256-" in csp
    status, headers, body = request(running, "GET", "/api/results.json")
    assert status == 200
    site = json.loads(body)
    assert site["mode"] == "gallery"
    ids = [r["id"] for r in site["results"]]
    assert ids == ["alice", "batch/carol", "bob", "evil"]
    alice = site["results"][0]
    assert (
        alice["glb"] == "/files/alice/avatar.glb" and alice["overlay"] == "/files/alice/renders/overlay.png"
    )
    assert alice["summary"]["faces"] == 1 and alice["summary"]["seconds"] == 2.0
    assert alice["summary"]["fit"] == {"landmarks_rms_px": 1.25}
    assert site["results"][1]["photo"] is None  # carol's report names no photo
    assert site["results"][3]["photo"] is None  # evil's names a .txt


def test_files_static_three(running):
    status, headers, body = request(running, "GET", "/files/alice/avatar.glb")
    assert (status, headers["content-type"], body) == (200, "model/gltf-binary", FAKE_GLB)
    status, headers, body = request(running, "HEAD", "/files/alice/avatar.glb")
    assert status == 200 and body == b"" and headers["content-length"] == str(len(FAKE_GLB))
    status, headers, _ = request(running, "GET", "/files/batch/carol/report.json")
    assert status == 200 and headers["content-type"] == "application/json"
    for target in (
        "/static/viewer.js",
        "/static/gallery.js",
        "/three/build/three.module.js",
        "/three/examples/jsm/controls/OrbitControls.js",
    ):
        status, headers, _ = request(running, "GET", target)
        assert status == 200 and headers["content-type"].startswith("text/javascript"), target


def test_photo_route(running, tree):
    status, _, body = request(running, "GET", "/photo/alice")  # the report's input.path, outside PATH
    assert status == 200 and body == PNG_1PX
    status, headers, body = request(running, "GET", "/photo/bob")  # renders/input.jpg wins
    assert status == 200 and body.endswith(b"own input.jpg") and headers["content-type"] == "image/jpeg"
    for target in (
        "/photo/evil",
        "/photo/batch/carol",
        "/photo/nobody",
        "/photo/",
        "/photo/notes",
        "/photo/%2e%2e",
        "/photo/../outside",
    ):
        status, _, body = request(running, "GET", target)
        assert status == 404 and SECRET not in body, target


# ---------------------------------------------------------------------------------------------------------------
# What is refused.

TRAVERSALS = [
    "/files/../outside/secret.txt",
    "/files/alice/../../outside/secret.txt",
    "/files/%2e%2e/outside/secret.txt",
    "/files/%2E%2E/outside/secret.txt",
    "/files/%2e%2e%2foutside%2fsecret.txt",
    "/files/..%2Foutside%2Fsecret.txt",
    "/files/alice/%2e%2e/%2e%2e/outside/secret.txt",
    "/files/%252e%252e/outside/secret.txt",
    "/files/..%5coutside%5csecret.txt",
    "/%2e%2e/outside/secret.txt",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/./alice/avatar.glb",
    "/files/alice/avatar.glb%00.png",
    "/files/%ff%fe",
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/three/../../package.json",
    "/three/package.json",
    "/three/build/../../../package.json",
    "/files/link_to_secret.txt",
    "/files/link_dir/secret.txt",
    "/files/link_dir/secret.png",
    "http://127.0.0.1/files/../outside/secret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_is_404(running, target):
    status, _, body = request(running, "GET", target)
    assert status == 404, target
    assert SECRET not in body and b"root:" not in body


def test_no_directory_listing(running):
    for target in (
        "/files/",
        "/files/alice",
        "/files/alice/",
        "/files/notes",
        "/files/alice/renders/",
        "/static/",
        "/three/",
        "/three/build/",
        "/api/",
        "/nothing",
    ):
        status, _, body = request(running, "GET", target)
        assert status == 404 and b"avatar.glb" not in body, target


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_other_methods_405(running, method):
    status, headers, _ = request(running, method, "/files/alice/avatar.glb")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_foreign_host_header_refused(running):
    """A DNS-rebinding page (Host: evil.example) cannot read results from a loopback server."""
    status, _, body = request(running, "GET", "/files/alice/avatar.glb", {"Host": "evil.example:80"})
    assert status == 403 and body != FAKE_GLB
    for host in ("localhost", "localhost:1234", "127.0.0.1:9", "[::1]:80"):
        assert request(running, "GET", "/", {"Host": host})[0] == 200, host


def test_glb_mode_serves_only_the_glb(tree):
    srv = make_server(tree["root"] / "alice" / "avatar.glb")
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        site = json.loads(request(srv, "GET", "/api/results.json")[2])
        assert site["mode"] == "glb" and [r["glb"] for r in site["results"]] == ["/files/avatar.glb"]
        assert request(srv, "GET", "/files/avatar.glb")[0] == 200
        assert request(srv, "GET", "/files/report.json")[0] == 404
        assert request(srv, "GET", "/files/renders/overlay.png")[0] == 404
        assert request(srv, "GET", "/photo/")[0] == 404
    finally:
        srv.shutdown()
        srv.server_close()


def test_single_result_mode(tree):
    site = Site.from_path(tree["root"] / "bob")
    data = site.results_json()
    assert data["mode"] == "result"
    assert [(r["id"], r["glb"], r["photo"]) for r in data["results"]] == [
        ("", "/files/avatar.glb", "/photo/")
    ]
    assert site.file("report.json") is not None and site.file("../alice/report.json") is None


# ---------------------------------------------------------------------------------------------------------------
# Starting and stopping.


def test_default_bind_is_loopback(tree):
    import inspect

    assert inspect.signature(vs.serve).parameters["host"].default == "127.0.0.1"
    srv = make_server(tree["root"])
    try:
        host, port = srv.server_address[:2]
        assert host == "127.0.0.1" and port > 0 and srv.loopback_only
        assert srv.url == f"http://127.0.0.1:{port}/"
    finally:
        srv.server_close()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda r: r / "missing", "no such file"),
        (lambda r: r / "notes", "no avatar.glb"),
        (lambda r: r / "notes" / "readme.txt", "not a .glb"),
    ],
)
def test_bad_path_is_one_line_error(tree, make, words):
    with pytest.raises(FacetwinError) as e:
        vs.serve(make(tree["root"]), open_browser=False)
    msg = str(e.value)
    assert words in msg and "\n" not in msg


def test_result_without_glb_and_fake_glb(tree):
    d = tree["root"] / "alice"
    (d / "avatar.glb").unlink()
    with pytest.raises(FacetwinError, match="without avatar.glb"):
        Site.from_path(d)
    fake = tree["outside"] / "fake.glb"
    fake.write_bytes(b"not a glb at all")
    with pytest.raises(FacetwinError, match="not a binary glTF"):
        Site.from_path(fake)


def test_three_dir_env(tree, monkeypatch):
    monkeypatch.setenv(vs.THREE_ENV, str(tree["outside"]))
    with pytest.raises(FacetwinError, match="FACETWIN_THREE_DIR"):
        make_server(tree["root"])
    monkeypatch.delenv(vs.THREE_ENV)
    real = vs.find_three_dir()
    assert (real / "build" / "three.module.js").is_file()
    monkeypatch.setenv(vs.THREE_ENV, str(real))
    assert vs.find_three_dir() == real


def test_no_three_js_is_a_clear_error(tmp_path, monkeypatch):
    """As in an installed wheel: no node_modules/three above the package nor in the working directory."""
    monkeypatch.delenv(vs.THREE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FacetwinError, match=r"three\.js not found: run `make node`") as e:
        vs.find_three_dir(start=tmp_path / "site-packages" / "facetwin" / "viewer")
    assert "\n" not in str(e.value)


def _start_cli_like(args: str, tmp_path: Path) -> subprocess.Popen:
    # A runner started in the background (nohup, `&`) ignores SIGINT, and children inherit that; a user's
    # terminal does not, so the child gets Python's own Ctrl-C handler back.
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        f"from facetwin.viewer import serve; from pathlib import Path; serve({args})"
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def _wait_for_url(proc: subprocess.Popen, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "http://" in line:
            return line.split("http://", 1)[1].split()[0]
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no address printed; stderr: {proc.stderr.read()}")


def test_ctrl_c_stops_cleanly(tree, tmp_path):
    proc = _start_cli_like(f"Path({str(tree['root'])!r}), open_browser=False", tmp_path)
    try:
        addr = _wait_for_url(proc)
        assert addr.startswith("127.0.0.1:")
        host, port = addr.rstrip("/").split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=5)
        c.request("GET", "/api/results.json")
        assert c.getresponse().status == 200
        c.close()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 0 and "Traceback" not in err and "stopped" in err


def test_other_host_warns(tree, tmp_path):
    proc = _start_cli_like(f"Path({str(tree['root'])!r}), host='0.0.0.0', open_browser=False", tmp_path)
    try:
        addr = _wait_for_url(proc)
        assert addr.startswith("0.0.0.0:")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "warning: serving on 0.0.0.0" in proc.stderr.read()


def test_cli_missing_path(tmp_path):
    """`facetwin view MISSING` prints one line and exits non-zero (needs the lead's `view` command)."""
    exe = Path(sys.executable).with_name("facetwin")
    probe = (
        subprocess.run([str(exe), "view", "--help"], check=False, capture_output=True, text=True)
        if exe.exists()
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("the CLI has no `view` command yet")
    r = subprocess.run(
        [str(exe), "view", str(tmp_path / "missing"), "--no-browser"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "no such file" in lines[0] and "Traceback" not in r.stderr
