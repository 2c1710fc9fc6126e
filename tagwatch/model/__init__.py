"""The tag model: features, scorer, decision rule and files. See ``tagwatch.model.tagmodel``.

Importing this package loads numpy and scipy (as the module it replaces did), never scikit-learn: that is imported
only when a feature space is fitted (training).
"""

from tagwatch.model.blocks import Block, default_blocks
from tagwatch.model.features import FeatureSpace, ModelFormatError
from tagwatch.model.persistence import ANALYZER_VERSION
from tagwatch.model.scorer import LinearScorer
from tagwatch.model.tagmodel import TagModel
from tagwatch.model.vocabulary import Vocabulary
from tagwatch.text import HasText

__all__ = [
    "ANALYZER_VERSION",
    "Block",
    "FeatureSpace",
    "HasText",
    "LinearScorer",
    "ModelFormatError",
    "TagModel",
    "Vocabulary",
    "default_blocks",
]
