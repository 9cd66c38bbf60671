"""Photometric refinement: lighting, a low-resolution albedo, pose and shape from the photo's skin pixels.

Analysis by synthesis on a crop of the photo around the face (:class:`WorkView`, :data:`WORK_PX` on its
longer side), starting from the landmark fit. The image model is the one of :mod:`facetwin.texture.delight`:
``I = albedo(uv) * E(n) / pi * V + sheen``, second-order SH light in the head frame, per-vertex
light-weighted visibility ``V`` from shadow maps of the fitted mesh, ``albedo`` a :data:`ALBEDO_GRID` x
:data:`ALBEDO_GRID` map over the face UV tile, ``sheen`` the skin's broad shine of the key light
(:class:`facetwin.texture.delight.Sheen`), all in linear light.

Which pixels count (the skin mask): pixels of ``M_Face`` inside the detector's face oval, outside the
eyes, brows, lips and nostrils (:mod:`facetwin.texture.regions`, looked up through each pixel's UV), seen at
least at :data:`MIN_VIEW_COS` to the line of sight, and not outliers. Outliers are found three ways: pixels
whose log chromaticity is far from the face's robust median (paint, tinted glasses, background); every
iteration, pixels whose residual (on ``sqrt`` of linear intensity, roughly perceptual, so dark and light skin
are judged alike) is beyond :data:`OUTLIER_SIGMAS` robust standard deviations (hair, beard, sunglasses,
hands, shine, cast shadows the model lacks); and, once the first iteration has picked the inliers, in colour
photos those whose colour is likelier the hair's and background's beside the face than the skin's
(:func:`unlike_skin`: hair in the skin's hue, which the albedo map and the shading absorb). Those get no
weight.

The fit alternates, :data:`OUTER_ITERATIONS` times: (1) the SH light by weighted linear least squares given
albedo and geometry, jointly with the strength of a sheen for each lobe of
:data:`facetwin.texture.delight.SHEEN_EXPONENTS` and colour of :func:`sheen_colours` around the key
direction of the last light (:func:`_refine_key`), the one that explains the pixels best kept if it explains
them clearly better (:data:`SHEEN_MIN_GAIN`): a broad sheen left out of the model is taken up by the light
and the albedo, whitens them where it falls and so moves the skin tone; (2) the albedo map as the weighted
per-cell mean of ``I / shading`` given the light and the sheen, smoothed; (3) robust (Cauchy) weights from
the residuals; (4) :data:`GEOMETRY_STEPS` Adam steps on rotation, translation, the first
:data:`N_IDENTITY` identity coefficients and the expression weights, minimising the robust photometric loss
of the pixels less their sheen plus the landmark reprojection term of the landmark fit (same landmarks, same
weights, same priors), weighted by :data:`LANDMARK_WEIGHT` so the shape cannot drift from what the
landmarks say. Gradients reach the geometry through the perspective-correct barycentrics,
the normals and the UVs (:func:`facetwin.render.interpolate.barycentrics_torch`); coverage is not
differentiated.

Light and albedo are only defined up to a common scale here (``albedo * s``, ``light / s``); the appearance
stage fixes it with the skin-colour prior.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from facetwin.camera import Camera
from facetwin.fit.landmarks import Fit, SurfacePoints
from facetwin.model.ict import HeadModel
from facetwin.texture.delight import SHEEN_EXPONENTS, Sheen, key_direction, sheen_lobe, view_directions

WORK_PX = 256
"""Longer side of the face crop the fit works on, pixels: about 1 mm per pixel on the face."""
CROP_EXPAND = 1.5
"""Crop side over the detector's landmark box side: the oval plus a margin."""
ALBEDO_GRID = 32
"""Cells per side of the low-resolution albedo over the face tile (about 6 mm per cell on the face)."""
ALBEDO_SMOOTH_CELLS = 0.8
"""Gaussian smoothing of the albedo map, in cells: no cell is fitted from a handful of pixels alone."""
ALBEDO_MAX_LOG_DEV = 0.3
"""Largest departure (natural log, per channel, soft-clipped) of the low-resolution albedo from the face's
median: blush, freckling and shaving shadow stay within it; a white beard, paint or hair do not."""
SEED_PASSES = 3
"""Light and albedo alternations on the core skin before the rest of the skin mask is judged against them."""
SEED_BRIGHTNESS_RANGE = 2.5
"""Core pixels more than this factor darker or brighter than the core's median are not seeds: shading
across the core varies less (forehead to under-eye), hair and glints more."""
MIN_CORE_PIXELS = 30
"""Fewer core-region skin pixels than this (a fringe, a hat brim): the whole skin mask sets the reference."""
N_IDENTITY = 40
"""Identity modes refined photometrically (the rest stay at the landmark fit's values)."""
OUTER_ITERATIONS = 6
GEOMETRY_STEPS = 6
"""Adam steps on pose and shape per outer iteration."""
LANDMARK_WEIGHT = 100.0
"""Weight of the landmark term (squared residuals in face-size units, as in the landmark fit) against the
photometric term (mean Cauchy loss per pixel). At 100, a 1 % face-size landmark shift on every landmark
costs about as much as the whole photometric loss."""
IDENTITY_PRIOR = 1e-4
EXPRESSION_PRIOR = 1e-4
"""Priors of the landmark fit (:class:`facetwin.fit.landmarks.FitOptions`), kept so both fits agree."""
LEARNING_RATES = {"rotation": 2e-3, "translation": 0.03, "identity": 0.03, "expression": 0.01}
"""Adam step sizes: radians, centimetres, standard deviations, blendshape weight."""
MIN_VIEW_COS = 0.3
"""Pixels whose surface is seen more obliquely than this (72 degrees) are left out: their normals and
positions are least certain."""
CAUCHY_SIGMAS = 2.5
"""Scale of the Cauchy weights, in robust standard deviations of the residual: the weight halves there."""
OUTLIER_SIGMAS = 4.0
"""Residuals beyond this many robust standard deviations are outliers (not skin)."""
CHROMA_SIGMAS = 4.0
"""Log-chromaticity beyond this many robust standard deviations from the face's median is not skin."""
CHROMA_FLOOR = 0.05
"""Smallest robust spread of log chromaticity, so a very even face does not reject its own blush."""
RESIDUAL_FLOOR = 0.004
"""Smallest robust spread of the sqrt-intensity residual (about 1 % of mid-grey skin): noise-free synthetic
images would otherwise flag everything."""
RESIDUAL_CAP = 0.03
"""Largest robust spread of the sqrt-intensity residual (about 12 % at mid-grey skin) over the whole skin
mask (grayscale photos: :data:`SEED_RESIDUAL_CAP`). When the fit is poor (a beard
over half the face, a painted face) the spread would otherwise grow until everything is an inlier; capped,
the best-fitting part of the skin decides, as in a consensus fit."""
SEED_RESIDUAL_CAP = 0.1
"""Grayscale and sepia photos: largest robust spread of the residual on the core skin in the first passes.
Where the core itself fits worse than :data:`RESIDUAL_CAP` (film grain, deep wrinkles, a hard light the
second-order light cannot shape), that spread is the photo's noise, and the cap of the later passes rises
to it: else half of the skin, core included, is cast out (frederick_douglass_1879: 49 % outliers, 3 % of
the face tile seen). Colour photos keep :data:`RESIDUAL_CAP`: there the chromaticity test
(:data:`CHROMA_SIGMAS`) finds hair and frames, and the tight cap finds what it misses; raised, glasses
(grace_hopper) and strands of hair (woman_three_quarter) would be taken for skin. A monotone photo has only
brightness to tell them apart, so a white beard over dark skin is taken for skin too."""
UNLIKE_SKIN_SURE_INSIDE = 0.2
"""Face sizes: skin inliers of the photometric fit at least this far inside the face oval are sure skin for
:func:`unlike_skin` (hair reaches into the oval from its edge; at 0.12 woman_three_quarter's hair that the
fit took for skin was sure skin a little way in)."""
UNLIKE_SKIN_SURE_OUTSIDE = 0.2
"""Face sizes: pixels at least this far outside the face oval, and above the chin by
:data:`UNLIKE_SKIN_ABOVE_CHIN`, are sure not skin for :func:`unlike_skin` (hair, background). Nearer the oval
there is skin too (temples, forehead above the detector's oval), and below the chin the neck: taken for
sure not skin, they taught the colour model that skin is not skin (luciano's forehead was cast out)."""
UNLIKE_SKIN_ABOVE_CHIN = 0.1
"""Face sizes above the oval's lowest row: below it, what lies outside the oval is the neck."""
UNLIKE_SKIN_MAX_CONFUSED = 0.05
"""Where more than this share of the sure skin is likelier under the colours around the face than under the
skin's own, the two cannot be told apart by colour and :func:`unlike_skin` takes nothing (face_paint's
wooden wall is her skin's brown: 6.7 %, and 18 % of her skin candidates went; the other shared photos 0-3 %)."""
UNLIKE_SKIN_ITERATIONS = 5
"""GrabCut's rounds of re-learning the colour models and cutting."""
FEATURE_MARGIN_FACE = 0.045
"""Distance from the eyes, brows, lips and nostrils (a fraction of the face size) within which outliers are
the feature's own margin: brow hairs beyond the model's brow region, lashes, lid shadows and eye bags, the
shade of a nostril. See :data:`FEATURE_MARGIN_SHARE`."""
SH_RIDGE = 1e-3
"""Ridge on the band-2 light coefficients, relative to the mean diagonal of the normal equations: the face
alone sees only half the sphere."""
SH_COLOUR_RIDGE = 0.05
"""Ridge on each channel's departure from the shared light shape, relative to the mean diagonal of the
normal equations: coloured light that varies with direction is allowed, noise in one channel is not."""
INTENSITY_FLOOR = 1e-4
"""Linear intensities and albedos are floored here before square roots and ratios."""
SHEEN_WARMTH = (-0.4, -0.2, 0.0, 0.2, 0.4, 0.6)
"""Log red-blue balance of the sheen colours tried (:func:`sheen_colours`)."""
KEY_SEARCH = ((1024, 20.0), (8192, 7.0))
"""(directions over the sphere, reach in degrees) of :func:`_refine_key`'s searches, each around the last's
best: the sheen's key is looked for within 20 degrees of the irradiance's peak, 6.4 degrees apart (some 30
directions), then 2.2 apart within a coarse step of the best (some 30)."""
MONOTONE_KEY_SEARCH = ((256, 40.0), (1024, 13.0), (8192, 7.0))
""":data:`KEY_SEARCH` of a grayscale photo: within 40 degrees, 12.7 apart, then as in colour. The light fitted
alone takes up the sheen, whose peak lies between the key and the camera, and on dark skin, where the sheen
is most of a lit surface's brightness, that pulls the irradiance's peak 30 degrees off a soft frontal key: a
sheen looked for within 20 degrees of it was found 31 degrees off, and the synthetic dark face kept its shine
(scaled error 0.13, 0.07 searched within 40). In colour the shine step takes off what a lobe found off its
key leaves; searched so far there, the residual of woman_portrait's studio light drew the lobe away from
her sheen."""
SHEEN_ROUNDS = 3
"""Rounds of light, sheen and albedo per pass while a sheen is kept (no geometry or weights between them)."""
SHEEN_MIN_GAIN = 0.1
"""A sheen is kept only where it takes at least this share off the squared residual of the light alone, over
the skin candidates without the robust weights (which have taken the sheen's peak for an outlier). Once kept,
the known-answer scenes' sheen takes off 47-83 % and the studio light on woman_portrait's dark skin 24 %;
but in the first passes, before the albedo map has given back what it took up of it, the lightest skin's
takes off only 13-15 %, so the bar cannot be much higher. On the other shared photos a lobe fitted to what
else the model lacks (folds, makeup, an albedo finer than its grid) takes off at most 7 %, and
woman_three_quarter's backlit rim 9.7 % in one pass: close under the bar."""
MONOTONE_MIN_SHEEN_EXPONENT = 16.0
"""A grayscale photo's sheen is fitted with lobes this sharp or sharper. Without colour only the lobe's shape
tells it from the light, and second-order SH light takes up most of the broadest lobe's: fitted to a
Blinn-Phong 8 lobe over the normals that face the camera, it leaves 43 % of its variation (RMS), of an
exponent 16 lobe 63 %. frederick_douglass_1879's face took an exponent 8 sheen for its light: over the rounds
the SH light fell to nothing and the albedo map rose a hundredfold."""
N_DIRECTIONS = 64


