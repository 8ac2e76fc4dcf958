"""CorLoc: corloc_score, correct_localizations and CorLocScorer."""

import numpy as np
import pytest
from conftest import FrameLike
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator
from sklearn.metrics import make_scorer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_sensloc import CenterBoxBaseline, CorLocScorer, box_iou, corloc_interval, corloc_score
from sklearn_sensloc._metrics._boxes import to_valid_boxes
from sklearn_sensloc._metrics._corloc import correct_localizations

FAST = settings(max_examples=15, deadline=None, database=None)

FULL = [0.0, 0.0, 1.0, 1.0]
LEFT_HALF = [0.0, 0.0, 0.5, 1.0]  # IoU with FULL is exactly 0.5


# --------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------


@st.composite
def box(draw, min_size=0.0):
    x0 = draw(st.floats(0.0, 1.0 - min_size))
    y0 = draw(st.floats(0.0, 1.0 - min_size))
    x1 = draw(st.floats(x0 + min_size, 1.0))
    y1 = draw(st.floats(y0 + min_size, 1.0))
    return [x0, y0, x1, y1]


def _to_boxes(raw, min_size):
    """Map an (n, 4) array of numbers in [0, 1] onto valid boxes, sides >= min_size."""
    low = raw[:, :2] * (1.0 - min_size)
    high = np.minimum(low + min_size + raw[:, 2:] * (1.0 - min_size - low), 1.0)
    return np.hstack([low, high])


def box_arrays(min_size=0.0, min_n=1, max_n=8, n=None):
    rows = st.just(n) if n is not None else st.integers(min_n, max_n)
    return hnp.arrays(
        np.float64, st.tuples(rows, st.just(4)), elements=st.floats(0.0, 1.0)
    ).map(lambda raw: _to_boxes(raw, min_size))


@st.composite
def paired_boxes(draw, min_size=0.0):
    """(y_true, y_pred) of equal length, one box per image."""
    n = draw(st.integers(1, 8))
    return draw(box_arrays(min_size, n=n)), draw(box_arrays(min_size, n=n))


# --------------------------------------------------------------------------
# corloc_interval: hits, never boxes
# --------------------------------------------------------------------------

BOXES = np.array([FULL, LEFT_HALF, FULL])
PASS_HITS = r"takes per-image hits \(True/False\), not boxes: pass correct_localizations\(y_true, y_pred\)"


@pytest.mark.parametrize("args", [
    (BOXES, BOXES),  # corloc_interval(y_true, y_pred)
    (BOXES,),
    ([BOXES[:2], BOXES[:1]],),  # several true boxes per image
    ([0.1, 0.2, 0.5, 0.6],),  # one box, not flags
])
def test_corloc_interval_given_boxes_says_what_to_pass(args):
    with pytest.raises(ValueError, match=PASS_HITS):
        corloc_interval(*args)


def test_corloc_interval_of_the_hits_it_asks_for():
    hits = correct_localizations(BOXES, np.array([FULL, FULL, FULL]))
    assert hits.tolist() == [True, False, True]
    assert corloc_interval(hits) == corloc_interval([1, 0, 1]) == corloc_interval([True, False, True])
    with pytest.raises(ValueError, match=r"one True/False per image \(1-D\); got shape \(1, 3\)"):
        corloc_interval([hits])


# --------------------------------------------------------------------------
# corloc_score: hand cases
# --------------------------------------------------------------------------


def test_docstring_example():
    truth = [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]]
    score = corloc_score(truth, [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]])
    assert score == 50.0
    assert type(score) is float


def test_perfect_and_zero():
    truth = np.array([[0.1, 0.2, 0.6, 0.7], [0.3, 0.3, 0.9, 0.8], FULL])
    assert corloc_score(truth, truth) == 100.0
    far = np.array([[0.8, 0.8, 1.0, 1.0], [0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.1, 0.1]])
    assert corloc_score(truth, far) == 0.0


def test_exact_half_iou_is_not_a_hit():
    # The IoU is exactly 0.5 in floating point ...
    assert box_iou([LEFT_HALF], [FULL])[0] == 0.5
    # ... and the rule is IoU > threshold, so it is not a correct localization.
    assert corloc_score([FULL], [LEFT_HALF]) == 0.0
    assert corloc_score([LEFT_HALF], [FULL]) == 0.0
    assert corloc_score([FULL], [[0.0, 0.0, 1.0, 0.5]]) == 0.0
    # Just above 0.5 is a hit.
    assert corloc_score([FULL], [[0.0, 0.0, 0.5 + 1e-9, 1.0]]) == 100.0
    # Just below is not.
    assert corloc_score([FULL], [[0.0, 0.0, 0.5 - 1e-9, 1.0]]) == 0.0


