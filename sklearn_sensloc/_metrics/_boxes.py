"""Box validation, IoU and the conversion of raw predictions into valid boxes.

Boxes are ``(xmin, ymin, xmax, ymax)`` rows given as fractions of the image
width and height, so that resizing an image never changes its box.
"""

import numpy as np

BOX_COLUMNS = ("xmin", "ymin", "xmax", "ymax")


def check_boxes(boxes, *, name="y", allow_empty=False):
    """Validate an ``(n, 4)`` array of boxes and return it as float64.

    Every error names the offending row, so a user with thousands of boxes
    can find the bad one.
    """
    if boxes is None:
        # The second sentence is the wording scikit-learn's checks recognise.
        raise ValueError(
            f"{name} must be an array of boxes of shape (n_samples, 4) = "
            f"(xmin, ymin, xmax, ymax); got None. This requires {name} to be passed, but "
            f"the target {name} is None."
        )
    boxes = np.asarray(boxes, dtype=np.float64) if not _is_ragged(boxes) else None
    if boxes is None or boxes.ndim != 2 or boxes.shape[1] != 4:
        shape = "ragged" if boxes is None else boxes.shape
        raise ValueError(
            f"{name} must be an array of boxes of shape (n_samples, 4) = "
            f"(xmin, ymin, xmax, ymax); got shape {shape}."
        )
    if boxes.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name} contains no boxes.")
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        _raise_row(name, boxes, bad, "contains NaN or inf")
    bad = ((boxes < 0) | (boxes > 1)).any(axis=1)
    if bad.any():
        _raise_row(
            name, boxes, bad,
            "lies outside [0, 1]: boxes are fractions of the image width and height",
        )
    bad = (boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3])
    if bad.any():
        _raise_row(name, boxes, bad, "has xmin > xmax or ymin > ymax")
    return boxes


def check_box_sets(boxes, *, name="y"):
    """Validate ground truth given as one box per image or several per image.

    Returns a list of ``(k_i, 4)`` float arrays, one per image.
    """
    if not isinstance(boxes, (list, tuple)):
        # Index array-likes as arrays; a scalar becomes a 0-d array, which
        # check_boxes rejects with a ValueError (not a TypeError from len()).
        boxes = np.asarray(boxes)
    if _is_ragged(boxes) or (np.ndim(boxes) > 0 and len(boxes) and np.ndim(boxes[0]) == 2):
        sets = []
        for i, image_boxes in enumerate(boxes):
            image_boxes = np.atleast_2d(np.asarray(image_boxes, dtype=np.float64))
            sets.append(check_boxes(image_boxes, name=f"{name}[{i}]"))
        if not sets:
            raise ValueError(f"{name} contains no boxes.")
        return sets
    return [row[None, :] for row in check_boxes(boxes, name=name)]


def box_iou(boxes_a, boxes_b):
    """Intersection over union of two arrays of boxes, row by row.

    Parameters
    ----------
    boxes_a, boxes_b : array-like of shape (n, 4) or (4,)
        Boxes ``(xmin, ymin, xmax, ymax)``. The two arrays broadcast against
        each other, so one box can be compared with many.

    Returns
    -------
    iou : ndarray of shape (n,)
        IoU of each pair, in ``[0, 1]``. A pair whose union has zero area
        (two degenerate boxes) has IoU 0, never NaN.

    Examples
    --------
    >>> from sklearn_sensloc import box_iou
    >>> box_iou([[0, 0, 0.5, 1]], [[0, 0, 1, 1]])
    array([0.5])
    """
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,):
        raise ValueError(
            f"box_iou needs boxes with 4 columns; got shapes {a.shape} and {b.shape}."
        )
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    intersection = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = _area(a) + _area(b) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
    return np.atleast_1d(iou)


def to_valid_boxes(raw):
    """Turn raw regression outputs into valid boxes: corners ordered, in [0, 1]."""
    raw = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
    low = np.minimum(raw[:, :2], raw[:, 2:])
    high = np.maximum(raw[:, :2], raw[:, 2:])
    return np.hstack([low, high])


def scale_boxes(boxes, factor):
    """Boxes with their width and height multiplied by ``factor``, about their centers."""
    boxes = np.asarray(boxes, dtype=np.float64)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
    half_sizes = (boxes[:, 2:] - boxes[:, :2]) * (factor / 2)
    return np.hstack([centers - half_sizes, centers + half_sizes])


def _area(boxes):
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(
        boxes[..., 3] - boxes[..., 1], 0, None
    )


def _is_ragged(boxes):
    if not isinstance(boxes, (list, tuple)) or not boxes:
        return False
    lengths = {np.shape(item) for item in boxes}
    return len(lengths) > 1


def _raise_row(name, boxes, bad, problem):
    rows = np.flatnonzero(bad)
    first = rows[0]
    more = f" ({len(rows) - 1} more rows have the same problem)" if len(rows) > 1 else ""
    raise ValueError(
        f"Box {first} of {name} {problem}: {boxes[first].tolist()}{more}."
    )