@dataclass(frozen=True)
class WorkView:
    """The face crop the fit works on.

    Attributes:
        image_linear: (h, w, 3) float32 linear RGB, area-resampled from the photo.
        K: (3, 3) float64 intrinsics of the crop, pixels of the crop.
        scale: crop pixels per photo pixel.
        origin_px: (2,) photo pixel position ``(x, y)`` of the crop's top-left corner: a photo point ``p``
            is at ``(p - origin_px) * scale`` in the crop.
    """

    image_linear: np.ndarray
    K: np.ndarray
    scale: float
    origin_px: np.ndarray


@dataclass(frozen=True)
class PhotometricFit:
    """Result of :func:`refine_photometric`.

    Attributes:
        fit: the refined :class:`~facetwin.fit.landmarks.Fit` (camera pose, identity, expression, vertices,
            projected landmarks and their residuals); focal length and landmark weights as given.
        sh_light: (9, 3) float64 SH radiance coefficients, head frame, in the units where
            ``albedo_grid_linear * E / pi * V`` is the photo's linear intensity (relative scale).
        albedo_grid_linear: (G, G, 3) float32 low-resolution albedo of the face tile, linear, same scale.
        view: the crop the fit worked on.
        skin_mask: (h, w) bool crop pixels the final fit used (skin inliers).
        candidate_mask: (h, w) bool crop pixels that could be skin (oval, M_Face, no feature, not grazing).
        outlier_mask: (h, w) bool candidates rejected as not skin.
        feature_mask: (h, w) bool crop pixels of M_Face on the eyes, brows, lips or nostrils.
        rendered_linear: (h, w, 3) float32 the model's image of the candidates (0 elsewhere), sheen
            included.
        sheen: the skin's broad shine, in the photo's linear units, or None where no lobe explains the
            pixels better than the light alone (or the light has no key direction).
        visibility: (V, D) bool shadow-map visibility of the landmark fit's mesh.
        directions: (D, 3) float64 its directions, head frame.
        metrics: PSNR (dB) and SSIM on the skin mask, pixel counts, outlier fraction, landmark residuals,
            face vertex shift, seconds.
    """

    fit: Fit
    sh_light: np.ndarray
    albedo_grid_linear: np.ndarray
    view: WorkView
    skin_mask: np.ndarray
    candidate_mask: np.ndarray
    outlier_mask: np.ndarray
    feature_mask: np.ndarray
    rendered_linear: np.ndarray
    visibility: np.ndarray
    directions: np.ndarray
    sheen: Sheen | None = None
    metrics: dict = field(default_factory=dict)


def face_oval_px(landmarks: np.ndarray) -> np.ndarray:
    """The detector's face oval as an ordered polygon.

    Args:
        landmarks: (478, 2+) FaceMesh landmarks, pixels.

    Returns:
        (36, 2) float64 pixel positions, in order around the face.
    """
    return landmark_polygon(landmarks, "oval")