def test_exact_threshold_is_not_a_hit_for_other_thresholds():
    quarter = [0.0, 0.0, 0.5, 0.5]  # IoU with FULL exactly 0.25
    assert box_iou([quarter], [FULL])[0] == 0.25
    assert corloc_score([FULL], [quarter], iou_threshold=0.25) == 0.0
    assert corloc_score([FULL], [quarter], iou_threshold=0.2499) == 100.0
    assert corloc_score([FULL], [quarter], iou_threshold=0.5) == 0.0


def test_iou_threshold_parameter():
    truth = np.tile(FULL, (4, 1))
    # IoUs 0.9, 0.7, 0.5, 0.3 (widths against the full box)
    pred = np.array([[0, 0, w, 1] for w in (0.9, 0.7, 0.5, 0.3)], dtype=float)
    np.testing.assert_allclose(box_iou(truth, pred), [0.9, 0.7, 0.5, 0.3])
    assert corloc_score(truth, pred) == 50.0  # 0.9, 0.7
    assert corloc_score(truth, pred, iou_threshold=0.75) == 25.0  # 0.9
    assert corloc_score(truth, pred, iou_threshold=0.2) == 100.0
    assert corloc_score(truth, pred, iou_threshold=0.95) == 0.0
    assert corloc_score(truth, pred, 0.6) == 50.0  # positional


def test_threshold_zero_means_any_overlap():
    truth = np.array([FULL, [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5]])
    pred = np.array([[0.99, 0.99, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0], [0.6, 0.6, 1.0, 1.0]])
    # tiny overlap, touching corners, disjoint
    assert corloc_score(truth, pred, iou_threshold=0.0) == pytest.approx(100 / 3)


def test_degenerate_boxes_never_count():
    point = [0.5, 0.5, 0.5, 0.5]
    assert corloc_score([point], [point]) == 0.0
    assert corloc_score([point], [point], iou_threshold=0.0) == 0.0
    assert corloc_score([FULL], [point], iou_threshold=0.0) == 0.0


def test_fraction_is_counted_over_images():
    truth = np.tile([0.2, 0.2, 0.8, 0.8], (7, 1))
    pred = truth.copy()
    pred[[1, 4]] = [0.0, 0.0, 0.1, 0.1]
    assert corloc_score(truth, pred) == pytest.approx(500 / 7)


def test_accepts_lists_tuples_float32_and_ints():
    assert corloc_score(((0, 0, 1, 1),), [(0, 0, 1, 1)]) == 100.0
    truth = np.array([[0.1, 0.1, 0.9, 0.9]], dtype=np.float32)
    assert corloc_score(truth, truth.astype(np.float64)) == 100.0


def test_accepts_dataframe_like_array():
    truth = [[0.1, 0.1, 0.9, 0.9], [0.2, 0.2, 0.4, 0.4]]
    pred = [[0.1, 0.1, 0.9, 0.9], [0.6, 0.6, 0.7, 0.7]]
    assert corloc_score(FrameLike(truth), FrameLike(pred)) == 50.0


def test_inputs_are_not_modified():
    truth = np.array([[0.1, 0.1, 0.9, 0.9], [0.2, 0.2, 0.4, 0.4]])
    pred = np.array([[0.1, 0.1, 0.8, 0.9], [0.6, 0.6, 0.7, 0.7]])
    t0, p0 = truth.copy(), pred.copy()
    corloc_score(truth, pred)
    np.testing.assert_array_equal(truth, t0)
    np.testing.assert_array_equal(pred, p0)


# --------------------------------------------------------------------------
# corloc_score: several ground-truth boxes per image
# --------------------------------------------------------------------------


def test_multi_ground_truth_hit_if_any_matches():
    truth = [
        np.array([[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]]),  # pred matches the 2nd
        np.array([[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]]),  # pred matches neither
        np.array([[0.1, 0.1, 0.9, 0.9]]),  # one box, matched
    ]
    pred = [[0.6, 0.6, 1.0, 1.0], [0.3, 0.3, 0.7, 0.7], [0.1, 0.1, 0.9, 0.9]]
    assert corloc_score(truth, pred) == pytest.approx(200 / 3)
    np.testing.assert_array_equal(correct_localizations(truth, pred), [True, False, True])


