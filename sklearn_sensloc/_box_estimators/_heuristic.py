"""Boxes without a learned map: the paper's heuristic and its center-box baseline."""

import math
from dataclasses import replace
from numbers import Real

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._metrics._boxes import box_iou, check_boxes
from ._base import BoxEstimatorMixin


#: Smoothing tried by ``sigma="auto"``, as fractions of the map's longer side
#: (0.08 of a 224-pixel map is about the paper's sigma=20).
SIGMA_GRID = (0.0, 0.02, 0.04, 0.08, 0.12, 0.16)
#: Fractions tried by ``top_fraction="auto"`` and ``max_fraction="auto"``.
TOP_FRACTION_GRID = (0.1, 0.2, 0.3, 0.4, 0.5)
MAX_FRACTION_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
# Maps smoothed at once while fitting, to bound memory.
_CHUNK = 256


class HeuristicBoxEstimator(BoxEstimatorMixin, RegressorMixin, BaseEstimator):
    """Boxes from maps: smooth, keep the strongest pixels, enclose them.

    Each map is smoothed with a Gaussian of standard deviation ``sigma``;
    the ``top_fraction`` of its pixels with the highest values are kept (or,
    with ``max_fraction``, the pixels of at least that fraction of the map's
    maximum); the box is the smallest one containing them (or, with
    ``region="largest"``, containing the largest connected region of them).

    With the defaults, ``fit`` chooses ``sigma`` and the fraction on a grid,
    by CorLoc on the training boxes (a hit: IoU > ``iou_threshold``): on
    genuine photos the best smoothing
    depends on the classifier and the map size, and the paper's fixed
    ``sigma=20, top_fraction=0.2`` scored below the center box (see the
    user guide's results on real photos). Numbers fix them, as in the paper.

    Parameters
    ----------
    sigma : float or "auto", default="auto"
        Standard deviation of the Gaussian smoothing, in map pixels (0: no
        smoothing). The paper used 20 on 224x224 maps (``pool=1``); for maps
        pooled by ``p`` divide it by ``p``. ``"auto"``: chosen by ``fit``
        among :data:`SIGMA_GRID` times the map's longer side.
    top_fraction : float or "auto", default="auto"
        Fraction of map pixels kept. ``"auto"``: chosen by ``fit`` among
        :data:`TOP_FRACTION_GRID`. Unused when ``max_fraction`` is set.
    map_shape : tuple (height, width) or None, default=None
        Shape of one map. None assumes square maps and takes the side from the
        number of features.
    region : {"all", "largest"}, default="all"
        Enclose all kept pixels (the paper) or only the largest connected
        region of them (the weakly supervised localization literature).
    max_fraction : float, "auto" or None, default=None
        Keep the pixels of at least this fraction of each smoothed map's
        maximum instead of a fixed share of the pixels; with
        ``region="largest"`` this is the usual CAM box rule. ``"auto"``:
        chosen by ``fit`` among :data:`MAX_FRACTION_GRID`.
    iou_threshold : float, default=0.5
        The CorLoc rule by which ``fit`` chooses what is ``"auto"``: a
        training box is a hit when its IoU with the true box is strictly
        greater than this, as in :func:`~sklearn_sensloc.corloc_score`. Unused
        when nothing is ``"auto"``; ``score`` is CorLoc at 0.5 for every box
        estimator (:class:`~sklearn_sensloc.CorLocScorer` scores at any
        threshold).

    Attributes
    ----------
    sigma_ : float
        Smoothing used, in map pixels.
    fraction_ : float
        ``top_fraction`` (or ``max_fraction``) used.
    grid_scores_ : list of dict
        With any ``"auto"``: each candidate's ``sigma``, ``fraction`` and
        training ``corloc``, in the order tried.
    map_shape_ : tuple of int
        Shape the flattened maps are read as.
    n_features_in_ : int
        Number of features (map pixels) seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import HeuristicBoxEstimator
    >>> maps = np.zeros((1, 10, 10))
    >>> maps[0, 2:5, 6:9] = 1.0
    >>> est = HeuristicBoxEstimator(sigma=0, top_fraction=0.09).fit(maps.reshape(1, -1))
    >>> est.predict(maps.reshape(1, -1))
    array([[0.6, 0.2, 0.9, 0.5]])

    With the defaults, the smoothing and the fraction are chosen on
    training boxes:

    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((20, 10, 10)) * 0.1
    >>> maps[:, 2:6, 3:8] += 1.0
    >>> boxes = np.tile([0.3, 0.2, 0.8, 0.6], (20, 1))
    >>> est = HeuristicBoxEstimator().fit(maps.reshape(20, -1), boxes)
    >>> est.score(maps.reshape(20, -1), boxes)
    100.0
    """

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "top_fraction": [Interval(Real, 0, 1, closed="right"), StrOptions({"auto"})],
        "map_shape": [tuple, list, None],
        "region": [StrOptions({"all", "largest"})],
        "max_fraction": [Interval(Real, 0, 1, closed="right"), StrOptions({"auto"}), None],
        "iou_threshold": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(self, sigma="auto", top_fraction="auto", map_shape=None, region="all",
                 max_fraction=None, iou_threshold=0.5):
        self.sigma = sigma
        self.top_fraction = top_fraction
        self.map_shape = map_shape
        self.region = region
        self.max_fraction = max_fraction
        self.iou_threshold = iou_threshold

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Read the map shape and choose what is left to ``"auto"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height * width)
            Flattened maps.
        y : array-like of shape (n_samples, 4), optional
            Training boxes; needed when a parameter is ``"auto"``.

        Returns
        -------
        self : HeuristicBoxEstimator
        """
        X = validate_data(self, X, reset=True)
        if y is None and self._chooses():
            # The wording scikit-learn's checks recognise, then what to do.
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "'auto' parameters are chosen by CorLoc on training boxes. Pass numbers "
                "(the paper: sigma=20, top_fraction=0.2 on 224x224 maps) to fit without boxes."
            )
        boxes = None if y is None else check_boxes(y)
        if boxes is not None and len(boxes) != len(X):
            raise ValueError(f"X has {len(X)} maps but y has {len(boxes)} boxes.")
        self.map_shape_ = _map_shape(self.map_shape, X.shape[1])
        sigmas = self._sigma_candidates()
        fractions = self._fraction_candidates()
        if not self._chooses():
            self.sigma_, self.fraction_ = sigmas[0], fractions[0]
            return self
        hits = np.zeros((len(sigmas), len(fractions)))
        for start in range(0, len(X), _CHUNK):
            maps = X[start : start + _CHUNK].reshape(-1, *self.map_shape_)
            truth = boxes[start : start + _CHUNK]
            for i, sigma in enumerate(sigmas):
                smoothed = _smooth(maps, sigma)
                for j, value in enumerate(fractions):
                    predicted = self._boxes(smoothed, value)
                    hits[i, j] += np.count_nonzero(
                        box_iou(truth, predicted) > self.iou_threshold
                    )
        scores = 100.0 * hits / len(X)
        self.grid_scores_ = [
            {"sigma": sigma, "fraction": value, "corloc": float(scores[i, j])}
            for i, sigma in enumerate(sigmas)
            for j, value in enumerate(fractions)
        ]
        best_sigma, best_fraction = np.unravel_index(np.argmax(scores), scores.shape)
        self.sigma_, self.fraction_ = sigmas[best_sigma], fractions[best_fraction]
        return self

    def predict(self, X):
        """Boxes around the strongest pixels of each smoothed map.

        Parameters
        ----------
        X : array-like of shape (n_samples, height * width)

        Returns
        -------
        boxes : ndarray of shape (n_samples, 4)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return np.concatenate([
            self._boxes(_smooth(X[s : s + _CHUNK].reshape(-1, *self.map_shape_), self.sigma_),
                        self.fraction_)
            for s in range(0, len(X), _CHUNK)
        ])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        return tags

    def _chooses(self):
        fraction = self.top_fraction if self.max_fraction is None else self.max_fraction
        return "auto" in (self.sigma, fraction)

    def _sigma_candidates(self):
        if self.sigma != "auto":
            return [float(self.sigma)]
        return [fraction * max(self.map_shape_) for fraction in SIGMA_GRID]

    def _fraction_candidates(self):
        if self.max_fraction is None:
            value, grid = self.top_fraction, TOP_FRACTION_GRID
        else:
            value, grid = self.max_fraction, MAX_FRACTION_GRID
        return list(grid) if value == "auto" else [float(value)]

    def _boxes(self, maps, fraction):
        flat = maps.reshape(len(maps), -1)
        if self.max_fraction is None:
            n_kept = max(1, int(round(fraction * flat.shape[1])))
            thresholds = -np.partition(-flat, n_kept - 1, axis=1)[:, n_kept - 1]
        else:
            thresholds = fraction * flat.max(axis=1)
        kept = maps >= thresholds[:, None, None]
        if self.region == "largest":
            kept = np.array([_largest_region(mask) for mask in kept])
        return _enclosing_boxes(kept)


