"""Exporters: the fitted head as bytes (GLB; OBJ + MTL). They never write files; the pipeline does."""

from facetwin.export.gltf import build_glb
from facetwin.export.obj import build_obj

__all__ = ["build_glb", "build_obj"]
