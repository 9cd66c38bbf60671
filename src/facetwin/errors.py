"""The project's own exception type; the CLI turns it into one line on stderr."""


class FacetwinError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class ModelNotFoundError(FacetwinError):
    """The ICT FaceKit head model is not where the project looks for it."""


class NoFaceError(FacetwinError):
    """The detector found no face in the photo."""