def test_multi_ground_truth_ragged_nested_lists():
    truth = [
        [[0.0, 0.0, 0.4, 0.4]],
        [[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]],
        [0.2, 0.2, 0.8, 0.8],  # a bare box for an image is one box
    ]
    pred = [[0.0, 0.0, 0.4, 0.4], [0.0, 0.5, 0.5, 1.0], [0.0, 0.0, 0.1, 0.1]]
    np.testing.assert_array_equal(correct_localizations(truth, pred), [True, True, False])
    assert corloc_score(truth, pred) == pytest.approx(200 / 3)


def test_multi_ground_truth_three_d_array():
    truth = np.array(
        [
            [[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]],
            [[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]],
            [[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]],
            [[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0]],
        ]
    )
    pred = [[0.0, 0.0, 0.4, 0.4], [0.6, 0.6, 1.0, 1.0], [0.3, 0.3, 0.7, 0.7], [0, 0, 1, 1]]
    assert corloc_score(truth, pred) == 50.0
    # same as the ragged-list form
    assert corloc_score(list(truth), pred) == 50.0


def test_multi_ground_truth_exact_half_still_strict():
    truth = [np.array([FULL, [0.0, 0.0, 0.1, 0.1]])]
    assert corloc_score(truth, [LEFT_HALF]) == 0.0
    assert corloc_score(truth, [LEFT_HALF], iou_threshold=0.49) == 100.0


def test_multi_ground_truth_matches_best_of_single_box_scores():
    rng = np.random.default_rng(1)
    truth = [to_valid_boxes(rng.uniform(0, 1, (k, 4))) for k in (1, 3, 2, 5, 4)]
    pred = to_valid_boxes(rng.uniform(0, 1, (5, 4)))
    expected = [any(box_iou([row], [p])[0] > 0.3 for row in t) for t, p in zip(truth, pred)]
    np.testing.assert_array_equal(correct_localizations(truth, pred, 0.3), expected)


def test_multi_ground_truth_errors_name_the_image():
    truth = [[[0, 0, 1, 1]], [[0, 0, 1, 1], [0.5, 0.5, 0.2, 0.9]]]
    with pytest.raises(ValueError, match=r"Box 1 of y_true\[1\] has xmin > xmax"):
        corloc_score(truth, [FULL, FULL])
    with pytest.raises(ValueError, match=r"y_true\[1\] contains no boxes"):
        corloc_score([[FULL], np.zeros((0, 4))], [FULL, FULL])


# --------------------------------------------------------------------------
# corloc_score: errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "truth, pred",
    [
        ([FULL, FULL], [FULL]),
        ([FULL], [FULL, FULL]),
        ([[FULL], [FULL, FULL], [FULL]], [FULL, FULL]),
        (np.tile(FULL, (3, 2, 1)), np.tile(FULL, (4, 1))),
    ],
)
def test_length_mismatch_raises(truth, pred):
    with pytest.raises(ValueError, match=r"y_true has \d+ images but y_pred has \d+ boxes"):
        corloc_score(truth, pred)


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 1.5, float("nan"), float("inf"), -np.inf])
def test_invalid_threshold_raises(threshold):
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        corloc_score([FULL], [FULL], iou_threshold=threshold)
    with pytest.raises(ValueError, match="iou_threshold must be in"):
        CorLocScorer(threshold)(CenterBoxBaseline().fit(np.zeros((1, 1)), [FULL]), np.zeros((1, 1)), [FULL])


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.999, np.float32(0.5), 0])
def test_valid_thresholds_accepted(threshold):
    assert corloc_score([FULL], [FULL], iou_threshold=threshold) == 100.0


