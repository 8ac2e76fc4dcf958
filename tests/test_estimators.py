"""Box estimators on box targets: BoxRegressor, HeuristicBoxEstimator, CenterBoxBaseline."""

import math
import pickle
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import Ridge, SGDRegressor
from sklearn.preprocessing import StandardScaler

from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    HeuristicBoxEstimator,
    corloc_score,
)
from sklearn_sensloc._metrics._boxes import scale_boxes, to_valid_boxes
from sklearn_sensloc._box_estimators._heuristic import SIGMA_GRID, TOP_FRACTION_GRID

#: The paper's plain linear regression, for checks against exact solutions.
PAPER = dict(power=1, alpha=1e-4, box_scale=1)


def linear_boxes(n_samples=600, n_features=40, noise=0.005, seed=0):
    """Features and boxes that are an (almost) exact linear function of them."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    centre = 0.5 + 0.15 * np.tanh(X[:, :2] @ rng.normal(size=(2, 2)) / 2)
    weights = rng.normal(size=(n_features, 2)) / np.sqrt(n_features)
    half = 0.2 + 0.05 * np.tanh(X @ weights)
    boxes = np.hstack([centre - half, centre + half])
    boxes = np.clip(boxes + rng.normal(0, noise, boxes.shape), 0, 1)
    return X, to_valid_boxes(boxes)


def least_squares(X, boxes):
    """Exact least-squares weights, with the intercept as the last row."""
    design = np.hstack([X, np.ones((len(X), 1))])
    return np.linalg.lstsq(design, boxes, rcond=None)[0]


def assert_valid_boxes(boxes):
    assert boxes.shape[1] == 4
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 0] <= boxes[:, 2]) and np.all(boxes[:, 1] <= boxes[:, 3])


class TestBoxRegressor:
    def test_learns_a_linear_map_close_to_least_squares(self):
        X, boxes = linear_boxes()
        X_test, boxes_test = linear_boxes(seed=1)
        # Enough epochs for the weights themselves, not only the boxes, to converge.
        reg = BoxRegressor(max_iter=50, random_state=0, **PAPER).fit(X, boxes)
        solution = least_squares(X, boxes)
        exact = to_valid_boxes(X_test @ solution[:-1] + solution[-1])
        assert reg.score(X_test, boxes_test) >= corloc_score(boxes_test, exact) - 1.0
        np.testing.assert_allclose(reg.coef_, solution[:-1].T, atol=0.005)
        np.testing.assert_allclose(reg.intercept_, solution[-1], atol=0.005)

    def test_coefficients_are_in_input_units(self):
        X, boxes = linear_boxes()
        reg = BoxRegressor(max_iter=5, random_state=0, **PAPER).fit(X, boxes)
        raw = X @ reg.coef_.T + reg.intercept_
        np.testing.assert_allclose(reg.predict(X), to_valid_boxes(raw))
        assert reg.coef_.shape == (4, X.shape[1])

    def test_predictions_are_valid_boxes_even_for_wild_inputs(self):
        X, boxes = linear_boxes()
        reg = BoxRegressor(max_iter=3, random_state=0).fit(X, boxes)
        wild = np.random.default_rng(3).normal(0, 1000, X.shape)
        assert_valid_boxes(reg.predict(wild))

    def test_step_schedule_divides_the_learning_rate(self):
        X, boxes = linear_boxes(n_samples=50)
        reg = BoxRegressor(eta0=0.1, step_size=2, decay=10, random_state=0)
        etas = []
        for _ in range(5):
            reg.partial_fit(X, boxes)
            etas.append(reg.estimators_[0].eta0)
        np.testing.assert_allclose(etas, [0.1, 0.1, 0.01, 0.01, 0.001])
        assert reg.n_iter_ == 5

    def test_auto_step_size_gives_three_stages_in_fit(self):
        X, boxes = linear_boxes(n_samples=100)
        reg = BoxRegressor(eta0=0.1, batch_size=50, max_iter=3, random_state=0).fit(X, boxes)
        assert reg.n_iter_ == 6
        assert reg.estimators_[0].eta0 == pytest.approx(0.001)

    def test_partial_fit_over_mini_batches_learns(self):
        X, boxes = linear_boxes()
        reg = BoxRegressor(random_state=0, step_size=30)
        for _ in range(15):
            for start in range(0, len(X), 100):
                reg.partial_fit(X[start : start + 100], boxes[start : start + 100])
        np.testing.assert_allclose(reg.coef_, least_squares(X, boxes)[:-1].T, atol=0.01)

    def test_same_seed_same_model_and_pickle_round_trip(self):
        X, boxes = linear_boxes(n_samples=200)
        first = BoxRegressor(max_iter=5, random_state=7).fit(X, boxes)
        second = clone(first).fit(X, boxes)
        np.testing.assert_array_equal(first.coef_, second.coef_)
        restored = pickle.loads(pickle.dumps(first))
        np.testing.assert_array_equal(restored.predict(X), first.predict(X))

    def test_features_are_raised_to_power_before_the_linear_map(self):
        X, boxes = linear_boxes()
        X = np.abs(X)
        reg = BoxRegressor(max_iter=5, random_state=0, box_scale=1).fit(X, boxes)
        assert reg.power == 0.5
        np.testing.assert_allclose(
            reg.predict(X), to_valid_boxes(np.sqrt(X) @ reg.coef_.T + reg.intercept_)
        )
        plain = BoxRegressor(max_iter=5, random_state=0, power=1).fit(np.sqrt(X), boxes)
        np.testing.assert_allclose(plain.coef_, reg.coef_, rtol=1e-6, atol=1e-9)

    def test_flip_trains_on_mirrored_maps_and_boxes(self):
        rng = np.random.default_rng(0)
        maps = rng.random((60, 3, 5))
        boxes = to_valid_boxes(rng.random((60, 4)))
        flat = maps.reshape(60, -1)
        flipped = BoxRegressor(max_iter=3, random_state=0, map_shape=(3, 5)).fit(flat, boxes)
        assert flipped.flips_
        mirrored = maps[:, :, ::-1].reshape(60, -1)
        mirrored_boxes = np.column_stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]])
        by_hand = BoxRegressor(max_iter=3, random_state=0, flip=False).fit(
            np.vstack([flat, mirrored]), np.vstack([boxes, mirrored_boxes])
        )
        assert not by_hand.flips_
        np.testing.assert_allclose(flipped.coef_, by_hand.coef_, rtol=1e-6, atol=1e-9)
        # "auto" flips when the features read as a square map.
        assert BoxRegressor(random_state=0).fit(rng.random((20, 16)), boxes[:20]).flips_
        assert not BoxRegressor(random_state=0).fit(rng.random((20, 15)), boxes[:20]).flips_

    def test_box_scale_widens_predicted_boxes_about_their_centers(self):
        X, boxes = linear_boxes()
        reg = BoxRegressor(max_iter=5, random_state=0).fit(X, boxes)
        assert reg.box_scale == 1.1
        raw = (np.sign(X) * np.sqrt(np.abs(X))) @ reg.coef_.T + reg.intercept_
        np.testing.assert_allclose(reg.predict(X), to_valid_boxes(scale_boxes(raw, 1.1)))
        least_squares_boxes = reg.set_params(box_scale=1).predict(X)
        widened = reg.set_params(box_scale=1.1).predict(X)
        # Inside the image the center stays and the size grows by the factor;
        # at its border the box is clipped.
        inside = np.all((widened > 0) & (widened < 1), axis=1)
        assert inside.mean() > 0.9
        wide, plain = widened[inside], least_squares_boxes[inside]
        np.testing.assert_allclose(wide[:, 2:] - wide[:, :2], 1.1 * (plain[:, 2:] - plain[:, :2]))
        np.testing.assert_allclose(wide[:, :2] + wide[:, 2:], plain[:, :2] + plain[:, 2:])
        assert_valid_boxes(BoxRegressor(max_iter=1, box_scale=5).fit(X, boxes).predict(X))
        with pytest.raises(ValueError, match="box_scale"):
            BoxRegressor(box_scale=0).fit(X, boxes)

    def test_flip_needs_a_map(self):
        X, boxes = linear_boxes(n_samples=20)
        with pytest.raises(ValueError, match="40 features are not a square map"):
            BoxRegressor(flip=True).fit(X, boxes)
        with pytest.raises(ValueError, match=r"map_shape=\(3, 5\) does not match the 40"):
            BoxRegressor(map_shape=(3, 5)).fit(X, boxes)

    def test_prediction_is_row_independent(self):
        X, boxes = linear_boxes(n_samples=200)
        reg = BoxRegressor(max_iter=5, random_state=0).fit(X, boxes)
        order = np.random.default_rng(0).permutation(len(X))
        np.testing.assert_allclose(reg.predict(X[order]), reg.predict(X)[order])
        np.testing.assert_allclose(reg.predict(X[:7]), reg.predict(X)[:7])

    def test_equals_one_sgdregressor_call_per_mini_batch(self):
        # The reference: the paper's loop, partial_fit per mini-batch and coordinate.
        X, boxes = linear_boxes(n_samples=500)
        reg = BoxRegressor(batch_size=64, max_iter=6, random_state=3, **PAPER).fit(X, boxes)
        rng = np.random.RandomState(3)
        seeds = [rng.randint(np.iinfo(np.int32).max) for _ in range(4)]
        scaled = (X - X.mean(axis=0)) / X.std(axis=0) / np.sqrt(X.shape[1])
        models = [
            SGDRegressor(learning_rate="constant", average=True, shuffle=False,
                         random_state=np.random.RandomState(seed))
            for seed in seeds
        ]
        iteration = 0
        for _ in range(6):
            order = rng.permutation(len(X))
            for start in range(0, len(X), 64):
                rows = order[start : start + 64]
                for column, model in enumerate(models):
                    model.eta0 = 0.1 / 10 ** (iteration // 16)
                    model.partial_fit(scaled[rows], boxes[rows, column])
                iteration += 1
        expected = np.vstack([model.coef_ for model in models]) / X.std(axis=0) / np.sqrt(40)
        np.testing.assert_allclose(reg.coef_, expected, rtol=1e-6, atol=1e-9)
        assert reg.n_iter_ == iteration

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_default_sgd_equals_sgdregressor_partial_fit_bit_for_bit(self, dtype):
        # The defaults (step schedule, 10 epochs, one mini-batch per epoch):
        # one public SGDRegressor.partial_fit per learning rate and coordinate,
        # on the scaled rows of the epochs at that rate, gives the same model.
        X, boxes = linear_boxes(n_samples=150, n_features=36)
        X = np.abs(X).astype(dtype)
        reg = BoxRegressor(flip=False, power=1, random_state=4).fit(X, boxes)
        rng = np.random.RandomState(4)
        models = [
            SGDRegressor(learning_rate="constant", alpha=1e-3, average=True, shuffle=False,
                         random_state=np.random.RandomState(rng.randint(np.iinfo(np.int32).max)))
            for _ in range(4)
        ]
        orders = [rng.permutation(len(X)) for _ in range(10)]
        for eta, epochs in [(0.1, orders[:4]), (0.01, orders[4:8]), (0.001, orders[8:])]:
            rows = np.concatenate(epochs)
            scaled = X[rows]
            scaled -= reg.scaler_.mean_
            scaled /= reg.scaler_.scale_
            scaled *= 1 / math.sqrt(X.shape[1])  # a Python float, as BoxRegressor scales by
            for column, model in enumerate(models):
                model.eta0 = eta
                model.partial_fit(scaled, boxes[rows, column])
        coef = np.vstack([model.coef_ for model in models])
        np.testing.assert_array_equal(reg.coef_, coef * (1 / np.sqrt(36) / reg.scaler_.scale_))
        scaler = StandardScaler().fit(X)
        np.testing.assert_allclose(reg.scaler_.mean_, scaler.mean_, rtol=1e-12)
        np.testing.assert_allclose(reg.scaler_.scale_, scaler.scale_, rtol=1e-6)
        assert reg.scaler_.n_features_in_ == 36 and reg.scaler_.n_samples_seen_ == 150

    @pytest.mark.parametrize(
        "bad_row, message",
        [
            ([0.1, 0.1, 1.2, 0.5], r"Box 3 of y lies outside \[0, 1\]"),
            ([0.6, 0.1, 0.5, 0.5], r"Box 3 of y has xmin > xmax"),
            ([0.1, 0.6, 0.5, 0.5], r"Box 3 of y has xmin > xmax or ymin > ymax"),
            ([0.1, np.nan, 0.5, 0.5], r"Box 3 of y contains NaN"),
        ],
    )
    def test_bad_boxes_are_named(self, bad_row, message):
        X, boxes = linear_boxes(n_samples=10)
        boxes[3] = bad_row
        with pytest.raises(ValueError, match=message):
            BoxRegressor().fit(X, boxes)

    def test_bad_shapes_and_values(self):
        X, boxes = linear_boxes(n_samples=10)
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            BoxRegressor().fit(X, boxes[:9])
        with pytest.raises(ValueError, match=r"shape \(n_samples, 4\)"):
            BoxRegressor().fit(X, boxes[:, :3])
        X_nan = X.copy()
        X_nan[2, 5] = np.inf
        with pytest.raises(ValueError, match="infinity"):
            BoxRegressor().fit(X_nan, boxes)
        reg = BoxRegressor(max_iter=1).fit(X, boxes)
        with pytest.raises(ValueError, match="features"):
            reg.predict(X[:, :5])
        with pytest.raises(ValueError, match="eta0"):
            BoxRegressor(eta0=-1).fit(X, boxes)


def exact_ridge_boxes(X, boxes, X_test, alpha=1e-4):
    """The exact minimizer of BoxRegressor's objective, on its feature scaling."""
    mean, std = X.mean(axis=0), X.std(axis=0)
    norm = 1 / np.sqrt(X.shape[1])
    ridge = Ridge(alpha=alpha * len(X)).fit((X - mean) / std * norm, boxes)
    return to_valid_boxes(ridge.predict((X_test - mean) / std * norm))


