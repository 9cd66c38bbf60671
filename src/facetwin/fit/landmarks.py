"""Shape fit: perspective camera, head pose, identity and expression from 2D landmarks.

Robust Levenberg-Marquardt over ``[rotation (3), t (3), log f (1), identity (K), expression (53)]`` with
analytic Jacobians (the model is linear in its coefficients; the rotation is updated multiplicatively,
``R <- exp([d]x) R``); expression weights are kept in [0, 1] by projecting every
step onto the box. Landmark residuals are measured in units of the face size (sqrt of the landmark box
area) and re-weighted each outer iteration with Cauchy weights, so a few wild landmarks cannot pull the
face out of shape; a Gaussian prior on the identity (coefficients are ~N(0, 1)) and a small L2 penalty on
expression weights keep noisy landmarks from distorting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from facetwin.camera import Camera, intrinsics
from facetwin.errors import FacetwinError
from facetwin.model.ict import HeadModel


@dataclass(frozen=True)
class SurfacePoints:
    """Points on the head surface, each a triangle's three vertices and barycentric weights.

    Attributes:
        vertex_ids: (N, 3) int64 vertex ids of the triangle under each point.
        bary: (N, 3) float64 barycentric weights (rows sum to 1).
    """

    vertex_ids: np.ndarray
    bary: np.ndarray

    def evaluate(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) mesh -> (N, 3) the points on that mesh."""
        return np.einsum("nk,nkd->nd", self.bary, np.asarray(vertices, np.float64)[self.vertex_ids])


@dataclass(frozen=True)
class FitOptions:
    """Weights and schedules of the landmark fit; defaults are the tested ones.

    Attributes:
        n_identity: how many identity modes to fit (the first ones carry most of the variance).
        identity_prior: weight of ``|alpha|^2`` relative to landmark residuals (face-size units).
        expression_prior: weight of ``|w|^2``; keeps unobserved blendshapes at 0.
        focal_prior: weight of ``(log f - log f0)^2``; strong when f came from EXIF.
        antagonist_prior: weight of ``(w_a * w_b)^2`` for blendshapes that undo each other (smile and frown
            of one mouth corner, ...): landmarks cannot tell "both half on" from "neither", animators can.
        cauchy_scale: residual (fraction of face size) at which a landmark's weight halves.
        iterations: LM iterations after the rigid initialisation.
    """

    n_identity: int = 100
    identity_prior: float = 1e-4
    expression_prior: float = 1e-4
    focal_prior: float = 1e-3
    antagonist_prior: float = 0.05
    cauchy_scale: float = 0.02
    iterations: int = 30


@dataclass(frozen=True)
class Fit:
    """The fitted head.

    Attributes:
        camera: the fitted perspective camera (K in pixels, R, t in cm).
        identity_coeffs: (100,) float32, in standard deviations.
        expression_weights: (53,) float32 in [0, 1], ``HeadModel.expression_names`` order.
        vertices: (V, 3) float32, centimetres, head frame, identity and expression applied.
        residual_px: (N,) float64 distance of each fitted landmark from its detection, pixels.
        landmark_weights: (N,) float64 final robust weight of each landmark (0..1).
        face_size_px: float, sqrt of the area of the detected landmarks' box.
    """

    camera: Camera
    identity_coeffs: np.ndarray
    expression_weights: np.ndarray
    vertices: np.ndarray
    residual_px: np.ndarray
    landmark_weights: np.ndarray
    face_size_px: float


def default_focal_px(width: int, height: int) -> float:
    """Focal length for a photo without EXIF: a 50 mm lens on a 35 mm frame (diagonal 43.27 mm)."""
    return 50.0 / 43.27 * float(np.hypot(width, height))