@pytest.mark.parametrize(
    "truth, pred, match",
    [
        ([[0, 0, 1]], [FULL], "y_true must be an array of boxes"),
        ([FULL], [[0, 0, 1]], "y_pred must be an array of boxes"),
        ([FULL], [[FULL]], "y_pred must be an array of boxes"),  # y_pred is one box per image
        ([FULL], [[0, 0, np.nan, 1]], "Box 0 of y_pred contains NaN or inf"),
        ([FULL, [0, 0, 2, 1]], [FULL, FULL], "Box 1 of y_true lies outside"),
        ([FULL], [[0.5, 0, 0.4, 1]], "Box 0 of y_pred has xmin > xmax"),
        ([], [], "y_true must be an array of boxes"),
        (np.zeros((0, 4)), np.zeros((0, 4)), "y_true contains no boxes"),
        (FULL, FULL, "y_true must be an array of boxes"),  # a bare box, not a list of boxes
        (0.5, [FULL], "y_true must be an array of boxes"),
        (np.array(0.5), [FULL], "y_true must be an array of boxes"),
        (None, [FULL], "y_true must be an array of boxes"),
        ([FULL], None, "y_pred must be an array of boxes"),
    ],
)
def test_invalid_boxes_raise_value_error(truth, pred, match):
    with pytest.raises(ValueError, match=match):
        corloc_score(truth, pred)


# --------------------------------------------------------------------------
# corloc_score: properties
# --------------------------------------------------------------------------


@FAST
@given(box_arrays(min_size=1e-3), st.floats(0.0, 0.999))
def test_corloc_of_boxes_with_themselves_is_100(truth, threshold):
    assert corloc_score(truth, truth, iou_threshold=threshold) == 100.0


@FAST
@given(paired_boxes(), st.floats(0.0, 0.999))
def test_corloc_in_range_and_equals_mean_of_hits(pair, threshold):
    truth, pred = pair
    score = corloc_score(truth, pred, iou_threshold=threshold)
    assert type(score) is float
    assert 0.0 <= score <= 100.0
    hits = box_iou(truth, pred) > threshold
    assert score == pytest.approx(100.0 * hits.mean())
    # the score is a multiple of 100 / n
    assert score * len(truth) / 100.0 == pytest.approx(round(score * len(truth) / 100.0))


@FAST
@given(paired_boxes(), st.floats(0.0, 0.999), st.floats(0.0, 0.999))
def test_corloc_non_increasing_in_threshold(pair, t1, t2):
    truth, pred = pair
    low, high = sorted((t1, t2))
    assert corloc_score(truth, pred, low) >= corloc_score(truth, pred, high)


@FAST
@given(paired_boxes(), st.randoms(use_true_random=False))
def test_corloc_permutation_invariant(pair, random):
    truth, pred = pair
    order = list(range(len(truth)))
    random.shuffle(order)
    assert corloc_score(truth[order], pred[order]) == pytest.approx(corloc_score(truth, pred))


@FAST
@given(paired_boxes())
def test_corloc_symmetric_for_single_boxes(pair):
    truth, pred = pair
    assert corloc_score(truth, pred) == corloc_score(pred, truth)


@FAST
@given(paired_boxes(), st.data())
def test_adding_ground_truth_boxes_never_lowers_corloc(pair, data):
    truth, pred = pair
    before = corloc_score(truth, pred)
    extra = [data.draw(box_arrays(min_n=0, max_n=3)) for _ in range(len(truth))]
    positions = [data.draw(st.integers(0, len(e))) for e in extra]
    more = []
    for t, e, pos in zip(truth, extra, positions):
        rows = [list(r) for r in e]
        rows.insert(pos, list(t))  # original box anywhere among the extras
        more.append(np.array(rows))
    after = corloc_score(more, pred)
    assert after >= before
    hits_before = correct_localizations(truth, pred)
    hits_after = correct_localizations(more, pred)
    assert (hits_after >= hits_before).all()


@FAST
@given(paired_boxes(), st.integers(1, 4))
def test_duplicated_ground_truth_boxes_change_nothing(pair, k):
    truth, pred = pair
    stacked = np.repeat(truth[:, None, :], k, axis=1)  # (n, k, 4)
    assert corloc_score(stacked, pred) == corloc_score(truth, pred)


# --------------------------------------------------------------------------
# corloc_score: fuzz
# --------------------------------------------------------------------------

wild_floats = st.one_of(
    st.floats(0.0, 1.0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, 0.5, -0.0, 1e308, -1e308, np.nan, np.inf, 5e-324]),
)

wild_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.int64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    elements=dict(allow_nan=True, allow_infinity=True),
)

