"""A score per predicted box: the estimated probability that it is right, from its map.

A box is right when its IoU with a true box exceeds 0.5. What predicts that
was measured on genuine photos (``benchmarks/box_score.py``, see
:ref:`box_score`): how large the box is (large objects are the easy ones),
how much of the map lies inside it, how diffuse the map is, how far the map's
centre of mass lies from the box's centre, and how many of its sides touch
the photo's border. No one of them ranks the boxes of every box estimator
(the heuristic's box encloses the map's strongest pixels by construction, so
the mass inside it says little), so a logistic regression of the five,
fitted on out-of-fold predictions of the training photos, weighs them for
each fitted localizer, and its output is an estimated probability.

The classifier's own confidence (its top class probability and the entropy of
its probabilities) ranks boxes better still, but needs the classifier's
output, one forward pass more per photo than the map; it is an option
(``class_probabilities=``), not the default.

Every feature reads the map rescaled to ``[0, 1]`` by its own minimum and
maximum, so the score does not depend on the transformer's ``normalize``.
"""

import json
import math
from numbers import Real

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, _fit_context
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .._metrics._boxes import check_boxes

#: The features :func:`box_score_features` returns, in column order.
BOX_SCORE_FEATURES = ("log_area", "mass_inside", "map_mean", "centroid_offset", "border_sides")
#: The columns it adds when given the classifier's class probabilities.
CONFIDENCE_FEATURES = ("top_probability", "probability_entropy")
#: Rows of class probabilities may sum to 1 within this.
PROBABILITY_TOLERANCE = 1e-3
#: A box side this close to the photo's border (a fraction of its side) touches it.
BORDER = 0.02
#: Version of :meth:`BoxScorer.to_dict`'s layout; a dict of another version is refused.
FORMAT = 1


def box_score_features(maps, boxes, map_shape=None, class_probabilities=None):
    """What the box score is computed from, per map and its predicted box.

    Parameters
    ----------
    maps : array-like of shape (n, height * width)
        Flattened sensitivity maps, as the box estimator received them.
    boxes : array-like of shape (n, 4)
        The predicted boxes ``(xmin, ymin, xmax, ymax)`` as fractions of the
        image width and height.
    map_shape : tuple (height, width) or None, default=None
        Shape of one map; None reads square maps.
    class_probabilities : array-like of shape (n, n_classes) or None, default=None
        The classifier's class probabilities for each photo (rows summing to
        1; for logits, ``scipy.special.softmax(logits, axis=1)``). Given,
        two columns are added: ``top_probability``, the top probability,
        and ``probability_entropy``, the entropy of the probabilities in nats.

    Returns
    -------
    features : ndarray of shape (n, 5), or (n, 7) with ``class_probabilities``
        Columns, in this order:

        - ``log_area``: log of the box's share of the image (at least one
          map pixel's);
        - ``mass_inside``: share of the square-rooted map's mass that lies
          inside the box (partly covered pixels count in part);
        - ``map_mean``: mean of the map rescaled to ``[0, 1]``: high for a
          diffuse map, low for a few bright pixels;
        - ``centroid_offset``: distance from the box's centre to the centre
          of mass of the square-rooted map, in box widths and heights;
        - ``border_sides``: how many of the box's sides lie within
          0.02 (2% of the image's side) of its border (0 to 4).

        A constant map (all zeros, say) carries no information: its mass
        counts as spread evenly, so its ``mass_inside`` is the box's area,
        its ``map_mean`` 0 and its centre of mass the image's centre.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import box_score_features
    >>> maps = np.zeros((1, 4, 4))
    >>> maps[0, :2, :2] = 1.0
    >>> box_score_features(maps.reshape(1, -1), [[0, 0, 0.5, 0.5]]).round(3)
    array([[-1.386,  1.   ,  0.25 ,  0.   ,  2.   ]])
    """
    maps = _check_maps(maps)
    boxes = check_boxes(boxes, name="boxes")
    if len(boxes) != len(maps):
        raise ValueError(f"maps has {len(maps)} rows but boxes has {len(boxes)} boxes.")
    height, width = _resolve_shape(map_shape, maps.shape[1])
    low = maps.min(axis=1, keepdims=True)
    spread = maps.max(axis=1, keepdims=True) - low
    rescaled = np.divide(maps - low, spread, out=np.zeros_like(maps), where=spread > 0)
    mass = np.sqrt(rescaled).reshape(-1, height, width)
    total = mass.sum(axis=(1, 2))
    # A map without mass is read as an even spread: it says nothing about the box.
    mass[total == 0] = 1.0
    mass /= mass.sum(axis=(1, 2), keepdims=True)

    sizes = boxes[:, 2:] - boxes[:, :2]
    cover_rows = _coverage(boxes[:, 1], boxes[:, 3], height)
    cover_cols = _coverage(boxes[:, 0], boxes[:, 2], width)
    inside = np.einsum("nh,nhw,nw->n", cover_rows, mass, cover_cols)
    row_centres = (np.arange(height) + 0.5) / height
    col_centres = (np.arange(width) + 0.5) / width
    mass_centre = np.stack([mass.sum(axis=1) @ col_centres, mass.sum(axis=2) @ row_centres], 1)
    # A box thinner than a map pixel is measured in map pixels.
    units = np.maximum(sizes, [1 / width, 1 / height])
    offset = np.hypot(*((mass_centre - (boxes[:, :2] + boxes[:, 2:]) / 2) / units).T)
    area = np.maximum(sizes.prod(axis=1), 1 / (height * width))
    border = (boxes[:, :2] <= BORDER).sum(axis=1) + (boxes[:, 2:] >= 1 - BORDER).sum(axis=1)
    columns = [np.log(area), inside, rescaled.mean(axis=1), offset, border]
    if class_probabilities is not None:
        probabilities = _check_probabilities(class_probabilities, len(maps))
        logs = np.log(probabilities, out=np.zeros_like(probabilities), where=probabilities > 0)
        columns += [probabilities.max(axis=1), -(probabilities * logs).sum(axis=1)]
    return np.column_stack(columns)


