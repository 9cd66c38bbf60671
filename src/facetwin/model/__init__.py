"""The ICT FaceKit head model: finding it, importing it into a fast cache, evaluating it."""

from facetwin.model.ict import HeadModel, load_model
from facetwin.model.locate import find_model_dir

__all__ = ["HeadModel", "find_model_dir", "load_model"]
