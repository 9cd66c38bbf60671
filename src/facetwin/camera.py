"""Pinhole camera in the OpenCV frame (see :mod:`facetwin.frames`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A fitted perspective camera.

    Attributes:
        K: (3, 3) float64 intrinsics, pixels of the input photo (after EXIF orientation).
        R: (3, 3) float64 rotation, head frame -> OpenCV camera frame.
        t: (3,) float64 translation, centimetres: ``X_cam = R @ X_head + t``.
        width: image width in pixels.
        height: image height in pixels.
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    width: int
    height: int

    def to_camera(self, points_head: np.ndarray) -> np.ndarray:
        """(N, 3) head-frame cm -> (N, 3) camera-frame cm."""
        return np.asarray(points_head, dtype=np.float64) @ self.R.T + self.t

    def project(self, points_head: np.ndarray) -> np.ndarray:
        """(N, 3) head-frame cm -> (N, 2) pixels (top-left corner origin, pixel centres at +0.5)."""
        return project_points(self.to_camera(points_head), self.K)


def project_points(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Perspective projection of camera-frame points.

    Args:
        points_cam: (N, 3) camera frame, any length unit, z > 0 in front of the camera.
        K: (3, 3) intrinsics, pixels.

    Returns:
        (N, 2) float64 pixels. A point on the optical axis projects to ``(K[0, 2], K[1, 2])``.
    """
    p = np.asarray(points_cam, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points_cam: expected (N, 3), got {p.shape}")
    uvw = p @ np.asarray(K, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:3]


def intrinsics(focal_px: float, width: int, height: int) -> np.ndarray:
    """(3, 3) K with square pixels and the principal point at the image centre."""
    return np.array([[focal_px, 0.0, width / 2.0], [0.0, focal_px, height / 2.0], [0.0, 0.0, 1.0]])
