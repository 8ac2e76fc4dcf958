"""Training-free boxes: the paper's heuristic and its center-box baseline."""

import math
from numbers import Real

import numpy as np
from scipy import ndimage
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from ._base import BoxEstimatorMixin
from ._boxes import check_boxes


class HeuristicBoxEstimator(BoxEstimatorMixin, RegressorMixin, BaseEstimator):
    """Boxes from maps without training: smooth, keep the top pixels, enclose them.

    Each map is smoothed with a Gaussian of standard deviation ``sigma``, the
    ``top_fraction`` of its pixels with the highest values are kept, and the
    box is the smallest one containing them (or, with ``region="largest"``,
    containing the largest connected region of them).

    Parameters
    ----------
    sigma : float, default=20
        Standard deviation of the Gaussian smoothing, in map pixels. The paper
        sweeps it on full-resolution 224x224 maps (``pool=1``); for maps
        pooled by ``p`` divide it by ``p``. 0 disables smoothing.
    top_fraction : float, default=0.2
        Fraction of map pixels kept.
    map_shape : tuple (height, width) or None, default=None
        Shape of one map. None assumes square maps and takes the side from the
        number of features.
    region : {"all", "largest"}, default="all"
        Enclose all kept pixels (the paper) or only the largest connected
        region of them.

    Attributes
    ----------
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
    """

    _parameter_constraints = {
        "sigma": [Interval(Real, 0, None, closed="left")],
        "top_fraction": [Interval(Real, 0, 1, closed="right")],
        "map_shape": [tuple, list, None],
        "region": [StrOptions({"all", "largest"})],
    }

    def __init__(self, sigma=20, top_fraction=0.2, map_shape=None, region="all"):
        self.sigma = sigma
        self.top_fraction = top_fraction
        self.map_shape = map_shape
        self.region = region

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the map shape; nothing is learned.

        Parameters
        ----------
        X : array-like of shape (n_samples, height * width)
            Flattened maps.
        y : array-like of shape (n_samples, 4), optional
            Checked as boxes when given, otherwise unused.

        Returns
        -------
        self : HeuristicBoxEstimator
        """
        X = validate_data(self, X, reset=True)
        if y is not None:
            check_boxes(y)
        self.map_shape_ = _map_shape(self.map_shape, X.shape[1])
        return self

    def predict(self, X):
        """Boxes enclosing the top pixels of each smoothed map.

        Parameters
        ----------
        X : array-like of shape (n_samples, height * width)

        Returns
        -------
        boxes : ndarray of shape (n_samples, 4)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        maps = X.reshape(len(X), *self.map_shape_)
        if self.sigma > 0:
            maps = ndimage.gaussian_filter(maps, sigma=(0, self.sigma, self.sigma), mode="nearest")
        height, width = self.map_shape_
        n_kept = max(1, int(round(self.top_fraction * height * width)))
        flat = maps.reshape(len(maps), -1)
        thresholds = -np.partition(-flat, n_kept - 1, axis=1)[:, n_kept - 1]
        kept = maps >= thresholds[:, None, None]
        return np.array([self._enclose(mask) for mask in kept])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.requires_fit = True
        return tags

    def _enclose(self, mask):
        if self.region == "largest":
            labels, n_regions = ndimage.label(mask)
            if n_regions > 1:
                sizes = np.bincount(labels.ravel())[1:]
                mask = labels == 1 + int(np.argmax(sizes))
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        height, width = mask.shape
        # Pixel i covers [i, i + 1) of the map, hence the + 1 on the far side.
        return np.array(
            [cols[0] / width, rows[0] / height, (cols[-1] + 1) / width, (rows[-1] + 1) / height]
        )


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
        if _num_samples(X) != len(boxes):
            raise ValueError(f"X has {_num_samples(X)} samples but y has {len(boxes)} boxes.")
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
        return np.tile(self.box_, (_num_samples(X), 1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Like DummyRegressor: X is only counted, so any content is accepted.
        tags.input_tags.allow_nan = True
        tags.input_tags.sparse = True
        tags.input_tags.three_d_array = True
        return tags


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
