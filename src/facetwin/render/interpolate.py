"""Differentiable stage after :func:`facetwin.render.raster.rasterize` (PyTorch).

The rasteriser fixes which triangle covers each pixel; here the barycentrics of the covered pixel centres
are recomputed from the vertices in torch so that gradients reach ``verts_cam`` (pytorch3d style: the
coverage itself is not differentiated, so there are no silhouette gradients).
"""

from __future__ import annotations

import numpy as np
import torch

from facetwin.render.raster import Raster


def _faces_tensor(faces, n_verts: int) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.is_floating_point:
        raise ValueError(f"faces: expected (F, 3) integer, got {tuple(f.shape)} {f.dtype}")
    if f.numel() and (int(f.min()) < 0 or int(f.max()) >= n_verts):
        raise ValueError(f"faces: ids must be in [0, {n_verts}), got [{int(f.min())}, {int(f.max())}]")
    return f.long()


def barycentrics_torch(verts_cam: torch.Tensor, faces, K, raster: Raster) -> torch.Tensor:
    """Perspective-correct barycentrics of the covered pixel centres, differentiable w.r.t. the vertices.

    Args:
        verts_cam: (V, 3) float tensor, centimetres, OpenCV camera frame; the vertices ``raster`` was made
            from (or a small perturbation of them).
        faces: (F, 3) int array or tensor, the faces ``raster`` was made from.
        K: (3, 3) intrinsics, pixels; last row (0, 0, 1).
        raster: :class:`Raster` of the same mesh and camera.

    Returns:
        (N, 3) tensor, dtype of ``verts_cam``: weights of ``faces[tri_id]``'s vertices at the N covered
        pixels (``raster.covered``) in row-major order. Equal to ``raster.bary[raster.covered]`` up to
        float32 rounding.
    """
    if not isinstance(verts_cam, torch.Tensor) or verts_cam.ndim != 2 or verts_cam.shape[1] != 3:
        raise ValueError(
            f"verts_cam: expected a (V, 3) tensor, got {type(verts_cam).__name__} "
            f"{tuple(getattr(verts_cam, 'shape', ()))}"
        )
    f = _faces_tensor(faces, verts_cam.shape[0])
    k = torch.as_tensor(np.asarray(K, dtype=np.float64), dtype=verts_cam.dtype)
    if k.shape != (3, 3):
        raise ValueError(f"K: expected (3, 3), got {tuple(k.shape)}")
    rows, cols = np.nonzero(raster.covered)
    tri = torch.as_tensor(raster.tri_id[rows, cols], dtype=torch.long)
    xc = torch.as_tensor(cols + 0.5, dtype=verts_cam.dtype)
    yc = torch.as_tensor(rows + 0.5, dtype=verts_cam.dtype)

    tv = verts_cam[f[tri]]  # (N, 3 corners, 3 xyz)
    z = tv[..., 2]
    u = (k[0, 0] * tv[..., 0] + k[0, 1] * tv[..., 1]) / z + k[0, 2]
    v = (k[1, 0] * tv[..., 0] + k[1, 1] * tv[..., 1]) / z + k[1, 2]
    # Edge function of corner k: signed area spanned by the opposite edge and the pixel centre.
    nxt, prv = [1, 2, 0], [2, 0, 1]
    du, dv = u[:, prv] - u[:, nxt], v[:, prv] - v[:, nxt]
    e = du * (yc[:, None] - v[:, nxt]) - dv * (xc[:, None] - u[:, nxt])
    w = e / z  # The common 1 / area cancels in the normalisation.
    return w / w.sum(dim=1, keepdim=True)


def interpolate(attr: torch.Tensor, faces, tri_ids, bary) -> torch.Tensor:
    """Barycentric interpolation of per-vertex attributes at covered pixels (differentiable in both).

    Args:
        attr: (V, C) float tensor of per-vertex attributes (colours, normals, camera positions...).
        faces: (F, 3) int array or tensor.
        tri_ids: (N,) int, triangle of each sample, e.g. ``raster.tri_id[raster.covered]``.
        bary: (N, 3) float array or tensor, weights of ``faces[tri_ids]``'s vertices, e.g. from
            :func:`barycentrics_torch`.

    Returns:
        (N, C) tensor, dtype of ``attr``.
    """
    if not isinstance(attr, torch.Tensor) or attr.ndim != 2:
        raise ValueError(
            f"attr: expected a (V, C) tensor, got {type(attr).__name__} {tuple(getattr(attr, 'shape', ()))}"
        )
    f = _faces_tensor(faces, attr.shape[0])
    t = torch.as_tensor(np.asarray(tri_ids) if not isinstance(tri_ids, torch.Tensor) else tri_ids).long()
    b = torch.as_tensor(bary, dtype=attr.dtype)
    if t.ndim != 1 or b.shape != (t.shape[0], 3):
        raise ValueError(
            f"tri_ids, bary: expected (N,) and (N, 3), got {tuple(t.shape)} and {tuple(b.shape)}"
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= f.shape[0]):
        raise ValueError(f"tri_ids: must be in [0, {f.shape[0]}), got [{int(t.min())}, {int(t.max())}]")
    return torch.einsum("nk,nkc->nc", b, attr[f[t]])
