"""Local HTTP server for the web viewer: one result, one ``avatar.glb``, or a gallery of results.

Standard library only (:mod:`http.server`). What it serves, and nothing else:

``/``, ``/index.html``
    The viewer page (``static/index.html``); it shows the gallery or one result depending on the query.
``/static/<file>``
    The viewer's own assets, from this package's ``static`` folder.
``/three/<path>``
    three.js from ``node_modules/three`` (see :func:`find_three_dir`): ``build/`` and ``examples/jsm/`` only.
``/api/results.json``
    The list of results under PATH with their key numbers (the only "listing" the server makes).
``/files/<rel>``
    A regular file under PATH (in GLB mode: that one file). Directories are never listed.
``/photo/<id>``
    The input photo of result ``id``: ``renders/input.jpg`` under the result when present, else the image
    file named by that result's ``report.json`` (``input.path``). Nothing else outside PATH is reachable.

Every path is decoded once, split into segments, and refused (404) when a segment is empty, ``.``, ``..``,
holds a backslash or NUL, or when the resolved file (symlinks followed) is not inside PATH. Only GET and
HEAD are answered; any other method gets 405. When bound to a loopback address, requests whose ``Host``
header is not a loopback name are refused (403), which stops DNS-rebinding pages from reading results.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import webbrowser
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from facetwin.errors import FacetwinError

STATIC_DIR = Path(__file__).resolve().parent / "static"
GLB_NAME = "avatar.glb"
REPORT_NAME = "report.json"
OVERLAY_REL = "renders/overlay.png"
INPUT_RENDER_REL = "renders/input.jpg"
THREE_ENV = "FACETWIN_THREE_DIR"
THREE_SUBDIRS = ("build", "examples/jsm")
"""Parts of the three.js package the page may load; the rest of node_modules is never served."""

GALLERY_MAX_DEPTH = 3
"""How deep below PATH results are looked for (PATH/a/b/c/avatar.glb); deeper trees are not scanned."""

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})
"""Only image files named by a report are served from outside PATH."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".glb": "model/gltf-binary",
    ".gltf": "model/gltf+json",
    ".bin": "application/octet-stream",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".svg": "image/svg+xml",
    ".obj": "text/plain; charset=utf-8",
    ".mtl": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

_IMPORTMAP_RE = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)

# --------------------------------------------------------------------------------------------------------------
# Finding things: three.js, the results under PATH.


def find_three_dir(start: Path | None = None) -> Path:
    """The ``node_modules/three`` folder the page's three.js comes from.

    Looked for, in order: ``$FACETWIN_THREE_DIR``; ``node_modules/three`` in this package's folder or any
    folder above it (a checkout: ``src/facetwin/viewer`` -> repository root); the same in the current working
    directory. An installed wheel carries no three.js, so there this raises unless the variable is set.

    Args:
        start: folder to walk up from; None for this package's folder.

    Returns:
        The folder holding ``build/three.module.js``.

    Raises:
        FacetwinError: no three.js found; the message says how to get it.
    """
    candidates: list[Path] = []
    env = os.environ.get(THREE_ENV)
    if env:
        p = Path(env).expanduser()
        if not (p / "build" / "three.module.js").is_file():
            raise FacetwinError(
                f"{THREE_ENV}={env}: no build/three.module.js there (point it at node_modules/three)"
            )
        return p.resolve()
    here = (start or Path(__file__).parent).resolve()
    candidates += [d / "node_modules" / "three" for d in (here, *here.parents)]
    candidates.append(Path.cwd() / "node_modules" / "three")
    for c in candidates:
        if (c / "build" / "three.module.js").is_file():
            return c.resolve()
    raise FacetwinError(
        "three.js not found: run `make node` (npm ci) in a facetwin checkout, "
        f"or set {THREE_ENV} to a node_modules/three folder (three@0.187.0)"
    )


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_result_dir(d: Path) -> bool:
    return (d / GLB_NAME).is_file()


