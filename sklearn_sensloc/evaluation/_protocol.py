"""The paper's evaluation protocol, usable from Python and from ``sensloc evaluate``.

:func:`evaluate_localization` reads as the protocol's steps, each in its own
module: the data checked (``_data``), maps computed once per image set,
model, target and aggregation at full resolution and stored (``_full_maps``),
every box method scored on them (``_methods``), per-image timings of the
forward pass, the map and the box (``_timings``), and the tables
(``_report``), written to an output folder as Markdown, CSV and JSON, every
file atomically (``_output``); a rerun with the same folder reuses every
finished step whose inputs did not change.
"""

import functools
import os

from sklearn.utils import Bunch

from .._box_estimators._regressor import BoxRegressor
from .._classifiers._models import DEFAULT_MODEL, preprocessing_label
from .._metrics._timings import measure_timings, timings_table
from .._utils._atomic import folder_lock
from .._utils._identity import fingerprint, image_set_key
from ._data import check_data
from ._full_maps import MapComputer
from ._methods import predict_boxes
from ._output import OutputFolder
from ._report import model_label, result_tables

#: The paper's Table 2 sweep, in pixels of full-resolution (224x224) maps.
DEFAULT_SIGMAS = (5, 10, 20, 30, 40)


def _holding_the_output(evaluate):
    """Run ``evaluate`` holding its ``output`` folder, so two runs never share one."""

    @functools.wraps(evaluate)
    def holding(*args, output=None, **kwargs):
        if output is not None and os.path.exists(output) and not os.path.isdir(output):
            raise NotADirectoryError(f"Output {os.fspath(output)!r} exists and is not a folder.")
        # Held for the whole run: the maps' parts are joined and removed at its end.
        with folder_lock(output, "output folder"):
            return evaluate(*args, output=output, **kwargs)

    return holding


