"""Command line: parses arguments, calls the pipeline, reports. No science here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from facetwin import __version__
from facetwin.errors import FacetwinError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="One portrait photo to a 3D head.")
model_app = typer.Typer(no_args_is_help=True, help="Fetch and import the ICT FaceKit head model.")
app.add_typer(model_app, name="model")


def _fail(message: str, code: int = 1) -> None:
    """One line on stderr, no traceback, non-zero exit."""
    sys.stderr.write(f"facetwin: error: {message}\n")
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"facetwin {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """facetwin: photo -> fitted, animatable ICT FaceKit head (glTF/OBJ + report)."""


def _unique_dirs(photos: list[Path], out: Path) -> list[Path]:
    """``out/<stem>`` per photo; repeated stems get ``_2``, ``_3``... so no result overwrites another."""
    seen: dict[str, int] = {}
    dirs = []
    for p in photos:
        n = seen.get(p.stem, 0) + 1
        seen[p.stem] = n
        dirs.append(out / (p.stem if n == 1 else f"{p.stem}_{n}"))
    return dirs


@app.command()
def reconstruct(
    photos: Annotated[list[Path], typer.Argument(help="Portrait photos (JPEG, PNG, WebP, TIFF).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Parent folder; each photo's result goes to OUT/<stem>/.")] = Path("out"),
    face: Annotated[int | None, typer.Option("--face", help="Which face (0 = largest); default the largest.")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="ICT FaceKit folder (else $FACETWIN_MODEL, then the cache).")] = None,
    focal: Annotated[float | None, typer.Option("--focal", help="Focal length in pixels (overrides EXIF).")] = None,
    texture_size: Annotated[int, typer.Option("--texture-size", help="Albedo map texels per side, up to 4096; 0 = geometry only.")] = 2048,
    albedo_16bit: Annotated[bool, typer.Option("--albedo-16bit", help="Write textures/albedo*.png with 16 bits per channel.")] = False,
    log_json: Annotated[bool, typer.Option("--log-json", help="One JSON line per photo on stdout.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
) -> None:
    """Reconstruct a 3D head from each photo."""
    from rich.console import Console

    from facetwin.model import load_model
    from facetwin.pipeline import keep_freed_memory
    from facetwin.pipeline import reconstruct as run

    keep_freed_memory()
    if texture_size != 0 and not 256 <= texture_size <= 4096:
        _fail(f"--texture-size must be 0 or from 256 to 4096, got {texture_size}")
    options = {"face_index": face, "focal_px": focal, "texture_size": texture_size or None,
               "albedo_bits": 16 if albedo_16bit else 8}
    console = Console(stderr=True)
    interactive = console.is_terminal and not log_json
    try:
        head = load_model(model)
    except FacetwinError as exc:
        _fail(str(exc))
    failures = 0
    for photo, dest in zip(photos, _unique_dirs(photos, out)):
        try:
            if interactive:
                with console.status(f"{photo.name}: starting") as status:
                    result = run(photo, dest, head, **options,
                                 log=lambda msg, p=photo: status.update(f"{p.name}: {msg}"))
            else:
                result = run(photo, dest, head, **options)
        except FacetwinError as exc:
            failures += 1
            msg = str(exc)
            sys.stderr.write(f"facetwin: error: {msg if str(photo) in msg else f'{photo}: {msg}'}\n")
            if log_json:
                typer.echo(json.dumps({"photo": str(photo), "ok": False, "error": msg}))
            continue
        except Exception as exc:
            if debug:
                raise
            failures += 1
            sys.stderr.write(f"facetwin: error: {photo}: unexpected {type(exc).__name__}: {exc}\n")
            continue
        rep = result.report
        if log_json:
            typer.echo(json.dumps({"photo": str(photo), "ok": True, "out": str(result.out_dir),
                                   "faces": len(rep["faces"]), "timings": rep["timings"]}))
        elif interactive:
            console.print(f"[green]✓[/] {photo.name} -> {result.out_dir}  "
                          f"({len(rep['faces'])} face(s), {rep['timings']['total']:.2f} s)")
        else:
            typer.echo(str(result.out_dir))
    if failures:
        raise typer.Exit(1)


@model_app.command("fetch")
def model_fetch(
    archive: Annotated[Path | None, typer.Option("--archive", help="FaceXModel.tar.xz to unpack instead of git clone.")] = None,
) -> None:
    """Put the ICT FaceKit model into the user cache (unpack an archive, else git clone)."""
    from facetwin.model.locate import fetch_model

    try:
        typer.echo(str(fetch_model(archive)))
    except FacetwinError as exc:
        _fail(str(exc))


@model_app.command("import")
def model_import(
    path: Annotated[Path | None, typer.Argument(help="ICT FaceKit folder (default: $FACETWIN_MODEL, then the cache).")] = None,
) -> None:
    """Import the model into the fast cache and derive the landmark correspondence."""
    from facetwin.fit.correspondence import landmark_correspondence
    from facetwin.model import load_model
    from facetwin.model.ict import cached_model_path
    from facetwin.model.locate import find_model_dir

    try:
        head = load_model(path)
        landmark_correspondence(head)
        typer.echo(str(cached_model_path(find_model_dir(path))))
    except FacetwinError as exc:
        _fail(str(exc))


@app.command()
def view(
    path: Annotated[Path, typer.Argument(help="A result folder, an avatar.glb, or a folder of results.")],
    port: Annotated[int, typer.Option("--port", help="Port (0 = any free port).")] = 0,
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback exposes your files.")] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
) -> None:
    """Show a result (or a gallery of results) in the browser."""
    from facetwin.viewer import serve

    try:
        serve(path, host=host, port=port, open_browser=not no_browser)
    except FacetwinError as exc:
        _fail(str(exc))


def main() -> None:
    app()
