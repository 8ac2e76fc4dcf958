"""The evaluation's data: checked boxes and images, test images per class, no overlap."""

import os
import warnings
from typing import NamedTuple

import numpy as np

from .._images._batches import ImageSource
from .._maps._steps import AGGREGATIONS
from .._metrics._boxes import check_box_sets, check_boxes


class EvaluationData(NamedTuple):
    """What :func:`check_data` returns: the inputs checked, and what scoring needs."""

    aggregations: list
    sigmas: list
    train_boxes: np.ndarray
    #: Every ground-truth box of each test image, ``(k_i, 4)`` arrays.
    test_sets: list
    #: ``{class: (test rows, boxes of that class in each)}``, see :func:`class_index`.
    class_index: dict
    #: Whether each test image counts (has a non-difficult box).
    counted: np.ndarray
    #: ``{"train": keys, "test": keys}``: the key of each image.
    keys: dict
    #: Test images that are also training images (0 unless allowed).
    n_overlap: int


def check_data(train_images, train_boxes, test_images, test_boxes, test_labels, test_difficult,
               class_names, aggregations, sigmas, allow_overlap):
    """Check the evaluation's inputs; a ValueError names the first problem."""
    aggregations = list(dict.fromkeys(aggregations))
    bad = [a for a in aggregations if a not in AGGREGATIONS]
    if bad or not aggregations:
        raise ValueError(f"aggregations must be among {AGGREGATIONS}; got {aggregations!r}.")
    sigmas = [float(s) for s in sigmas]
    if not sigmas or min(sigmas) < 0:
        raise ValueError(f"sigmas must be a non-empty list of numbers >= 0; got {sigmas!r}.")
    train_boxes = check_boxes(train_boxes, name="train_boxes")
    test_sets = check_box_sets(test_boxes, name="test_boxes")
    if len(train_boxes) != len(train_images):
        raise ValueError(f"{len(train_images)} training images but {len(train_boxes)} boxes.")
    if len(test_sets) != len(test_images):
        raise ValueError(f"{len(test_images)} test images but {len(test_sets)} box sets.")
    index, counted = class_index(test_sets, test_labels, test_difficult, class_names)
    if not counted.any():
        raise ValueError("Every test image has only difficult boxes: nothing to score.")
    keys = {"train": ImageSource(train_images).keys(), "test": ImageSource(test_images).keys()}
    n_overlap = check_overlap(keys["train"], keys["test"], test_images, allow_overlap)
    return EvaluationData(aggregations, sigmas, train_boxes, test_sets, index, counted, keys,
                          n_overlap)


def check_overlap(train_keys, test_keys, test_images, allow_overlap):
    """Number of test images that are also training images; an error unless allowed."""
    train_keys = set(train_keys)
    shared = [i for i, key in enumerate(test_keys) if key in train_keys]
    if not shared:
        return 0
    examples = ", ".join(
        os.path.basename(test_images[i]) if isinstance(test_images[i], (str, os.PathLike))
        else f"#{i}"
        for i in shared[:5]
    )
    message = (
        f"{len(shared)} of {len(test_images)} test images are also training images "
        f"(e.g. {examples}): their CorLoc is inflated."
    )
    if not allow_overlap:
        raise ValueError(
            f"{message} Use disjoint train and test splits, or pass allow_overlap=True "
            "(sensloc: --allow-overlap) to score them anyway."
        )
    warnings.warn(f"{message} Scored anyway (allow_overlap=True).", UserWarning, stacklevel=4)
    return len(shared)


def class_index(test_boxes, test_labels, test_difficult, class_names):
    """Per class: which test images count, and the boxes of that class in each.

    An image counts for a class when it has at least one non-difficult box of
    that class; a prediction is a hit when its IoU with any box of that class,
    difficult ones included, exceeds the threshold (VOC ignores detections of
    difficult objects rather than counting them wrong).
    """
    n = len(test_boxes)
    if test_difficult is None:
        test_difficult = [np.zeros(len(b), dtype=bool) for b in test_boxes]
    difficult = [np.asarray(d, dtype=bool).reshape(-1) for d in test_difficult]
    if test_labels is None:
        labels = [["all"] * len(b) for b in test_boxes]
    else:
        if len(test_labels) != n:
            raise ValueError(f"test_labels has {len(test_labels)} entries for {n} test images.")
        labels = [
            [lab] * len(b) if isinstance(lab, str) else list(lab)
            for lab, b in zip(test_labels, test_boxes)
        ]
    for i, (lab, dif, b) in enumerate(zip(labels, difficult, test_boxes)):
        if len(lab) != len(b) or len(dif) != len(b):
            raise ValueError(
                f"Test image {i} has {len(b)} boxes but {len(lab)} labels and "
                f"{len(dif)} difficult flags."
            )
    found = list(dict.fromkeys(name for lab in labels for name in lab))
    names = [c for c in (class_names or sorted(found)) if c in found]
    index = {}
    for name in names:
        rows, boxes = [], []
        for i in range(n):
            of_class = np.array([lab == name for lab in labels[i]])
            if (of_class & ~difficult[i]).any():
                rows.append(i)
                boxes.append(test_boxes[i][of_class])
        if rows:
            index[name] = (np.array(rows), boxes)
    counted = np.array([(~d).any() for d in difficult])
    return index, counted
