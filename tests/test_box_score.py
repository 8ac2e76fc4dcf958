"""The box score: features of a map and its box, the fitted probability, and saving it as JSON.

On genuine photos, the issue's target (the better-scored half of ``val`` at least 10 points
above the other) is tested in ``test_real_photos.py``, where the photos' maps are made once.
"""

import json

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_sensloc import BoxScorer, box_score_features, box_scores
from sklearn_sensloc._box_estimators._box_score import BOX_SCORE_FEATURES, CONFIDENCE_FEATURES

COLUMN = {name: i for i, name in enumerate(BOX_SCORE_FEATURES + CONFIDENCE_FEATURES)}


def blob_maps(n, side=16, seed=0):
    """Maps with one bright square each in their top left quarter (and faint noise), and its box."""
    rng = np.random.default_rng(seed)
    maps = rng.random((n, side, side)) * 0.05
    boxes = np.empty((n, 4))
    for i in range(n):
        size = rng.integers(side // 4, side * 3 // 8 + 1)
        top, left = rng.integers(0, side // 2 - size + 1, 2)
        maps[i, top : top + size, left : left + size] += 1.0
        boxes[i] = np.array([left, top, left + size, top + size]) / side
    return maps.reshape(n, -1), boxes


def shifted(boxes):
    """The boxes moved into the bottom right quarter, away from their blob."""
    return boxes + 0.5


# --------------------------------------------------------------------------
# box_score_features
# --------------------------------------------------------------------------


def test_features_by_hand():
    maps = np.zeros((2, 4, 4))
    maps[:, 0:2, 2:4] = 1.0  # top right quarter
    boxes = np.array([[0.5, 0.0, 1.0, 0.5], [0.0, 0.5, 1.0, 1.0]])
    features = box_score_features(maps.reshape(2, -1), boxes)
    assert features.shape == (2, len(BOX_SCORE_FEATURES))
    np.testing.assert_allclose(features[:, COLUMN["log_area"]], np.log([0.25, 0.5]))
    np.testing.assert_allclose(features[:, COLUMN["mass_inside"]], [1.0, 0.0])
    np.testing.assert_allclose(features[:, COLUMN["map_mean"]], [0.25, 0.25])
    # Mass centre (0.75, 0.25): the first box's centre; a quarter of the second's width and
    # one of its heights off its centre (0.5, 0.75).
    np.testing.assert_allclose(features[:, COLUMN["centroid_offset"]], [0.0, np.hypot(0.25, 1.0)])
    np.testing.assert_array_equal(features[:, COLUMN["border_sides"]], [2, 3])


def test_partly_covered_pixels_count_in_part():
    maps = np.ones((1, 4))  # a 2x2 map of even mass
    boxes = [[0.0, 0.0, 0.25, 1.0]]  # half of the left column
    inside = box_score_features(maps, boxes)[0, COLUMN["mass_inside"]]
    assert inside == pytest.approx(0.25)


def test_features_do_not_depend_on_the_maps_normalization():
    maps, boxes = blob_maps(5)
    standardized = (maps - maps.mean(1, keepdims=True)) / maps.std(1, keepdims=True)
    np.testing.assert_allclose(box_score_features(maps * 7.5, boxes),
                               box_score_features(maps, boxes))
    np.testing.assert_allclose(box_score_features(standardized, boxes),
                               box_score_features(maps, boxes), atol=1e-12)


@pytest.mark.parametrize("value", [0.0, 3.0])
def test_a_constant_map_reads_as_an_even_spread(value):
    boxes = np.array([[0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]])
    features = box_score_features(np.full((2, 64), value), boxes)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[:, COLUMN["mass_inside"]], [0.125, 0.25])
    np.testing.assert_allclose(features[:, COLUMN["map_mean"]], 0.0)
    # The centre of mass is the image's, (0.5, 0.5), off the boxes' centres (0.25, 0.125) and
    # (0.75, 0.75) by (0.5, 1.5) and (0.5, 0.5) box sides.
    np.testing.assert_allclose(features[:, COLUMN["centroid_offset"]],
                               [np.hypot(0.5, 1.5), np.hypot(0.5, 0.5)])


def test_a_degenerate_box_gives_finite_features():
    maps, _ = blob_maps(2)
    boxes = np.array([[0.3, 0.3, 0.3, 0.3], [0.0, 0.5, 1.0, 0.5]])
    features = box_score_features(maps, boxes)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(features[:, COLUMN["log_area"]], np.log(1 / 256))


def test_rectangular_maps_need_their_shape():
    maps = np.zeros((1, 2, 6))
    maps[0, :, :2] = 1.0  # the left third
    features = box_score_features(maps.reshape(1, -1), [[0, 0, 1 / 3, 1]], map_shape=(2, 6))
    assert features[0, COLUMN["mass_inside"]] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not a square number: pass map_shape"):
        box_score_features(maps.reshape(1, -1), [[0, 0, 1 / 3, 1]])
    with pytest.raises(ValueError, match=r"map_shape=\(3, 3\) does not match maps of 12 pixels"):
        box_score_features(maps.reshape(1, -1), [[0, 0, 1, 1]], map_shape=(3, 3))


@pytest.mark.parametrize(
    "maps, boxes, message",
    [
        (np.zeros(16), [[0, 0, 1, 1]], r"flattened maps \(n, height \* width\); got shape \(16,\)"),
        (np.zeros((0, 16)), np.zeros((0, 4)), r"got shape \(0, 16\)"),
        (np.array([[0.0] * 15 + [np.nan]] * 2), [[0, 0, 1, 1]] * 2, "Map 0 contains NaN"),
        (np.zeros((2, 16)), [[0, 0, 1, 1]], "maps has 2 rows but boxes has 1 boxes"),
        (np.zeros((1, 16)), [[0, 0, 1.5, 1]], "Box 0 of boxes lies outside"),
        (np.zeros((1, 16)), [[0, 0, 1]], r"boxes must be an array of boxes of shape \(n_samples, 4\)"),
    ],
)
def test_bad_input_is_named(maps, boxes, message):
    with pytest.raises(ValueError, match=message):
        box_score_features(maps, boxes)


def test_class_probabilities_add_the_classifier_confidence():
    maps, boxes = blob_maps(3)
    probabilities = np.array([[1.0, 0.0, 0.0, 0.0], [0.25] * 4, [0.7, 0.1, 0.1, 0.1]])
    features = box_score_features(maps, boxes, class_probabilities=probabilities)
    assert features.shape == (3, len(BOX_SCORE_FEATURES) + len(CONFIDENCE_FEATURES))
    np.testing.assert_array_equal(features[:, : len(BOX_SCORE_FEATURES)],
                                  box_score_features(maps, boxes))
    np.testing.assert_allclose(features[:, COLUMN["top_probability"]], [1.0, 0.25, 0.7])
    np.testing.assert_allclose(features[:, COLUMN["probability_entropy"]],
                               [0.0, np.log(4), -0.7 * np.log(0.7) - 0.3 * np.log(0.1)])


@pytest.mark.parametrize("probabilities, message", [
    (np.array([[2.0, -1.0, 0.5]] * 3), "Row 0 of class_probabilities is not probabilities.*softmax"),
    (np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.9]]), "Row 2 of class_probabilities"),
    (np.array([[0.5, 0.5], [np.nan, 0.5], [0.5, 0.5]]), "Row 1 of class_probabilities"),
    (np.full((2, 2), 0.5), r"one row of at least 2 class probabilities per map \(3\); got shape \(2, 2\)"),
    (np.ones((3, 1)), r"got shape \(3, 1\)"),
])
def test_bad_class_probabilities_are_named(probabilities, message):
    maps, boxes = blob_maps(3)
    with pytest.raises(ValueError, match=message):
        box_score_features(maps, boxes, class_probabilities=probabilities)


