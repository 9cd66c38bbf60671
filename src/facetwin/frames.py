"""Coordinate frames, units and colour spaces, defined once for the whole project.

Head frame (model frame)
    The ICT FaceKit frame as published: x towards the subject's left (image right in a frontal photo),
    y up, z out of the face (towards a frontal camera). Units: centimetres. Origin: the model's own.

Camera frame
    OpenCV convention: x right, y down, z forward (into the scene). Units: centimetres.
    A head point ``X`` maps to the camera as ``X_cam = R @ X + t``.

Pixel frame
    Column ``u`` to the right, row ``v`` down, origin at the top-left *corner* of the top-left pixel, so
    the centre of pixel (row i, column j) is at ``(j + 0.5, i + 0.5)``. ``K`` maps camera to pixels:
    ``[u, v, 1]^T ~ K @ X_cam``.

UV frame
    ICT FaceKit's UDIM-like layout: ``u`` in ``[k, k + 1)`` is tile ``k`` (0 = face, 1 = back of head, ...),
    ``v`` up with origin at the bottom of a tile (OBJ convention). glTF puts the origin at the top, so
    :func:`uv_to_gltf` flips ``v`` at the export boundary and nowhere else.

glTF frame
    glTF is y up, +z towards the viewer, metres, so a head-frame point exports as ``X * 0.01``
    (:data:`CM_TO_M`). The OpenCV camera looks down +z with y down; glTF/OpenGL cameras look down -z with
    y up: :func:`opencv_to_opengl_camera` converts a camera pose at the export boundary.

Colour
    Images are decoded to float sRGB in [0, 1] (``image_srgb``); anything photometric happens in linear
    light (``*_linear``) after :func:`srgb_to_linear` (IEC 61966-2-1).
"""

from __future__ import annotations

import numpy as np

CM_TO_M = 0.01
"""Head-frame centimetres to glTF metres."""

# diag(1, -1, -1) turns OpenCV camera axes (x right, y down, z forward) into OpenGL ones (y up, z back).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0])


def uv_to_gltf(uv: np.ndarray) -> np.ndarray:
    """Flip OBJ-style UVs (origin bottom-left) to glTF's (origin top-left).

    Args:
        uv: (..., 2) float, OBJ convention; ``u`` may exceed 1 (tile index in the integer part).

    Returns:
        (..., 2) float32, same ``u``, ``v` flipped to ``1 - v``.
    """
    out = np.array(uv, dtype=np.float32, copy=True)
    out[..., 1] = 1.0 - out[..., 1]
    return out


def opencv_to_opengl_camera(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera-to-world 4x4 pose in OpenGL/glTF convention from an OpenCV world-to-camera ``R, t``.

    Args:
        R: (3, 3) rotation, head frame to OpenCV camera frame.
        t: (3,) translation, same units as the world.

    Returns:
        (4, 4) float64 matrix ``M`` such that an OpenGL camera placed with ``M`` sees what the OpenCV camera sees.
    """
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(3)
    if R.shape != (3, 3):
        raise ValueError(f"R: expected (3, 3), got {R.shape}")
    M = np.eye(4)
    M[:3, :3] = R.T @ _CV_TO_GL
    M[:3, 3] = -R.T @ t
    return M


LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)
"""Luminance of linear sRGB (Rec. 709 primaries, D65)."""
YCBCR_FROM_RGB = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
"""JPEG's (JFIF, full-range BT.601) luma and colour differences of sRGB-encoded RGB: ``(Y', Cb, Cr) = M
(R', G', B')``, offsets left out."""


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light (IEC 61966-2-1). 0.5 -> 0.21404114."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB encoding (IEC 61966-2-1); values are clipped to [0, 1] first."""
    x = np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)