wild_ragged = st.lists(
    st.one_of(
        st.lists(wild_floats, max_size=6),
        st.lists(st.lists(wild_floats, min_size=4, max_size=4), max_size=3),
        st.lists(st.lists(wild_floats, max_size=5), max_size=3),
        wild_floats,
    ),
    max_size=5,
)

valid_inputs = st.one_of(
    box_arrays(),
    st.lists(box_arrays(max_n=3), min_size=1, max_size=5),
)

wild_inputs = st.one_of(wild_arrays, wild_ragged, valid_inputs, st.none(), wild_floats)


@settings(max_examples=60, deadline=None, database=None)
@given(wild_inputs, wild_inputs, st.one_of(st.just(0.5), st.floats(allow_nan=True)))
def test_fuzz_corloc_returns_percentage_or_raises_value_error(truth, pred, threshold):
    try:
        score = corloc_score(truth, pred, iou_threshold=threshold)
    except ValueError:
        return
    assert type(score) is float
    assert 0.0 <= score <= 100.0


def _mutate(arr, data):
    """One random corruption of a valid (n, 4) box array."""
    kind = data.draw(st.sampled_from(["value", "drop_col", "add_row", "ragged", "nest", "none"]))
    if kind == "value":
        arr = arr.copy()
        i = data.draw(st.integers(0, len(arr) - 1))
        j = data.draw(st.integers(0, 3))
        arr[i, j] = data.draw(wild_floats)
        return arr
    if kind == "drop_col":
        return arr[:, :3]
    if kind == "add_row":
        return np.vstack([arr, arr[:1]])
    if kind == "ragged":
        rows = arr.tolist()
        rows[data.draw(st.integers(0, len(rows) - 1))].pop()
        return rows
    if kind == "nest":
        return arr[:, None, :]
    return arr


@settings(max_examples=40, deadline=None, database=None)
@given(paired_boxes(), st.data())
def test_fuzz_corrupted_valid_input_scores_or_raises_value_error(pair, data):
    truth, pred = pair
    truth = _mutate(truth, data)
    pred = _mutate(pred, data)
    try:
        score = corloc_score(truth, pred)
    except ValueError:
        return
    assert type(score) is float
    assert 0.0 <= score <= 100.0


@settings(max_examples=20, deadline=None, database=None)
@given(st.data())
def test_fuzz_valid_lengths_always_score(data):
    n = data.draw(st.integers(1, 6))
    truth = data.draw(
        st.one_of(
            box_arrays(n=n).map(lambda a: a.tolist()),
            st.lists(box_arrays(max_n=3), min_size=n, max_size=n),
            st.lists(box_arrays(max_n=3).map(lambda a: a.tolist()), min_size=n, max_size=n),
        )
    )
    pred = data.draw(st.one_of(box_arrays(n=n), st.lists(box(), min_size=n, max_size=n)))
    score = corloc_score(truth, pred)
    assert 0.0 <= score <= 100.0


# --------------------------------------------------------------------------
# CorLocScorer
# --------------------------------------------------------------------------


def _dataset(n=12):
    """Boxes whose CorLoc against the center-box baseline differs between folds."""
    rng = np.random.default_rng(0)
    centers = rng.uniform(0.3, 0.7, (n, 2))
    sizes = rng.uniform(0.2, 0.6, (n, 2))
    y = np.clip(np.hstack([centers - sizes / 2, centers + sizes / 2]), 0, 1)
    X = rng.normal(size=(n, 3))
    return X, y


def _manual_cv(X, y, threshold=0.5, n_splits=3):
    scores = []
    for train, test in KFold(n_splits).split(X):
        model = CenterBoxBaseline().fit(X[train], y[train])
        scores.append(corloc_score(y[test], model.predict(X[test]), threshold))
    return np.array(scores)


def test_scorer_direct_call():
    X, y = _dataset()
    model = CenterBoxBaseline().fit(X, y)
    expected = corloc_score(y, model.predict(X))
    assert CorLocScorer()(model, X, y) == expected
    assert model.score(X, y) == expected
    assert CorLocScorer(0.2)(model, X, y) == corloc_score(y, model.predict(X), 0.2)


def test_scorer_with_multi_box_ground_truth():
    X = np.zeros((2, 1))
    model = CenterBoxBaseline().fit(X, [[0.25, 0.25, 0.75, 0.75]] * 2)
    truth = [[[0, 0, 0.1, 0.1], [0.25, 0.25, 0.75, 0.75]], [[0, 0, 0.1, 0.1]]]
    assert CorLocScorer()(model, X, truth) == 50.0