# --------------------------------------------------------------------------
# box_scores and BoxScorer
# --------------------------------------------------------------------------


def test_box_scores_are_the_logistic_function_of_the_features():
    maps, boxes = blob_maps(6)
    coef, intercept = np.array([0.5, 3.0, -1.0, -0.7, 0.2]), -1.5
    expected = 1 / (1 + np.exp(-(box_score_features(maps, boxes) @ coef + intercept)))
    np.testing.assert_allclose(box_scores(maps, boxes, coef, intercept), expected)


@pytest.mark.parametrize("coef, intercept, message", [
    ([1.0, 2.0], 0.0, r"coef must hold 5 weights.*got shape \(2,\)"),
    ([1.0, np.nan, 0, 0, 0], 0.0, "must be finite"),
    ([1.0, 0, 0, 0, 0], np.inf, "must be finite"),
    ([1.0, 0, 0, 0, 0], "high", "intercept must be a number; got 'high'"),
])
def test_box_scores_refuses_bad_weights(coef, intercept, message):
    maps, boxes = blob_maps(2)
    with pytest.raises(ValueError, match=message):
        box_scores(maps, boxes, coef, intercept)


def test_box_scores_needs_class_probabilities_for_seven_weights():
    maps, boxes = blob_maps(2)
    probabilities = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"coef must hold 5 weights.*got shape \(7,\)"):
        box_scores(maps, boxes, np.ones(7), 0.0)
    with pytest.raises(ValueError, match=r"7 weights.*with class_probabilities.*got shape \(5,\)"):
        box_scores(maps, boxes, np.ones(5), 0.0, class_probabilities=probabilities)
    assert box_scores(maps, boxes, np.ones(7), 0.0, class_probabilities=probabilities).shape == (2,)


