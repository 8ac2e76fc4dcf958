"""CorLoc of predicted boxes, overall and per class, with their intervals."""

import numpy as np

from .._metrics._corloc import corloc_interval, correct_localizations


def hits(pred, test_boxes, class_index, counted, iou_threshold):
    """Per counted test image, and per class, whether ``pred`` localizes it."""
    overall_rows = np.flatnonzero(counted)
    overall = correct_localizations(
        [test_boxes[i] for i in overall_rows], pred[overall_rows], iou_threshold
    )
    per_class = {
        name: correct_localizations(boxes, pred[rows], iou_threshold)
        for name, (rows, boxes) in class_index.items()
    }
    return overall, per_class


def scores(pred, test_boxes, class_index, counted, iou_threshold):
    return corlocs(*hits(pred, test_boxes, class_index, counted, iou_threshold))


def corlocs(overall, per_class):
    """(CorLoc, mean of the per-class CorLocs, per-class CorLocs) of the hits."""
    per_class = {name: 100.0 * hits.mean() for name, hits in per_class.items()}
    mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return float(100.0 * overall.mean()), mean, per_class


def interval_text(hits):
    low, high = corloc_interval(hits)
    return f"{low:.0f}-{high:.0f}"
