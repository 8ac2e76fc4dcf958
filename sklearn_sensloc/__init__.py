"""sklearn-sensloc: object localization from the sensitivity maps of a pretrained CNN.

A scikit-learn compatible implementation of localization from sensitivity
maps: absolute input gradients of a class score or of the Gestalt Total (the
mean activation of the last convolutional layer), turned into boxes by a
linear regressor trained with SGD or by a training-free heuristic, and scored
with CorLoc.
"""

from ._boxes import box_iou
from ._cache import gradient_cache
from ._evaluation import evaluate_localization, evaluate_voc
from ._heuristic import CenterBoxBaseline, HeuristicBoxEstimator
from ._metrics import CorLocScorer, corloc_score
from ._plots import plot_boxes, plot_maps
from ._regressor import BoxRegressor
from ._transformer import SensitivityTransformer
from .datasets import load_voc, make_sample_scenes

__version__ = "0.1.0"

__all__ = [
    "BoxRegressor",
    "CenterBoxBaseline",
    "CorLocScorer",
    "HeuristicBoxEstimator",
    "SensitivityTransformer",
    "box_iou",
    "corloc_score",
    "evaluate_localization",
    "evaluate_voc",
    "gradient_cache",
    "load_voc",
    "make_sample_scenes",
    "plot_boxes",
    "plot_maps",
]
