"""BoxRegressor: the paper's linear map from a sensitivity map to its box."""

import math
from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.linear_model import SGDRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from ._base import BoxEstimatorMixin
from ._boxes import BOX_COLUMNS, check_boxes, to_valid_boxes

#: The paper's schedule: the learning rate is divided by 10 every 10,000 iterations.
PAPER_STEP_SIZE = 10_000


class BoxRegressor(BoxEstimatorMixin, RegressorMixin, BaseEstimator):
    """Linear regression from flattened maps to box coordinates, by SGD.

    Four :class:`~sklearn.linear_model.SGDRegressor` models, one per
    coordinate, are trained on mini-batches with ``partial_fit``. Predictions
    are turned into valid boxes: clipped to ``[0, 1]`` with ordered corners.

    Features are standardized and divided by the square root of their number,
    so every sample has a squared norm of about one; the per-sample SGD
    updates then converge for learning rates up to about 1 whatever the map
    size, and the paper's ``eta0=0.1`` works as is.

    Parameters
    ----------
    eta0 : float, default=0.1
        Initial learning rate.
    learning_rate : {"step", "constant", "invscaling", "adaptive"}, default="step"
        ``"step"``: the paper's schedule, ``eta0`` divided by ``decay`` every
        ``step_size`` iterations (mini-batches). The others are
        :class:`~sklearn.linear_model.SGDRegressor`'s schedules.
    step_size : int or "auto", default="auto"
        Iterations between two learning-rate drops. ``"auto"`` drops twice
        over a ``fit`` (three stages, as in the paper) and uses the paper's
        10,000 for ``partial_fit``.
    decay : float, default=10.0
        Factor of each drop.
    batch_size : int, default=2048
        Mini-batch size in ``fit``, as in the paper.
    max_iter : int, default=50
        Passes (epochs) over the data in ``fit``.
    alpha : float, default=1e-4
        L2 penalty of each SGDRegressor.
    average : bool, default=True
        Average the SGD weights (ASGD): the averaged solution is much closer to
        the least-squares one at no extra cost.
    scale_features : bool, default=True
        Standardize features as described above. ``fit`` uses all of ``X``;
        ``partial_fit`` uses its first mini-batch and keeps that scaling.
    shuffle : bool, default=True
        Shuffle the samples before each epoch of ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling and of the SGD models.

    Attributes
    ----------
    estimators_ : list of SGDRegressor
        One model per coordinate, in the order ``xmin, ymin, xmax, ymax``.
    scaler_ : StandardScaler or None
        The feature standardization.
    coef_ : ndarray of shape (4, n_features)
        Weights in the units of the input features.
    intercept_ : ndarray of shape (4,)
        Intercepts in the units of the input features.
    n_iter_ : int
        Mini-batch iterations done so far.
    n_features_in_ : int
        Number of features seen during fit.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import BoxRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 30))
    >>> boxes = np.sort(rng.random((200, 2, 2)), axis=1).transpose(0, 2, 1).reshape(200, 4)
    >>> boxes = boxes[:, [0, 2, 1, 3]]
    >>> reg = BoxRegressor(random_state=0).fit(X, boxes)
    >>> reg.predict(X[:2]).shape
    (2, 4)
    """

    _parameter_constraints = {
        "eta0": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"step", "constant", "invscaling", "adaptive"})],
        "step_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "decay": [Interval(Real, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "average": ["boolean"],
        "scale_features": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        eta0=0.1,
        learning_rate="step",
        step_size="auto",
        decay=10.0,
        batch_size=2048,
        max_iter=50,
        alpha=1e-4,
        average=True,
        scale_features=True,
        shuffle=True,
        random_state=None,
    ):
        self.eta0 = eta0
        self.learning_rate = learning_rate
        self.step_size = step_size
        self.decay = decay
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.average = average
        self.scale_features = scale_features
        self.shuffle = shuffle
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on all of ``X`` in mini-batches for ``max_iter`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Flattened sensitivity maps.
        y : array-like of shape (n_samples, 4)
            Boxes ``(xmin, ymin, xmax, ymax)`` as fractions of the image size.

        Returns
        -------
        self : BoxRegressor
        """
        X, y = self._check_data(X, y, reset=True)
        rng = check_random_state(self.random_state)
        batches_per_epoch = math.ceil(len(X) / self.batch_size)
        total = self.max_iter * batches_per_epoch
        step_size = max(1, math.ceil(total / 3)) if self.step_size == "auto" else self.step_size
        self._start(X, rng)
        for _ in range(self.max_iter):
            order = rng.permutation(len(X)) if self.shuffle else np.arange(len(X))
            for batch in gen_batches(len(X), self.batch_size):
                rows = order[batch]
                self._step(X[rows], y[rows], step_size)
        self._expose_coefficients()
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One SGD iteration on one mini-batch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, 4)

        Returns
        -------
        self : BoxRegressor
        """
        first = not hasattr(self, "estimators_")
        X, y = self._check_data(X, y, reset=first)
        if first:
            self._start(X, check_random_state(self.random_state))
        step_size = PAPER_STEP_SIZE if self.step_size == "auto" else self.step_size
        self._step(X, y, step_size)
        self._expose_coefficients()
        return self

    def predict(self, X):
        """Predicted boxes, valid: in ``[0, 1]`` with ``xmin <= xmax``, ``ymin <= ymax``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        boxes : ndarray of shape (n_samples, 4)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return to_valid_boxes(X @ self.coef_.T + self.intercept_)

    def _check_data(self, X, y, reset):
        # Boxes are checked before X so that a bad box is reported by its row.
        boxes = check_boxes(y)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        check_consistent_length(X, boxes)
        return X, boxes

    def _start(self, X, rng):
        self.scaler_ = StandardScaler().fit(X) if self.scale_features else None
        self._norm = 1.0 / math.sqrt(X.shape[1])
        schedule = "constant" if self.learning_rate == "step" else self.learning_rate
        self.estimators_ = [
            SGDRegressor(
                learning_rate=schedule,
                eta0=self.eta0,
                alpha=self.alpha,
                average=self.average,
                shuffle=False,
                # An instance, not a seed: partial_fit then reuses it instead of
                # building a new RandomState on every call. Without shuffling
                # the draws it makes change nothing in the fit.
                random_state=np.random.RandomState(rng.randint(np.iinfo(np.int32).max)),
            )
            for _ in BOX_COLUMNS
        ]
        self.n_iter_ = 0

    def _scaled(self, X):
        # The scaler's arithmetic without its input checks, run once per SGD
        # step on data _check_data already validated: on small searches those
        # checks, not the arithmetic, dominated a fit.
        X = np.array(X, dtype=X.dtype, copy=True)
        if self.scaler_ is not None:
            X -= self.scaler_.mean_
            X /= self.scaler_.scale_
        X *= self._norm
        return X

    def _step(self, X, y, step_size):
        X = self._scaled(X)
        if self.learning_rate == "step":
            eta = self.eta0 / self.decay ** (self.n_iter_ // step_size)
        # X and y were checked (finite included) once by _check_data.
        with config_context(assume_finite=True):
            for column, estimator in enumerate(self.estimators_):
                if self.learning_rate == "step":
                    estimator.eta0 = eta
                estimator.partial_fit(X, y[:, column])
        self.n_iter_ += 1

    def _expose_coefficients(self):
        coef = np.vstack([est.coef_ for est in self.estimators_]) * self._norm
        intercept = np.concatenate([est.intercept_ for est in self.estimators_])
        if self.scaler_ is not None:
            coef = coef / self.scaler_.scale_
            intercept = intercept - coef @ self.scaler_.mean_
        self.coef_ = coef
        self.intercept_ = intercept