def test_scorer_cross_val_score():
    X, y = _dataset()
    scores = cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=CorLocScorer())
    expected = _manual_cv(X, y)
    np.testing.assert_allclose(scores, expected)
    assert len(set(scores.tolist())) > 1  # the folds really differ
    assert ((scores >= 0) & (scores <= 100)).all()


def test_scorer_docstring_example():
    X = np.zeros((6, 2))
    y = np.tile([0.2, 0.2, 0.8, 0.8], (6, 1))
    scores = cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=CorLocScorer())
    np.testing.assert_array_equal(scores, [100.0, 100.0, 100.0])


def test_make_scorer_gives_same_numbers():
    X, y = _dataset()
    ours = cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=CorLocScorer())
    sk = cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=make_scorer(corloc_score))
    np.testing.assert_array_equal(ours, sk)
    ours75 = cross_val_score(CenterBoxBaseline(), X, y, cv=3, scoring=CorLocScorer(0.75))
    sk75 = cross_val_score(
        CenterBoxBaseline(), X, y, cv=3, scoring=make_scorer(corloc_score, iou_threshold=0.75)
    )
    np.testing.assert_array_equal(ours75, sk75)
    np.testing.assert_allclose(ours75, _manual_cv(X, y, 0.75))


def test_cross_validate_with_dict_of_scorers():
    X, y = _dataset()
    result = cross_validate(
        CenterBoxBaseline(),
        X,
        y,
        cv=3,
        scoring={"corloc": CorLocScorer(), "corloc75": CorLocScorer(0.75)},
        return_train_score=True,
    )
    np.testing.assert_allclose(result["test_corloc"], _manual_cv(X, y, 0.5))
    np.testing.assert_allclose(result["test_corloc75"], _manual_cv(X, y, 0.75))
    assert (result["test_corloc75"] <= result["test_corloc"]).all()
    assert result["train_corloc"].shape == (3,)


class _ShrunkCenterBox(BaseEstimator):
    """A center box scaled by ``factor``: a tunable estimator for GridSearchCV."""

    def __init__(self, factor=1.0):
        self.factor = factor

    def fit(self, X, y):
        self.base_ = CenterBoxBaseline().fit(X, y)
        return self

    def predict(self, X):
        boxes = self.base_.predict(X)
        half = (boxes[:, 2:] - boxes[:, :2]) / 2 * self.factor
        return np.clip(np.hstack([0.5 - half, 0.5 + half]), 0, 1)


def test_grid_search_with_center_box_baseline():
    X, y = _dataset()
    pipe = Pipeline([("scale", FunctionTransformer()), ("box", CenterBoxBaseline())])
    search = GridSearchCV(
        pipe, {"scale__validate": [False, True]}, scoring=CorLocScorer(), cv=3
    ).fit(X, y)
    expected = _manual_cv(X, y).mean()
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], [expected, expected])
    assert search.best_score_ == pytest.approx(expected)
    # search.score uses the scorer on the refitted pipeline
    assert search.score(X, y) == corloc_score(y, search.predict(X))


def test_grid_search_picks_the_best_corloc():
    X, y = _dataset(30)
    search = GridSearchCV(
        _ShrunkCenterBox(), {"factor": [0.05, 1.0, 3.0]}, scoring=CorLocScorer(), cv=3
    ).fit(X, y)
    means = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"factor": 1.0}
    assert means[1] > means[0]
    assert means[0] == 0.0  # tiny boxes never reach IoU 0.5
    # same numbers as make_scorer
    search_sk = GridSearchCV(
        _ShrunkCenterBox(), {"factor": [0.05, 1.0, 3.0]}, scoring=make_scorer(corloc_score), cv=3
    ).fit(X, y)
    np.testing.assert_array_equal(means, search_sk.cv_results_["mean_test_score"])


def test_grid_search_multimetric_refit():
    X, y = _dataset()
    search = GridSearchCV(
        _ShrunkCenterBox(),
        {"factor": [0.5, 1.0]},
        scoring={"corloc": CorLocScorer(), "corloc75": CorLocScorer(0.75)},
        refit="corloc",
        cv=3,
    ).fit(X, y)
    assert "mean_test_corloc75" in search.cv_results_
    assert (search.cv_results_["mean_test_corloc75"] <= search.cv_results_["mean_test_corloc"]).all()