def landmark_polygon(landmarks: np.ndarray, which: str) -> np.ndarray:
    """A closed contour of the detector's landmarks, in order.

    Args:
        landmarks: (478, 2+) FaceMesh landmarks, pixels.
        which: "oval" (face outline), "mouth" (the inner lip contour: the mouth's opening), "left_eye" or
            "right_eye" (the lid margins: the eye's opening; left and right as mediapipe names them).

    Returns:
        (P, 2) float64 pixel positions.
    """
    from mediapipe.python.solutions import face_mesh_connections as fmc

    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] != 478 or lm.shape[1] < 2:
        raise ValueError(f"landmarks: expected (478, 2 or 3), got {lm.shape}")
    if which == "oval":
        edges = fmc.FACEMESH_FACE_OVAL
    elif which == "mouth":
        inner = {13, 14, 78, 80, 81, 82, 87, 88, 95, 178, 191, 308, 310, 311, 312, 317, 318, 324, 402, 415}
        edges = [e for e in fmc.FACEMESH_LIPS if e[0] in inner]
    elif which == "left_eye":
        edges = fmc.FACEMESH_LEFT_EYE
    elif which == "right_eye":
        edges = fmc.FACEMESH_RIGHT_EYE
    else:
        raise ValueError(f"which: expected oval, mouth, left_eye or right_eye, got {which!r}")
    return lm[_loop(edges), :2]


def _loop(edges) -> list[int]:
    """Vertex order of a closed polyline given as an unordered set of edges."""
    nxt: dict[int, list[int]] = {}
    for a, b in edges:
        nxt.setdefault(a, []).append(b)
        nxt.setdefault(b, []).append(a)
    start = min(nxt)
    order, prev, cur = [start], None, start
    while True:
        cands = [c for c in nxt[cur] if c != prev]
        if not cands or cands[0] == start:
            break
        prev, cur = cur, cands[0]
        order.append(cur)
    return order