class TestMiniBatchSolver:
    def test_fit_is_close_to_the_exact_ridge_solution(self):
        X, boxes = linear_boxes()
        X_test, boxes_test = linear_boxes(seed=1)
        # 150 updates, as the defaults make on 5,000 maps.
        reg = BoxRegressor(solver="minibatch", batch_size=200, random_state=0, **PAPER)
        reg.fit(X, boxes)
        assert not hasattr(reg, "estimators_")
        assert_valid_boxes(reg.predict(X_test))
        exact = exact_ridge_boxes(X, boxes, X_test)
        assert reg.score(X_test, boxes_test) >= corloc_score(boxes_test, exact) - 1.0
        np.testing.assert_allclose(reg.coef_, least_squares(X, boxes)[:-1].T, atol=0.01)
        raw = X_test @ reg.coef_.T + reg.intercept_
        np.testing.assert_allclose(reg.predict(X_test), to_valid_boxes(raw))

    def test_partial_fit_over_mini_batches_learns(self):
        X, boxes = linear_boxes()
        reg = BoxRegressor(solver="minibatch", random_state=0, step_size=60)
        for _ in range(30):
            for start in range(0, len(X), 100):
                reg.partial_fit(X[start : start + 100], boxes[start : start + 100])
        assert reg.n_iter_ == 180
        np.testing.assert_allclose(reg.coef_, least_squares(X, boxes)[:-1].T, atol=0.01)

    def test_any_learning_rate_is_stable(self):
        X, boxes = linear_boxes(n_samples=200)
        for eta0 in (1e-3, 0.1, 100.0):
            reg = BoxRegressor(solver="minibatch", eta0=eta0, random_state=0).fit(X, boxes)
            assert np.all(np.isfinite(reg.coef_)) and np.abs(reg.coef_).max() < 1

    def test_deterministic_with_random_state_and_picklable(self):
        X, boxes = linear_boxes(n_samples=300)
        first = BoxRegressor(solver="minibatch", batch_size=64, random_state=7).fit(X, boxes)
        second = clone(first).fit(X, boxes)
        np.testing.assert_array_equal(first.coef_, second.coef_)
        other = clone(first).set_params(random_state=8).fit(X, boxes)
        assert not np.array_equal(first.coef_, other.coef_)
        restored = pickle.loads(pickle.dumps(first))
        restored.partial_fit(X, boxes)
        first.partial_fit(X, boxes)
        np.testing.assert_array_equal(restored.predict(X), first.predict(X))

    @pytest.mark.backends
    @pytest.mark.parametrize("resident_bytes", [2 << 30, 0], ids=["maps-on-device", "per-batch"])
    def test_keras_device_equals_the_numpy_path(self, monkeypatch, resident_bytes):
        from sklearn_sensloc._box_estimators import _keras_products

        X, boxes = linear_boxes(n_samples=300)
        on_host = BoxRegressor(solver="minibatch", batch_size=64, random_state=0).fit(X, boxes)
        assert on_host.device_ == "cpu"
        # The keras.ops path, on the backend's default device (this machine's
        # CPU in CI): the maps copied to the device once, or each mini-batch in turn.
        monkeypatch.setattr(_keras_products, "RESIDENT_BYTES", resident_bytes)
        on_device = clone(on_host).set_params(device="keras").fit(X, boxes)
        assert on_device.device_ == _keras_products.default_device()
        assert on_device.device_.split(":")[0] in {"cpu", "gpu", "cuda", "tpu", "mps"}
        np.testing.assert_allclose(on_device.coef_, on_host.coef_, rtol=1e-4, atol=1e-6)

    def test_the_device_is_the_users_choice_never_the_machines(self, monkeypatch):
        from sklearn_sensloc import _box_estimators

        # Any import of the device module fails: the default path must not need it.
        monkeypatch.delattr(_box_estimators, "_keras_products", raising=False)
        monkeypatch.setitem(sys.modules, "sklearn_sensloc._box_estimators._keras_products", None)
        X, boxes = linear_boxes(n_samples=100)
        for solver in ("sgd", "minibatch"):
            assert BoxRegressor(solver=solver, max_iter=2).fit(X, boxes).device_ == "cpu"
        with pytest.raises(ImportError):
            BoxRegressor(solver="minibatch", device="keras", max_iter=2).fit(X, boxes)
        with pytest.raises(ValueError, match="solver='sgd' runs on the CPU"):
            BoxRegressor(device="keras").fit(X, boxes)
        with pytest.raises(ValueError, match="device"):
            BoxRegressor(solver="minibatch", device="gpu").fit(X, boxes)

    def test_solver_and_its_schedules_are_validated(self):
        X, boxes = linear_boxes(n_samples=20)
        with pytest.raises(ValueError, match="solver"):
            BoxRegressor(solver="lbfgs").fit(X, boxes)
        with pytest.raises(ValueError, match="learning_rate='invscaling' is a schedule of"):
            BoxRegressor(solver="minibatch", learning_rate="invscaling").fit(X, boxes)