def test_sample_weight_gives_weighted_mean():
    X = np.zeros((4, 1))
    model = CenterBoxBaseline().fit(X, np.tile([0.25, 0.25, 0.75, 0.75], (4, 1)))
    y = np.array([[0.25, 0.25, 0.75, 0.75], [0.2, 0.2, 0.8, 0.8], [0, 0, 0.1, 0.1], [0, 0, 1, 1]])
    hits = correct_localizations(y, model.predict(X))
    np.testing.assert_array_equal(hits, [True, True, False, False])
    scorer = CorLocScorer()
    assert scorer(model, X, y) == 50.0
    assert scorer(model, X, y, sample_weight=np.ones(4)) == 50.0
    assert scorer(model, X, y, sample_weight=[3, 1, 0, 0]) == 100.0
    assert scorer(model, X, y, sample_weight=[0, 0, 1, 1]) == 0.0
    assert scorer(model, X, y, sample_weight=[1, 0, 1, 2]) == pytest.approx(25.0)
    assert scorer(model, X, y, sample_weight=[0.5, 0.25, 0.25, 0.0]) == pytest.approx(75.0)
    # threshold is honoured on the weighted path too
    assert CorLocScorer(0.99)(model, X, y, sample_weight=[1, 1, 1, 1]) == 25.0
    assert type(scorer(model, X, y, sample_weight=np.ones(4))) is float


def test_corloc_score_and_estimator_score_weigh_images():
    X = np.zeros((4, 1))
    model = CenterBoxBaseline().fit(X, np.tile([0.25, 0.25, 0.75, 0.75], (4, 1)))
    y = np.array([[0.25, 0.25, 0.75, 0.75], [0.2, 0.2, 0.8, 0.8], [0, 0, 0.1, 0.1], [0, 0, 1, 1]])
    pred = model.predict(X)
    for weights, expected in [(None, 50.0), ([3, 1, 0, 0], 100.0), ([1, 0, 1, 2], 25.0),
                              ([0.5, 0.25, 0.25, 0.0], 75.0)]:
        assert corloc_score(y, pred, sample_weight=weights) == pytest.approx(expected)
        assert model.score(X, y, sample_weight=weights) == pytest.approx(expected)
        assert CorLocScorer()(model, X, y, sample_weight=weights) == pytest.approx(expected)
    # Integer weights count an image that many times.
    repeated = corloc_score(np.repeat(y, [1, 0, 1, 2], axis=0), np.repeat(pred, [1, 0, 1, 2], axis=0))
    assert corloc_score(y, pred, sample_weight=[1, 0, 1, 2]) == pytest.approx(repeated)
    # The threshold holds on the weighted path too.
    assert corloc_score(y, pred, iou_threshold=0.99, sample_weight=[3, 1, 1, 1]) == 50.0


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1, 1, 1], r"one weight per image: 4 images, got shape \(3,\)"),
        ([[1, 1, 1, 1]], r"one weight per image: 4 images, got shape \(1, 4\)"),
        ([1, -1, 1, 1], "finite and non-negative"),
        ([1, np.nan, 1, 1], "finite and non-negative"),
        ([0, 0, 0, 0], "sums to zero"),
        (["a", 1, 1, 1], "sample_weight must be numbers"),
    ],
)
def test_bad_sample_weight_is_named(weights, match):
    y = np.tile([0.25, 0.25, 0.75, 0.75], (4, 1))
    with pytest.raises(ValueError, match=match):
        corloc_score(y, y, sample_weight=weights)


def test_scorer_repr_and_params():
    assert repr(CorLocScorer()) == "CorLocScorer(iou_threshold=0.5)"
    assert repr(CorLocScorer(0.75)) == "CorLocScorer(iou_threshold=0.75)"
    assert repr(CorLocScorer(iou_threshold=0.3)) == "CorLocScorer(iou_threshold=0.3)"
    assert CorLocScorer(0.75).iou_threshold == 0.75


def test_scorer_strict_rule():
    X = np.zeros((1, 1))
    model = CenterBoxBaseline().fit(X, [[0.25, 0.0, 0.75, 1.0]])  # predicts half of FULL
    assert CorLocScorer()(model, X, [FULL]) == 0.0
    assert CorLocScorer(0.49)(model, X, [FULL]) == 100.0