def work_view(image_linear: np.ndarray, box: np.ndarray, K: np.ndarray, work_px: int = WORK_PX) -> WorkView:
    """Crop and resample the photo around a face box.

    Args:
        image_linear: (H, W, 3) float32 linear photo.
        box: (4,) ``[x0, y0, x1, y1]`` face box, photo pixels.
        K: (3, 3) photo intrinsics.
        work_px: longer side of the crop, pixels.

    Returns:
        :class:`WorkView` (area resampling when shrinking; the crop may reach past the photo, padded with
        the border colour).
    """
    import cv2

    img = np.asarray(image_linear, np.float32)
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    side = max(x1 - x0, y1 - y0) * CROP_EXPAND
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    origin = np.array([cx - side / 2.0, cy - side / 2.0])
    scale = work_px / side
    # Affine map photo -> crop: q = (p - origin) * scale, in the pixel frame (corners at integers).
    # OpenCV's warpAffine maps pixel centres at integers, hence the half-pixel terms.
    M = np.array(
        [[scale, 0.0, (0.5 - origin[0]) * scale - 0.5], [0.0, scale, (0.5 - origin[1]) * scale - 0.5]]
    )
    if scale < 1.0:
        # Area filter: blur the photo by the shrink factor first (a Gaussian about one output pixel wide).
        sigma = 0.5 / scale
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    crop = cv2.warpAffine(img, M, (work_px, work_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    Kc = np.asarray(K, np.float64).copy()
    Kc[0, :] *= scale
    Kc[1, :] *= scale
    Kc[0, 2] = (K[0, 2] - origin[0]) * scale
    Kc[1, 2] = (K[1, 2] - origin[1]) * scale
    return WorkView(image_linear=crop.astype(np.float32), K=Kc, scale=float(scale), origin_px=origin)


class Adam:
    """Adam (Kingma and Ba 2015) with torch's defaults and one learning rate per tensor; same steps as
    ``torch.optim.Adam`` to the last bit (see the test), without it: its first use imports ``torch._dynamo``,
    1.8 s of a single photo's run here.

    Args:
        params: leaf tensors with ``requires_grad``.
        lrs: one learning rate per tensor.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, params, lrs):
        import torch

        if len(params) != len(lrs):
            raise ValueError(f"one learning rate per tensor: {len(params)} tensors, {len(lrs)} rates")
        self.params, self.lrs = list(params), [float(v) for v in lrs]
        self.steps = [0] * len(self.params)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """One step of each tensor that has a gradient (a tensor's step count only counts its own steps)."""
        import torch

        beta1, beta2 = self.BETAS
        with torch.no_grad():
            for i, (p, lr, m, v) in enumerate(zip(self.params, self.lrs, self.exp_avg, self.exp_avg_sq)):
                if p.grad is None:
                    continue
                self.steps[i] += 1
                m.lerp_(p.grad, 1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                corr2_sqrt = (1 - beta2 ** self.steps[i]) ** 0.5
                p.addcdiv_(m, (v.sqrt() / corr2_sqrt).add_(self.EPS), value=-lr / (1 - beta1 ** self.steps[i]))


def _rodrigues(w):
    """(3, 3) torch rotation matrix of a rotation vector (differentiable, also at 0)."""
    import torch

    theta2 = (w * w).sum()
    small = theta2 < 1e-8
    # Both branches of torch.where are differentiated: keep the exact one finite near 0.
    theta2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(theta2_safe)
    zero = torch.zeros((), dtype=w.dtype)
    k = torch.stack(
        [torch.stack([zero, -w[2], w[1]]), torch.stack([w[2], zero, -w[0]]), torch.stack([-w[1], w[0], zero])]
    )
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2_safe)
    return torch.eye(3, dtype=w.dtype) + a * k + b * (k @ k)


def ssim_masked(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004, Gaussian window sigma 1.5, on the channel mean) over a mask.

    Args:
        a, b: (h, w, 3) or (h, w) images, e.g. sRGB in [0, 1].
        mask: (h, w) bool pixels to average over.
        data_range: value range of the images.

    Returns:
        SSIM in [-1, 1]; NaN for an empty mask.
    """
    from scipy.ndimage import gaussian_filter

    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.ndim == 3:
        x, y = x.mean(axis=2), y.mean(axis=2)
    m = np.asarray(mask, bool)
    if not m.any():
        return float("nan")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = gaussian_filter(x, 1.5), gaussian_filter(y, 1.5)
    sxx = gaussian_filter(x * x, 1.5) - mx * mx
    syy = gaussian_filter(y * y, 1.5) - my * my
    sxy = gaussian_filter(x * y, 1.5) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s[m].mean())


def psnr_masked(a: np.ndarray, b: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR in dB over the masked pixels (all channels); NaN for an empty mask, inf for equal images."""
    m = np.asarray(mask, bool)
    if not m.any():
        return float("nan")
    mse = float(np.mean((np.asarray(a, np.float64)[m] - np.asarray(b, np.float64)[m]) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))


class _Problem:
    """Static data of one refinement: the face submesh, bases, landmark bases, regions."""

    def __init__(self, model: HeadModel, points: SurfacePoints, fit: Fit, n_identity: int):
        import torch

        from facetwin.texture.delight import occluding_faces
        from facetwin.texture.regions import face_regions

        self.model = model
        self.occ = occluding_faces(model)
        self.face_ids = np.flatnonzero(model.material_faces(("M_Face",)))
        sub = np.unique(model.faces[self.face_ids])
        self.sub = sub
        remap = np.full(model.n_vertices, -1, np.int64)
        remap[sub] = np.arange(sub.size)
        self.sub_faces = remap[model.faces[self.face_ids]]
        # Map from occluding-face index to the face submesh's triangle index (-1: not M_Face).
        to_sub = np.full(model.faces.shape[0], -1, np.int64)
        to_sub[self.face_ids] = np.arange(self.face_ids.size)
        self.occ_to_sub = to_sub[self.occ]
        self.corner_uv = torch.from_numpy(model.uvs[model.face_uv_ids[self.face_ids]].astype(np.float32))
        k = n_identity
        self.k = k
        fixed_id = fit.identity_coeffs.astype(np.float32).copy()
        fixed_id[:k] = 0.0
        base = model.vertices(fixed_id, None)  # neutral + the identity modes not refined
        self.base_sub = torch.from_numpy(base[sub].astype(np.float32))
        self.b_id = torch.from_numpy(np.ascontiguousarray(model.identity_basis[:k, sub].reshape(k, -1).T))
        self.b_ex = torch.from_numpy(np.ascontiguousarray(model.expression_basis[:, sub].reshape(53, -1).T))
        vid = points.vertex_ids
        self.lm_p0 = torch.from_numpy(points.evaluate(base).astype(np.float32))
        self.lm_id = torch.from_numpy(
            np.einsum("nk,mnkd->ndm", points.bary, model.identity_basis[:k][:, vid]).astype(np.float32)
        )
        self.lm_ex = torch.from_numpy(
            np.einsum("nk,mnkd->ndm", points.bary, model.expression_basis[:, vid]).astype(np.float32)
        )
        self.regions = face_regions(model, 256)

    def sub_vertices(self, alpha, w):
        return self.base_sub + (self.b_id @ alpha + self.b_ex @ w).reshape(-1, 3)

    def landmarks_head(self, alpha, w):
        return self.lm_p0 + self.lm_id @ alpha + self.lm_ex @ w


def _one_torch_thread(func):
    """Run ``func`` with torch on one thread: the tensors of the photometric fit are small (tens of
    thousands of pixels), one thread is as fast, and it does not spin against numba's threads or other
    processes on a busy machine."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return func(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


@_one_torch_thread
def refine_photometric(
    model: HeadModel,
    image_linear: np.ndarray,
    landmarks_px: np.ndarray,
    fit: Fit,
    points: SurfacePoints,
    *,
    landmark_weights: np.ndarray | None = None,
    box: np.ndarray | None = None,
    work_px: int = WORK_PX,
    outer_iterations: int = OUTER_ITERATIONS,
    geometry_steps: int = GEOMETRY_STEPS,
    refine_geometry: bool = True,
    monotone: bool = False,
    fit_sheen: bool = True,
    exclude: np.ndarray | None = None,
    visibility: np.ndarray | None = None,
) -> PhotometricFit:
    """Jointly refine pose, identity, expression, SH light and a low-resolution albedo (module docstring).

    Args:
        model: the head model.
        image_linear: (H, W, 3) float32 linear photo (for a grayscale photo, the gray value in all three).
        landmarks_px: (478, 2 or 3) the detector's landmarks, photo pixels (the oval bounds the skin mask
            and the first two columns enter the landmark term).
        fit: the landmark fit to start from (its camera fixes the focal length).
        points: (478) the landmark correspondence the fit used.
        landmark_weights: (478,) weights of the landmark term; None takes ``fit.landmark_weights``.
        box: (4,) face box to crop around, photo pixels; None takes the landmarks' box.
        work_px: crop size, pixels.
        outer_iterations: alternations of light, albedo and geometry.
        geometry_steps: Adam steps on pose and shape per alternation.
        refine_geometry: False keeps pose and shape as given (light and albedo only).
        monotone: a grayscale or sepia photo: the residual's cap rises to the core skin's own spread
            (:data:`SEED_RESIDUAL_CAP`), and the sheen's lobe is no broader than
            :data:`MONOTONE_MIN_SHEEN_EXPONENT`.
        fit_sheen: False fits no sheen (the Lambertian model alone).
        exclude: (h, w) bool pixels of the crop known not to be skin (hair an earlier pass found on the
            surface), or None. The crop is the one this call makes (the returned ``view``): an earlier call
            with the same image, landmarks, box, ``work_px`` and fit camera made the same one.
        visibility: (V, D) vertex visibility over :data:`N_DIRECTIONS` directions to take instead of that of
            ``fit.vertices`` (the costliest step of setting up): an earlier call's
            ``PhotometricFit.visibility``, whose fit this one starts from or refines, or None to compute it.

    Returns:
        :class:`PhotometricFit`.

    Raises:
        ValueError: inputs of the wrong shape.
        FacetwinError: no skin pixel to fit (the face is fully occluded or outside the photo).
    """
    import torch

    from facetwin.errors import FacetwinError
    from facetwin.render.raster import rasterize
    from facetwin.render.shade import vertex_normals
    from facetwin.texture.delight import sphere_directions, vertex_visibility, visibility_ratio

    t_start = time.perf_counter()
    img = np.asarray(image_linear, np.float32)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image_linear: expected (H, W, 3), got {img.shape}")
    lm = np.asarray(landmarks_px, np.float64)
    if lm.ndim != 2 or lm.shape[0] != points.vertex_ids.shape[0] or lm.shape[1] < 2:
        raise ValueError(f"landmarks_px: expected ({points.vertex_ids.shape[0]}, 2 or 3), got {lm.shape}")
    lm = lm[:, :2]
    lw = fit.landmark_weights if landmark_weights is None else np.asarray(landmark_weights, np.float64)
    valid_lm = np.isfinite(lm).all(axis=1)
    lw = np.where(valid_lm, lw, 0.0)
    lm = np.where(valid_lm[:, None], lm, 0.0)
    if box is None:
        ok = lm[valid_lm]
        box = np.array([ok[:, 0].min(), ok[:, 1].min(), ok[:, 0].max(), ok[:, 1].max()])
    view = work_view(img, box, fit.camera.K, work_px)
    h, w = view.image_linear.shape[:2]
    obs = view.image_linear.reshape(-1, 3)

    prob = _Problem(model, points, fit, N_IDENTITY)
    torch_dtype = torch.float32
    oval = np.zeros((h, w), np.uint8)
    import cv2

    poly = (face_oval_px(np.asarray(landmarks_px, np.float64)) - view.origin_px) * view.scale
    cv2.fillPoly(oval, [np.round((poly - 0.5) * 256).astype(np.int32)], 1, shift=8)
    oval = oval.astype(bool)

    dirs = sphere_directions(N_DIRECTIONS)
    if visibility is None:
        visibility = vertex_visibility(fit.vertices, model.faces[prob.occ], dirs)
    elif np.shape(visibility) != (fit.vertices.shape[0], dirs.shape[0]):
        raise ValueError(f"visibility: expected {(fit.vertices.shape[0], dirs.shape[0])}, got {np.shape(visibility)}")

    # Parameters (torch leaves): rotation increment, translation, identity (first k), expression.
    k = prob.k
    rot = torch.zeros(3, dtype=torch_dtype, requires_grad=True)
    trans = torch.tensor(fit.camera.t, dtype=torch_dtype, requires_grad=True)
    alpha = torch.tensor(fit.identity_coeffs[:k], dtype=torch_dtype, requires_grad=True)
    expr = torch.tensor(fit.expression_weights, dtype=torch_dtype, requires_grad=True)
    R0 = torch.tensor(fit.camera.R, dtype=torch_dtype)
    K = torch.tensor(view.K, dtype=torch_dtype)
    K_photo = torch.tensor(fit.camera.K, dtype=torch_dtype)
    obs_lm = torch.tensor(lm, dtype=torch_dtype)
    w_lm = torch.tensor(lw, dtype=torch_dtype)
    face_size = float(fit.face_size_px)
    opt = Adam(
        [rot, trans, alpha, expr],
        [LEARNING_RATES[k] for k in ("rotation", "translation", "identity", "expression")],
    )

    def landmark_loss(R, alpha_, expr_):
        X = prob.landmarks_head(alpha_, expr_) @ R.T + trans
        uv = X[:, :2] / X[:, 2:3] * torch.stack([K_photo[0, 0], K_photo[1, 1]]) + K_photo[:2, 2]
        r = ((uv - obs_lm) ** 2).sum(dim=1) / face_size**2
        return (w_lm * r).sum() + IDENTITY_PRIOR * (alpha_**2).sum() + EXPRESSION_PRIOR * (expr_**2).sum()

    with torch.no_grad():
        lm_loss0 = float(landmark_loss(R0, alpha, expr))

    sh = None
    sheen = None
    albedo_grid = None
    weights = None
    chroma_ok = None
    excluded = np.zeros(h * w, bool)
    if exclude is not None:
        if np.shape(exclude) != (h, w):
            raise ValueError(f"exclude: expected the crop's shape {(h, w)}, got {np.shape(exclude)}")
        excluded = np.asarray(exclude, bool).ravel()
    unlike = excluded.copy()
    candidates = None
    sigma = None
    core_spread = RESIDUAL_CAP
    n_iter = outer_iterations
    for outer in range(n_iter):
        with torch.no_grad():
            R = _rodrigues(rot) @ R0
            full = _full_vertices(model, fit, prob, alpha.detach().numpy(), expr.detach().numpy())
        R_np = R.detach().numpy().astype(np.float64)
        t_np = trans.detach().numpy().astype(np.float64)
        cam = full.astype(np.float64) @ R_np.T + t_np
        raster = rasterize(cam, model.faces[prob.occ], view.K, h, w)
        sub_tri = np.where(raster.tri_id >= 0, prob.occ_to_sub[np.maximum(raster.tri_id, 0)], -1)
        on_face = sub_tri >= 0
        normals_full = vertex_normals(full.astype(np.float64), model.faces)
        pix = np.flatnonzero(on_face.ravel())
        tri = sub_tri.ravel()[pix]
        bary = raster.bary.reshape(-1, 3)[pix]
        vids = prob.sub[prob.sub_faces[tri]]  # (N, 3) full vertex ids
        n_pix = np.einsum("nk,nkd->nd", bary, normals_full[vids])
        n_pix /= np.maximum(np.linalg.norm(n_pix, axis=1, keepdims=True), 1e-12)
        p_cam = np.einsum("nk,nkd->nd", bary, cam[vids])
        p_head = np.einsum("nk,nkd->nd", bary, full[vids].astype(np.float64))
        centre = -R_np.T @ t_np
        view_dirs = view_directions(p_head, centre)
        view_cos = -np.einsum("nd,nd->n", n_pix @ R_np.T, p_cam) / np.linalg.norm(p_cam, axis=1)
        uv = np.einsum("nk,nkd->nd", bary, prob.corner_uv.numpy()[tri])
        reg = prob.regions
        rs = reg.eyes.shape[0]
        ti = np.clip(((1.0 - uv[:, 1]) * rs).astype(np.int64), 0, rs - 1)
        tj = np.clip((uv[:, 0] * rs).astype(np.int64), 0, rs - 1)
        feature = reg.features[ti, tj]
        core = reg.core[ti, tj]
        cand = oval.ravel()[pix] & ~feature & (view_cos > MIN_VIEW_COS)
        I = obs[pix]
        chroma_ok_pix = _chroma_inliers(I, cand)
        use = cand & chroma_ok_pix & ~unlike[pix]
        if use.sum() < 50:
            raise FacetwinError(f"only {int(use.sum())} skin pixels to fit the lighting to")
        light_for_ratio = sh if sh is not None else _ambient()
        ratio_v = visibility_ratio(normals_full, visibility, dirs, light_for_ratio)
        ratio = np.einsum("nk,nkd->nd", bary, ratio_v[vids])
        lit = ratio.mean(axis=1)  # the key's shadows on its sheen
        basis = _sh_design(n_pix)  # (N, 9) irradiance / pi per unit coefficient
        if albedo_grid is None:
            # Start from the skin's colour (the core region's, where no beard or hair is), so the light
            # starts gray (see _solve_sh's colour ridge).
            start = core & use if (core & use).sum() >= MIN_CORE_PIXELS else use
            colour = np.median(I[start], axis=0)
            colour = np.maximum(colour / max(float(colour.mean()), 1e-12), 1e-3)
            a_pix = np.broadcast_to(colour.astype(np.float32), (pix.size, 3))
        else:
            a_pix = _sample_grid(albedo_grid, uv)
        if weights is None:
            # First pass on the core skin alone (no beard, fringe or paint there, as a rule): the light and
            # albedo it gives tell the outliers elsewhere apart.
            seed = core & use if (core & use).sum() >= MIN_CORE_PIXELS else use
            # Hair or a frame across the core is far darker (or a glint far brighter) than its skin.
            lum_i = I.mean(axis=1)
            med = float(np.median(lum_i[seed]))
            seed = seed & (lum_i > med / SEED_BRIGHTNESS_RANGE) & (lum_i < med * SEED_BRIGHTNESS_RANGE)
            wts = seed.astype(np.float64)
            passes = SEED_PASSES
        else:
            seed = use
            wts = np.where(use, weights.ravel()[pix], 0.0)
            passes = 1
        # Least squares in linear intensity weighted by 1 / I: about the squared error of sqrt(I), so that
        # dark skin counts as much as light skin and the shine of dark skin does not pull the light.
        inv_i = 1.0 / np.maximum(I.mean(axis=1), INTENSITY_FLOOR * 10.0)
        for _ in range(passes):
            key = None if sh is None or not fit_sheen else key_direction(sh, centre - p_head.mean(axis=0))
            if key is not None:
                residual = I - a_pix * np.clip(ratio * (basis @ sh), 0.0, None)
                search = MONOTONE_KEY_SEARCH if monotone else KEY_SEARCH
                key = _refine_key(residual, wts * inv_i, n_pix, view_dirs, key, lit, search)
            lobes = (
                {}
                if key is None
                else {
                    p: sheen_lobe(n_pix, view_dirs, key, p) * lit
                    for p in SHEEN_EXPONENTS
                    if p >= MONOTONE_MIN_SHEEN_EXPONENT or not monotone
                }
            )
            # The albedo map took up some of the sheen before there was one; it gives it back over rounds.
            for _ in range(SHEEN_ROUNDS):
                sh, exponent, sheen_rgb = _solve_light(I, a_pix, ratio, basis, wts * inv_i, lobes, seed * inv_i)
                spec = lobes[exponent][:, None] * sheen_rgb[None, :] if exponent else np.zeros_like(I)
                sheen = Sheen(direction=key, exponent=exponent, rgb=sheen_rgb) if exponent else None
                diffuse = I - spec
                shade = np.clip(ratio * (basis @ sh), 0.0, None)
                ref_log = _reference_log_albedo(diffuse, shade, wts, core & use)
                albedo_grid = _solve_albedo(diffuse, shade, uv, wts * inv_i, ref_log)
                a_pix = _sample_grid(albedo_grid, uv)
                if not exponent:
                    break
            pred = a_pix * shade + spec
            res = np.sqrt(np.maximum(I, INTENSITY_FLOOR)) - np.sqrt(np.maximum(pred, INTENSITY_FLOOR))
            r_norm = np.linalg.norm(res, axis=1) / math.sqrt(3.0)
            spread = max(1.4826 * float(np.median(r_norm[seed])), RESIDUAL_FLOOR)
            if weights is None and monotone:
                # The core's own spread: how well light and albedo can explain this photo's skin at all.
                core_spread = min(spread, SEED_RESIDUAL_CAP)
            sigma = min(spread, max(RESIDUAL_CAP, core_spread))
            wpix = 1.0 / (1.0 + (r_norm / (CAUCHY_SIGMAS * sigma)) ** 2)
            wpix = np.where(r_norm > OUTLIER_SIGMAS * sigma, 0.0, wpix)
            wts = np.where(seed, wpix, 0.0)
        weights = np.zeros(h * w)
        weights[pix] = np.where(use, wpix, 0.0)
        chroma_ok = np.zeros(h * w, bool)
        chroma_ok[pix] = chroma_ok_pix
        candidates = np.zeros(h * w, bool)
        candidates[pix] = cand
        features = np.zeros(h * w, bool)
        features[pix] = feature
        if outer == 0 and not monotone:
            # Once the first light and albedo have picked the skin inliers, what among them is coloured as
            # the hair and background beside the face is not skin (hair in the skin's hue, only darker).
            unlike = excluded | unlike_skin(
                view.image_linear,
                candidates.reshape(h, w),
                (weights > 0).reshape(h, w),
                oval,
                face_size * view.scale,
                feature=features.reshape(h, w),
            ).ravel()
            weights[unlike] = 0.0

        if not refine_geometry or outer == n_iter - 1:
            continue
        # Geometry steps with light and albedo fixed, on the pixels with weight.
        keep = weights[pix] > 0
        sel_pix = pix[keep]
        tri_map = np.full(h * w, -1, np.int32)
        tri_map[sel_pix] = tri[keep]
        from facetwin.render.raster import Raster

        sub_raster = Raster(tri_id=tri_map.reshape(h, w), bary=raster.bary, depth=raster.depth)
        I_t = torch.from_numpy((I - spec)[keep].astype(np.float32))
        ratio_t = torch.from_numpy(ratio[keep].astype(np.float32))
        w_t = torch.from_numpy(weights[sel_pix].astype(np.float32))
        grid_t = torch.from_numpy(np.ascontiguousarray(albedo_grid.transpose(2, 0, 1)))[None]
        sh_t = torch.from_numpy(sh.astype(np.float32))
        tri_t = torch.from_numpy(tri[keep])
        scale_c = float(CAUCHY_SIGMAS * sigma)
        for _ in range(geometry_steps):
            opt.zero_grad()
            R = _rodrigues(rot) @ R0
            v_sub = prob.sub_vertices(alpha, expr)
            v_cam = v_sub @ R.T + trans
            loss = _photometric_loss(
                prob, v_sub, v_cam, K, sub_raster, tri_t, I_t, ratio_t, w_t, grid_t, sh_t, scale_c
            )
            loss = loss + LANDMARK_WEIGHT * landmark_loss(R, alpha, expr)
            loss.backward()
            opt.step()
            with torch.no_grad():
                expr.clamp_(0.0, 1.0)

    # Light and albedo share a scale per channel; by convention the light's mean shading over the skin
    # pixels is gray here, so the colour is all in the albedo and the appearance stage decides how much of
    # it is the light's.
    mean_shade = np.average(shade, axis=0, weights=np.maximum(weights[pix], 1e-12))
    gray = mean_shade / max(float(mean_shade.mean()), 1e-12)
    gray = np.where(gray > 1e-6, gray, 1.0)
    sh = sh / gray[None, :]
    albedo_grid = (albedo_grid * gray[None, None, :]).astype(np.float32)

    # Final state and products.
    with torch.no_grad():
        R = (_rodrigues(rot) @ R0).numpy().astype(np.float64)
        lm_loss1 = float(landmark_loss(torch.tensor(R, dtype=torch_dtype), alpha, expr))
    identity = fit.identity_coeffs.astype(np.float32).copy()
    identity[:k] = alpha.detach().numpy()
    expression = np.clip(expr.detach().numpy(), 0.0, 1.0).astype(np.float32)
    verts = model.vertices(identity, expression)
    camera = Camera(
        K=fit.camera.K,
        R=R,
        t=trans.detach().numpy().astype(np.float64),
        width=fit.camera.width,
        height=fit.camera.height,
    )
    proj = camera.project(points.evaluate(verts))
    residual = np.linalg.norm(proj - np.asarray(landmarks_px, np.float64)[:, :2], axis=1)
    new_fit = replace(
        fit,
        camera=camera,
        identity_coeffs=identity,
        expression_weights=expression,
        vertices=verts,
        residual_px=residual,
    )
    rendered = np.zeros((h * w, 3), np.float32)
    rendered[pix] = pred
    skin = weights > 0
    cand_all = candidates
    outlier = cand_all & ~skin
    from facetwin.frames import linear_to_srgb

    obs_srgb = linear_to_srgb(view.image_linear)
    ren_srgb = linear_to_srgb(rendered.reshape(h, w, 3))
    mask2 = skin.reshape(h, w)
    idx = model.fitting_vertices
    metrics = {
        "psnr_db": psnr_masked(obs_srgb, ren_srgb, mask2),
        "ssim": ssim_masked(obs_srgb, ren_srgb, mask2),
        "psnr_candidates_db": psnr_masked(obs_srgb, ren_srgb, cand_all.reshape(h, w)),
        "skin_pixels": int(mask2.sum()),
        "candidate_pixels": int(cand_all.sum()),
        "outlier_fraction": float(outlier.sum() / max(cand_all.sum(), 1)),
        "residual_sigma_sqrt": float(sigma),
        "landmark_loss_before": lm_loss0,
        "landmark_loss_after": lm_loss1,
        "face_vertex_shift_mm": float(np.linalg.norm(verts[idx] - fit.vertices[idx], axis=1).mean() * 10.0),
        "seconds": time.perf_counter() - t_start,
    }
    return PhotometricFit(
        fit=new_fit,
        sh_light=sh.astype(np.float64),
        albedo_grid_linear=albedo_grid,
        view=view,
        skin_mask=mask2,
        candidate_mask=cand_all.reshape(h, w),
        outlier_mask=outlier.reshape(h, w),
        feature_mask=features.reshape(h, w),
        rendered_linear=rendered.reshape(h, w, 3),
        visibility=visibility,
        directions=dirs,
        sheen=sheen,
        metrics=metrics,
    )


def unlike_skin(
    image_linear: np.ndarray,
    candidate: np.ndarray,
    skin: np.ndarray,
    oval: np.ndarray,
    face_size_px: float,
    feature: np.ndarray | None = None,
) -> np.ndarray:
    """Candidate skin pixels whose colour belongs with the hair and background around the face.

    Hair that falls over the face's side in the colour of the skin, only darker (backlit brown hair over a
    tan cheek), is no outlier of the photometric fit: its smooth albedo map and the shading at the side of
    the face take it up. Its colour is the hair's beside the face, though. Two colour models (Gaussian
    mixtures, OpenCV's GrabCut, which also keeps the labels smooth with a graph cut) are learnt, the skin's
    from the sure skin (:data:`UNLIKE_SKIN_SURE_INSIDE`) and the rest from what is surely not the face
    (:data:`UNLIKE_SKIN_SURE_OUTSIDE`); every other pixel goes to the likelier, unless the two models
    confuse the sure skin (:data:`UNLIKE_SKIN_MAX_CONFUSED`). Colour photos only: without colour, skin in
    shadow and dark hair are alike.

    Args:
        image_linear: (h, w, 3) linear RGB of the crop.
        candidate: (h, w) bool pixels that could be skin.
        skin: (h, w) bool the photometric fit's skin inliers.
        oval: (h, w) bool inside the detector's face oval.
        face_size_px: the face's size in these pixels.
        feature: (h, w) bool pixels of the eyes, brows, lips and nostrils, or None: within
            :data:`FEATURE_MARGIN_FACE` of them nothing is taken (brow hairs, lashes and lid shadows are as
            dark and brown as hair; the photometric fit's outliers there are judged as margins by
            :func:`occluder_mask`). Without it, astronaut's crop lost 1161 pixels instead of 394 and
            woman_three_quarter's 3200 instead of 1513, around the eyes and brows.

    Returns:
        (h, w) bool candidates taken for hair or background (to be judged by :func:`occluder_mask`).
    """
    import cv2

    from facetwin.frames import linear_to_srgb

    h, w = candidate.shape
    inside = cv2.distanceTransform(oval.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~oval).astype(np.uint8), cv2.DIST_L2, 5)
    rows = np.nonzero(oval.any(axis=1))[0]
    if rows.size == 0:
        return np.zeros((h, w), bool)
    above_chin = (np.arange(h) < rows[-1] - UNLIKE_SKIN_ABOVE_CHIN * face_size_px)[:, None]
    labels = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    labels[candidate] = cv2.GC_PR_FGD
    sure_skin = skin & (inside > UNLIKE_SKIN_SURE_INSIDE * face_size_px)
    sure_not = (outside > UNLIKE_SKIN_SURE_OUTSIDE * face_size_px) & above_chin
    if sure_skin.sum() < 50 or sure_not.sum() < 50:
        return np.zeros((h, w), bool)
    labels[sure_skin] = cv2.GC_FGD
    labels[sure_not] = cv2.GC_BGD
    bgr = np.ascontiguousarray((np.clip(linear_to_srgb(image_linear), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)[..., ::-1])
    # GrabCut seeds its mixtures by k-means from OpenCV's global generator: the same photo, the same mask.
    cv2.setRNGSeed(0)
    not_skin_model, skin_model = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(bgr, labels, None, not_skin_model, skin_model, UNLIKE_SKIN_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    x = bgr[sure_skin].astype(np.float64)
    if np.mean(_gmm_log_likelihood(not_skin_model, x) > _gmm_log_likelihood(skin_model, x)) > UNLIKE_SKIN_MAX_CONFUSED:
        return np.zeros((h, w), bool)
    unlike = candidate & ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD))
    if feature is not None and feature.any():
        # Brows, lashes and lid shadows are hair-coloured too; their margins are left to the photometric fit.
        r = max(round(FEATURE_MARGIN_FACE * face_size_px), 1)
        near = cv2.dilate(feature.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
        unlike &= ~near.astype(bool)
    return unlike


def _gmm_log_likelihood(model: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N,) log density of (N, 3) colours under one of OpenCV GrabCut's Gaussian mixtures, its (1, 65)
    array: 5 weights, 5 means (3 each), 5 covariances (3x3 each)."""
    m = np.asarray(model, np.float64).ravel()
    k = 5
    weights, means, covs = m[:k], m[k : 4 * k].reshape(k, 3), m[4 * k :].reshape(k, 3, 3)
    out = np.full((k, x.shape[0]), -np.inf)
    for i in range(k):
        if weights[i] <= 0.0:
            continue
        cov = covs[i] + 1e-6 * np.eye(3)
        d = x - means[i]
        maha = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d)
        out[i] = np.log(weights[i]) - 0.5 * (maha + np.log(np.linalg.det(cov)) + 3.0 * np.log(2.0 * np.pi))
    return np.logaddexp.reduce(out, axis=0)