@pytest.fixture(scope="module")
def fitted():
    """A scorer fitted on boxes around each map's blob (right) and boxes beside it (wrong)."""
    maps, boxes = blob_maps(60)
    wrong = shifted(boxes)
    hits = np.arange(60) < 30
    predicted = np.where(hits[:, None], boxes, wrong)
    return BoxScorer().fit(maps, predicted, hits)


def test_scorer_ranks_a_concentrated_agreeing_map_above_a_diffuse_one(fitted):
    side = 16
    box = np.array([[0.25, 0.25, 0.625, 0.625]])
    concentrated = np.zeros((side, side))
    concentrated[4:10, 4:10] = 1.0
    diffuse = np.random.default_rng(1).random((side, side))
    maps = np.stack([concentrated, diffuse]).reshape(2, -1)
    scores = fitted.score_boxes(maps, np.repeat(box, 2, axis=0))
    assert scores[0] > scores[1]
    # And a box beside the map's blob scores below the box around it.
    beside = fitted.score_boxes(maps[:1], [[0.625, 0.625, 1.0, 1.0]])
    assert scores[0] > beside[0]


def test_scorer_separates_new_right_boxes_from_wrong_ones(fitted):
    maps, boxes = blob_maps(40, seed=3)
    right = fitted.score_boxes(maps, boxes)
    wrong = fitted.score_boxes(maps, shifted(boxes))
    assert right.shape == (40,)
    assert ((right > 0) & (right < 1)).all()
    assert right.min() > wrong.max()
    assert right.mean() > 0.9 > 0.1 > wrong.mean()


def test_scorer_computes_what_box_scores_computes(fitted):
    maps, boxes = blob_maps(5, seed=4)
    np.testing.assert_allclose(
        fitted.score_boxes(maps, boxes),
        box_scores(maps, boxes, fitted.coef_, fitted.intercept_, fitted.map_shape_),
    )
    assert fitted.base_rate_ == 0.5
    assert fitted.map_shape_ == (16, 16)


def test_scorer_saves_as_json(fitted):
    maps, boxes = blob_maps(5, seed=5)
    text = json.dumps(fitted.to_dict())
    for state in (text, json.loads(text)):
        restored = BoxScorer.from_dict(state)
        np.testing.assert_array_equal(restored.score_boxes(maps, boxes),
                                      fitted.score_boxes(maps, boxes))
        assert restored.get_params() == fitted.get_params() | {"map_shape": (16, 16)}


