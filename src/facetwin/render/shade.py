"""Shading maths: vertex normals and second-order spherical-harmonics (SH) irradiance, in torch.

SH lighting follows Ramamoorthi & Hanrahan, "An Efficient Representation for Irradiance Environment Maps",
SIGGRAPH 2001: distant radiance ``L(w) = sum_lm L_lm Y_lm(w)`` with the 9 real SH of bands 0..2, and the
irradiance at normal ``n`` is ``E(n) = sum_lm A_l L_lm Y_lm(n)`` with the clamped-cosine convolution constants
``A_0 = pi``, ``A_1 = 2 pi / 3``, ``A_2 = pi / 4`` (their eq. 8 with the normalisations of their eq. 3). A
Lambertian surface of albedo ``rho`` then has outgoing radiance ``rho * E(n) / pi``. The 2nd-order
truncation is within 3/32 of the exact irradiance of a unit directional light (worst at the terminator).
Coefficients are in the frame of the normals (camera frame for photometric fitting).
"""

from __future__ import annotations

import math

import numpy as np
import torch

NORMAL_EPS = 1e-12
"""Floor on a normal's length before dividing, so vertices in no (or only degenerate) triangles get a zero
normal instead of NaN."""

# Real SH normalisation constants, bands 0..2 (Ramamoorthi & Hanrahan 2001, eq. 3).
_C00 = 0.5 / math.sqrt(math.pi)  # 0.282095
_C1 = math.sqrt(3.0 / (4.0 * math.pi))  # 0.488603
_C2 = math.sqrt(15.0 / (4.0 * math.pi))  # 1.092548
_C20 = math.sqrt(5.0 / (16.0 * math.pi))  # 0.315392
_C22 = math.sqrt(15.0 / (16.0 * math.pi))  # 0.546274

SH_BANDS = (0, 1, 1, 1, 2, 2, 2, 2, 2)
"""Band ``l`` of each of the 9 coefficients, in the order (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2),
(2,-1), (2,0), (2,1), (2,2)."""

SH_IRRADIANCE_A = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)
"""Clamped-cosine convolution constants A_0, A_1, A_2 (Ramamoorthi & Hanrahan 2001, eq. 8)."""


def vertex_normals(verts, faces):
    """Area-weighted unit vertex normals (numpy in, numpy out; torch in, differentiable torch out).

    Each triangle adds its un-normalised normal ``(v1 - v0) x (v2 - v0)`` (twice its area) to its corners;
    counter-clockwise corners seen from outside give outward normals.

    Args:
        verts: (V, 3) float array or tensor, any frame and length unit.
        faces: (F, 3) int array or tensor.

    Returns:
        (V, 3) unit normals, the type and dtype of ``verts``; zero for vertices in no triangle.
    """
    if not isinstance(verts, torch.Tensor):
        return vertex_normals(torch.from_numpy(np.asarray(verts)), faces).numpy()
    if verts.ndim != 2 or verts.shape[1] != 3 or not verts.dtype.is_floating_point:
        raise ValueError(f"verts: expected (V, 3) float, got {tuple(verts.shape)} {verts.dtype}")
    f = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.is_floating_point:
        raise ValueError(f"faces: expected (F, 3) integer, got {tuple(f.shape)} {f.dtype}")
    if f.numel() and (int(f.min()) < 0 or int(f.max()) >= verts.shape[0]):
        raise ValueError(f"faces: ids must be in [0, {verts.shape[0]}), got [{int(f.min())}, {int(f.max())}]")
    f = f.long()
    v0, v1, v2 = verts[f[:, 0]], verts[f[:, 1]], verts[f[:, 2]]
    fn = torch.linalg.cross(v1 - v0, v2 - v0)
    n = torch.zeros_like(verts).index_add(0, f.reshape(-1), fn.repeat_interleave(3, dim=0))
    return n / n.norm(dim=1, keepdim=True).clamp_min(NORMAL_EPS)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real spherical harmonics of bands 0..2 at unit directions.

    Args:
        normals: (..., 3) float tensor of unit vectors (x, y, z) in any frame.

    Returns:
        (..., 9) tensor in the order of :data:`SH_BANDS`.
    """
    if not isinstance(normals, torch.Tensor) or normals.shape[-1:] != (3,):
        raise ValueError(
            f"normals: expected a (..., 3) tensor, got {type(normals).__name__} "
            f"{tuple(getattr(normals, 'shape', ()))}"
        )
    x, y, z = normals.unbind(-1)
    return torch.stack(
        [
            torch.full_like(x, _C00),
            _C1 * y,
            _C1 * z,
            _C1 * x,
            _C2 * x * y,
            _C2 * y * z,
            _C20 * (3.0 * z * z - 1.0),
            _C2 * x * z,
            _C22 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_irradiance(normals: torch.Tensor, sh_light: torch.Tensor) -> torch.Tensor:
    """Irradiance at unit normals under distant SH lighting (differentiable in both).

    Args:
        normals: (..., 3) float tensor of unit normals, the frame of ``sh_light``.
        sh_light: (9, 3) radiance coefficients ``L_lm`` per RGB channel (linear light), order of
            :data:`SH_BANDS`.

    Returns:
        (..., 3) irradiance ``E(n)``; a Lambertian albedo ``rho`` reflects radiance ``rho * E / pi``.
    """
    light = torch.as_tensor(sh_light, dtype=normals.dtype if isinstance(normals, torch.Tensor) else None)
    if light.shape != (9, 3):
        raise ValueError(f"sh_light: expected (9, 3), got {tuple(light.shape)}")
    a = torch.tensor([SH_IRRADIANCE_A[band] for band in SH_BANDS], dtype=light.dtype)
    return sh_basis(normals) @ (a[:, None] * light)
