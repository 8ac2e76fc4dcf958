"""CorLoc: the share of images whose predicted box overlaps a true box enough."""

import numpy as np

from ._boxes import box_iou, check_box_sets, check_boxes


def corloc_score(y_true, y_pred, iou_threshold=0.5, sample_weight=None):
    """Correct localization (CorLoc), in percent.

    An image counts as correctly localized when its predicted box has an
    intersection over union *strictly greater* than ``iou_threshold`` with its
    ground-truth box, or with any of them when an image has several.

    Parameters
    ----------
    y_true : array-like of shape (n, 4), or list of n arrays of shape (k_i, 4)
        Ground truth boxes ``(xmin, ymin, xmax, ymax)`` as fractions of the
        image size. A list gives several boxes per image (every object of the
        image); a prediction is correct if it matches any of them.
    y_pred : array-like of shape (n, 4)
        One predicted box per image.
    iou_threshold : float, default=0.5
        The IoU a prediction must exceed. The rule is ``IoU > threshold``, as
        in the paper; an IoU of exactly 0.5 is *not* a hit (wsolevaluation
        uses ``>=``).
    sample_weight : array-like of shape (n,), default=None
        Non-negative weight of each image: CorLoc is then the weighted share
        of correctly localized images. None weighs every image equally.

    Returns
    -------
    corloc : float
        Percentage of correctly localized images (by weight), in ``[0, 100]``.

    Examples
    --------
    >>> from sklearn_sensloc import corloc_score
    >>> truth = [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]
    >>> pred = [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]]
    >>> corloc_score(truth, pred)
    50.0
    >>> corloc_score(truth, pred, sample_weight=[3, 1])
    75.0
    """
    hits = correct_localizations(y_true, y_pred, iou_threshold)
    if sample_weight is None:
        return float(100.0 * hits.mean())
    return float(100.0 * np.average(hits, weights=_check_weights(sample_weight, len(hits))))


def _check_weights(sample_weight, n_images):
    """``sample_weight`` as a float array of ``n_images`` non-negative weights of positive sum."""
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"sample_weight must be numbers, one per image ({error}).") from None
    if weights.ndim != 1 or len(weights) != n_images:
        raise ValueError(
            f"sample_weight must hold one weight per image: {n_images} images, "
            f"got shape {weights.shape}."
        )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if n_images and not weights.sum() > 0:
        raise ValueError("sample_weight sums to zero: no image would count.")
    return weights


def corloc_interval(hits, confidence=0.95):
    """Wilson score interval of a CorLoc, in percent.

    CorLoc is a binomial proportion: with few test images (a small class) it
    is uncertain by many points, which this interval shows. Wilson's interval
    stays inside ``[0, 100]`` and behaves at 0 and 100 %, unlike the normal
    approximation.

    Parameters
    ----------
    hits : array-like of bool, shape (n,)
        Per image, whether it is correctly localized: from boxes, this is
        ``correct_localizations(y_true, y_pred)``. Boxes themselves are refused
        with an error that says so.
    confidence : float, default=0.95
        Coverage of the interval.

    Returns
    -------
    low, high : float
        Bounds in percent; ``(nan, nan)`` for no image.

    Examples
    --------
    >>> from sklearn_sensloc import corloc_interval
    >>> low, high = corloc_interval([True] * 8 + [False] * 2)
    >>> round(low, 1), round(high, 1)
    (49.0, 94.3)
    """
    from scipy.stats import norm

    hits = _check_hits(hits, confidence)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}.")
    n = len(hits)
    if n == 0:
        return float("nan"), float("nan")
    z = norm.ppf(0.5 + confidence / 2)
    p = hits.mean()
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return float(100 * max(0.0, centre - half)), float(100 * min(1.0, centre + half))


def _check_hits(hits, confidence):
    """``hits`` as a 1-D bool array; boxes in their place get a sentence, not a numpy error."""
    boxes_hint = (
        "corloc_interval takes per-image hits (True/False), not boxes: pass "
        "correct_localizations(y_true, y_pred) as its first argument"
    )
    if np.ndim(confidence) != 0:
        raise ValueError(f"{boxes_hint}; its second argument is the confidence, a number.")
    try:
        values = np.asarray(hits)
    except ValueError:
        raise ValueError(f"{boxes_hint}; got a ragged list.") from None
    if values.ndim == 2 and values.shape[1] == 4:
        raise ValueError(f"{boxes_hint}; got an array of shape {values.shape}.")
    if values.ndim > 1:
        raise ValueError(
            f"hits must hold one True/False per image (1-D); got shape {values.shape}."
        )
    if values.dtype != bool and values.size and not np.isin(values, (0, 1)).all():
        raise ValueError(f"{boxes_hint}; got values other than 0 and 1.")
    return values.astype(bool)


def correct_localizations(y_true, y_pred, iou_threshold=0.5):
    """Per image, whether the prediction is a correct localization.

    CorLoc is the mean of this array (in percent); the array itself gives
    intervals (:func:`corloc_interval`) and paired comparisons of methods.

    Parameters
    ----------
    y_true : array-like of shape (n, 4), or list of (k_i, 4) arrays
        True boxes; a prediction may match any box of its image.
    y_pred : array-like of shape (n, 4)
        One predicted box per image.
    iou_threshold : float, default=0.5
        A hit needs an IoU strictly greater than this.

    Returns
    -------
    hits : ndarray of shape (n,), bool

    Examples
    --------
    >>> from sklearn_sensloc import correct_localizations
    >>> correct_localizations([[0, 0, 1, 1], [0, 0, 0.5, 0.5]], [[0, 0, 1, 0.8], [0.5, 0.5, 1, 1]])
    array([ True, False])
    """
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold must be in [0, 1); got {iou_threshold!r}.")
    truth = check_box_sets(y_true, name="y_true")
    pred = check_boxes(y_pred, name="y_pred")
    if len(truth) != len(pred):
        raise ValueError(
            f"y_true has {len(truth)} images but y_pred has {len(pred)} boxes."
        )
    # Every (true box, its image's prediction) pair in one call: a search
    # scores thousands of images, one call each would cost more than the IoUs.
    counts = np.array([len(boxes) for boxes in truth])
    ious = box_iou(np.concatenate(truth), np.repeat(pred, counts, axis=0))
    best = np.maximum.reduceat(ious, np.concatenate([[0], np.cumsum(counts)[:-1]]))
    return best > iou_threshold


class CorLocScorer:
    """Scorer for ``scoring=`` in ``GridSearchCV`` and ``cross_val_score``.

    ``scorer(estimator, X, y)`` predicts boxes for ``X`` and returns their
    CorLoc against ``y`` in percent (greater is better).

    Parameters
    ----------
    iou_threshold : float, default=0.5
        A prediction is correct when its IoU with a true box is strictly
        greater than this.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn_sensloc import CenterBoxBaseline, CorLocScorer
    >>> X = np.zeros((6, 2))
    >>> y = np.tile([0.2, 0.2, 0.8, 0.8], (6, 1))
    >>> cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=CorLocScorer())
    array([100., 100., 100.])
    """

    def __init__(self, iou_threshold=0.5):
        self.iou_threshold = iou_threshold

    def __call__(self, estimator, X, y, sample_weight=None):
        return corloc_score(y, estimator.predict(X), self.iou_threshold, sample_weight)

    def __repr__(self):
        return f"CorLocScorer(iou_threshold={self.iou_threshold!r})"