class TestHeuristicBoxEstimator:
    def test_box_encloses_the_top_pixels(self):
        maps = np.zeros((1, 10, 10))
        maps[0, 2:5, 6:9] = 1.0
        est = HeuristicBoxEstimator(sigma=0, top_fraction=0.09).fit(maps.reshape(1, -1))
        np.testing.assert_allclose(est.predict(maps.reshape(1, -1)), [[0.6, 0.2, 0.9, 0.5]])

    def test_largest_region_ignores_a_small_distant_blob(self):
        maps = np.zeros((1, 20, 20))
        maps[0, 2:8, 2:8] = 1.0
        maps[0, 17:19, 17:19] = 1.0
        flat = maps.reshape(1, -1)
        n_hot = 36 + 4
        everything = HeuristicBoxEstimator(sigma=0, top_fraction=n_hot / 400).fit(flat)
        largest = HeuristicBoxEstimator(sigma=0, top_fraction=n_hot / 400, region="largest").fit(flat)
        np.testing.assert_allclose(everything.predict(flat), [[0.1, 0.1, 0.95, 0.95]])
        np.testing.assert_allclose(largest.predict(flat), [[0.1, 0.1, 0.4, 0.4]])

    def test_smoothing_and_full_fraction(self):
        rng = np.random.default_rng(0)
        maps = rng.random((3, 64))
        full = HeuristicBoxEstimator(sigma=2, top_fraction=1.0).fit(maps).predict(maps)
        np.testing.assert_allclose(full, np.tile([0, 0, 1, 1], (3, 1)))
        constant = np.ones((2, 64))
        boxes = HeuristicBoxEstimator(sigma=3, top_fraction=0.2).fit(constant).predict(constant)
        np.testing.assert_allclose(boxes, np.tile([0, 0, 1, 1], (2, 1)))

    def test_map_shape(self):
        maps = np.zeros((2, 6 * 4))
        est = HeuristicBoxEstimator(sigma=0, top_fraction=0.2, map_shape=(6, 4)).fit(maps)
        assert est.map_shape_ == (6, 4)
        with pytest.raises(ValueError, match="not a square map"):
            HeuristicBoxEstimator(sigma=0, top_fraction=0.2).fit(np.zeros((2, 24)))
        with pytest.raises(ValueError, match="does not match the 24 features"):
            HeuristicBoxEstimator(sigma=0, top_fraction=0.2, map_shape=(5, 5)).fit(maps)

    def test_score_is_corloc(self):
        maps = np.zeros((2, 10, 10))
        maps[:, 2:5, 6:9] = 1.0
        flat = maps.reshape(2, -1)
        truth = np.array([[0.6, 0.2, 0.9, 0.5], [0.0, 0.0, 0.2, 0.2]])
        est = HeuristicBoxEstimator(sigma=0, top_fraction=0.09).fit(flat)
        assert est.score(flat, truth) == 50.0

    def test_auto_chooses_the_smoothing_and_fraction_that_fit_the_training_boxes(self):
        # Objects cover a block whose centre is much hotter than its edges:
        # the paper's top 10% of the pixels enclose the centre only.
        rng = np.random.default_rng(0)
        maps = rng.random((30, 16, 16)) * 0.05
        rows, cols = np.mgrid[:16, :16]
        maps[:, 2:14, 4:12] += 0.2 + np.exp(-((rows - 7.5) ** 2 + (cols - 7.5) ** 2) / 8)[2:14, 4:12]
        flat = maps.reshape(30, -1)
        boxes = np.tile([4 / 16, 2 / 16, 12 / 16, 14 / 16], (30, 1))
        paper = HeuristicBoxEstimator(sigma=0, top_fraction=0.1).fit(flat)
        auto = HeuristicBoxEstimator().fit(flat, boxes)
        assert paper.score(flat, boxes) == 0.0
        assert auto.score(flat, boxes) == 100.0
        assert (auto.sigma_, auto.fraction_) != (0.0, 0.1)
        assert len(auto.grid_scores_) == len(SIGMA_GRID) * len(TOP_FRACTION_GRID)
        assert max(row["corloc"] for row in auto.grid_scores_) == 100.0

    def test_iou_threshold_is_the_corloc_rule_of_the_choice(self):
        rng = np.random.default_rng(0)
        maps = rng.random((30, 16, 16)) * 0.05
        maps[:, 2:14, 4:12] += rng.random((30, 12, 8))
        flat = maps.reshape(30, -1)
        boxes = np.tile([4 / 16, 2 / 16, 12 / 16, 14 / 16], (30, 1))
        grids = {}
        for threshold in (0.3, 0.5, 0.7):
            est = HeuristicBoxEstimator(sigma=0, iou_threshold=threshold).fit(flat, boxes)
            grids[threshold] = [row["corloc"] for row in est.grid_scores_]
            for row in est.grid_scores_:
                fixed = HeuristicBoxEstimator(sigma=0, top_fraction=row["fraction"]).fit(flat)
                assert row["corloc"] == pytest.approx(corloc_score(boxes, fixed.predict(flat), threshold))
        assert grids[0.3] != grids[0.5] != grids[0.7]
        with pytest.raises(ValueError, match="iou_threshold"):
            HeuristicBoxEstimator(iou_threshold=1).fit(flat, boxes)

    def test_max_fraction_with_largest_region_is_the_cam_rule(self):
        maps = np.zeros((1, 20, 20))
        maps[0, 2:8, 2:8] = 1.0
        maps[0, 4, 4] = 2.0
        maps[0, 15:19, 15:19] = 0.8
        flat = maps.reshape(1, -1)
        cam = HeuristicBoxEstimator(sigma=0, max_fraction=0.4, region="largest").fit(flat)
        np.testing.assert_allclose(cam.predict(flat), [[0.1, 0.1, 0.4, 0.4]])
        both = HeuristicBoxEstimator(sigma=0, max_fraction=0.4).fit(flat)
        np.testing.assert_allclose(both.predict(flat), [[0.1, 0.1, 0.95, 0.95]])
        peak = HeuristicBoxEstimator(sigma=0, max_fraction=0.9).fit(flat)
        np.testing.assert_allclose(peak.predict(flat), [[0.2, 0.2, 0.25, 0.25]])

    def test_auto_needs_training_boxes(self):
        with pytest.raises(ValueError, match="requires y to be passed"):
            HeuristicBoxEstimator().fit(np.zeros((2, 16)))
        with pytest.raises(ValueError, match="3 maps but y has 2 boxes"):
            HeuristicBoxEstimator().fit(np.zeros((3, 16)), [[0, 0, 1, 1]] * 2)


class TestCenterBoxBaseline:
    def test_predicts_the_centered_mean_size_box(self):
        boxes = np.array([[0.0, 0.0, 0.4, 0.6], [0.5, 0.2, 0.9, 0.8]])
        images = np.zeros((2, 8, 8, 3))
        base = CenterBoxBaseline().fit(images, boxes)
        np.testing.assert_allclose(base.predict(["a.jpg", "b.jpg", "c.jpg"]), np.tile([0.3, 0.2, 0.7, 0.8], (3, 1)))

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="X has 3 samples but y has 2 boxes"):
            CenterBoxBaseline().fit(np.zeros((3, 2)), [[0, 0, 1, 1], [0, 0, 1, 1]])