def box_scores(maps, boxes, coef, intercept, map_shape=None, class_probabilities=None):
    """The estimated probability that each predicted box is right.

    The logistic function of ``features @ coef + intercept``, with the
    features of :func:`box_score_features`; ``coef`` and ``intercept`` are a
    fitted :class:`BoxScorer`'s.

    Parameters
    ----------
    maps : array-like of shape (n, height * width)
        Flattened sensitivity maps, as the box estimator received them.
    boxes : array-like of shape (n, 4)
        The boxes predicted from them, as fractions.
    coef : array-like of shape (5,) or (7,)
        Weight of each column of :func:`box_score_features` (the 7 with
        class probabilities), on the features as they are.
    intercept : float
    map_shape : tuple (height, width) or None, default=None
        Shape of one map; None reads square maps.
    class_probabilities : array-like of shape (n, n_classes) or None, default=None
        The classifier's class probabilities for each photo; needed, and
        only allowed, with 7 weights.

    Returns
    -------
    scores : ndarray of shape (n,)
        Values in ``[0, 1]``; higher means more likely right (IoU > 0.5
        with a true box).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import box_scores
    >>> maps = np.zeros((2, 4, 4))
    >>> maps[:, :2, :2] = 1.0
    >>> boxes = [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]
    >>> box_scores(maps.reshape(2, -1), boxes, [0, 4, 0, 0, 0], -2).round(3)
    array([0.881, 0.119])
    """
    coef = np.asarray(coef, dtype=np.float64)
    names = _feature_names(class_probabilities is not None)
    if coef.shape != (len(names),):
        raise ValueError(
            f"coef must hold {len(names)} weights, one per feature {names}"
            + (" (with class_probabilities)" if class_probabilities is not None else "")
            + f"; got shape {coef.shape}."
        )
    try:
        intercept = float(intercept)
    except (TypeError, ValueError):
        raise ValueError(f"intercept must be a number; got {intercept!r}.") from None
    if not (np.isfinite(coef).all() and np.isfinite(intercept)):
        raise ValueError("coef and intercept must be finite numbers.")
    features = box_score_features(maps, boxes, map_shape, class_probabilities)
    return expit(features @ coef + intercept)