def _full_vertices(model, fit, prob, alpha, expr) -> np.ndarray:
    ident = fit.identity_coeffs.astype(np.float32).copy()
    ident[: prob.k] = alpha
    return model.vertices(ident, np.clip(expr, 0.0, 1.0))


def _ambient() -> np.ndarray:
    out = np.zeros((9, 3))
    out[0] = 1.0
    return out


def _sh_design(normals: np.ndarray) -> np.ndarray:
    """(N, 9) float64: irradiance over pi per unit radiance coefficient, ``A_l Y_lm(n) / pi``."""
    import torch

    from facetwin.render.shade import SH_BANDS, SH_IRRADIANCE_A, sh_basis

    y = sh_basis(torch.from_numpy(np.asarray(normals, np.float64))).numpy()
    a = np.array([SH_IRRADIANCE_A[b] for b in SH_BANDS]) / math.pi
    return y * a


@dataclass(frozen=True)
class _Channels:
    """Per-channel weighted products of the light's columns ``A_c = albedo_c ratio_c design`` (N, 9), the
    intensity ``I_c`` and a sheen's lobe ``g`` (N,), from which the normal equations of :func:`_solve_light`
    and the squared residual of any solution are assembled without going over the pixels again."""

    AA: list  # 3 x (9, 9) A_c' W A_c
    AI: list  # 3 x (9,) A_c' W I_c
    II: float  # sum_c I_c' W I_c
    Ag: list | None = None  # 3 x (9,) A_c' W g
    gg: float = 0.0  # g' W g
    gI: np.ndarray | None = None  # (3,) g' W I_c