def _initial_pose(points3d: np.ndarray, points2d: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rigid pose ``(R (3, 3), t (3,))`` of the mean face from 2D-3D correspondences (OpenCV PnP)."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(
        points3d.astype(np.float64), points2d.astype(np.float64), K, None, flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok:
        raise FacetwinError("could not find an initial head pose from the landmarks")
    ok, rvec, tvec = cv2.solvePnP(
        points3d, points2d, K, None, rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE
    )
    return cv2.Rodrigues(rvec)[0], tvec.reshape(3)


def fit_landmarks(
    model: HeadModel,
    points: SurfacePoints,
    landmarks_px: np.ndarray,
    image_size: tuple[int, int],
    *,
    landmark_weights: np.ndarray | None = None,
    focal_px: float | None = None,
    options: FitOptions = FitOptions(),
) -> Fit:
    """Fit camera, pose, identity and expression to 2D landmarks.

    Args:
        model: the head model.
        points: (N) surface points matching the landmarks one to one.
        landmarks_px: (N, 2) detected landmarks, pixels of the photo; NaN rows are missing.
        image_size: (width, height) of the photo in pixels.
        landmark_weights: (N,) prior confidence per landmark (e.g. lower for the face contour).
        focal_px: focal length from EXIF; None estimates it around :func:`default_focal_px`.
        options: weights and schedules.

    Returns:
        The :class:`Fit`.
    """
    landmarks_px = np.asarray(landmarks_px, dtype=np.float64)
    n = points.vertex_ids.shape[0]
    if landmarks_px.shape != (n, 2):
        raise ValueError(f"landmarks_px: expected ({n}, 2), got {landmarks_px.shape}")
    width, height = image_size
    valid = np.isfinite(landmarks_px).all(axis=1)
    if valid.sum() < 6:
        raise FacetwinError(f"only {int(valid.sum())} usable landmarks; at least 6 are needed to fit a head")
    prior_w = np.ones(n) if landmark_weights is None else np.asarray(landmark_weights, dtype=np.float64)
    prior_w = np.where(valid, prior_w, 0.0)
    obs = np.where(valid[:, None], landmarks_px, 0.0)
    lo, hi = obs[valid].min(axis=0), obs[valid].max(axis=0)
    face_size = float(np.sqrt(max((hi - lo).prod(), 1.0)))

    k_id = options.n_identity
    vid = points.vertex_ids
    p0 = points.evaluate(model.neutral)
    b_id = np.einsum("nk,mnkd->ndm", points.bary, model.identity_basis[:k_id][:, vid].astype(np.float64))
    b_ex = np.einsum("nk,mnkd->ndm", points.bary, model.expression_basis[:, vid].astype(np.float64))
    n_ex = b_ex.shape[2]

    f0 = float(focal_px) if focal_px else default_focal_px(width, height)
    focal_weight = options.focal_prior * (100.0 if focal_px else 1.0)
    centre = np.array([width / 2.0, height / 2.0])
    R0, t0 = _initial_pose(p0[valid], obs[valid], intrinsics(f0, width, height))
    problem = _Problem(
        p0=p0,
        b_id=b_id,
        b_ex=b_ex,
        obs=obs,
        centre=centre,
        scale=face_size,
        sqrt_prior=np.concatenate(
            [np.full(k_id, np.sqrt(options.identity_prior)), np.full(n_ex, np.sqrt(options.expression_prior))]
        ),
        log_f0=np.log(f0),
        sqrt_focal=np.sqrt(focal_weight),
        antagonists=_antagonist_pairs(model, k_id),
        sqrt_antagonist=np.sqrt(options.antagonist_prior),
    )
    state = _State(R=R0, t=t0, log_f=np.log(f0), coeffs=np.zeros(k_id + n_ex))

    def robust_weights(s: _State) -> np.ndarray:
        err = np.linalg.norm(problem.project(s) - obs, axis=1) / face_size
        return prior_w / (1.0 + (err / options.cauchy_scale) ** 2)

    # Stage 1: rigid pose and focal on the mean face; stage 2: everything.
    state = _levenberg_marquardt(problem, state, 7, 8, robust_weights, k_id)
    state = _levenberg_marquardt(problem, state, 7 + k_id + n_ex, options.iterations, robust_weights, k_id)

    f = float(np.exp(state.log_f))
    camera = Camera(K=intrinsics(f, width, height), R=state.R, t=state.t.copy(), width=width, height=height)
    identity = np.zeros(model.identity_basis.shape[0], dtype=np.float32)
    identity[:k_id] = state.coeffs[:k_id]
    expression = state.coeffs[k_id:].astype(np.float32)
    verts = model.vertices(identity, expression)
    residual = np.linalg.norm(problem.project(state) - landmarks_px, axis=1)
    return Fit(
        camera=camera,
        identity_coeffs=identity,
        expression_weights=expression,
        vertices=verts,
        residual_px=residual,
        landmark_weights=robust_weights(state),
        face_size_px=face_size,
    )


ANTAGONISTS = (
    ("mouthSmile_L", "mouthFrown_L"),
    ("mouthSmile_R", "mouthFrown_R"),
    ("jawLeft", "jawRight"),
    ("mouthLeft", "mouthRight"),
    ("eyeLookIn_L", "eyeLookOut_L"),
    ("eyeLookIn_R", "eyeLookOut_R"),
    ("eyeLookUp_L", "eyeLookDown_L"),
    ("eyeLookUp_R", "eyeLookDown_R"),
    ("eyeWide_L", "eyeBlink_L"),
    ("eyeWide_R", "eyeBlink_R"),
    ("browDown_L", "browInnerUp_L"),
    ("browDown_R", "browInnerUp_R"),
    ("browDown_L", "browOuterUp_L"),
    ("browDown_R", "browOuterUp_R"),
    ("mouthPucker", "mouthStretch_L"),
    ("mouthPucker", "mouthStretch_R"),
)
"""Blendshape pairs that move the same features in opposite directions."""


def _antagonist_pairs(model: HeadModel, offset: int) -> np.ndarray:
    """(P, 2) coefficient indices (expression index + ``offset``) of :data:`ANTAGONISTS` in the model."""
    names = model.expression_names
    pairs = [(names.index(a), names.index(b)) for a, b in ANTAGONISTS if a in names and b in names]
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2) + offset


