"""The design card's use, end to end: Pipeline, GridSearchCV, cross-validation."""

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from conftest import make_scenes, write_png_files
from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    CorLocScorer,
    HeuristicBoxEstimator,
    SensitivityTransformer,
)


def design_card_search(model, grid, X, boxes):
    """The design card's pipeline searched over ``grid``; with test scenes and their center box."""
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=model, target="gestalt", pool=1)),
            ("box", BoxRegressor(random_state=0)),
        ]
    )
    search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
    X_test, boxes_test, _ = make_scenes(120, seed=1)
    center = CenterBoxBaseline().fit(X, boxes).score(X_test, boxes_test)
    return search, X_test, boxes_test, center


@pytest.mark.backends
def test_design_card_grid_search(tiny_model, scenes):
    X, boxes, _ = scenes
    search, X_test, boxes_test, center = design_card_search(
        tiny_model, {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}, X, boxes
    )
    assert set(search.best_params_) == {"sens__aggregation", "box__eta0"}
    learned = search.score(X_test, boxes_test)
    assert learned > center + 15
    assert search.cv_results_["mean_test_score"].max() > center + 15


@pytest.mark.backends
def test_grid_search_over_the_box_solver(tiny_model, scenes):
    X, boxes, _ = scenes
    search, X_test, boxes_test, center = design_card_search(
        tiny_model, {"box__solver": ["sgd", "minibatch"], "box__eta0": [0.01, 0.1]}, X, boxes
    )
    results = search.cv_results_
    minibatch = np.asarray(results["param_box__solver"]) == "minibatch"
    assert np.all(results["mean_test_score"][minibatch] > center + 15)
    refitted = search.best_estimator_.set_params(box__solver="minibatch").fit(X, boxes)
    assert refitted.score(X_test, boxes_test) > center + 15


@pytest.mark.backends
def test_cross_val_score_and_heuristic_step(tiny_model, scenes):
    X, boxes, _ = scenes
    sens = SensitivityTransformer(model=tiny_model, pool=1)
    learned = cross_val_score(
        Pipeline([("sens", sens), ("box", BoxRegressor(random_state=0))]), X, boxes, cv=3,
        scoring=CorLocScorer(),
    )
    center = cross_val_score(CenterBoxBaseline(), X, boxes, cv=3, scoring=CorLocScorer())
    heuristic = cross_val_score(
        Pipeline([("sens", sens), ("box", HeuristicBoxEstimator(sigma=3, top_fraction=0.3))]),
        X, boxes, cv=3,
    )
    assert learned.mean() > center.mean() + 15
    assert heuristic.mean() > center.mean()


def test_paths_go_through_grid_search_splits(tiny_model, tmp_path):
    images, boxes, _ = make_scenes(30, seed=3)
    paths = write_png_files(images, tmp_path, "scene_{}.png")
    pipe = Pipeline(
        [("sens", SensitivityTransformer(model=tiny_model, pool=4)), ("box", BoxRegressor(max_iter=5, random_state=0))]
    )
    search = GridSearchCV(pipe, {"sens__aggregation": ["max", "mean"]}, scoring=CorLocScorer(), cv=3)
    search.fit(paths, boxes)
    assert search.predict(paths[:4]).shape == (4, 4)
    from_arrays = pipe.set_params(sens__aggregation=search.best_params_["sens__aggregation"])
    np.testing.assert_allclose(
        from_arrays.fit(np.round(images).astype(np.uint8), boxes).predict(paths[:4]),
        search.best_estimator_.predict(paths[:4]),
        rtol=1e-5,
    )


def test_saved_pipeline_reproduces_its_predictions(tiny_model, scenes, tmp_path):
    X, boxes, _ = scenes
    pipe = Pipeline(
        [("sens", SensitivityTransformer(model=tiny_model)), ("box", BoxRegressor(max_iter=5, random_state=0))]
    ).fit(X[:60], boxes[:60])
    expected = pipe.predict(X[60:80])
    joblib.dump(pipe, tmp_path / "pipe.joblib")
    restored = joblib.load(tmp_path / "pipe.joblib")
    np.testing.assert_array_equal(restored.predict(X[60:80]), expected)
