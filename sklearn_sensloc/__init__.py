"""sklearn-sensloc: object localization from the sensitivity maps of a pretrained CNN.

A scikit-learn compatible implementation of localization from sensitivity
maps: absolute input gradients of a class score or of the Gestalt Total (the
mean activation of the last convolutional layer), turned into boxes by a
linear regressor trained with SGD or by a training-free heuristic, and scored
with CorLoc.
"""

from ._box_estimators._box_score import BoxScorer, box_score_features, box_scores, fit_box_scorer
from ._box_estimators._heuristic import CenterBoxBaseline, HeuristicBoxEstimator
from ._box_estimators._regressor import BoxRegressor
from ._classifiers._models import loaded_models
from ._images._image_files import find_images
from ._maps._cache import GradientCache, gradient_cache
from ._maps._transformer import SensitivityTransformer
from ._metrics._boxes import box_iou
from ._metrics._corloc import CorLocScorer, corloc_interval, corloc_score, correct_localizations
from ._photos._box_files import BoxRow
from ._photos._localizer import LocalizerFileError, load_localizer, save_localizer
from ._photos._predict_photos import predict_photos, write_boxes
from ._plots import plot_boxes, plot_maps
from ._storage._fit_from_store import fit_from_store
from ._storage._store import MapStore, MapStoreMismatchError
from ._version import __version__
from .datasets import (
    SplitNotFoundError,
    load_coco,
    load_csv_boxes,
    load_voc,
    make_sample_scenes,
)
from .evaluation import evaluate_localization, evaluate_voc

__all__ = [
    "BoxRegressor",
    "BoxRow",
    "BoxScorer",
    "CenterBoxBaseline",
    "CorLocScorer",
    "GradientCache",
    "HeuristicBoxEstimator",
    "LocalizerFileError",
    "MapStore",
    "MapStoreMismatchError",
    "SensitivityTransformer",
    "SplitNotFoundError",
    "box_iou",
    "box_score_features",
    "box_scores",
    "corloc_interval",
    "corloc_score",
    "correct_localizations",
    "evaluate_localization",
    "evaluate_voc",
    "fit_box_scorer",
    "find_images",
    "fit_from_store",
    "gradient_cache",
    "load_coco",
    "load_csv_boxes",
    "load_localizer",
    "load_voc",
    "loaded_models",
    "make_sample_scenes",
    "plot_boxes",
    "plot_maps",
    "predict_photos",
    "save_localizer",
    "write_boxes",
]

# Dask support needs the optional "dask" extra, so it is imported on first use.
_DASK_EXPORTS = ("BoxIncremental", "partial_fit_blocks", "sensitivity_maps_dask")


def __getattr__(name):
    if name in _DASK_EXPORTS:
        from . import _dask

        return getattr(_dask, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