@dataclass(frozen=True)
class _State:
    """Current estimate: rotation matrix (updated multiplicatively), translation cm, log focal, coefficients."""

    R: np.ndarray
    t: np.ndarray
    log_f: float
    coeffs: np.ndarray

    def step(self, delta: np.ndarray, n_identity: int) -> _State:
        """Apply ``delta = [rotation (3), t (3), log f (1), coeffs...]``; expression weights stay in [0, 1]."""
        coeffs = self.coeffs.copy()
        coeffs[: delta.size - 7] += delta[7:]
        coeffs[n_identity:] = np.clip(coeffs[n_identity:], 0.0, 1.0)
        return _State(
            R=Rotation.from_rotvec(delta[:3]).as_matrix() @ self.R,
            t=self.t + delta[3:6],
            log_f=self.log_f + delta[6],
            coeffs=coeffs,
        )


@dataclass(frozen=True)
class _Problem:
    """Landmark reprojection problem with analytic Jacobians (the model is linear in its coefficients)."""

    p0: np.ndarray  # (N, 3) mean-face points, cm
    b_id: np.ndarray  # (N, 3, K) identity basis at the points
    b_ex: np.ndarray  # (N, 3, E) expression basis at the points
    obs: np.ndarray  # (N, 2) observed pixels
    centre: np.ndarray  # (2,) principal point
    scale: float  # face size, pixels: residuals are fractions of it
    sqrt_prior: np.ndarray  # (K + E,) square roots of the coefficient prior weights
    log_f0: float
    sqrt_focal: float
    antagonists: np.ndarray  # (P, 2) coefficient indices of blendshapes that undo each other
    sqrt_antagonist: float

    def points_cam(self, s: _State) -> np.ndarray:
        k = self.b_id.shape[2]
        pts = self.p0 + self.b_id @ s.coeffs[:k] + self.b_ex @ s.coeffs[k:]
        return pts @ s.R.T + s.t

    def project(self, s: _State) -> np.ndarray:
        cam = self.points_cam(s)
        return np.exp(s.log_f) * cam[:, :2] / cam[:, 2:3] + self.centre

    def residuals(self, s: _State, w_sqrt: np.ndarray) -> np.ndarray:
        r_lm = (self.project(s) - self.obs) / self.scale * w_sqrt[:, None]
        a, b = self.antagonists.T
        return np.concatenate(
            [
                r_lm.reshape(-1),
                self.sqrt_prior * s.coeffs,
                [self.sqrt_focal * (s.log_f - self.log_f0)],
                self.sqrt_antagonist * s.coeffs[a] * s.coeffs[b],
            ]
        )

    def jacobian(self, s: _State, w_sqrt: np.ndarray, n_free: int) -> np.ndarray:
        """(2N + K + E + 1, n_free) Jacobian of :meth:`residuals` w.r.t. the first ``n_free`` step entries."""
        cam = self.points_cam(s)
        f = np.exp(s.log_f)
        n = cam.shape[0]
        inv_z = 1.0 / cam[:, 2]
        # d(u, v)/d X_cam, (N, 2, 3)
        d_proj = np.zeros((n, 2, 3))
        d_proj[:, 0, 0] = f * inv_z
        d_proj[:, 1, 1] = f * inv_z
        d_proj[:, :, 2] = -f * cam[:, :2] * (inv_z**2)[:, None]
        rel = cam - s.t  # R @ P: a left rotation increment d moves it by d x (R P)
        skew = np.zeros((n, 3, 3))
        skew[:, 0, 1], skew[:, 0, 2] = rel[:, 2], -rel[:, 1]
        skew[:, 1, 0], skew[:, 1, 2] = -rel[:, 2], rel[:, 0]
        skew[:, 2, 0], skew[:, 2, 1] = rel[:, 1], -rel[:, 0]
        cols = [d_proj @ skew, d_proj, (f * cam[:, :2] * inv_z[:, None])[:, :, None]]
        if n_free > 7:
            basis = np.concatenate([self.b_id, self.b_ex], axis=2)
            cols.append(d_proj @ (s.R @ basis))
        J_lm = np.concatenate(cols, axis=2)[:, :, :n_free] * (w_sqrt[:, None, None] / self.scale)
        n_coef = self.sqrt_prior.size
        J_prior = np.zeros((n_coef + 1, n_free))
        if n_free > 7:
            J_prior[np.arange(n_coef), 7 + np.arange(n_coef)] = self.sqrt_prior
        J_prior[n_coef, 6] = self.sqrt_focal
        J_pair = np.zeros((self.antagonists.shape[0], n_free))
        if n_free > 7:
            a, b = self.antagonists.T
            rows = np.arange(a.size)
            J_pair[rows, 7 + a] = self.sqrt_antagonist * s.coeffs[b]
            J_pair[rows, 7 + b] = self.sqrt_antagonist * s.coeffs[a]
        return np.concatenate([J_lm.reshape(2 * n, n_free), J_prior, J_pair])


