"""The renderer, as separable stages (nvdiffrast style).

:func:`rasterize` (numba, no gradients) -> :func:`barycentrics_torch` and :func:`interpolate` (torch,
differentiable w.r.t. vertices and attributes) -> shading (:func:`vertex_normals`, :func:`sh_irradiance`).
:func:`render_overlay` and :func:`render_shaded` compose them into preview images.
"""

from facetwin.render.interpolate import barycentrics_torch, interpolate
from facetwin.render.preview import render_overlay, render_shaded
from facetwin.render.raster import NEAR_PLANE_CM, Raster, rasterize, rasterize_reference
from facetwin.render.shade import sh_basis, sh_irradiance, vertex_normals

__all__ = [
    "NEAR_PLANE_CM",
    "Raster",
    "barycentrics_torch",
    "interpolate",
    "rasterize",
    "rasterize_reference",
    "render_overlay",
    "render_shaded",
    "sh_basis",
    "sh_irradiance",
    "vertex_normals",
]
