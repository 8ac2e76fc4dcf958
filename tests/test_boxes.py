"""Boxes: validation (check_boxes, check_box_sets), IoU (box_iou), to_valid_boxes."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import FrameLike
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sklearn_sensloc import box_iou
from sklearn_sensloc._metrics._boxes import check_box_sets, check_boxes, to_valid_boxes

FAST = settings(max_examples=25, deadline=None, database=None)


# --------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------


@st.composite
def boxes(draw, min_size=0.0):
    """One valid box in [0, 1]; each side at least ``min_size`` long."""
    x0 = draw(st.floats(0.0, 1.0 - min_size))
    y0 = draw(st.floats(0.0, 1.0 - min_size))
    x1 = draw(st.floats(x0 + min_size, 1.0))
    y1 = draw(st.floats(y0 + min_size, 1.0))
    return np.array([x0, y0, x1, y1])


positive_boxes = boxes(min_size=1e-3)


# --------------------------------------------------------------------------
# box_iou: hand-computed cases
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),  # identical
        ([0.1, 0.2, 0.4, 0.9], [0.1, 0.2, 0.4, 0.9], 1.0),  # identical, not unit
        ([0, 0, 0.2, 0.2], [0.5, 0.5, 1, 1], 0.0),  # disjoint
        ([0, 0, 0.5, 1], [0.5, 0, 1, 1], 0.0),  # touching vertical edges
        ([0, 0, 1, 0.5], [0, 0.5, 1, 1], 0.0),  # touching horizontal edges
        ([0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], 0.0),  # touching corners
        ([0, 0, 0.5, 1], [0, 0, 1, 1], 0.5),  # half of the other box
        ([0, 0, 1, 0.5], [0, 0, 1, 1], 0.5),
        ([0, 0, 0.5, 1], [0.25, 0, 0.75, 1], 1 / 3),  # half overlap of equal boxes
        ([0, 0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], 1 / 7),  # quarter overlap
        ([0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1], 0.25),  # containment
        ([0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75], 0.25),  # containment, other way
        ([0.4, 0, 0.6, 1], [0, 0.4, 1, 0.6], 0.04 / 0.36),  # a cross
    ],
)
def test_box_iou_hand_cases(a, b, expected):
    iou = box_iou([a], [b])
    assert iou.shape == (1,)
    assert iou[0] == pytest.approx(expected, abs=1e-12)
    # symmetric
    assert box_iou([b], [a])[0] == pytest.approx(expected, abs=1e-12)


def test_box_iou_exact_values_in_floating_point():
    # These are the CorLoc tie cases; they must be exact, not approximately so.
    assert box_iou([[0, 0, 0.5, 1]], [[0, 0, 1, 1]])[0] == 0.5
    assert box_iou([[0, 0, 1, 0.5]], [[0, 0, 1, 1]])[0] == 0.5
    assert box_iou([[0, 0, 0.5, 0.5]], [[0, 0, 1, 1]])[0] == 0.25
    assert box_iou([[0.1, 0.3, 0.7, 0.9]], [[0.1, 0.3, 0.7, 0.9]])[0] == 1.0


def test_box_iou_docstring_example():
    np.testing.assert_array_equal(box_iou([[0, 0, 0.5, 1]], [[0, 0, 1, 1]]), [0.5])


def test_box_iou_row_by_row():
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 1], [0, 0, 0.2, 0.2]])
    b = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0.5, 0.5, 1, 1]])
    np.testing.assert_allclose(box_iou(a, b), [1.0, 0.5, 0.0])


def test_box_iou_broadcasts_one_box_against_many():
    one = [0, 0, 1, 1]
    many = np.array([[0, 0, 1, 1], [0, 0, 0.5, 1], [0.25, 0.25, 0.75, 0.75], [0, 0, 0, 0]])
    expected = [1.0, 0.5, 0.25, 0.0]
    np.testing.assert_allclose(box_iou(one, many), expected)
    np.testing.assert_allclose(box_iou(many, one), expected)
    np.testing.assert_allclose(box_iou([one], many), expected)
    # single pair of 1-D boxes gives a length-1 array
    out = box_iou(one, [0, 0, 0.5, 1])
    assert out.shape == (1,)
    assert out[0] == 0.5


def test_box_iou_pairwise_matrix_by_broadcasting():
    a = np.array([[0, 0, 1, 1], [0, 0, 0.5, 1]])
    b = np.array([[0, 0, 1, 1], [0.5, 0, 1, 1], [0.25, 0, 0.75, 1]])
    matrix = box_iou(a[:, None, :], b[None, :, :])
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix, [[1.0, 0.5, 0.5], [0.5, 0.0, 1 / 3]])


def test_box_iou_accepts_lists_and_ints():
    assert box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0] == pytest.approx(1 / 7)
    assert box_iou(np.array([[0, 0, 1, 1]], dtype=np.float32), [[0, 0, 1, 1]]).dtype == np.float64


@pytest.mark.parametrize(
    "a, b",
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # two points at the same place
        ([0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]),
        ([0.2, 0, 0.2, 1], [0.2, 0, 0.2, 1]),  # two identical vertical lines
        ([0, 0.3, 1, 0.3], [0, 0.3, 1, 0.3]),  # two identical horizontal lines
        ([0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1]),  # point inside a box
        ([0, 0.5, 1, 0.5], [0, 0, 1, 1]),  # line inside a box
        ([0.2, 0, 0.2, 1], [0, 0.3, 1, 0.3]),  # crossing lines
    ],
)
def test_box_iou_degenerate_boxes_give_zero_not_nan(a, b):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning
        iou = box_iou([a], [b])
        iou_ba = box_iou([b], [a])
    assert not np.isnan(iou).any()
    assert iou[0] == 0.0
    assert iou_ba[0] == 0.0


def test_box_iou_degenerate_rows_among_good_ones():
    a = np.array([[0, 0, 0, 0], [0, 0, 1, 1], [0.3, 0.3, 0.3, 0.3]])
    b = np.array([[0, 0, 0, 0], [0, 0, 0.5, 1], [0.3, 0.3, 0.3, 0.3]])
    np.testing.assert_array_equal(box_iou(a, b), [0.0, 0.5, 0.0])


@pytest.mark.parametrize(
    "a, b",
    [
        ([[0, 0, 1]], [[0, 0, 1, 1]]),
        ([[0, 0, 1, 1]], [[0, 0, 1, 1, 1]]),
        ([0, 0, 1], [0, 0, 1]),
        (np.zeros((4, 3)), np.zeros((4, 3))),  # 4 rows but 3 columns
        (np.zeros((2, 4, 2)), np.zeros((2, 4))),
        (0.5, [0, 0, 1, 1]),
    ],
)
def test_box_iou_wrong_column_count_raises(a, b):
    with pytest.raises(ValueError, match="4 columns"):
        box_iou(a, b)
    with pytest.raises(ValueError, match="4 columns"):
        box_iou(b, a)


def test_box_iou_mismatched_lengths_raise_value_error():
    with pytest.raises(ValueError):
        box_iou(np.zeros((3, 4)), np.zeros((2, 4)))


# --------------------------------------------------------------------------
# box_iou: properties
# --------------------------------------------------------------------------


@FAST
@given(boxes(), boxes())
def test_iou_symmetric_and_in_unit_interval(a, b):
    ab = box_iou(a, b)[0]
    ba = box_iou(b, a)[0]
    assert ab == ba
    assert 0.0 <= ab <= 1.0
    assert not np.isnan(ab)


@FAST
@given(boxes())
def test_iou_with_itself_is_one_when_area_positive(a):
    area = (a[2] - a[0]) * (a[3] - a[1])
    iou = box_iou(a, a)[0]
    if area > 0:
        assert iou == 1.0
    else:
        assert iou == 0.0


@FAST
@given(positive_boxes, positive_boxes)
def test_iou_is_one_only_for_identical_boxes(a, b):
    iou = box_iou(a, b)[0]
    if not np.array_equal(a, b):
        # Sides are >= 1e-3, so any difference in a corner shows in the IoU
        # unless that difference is below float resolution.
        assert iou < 1.0 or np.allclose(a, b, atol=1e-12, rtol=0)


@FAST
@given(
    positive_boxes,
    positive_boxes,
    st.floats(0.05, 20.0),
    st.floats(0.05, 20.0),
)
def test_iou_invariant_to_scaling_axes(a, b, sx, sy):
    scale = np.array([sx, sy, sx, sy])
    assert box_iou(a * scale, b * scale)[0] == pytest.approx(box_iou(a, b)[0], abs=1e-9)


@FAST
@given(positive_boxes, positive_boxes, st.floats(-5.0, 5.0), st.floats(-5.0, 5.0))
def test_iou_invariant_to_translation(a, b, dx, dy):
    shift = np.array([dx, dy, dx, dy])
    assert box_iou(a + shift, b + shift)[0] == pytest.approx(box_iou(a, b)[0], abs=1e-9)


@FAST
@given(positive_boxes, positive_boxes)
def test_iou_invariant_to_swapping_axes(a, b):
    swap = [1, 0, 3, 2]
    assert box_iou(a[swap], b[swap])[0] == pytest.approx(box_iou(a, b)[0], abs=1e-12)


@FAST
@given(positive_boxes, positive_boxes, positive_boxes)
def test_jaccard_distance_triangle_inequality(a, b, c):
    d = lambda p, q: 1.0 - box_iou(p, q)[0]  # noqa: E731
    assert d(a, c) <= d(a, b) + d(b, c) + 1e-9


@FAST
@given(positive_boxes, positive_boxes)
def test_iou_bounded_by_area_ratio(a, b):
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    ratio = min(area_a, area_b) / max(area_a, area_b)
    assert box_iou(a, b)[0] <= ratio + 1e-12


@FAST
@given(positive_boxes, st.data())
def test_iou_of_contained_box_is_area_ratio_and_grows_with_it(outer, data):
    """For inner <= grown <= outer: IoU(inner, outer) <= IoU(grown, outer) = area ratio."""
    x0, y0, x1, y1 = outer
    fx = sorted(data.draw(st.lists(st.floats(0, 1), min_size=4, max_size=4)))
    fy = sorted(data.draw(st.lists(st.floats(0, 1), min_size=4, max_size=4)))
    # grown spans fx[0]..fx[3], inner spans fx[1]..fx[2] (nested intervals)
    gx = x0 + (x1 - x0) * np.array(fx)
    gy = y0 + (y1 - y0) * np.array(fy)
    grown = np.array([gx[0], gy[0], gx[3], gy[3]])
    inner = np.array([gx[1], gy[1], gx[2], gy[2]])
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    iou_inner = box_iou(inner, outer)[0]
    iou_grown = box_iou(grown, outer)[0]
    assert iou_inner == pytest.approx(area(inner) / area(outer), abs=1e-9)
    assert iou_grown == pytest.approx(area(grown) / area(outer), abs=1e-9)
    assert iou_inner <= iou_grown + 1e-12


@FAST
@given(positive_boxes, st.floats(0.0, 3.0))
def test_iou_decreases_as_a_copy_slides_away(a, shift):
    """Sliding a copy of a box to the right never raises the IoU; past its width it is 0."""
    width = a[2] - a[0]
    moved_a_bit = a + np.array([shift / 2, 0, shift / 2, 0]) * width
    moved_more = a + np.array([shift, 0, shift, 0]) * width
    near = box_iou(a, moved_a_bit)[0]
    far = box_iou(a, moved_more)[0]
    assert far <= near + 1e-12
    if shift >= 1.0 + 1e-9:
        assert far == 0.0


@FAST
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=st.floats(0, 1)),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=st.floats(0, 1)),
)
def test_iou_vectorized_equals_row_by_row_and_never_nan(raw_a, raw_b):
    a = to_valid_boxes(raw_a)
    b = to_valid_boxes(raw_b)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    iou = box_iou(a, b)
    assert iou.shape == (n,)
    assert not np.isnan(iou).any()
    assert ((iou >= 0) & (iou <= 1)).all()
    for i in range(n):
        assert iou[i] == box_iou(a[i], b[i])[0]
    pairwise = box_iou(a[:, None], b[None, :])
    assert pairwise.shape == (n, n)
    np.testing.assert_array_equal(np.diag(pairwise), iou)


# --------------------------------------------------------------------------
# to_valid_boxes
# --------------------------------------------------------------------------


def test_to_valid_boxes_hand_case():
    raw = [[-1.0, 2.0, 0.5, 0.3], [0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.3, 0.4], [5, 5, 6, 7]]
    out = to_valid_boxes(raw)
    np.testing.assert_array_equal(
        out,
        [[0.0, 0.3, 0.5, 1.0], [0.1, 0.2, 0.9, 0.8], [0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1]],
    )
    assert out.dtype == np.float64


finite = st.floats(allow_nan=False, allow_infinity=False)


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(4)), elements=finite))
def test_to_valid_boxes_always_valid(raw):
    out = to_valid_boxes(raw)
    assert out.shape == raw.shape
    assert ((out >= 0) & (out <= 1)).all()
    assert (out[:, 0] <= out[:, 2]).all()
    assert (out[:, 1] <= out[:, 3]).all()
    np.testing.assert_array_equal(check_boxes(out), out)  # passes validation
    # idempotent
    np.testing.assert_array_equal(to_valid_boxes(out), out)


@FAST
@given(st.lists(boxes(), min_size=1, max_size=8))
def test_to_valid_boxes_is_identity_on_valid_boxes(rows):
    valid = np.array(rows)
    np.testing.assert_array_equal(to_valid_boxes(valid), valid)


@FAST
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 8), st.just(4)), elements=finite))
def test_to_valid_boxes_does_not_modify_input(raw):
    before = raw.copy()
    to_valid_boxes(raw)
    np.testing.assert_array_equal(raw, before)


# --------------------------------------------------------------------------
# check_boxes
# --------------------------------------------------------------------------


def _good(n=5):
    rng = np.random.default_rng(0)
    return to_valid_boxes(rng.uniform(0, 1, (n, 4)))


def test_check_boxes_returns_float64_copy_of_valid_input():
    good = [[0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]]
    out = check_boxes(good)
    assert out.dtype == np.float64
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out, good)
    # degenerate but ordered boxes are valid
    check_boxes([[0.5, 0.5, 0.5, 0.5], [0, 0, 0, 1], [0, 0, 1, 0]])
    check_boxes(np.array(good, dtype=np.float32))
    check_boxes(np.array([[0, 0, 1, 1]], dtype=np.int64))


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(4),
        np.zeros((3, 3)),
        np.zeros((3, 5)),
        np.zeros((2, 2, 4)),
        np.zeros((4, 1)),
        np.float64(0.5),
        [[0, 0, 1, 1], [0, 0, 1]],  # ragged
        [[0, 0, 1, 1], [[0, 0, 1, 1]]],  # ragged
        [],
    ],
)
def test_check_boxes_wrong_shape(bad):
    with pytest.raises(ValueError, match=r"y must be an array of boxes of shape \(n_samples, 4\)"):
        check_boxes(bad)


def test_check_boxes_wrong_shape_reports_shape_and_name():
    with pytest.raises(ValueError, match=r"y_pred must be .*got shape \(3, 5\)"):
        check_boxes(np.zeros((3, 5)), name="y_pred")
    with pytest.raises(ValueError, match="got shape ragged"):
        check_boxes([[0, 0, 1, 1], [0, 0, 1]])


def test_check_boxes_empty():
    with pytest.raises(ValueError, match="y contains no boxes"):
        check_boxes(np.zeros((0, 4)))
    out = check_boxes(np.zeros((0, 4)), allow_empty=True)
    assert out.shape == (0, 4)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("column", range(4))
def test_check_boxes_non_finite_names_row(value, column):
    boxes = _good(6)
    boxes[3, column] = value
    with pytest.raises(ValueError, match=r"^Box 3 of y contains NaN or inf"):
        check_boxes(boxes)


@pytest.mark.parametrize("value", [-0.01, 1.01, -5.0, 255.0, 1 + 1e-12])
@pytest.mark.parametrize("column", range(4))
def test_check_boxes_outside_unit_interval_names_row(value, column):
    boxes = _good(6)
    boxes[3, column] = value
    if value < 0:  # keep the row ordered so only the range rule fires
        boxes[3, column % 2] = value
    else:
        boxes[3, 2 + column % 2] = value
    with pytest.raises(ValueError, match=r"^Box 3 of y lies outside \[0, 1\]"):
        check_boxes(boxes)


def test_check_boxes_xmin_greater_than_xmax_names_row():
    boxes = _good(6)
    boxes[3] = [0.6, 0.1, 0.4, 0.9]
    with pytest.raises(ValueError, match=r"^Box 3 of y has xmin > xmax or ymin > ymax"):
        check_boxes(boxes)


def test_check_boxes_ymin_greater_than_ymax_names_row():
    boxes = _good(6)
    boxes[3] = [0.1, 0.6, 0.9, 0.4]
    with pytest.raises(ValueError, match=r"^Box 3 of y has xmin > xmax or ymin > ymax"):
        check_boxes(boxes)


def test_check_boxes_message_shows_box_name_and_count_of_other_bad_rows():
    boxes = _good(8)
    boxes[[2, 5, 7], 0] = np.nan
    with pytest.raises(ValueError) as info:
        check_boxes(boxes, name="y_true")
    message = str(info.value)
    assert message.startswith("Box 2 of y_true contains NaN or inf")
    assert "2 more rows have the same problem" in message
    # a single bad row does not mention more rows
    boxes = _good(8)
    boxes[5] = [0.2, 0.2, 0.1, 0.3]
    with pytest.raises(ValueError) as info:
        check_boxes(boxes, name="y_true")
    assert "Box 5 of y_true" in str(info.value)
    assert "[0.2, 0.2, 0.1, 0.3]" in str(info.value)
    assert "more rows" not in str(info.value)


def test_check_boxes_order_of_checks():
    # Rules are checked one after another over all rows, so a NaN is reported
    # even when a range problem sits in an earlier row.
    boxes = _good(5)
    boxes[1, 2] = 2.0
    boxes[4, 0] = np.nan
    with pytest.raises(ValueError, match="^Box 4 of y contains NaN or inf"):
        check_boxes(boxes)


def test_check_boxes_does_not_modify_input():
    boxes = _good(4)
    before = boxes.copy()
    check_boxes(boxes)
    np.testing.assert_array_equal(boxes, before)


# --------------------------------------------------------------------------
# check_box_sets
# --------------------------------------------------------------------------


def test_check_box_sets_one_box_per_image():
    sets = check_box_sets([[0, 0, 1, 1], [0.1, 0.1, 0.2, 0.2]])
    assert len(sets) == 2
    assert all(s.shape == (1, 4) for s in sets)
    np.testing.assert_array_equal(sets[1], [[0.1, 0.1, 0.2, 0.2]])


def test_check_box_sets_ragged_list():
    truth = [np.array([[0, 0, 1, 1]]), np.array([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]), [0, 0, 1, 1]]
    sets = check_box_sets(truth)
    assert [s.shape for s in sets] == [(1, 4), (2, 4), (1, 4)]
    assert all(s.dtype == np.float64 for s in sets)


def test_check_box_sets_three_d_array():
    arr = np.tile([0.1, 0.1, 0.6, 0.6], (5, 3, 1))
    sets = check_box_sets(arr)
    assert len(sets) == 5
    assert all(s.shape == (3, 4) for s in sets)


def test_check_box_sets_object_array_of_per_image_arrays():
    arr = np.empty(2, dtype=object)
    arr[0] = np.array([[0, 0, 1, 1.0]])
    arr[1] = np.array([[0, 0, 1, 1.0], [0, 0, 0.5, 0.5]])
    assert [s.shape for s in check_box_sets(arr)] == [(1, 4), (2, 4)]


def test_check_box_sets_array_like_that_is_not_indexable_by_row():
    sets = check_box_sets(FrameLike([[0, 0, 1, 1], [0.1, 0.1, 0.2, 0.2]]))
    assert [s.shape for s in sets] == [(1, 4), (1, 4)]
    np.testing.assert_array_equal(sets[1], [[0.1, 0.1, 0.2, 0.2]])


def test_check_box_sets_error_names_image_and_row():
    truth = [[[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.9, 0, 0.1, 1]]]
    with pytest.raises(ValueError, match=r"^Box 2 of y\[1\] has xmin > xmax"):
        check_box_sets(truth)
    with pytest.raises(ValueError, match=r"^Box 0 of y_true\[0\] lies outside"):
        check_box_sets([[[0, 0, 2, 1]], [[0, 0, 1, 1], [0, 0, 1, 1]]], name="y_true")


@pytest.mark.parametrize(
    "bad",
    [
        [],
        np.zeros((0, 4)),
        np.zeros((2, 0, 4)),  # an image with no boxes
        [[[0, 0, 1, 1]], np.zeros((0, 4))],
        [[[0, 0, 1, 1]], [[0, 0, 1]]],
        np.zeros((2, 3)),
        np.zeros((2, 2, 3)),
        np.zeros((2, 1, 4, 1)),
        np.float64(0.5),
        0.5,
        None,
        np.array(0.5),
    ],
)
def test_check_box_sets_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        check_box_sets(bad)


# --------------------------------------------------------------------------
# importing the package stays light
# --------------------------------------------------------------------------

# Importing sklearn in a fresh interpreter takes over a second, so the child
# starts when this module is collected and runs while the other tests do.
_IMPORT_CHECK = subprocess.Popen(
    [
        sys.executable,
        "-c",
        "import sys, sklearn_sensloc; "
        "from sklearn_sensloc import box_iou, corloc_score, CorLocScorer; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'; "
        "print('ok')",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
)


def test_import_does_not_import_tensorflow():
    stdout, stderr = _IMPORT_CHECK.communicate(timeout=120)
    assert _IMPORT_CHECK.returncode == 0, stderr
    assert stdout.strip() == "ok"