def _scan_results(root: Path) -> list[str]:
    """Relative posix paths of result folders below ``root`` (not ``root`` itself), sorted.

    Symlinked folders are not followed (a link could lead outside PATH); hidden folders are skipped; a
    result folder is not searched further.
    """
    found: list[str] = []

    def walk(d: Path, rel: tuple[str, ...], depth: int) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return
        for e in entries:
            if e.name.startswith(".") or not e.is_dir(follow_symlinks=False):
                continue
            sub = Path(e.path)
            r = (*rel, e.name)
            if _is_result_dir(sub):
                found.append("/".join(r))
            elif depth < GALLERY_MAX_DEPTH:
                walk(sub, r, depth + 1)

    walk(root, (), 1)
    return found


def _numbers(x: object) -> dict[str, float]:
    """Flatten a nested dict of numbers into ``{"a.b": value}`` (non-numbers dropped)."""
    out: dict[str, float] = {}

    def rec(v: object, key: str) -> None:
        if isinstance(v, bool):
            return
        if isinstance(v, (int, float)):
            out[key] = float(v)
        elif isinstance(v, dict):
            for k, w in v.items():
                rec(w, f"{key}.{k}" if key else str(k))

    rec(x, "")
    return out


def summarize_report(report: dict | None) -> dict:
    """Key numbers of one result for the gallery card: photo size, faces found, seconds, fit residuals."""
    if not report:
        return {}
    inp = report.get("input") if isinstance(report.get("input"), dict) else {}
    faces = report.get("faces") if isinstance(report.get("faces"), list) else None
    timings = _numbers(report.get("timings") or {})
    out: dict = {
        "width": inp.get("width"),
        "height": inp.get("height"),
        "faces": None if faces is None else len(faces),
        "seconds": round(timings["total"] if "total" in timings else sum(timings.values()), 3)
        if timings
        else None,
        "fit": _numbers(report.get("fit") or {}),
        "version": report.get("facetwin_version"),
    }
    return out