@_holding_the_output
def evaluate_localization(
    train_images,
    train_boxes,
    test_images,
    test_boxes,
    *,
    test_labels=None,
    test_difficult=None,
    class_names=None,
    model=DEFAULT_MODEL,
    weights=None,
    target="gestalt",
    aggregations=("max",),
    pool=4,
    preprocessing="auto",
    image_size=None,
    sigmas=DEFAULT_SIGMAS,
    top_fraction=0.2,
    regressor=None,
    iou_threshold=0.5,
    min_class_images=20,
    allow_overlap=False,
    n_timing=64,
    batch_size=32,
    output=None,
    random_state=0,
    verbose=False,
    description=None,
):
    """Score the learned map, the heuristic and the center box on the same maps.

    Maps are computed once per image set, model, target and aggregation, at
    full resolution, and cached in ``output``; the learned map uses them
    pooled by ``pool`` (exactly what :class:`SensitivityTransformer` with that
    ``pool`` returns), the heuristic uses them at full resolution, as in the
    paper's sigma sweep.

    Parameters
    ----------
    train_images, test_images : array of shape (n, H, W, 3) or list of paths
        Images in 0..255, as for :class:`SensitivityTransformer`.
    train_boxes : array-like of shape (n_train, 4)
        One box per training image, ``(xmin, ymin, xmax, ymax)`` fractions.
    test_boxes : array-like of shape (n_test, 4) or list of (k_i, 4) arrays
        Every ground-truth box of each test image; a prediction is correct
        when its IoU with any of them is greater than ``iou_threshold``.
    test_labels : list, optional
        Class of each test image (a str), or of each of its boxes (a list of
        str aligned with ``test_boxes[i]``). None: one class, ``"all"``.
    test_difficult : list of bool arrays, optional
        Difficult flag of each test box. Images whose boxes (of a class) are
        all difficult do not count (for that class); a prediction on a
        difficult box is still a hit.
    class_names : list of str, optional
        Order of the per-class columns; classes absent from the test images
        are left out.
    model, weights, target, preprocessing, image_size, batch_size
        Passed to :class:`SensitivityTransformer`, with its defaults: ``model``
        is ``"vgg16"``, the paper's classifier, which Keras downloads once.
    aggregations : sequence of {"max", "mean"}, default=("max",)
        One set of results per aggregation; all come from one backward pass.
    pool : int, default=4
        Pooling of the maps fed to the learned regressor.
    sigmas : sequence of float, default=(5, 10, 20, 30, 40)
        Heuristic smoothing sweep, in full-resolution map pixels. The sigma
        with the best CorLoc on the *training* images is the one reported in
        Table 1 and 3, so no choice is made on the test images.
    top_fraction : float, default=0.2
        Fraction of pixels the heuristic keeps.
    regressor : BoxRegressor, optional
        Cloned for each aggregation; default ``BoxRegressor(random_state=random_state)``.
    iou_threshold : float, default=0.5
        Hits need IoU strictly greater than this.
    min_class_images : int, default=20
        Table 1 also gives the mean over the classes with at least this many
        test images: a class of a few images swings the plain mean by chance.
    allow_overlap : bool, default=False
        Test images that are also training images (same file, or same array
        content) raise a ValueError, since their CorLoc is inflated; True
        scores them anyway, with a warning, and records their number.
    n_timing : int, default=64
        Test images timed (forward pass, map, box); 0 skips the timings.
    output : str or path, optional
        Folder for the tables (``.md``, ``.csv``, ``.json``) and the cache
        (``cache/``). Every file is written atomically; a rerun with the same
        folder reuses cached maps and finished steps whose inputs match.
    random_state : int, default=0
        Seed of the regressor.
    verbose : bool, default=False
        Progress bars while computing maps.
    description : dict, optional
        Extra entries for ``summary.json`` (data set name, split, ...).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        tables : dict
            ``table1_per_class``, ``table2_heuristic_sigma``,
            ``table3_methods`` and (when timed) ``timings``, each a dict with
            ``title``, ``columns``, ``rows`` (list of dicts) and ``notes``.
        predictions : dict
            Predicted test boxes, ``(n_test, 4)``, per method name.
        test_maps : dict
            Full-resolution test maps ``(n_test, H, W)`` per aggregation.
        chosen_sigma : dict
            Heuristic sigma chosen on the training images, per aggregation.
        computed, reused : list of str
            Steps computed in this call and steps read back from ``output``.
        files : list of str
            Files written.
        summary : dict
            The settings, as written to ``summary.json``.
        class_names : list of str
            The per-class columns of Table 1.
        output : str or None
            The output folder.

    Examples
    --------
    >>> import numpy as np, keras
    >>> from sklearn_sensloc import evaluate_localization
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3)])
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0, 255, (12, 32, 32, 3))
    >>> boxes = np.tile([0.25, 0.25, 0.75, 0.75], (12, 1))
    >>> result = evaluate_localization(X[:8], boxes[:8], X[8:], boxes[8:], model=model,
    ...                                pool=2, sigmas=[1, 2], n_timing=0)
    >>> result.tables["table3_methods"]["rows"][-1]["method"]
    'center box'
    """
    data = check_data(train_images, train_boxes, test_images, test_boxes, test_labels,
                      test_difficult, class_names, aggregations, sigmas, allow_overlap)
    regressor = BoxRegressor(random_state=random_state) if regressor is None else regressor

    output = OutputFolder(output)
    computer = MapComputer(output, model, weights, target, preprocessing, image_size, batch_size,
                           verbose)
    sens = computer.fit()
    images_keys = {role: image_set_key(keys) for role, keys in data.keys.items()}
    train_maps = computer.maps(train_images, images_keys["train"], data.aggregations, "train")
    test_maps = computer.maps(test_images, images_keys["test"], data.aggregations, "test")
    map_shape = next(iter(test_maps.values())).shape[1:]
    maps_keys = {agg: fingerprint(computer.key(images_keys["train"], agg),
                                  computer.key(images_keys["test"], agg))
                 for agg in data.aggregations}
    boxes = predict_boxes(output, maps_keys, train_maps, test_maps, data.train_boxes,
                          len(data.test_sets), regressor=regressor, pool=pool,
                          sigmas=data.sigmas, top_fraction=top_fraction,
                          iou_threshold=iou_threshold)

    settings = {
        "model": model_label(model), "weights": None if weights is None else os.fspath(weights),
        "preprocessing": preprocessing_label(sens.preprocessing_),
        "image_size": list(sens.input_size_), "target": target,
    }
    tables = result_tables(data, boxes, settings, map_shape, pool=pool,
                           top_fraction=top_fraction, iou_threshold=iou_threshold,
                           min_class_images=min_class_images)
    if n_timing > 0:
        tables["timings"] = _timings(output, computer, test_images, images_keys["test"], boxes,
                                     data, n_timing)

    files = []
    for name, table in tables.items():
        files += output.write_table(name, table)
    summary = {
        **settings, "aggregations": data.aggregations,
        "pool": pool, "sigmas": data.sigmas, "top_fraction": top_fraction,
        "iou_threshold": iou_threshold, "n_train": len(data.train_boxes),
        "n_test": int(data.counted.sum()), "chosen_sigma": boxes.chosen_sigma,
        "random_state": random_state,
        "default_heuristic": {agg: {k: c[k] for k in ("sigma", "top_fraction")}
                              for agg, c in boxes.default_heuristic.items()},
        "regressor": repr(regressor), "allow_overlap": allow_overlap,
        "n_overlap": data.n_overlap, "min_class_images": min_class_images,
        **(description or {}),
    }
    files += output.write_summary(summary, tables)
    return Bunch(
        tables=tables, predictions=boxes.predictions, test_maps=test_maps,
        chosen_sigma=boxes.chosen_sigma, computed=output.computed, reused=output.reused,
        files=files, summary=summary, class_names=list(data.class_index),
        output=None if output.root is None else str(output.root),
    )


