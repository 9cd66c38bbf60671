"""Where the ICT FaceKit model lives: ``--model PATH``, then ``$FACETWIN_MODEL``, then the user cache.

The user cache is ``platformdirs.user_cache_dir("facetwin")``; :func:`fetch_model` fills it from the
published archive when one is at hand, else with a shallow ``git clone`` of ICT-VGL/ICT-FaceKit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from facetwin.errors import ModelNotFoundError

ICT_REPO_URL = "https://github.com/ICT-VGL/ICT-FaceKit"
MODEL_ENV = "FACETWIN_MODEL"
NEUTRAL_OBJ = "generic_neutral_mesh.obj"


def cache_dir() -> Path:
    """The user cache folder of facetwin (created on demand by writers, not here)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("FACETWIN_CACHE") or user_cache_dir("facetwin"))


def cached_arrays(name: str, compute) -> dict:
    """Arrays derived from the model, kept in the user cache as ``name`` (.npz, uncompressed).

    Args:
        name: file name in :func:`cache_dir`; it must carry a key of everything the arrays depend on.
        compute: ``() -> dict[str, np.ndarray]``, called when the file is absent or unreadable.

    Returns:
        dict of the arrays. The file is written atomically (temporary file, then rename), so concurrent
        runs never read half a file; a cache that cannot be written is only a slower next run.
    """
    import numpy as np

    path = cache_dir() / name
    if path.is_file():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            pass  # damaged: derive again and overwrite
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        pass
    return arrays


def _as_model_dir(path: Path) -> Path | None:
    """``path`` itself or its ``FaceXModel`` subfolder, whichever holds the neutral mesh."""
    for cand in (path, path / "FaceXModel"):
        if (cand / NEUTRAL_OBJ).is_file():
            return cand
    return None


def fetch_hint() -> str:
    return (
        f"get it with: facetwin model fetch   (or: git clone --depth 1 {ICT_REPO_URL} "
        f"{cache_dir() / 'ICT-FaceKit'})"
    )


def find_model_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The folder holding ``generic_neutral_mesh.obj`` and the other FaceXModel files.

    Args:
        explicit: a folder given with ``--model``; either FaceXModel itself or a clone of ICT-FaceKit.

    Raises:
        ModelNotFoundError: nothing usable where the search order looks, naming the fetch command.
    """
    if explicit is not None:
        found = _as_model_dir(Path(explicit))
        if found is None:
            raise ModelNotFoundError(f"no ICT FaceKit model in {explicit} (no {NEUTRAL_OBJ}); {fetch_hint()}")
        return found
    env = os.environ.get(MODEL_ENV)
    if env:
        found = _as_model_dir(Path(env))
        if found is None:
            raise ModelNotFoundError(f"${MODEL_ENV}={env} holds no ICT FaceKit model; {fetch_hint()}")
        return found
    found = _as_model_dir(cache_dir() / "ICT-FaceKit")
    if found is None:
        raise ModelNotFoundError(f"ICT FaceKit head model not found; {fetch_hint()}")
    return found


def fetch_model(archive: str | os.PathLike | None = None) -> Path:
    """Fill the user cache with the ICT FaceKit model and return its FaceXModel folder.

    Args:
        archive: the published ``FaceXModel.tar.xz``; when None, ``git clone --depth 1`` the repository.

    Raises:
        ModelNotFoundError: the archive is unreadable, or git is missing or cannot reach the repository.
    """
    dest = cache_dir() / "ICT-FaceKit"
    if _as_model_dir(dest) is not None:
        return _as_model_dir(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ict-", dir=dest.parent))
    try:
        if archive is not None:
            try:
                with tarfile.open(archive, "r:xz") as tar:
                    tar.extractall(tmp, filter="data")
            except (OSError, tarfile.TarError) as exc:
                raise ModelNotFoundError(f"cannot unpack {archive}: {exc}") from exc
        else:
            if shutil.which("git") is None:
                raise ModelNotFoundError(f"git is not installed; {fetch_hint()}")
            proc = subprocess.run(
                ["git", "clone", "--depth", "1", ICT_REPO_URL, str(tmp / "repo")],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
                raise ModelNotFoundError(f"git clone {ICT_REPO_URL} failed: {last}")
            tmp = tmp / "repo"
        if _as_model_dir(tmp) is None:
            raise ModelNotFoundError(f"{archive or ICT_REPO_URL} holds no {NEUTRAL_OBJ}")
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.name == "repo":
            shutil.rmtree(tmp.parent, ignore_errors=True)
    return _as_model_dir(dest)
