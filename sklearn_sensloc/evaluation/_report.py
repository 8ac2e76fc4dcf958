"""The evaluation's tables: per class (1), the heuristic's sigma sweep (2), the methods (3)."""

import os

import numpy as np

from .._metrics._corloc import corloc_interval
from .._utils._tables import make_table
from ._scoring import corlocs, hits, interval_text


def model_label(model):
    """A short human name for a ``model=`` value."""
    import keras

    from .._classifiers._torch_models import is_torch_module

    if is_torch_module(model):
        return f"torch module {type(model).__name__}"
    if isinstance(model, keras.Model):
        return f"keras.Model {model.name!r}"
    return os.fspath(model)


def result_tables(data, boxes, settings, map_shape, *, pool, top_fraction, iou_threshold,
                  min_class_images):
    """Tables 1 to 3 of the paper's protocol, with the notes that say how they were made.

    Parameters
    ----------
    data : EvaluationData
    boxes : Bunch
        What ``predict_boxes`` returns.
    settings : dict
        ``model``, ``weights``, ``preprocessing``, ``image_size`` and
        ``target`` as written to the summary.
    map_shape : tuple of int
        (height, width) of the full-resolution maps.

    Returns
    -------
    tables : dict
        ``{name: table}`` for the three tables.
    """
    test_sets, class_index, counted = data.test_sets, data.class_index, data.counted
    all_hits = {name: hits(pred, test_sets, class_index, counted, iou_threshold)
                for name, pred in boxes.predictions.items()}
    scores = {name: corlocs(*name_hits) for name, name_hits in all_hits.items()}
    n_counted = int(counted.sum())
    base_notes = [
        f"{len(data.train_boxes)} training images, {n_counted} test images; a hit is IoU > "
        f"{iou_threshold:g} with any ground-truth box of the image (of the class, per class).",
        f"model {settings['model']}"
        + (f" with weights {settings['weights']}" if settings["weights"] is not None else "")
        + f", preprocessing {settings['preprocessing']}, images {map_shape[0]}x{map_shape[1]}, "
        f"target {settings['target']!r}; learned map (BoxRegressor) and default heuristic "
        f"(HeuristicBoxEstimator(): sigma and top fraction chosen on the training images, "
        + ", ".join(f"{agg}: sigma {c['sigma']:g}, top {c['top_fraction']:g}"
                    for agg, c in boxes.default_heuristic.items())
        + f") on maps pooled by {pool}; paper's heuristic on full-resolution maps, top "
        f"{top_fraction:g} of the pixels, sigma chosen on the training images.",
    ] + ([f"{data.n_overlap} test images are also training images (allow_overlap=True): "
          "their CorLoc is inflated."] if data.n_overlap else [])
    classes = list(class_index)
    class_sizes = {name: len(rows) for name, (rows, _) in class_index.items()}
    large = [name for name in classes if class_sizes[name] >= min_class_images]
    large_mean = f"mean (n>={min_class_images})"
    table1 = make_table(
        "table1_per_class", ["method", "mean", large_mean, *classes],
        [{"method": name, "mean": s[1], **s[2],
          large_mean: float(np.mean([s[2][c] for c in large])) if large else float("nan")}
         for name, s in scores.items()]
        + [{"method": "n_test", "mean": "", large_mean: "", **class_sizes}],
        base_notes + [
            '"mean" is the mean of the per-class CorLocs; a class column counts the test images '
            'with a non-difficult object of that class (row "n_test"); '
            f'"{large_mean}" keeps the {len(large)} classes with at least {min_class_images} '
            "test images."
        ] + [
            f"95% intervals (Wilson) of {name}: "
            + ", ".join(f"{c} {interval_text(h)}" for c, h in class_hits.items())
            for name, (_, class_hits) in all_hits.items()
        ],
    )
    rows2 = []
    sigmas = next(iter(boxes.sweep.values()))["sigmas"]
    for i, sigma in enumerate(sigmas):
        row = {"sigma": sigma}
        for agg, sweep in boxes.sweep.items():
            test_pred = np.asarray(sweep["test_boxes"][i])
            test_hits = hits(test_pred, test_sets, class_index, counted, iou_threshold)[0]
            row[f"test ({agg})"] = float(100.0 * test_hits.mean())
            row[f"test 95% ({agg})"] = interval_text(test_hits)
            row[f"train ({agg})"] = sweep["train_corloc"][i]
        rows2.append(row)
    columns2 = ["sigma"] + [f"{side} ({agg})" for agg in boxes.sweep
                            for side in ("test", "test 95%", "train")]
    table2 = make_table("table2_heuristic_sigma", columns2, rows2,
                        base_notes[:1] + [f"sigma in pixels of the {map_shape[0]}x{map_shape[1]} "
                                          f"maps; top {top_fraction:g} of the pixels kept; train: "
                                          "CorLoc on the training images, which choose sigma; "
                                          "test 95%: Wilson interval of the test CorLoc."])
    table3 = make_table(
        "table3_methods",
        ["method", "corloc", "corloc_low", "corloc_high", "mean_per_class", "n_test"],
        [{"method": name, "corloc": s[0],
          **dict(zip(("corloc_low", "corloc_high"), corloc_interval(all_hits[name][0]))),
          "mean_per_class": s[1], "n_test": n_counted}
         for name, s in scores.items()],
        base_notes + ["corloc_low, corloc_high: 95% Wilson interval of the CorLoc."],
    )
    return {t["name"]: t for t in (table1, table2, table3)}