def _timings(output, computer, test_images, test_key, boxes, data, n_timing):
    """The timings table of the first aggregation: forward pass, map, and each box method."""
    agg = data.aggregations[0]
    sens = computer.fit()
    key = fingerprint(sens.gradient_key_, test_key, n_timing, sens.batch_size, agg,
                      sens.map_device_)
    measured = output.step(
        "timings", key, lambda: measure_timings(computer, test_images, n_timing, agg)
    )
    best = data.sigmas.index(boxes.chosen_sigma[agg])
    measured = {**measured, "learned_box_s": boxes.learned[agg]["seconds_per_image"],
                "heuristic_box_s": boxes.sweep[agg]["test_seconds_per_image"][best],
                "n_test": len(data.test_sets)}
    return timings_table(measured, agg)


def evaluate_voc(root, train_split="trainval", test_split="test", *, classes=None, limit=None,
                 **kwargs):
    """:func:`evaluate_localization` on a PASCAL VOC style tree.

    Training uses one box per image (the largest non-difficult object of the
    kept classes); the test side uses every box of the kept classes with its
    difficult flag and class.

    Parameters
    ----------
    root : str or path
        VOC tree (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``).
    train_split, test_split : str
        Names of the id lists in ``ImageSets/Main``.
    classes : list of str, optional
        Classes kept; default all.
    limit : int, optional
        Keep only the first ``limit`` images of each split (a quick run).
        Ids in both splits raise a ValueError unless ``allow_overlap=True``.
    **kwargs
        Passed to :func:`evaluate_localization`.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        As :func:`evaluate_localization`, with ``test_images`` (paths) and
        ``test_boxes`` (every box of each test image) added.
    """
    from ..datasets import load_voc

    train = load_voc(root, train_split, classes=classes)
    test = load_voc(root, test_split, classes=classes)
    n_train, n_test = len(train.images), len(test.images)
    if limit is not None:
        n_train, n_test = min(limit, n_train), min(limit, n_test)
    description = {"data": str(train.root), "train_split": train_split, "test_split": test_split,
                   "classes": classes or "all", "limit": limit}
    description.update(kwargs.pop("description", None) or {})
    result = evaluate_localization(
        train.images[:n_train], train.boxes[:n_train], test.images[:n_test],
        test.all_boxes[:n_test], test_labels=test.all_labels[:n_test],
        test_difficult=test.difficult[:n_test], class_names=test.class_names,
        description=description, **kwargs,
    )
    result.test_images, result.test_boxes = test.images[:n_test], test.all_boxes[:n_test]
    return result
