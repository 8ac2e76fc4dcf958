"""scikit-learn's common estimator checks, run for real on every estimator.

scikit-learn's checks make their own data: two-dimensional ``X`` and a
one-column (or ``k``-column) target. Thin adaptors, defined here and nowhere
in the package, let each check reach the estimator's own code:

- a box estimator gets the check's target as boxes: each row's value, scaled
  to [0, 1] over the target, becomes the box ``(u/2, u/2, 1/2 + u/2, 1/2 + u/2)``;
  a target that is already boxes, or that the check gives to provoke an
  error (None, NaN, strings), goes through untouched;
- the heuristic, which reads each row as a square map, gets the rows padded
  with zeros to the next square length;
- the transformer gets each row of ``X`` as a tiny 4x4 RGB image (its values
  tiled, squashed into 0..255), for a tiny CNN.

Inputs a check gives to provoke an error (1-D, empty, sparse, complex, object
arrays of strings) go through every adaptor untouched, so the estimator's own
validation answers them.

Every check must pass, except those named in ``EXPECTED_FAILURES`` with the
reason they cannot: what they assert contradicts a box target (predictions
the shape of the check's target) or an image input (a feature count).
"""

import math

import numpy as np
from scipy import sparse
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    HeuristicBoxEstimator,
    SensitivityTransformer,
)

TINY_SIDE = 4


def as_boxes(y):
    """The check's target as valid boxes; boxes and targets meant to fail unchanged."""
    if y is None:
        return y
    values = np.asarray(y)
    if values.dtype.kind == "c":
        # check_complex_data pairs a complex X with a complex target: the X is the point.
        values = values.real
    try:
        values = values.astype(np.float64)
    except (TypeError, ValueError):
        return y
    if (
        values.ndim not in (1, 2)
        or len(values) == 0
        or (values.ndim == 2 and values.shape[1] == 4)
        or not np.isfinite(values).all()
    ):
        return y
    per_row = values.reshape(len(values), -1).mean(axis=1)
    spread = per_row.max() - per_row.min()
    u = (per_row - per_row.min()) / spread if spread > 0 else np.full(len(values), 0.5)
    return np.stack([u / 2, u / 2, 0.5 + u / 2, 0.5 + u / 2], axis=1)


class _BoxTarget:
    def fit(self, X, y=None, **params):
        return super().fit(X, as_boxes(y), **params)

    def score(self, X, y, sample_weight=None):
        return super().score(X, as_boxes(y), sample_weight=sample_weight)


class CheckedBoxRegressor(_BoxTarget, BoxRegressor):
    def partial_fit(self, X, y, **params):
        return super().partial_fit(X, as_boxes(y), **params)


class CheckedCenterBoxBaseline(_BoxTarget, CenterBoxBaseline):
    pass


def _numeric_rows(X):
    """``X`` as a non-empty 2-D real array, or None when a check gives it to provoke an error."""
    if sparse.issparse(X) or not (hasattr(X, "__array__") or isinstance(X, list)):
        return None
    values = np.asarray(X)
    if values.dtype.kind == "O":
        try:
            values = values.astype(np.float64)
        except (TypeError, ValueError):
            return None
    if values.ndim != 2 or values.dtype.kind not in "iuf" or not values.size:
        return None
    return values


def as_images(X):
    """Rows of a numeric 2-D ``X`` as tiny RGB images in 0..255; anything else as is.

    Finite values are squashed into 0..255; NaN and inf stay, for the
    transformer to refuse.
    """
    rows = _numeric_rows(X)
    if rows is None:
        return X
    tiled = np.stack([np.resize(row, (TINY_SIDE, TINY_SIDE, 3)) for row in rows])
    finite = np.isfinite(tiled)
    return np.where(finite, 127.5 + 127.5 * np.tanh(np.where(finite, tiled, 0) / 10), tiled)


def as_square_maps(X):
    """Rows of a numeric 2-D ``X`` padded with zeros to square maps; anything else as is."""
    rows = _numeric_rows(X)
    if rows is None:
        return X
    side = math.isqrt(rows.shape[1] - 1) + 1
    return np.pad(rows, ((0, 0), (0, side * side - rows.shape[1])))


class CheckedHeuristicBoxEstimator(_BoxTarget, HeuristicBoxEstimator):
    def fit(self, X, y=None, **params):
        return super().fit(as_square_maps(X), y, **params)

    def predict(self, X):
        return super().predict(as_square_maps(X))


class CheckedSensitivityTransformer(SensitivityTransformer):
    def fit(self, X, y=None):
        return super().fit(as_images(X), y)

    def transform(self, X):
        return super().transform(as_images(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


def _tiny_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((TINY_SIDE, TINY_SIDE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(2, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ],
        name="tiny_checks",
    )


ESTIMATORS = [
    CheckedBoxRegressor(max_iter=5, random_state=0),
    CheckedHeuristicBoxEstimator(sigma=0),
    CheckedCenterBoxBaseline(),
    CheckedSensitivityTransformer(model=_tiny_model(), pool=1, preprocessing="none"),
]

BOX_PREDICTIONS = (
    "predicts (n, 4) boxes; the check wants predictions the shape of its own one-column "
    "(or k-column) target"
)
ONLY_COUNTED = (
    "X is only counted (images, paths and maps alike), so no X is refused and it has no "
    "feature count"
)
IMAGES = "takes images, which have no feature count: any image size is resized to the model's"

EXPECTED_FAILURES = {
    "CheckedBoxRegressor": {
        "check_regressors_train": BOX_PREDICTIONS,
        "check_regressor_multioutput": BOX_PREDICTIONS,
    },
    "CheckedHeuristicBoxEstimator": {
        "check_regressors_train": BOX_PREDICTIONS,
        "check_regressor_multioutput": BOX_PREDICTIONS,
        "check_n_features_in": "the adaptor pads the check's rows to square maps",
    },
    "CheckedCenterBoxBaseline": {
        "check_regressors_train": BOX_PREDICTIONS,
        "check_regressor_multioutput": BOX_PREDICTIONS,
        "check_estimator_sparse_array": BOX_PREDICTIONS,
        "check_estimator_sparse_matrix": BOX_PREDICTIONS,
        **dict.fromkeys(
            ["check_n_features_in", "check_n_features_in_after_fitting", "check_complex_data",
             "check_dtype_object", "check_estimators_empty_data_messages", "check_fit1d",
             "check_fit2d_predict1d"],
            ONLY_COUNTED,
        ),
    },
    "CheckedSensitivityTransformer": {
        **dict.fromkeys(
            ["check_n_features_in", "check_n_features_in_after_fitting",
             "check_transformer_general", "check_estimators_empty_data_messages",
             "check_fit2d_predict1d"],
            IMAGES,
        ),
        "check_transformer_preserve_dtypes": "maps are float32 whatever the images' dtype",
        "check_dtype_object": "an object array is read as a list of images or image paths",
        "check_estimators_overwrite_params": (
            "the check compares the keras.Model with a deep copy of it, which never hashes "
            "equal (tests/test_clone_sharing.py checks that fit leaves the model unchanged)"
        ),
    },
}


def expected_failures(estimator):
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


# Expected failures are strict (an unexpected pass fails): pyproject.toml sets
# pytest's xfail_strict, which parametrize_with_checks follows on every
# supported scikit-learn (its own xfail_strict= arrived in 1.8).
@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_sklearn_compatible_estimator(estimator, check, monkeypatch):
    # scikit-learn skips its array-API check with numpy inputs unless this is
    # set; the check only reads it (SciPy, already imported, does not change).
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)