@dataclass(frozen=True)
class Site:
    """What one server shows.

    Attributes:
        root: the folder whose files may be served (PATH, or the GLB's folder in GLB mode), resolved.
        mode: ``"result"`` (PATH is one result), ``"gallery"`` (a folder of results) or ``"glb"``.
        glb: in GLB mode, the one file that may be served, resolved.
        three_dir: ``node_modules/three``, resolved.
    """

    root: Path
    mode: str
    glb: Path | None
    three_dir: Path

    @classmethod
    def from_path(cls, path: Path, three_dir: Path | None = None) -> Site:
        """Check PATH and decide the mode.

        Raises:
            FacetwinError: PATH missing, not a result (no ``avatar.glb``), not a GLB, or no results inside.
        """
        path = Path(path).expanduser()
        if not path.exists():
            raise FacetwinError(f"{path}: no such file or folder")
        if path.is_file():
            if path.suffix.lower() != ".glb":
                raise FacetwinError(f"{path}: not a .glb file nor a result folder")
            if path.stat().st_size < 12 or path.read_bytes()[:4] != b"glTF":
                raise FacetwinError(f"{path}: not a binary glTF (.glb) file")
            glb = path.resolve()
            return cls(root=glb.parent, mode="glb", glb=glb, three_dir=three_dir or find_three_dir())
        if not path.is_dir():
            raise FacetwinError(f"{path}: not a file or folder")
        root = path.resolve()
        if _is_result_dir(root):
            return cls(root=root, mode="result", glb=None, three_dir=three_dir or find_three_dir())
        if (root / REPORT_NAME).is_file():
            raise FacetwinError(f"{path}: result folder without {GLB_NAME}")
        if not _scan_results(root):
            raise FacetwinError(f"{path}: not a facetwin result (no {GLB_NAME}) and no results inside")
        return cls(root=root, mode="gallery", glb=None, three_dir=three_dir or find_three_dir())

    # ----------------------------------------------------------------------------------------------------------

    def result_ids(self) -> list[str]:
        if self.mode == "gallery":
            return _scan_results(self.root)
        return [""]

    def result_dir(self, rid: str) -> Path | None:
        """The folder of result ``rid`` (``""`` for a single result), or None if there is no such result."""
        if self.mode == "glb":
            return None
        if rid == "":
            return self.root if self.mode == "result" else None
        d = self.safe_join(self.root, rid)
        if d is None or not d.is_dir() or not _is_result_dir(d):
            return None
        return d

    def file(self, rel: str) -> Path | None:
        """The regular file at ``rel`` (decoded, ``/``-separated) below PATH, or None when not allowed."""
        p = self.safe_join(self.root, rel)
        if p is None or not p.is_file():
            return None
        if self.mode == "glb" and p != self.glb:
            return None
        return p

    def three_file(self, rel: str) -> Path | None:
        if not any(rel.startswith(s + "/") for s in THREE_SUBDIRS):
            return None
        p = self.safe_join(self.three_dir, rel)
        return p if p is not None and p.is_file() else None

    def static_file(self, rel: str) -> Path | None:
        p = self.safe_join(STATIC_DIR, rel)
        return p if p is not None and p.is_file() else None

    def photo(self, rid: str) -> Path | None:
        """The input photo of result ``rid``: ``renders/input.jpg`` if present, else the report's ``input.path``."""
        d = self.result_dir(rid)
        if d is None:
            return None
        own = self.safe_join(d, INPUT_RENDER_REL)
        if own is not None and own.is_file() and own.is_relative_to(self.root):
            return own
        report = _read_json(d / REPORT_NAME) or {}
        inp = report.get("input")
        named = inp.get("path") if isinstance(inp, dict) else None
        if not isinstance(named, str) or not named:
            return None
        p = Path(named)
        if not p.is_absolute():
            p = d / p
        try:
            p = p.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if p.suffix.lower() not in PHOTO_SUFFIXES or not p.is_file():
            return None
        return p

    def results_json(self) -> dict:
        """The gallery's JSON: mode and, per result, its id, name, URLs and key numbers."""
        items = []
        if self.mode == "glb":
            rel = self.glb.name
            items.append(
                {
                    "id": "",
                    "name": rel,
                    "glb": "/files/" + quote(rel),
                    "report": None,
                    "overlay": None,
                    "photo": None,
                    "summary": {},
                }
            )
        for rid in self.result_ids():
            d = self.result_dir(rid)
            if d is None:
                continue
            prefix = "/files/" + (quote(rid) + "/" if rid else "")
            report = _read_json(d / REPORT_NAME)
            items.append(
                {
                    "id": rid,
                    "name": rid or d.name,
                    "glb": prefix + GLB_NAME,
                    "report": prefix + REPORT_NAME if report is not None else None,
                    "overlay": prefix + OVERLAY_REL if (d / OVERLAY_REL).is_file() else None,
                    "photo": ("/photo/" + quote(rid)) if self.photo(rid) is not None else None,
                    "summary": summarize_report(report),
                }
            )
        three_pkg = _read_json(self.three_dir / "package.json") or {}
        return {
            "mode": self.mode,
            "root": self.root.name,
            "three": three_pkg.get("version"),
            "results": items,
        }

    @staticmethod
    def safe_join(base: Path, rel: str) -> Path | None:
        """``base / rel`` resolved, or None when ``rel`` is not a plain relative path that stays inside ``base``.

        ``rel`` is already percent-decoded; it must be ``/``-separated segments, none empty, ``.``, ``..``,
        nor holding a backslash or a NUL. Symlinks are followed and the result must still
        lie in ``base`` (resolved).
        """
        if not rel or rel.startswith("/"):
            return None
        parts = rel.split("/")
        for s in parts:
            if s in ("", ".", "..") or "\\" in s or "\x00" in s:
                return None
        base_r = base.resolve()
        try:
            p = base_r.joinpath(*parts).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return None
        if not p.is_relative_to(base_r):
            return None
        return p


# --------------------------------------------------------------------------------------------------------------
# The HTTP side.


