"""Biophysical skin colour: a two-parameter manifold of diffuse skin albedo, and CIELAB / ITA.

Model (all spectra sampled at :data:`WAVELENGTHS_NM`, 400-700 nm every 10 nm):

* Epidermis, :data:`EPIDERMIS_THICKNESS_CM` thick: melanosomes at volume fraction ``melanin`` in a
  baseline tissue, ``mu_a = melanin * mu_a,mel + (1 - melanin) * mu_a,base``.
* Dermis, semi-infinite: whole blood at volume fraction ``haemoglobin`` (oxygen saturation
  :data:`BLOOD_OXYGEN_SATURATION`) in baseline tissue, ``mu_a = h * mu_a,blood + (1 - h) * mu_a,base``.
* Both layers scatter with the dermal reduced scattering ``mu_s'`` of Jacques (1998).
* Kubelka-Munk per layer with ``K = 2 mu_a`` and ``S = 3/4 mu_s'`` (the diffusion-theory match of
  van Gemert & Star, Lasers Life Sci. 1, 1987, without its ``- mu_a / 4`` term, which turns ``S`` negative in
  dark epidermis); the epidermis is a finite slab over the dermis, whose reflectance is ``R_inf``. The layers
  add like this: ``R = R1 + T1^2 R2 / (1 - R1 R2)``. There is no surface (specular) term: this is the diffuse
  albedo.
* Reflectance spectrum -> CIE 1931 XYZ under D65 -> linear sRGB, normalised so a perfect white reflector
  gives exactly (1, 1, 1). The normalisation corrects for the coarse 10 nm sum over 400-700 nm, and
  changes each channel by less than 0.3 %.

Parameters and ranges: ``melanin`` is the melanosome volume fraction of the epidermis, in
:data:`MELANIN_RANGE`; ``haemoglobin`` is the blood volume fraction of the dermis, in
:data:`HAEMOGLOBIN_RANGE`. Jacques (1998) gives melanosome fractions of 1.3-6.3 % for light adults,
11-16 % for moderately pigmented ones and 18-43 % for darkly pigmented ones. Over the melanin range at
1 % blood, the manifold's ITA runs from about +82 deg (paler than any real skin) to about -78 deg (far
into the "dark" class, < -30 deg). +60 deg, very light, is near melanin 0.03; -50 deg, very dark, is near
melanin 0.24, where linear albedo is about (0.15, 0.07, 0.05) and L* about 35.

The saturation of the log chromaticity (the norm of the zero-mean log RGB) peaks near melanin 0.15-0.2 and
falls beyond (0.85 at 0.2, 0.53 at 0.4, at 1 % blood): there the manifold turns back, and the chromaticity of
the darkest skin is that of lighter skin with more blood (melanin 0.34 at 2.6 % blood and 0.06 at 6.5 %
differ by 0.003 in log chromaticity, and by a factor of 4.8 in brightness). Chromaticity alone cannot tell
them apart; the blood prior of a fit picks one.

Fitting (:func:`fit_skin_parameters`) works in log albedo on a precomputed grid (:func:`skin_grid`),
starting at the nearest grid node and refining with Levenberg-Marquardt on a cubic (Catmull-Rom)
interpolation of the grid. A brightness scale can be fitted too. It is one scale for all the input colours
(exposure and light intensity): a scale per colour would give three unknowns for three channels, which
fits any colour.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np

WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
"""(31,) float64 wavelengths of every spectrum in this module, nanometres."""

# CIE 1931 2-degree standard observer colour matching functions x, y, z at 400-700 nm every 10 nm
# (CIE 015:2004 Colorimetry, table T.4; the CVRL database file ciexyz31.txt).
_CIE1931_XYZ_CMF = np.array(
    [
        [0.014310, 0.000396, 0.067850],
        [0.043510, 0.001210, 0.207400],
        [0.134380, 0.004000, 0.645600],
        [0.283900, 0.011600, 1.385600],
        [0.348280, 0.023000, 1.747060],
        [0.336200, 0.038000, 1.772110],
        [0.290800, 0.060000, 1.669200],
        [0.195360, 0.090980, 1.287640],
        [0.095640, 0.139020, 0.812950],
        [0.032010, 0.208020, 0.465180],
        [0.004900, 0.323000, 0.272000],
        [0.009300, 0.503000, 0.158200],
        [0.063270, 0.710000, 0.078250],
        [0.165500, 0.862000, 0.042160],
        [0.290400, 0.954000, 0.020300],
        [0.433450, 0.994950, 0.008750],
        [0.594500, 0.995000, 0.003900],
        [0.762100, 0.952000, 0.002100],
        [0.916300, 0.870000, 0.001650],
        [1.026300, 0.757000, 0.001100],
        [1.062200, 0.631000, 0.000800],
        [1.002600, 0.503000, 0.000340],
        [0.854450, 0.381000, 0.000190],
        [0.642400, 0.265000, 0.000050],
        [0.447900, 0.175000, 0.000020],
        [0.283500, 0.107000, 0.000000],
        [0.164900, 0.061000, 0.000000],
        [0.087400, 0.032000, 0.000000],
        [0.046770, 0.017000, 0.000000],
        [0.022700, 0.008210, 0.000000],
        [0.011359, 0.004102, 0.000000],
    ]
)

# CIE standard illuminant D65, relative spectral power at 400-700 nm every 10 nm (CIE 015:2004, table T.1;
# ISO 11664-2).
_D65_SPD = np.array(
    [
        82.7549, 91.4860, 93.4318, 86.6823, 104.865, 117.008, 117.812, 114.861, 115.923, 108.811, 109.354,
        107.802, 104.790, 107.689, 104.405, 104.046, 100.000, 96.3342, 95.7880, 88.6856, 90.0062, 89.5991,
        87.6987, 83.2886, 83.6992, 80.0268, 80.2146, 82.2778, 78.2842, 69.7213, 71.6091,
    ]
)  # fmt: skip

# Molar extinction coefficients of oxy- and deoxyhaemoglobin, cm^-1 / (mol / L), at 400-700 nm every 10 nm:
# S. Prahl's compilation of W. B. Gratzer's and N. Kollias' data, "Tabulated molar extinction coefficient for
# hemoglobin in water", https://omlc.org/spectra/hemoglobin/summary.html. Columns: HbO2, Hb.
_HAEMOGLOBIN_EXTINCTION = np.array(
    [
        [266232.0, 223296.0],
        [466840.0, 303956.0],
        [480360.0, 407560.0],
        [246072.0, 528600.0],
        [102580.0, 413280.0],
        [62816.0, 103292.0],
        [44480.0, 23388.8],
        [33209.2, 16156.4],
        [26629.2, 14550.0],
        [23684.4, 16684.0],
        [20932.8, 20862.0],
        [20035.2, 25773.6],
        [24202.4, 31589.6],
        [39956.8, 39036.4],
        [53236.0, 46592.0],
        [43016.0, 53412.0],
        [32613.2, 53788.0],
        [44496.0, 45072.0],
        [50104.0, 37020.0],
        [14400.8, 28324.4],
        [3200.0, 14677.2],
        [1506.0, 9443.6],
        [942.0, 6509.6],
        [610.0, 5148.8],
        [442.0, 4345.2],
        [368.0, 3750.12],
        [319.6, 3226.56],
        [294.0, 2795.12],
        [277.6, 2407.92],
        [276.0, 2051.96],
        [290.0, 1794.28],
    ]
)

BLOOD_HAEMOGLOBIN_G_PER_L = 150.0
"""Haemoglobin concentration of whole blood, g/L (Prahl's worked example on the same omlc.org page)."""
HAEMOGLOBIN_G_PER_MOL = 64500.0
"""Molecular weight of haemoglobin, g/mol (Prahl, same page)."""
BLOOD_OXYGEN_SATURATION = 0.75
"""Fraction of the dermal haemoglobin that is oxygenated: a typical mixed arterial and venous value."""
EPIDERMIS_THICKNESS_CM = 0.006
"""60 micrometres, a typical epidermal thickness (tens of micrometres on the face). Chosen so that ITA
+60 and -50 degrees fall at the melanosome fractions Jacques (1998) gives for light and dark adults."""

MELANIN_RANGE = (0.002, 0.4)
"""Melanosome volume fraction of the epidermis covered by the grid and the fit: ITA from about +82 to
-78 degrees (see the module docstring)."""
HAEMOGLOBIN_RANGE = (0.001, 0.1)
"""Blood volume fraction of the dermis covered by the grid and the fit. Jacques (1998) uses 0.2 %. At
10 % the skin is flushed red."""

# sRGB primaries and D65 white to CIE XYZ (IEC 61966-2-1; the 7-digit matrix from B. Lindbloom,
# brucelindbloom.com, which reproduces the published CIELAB values of the sRGB primaries).
SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
D65_WHITE_XYZ = SRGB_TO_XYZ.sum(axis=1)
"""(3,) CIE XYZ of the D65 reference white with Y = 1: (0.95047, 1.0, 1.08883)."""

_LAB_EPSILON = (6.0 / 29.0) ** 3
"""CIE 1976 threshold between the cube-root and the linear part of f(t) (CIE 015:2004)."""
ALBEDO_FLOOR = 1e-4
"""Albedos below this are clipped before taking logs in the fit (darker than any skin, 0.01 %)."""
GRID_SIZE = 128
"""Nodes per axis of the precomputed manifold grid over the parameter ranges (log-spaced; cubic
interpolation on it is within about 1e-5 of the exact log albedo)."""
_LM_STEPS = 10
"""Levenberg-Marquardt iterations from the nearest grid node; 4 reach 1e-9 in log albedo on the manifold."""
_LM_INITIAL_DAMPING = 1e-3
"""Starting Marquardt damping (relative to the diagonal of J^T J); divided by 10 after each good step."""
_LM_MIN_DAMPING = 1e-9
"""Floor of the Marquardt damping, so the steps become Gauss-Newton ones near the solution."""
_DAMPING = 1e-12
"""Absolute damping added to the normal equations so flat directions at the range limits stay solvable."""


def melanin_absorption_per_cm(wavelength_nm: np.ndarray) -> np.ndarray:
    """Absorption coefficient of the melanosome interior.

    ``mu_a,mel = 6.6e11 * lambda^-3.33`` (S. L. Jacques, "Skin optics", Oregon Medical Laser Center News,
    Jan 1998, https://omlc.org/news/jan98/skinoptics.html).

    Args:
        wavelength_nm: (...) wavelengths, nanometres.

    Returns:
        (...) float64, 1/cm.
    """
    return 6.6e11 * np.asarray(wavelength_nm, np.float64) ** -3.33


def baseline_absorption_per_cm(wavelength_nm: np.ndarray) -> np.ndarray:
    """Absorption of bloodless, melanin-free skin (Jacques 1998, same source).

    ``mu_a,base = 0.244 + 85.3 exp(-(lambda - 154) / 66.2)``.

    Args:
        wavelength_nm: (...) wavelengths, nanometres.

    Returns:
        (...) float64, 1/cm.
    """
    lam = np.asarray(wavelength_nm, np.float64)
    return 0.244 + 85.3 * np.exp(-(lam - 154.0) / 66.2)


def dermis_reduced_scattering_per_cm(wavelength_nm: np.ndarray) -> np.ndarray:
    """Reduced scattering of the dermis, Mie plus Rayleigh (Jacques 1998, same source).

    ``mu_s' = 2e5 lambda^-1.5 + 2e12 lambda^-4``.

    Args:
        wavelength_nm: (...) wavelengths, nanometres.

    Returns:
        (...) float64, 1/cm.
    """
    lam = np.asarray(wavelength_nm, np.float64)
    return 2e5 * lam**-1.5 + 2e12 * lam**-4


def blood_absorption_per_cm() -> np.ndarray:
    """Absorption of whole blood at :data:`WAVELENGTHS_NM`: ``2.303 e c / M`` (Prahl).

    Returns:
        (31,) float64, 1/cm, for oxygen saturation :data:`BLOOD_OXYGEN_SATURATION`.
    """
    s = BLOOD_OXYGEN_SATURATION
    e = s * _HAEMOGLOBIN_EXTINCTION[:, 0] + (1.0 - s) * _HAEMOGLOBIN_EXTINCTION[:, 1]
    return np.log(10.0) * e * BLOOD_HAEMOGLOBIN_G_PER_L / HAEMOGLOBIN_G_PER_MOL


def _kubelka_munk_slab(K: np.ndarray, S: np.ndarray, thickness: float) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse reflectance and transmittance of a Kubelka-Munk slab (K, S in 1/cm, thickness in cm)."""
    a = 1.0 + K / S
    b = np.sqrt(a * a - 1.0)
    x = b * S * thickness
    # Divide through by cosh(x) so that thick, dark slabs do not overflow sinh/cosh.
    th = np.tanh(x)
    den = a * th + b
    return th / den, b / (den * np.cosh(x))


def skin_reflectance(melanin: np.ndarray, haemoglobin: np.ndarray) -> np.ndarray:
    """Diffuse reflectance spectrum of the two-layer skin model (see the module docstring).

    Args:
        melanin: (...) melanosome volume fraction of the epidermis, in [0, 1].
        haemoglobin: (...) blood volume fraction of the dermis, in [0, 1]; broadcast against ``melanin``.

    Returns:
        (..., 31) float64 reflectance in [0, 1] at :data:`WAVELENGTHS_NM`.
    """
    m, h = np.broadcast_arrays(np.asarray(melanin, np.float64), np.asarray(haemoglobin, np.float64))
    for name, val in (("melanin", m), ("haemoglobin", h)):
        if not np.all((val >= 0.0) & (val <= 1.0)):
            raise ValueError(
                f"{name}: volume fractions must lie in [0, 1], got range [{val.min()}, {val.max()}]"
            )
    lam = WAVELENGTHS_NM
    base = baseline_absorption_per_cm(lam)
    scat = 0.75 * dermis_reduced_scattering_per_cm(lam)
    mua_epi = m[..., None] * melanin_absorption_per_cm(lam) + (1.0 - m[..., None]) * base
    mua_derm = h[..., None] * blood_absorption_per_cm() + (1.0 - h[..., None]) * base
    r1, t1 = _kubelka_munk_slab(2.0 * mua_epi, scat, EPIDERMIS_THICKNESS_CM)
    ks = 2.0 * mua_derm / scat
    r2 = 1.0 + ks - np.sqrt(ks * ks + 2.0 * ks)
    return r1 + t1 * t1 * r2 / (1.0 - r1 * r2)


@functools.lru_cache(maxsize=1)
def _spectrum_to_linear_srgb_matrix() -> np.ndarray:
    """(31, 3) weights: reflectance spectrum under D65 -> linear sRGB, with white -> (1, 1, 1)."""
    w_xyz = _CIE1931_XYZ_CMF * _D65_SPD[:, None]
    w_xyz = w_xyz / w_xyz[:, 1].sum()
    w_rgb = w_xyz @ np.linalg.inv(SRGB_TO_XYZ).T
    return w_rgb / w_rgb.sum(axis=0)


def reflectance_to_linear_srgb(reflectance: np.ndarray) -> np.ndarray:
    """A reflectance spectrum seen under D65, as linear sRGB.

    Args:
        reflectance: (..., 31) reflectance at :data:`WAVELENGTHS_NM`.

    Returns:
        (..., 3) float64 linear sRGB; a perfect white reflector (all ones) gives exactly (1, 1, 1).
    """
    r = np.asarray(reflectance, np.float64)
    if r.shape[-1] != WAVELENGTHS_NM.size:
        raise ValueError(f"reflectance: expected (..., {WAVELENGTHS_NM.size}), got {r.shape}")
    return r @ _spectrum_to_linear_srgb_matrix()


def skin_albedo_linear(melanin: np.ndarray, haemoglobin: np.ndarray) -> np.ndarray:
    """Diffuse skin albedo for melanin and blood fractions.

    Args:
        melanin: (...) melanosome volume fraction of the epidermis, in [0, 1] (see :data:`MELANIN_RANGE`).
        haemoglobin: (...) blood volume fraction of the dermis, in [0, 1] (see :data:`HAEMOGLOBIN_RANGE`).

    Returns:
        (..., 3) float64 albedo, linear sRGB, D65.

    Example:
        >>> a = skin_albedo_linear(0.03, 0.01)
        >>> bool(a[0] > a[1] > a[2])
        True
    """
    return reflectance_to_linear_srgb(skin_reflectance(melanin, haemoglobin))


def linear_srgb_to_lab(rgb_linear: np.ndarray) -> np.ndarray:
    """Linear sRGB to CIE 1976 L*a*b* with the D65 reference white (CIE 015:2004).

    Args:
        rgb_linear: (..., 3) linear sRGB (not the gamma-encoded values: apply
            :func:`facetwin.frames.srgb_to_linear` to those first).

    Returns:
        (..., 3) float64 ``(L*, a*, b*)``; white (1, 1, 1) -> (100, 0, 0).
    """
    rgb = np.asarray(rgb_linear, np.float64)
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_linear: expected (..., 3), got {rgb.shape}")
    t = (rgb @ SRGB_TO_XYZ.T) / D65_WHITE_XYZ
    f = np.where(t > _LAB_EPSILON, np.cbrt(t), t / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
    return np.stack(
        [116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], axis=-1
    )


def ita_degrees(albedo_linear: np.ndarray) -> np.ndarray:
    """Individual Typology Angle, ``ITA = atan((L* - 50) / b*)`` in degrees (Chardon et al. 1991).

    Classes (Del Bino et al. 2006): very light > 55, light 41-55, intermediate 28-41, tan 10-28,
    brown -30-10, dark < -30.

    Args:
        albedo_linear: (..., 3) linear sRGB (decode sRGB pixels with :func:`facetwin.frames.srgb_to_linear`).

    Returns:
        (...) float64 degrees in [-90, 90]; NaN for the achromatic mid-grey ``L* = 50, b* = 0``.
    """
    lab = linear_srgb_to_lab(albedo_linear)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.degrees(np.arctan((lab[..., 0] - 50.0) / lab[..., 2]))


PLANCKIAN_RANGE_K = (2300.0, 15000.0)
"""Colour temperatures of :func:`planckian_cast_log`'s locus: candle-warm tungsten to blue shade. Below
about 2300 K a white under a blackbody falls outside the sRGB gamut (negative blue)."""
_PLANCK_C2_M_K = 1.438777e-2
"""Second radiation constant ``h c / k`` (m K)."""


def planckian_cast_log(temperature_k: np.ndarray) -> np.ndarray:
    """Colour cast of blackbody light as a camera balanced for D65 records it.

    A white reflector lit by a blackbody at ``T`` (Planck's law) instead of D65, seen through
    :func:`reflectance_to_linear_srgb`, with the zero-mean natural log taken: the direction in which real
    light sources (tungsten, sunset, daylight, shade) tint a photo that the camera did not fully
    white-balance. ``T = 6504 K`` gives a slight magenta cast, under 0.05: D65 itself lies a little
    off the blackbody locus.

    Args:
        temperature_k: (...) kelvin, within :data:`PLANCKIAN_RANGE_K`.

    Returns:
        (..., 3) float64 zero-mean log linear sRGB.
    """
    t = np.asarray(temperature_k, np.float64)[..., None]
    lam = WAVELENGTHS_NM * 1e-9
    spd = lam**-5 / np.expm1(_PLANCK_C2_M_K / (lam * t))
    rgb = reflectance_to_linear_srgb(spd / _D65_SPD / spd.max(axis=-1, keepdims=True))
    if np.any(rgb <= 0):
        raise ValueError(f"temperature_k: outside the sRGB gamut, expected {PLANCKIAN_RANGE_K}")
    log = np.log(rgb)
    return log - log.mean(axis=-1, keepdims=True)


@functools.lru_cache(maxsize=1)
def _planckian_locus() -> np.ndarray:
    """(401, 3) blackbody casts, and no cast at all (D65, the camera's own white)."""
    return np.vstack([planckian_cast_log(np.geomspace(*PLANCKIAN_RANGE_K, 400)), np.zeros((1, 3))])


def planckian_distance(cast_log: np.ndarray) -> np.ndarray:
    """Distance of colour casts from the nearest blackbody cast of :data:`PLANCKIAN_RANGE_K` (or none).

    Args:
        cast_log: (..., 3) log linear sRGB of a white's colour (its mean is ignored).

    Returns:
        (...) float64 Euclidean distance in zero-mean log RGB: about 0 for light a blackbody could give,
        large for a white that is green, magenta or far beyond the warmest or bluest light.
    """
    c = np.asarray(cast_log, np.float64)
    c = c - c.mean(axis=-1, keepdims=True)
    d = c[..., None, :] - _planckian_locus()
    return np.sqrt((d**2).sum(axis=-1)).min(axis=-1)


@dataclass(frozen=True)
class SkinGrid:
    """The skin manifold sampled on a log-spaced grid.

    The grid reaches one node beyond :data:`MELANIN_RANGE` and :data:`HAEMOGLOBIN_RANGE` on every side, so
    the cubic interpolation of the fit has its four nodes everywhere inside the ranges.

    Attributes:
        log_melanin: (N,) float64 natural log of the melanin fractions (the grid's first axis), uniform.
        log_haemoglobin: (M,) float64 natural log of the blood fractions (second axis), uniform.
        albedo_linear: (N, M, 3) float64 albedo, linear sRGB, at every node.
    """

    log_melanin: np.ndarray
    log_haemoglobin: np.ndarray
    albedo_linear: np.ndarray


@functools.lru_cache(maxsize=1)
def skin_grid() -> SkinGrid:
    """The precomputed :class:`SkinGrid` covering :data:`MELANIN_RANGE` x :data:`HAEMOGLOBIN_RANGE`.

    Computed from the published spectra on first use (about 10 ms) and kept in memory.
    """
    axes = []
    for lo, hi in (MELANIN_RANGE, HAEMOGLOBIN_RANGE):
        step = (np.log(hi) - np.log(lo)) / (GRID_SIZE - 1)
        axes.append(np.log(lo) + step * np.arange(-1, GRID_SIZE + 1))
    albedo = skin_albedo_linear(np.exp(axes[0])[:, None], np.exp(axes[1])[None, :])
    for arr in (*axes, albedo):
        arr.setflags(write=False)
    return SkinGrid(log_melanin=axes[0], log_haemoglobin=axes[1], albedo_linear=albedo)


@numba.njit(cache=True)
def _catmull_rom_weights(t):  # pragma: no cover - compiled
    """Catmull-Rom weights of the nodes at -1, 0, 1, 2 for a point at ``t`` in [0, 1], and their d/dt."""
    t2 = t * t
    t3 = t2 * t
    w0 = 0.5 * (-t3 + 2.0 * t2 - t)
    w1 = 0.5 * (3.0 * t3 - 5.0 * t2 + 2.0)
    w2 = 0.5 * (-3.0 * t3 + 4.0 * t2 + t)
    w3 = 0.5 * (t3 - t2)
    d0 = 0.5 * (-3.0 * t2 + 4.0 * t - 1.0)
    d1 = 0.5 * (9.0 * t2 - 10.0 * t)
    d2 = 0.5 * (-9.0 * t2 + 8.0 * t + 1.0)
    d3 = 0.5 * (3.0 * t2 - 2.0 * t)
    return (w0, w1, w2, w3), (d0, d1, d2, d3)


@numba.njit(cache=True, parallel=True)
def _catmull_rom(table, x0, hx, y0, hy, x, y):  # pragma: no cover - compiled
    """Catmull-Rom interpolation of ``table`` (N, M, 3) on a uniform grid, with its x and y derivatives."""
    n = x.shape[0]
    f = np.zeros((n, 3))
    fx = np.zeros((n, 3))
    fy = np.zeros((n, 3))
    for k in numba.prange(n):
        u = (x[k] - x0) / hx
        v = (y[k] - y0) / hy
        i = min(max(int(np.floor(u)), 1), table.shape[0] - 3)
        j = min(max(int(np.floor(v)), 1), table.shape[1] - 3)
        wx, dwx = _catmull_rom_weights(u - i)
        wy, dwy = _catmull_rom_weights(v - j)
        for a in range(4):
            for b in range(4):
                wab = wx[a] * wy[b]
                dxab = dwx[a] * wy[b] / hx
                dyab = wx[a] * dwy[b] / hy
                for c in range(3):
                    val = table[i - 1 + a, j - 1 + b, c]
                    f[k, c] += wab * val
                    fx[k, c] += dxab * val
                    fy[k, c] += dyab * val
    return f, fx, fy


@functools.lru_cache(maxsize=1)
def _log_albedo_table() -> np.ndarray:
    table = np.ascontiguousarray(np.log(skin_grid().albedo_linear))
    table.setflags(write=False)
    return table


def _log_albedo(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolated log albedo (N, 3) and its derivatives in log melanin and log haemoglobin (N, 3) each."""
    g = skin_grid()
    hx = g.log_melanin[1] - g.log_melanin[0]
    hy = g.log_haemoglobin[1] - g.log_haemoglobin[0]
    return _catmull_rom(_log_albedo_table(), g.log_melanin[0], hx, g.log_haemoglobin[0], hy, x, y)


@dataclass(frozen=True)
class SkinFit:
    """Skin parameters fitted to albedos.

    Attributes:
        melanin: (...) melanosome volume fraction of the epidermis, within :data:`MELANIN_RANGE`.
        haemoglobin: (...) blood volume fraction of the dermis, within :data:`HAEMOGLOBIN_RANGE`.
        scale: the brightness scale shared by all the inputs (1.0 when not fitted):
            ``albedo ~ scale * skin_albedo_linear(melanin, haemoglobin)``.
        log_residual: (...) float64 RMS over the channels of the log-albedo residual (0 on the manifold;
            0.1 is about a 10 % colour error).
    """

    melanin: np.ndarray
    haemoglobin: np.ndarray
    scale: float
    log_residual: np.ndarray


def fit_skin_parameters(
    albedo_linear: np.ndarray, *, fit_scale: bool = False, weights: np.ndarray | None = None
) -> SkinFit:
    """The nearest point of the skin manifold to each albedo, in log albedo.

    Starts at the nearest grid node (a KD-tree, in colour shape only when the scale is free), then runs
    Levenberg-Marquardt on the cubic interpolation of the grid, keeping the parameters in their ranges.
    About 5 microseconds per colour on 2 cores: fit a downsampled map, not 4096^2 texels.

    Args:
        albedo_linear: (..., 3) linear sRGB albedos; values below :data:`ALBEDO_FLOOR` are clipped.
        fit_scale: also fit one brightness scale shared by all the albedos (unknown exposure or light
            intensity). It is only determined when the colours differ in melanin or blood (a whole face
            does); for a single colour, colour shape and brightness trade off against each other. If
            False, the scale is 1.
        weights: (...) non-negative weight of each albedo in the shared scale, or None for equal
            weights. Only used when ``fit_scale`` is True.

    Returns:
        :class:`SkinFit` with arrays shaped like ``albedo_linear[..., 0]``.

    Raises:
        ValueError: wrong shapes, or no positive weight.
    """
    from scipy.spatial import cKDTree

    a = np.asarray(albedo_linear, np.float64)
    if a.ndim < 1 or a.shape[-1] != 3:
        raise ValueError(f"albedo_linear: expected (..., 3), got {a.shape}")
    shape = a.shape[:-1]
    la = np.log(np.maximum(a.reshape(-1, 3), ALBEDO_FLOOR))
    n = la.shape[0]
    if weights is None:
        w = np.ones(n)
    else:
        w = np.asarray(weights, np.float64)
        if w.shape != shape:
            raise ValueError(f"weights: expected {shape}, got {w.shape}")
        w = w.reshape(-1)
    if fit_scale and not (np.all(w >= 0.0) and w.sum() > 0.0):
        raise ValueError("weights: need non-negative weights with a positive sum")
    if n == 0:
        empty = np.zeros(shape)
        return SkinFit(melanin=empty, haemoglobin=empty, scale=1.0, log_residual=empty)

    g = skin_grid()
    lg = np.log(g.albedo_linear[1:-1, 1:-1]).reshape(-1, 3)  # the nodes inside the ranges
    if fit_scale:
        _, idx = cKDTree(lg - lg.mean(axis=1, keepdims=True)).query(la - la.mean(axis=1, keepdims=True))
    else:
        _, idx = cKDTree(lg).query(la)
    i, j = np.unravel_index(idx, (GRID_SIZE, GRID_SIZE))
    x = g.log_melanin[1 + i]
    y = g.log_haemoglobin[1 + j]
    z = float(np.sum(w * (la - lg[idx]).mean(axis=1)) / w.sum()) if fit_scale else 0.0  # log shared scale

    lo = np.array([g.log_melanin[1], g.log_haemoglobin[1]])
    hi = np.array([g.log_melanin[-2], g.log_haemoglobin[-2]])
    lam = np.full(n, _LM_INITIAL_DAMPING)
    f, fx, fy = _log_albedo(x, y)
    for _ in range(_LM_STEPS):
        r = la - f - z  # the model is f + z: d r / d(x, y, z) = -(fx, fy, 1)
        a12 = np.einsum("nc,nc->n", fx, fy)
        a11 = np.einsum("nc,nc->n", fx, fx) * (1.0 + lam) + _DAMPING
        a22 = np.einsum("nc,nc->n", fy, fy) * (1.0 + lam) + _DAMPING
        det = a11 * a22 - a12 * a12
        g1 = np.einsum("nc,nc->n", fx, r)
        g2 = np.einsum("nc,nc->n", fy, r)
        dx = (a22 * g1 - a12 * g2) / det
        dy = (a11 * g2 - a12 * g1) / det
        z_new = z
        if fit_scale:
            # Schur complement of the per-colour 2x2 blocks: one equation for the shared log scale.
            b1, b2 = fx.sum(axis=1), fy.sum(axis=1)
            ab1 = (a22 * b1 - a12 * b2) / det
            ab2 = (a11 * b2 - a12 * b1) / det
            lhs = np.sum(w * (3.0 - b1 * ab1 - b2 * ab2))
            dz = np.sum(w * (r.sum(axis=1) - b1 * dx - b2 * dy)) / lhs
            dx, dy = dx - ab1 * dz, dy - ab2 * dz
            z_new = z + dz
        x_new = np.clip(x + dx, lo[0], hi[0])
        y_new = np.clip(y + dy, lo[1], hi[1])
        f_new, fx_new, fy_new = _log_albedo(x_new, y_new)
        cost_new = np.sum((la - f_new - z_new) ** 2, axis=1)
        cost_stay = np.sum((la - f - z_new) ** 2, axis=1)
        if fit_scale and np.sum(w * np.minimum(cost_new, cost_stay)) > np.sum(w * np.sum(r * r, axis=1)):
            # The shared scale's step made things worse overall: keep the scale, try the colours alone.
            z_new = z
            cost_new = np.sum((la - f_new - z) ** 2, axis=1)
            cost_stay = np.sum(r * r, axis=1)
        # Levenberg-Marquardt per colour: keep a step only if it lowers that colour's residual.
        better = cost_new < cost_stay
        x, y = np.where(better, x_new, x), np.where(better, y_new, y)
        f, fx, fy = (
            np.where(better[:, None], new, old) for new, old in ((f_new, f), (fx_new, fx), (fy_new, fy))
        )
        lam = np.where(better, np.maximum(lam * 0.1, _LM_MIN_DAMPING), lam * 10.0)
        z = z_new
    f, _, _ = _log_albedo(x, y)
    res = np.sqrt(np.mean((la - f - z) ** 2, axis=1))
    return SkinFit(
        melanin=np.exp(x).reshape(shape),
        haemoglobin=np.exp(y).reshape(shape),
        scale=float(np.exp(z)),
        log_residual=res.reshape(shape),
    )


def project_to_skin_manifold(
    albedo_linear: np.ndarray, *, fit_scale: bool = False, weights: np.ndarray | None = None
) -> np.ndarray:
    """Replace each albedo by its nearest skin albedo (see :func:`fit_skin_parameters`).

    Args:
        albedo_linear: (..., 3) linear sRGB albedos.
        fit_scale: fit one brightness scale shared by all inputs, and keep it in the output.
        weights: (...) weights of the inputs in the shared scale (only with ``fit_scale``).

    Returns:
        (..., 3) float64 linear sRGB, ``scale * skin_albedo_linear(melanin, haemoglobin)`` of the fit,
        interpolated on the grid (within 1e-5 of the exact model).
    """
    fit = fit_skin_parameters(albedo_linear, fit_scale=fit_scale, weights=weights)
    f, _, _ = _log_albedo(np.log(fit.melanin).reshape(-1), np.log(fit.haemoglobin).reshape(-1))
    return (fit.scale * np.exp(f)).reshape(fit.melanin.shape + (3,))