def test_a_scorer_fitted_with_confidence_ranks_by_it_and_needs_it():
    # The same maps and boxes, right when the classifier was sure, wrong when it was not.
    maps, boxes = blob_maps(60)
    sure = np.arange(60) % 2 == 0
    probabilities = np.where(sure[:, None], [0.95, 0.05], [0.5, 0.5])
    scorer = BoxScorer().fit(maps, boxes, sure, class_probabilities=probabilities)
    assert scorer.features_ == BOX_SCORE_FEATURES + CONFIDENCE_FEATURES
    scores = scorer.score_boxes(maps, boxes, probabilities)
    assert scores[sure].min() > scores[~sure].max()
    restored = BoxScorer.from_dict(json.loads(json.dumps(scorer.to_dict())))
    np.testing.assert_array_equal(restored.score_boxes(maps, boxes, probabilities), scores)
    with pytest.raises(ValueError, match="fitted with class_probabilities: pass"):
        scorer.score_boxes(maps, boxes)
    plain = BoxScorer().fit(maps, boxes, sure)
    assert plain.features_ == BOX_SCORE_FEATURES
    with pytest.raises(ValueError, match="fitted on maps and boxes alone: do not pass"):
        plain.score_boxes(maps, boxes, probabilities)


@pytest.mark.parametrize("change, message", [
    (lambda s: {**s, "format": 99}, "Not a box score of format 1 .found 99.: fit the localizer again"),
    (lambda s: [1, 2], "Not a box score of format 1 .found 'list'."),
    (lambda s: {**s, "features": ["log_area"]}, "fitted on features .'log_area'.; this version"),
    (lambda s: {k: v for k, v in s.items() if k != "coef"}, "incomplete or malformed: KeyError"),
    (lambda s: {**s, "intercept": "high"}, "incomplete or malformed"),
    (lambda s: {**s, "map_shape": [16]}, "incomplete or malformed"),
    (lambda s: {**s, "map_shape": [0, 16]}, "invalid map shape"),
    (lambda s: {**s, "coef": [1.0, 2.0]}, "non-finite or missing weights"),
    (lambda s: {**s, "coef": [1.0, 2.0, None, 0, 0]}, "non-finite or missing weights"),
])
def test_a_bad_saved_score_gets_one_sentence(fitted, change, message):
    with pytest.raises(ValueError, match=message):
        BoxScorer.from_dict(change(fitted.to_dict()))


def test_scorer_refuses_maps_of_another_size(fitted):
    with pytest.raises(ValueError, match="X has 64 features, but BoxScorer is expecting 256"):
        fitted.score_boxes(np.zeros((1, 64)), [[0, 0, 1, 1]])


def test_scorer_needs_fitting():
    with pytest.raises(NotFittedError):
        BoxScorer().score_boxes(np.zeros((1, 16)), [[0, 0, 1, 1]])
    with pytest.raises(NotFittedError):
        BoxScorer().to_dict()


@pytest.mark.parametrize("hits, message", [
    (np.ones(10, bool), "all 10 are right"),
    (np.zeros(10), "all 10 are wrong"),
    (np.arange(9) % 2, r"one value per map \(10\); got shape \(9,\)"),
    (np.r_[np.arange(9) % 2, 0.5], "must be True or False .or 1 or 0. per box; got 0.5"),
])
def test_scorer_refuses_bad_hits(hits, message):
    maps, boxes = blob_maps(10)
    with pytest.raises(ValueError, match=message):
        BoxScorer().fit(maps, boxes, hits)


def test_scorer_validates_its_parameters():
    maps, boxes = blob_maps(10)
    with pytest.raises(ValueError, match="The 'C' parameter of BoxScorer must be"):
        BoxScorer(C=0).fit(maps, boxes, np.arange(10) % 2)