def _channels(I, columns, weights, lobe=None, base: _Channels | None = None) -> _Channels:
    """:class:`_Channels` of these pixels: ``columns`` the light's ``A_c`` (:func:`_light_columns`); ``base``
    reuses the light's products (same pixels, same weights) when only the lobe is new."""
    if base is None:
        Aw = [a * weights[:, None] for a in columns]
        base = _Channels(
            AA=[a.T @ aw for a, aw in zip(columns, Aw)],
            AI=[aw.T @ I[:, c] for c, aw in enumerate(Aw)],
            II=float((weights[:, None] * I * I).sum()),
        )
    if lobe is None:
        return base
    gw = lobe * weights
    return replace(base, Ag=[a.T @ gw for a in columns], gg=float(gw @ lobe), gI=gw @ I)


def _light_columns(albedo, ratio, design) -> list:
    """3 x (N, 9) the light's columns per channel, ``albedo_c ratio_c design``."""
    return [design * (albedo[:, c] * ratio[:, c])[:, None] for c in range(3)]


def _assemble(ch: _Channels, colour=None) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations ``M x = b`` over ``x = [L_shared (9), D_0, D_1, D_2 (9 each), k]``: channel c sees
    the light ``L_shared + D_c`` and the sheen ``k colour_c g`` (no ``k`` without a colour)."""
    n = 36 if colour is None else 37
    M = np.zeros((n, n))
    b = np.zeros(n)
    for c in range(3):
        sl = slice(9 + 9 * c, 18 + 9 * c)
        for r_sl in (slice(0, 9), sl):
            for c_sl in (slice(0, 9), sl):
                M[r_sl, c_sl] += ch.AA[c]
            b[r_sl] += ch.AI[c]
            if colour is not None:
                M[r_sl, 36] += colour[c] * ch.Ag[c]
                M[36, r_sl] += colour[c] * ch.Ag[c]
    if colour is not None:
        M[36, 36] = ch.gg * float(np.sum(np.square(colour)))
        b[36] = float(np.dot(colour, ch.gI))
    return M, b


def _solve_assembled(M, b, ch: _Channels) -> np.ndarray:
    """Solution of :func:`_assemble`'s equations under the light's ridges (module constants)."""
    M = M.copy()
    scale = sum(np.trace(a) for a in ch.AA) / 27.0
    for c in range(3):
        sl = slice(9 + 9 * c, 18 + 9 * c)
        M[sl, sl] += np.eye(9) * SH_COLOUR_RIDGE * scale
    band2 = [4, 5, 6, 7, 8]
    for off in (0, 9, 18, 27):
        M[[off + k for k in band2], [off + k for k in band2]] += SH_RIDGE * scale
    return np.linalg.solve(M + np.eye(M.shape[0]) * 1e-12 * max(scale, 1e-30), b)


def _residual(x, ch: _Channels, colour=None) -> float:
    """Weighted squared residual ``sum W (I - A x)^2`` of a solution, from the products alone."""
    M, b = _assemble(ch, colour)
    return max(ch.II - 2.0 * float(x @ b) + float(x @ M @ x), 0.0)


def _sh_of(x) -> np.ndarray:
    return x[:9, None] + x[9:36].reshape(3, 9).T


def _solve_light(I, albedo, ratio, design, weights, lobes: dict, judge) -> tuple[np.ndarray, float, np.ndarray]:
    """SH light and the sheen that, with it, explain ``I`` best: weighted linear least squares for the (9, 3)
    SH and the sheen's strength ``k`` in ``I_c ~ albedo_c ratio_c (design @ L_c) + k colour_c lobe``.

    ``L_c = L_shared + D_c``: one light shape for all channels plus per-channel departures under a ridge
    (:data:`SH_COLOUR_RIDGE`), so the light's colour may vary with direction (a warm key and a blue fill)
    without the dim channels of dark skin fitting their own noise. Band 2 is ridged too (:data:`SH_RIDGE`).
    The sheen has the light's colour, which the camera's white balance has made gray or left warmer or
    cooler: its colour is one of :func:`sheen_colours`, along the locus of daylight and lamps. A sheen free
    to take any colour takes up the albedo map's colour errors instead.

    Args:
        I, albedo, ratio: (N, 3) observed intensity, albedo and visibility ratio per pixel.
        design: (N, 9) :func:`_sh_design`.
        weights: (N,) least-squares weights.
        lobes: ``{exponent: (N,) sheen_lobe times the mean visibility ratio}``; empty for no sheen.
        judge: (N,) weights of the residual the sheen must reduce (:data:`SHEEN_MIN_GAIN`).

    Returns:
        sh: (9, 3); exponent of the sheen (0 for none: no lobe takes :data:`SHEEN_MIN_GAIN` of the
        residual off); rgb: (3,) its colour and strength, linear (zeros for none).
    """
    columns = _light_columns(albedo, ratio, design)
    fit = _channels(I, columns, weights)
    judged = _channels(I, columns, judge)
    x = _solve_assembled(*_assemble(fit), fit)
    plain = (_sh_of(x), 0.0, np.zeros(3))
    best = plain
    best_cost = plain_cost = _residual(x, judged)
    for p, lobe in lobes.items():
        fit_p = _channels(I, columns, weights, lobe, base=fit)
        judged_p = _channels(I, columns, judge, lobe, base=judged)
        for colour in sheen_colours():
            x = _solve_assembled(*_assemble(fit_p, colour), fit_p)
            if x[36] <= 0.0:
                continue  # shine only adds light
            cost = _residual(x, judged_p, colour)
            if cost < best_cost:
                best, best_cost = (_sh_of(x), float(p), float(x[36]) * colour), cost
    return plain if best_cost > (1.0 - SHEEN_MIN_GAIN) * plain_cost else best


def sheen_colours() -> np.ndarray:
    """(C, 3) the colours a sheen is tried in: ``exp(t (1, 0, -1) / 2)`` for t in :data:`SHEEN_WARMTH`
    (green 1; t = 0.6 is about a 3000 K lamp under a daylight white balance, -0.4 open shade)."""
    t = np.asarray(SHEEN_WARMTH, np.float64)[:, None]
    return np.exp(t * np.array([0.5, 0.0, -0.5])[None, :])


def _refine_key(residual, weights, normals, view, key, lit, search=KEY_SEARCH) -> np.ndarray:
    """The direction near ``key`` whose sheen (exponent 16, gray) takes the most off the weighted squared
    ``residual`` (N, 3) of the light alone: the irradiance's peak is pulled off the key by the fill and by
    the fit's second-order truncation, the sheen's lobe is not. Searched on grids of directions ever finer
    and nearer the best so far: ``search``, (directions over the sphere, reach in degrees) each
    (:data:`KEY_SEARCH`)."""
    from facetwin.texture.delight import sphere_directions

    sel = weights > 0.0
    r, w, n, v, lit = residual[sel].sum(axis=1), weights[sel], normals[sel], view[sel], lit[sel]
    best, best_gain = key, 0.0
    for count, reach in search:
        dirs = sphere_directions(count)
        centre = best
        for d in dirs[dirs @ centre >= math.cos(math.radians(reach))]:
            lobe = sheen_lobe(n, v, d, 16.0) * lit
            num = float((w * lobe) @ r)
            den = 3.0 * float((w * lobe) @ lobe)
            gain = num * num / den if num > 0.0 and den > 0.0 else 0.0
            if gain > best_gain:
                best, best_gain = d, gain
    return best


def _sample_grid(grid: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of a (G, G, 3) face-tile map at (N, 2) OBJ UVs."""
    from facetwin.texture.delight import sample_tile

    return sample_tile(grid, uv, 0)


