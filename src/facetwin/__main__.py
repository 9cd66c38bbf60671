"""``python -m facetwin`` is the ``facetwin`` command."""

from facetwin.cli import main

main()
