"""Web viewer for facetwin results: a local HTTP server and a three.js page (``facetwin view PATH``)."""

from facetwin.viewer.server import find_three_dir, make_server, serve

__all__ = ["find_three_dir", "make_server", "serve"]
