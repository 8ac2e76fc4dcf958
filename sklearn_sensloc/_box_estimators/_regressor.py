"""BoxRegressor: the paper's linear map from a sensitivity map to its box."""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real

import numpy as np
from sklearn import config_context, get_config
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.linear_model import SGDRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from .._metrics._boxes import BOX_COLUMNS, check_boxes, scale_boxes, to_valid_boxes
from ._base import BoxEstimatorMixin

#: The paper's schedule: the learning rate is divided by 10 every 10,000 iterations.
PAPER_STEP_SIZE = 10_000

#: Epochs of ``max_iter="auto"``, per solver.
AUTO_EPOCHS = {"sgd": 10, "minibatch": 50}

#: Rows joined into one SGDRegressor call at most, in bytes of features
#: (at least one mini-batch is always joined).
SGD_CALL_BYTES = 64 << 20

#: Feature values in one SGDRegressor call from which the four coordinates
#: are trained in threads; below it, starting threads costs more than it saves.
SGD_THREADS_MIN_SIZE = 1 << 21

#: Share of the previous step that each step of the mini-batch solver keeps
#: (heavy-ball momentum), which lets few updates get close to the exact
#: solution (docs/benchmarks.rst, "Box regressor: fit time and exactness").
MINIBATCH_MOMENTUM = 0.9

#: Rows summed at once by the feature scaler, in bytes of features.
HOST_BLOCK_BYTES = 8 << 20

#: Standard deviations below this many machine epsilons are taken as zero:
#: such a feature is constant, and is left unscaled.
CONSTANT_SCALE_EPS = 10


