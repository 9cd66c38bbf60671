"""facetwin: one portrait photo to a rendering-ready, animatable 3D head in the ICT FaceKit topology."""

__version__ = "0.1.0"