def _smooth(maps, sigma):
    maps = np.asarray(maps, dtype=np.float64)
    if sigma <= 0:
        return maps
    return ndimage.gaussian_filter(maps, sigma=(0, sigma, sigma), mode="nearest")


def _largest_region(mask):
    labels, n_regions = ndimage.label(mask)
    if n_regions <= 1:
        return mask
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def _enclosing_boxes(masks):
    """The smallest box around the true pixels of each (n, H, W) mask; none is empty."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    height, width = masks.shape[1:]
    # Pixel i covers [i, i + 1) of the map, hence the far side's + 1.
    return np.stack([
        cols.argmax(axis=1) / width,
        rows.argmax(axis=1) / height,
        (width - cols[:, ::-1].argmax(axis=1)) / width,
        (height - rows[:, ::-1].argmax(axis=1)) / height,
    ], axis=1)


class CenterBoxBaseline(BoxEstimatorMixin, RegressorMixin, BaseEstimator):
    """The paper's baseline: a centered box of the average training size.

    ``X`` is only counted, so it can be images, paths or maps.

    Attributes
    ----------
    box_ : ndarray of shape (4,)
        The box predicted for every image.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import CenterBoxBaseline
    >>> boxes = [[0.0, 0.0, 0.4, 0.6], [0.5, 0.2, 0.9, 0.8]]
    >>> CenterBoxBaseline().fit(np.zeros((2, 1)), boxes).box_
    array([0.3, 0.2, 0.7, 0.8])
    """

    _parameter_constraints = {}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Learn the mean box width and height.

        Parameters
        ----------
        X : array-like or list of n_samples items
            Ignored except for its length.
        y : array-like of shape (n_samples, 4)

        Returns
        -------
        self : CenterBoxBaseline
        """
        boxes = check_boxes(y)
        if _count(X) != len(boxes):
            raise ValueError(f"X has {_count(X)} samples but y has {len(boxes)} boxes.")
        half = (boxes[:, 2:] - boxes[:, :2]).mean(axis=0) / 2
        self.box_ = np.concatenate([0.5 - half, 0.5 + half])
        return self

    def predict(self, X):
        """The centered box, once per sample of ``X``.

        Parameters
        ----------
        X : array-like or list of n_samples items

        Returns
        -------
        boxes : ndarray of shape (n_samples, 4)
        """
        check_is_fitted(self)
        return np.tile(self.box_, (_count(X), 1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Like DummyRegressor: X is only counted, so any content is accepted.
        tags.input_tags = replace(tags.input_tags, allow_nan=True, sparse=True, three_d_array=True)
        return tags


def _count(X):
    """The number of samples in ``X``: its first axis, or its length."""
    shape = getattr(X, "shape", None)
    if shape is None and not hasattr(X, "__len__") and hasattr(X, "__array__"):
        shape = np.asarray(X).shape
    if shape:
        return int(shape[0])
    if not hasattr(X, "__len__") or isinstance(X, str):
        raise TypeError(
            f"X must be a sequence or an array of samples; got {type(X).__name__}."
        )
    return len(X)


def _map_shape(map_shape, n_features):
    if map_shape is not None:
        shape = tuple(map_shape)
        if len(shape) != 2 or shape[0] * shape[1] != n_features:
            raise ValueError(
                f"map_shape={map_shape!r} does not match the {n_features} features of X."
            )
        return shape
    side = math.isqrt(n_features)
    if side * side != n_features:
        raise ValueError(
            f"X has {n_features} features, which is not a square map; set map_shape=(height, width)."
        )
    return side, side