def _reference_log_albedo(I, shade, weights, core) -> np.ndarray:
    """(3,) log of the weighted median of ``I / shade`` over the core skin pixels (all, if too few)."""
    sel = core & (weights > 0)
    if sel.sum() < MIN_CORE_PIXELS:
        sel = weights > 0
    a = np.log(np.maximum(I[sel], INTENSITY_FLOOR) / np.maximum(shade[sel], INTENSITY_FLOOR))
    return np.array([_weighted_median(a[:, c], weights[sel]) for c in range(3)])


def _solve_albedo(I, shade, uv, weights, ref_log) -> np.ndarray:
    """(G, G, 3) albedo: least-squares ``I / shade`` per cell (weights ``w shade^2``), smoothed, gaps filled,
    held within :data:`ALBEDO_MAX_LOG_DEV` of ``exp(ref_log)`` (the core skin's colour)."""
    import cv2

    g = ALBEDO_GRID
    j = np.clip((uv[:, 0] * g).astype(np.int64), 0, g - 1)
    i = np.clip(((1.0 - uv[:, 1]) * g).astype(np.int64), 0, g - 1)
    cell = i * g + j
    num = np.zeros((g * g, 3))
    den = np.zeros((g * g, 3))
    for c in range(3):
        num[:, c] = np.bincount(cell, weights * shade[:, c] * I[:, c], minlength=g * g)
        den[:, c] = np.bincount(cell, weights * shade[:, c] ** 2, minlength=g * g)
    num = cv2.GaussianBlur(num.reshape(g, g, 3).astype(np.float32), (0, 0), ALBEDO_SMOOTH_CELLS)
    den = cv2.GaussianBlur(den.reshape(g, g, 3).astype(np.float32), (0, 0), ALBEDO_SMOOTH_CELLS)
    have = den[..., 1] > 1e-3 * max(float(den[..., 1].max()), 1e-12)
    albedo = np.where(have[..., None], num / np.maximum(den, 1e-12), 0.0)
    if not have.any():
        return np.full((g, g, 3), 0.5, np.float32)
    from scipy.ndimage import distance_transform_edt

    idx = distance_transform_edt(~have, return_distances=False, return_indices=True)
    log_a = np.log(np.maximum(albedo[idx[0], idx[1]], INTENSITY_FLOOR))
    # Skin prior: the map may depart from the face's median colour only by about ALBEDO_MAX_LOG_DEV, so
    # a beard, paint or hair over the face cannot be absorbed into the albedo and stays an outlier.
    ref = np.asarray(ref_log, np.float64)
    dev = log_a - ref
    dev = ALBEDO_MAX_LOG_DEV * np.tanh(dev / ALBEDO_MAX_LOG_DEV)
    return np.exp(ref + dev).astype(np.float32)


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, 0.5 * cw[-1])])