class BoxRegressor(BoxEstimatorMixin, RegressorMixin, BaseEstimator):
    """Linear regression from flattened maps to box coordinates, by SGD.

    With ``solver="sgd"``, four :class:`~sklearn.linear_model.SGDRegressor`
    models, one per coordinate, make per-sample updates over mini-batches.
    With ``solver="minibatch"``, the paper's mini-batch SGD: one update per
    mini-batch for the four coordinates at once: two matrix products, with
    numpy, or on the Keras backend's device with ``device="keras"``. Both
    minimize the squared error plus ``alpha`` times half the squared norm of
    the weights. Predictions are turned into valid boxes: clipped to ``[0, 1]``
    with ordered corners.

    Maps are heavy-tailed: a few pixels carry most of the gradient. By
    default each feature is first raised to the power ``power`` (its square
    root), which lets a linear model weigh the broad shape of the map rather
    than its few brightest pixels, and, when the features read as a map, the
    training maps are mirrored left to right with their boxes, which doubles
    the training set at no labelling cost. On genuine photos both helped
    (see the user guide's results on real photos); ``power=1, flip=False``
    is the paper's regression.

    Least squares predicts the mean of each corner, but CorLoc asks for an
    IoU above 0.5, which forgives a box too large more than one too small: a
    box around the true one still hits up to 1.41 times its width and
    height, a box inside it only down to 0.71 times. Under the uncertainty
    of a prediction, a slightly larger box therefore hits more often, so by
    default every predicted box is widened by ``box_scale=1.1`` about its
    center (an exactly right box keeps an IoU of 0.83); ``box_scale=1``
    returns the least-squares box, as the paper does.

    Features are standardized and divided by the square root of their number,
    so every sample has a squared norm of about one; the per-sample SGD
    updates then converge for learning rates up to about 1 whatever the map
    size, and the paper's ``eta0=0.1`` works as is.

    Parameters
    ----------
    eta0 : float, default=0.1
        Initial learning rate, per sample. The mini-batch solver steps by
        ``eta0`` times the number of rows along the batch's mean gradient,
        capped at the largest step that is stable for the data (the inverse
        of the loss's largest curvature: at most 1 with
        ``scale_features=True``), so that any ``eta0`` is safe; the schedule
        then divides that step.
    learning_rate : {"step", "constant", "invscaling", "adaptive"}, default="step"
        ``"step"``: the paper's schedule, ``eta0`` divided by ``decay`` every
        ``step_size`` iterations (mini-batches). The others are
        :class:`~sklearn.linear_model.SGDRegressor`'s schedules, for
        ``solver="sgd"`` only.
    step_size : int or "auto", default="auto"
        Iterations between two learning-rate drops. ``"auto"`` drops twice
        over a ``fit`` (three stages, as in the paper) and uses the paper's
        10,000 for ``partial_fit``.
    decay : float, default=10.0
        Factor of each drop.
    batch_size : int, default=2048
        Mini-batch size in ``fit``, as in the paper.
    max_iter : int or "auto", default="auto"
        Passes (epochs) over the data in ``fit``. ``"auto"``: 10 with
        ``solver="sgd"``, whose averaged per-sample updates have converged by
        then (more epochs scored the same on genuine photos, at a multiple of
        the time: see the user guide's benchmarks), and 50 with
        ``solver="minibatch"``, which makes one update per mini-batch.
    alpha : float, default=1e-3
        L2 penalty per sample, on the scaled features. The paper's
        unregularized fit overfits the thousands of noisy features of
        sensitivity maps; the default was chosen on genuine photos (see the
        user guide's results on real photos).
    average : bool, default=True
        Average the SGD weights (ASGD): the averaged solution is much closer to
        the least-squares one at no extra cost. The mini-batch solver averages
        the weights after each mini-batch.
    scale_features : bool, default=True
        Standardize features as described above. ``fit`` uses all of ``X``;
        ``partial_fit`` uses its first mini-batch and keeps that scaling.
    shuffle : bool, default=True
        Shuffle the samples before each epoch of ``fit``.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling and of the SGD models.
    solver : {"sgd", "minibatch"}, default="sgd"
        ``"sgd"``: :class:`~sklearn.linear_model.SGDRegressor`'s per-sample
        updates; ``"minibatch"``: one update per mini-batch, as matrix products
        with heavy-ball momentum, much faster on large maps. Being one
        update per mini-batch, it needs many more epochs than per-sample
        updates on few maps: with a few mini-batches per epoch, raise
        ``max_iter`` or lower ``batch_size``.
    device : {"cpu", "keras"}, default="cpu"
        Where the mini-batch solver's matrix products run; only this
        parameter decides, never the machine. ``"cpu"``: with numpy, the
        same result on every machine. ``"keras"``: with ``keras.ops`` on the
        Keras backend's default device (its first GPU or TPU when it sees
        one, else its CPU), in float32, the maps copied there once per fit
        when they fit in 2 GiB; the coefficients equal the numpy ones to
        float32 precision. ``solver="sgd"`` runs on the CPU only and takes
        ``"cpu"``. The rule for a search on a GPU: ``solver="minibatch",
        device="keras"``.
    power : float, default=0.5
        Exponent applied to every feature (keeping its sign) before scaling;
        1 leaves the maps as they are.
    flip : bool or "auto", default="auto"
        Also train on every map mirrored left to right, with its box mirrored
        too. ``"auto"``: when the features read as a map (``map_shape`` given,
        or a square number of features, as :class:`SensitivityTransformer`
        returns for square inputs).
    map_shape : tuple (height, width) or None, default=None
        Shape of one flattened map, for ``flip``. None: square maps.
    box_scale : float, default=1.1
        Factor applied to the width and height of every predicted box, about
        its center, before the box is clipped to the image; 1 is the
        least-squares box. The default was chosen on genuine photos (see the
        user guide's results on real photos). It changes predictions only,
        not the fit.

    Attributes
    ----------
    estimators_ : list of SGDRegressor
        With ``solver="sgd"``: one model per coordinate, in the order
        ``xmin, ymin, xmax, ymax``.
    scaler_ : StandardScaler or None
        The feature standardization.
    coef_ : ndarray of shape (4, n_features)
        Weights on the input features raised to ``power``.
    intercept_ : ndarray of shape (4,)
        Intercepts in the same units.
    flips_ : bool
        Whether mirrored maps were added to the training data.
    device_ : str
        Where the last fit's products ran: ``"cpu"`` with numpy (and always
        with ``solver="sgd"``), else the Keras backend's name of its device,
        such as ``"gpu:0"``, ``"cuda:0"`` or ``"cpu:0"``.
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
    >>> minibatch = BoxRegressor(solver="minibatch", random_state=0).fit(X, boxes)
    >>> minibatch.predict(X[:2]).shape, minibatch.device_
    ((2, 4), 'cpu')
    """

    _parameter_constraints = {
        "eta0": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"step", "constant", "invscaling", "adaptive"})],
        "step_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "decay": [Interval(Real, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "average": ["boolean"],
        "scale_features": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "solver": [StrOptions({"sgd", "minibatch"})],
        "device": [StrOptions({"cpu", "keras"})],
        "power": [Interval(Real, 0, None, closed="neither")],
        "flip": ["boolean", StrOptions({"auto"})],
        "map_shape": [tuple, list, None],
        "box_scale": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        eta0=0.1,
        learning_rate="step",
        step_size="auto",
        decay=10.0,
        batch_size=2048,
        max_iter="auto",
        alpha=1e-3,
        average=True,
        scale_features=True,
        shuffle=True,
        random_state=None,
        solver="sgd",
        device="cpu",
        power=0.5,
        flip="auto",
        map_shape=None,
        box_scale=1.1,
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
        self.solver = solver
        self.device = device
        self.power = power
        self.flip = flip
        self.map_shape = map_shape
        self.box_scale = box_scale

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
        self.flips_ = self._flips(X.shape[1])
        X, y = self._training_rows(X, y)
        rng = check_random_state(self.random_state)
        batches_per_epoch = math.ceil(len(X) / self.batch_size)
        total = self.epochs * batches_per_epoch
        step_size = max(1, math.ceil(total / 3)) if self.step_size == "auto" else self.step_size
        self._start(X, rng)
        self._run(X, y, self._epoch_batches(len(X), rng), step_size)
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
        first = not hasattr(self, "n_iter_")
        if first and hasattr(self, "coef_"):
            # Starting afresh would silently drop the coefficients it holds.
            raise ValueError(
                "This BoxRegressor holds coefficients without the SGD state that partial_fit "
                "continues from (it was loaded from a localizer file, which keeps what predict "
                "needs): fit it again with fit, or continue training the pipeline you saved."
            )
        X, y = self._check_data(X, y, reset=first)
        if first:
            self.flips_ = self._flips(X.shape[1])
        X, y = self._training_rows(X, y)
        if first:
            self._start(X, check_random_state(self.random_state))
        step_size = PAPER_STEP_SIZE if self.step_size == "auto" else self.step_size
        self._run(X, y, [np.arange(len(X))], step_size)
        return self

    def predict(self, X):
        """Predicted boxes, widened by ``box_scale``, then made valid.

        Valid boxes lie in ``[0, 1]`` with ``xmin <= xmax`` and ``ymin <= ymax``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        boxes : ndarray of shape (n_samples, 4)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        raw = self._powered(X) @ self.coef_.T + self.intercept_
        return to_valid_boxes(scale_boxes(raw, self.box_scale))

    @property
    def epochs(self):
        """Passes over the data that ``fit`` makes: ``max_iter``, with "auto" resolved."""
        if self.max_iter != "auto":
            return self.max_iter
        return AUTO_EPOCHS[self.solver]

    def _check_data(self, X, y, reset):
        # Boxes are checked before X so that a bad box is reported by its row.
        boxes = check_boxes(y)
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        check_consistent_length(X, boxes)
        return X, boxes

    def _flips(self, n_features):
        if self.flip is False:
            return False
        shape = self._map_shape(n_features)
        if shape is None and self.flip is True:
            raise ValueError(
                f"flip=True mirrors maps, but the {n_features} features are not a square map; "
                "pass map_shape=(height, width)."
            )
        return shape is not None

    def _map_shape(self, n_features):
        if self.map_shape is not None:
            shape = tuple(self.map_shape)
            if len(shape) != 2 or shape[0] * shape[1] != n_features:
                raise ValueError(
                    f"map_shape={self.map_shape!r} does not match the {n_features} features of X."
                )
            return shape
        side = math.isqrt(n_features)
        return (side, side) if side * side == n_features else None

    def _training_rows(self, X, y):
        """The features raised to ``power``, and the mirrored maps and boxes when flipping."""
        X = self._powered(X)
        if not self.flips_:
            return X, y
        height, width = self._map_shape(X.shape[1])
        mirrored = X.reshape(len(X), height, width)[:, :, ::-1].reshape(len(X), -1)
        boxes = np.column_stack([1 - y[:, 2], y[:, 1], 1 - y[:, 0], y[:, 3]])
        return np.concatenate([X, mirrored]), np.concatenate([y, boxes])

    def _powered(self, X):
        if self.power == 1:
            return X
        return np.sign(X) * np.abs(X) ** X.dtype.type(self.power)

    def _epoch_batches(self, n_samples, rng):
        """Row indices of each mini-batch of ``epochs`` epochs."""
        for _ in range(self.epochs):
            order = rng.permutation(n_samples) if self.shuffle else np.arange(n_samples)
            yield from np.array_split(order, range(self.batch_size, n_samples, self.batch_size))

    def _start(self, X, rng):
        if self.solver != "sgd" and self.learning_rate not in ("step", "constant"):
            raise ValueError(
                f"learning_rate={self.learning_rate!r} is a schedule of solver='sgd'; "
                f"solver={self.solver!r} takes 'step' or 'constant'."
            )
        if self.solver == "sgd" and self.device != "cpu":
            raise ValueError(
                f"device={self.device!r} runs the products of solver='minibatch'; "
                "solver='sgd' runs on the CPU: set solver='minibatch' or device='cpu'."
            )
        self.scaler_ = _standard_scaler(X) if self.scale_features else None
        self._norm = 1.0 / math.sqrt(X.shape[1])
        # The scaling as one shift and one factor per feature.
        self._shift = self.scaler_.mean_ if self.scaler_ is not None else np.zeros(X.shape[1])
        scale = self.scaler_.scale_ if self.scaler_ is not None else 1.0
        self._factor = np.broadcast_to(self._norm / scale, (X.shape[1],)).copy()
        self.n_iter_ = 0
        if self.solver == "minibatch":
            self._start_minibatch(X)
        else:
            self._start_sgd(X, rng)

    def _start_sgd(self, X, rng):
        schedule = "constant" if self.learning_rate == "step" else self.learning_rate
        self.device_ = "cpu"
        self.estimators_ = [
            SGDRegressor(
                learning_rate=schedule,
                eta0=self.eta0,
                alpha=self.alpha,
                average=self.average,
                shuffle=False,
                # An instance, not a seed: each update call then reuses it
                # instead of building a new RandomState. Without shuffling
                # the draws it makes change nothing in the fit.
                random_state=np.random.RandomState(rng.randint(np.iinfo(np.int32).max)),
            )
            for _ in BOX_COLUMNS
        ]

    def _start_minibatch(self, X):
        n_features = X.shape[1]
        self._minibatch = {
            name: np.zeros(shape, np.float32)
            for name, shape in [
                ("weights", (n_features, 4)), ("weights_velocity", (n_features, 4)),
                ("mean_weights", (n_features, 4)), ("intercept", (4,)),
                ("mean_intercept", (4,)),
            ]
        }
        # Steps up to the inverse of the loss's largest curvature never
        # diverge (with momentum, up to 3.8 times that). The curvature is the
        # top eigenvalue of the second moment of a scaled sample with its
        # intercept input of 1, on a few hundred samples; the intercept alone
        # makes it at least 1. It is the top eigenvalue of the samples' small
        # Gram matrix too: one matrix product instead of a power iteration's
        # many passes over the features.
        sample = (X[:256] - self._shift) * self._factor
        gram = (sample @ sample.T + 1.0) / len(sample)
        self._max_step = 1.0 / np.linalg.eigvalsh(gram)[-1]

    def _eta(self, iteration, step_size):
        if self.learning_rate != "step":
            return self.eta0
        return self.eta0 / self.decay ** (iteration // step_size)

    def _run(self, X, y, batches, step_size):
        """Train on ``batches`` (row indices), continuing from ``n_iter_``."""
        if self.solver == "minibatch":
            self._run_minibatch(X, y, batches, step_size)
        else:
            self._run_sgd(X, y, batches, step_size)
        self._expose_coefficients()

    def _run_sgd(self, X, y, batches, step_size):
        # Per-sample SGD over consecutive mini-batches with the same learning
        # rate is one sequence of updates: joining them into one call per
        # coordinate gives the same model as one call per mini-batch, and a
        # small fit (50 epochs of one mini-batch) makes 3 calls instead of 50.
        max_rows = max(self.batch_size, SGD_CALL_BYTES // (X.shape[1] * X.itemsize))
        # Scaling is elementwise: rows scaled once and gathered for every call
        # equal rows gathered and then scaled, and an epoch's rows are gathered
        # by every epoch. Data larger than one call is scaled call by call,
        # to hold no scaled copy of all of it.
        prescaled = X.nbytes <= SGD_CALL_BYTES
        if prescaled:
            X = self._scaled(X.copy())
        joined, n_rows, joined_eta = [], 0, None
        for rows in batches:
            eta = self._eta(self.n_iter_ + len(joined), step_size)
            if joined and (eta != joined_eta or n_rows + len(rows) > max_rows):
                self._sgd_call(X, y, joined, joined_eta, prescaled)
                joined, n_rows = [], 0
            joined.append(rows)
            n_rows += len(rows)
            joined_eta = eta
        if joined:
            self._sgd_call(X, y, joined, joined_eta, prescaled)

    def _sgd_call(self, X, y, batches, eta, prescaled):
        rows = np.concatenate(batches)
        X_scaled = np.ascontiguousarray(X[rows] if prescaled else self._scaled(X[rows]))
        # Boxes and (unit) weights as SGDRegressor.partial_fit makes them: in X's dtype.
        targets = np.ascontiguousarray(y[rows].T, dtype=X_scaled.dtype)
        # X and y were checked once, finite included, by _check_data, and the
        # parameters by fit: each call (in this thread or another, whose
        # scikit-learn configuration starts afresh) goes straight to the updates.
        config = {**get_config(), "assume_finite": True}

        def train(column):
            estimator = self.estimators_[column]
            if self.learning_rate == "step":
                # The public parameter, set as set_params does without
                # reading the signature again for every call.
                estimator.eta0 = eta
            with config_context(**config):
                estimator.partial_fit(X_scaled, targets[column])

        if X_scaled.size < SGD_THREADS_MIN_SIZE:
            list(map(train, range(len(BOX_COLUMNS))))
        else:
            # The four coordinates are independent and SGDRegressor's updates
            # release the GIL: one thread each, as many at once as there are cores.
            with ThreadPoolExecutor(min(len(BOX_COLUMNS), os.cpu_count() or 1)) as pool:
                list(pool.map(train, range(len(BOX_COLUMNS))))
        self.n_iter_ += len(batches)

    def _scaled(self, X):
        """``X`` (a copy, changed in place) in the units the solvers work in."""
        if self.scaler_ is not None:
            X -= self.scaler_.mean_
            X /= self.scaler_.scale_
        X *= self._norm
        return X

    def _run_minibatch(self, X, y, batches, step_size):
        state = self._minibatch
        if self.device == "keras":
            # Imported here: Keras is needed only when asked for.
            from . import _keras_products

            read_batch = _keras_products.resident_reader(X) or _host_batch_reader(X)
            products, self.device_ = _keras_products.products, _keras_products.default_device()
        else:
            read_batch, products, self.device_ = _host_batch_reader(X), _host_products, "cpu"
        # float32 like the maps: a float64 factor would make numpy copy them.
        shift, factor = self._shift.astype(np.float32), self._factor.astype(np.float32)[:, None]
        for rows in batches:
            # Sorted for a sequential read; the order does not change a batch gradient.
            rows = np.sort(rows)
            X_batch = read_batch(rows)
            step = min(self.eta0 * len(rows), self._max_step)
            if self.learning_rate == "step":
                step /= self.decay ** (self.n_iter_ // step_size)
            self.n_iter_ += 1
            # The scaling (X - shift) * factor is folded into the weights and
            # the gradient, so the gathered mini-batch is only read.
            scaled_weights = state["weights"] * factor
            offset = state["intercept"] - shift @ scaled_weights
            product, residual_sums = products(X_batch, scaled_weights, offset, y[rows])
            gradient = factor * (product - np.outer(shift, residual_sums))
            gradient = gradient / len(rows) + self.alpha * state["weights"]
            velocity = state["weights_velocity"]
            velocity *= MINIBATCH_MOMENTUM
            velocity -= step * gradient
            state["weights"] += velocity
            # No momentum for the intercept: along it the curvature is the
            # largest (1 with centered features), where momentum oscillates.
            state["intercept"] -= step * residual_sums / len(rows)
            for name in ("weights", "intercept"):
                # Running mean over the iterations so far (ASGD).
                state["mean_" + name] += (state[name] - state["mean_" + name]) / self.n_iter_

    def _expose_coefficients(self):
        if self.solver == "minibatch":
            prefix = "mean_" if self.average else ""
            coef = self._minibatch[prefix + "weights"].T.astype(np.float64)
            intercept = self._minibatch[prefix + "intercept"].astype(np.float64)
        else:
            coef = np.vstack([est.coef_ for est in self.estimators_])
            intercept = np.concatenate([est.intercept_ for est in self.estimators_])
        # Back from the scaled units to those of the input features.
        coef = coef * self._factor
        self.coef_ = coef
        self.intercept_ = intercept - coef @ self._shift


def _standard_scaler(X):
    """``StandardScaler().fit(X)``, with its statistics summed a block of rows at a time.

    The same mean and variance, in float64, without a float64 copy of ``X``,
    several times faster on large maps (docs/benchmarks.rst, "Box regressor: fit time
    and exactness").
    The blocks are summed on every core (numpy releases the GIL), and their
    sums added in order: the same result on any number of cores.
    """
    step = max(1, HOST_BLOCK_BYTES // (X.shape[1] * X.itemsize))
    blocks = [X[start : start + step] for start in range(0, len(X), step)]
    mean = _summed(lambda block: block.sum(axis=0, dtype=np.float64), blocks) / len(X)
    var = _summed(lambda block: np.square(block - mean).sum(axis=0), blocks) / len(X)
    # What StandardScaler.fit sets for an array, without fitting one.
    scaler = StandardScaler()
    scaler.n_features_in_ = X.shape[1]
    scaler.mean_, scaler.var_ = mean, var
    scale = np.sqrt(var)
    scale[scale < CONSTANT_SCALE_EPS * np.finfo(scale.dtype).eps] = 1.0
    scaler.scale_ = scale
    scaler.n_samples_seen_ = len(X)
    return scaler


def _summed(function, blocks):
    """The sum of ``function`` over ``blocks``, in order, computed on every core."""
    if len(blocks) == 1:
        return function(blocks[0])
    with ThreadPoolExecutor(min(len(blocks), os.cpu_count() or 1)) as pool:
        return sum(pool.map(function, blocks))


def _host_batch_reader(X):
    """``read(rows)``: the mini-batch of ``X``'s ``rows``, in one reused buffer."""
    buffer = np.empty((0, X.shape[1]), X.dtype)

    def read(rows):
        nonlocal buffer
        # One buffer for every mini-batch: a fresh array per batch costs page
        # faults comparable to the products.
        if len(buffer) < len(rows):
            buffer = np.empty((len(rows), X.shape[1]), X.dtype)
        return np.take(X, rows, axis=0, out=buffer[: len(rows)], mode="clip")

    return read


def _host_products(X_batch, weights, offset, y_batch):
    """``X_batch.T @ residual`` and the residual's column sums, with numpy."""
    residual = (X_batch @ weights + offset - y_batch).astype(np.float32)
    # (residual.T @ X).T: transposing the small factor, not the mini-batch.
    return (residual.T @ X_batch).T, residual.sum(axis=0)
