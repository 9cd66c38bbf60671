"""Rotation helpers for fitting and reports."""

from __future__ import annotations

import numpy as np


def rotation_angles_deg(R: np.ndarray) -> dict[str, float]:
    """Head yaw, pitch and roll in degrees relative to a frontal view (``R = diag(1, -1, -1)``).

    Yaw is the turn about the head's vertical axis (positive: the subject turns to their left),
    pitch the nod (positive: chin up), roll the tilt in the image plane.
    """
    from scipy.spatial.transform import Rotation

    rel = np.diag([1.0, -1.0, -1.0]) @ np.asarray(R, dtype=np.float64)  # head frame -> frontal-aligned frame
    pitch, yaw, roll = Rotation.from_matrix(rel).as_euler("XYZ", degrees=True)
    return {"yaw": float(yaw), "pitch": float(pitch), "roll": float(roll)}
