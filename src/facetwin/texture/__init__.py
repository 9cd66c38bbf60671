"""Skin maps in UV space: the biophysical skin-colour manifold, UV rasterisation and the left-right mirror
of the texture tiles, and completion of what the photo does not show."""
