"""Skin-colour manifold, CIELAB and ITA: known answers, ranges, monotonicity and fit round trips."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from facetwin.frames import srgb_to_linear
from facetwin.texture import skin
from facetwin.texture.skin import (
    HAEMOGLOBIN_RANGE,
    MELANIN_RANGE,
    WAVELENGTHS_NM,
    fit_skin_parameters,
    ita_degrees,
    linear_srgb_to_lab,
    planckian_cast_log,
    planckian_distance,
    project_to_skin_manifold,
    reflectance_to_linear_srgb,
    skin_albedo_linear,
    skin_grid,
    skin_reflectance,
)

TYPICAL_BLOOD = 0.01
"""A typical dermal blood fraction for the melanin sweeps (Jacques 1998 uses 0.2 %, flushed skin 5 %)."""


def test_doctests():
    assert doctest.testmod(skin, raise_on_error=False).failed == 0


def test_lab_known_answers():
    # White is L* = 100 with no chroma (by definition of the D65 reference white).
    np.testing.assert_allclose(linear_srgb_to_lab(np.ones(3)), [100.0, 0.0, 0.0], atol=1e-9)
    # sRGB primaries, CIELAB D65 (B. Lindbloom's calculator; also in the colormine.org tables).
    np.testing.assert_allclose(linear_srgb_to_lab([1.0, 0.0, 0.0]), [53.2408, 80.0925, 67.2032], atol=2e-4)
    np.testing.assert_allclose(linear_srgb_to_lab([0.0, 1.0, 0.0]), [87.7347, -86.1827, 83.1793], atol=2e-4)
    np.testing.assert_allclose(linear_srgb_to_lab([0.0, 0.0, 1.0]), [32.2970, 79.1875, -107.8602], atol=2e-4)
    # By hand: sRGB grey 0.5 is linear Y = 0.21404114, L* = 116 * Y^(1/3) - 16 = 53.3890.
    grey = srgb_to_linear(np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(linear_srgb_to_lab(grey), [53.3890, 0.0, 0.0], atol=2e-4)
    # Below the cube-root threshold the linear branch: Y = 0.001 -> L* = 903.3 * 0.001 = 0.9033.
    np.testing.assert_allclose(linear_srgb_to_lab(np.full(3, 0.001))[0], 0.9033, atol=1e-3)


def test_lab_agrees_with_scikit_image():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(0).uniform(0.0, 1.0, (200, 3))
    # skimage rounds the sRGB matrix and white point differently: agreement to 0.01 L*a*b* units.
    np.testing.assert_allclose(linear_srgb_to_lab(srgb_to_linear(rgb)), rgb2lab(rgb), atol=1e-2)


def test_lab_bad_shape():
    with pytest.raises(ValueError, match="rgb_linear"):
        linear_srgb_to_lab(np.zeros((4, 2)))


def test_ita_known_answer():
    from skimage.color import lab2rgb

    # L* = 60, b* = 10 -> ITA = atan(10 / 10) = 45 deg; L* = 40, b* = 10 -> -45 deg; L* = 50 -> 0 deg.
    lab = np.array([[60.0, 5.0, 10.0], [40.0, 5.0, 10.0], [50.0, 5.0, 15.0]])
    rgb = srgb_to_linear(lab2rgb(lab))
    np.testing.assert_allclose(ita_degrees(rgb), [45.0, -45.0, 0.0], atol=0.1)


def test_white_reflector_is_white():
    np.testing.assert_allclose(reflectance_to_linear_srgb(np.ones(WAVELENGTHS_NM.size)), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        reflectance_to_linear_srgb(np.full(WAVELENGTHS_NM.size, 0.25)), 0.25, atol=1e-12
    )
    with pytest.raises(ValueError, match="reflectance"):
        reflectance_to_linear_srgb(np.ones(30))


def test_reflectance_shapes_and_bounds():
    r = skin_reflectance(np.full((4, 1), 0.05), np.full((1, 5), 0.01))
    assert r.shape == (4, 5, WAVELENGTHS_NM.size)
    assert np.all((r > 0.0) & (r < 1.0))
    a = skin_albedo_linear(np.geomspace(*MELANIN_RANGE, 50)[:, None], np.geomspace(*HAEMOGLOBIN_RANGE, 50))
    assert a.shape == (50, 50, 3)
    assert np.all((a > 0.0) & (a < 1.0)), "the manifold must stay inside the sRGB gamut"


def test_reflectance_bad_fractions():
    with pytest.raises(ValueError, match="melanin"):
        skin_albedo_linear(1.5, 0.01)
    with pytest.raises(ValueError, match="haemoglobin"):
        skin_albedo_linear(0.1, -0.01)


def test_ita_spans_very_light_to_very_dark():
    melanin = np.geomspace(*MELANIN_RANGE, 400)
    ita = ita_degrees(skin_albedo_linear(melanin, TYPICAL_BLOOD))
    assert ita[0] > 75.0 and ita[-1] < -65.0
    # ITA +60 (very light) and -50 (very dark) fall at the melanosome fractions Jacques (1998) gives for
    # light (1.3-6.3 %) and darkly pigmented (18-43 %) adults.
    assert 0.013 < melanin[np.argmin(np.abs(ita - 60.0))] < 0.063
    assert 0.18 < melanin[np.argmin(np.abs(ita + 50.0))] < 0.43


@pytest.mark.parametrize("blood", [0.002, TYPICAL_BLOOD, 0.03])
def test_more_melanin_is_darker_and_lower_ita(blood):
    melanin = np.geomspace(*MELANIN_RANGE, 200)
    albedo = skin_albedo_linear(melanin, blood)
    lab = linear_srgb_to_lab(albedo)
    assert np.all(np.diff(lab[:, 0]) < 0.0), "L* must fall as melanin rises"
    assert np.all(np.diff(albedo, axis=0) < 0.0), "every channel must fall as melanin rises"
    assert np.all(np.diff(ita_degrees(albedo)) < 0.0)


def test_more_blood_is_redder():
    blood = np.geomspace(*HAEMOGLOBIN_RANGE, 100)
    albedo = skin_albedo_linear(0.03, blood)
    assert np.all(np.diff(albedo[:, 1]) < 0.0), "haemoglobin absorbs green"
    assert np.all(np.diff(linear_srgb_to_lab(albedo)[:, 1]) > 0.0), "a* (redness) must rise"


def test_light_skin_albedo_is_plausible():
    # Light skin (melanin 3 %, blood 1 %) has a diffuse albedo of roughly 0.6 / 0.45 / 0.35 in linear
    # sRGB, with red > green > blue.
    a = skin_albedo_linear(0.03, TYPICAL_BLOOD)
    assert a[0] > a[1] > a[2]
    np.testing.assert_allclose(a, [0.55, 0.40, 0.30], atol=0.08)


def _random_parameters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo_m, hi_m = np.log(MELANIN_RANGE[0]) + 0.2, np.log(MELANIN_RANGE[1]) - 0.2
    lo_h, hi_h = np.log(HAEMOGLOBIN_RANGE[0]) + 0.2, np.log(HAEMOGLOBIN_RANGE[1]) - 0.2
    return np.exp(rng.uniform(lo_m, hi_m, n)), np.exp(rng.uniform(lo_h, hi_h, n))


def test_fit_round_trip_without_scale():
    m, h = _random_parameters(3000, seed=1)
    fit = fit_skin_parameters(skin_albedo_linear(m, h))
    assert fit.melanin.shape == (3000,) and fit.scale == 1.0
    np.testing.assert_allclose(fit.melanin, m, rtol=1e-4)
    # Blood under a dark epidermis barely shows, so its fraction is the less well determined one.
    np.testing.assert_allclose(fit.haemoglobin, h, rtol=1e-3)
    assert fit.log_residual.max() < 1e-5


def test_fit_round_trip_with_global_scale():
    m, h = _random_parameters(2000, seed=2)
    albedo = 0.6 * skin_albedo_linear(m, h).reshape(40, 50, 3)
    fit = fit_skin_parameters(albedo, fit_scale=True)
    assert fit.melanin.shape == (40, 50)
    assert abs(fit.scale - 0.6) < 1e-5
    np.testing.assert_allclose(fit.melanin.reshape(-1), m, rtol=1e-4)
    np.testing.assert_allclose(fit.haemoglobin.reshape(-1), h, rtol=1e-3)


def test_fit_weights_select_the_scale():
    m, h = _random_parameters(500, seed=3)
    albedo = skin_albedo_linear(m, h)
    # Half the colours are 0.5 times as bright but have zero weight: the shared scale follows the others.
    albedo[:250] *= 0.5
    weights = np.r_[np.zeros(250), np.ones(250)]
    fit = fit_skin_parameters(albedo, fit_scale=True, weights=weights)
    assert abs(fit.scale - 1.0) < 1e-4


def test_grid_matches_model():
    g = skin_grid()
    i, j = 17, 40
    np.testing.assert_allclose(
        g.albedo_linear[i, j],
        skin_albedo_linear(np.exp(g.log_melanin[i]), np.exp(g.log_haemoglobin[j])),
        rtol=1e-12,
    )
    assert g.log_melanin[1] == pytest.approx(np.log(MELANIN_RANGE[0]))
    assert g.log_haemoglobin[-2] == pytest.approx(np.log(HAEMOGLOBIN_RANGE[1]))


def test_projection_is_idempotent_and_on_manifold():
    rng = np.random.default_rng(4)
    # Off-manifold colours around skin tones (a skin albedo with +-20 % per-channel noise), and grey.
    m, h = _random_parameters(200, seed=5)
    noisy = skin_albedo_linear(m, h) * rng.uniform(0.8, 1.2, (200, 3))
    noisy = np.vstack([noisy, [0.3, 0.3, 0.3]])
    once = project_to_skin_manifold(noisy)
    twice = project_to_skin_manifold(once)
    np.testing.assert_allclose(twice, once, rtol=1e-5)
    assert fit_skin_parameters(once).log_residual.max() < 1e-5
    # Fitted parameters stay in their ranges, even for grey.
    fit = fit_skin_parameters(noisy)
    assert np.all(
        (fit.melanin >= MELANIN_RANGE[0] * (1 - 1e-9)) & (fit.melanin <= MELANIN_RANGE[1] * (1 + 1e-9))
    )
    assert np.all(
        (fit.haemoglobin >= HAEMOGLOBIN_RANGE[0] * (1 - 1e-9))
        & (fit.haemoglobin <= HAEMOGLOBIN_RANGE[1] * (1 + 1e-9))
    )
    # The fit is the nearest manifold point in log albedo: no grid node is nearer.
    nodes = np.log(skin_grid().albedo_linear[1:-1, 1:-1]).reshape(-1, 3)
    node_dist = np.sqrt(((np.log(noisy)[:, None, :] - nodes[None]) ** 2).mean(axis=2)).min(axis=1)
    assert np.all(fit.log_residual <= node_dist + 1e-9)


def test_fit_bad_inputs():
    with pytest.raises(ValueError, match="albedo_linear"):
        fit_skin_parameters(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="weights"):
        fit_skin_parameters(np.full((5, 3), 0.3), fit_scale=True, weights=np.ones(4))
    with pytest.raises(ValueError, match="weights"):
        fit_skin_parameters(np.full((5, 3), 0.3), fit_scale=True, weights=np.zeros(5))


def test_fit_empty_input():
    fit = fit_skin_parameters(np.zeros((0, 3)))
    assert fit.melanin.shape == (0,)


def test_planckian_casts_known_answers():
    """D65's own temperature gives (almost) no cast; lower temperatures are warmer (red up, blue down) in
    order; the warm end matches a 2300 K white; points on the locus are at distance 0, green and magenta
    whites far from it."""
    temps = np.array([2300.0, 3200.0, 4000.0, 5000.0, 6504.0, 9000.0, 15000.0])
    casts = planckian_cast_log(temps)
    np.testing.assert_allclose(casts.sum(axis=1), 0.0, atol=1e-12)
    assert np.abs(casts[4]).max() < 0.05
    red_minus_blue = casts[:, 0] - casts[:, 2]
    assert np.all(np.diff(red_minus_blue) < 0)
    assert red_minus_blue[0] > 2.5 and red_minus_blue[-1] < -0.6
    # Independent reference: the Planckian locus in CIE 1931 xy by the cubic splines of Kim et al. (2002,
    # 2222-25000 K),
    # as XYZ with Y = 1, to linear sRGB with the IEC 61966-2-1 matrix (no chromatic adaptation).
    for t, cast in zip(temps[:-1], casts[:-1]):
        u = 1e3 / t
        if t <= 4000:
            x = -0.2661239 * u**3 - 0.2343589 * u**2 + 0.8776956 * u + 0.179910
            y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
        else:
            x = -3.0258469 * u**3 + 2.1070379 * u**2 + 0.2226347 * u + 0.240390
            y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
        rgb = np.linalg.solve(skin.SRGB_TO_XYZ, [x / y, 1.0, (1.0 - x - y) / y])
        ref = np.log(rgb) - np.log(rgb).mean()
        assert np.abs(cast - ref).max() < 0.03, (t, cast, ref)
    np.testing.assert_allclose(planckian_distance(casts + 0.7), 0.0, atol=0.01)  # the mean is ignored
    assert planckian_distance(np.zeros(3)) == 0.0
    assert planckian_distance(np.log([1.0, 1.4, 1.0])) > 0.25  # green
    assert planckian_distance(np.log([1.4, 1.0, 1.4])) > 0.2  # magenta
    assert planckian_distance(np.log([7.0, 1.0, 0.7])) > 0.5  # red beyond any blackbody


def test_planckian_bad_temperature():
    with pytest.raises(ValueError, match="gamut"):
        planckian_cast_log(1500.0)