class BoxScorer(BaseEstimator):
    """Learns the box score: the probability that a box is right, from its map.

    A logistic regression of :func:`box_score_features` on whether each box
    was right. Fit it on boxes the localizer predicted for training photos it
    did not see, *out of fold* (e.g. ``cross_val_predict`` with 5 folds):
    boxes predicted for the photos a box estimator was fitted on are better
    than its boxes for new photos, and would teach the score to trust too
    much.

    The fitted model is one weight per feature and an intercept on the
    features as they are (the standardization used while fitting folded
    in), so :func:`box_scores` computes it and :meth:`to_dict` saves it as
    plain JSON. Fitted with the classifier's ``class_probabilities``, it
    needs them for every photo it scores.

    Parameters
    ----------
    C : float, default=1.0
        Inverse strength of the L2 penalty, on standardized features (as
        :class:`~sklearn.linear_model.LogisticRegression`).
    map_shape : tuple (height, width) or None, default=None
        Shape of one map; None reads square maps.

    Attributes
    ----------
    coef_ : ndarray of shape (n_score_features,)
        Weight of each of ``features_``.
    features_ : tuple of str
        Names of the columns of :func:`box_score_features` it weighs: the
        five from the map and the box, and the two of the classifier's
        confidence when fitted with class probabilities.
    intercept_ : float
    map_shape_ : tuple of int
        Shape the flattened maps are read as.
    n_features_in_ : int
        Number of map pixels seen during fit.
    base_rate_ : float
        Share of right boxes among the training boxes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import BoxScorer
    >>> rng = np.random.default_rng(0)
    >>> maps = rng.random((40, 8, 8)) * 0.1
    >>> maps[:, 2:6, 2:6] += 1.0
    >>> boxes = np.tile([0.25, 0.25, 0.75, 0.75], (40, 1))
    >>> boxes[20:] = [0.0, 0.0, 0.25, 0.25]
    >>> hits = np.arange(40) < 20
    >>> scorer = BoxScorer().fit(maps.reshape(40, -1), boxes, hits)
    >>> scores = scorer.score_boxes(maps.reshape(40, -1), boxes)
    >>> bool(scores[:20].min() > scores[20:].max())
    True
    >>> restored = BoxScorer.from_dict(scorer.to_dict())
    >>> bool(np.allclose(restored.score_boxes(maps.reshape(40, -1), boxes), scores))
    True
    """

    _parameter_constraints = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "map_shape": [tuple, list, None],
    }

    def __init__(self, C=1.0, map_shape=None):
        self.C = C
        self.map_shape = map_shape

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, boxes, hits, class_probabilities=None):
        """Fit the score on out-of-fold boxes and whether each was right.

        Parameters
        ----------
        X : array-like of shape (n, height * width)
            Flattened maps of training photos.
        boxes : array-like of shape (n, 4)
            The box predicted for each, by an estimator not fitted on it.
        hits : array-like of shape (n,), bool
            Whether each box was right (:func:`correct_localizations`).
        class_probabilities : array-like of shape (n, n_classes) or None, default=None
            The classifier's class probabilities for each photo, to weigh its
            confidence too.

        Returns
        -------
        self : BoxScorer
        """
        X = validate_data(self, X, reset=True, dtype=np.float64)
        hits = np.asarray(hits)
        if hits.shape != (len(X),):
            raise ValueError(
                f"hits must hold one value per map ({len(X)}); got shape {hits.shape}."
            )
        bad = ~np.isin(hits, [0, 1])
        if bad.any():
            raise ValueError(
                f"hits must be True or False (or 1 or 0) per box; got {hits[bad][0].item()!r}."
            )
        hits = hits.astype(bool)
        if hits.all() or not hits.any():
            raise ValueError(
                "hits must hold both right and wrong boxes to learn what tells them apart; "
                f"all {len(hits)} are {'right' if hits.all() else 'wrong'}."
            )
        self.map_shape_ = _resolve_shape(self.map_shape, X.shape[1])
        features = box_score_features(X, boxes, self.map_shape_, class_probabilities)
        self.features_ = _feature_names(class_probabilities is not None)
        scaler = StandardScaler().fit(features)
        model = LogisticRegression(C=self.C).fit(scaler.transform(features), hits)
        self.coef_ = model.coef_[0] / scaler.scale_
        self.intercept_ = float(model.intercept_[0] - self.coef_ @ scaler.mean_)
        self.base_rate_ = float(hits.mean())
        return self

    def score_boxes(self, X, boxes, class_probabilities=None):
        """The estimated probability that each box is right.

        Parameters
        ----------
        X : array-like of shape (n, height * width)
            Flattened maps.
        boxes : array-like of shape (n, 4)
            The boxes predicted from them.
        class_probabilities : array-like of shape (n, n_classes) or None, default=None
            The classifier's class probabilities; needed when fitted with them.

        Returns
        -------
        scores : ndarray of shape (n,)
            Values in ``[0, 1]``.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        fitted_with = len(self.features_) > len(BOX_SCORE_FEATURES)
        if fitted_with != (class_probabilities is not None):
            raise ValueError(
                "This BoxScorer was fitted with class_probabilities: pass the classifier's "
                "class probabilities for these photos too." if fitted_with else
                "This BoxScorer was fitted on maps and boxes alone: do not pass class_probabilities."
            )
        return box_scores(X, boxes, self.coef_, self.intercept_, self.map_shape_,
                          class_probabilities)

    def to_dict(self):
        """The fitted score as a JSON-serializable dict (no pickle needed).

        Returns
        -------
        state : dict
            ``format``, ``features``, ``coef``, ``intercept``, ``map_shape``,
            ``base_rate`` and ``C``; :meth:`from_dict` reads it back.
        """
        check_is_fitted(self)
        return {
            "format": FORMAT, "features": list(self.features_), "coef": self.coef_.tolist(),
            "intercept": self.intercept_, "map_shape": list(self.map_shape_),
            "base_rate": self.base_rate_, "C": self.C,
        }

    @classmethod
    def from_dict(cls, state):
        """A fitted :class:`BoxScorer` from :meth:`to_dict`'s dict (or its JSON text).

        Parameters
        ----------
        state : dict or str

        Returns
        -------
        scorer : BoxScorer
        """
        if isinstance(state, str):
            state = json.loads(state)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"Not a box score of format {FORMAT} (found {found!r}): fit the localizer again "
                "with this version of sklearn-sensloc."
            )
        features = tuple(state.get("features", ()))
        if features not in (_feature_names(False), _feature_names(True)):
            raise ValueError(
                f"The box score was fitted on features {state.get('features')!r}; this version "
                f"computes {list(_feature_names(True))}: fit the localizer again."
            )
        try:
            height, width = (int(side) for side in state["map_shape"])
            scorer = cls(C=float(state["C"]), map_shape=(height, width))
            scorer.coef_ = np.array(state["coef"], dtype=np.float64)
            scorer.intercept_ = float(state["intercept"])
            scorer.base_rate_ = float(state["base_rate"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"The box score's dict is incomplete or malformed: {error!r}.") from None
        if height < 1 or width < 1 or scorer.coef_.shape != (len(features),) or not (
            np.isfinite(scorer.coef_).all() and np.isfinite(scorer.intercept_)
        ):
            raise ValueError(
                "The box score's dict holds an invalid map shape or non-finite or missing weights."
            )
        scorer.features_ = features
        scorer.map_shape_ = (height, width)
        scorer.n_features_in_ = height * width
        return scorer


def _check_maps(maps):
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 2 or maps.shape[0] == 0 or maps.shape[1] == 0:
        raise ValueError(
            f"maps must be a non-empty array of flattened maps (n, height * width); got shape "
            f"{maps.shape}."
        )
    bad = ~np.isfinite(maps).all(axis=1)
    if bad.any():
        raise ValueError(f"Map {np.flatnonzero(bad)[0]} contains NaN or inf.")
    return maps


def _feature_names(with_confidence):
    return BOX_SCORE_FEATURES + CONFIDENCE_FEATURES if with_confidence else BOX_SCORE_FEATURES


def _check_probabilities(probabilities, n_maps):
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != n_maps or probabilities.shape[1] < 2:
        raise ValueError(
            f"class_probabilities must hold one row of at least 2 class probabilities per map "
            f"({n_maps}); got shape {probabilities.shape}."
        )
    sums = probabilities.sum(axis=1)
    bad = ~(np.isfinite(probabilities).all(axis=1) & (probabilities >= 0).all(axis=1)
            & (np.abs(sums - 1) <= PROBABILITY_TOLERANCE))
    if bad.any():
        raise ValueError(
            f"Row {np.flatnonzero(bad)[0]} of class_probabilities is not probabilities (non-negative,"
            " summing to 1); for logits pass scipy.special.softmax(logits, axis=1)."
        )
    return probabilities


def _resolve_shape(map_shape, n_pixels):
    if map_shape is None:
        side = math.isqrt(n_pixels)
        map_shape = (side, side)
        if side * side != n_pixels:
            raise ValueError(
                f"The maps have {n_pixels} pixels, not a square number: pass map_shape=(height, width)."
            )
    if len(map_shape) != 2 or int(map_shape[0]) * int(map_shape[1]) != n_pixels:
        raise ValueError(f"map_shape={tuple(map_shape)!r} does not match maps of {n_pixels} pixels.")
    return int(map_shape[0]), int(map_shape[1])


def _coverage(low, high, n_cells):
    """Share of each of ``n_cells`` equal cells of [0, 1] that lies in [low, high], per row."""
    edges = np.arange(n_cells + 1) / n_cells
    overlap = np.minimum(edges[1:], high[:, None]) - np.maximum(edges[:-1], low[:, None])
    return np.clip(overlap, 0, None) * n_cells


def fit_box_scorer(pipeline, X, y, *, cv=5, random_state=0):
    """The box score of a fitted localizer, learned on labelled photos.

    The pipeline's box estimator is fitted again on ``cv`` folds of the
    photos' maps, each fold's boxes predicted by the estimator fitted on the
    others (as on new photos); whether each of these boxes is right teaches
    a :class:`BoxScorer`. Pass it to :func:`save_localizer` or
    :func:`predict_photos` (``box_scorer=``); ``sensloc fit`` does this itself.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        A fitted :class:`SensitivityTransformer` and box estimator.
    X : array of shape (n, H, W, 3) or list of paths
        Labelled photos, e.g. the training photos.
    y : array-like of shape (n, 4)
        Their boxes, as fractions of width and height.
    cv : int, default=5
        Folds.
    random_state : int, default=0
        Seed of the folds' shuffle.

    Returns
    -------
    scorer : BoxScorer

    Examples
    --------
    >>> from sklearn_sensloc import fit_box_scorer, save_localizer
    >>> scorer = fit_box_scorer(pipe, X_train, boxes_train)  # doctest: +SKIP
    >>> save_localizer(pipe, "my.sensloc", box_scorer=scorer)  # doctest: +SKIP
    """
    transformer, estimator = pipeline.steps[0][1], pipeline.steps[-1][1]
    return box_scorer_from_maps(estimator, transformer.transform(X), y,
                                map_shape=transformer.map_shape_, cv=cv,
                                random_state=random_state)


def box_scorer_from_maps(estimator, maps, boxes, *, map_shape, cv=5, random_state=0):
    """:func:`fit_box_scorer` on maps already computed, with ``estimator`` as the box estimator."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, cross_val_predict

    from .._metrics._corloc import correct_localizations

    boxes = check_boxes(boxes)
    if len(boxes) < 2 * cv:
        raise ValueError(
            f"{len(boxes)} photos are too few to learn a box score from {cv} folds; it needs "
            f"at least {2 * cv}."
        )
    folds = KFold(cv, shuffle=True, random_state=random_state)
    predicted = cross_val_predict(clone(estimator), maps, boxes, cv=folds)
    hits = correct_localizations(boxes, predicted)
    return BoxScorer(map_shape=map_shape).fit(maps, predicted, hits)