def _csp(index_html: str) -> str:
    """Content-Security-Policy: same-origin only, the inline import map allowed by its hash."""
    m = _IMPORTMAP_RE.search(index_html)
    script_src = "'self'"
    if m:
        h = base64.b64encode(hashlib.sha256(m.group(1).encode("utf-8")).digest()).decode("ascii")
        script_src += f" 'sha256-{h}'"
    return (
        "default-src 'none'; "
        f"script-src {script_src}; "
        "style-src 'self'; "
        "img-src 'self' blob: data:; "
        "connect-src 'self' blob: data:; "
        "worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class ViewerServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` that knows its :class:`Site`."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, site: Site, host: str, port: int):
        self.site = site
        self.loopback_only = _is_loopback(host)
        self.index_html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.csp = _csp(self.index_html)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ViewerHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ViewerHandler(BaseHTTPRequestHandler):
    server: ViewerServer
    server_version = "facetwin-viewer"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:
        pass  # quiet: the terminal shows the address and errors only

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; every method other than GET/HEAD gets 405.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, extra={"Allow": "GET, HEAD"})

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # ----------------------------------------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        if not self.server.loopback_only:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in LOOPBACK_NAMES

    def _serve(self, head: bool) -> None:
        if not self._host_ok():
            self._send_error(HTTPStatus.FORBIDDEN)
            return
        split = urlsplit(self.path)
        raw = split.path
        if not raw.startswith("/") or split.scheme or split.netloc:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        try:
            path = unquote(raw, errors="strict") if "%" in raw else raw
        except UnicodeDecodeError:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        site = self.server.site
        if path in ("/", "/index.html"):
            body = self.server.index_html.encode("utf-8")
            self._send_bytes(body, CONTENT_TYPES[".html"], head)
            return
        if path == "/api/results.json":
            body = json.dumps(site.results_json()).encode("utf-8")
            self._send_bytes(body, CONTENT_TYPES[".json"], head)
            return
        if path.startswith("/photo/"):
            f = site.photo(path[len("/photo/") :])
        elif path.startswith("/files/"):
            f = site.file(path[len("/files/") :])
        elif path.startswith("/static/"):
            f = site.static_file(path[len("/static/") :])
        elif path.startswith("/three/"):
            f = site.three_file(path[len("/three/") :])
        else:
            f = None
        if f is None:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        self._send_file(f, head)

    def _common_headers(self, ctype: str, length: int) -> None:
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-cache")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", self.server.csp)

    def _send_bytes(self, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self._common_headers(ctype, len(body))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, f: Path, head: bool) -> None:
        ctype = CONTENT_TYPES.get(f.suffix.lower(), "application/octet-stream")
        try:
            fh = open(f, "rb")  # noqa: SIM115 - closed by the with below; failing here is a 404 before any header
        except OSError:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self._common_headers(ctype, size)
            self.end_headers()
            if head:
                return
            try:
                while chunk := fh.read(1 << 20):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away (a cancelled thumbnail, a closed tab)

    def _send_error(self, status: HTTPStatus, extra: dict | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self._common_headers("text/plain; charset=utf-8", len(body))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            self.wfile.write(body)


# --------------------------------------------------------------------------------------------------------------
# Entry points.


def make_server(path: Path, host: str = "127.0.0.1", port: int = 0) -> ViewerServer:
    """Check PATH and bind a server (not yet serving); ``port=0`` picks a free port.

    Raises:
        FacetwinError: bad PATH, no three.js, or the address cannot be bound.
    """
    site = Site.from_path(Path(path))
    try:
        return ViewerServer(site, host, int(port))
    except OSError as e:
        why = "port in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise FacetwinError(f"cannot listen on {host}:{port}: {why}") from e


def serve(path: Path, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True) -> None:
    """Serve the viewer for PATH until Ctrl-C.

    Args:
        path: one result folder, an ``avatar.glb``, or a folder of results.
        host: address to bind; anything but loopback is only used when asked for, with a warning.
        port: TCP port; 0 picks a free one.
        open_browser: open the default browser at the address.

    Raises:
        FacetwinError: bad PATH (missing, not a result, no GLB), no three.js, or the address is taken.
    """
    if not _is_loopback(host):
        print(
            f"warning: serving on {host}: anyone who can reach this machine can view these results",
            file=sys.stderr,
        )
    server = make_server(path, host, port)
    url = server.url
    print(
        f"facetwin viewer: {url}  ({server.site.mode}: {server.site.root})  press Ctrl-C to stop", flush=True
    )
    if open_browser:
        threading.Thread(target=_open, args=(url,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.25)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()


def _open(url: str) -> None:
    # Without a display, Python's webbrowser falls back to console browsers (lynx, w3m) that would take over
    # the terminal the server runs in; over SSH the address is what the user needs.
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        print(f"no display to open a browser on; open {url} yourself", file=sys.stderr)
        return
    try:
        if not webbrowser.open(url):
            print(f"could not open a browser; open {url} yourself", file=sys.stderr)
    except webbrowser.Error:
        print(f"could not open a browser; open {url} yourself", file=sys.stderr)