LM_MU_INIT = 1e-3
LM_MU_MIN = 1e-9
LM_TRIES = 10
REWEIGHT_EVERY = 3
"""Iterations between robust re-weightings: often enough to shed outliers, rare enough to converge."""


def _levenberg_marquardt(problem: _Problem, s: _State, n_free: int, iterations: int, robust_weights, n_identity):
    """Projected, iteratively re-weighted Levenberg-Marquardt on the first ``n_free`` step entries."""
    mu = LM_MU_INIT
    for it in range(iterations):
        if it % REWEIGHT_EVERY == 0:
            w_sqrt = np.sqrt(robust_weights(s))
        r = problem.residuals(s, w_sqrt)
        J = problem.jacobian(s, w_sqrt, n_free)
        cost = float(r @ r)
        JtJ = J.T @ J
        g = J.T @ r
        damp = np.diag(np.maximum(np.diagonal(JtJ), 1e-12))
        for _ in range(LM_TRIES):
            delta = np.zeros(7 + problem.sqrt_prior.size)
            delta[:n_free] = np.linalg.solve(JtJ + mu * damp, -g)
            cand = s.step(delta, n_identity)
            r_c = problem.residuals(cand, w_sqrt)
            if float(r_c @ r_c) < cost:
                s = cand
                mu = max(mu / 3.0, LM_MU_MIN)
                break
            mu *= 4.0
        else:
            break
    return s