def _chroma_inliers(I: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """(N,) bool: log chromaticity within :data:`CHROMA_SIGMAS` robust sigmas of the candidates' median."""
    x = np.log(np.maximum(I, INTENSITY_FLOOR))
    c = np.stack([x[:, 0] - x[:, 1], x[:, 2] - x[:, 1]], axis=1)
    if cand.sum() < 10:
        return np.ones(I.shape[0], bool)
    med = np.median(c[cand], axis=0)
    mad = np.maximum(1.4826 * np.median(np.abs(c[cand] - med), axis=0), CHROMA_FLOOR)
    return np.all(np.abs(c - med) <= CHROMA_SIGMAS * mad, axis=1)


def _photometric_loss(prob, v_sub, v_cam, K, raster, tri_t, I_t, ratio_t, w_t, grid_t, sh_t, scale):
    """Mean Cauchy loss of the sqrt-intensity residuals over the weighted pixels (torch, differentiable)."""
    import torch
    import torch.nn.functional as F

    from facetwin.render.interpolate import barycentrics_torch
    from facetwin.render.shade import sh_irradiance, vertex_normals

    bary = barycentrics_torch(v_cam, prob.sub_faces, K, raster)
    normals = vertex_normals(v_sub, prob.sub_faces)
    f = torch.from_numpy(prob.sub_faces)[tri_t]
    n = torch.einsum("nk,nkd->nd", bary, normals[f])
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-12)
    e = sh_irradiance(n, sh_t) / math.pi
    uv = torch.einsum("nk,nkd->nd", bary, prob.corner_uv[tri_t])
    gx = uv[:, 0] * 2.0 - 1.0
    gy = (1.0 - uv[:, 1]) * 2.0 - 1.0
    a = F.grid_sample(
        grid_t,
        torch.stack([gx, gy], dim=1)[None, None],
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )[0, :, 0].T
    pred = (a * e * ratio_t).clamp_min(INTENSITY_FLOOR)
    r = torch.sqrt(I_t.clamp_min(INTENSITY_FLOOR)) - torch.sqrt(pred)
    rho = torch.log1p((r * r).sum(dim=1) / (3.0 * scale * scale))
    return (w_t * rho).sum() / w_t.sum().clamp_min(1e-12)
