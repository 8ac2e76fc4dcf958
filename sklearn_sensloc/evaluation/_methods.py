"""The box methods the evaluation scores, each one step stored under the key of its inputs.

- the learned linear map (a clone of the given regressor) on pooled maps,
- the default heuristic (``HeuristicBoxEstimator()``, its smoothing and
  fraction chosen on the training images) on the same pooled maps,
- the paper's heuristic for a sweep of ``sigma`` on full-resolution maps,
  the ``sigma`` chosen on the training images,
- the center-box baseline.
"""

import functools
import time

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from .._box_estimators._heuristic import (
    SIGMA_GRID,
    TOP_FRACTION_GRID,
    CenterBoxBaseline,
    HeuristicBoxEstimator,
)
from .._maps._steps import pooled_shape
from .._metrics._corloc import correct_localizations
from ._full_maps import CHUNK, digest, pooled_features


def predict_boxes(output, maps_keys, train_maps, test_maps, train_boxes, n_test, *, regressor,
                  pool, sigmas, top_fraction, iou_threshold):
    """Every method's test boxes, per aggregation, and what each chose on the training images.

    Parameters
    ----------
    output : OutputFolder
    maps_keys : dict
        Per aggregation, the key of its training and test maps.
    train_maps, test_maps : dict
        Per aggregation, full-resolution maps ``(n, H, W)``.

    Returns
    -------
    result : Bunch
        ``predictions`` (method name: test boxes), ``learned``,
        ``default_heuristic`` and ``sweep`` (per aggregation, the payload of
        each step) and ``chosen_sigma`` (per aggregation).
    """
    boxes_key = digest(train_boxes)
    predictions, chosen_sigma, sweep, learned, default = {}, {}, {}, {}, {}
    for agg, maps_key in maps_keys.items():
        map_shape = test_maps[agg].shape[1:]
        # Pooled once, and only when a step that needs them is not on disk.
        pooled = functools.cache(lambda agg=agg: tuple(
            pooled_features(maps[agg], pool) for maps in (train_maps, test_maps)
        ))
        # Every parameter, defaults included: repr shows only the changed ones,
        # and shortens long values.
        key = digest(maps_key, boxes_key, pool, type(regressor).__qualname__,
                     sorted(regressor.get_params().items()))
        learned[agg] = output.step(
            f"learned-{agg}", key,
            lambda pooled=pooled: learned_step(regressor, pooled()[0], train_boxes, pooled()[1]),
        )
        predictions[f"learned ({agg})"] = np.asarray(learned[agg]["test_boxes"])
        key = digest(maps_key, boxes_key, pool, SIGMA_GRID, TOP_FRACTION_GRID, iou_threshold)
        default[agg] = output.step(
            f"heuristic-default-{agg}", key,
            lambda pooled=pooled, map_shape=map_shape: default_heuristic_step(
                pooled()[0], train_boxes, pooled()[1], pooled_shape(map_shape, pool),
                iou_threshold),
        )
        predictions[f"heuristic ({agg}, default)"] = np.asarray(default[agg]["test_boxes"])
        key = digest(maps_key, boxes_key, sigmas, top_fraction, iou_threshold)
        sweep[agg] = output.step(
            f"heuristic-{agg}", key,
            lambda agg=agg: heuristic_step(train_maps[agg], train_boxes, test_maps[agg], sigmas,
                                           top_fraction, iou_threshold),
        )
        best = int(np.argmax(sweep[agg]["train_corloc"]))
        chosen_sigma[agg] = sigmas[best]
        predictions[f"heuristic ({agg}, paper, sigma={sigmas[best]:g})"] = np.asarray(
            sweep[agg]["test_boxes"][best]
        )
    center = CenterBoxBaseline().fit(np.zeros(len(train_boxes)), train_boxes)
    predictions["center box"] = center.predict(np.zeros(n_test))
    return Bunch(predictions=predictions, chosen_sigma=chosen_sigma, sweep=sweep,
                 learned=learned, default_heuristic=default)


def learned_step(regressor, train_features, train_boxes, test_features):
    """A clone of ``regressor`` fitted on the training maps; its test boxes and their time."""
    reg = clone(regressor).fit(train_features, train_boxes)
    start = time.perf_counter()
    boxes = reg.predict(test_features)
    elapsed = time.perf_counter() - start
    return {"test_boxes": boxes.tolist(), "seconds_per_image": elapsed / len(boxes)}


def default_heuristic_step(train_features, train_boxes, test_features, map_shape, iou_threshold):
    """``HeuristicBoxEstimator()`` as a Pipeline after the transformer uses it: pooled maps."""
    est = HeuristicBoxEstimator(map_shape=map_shape, iou_threshold=iou_threshold)
    est.fit(train_features, train_boxes)
    return {"test_boxes": est.predict(test_features).tolist(), "sigma": est.sigma_,
            "top_fraction": est.fraction_}


def heuristic_step(train_maps, train_boxes, test_maps, sigmas, top_fraction, iou_threshold):
    """The paper's heuristic for each sigma: training CorLoc, test boxes and their time."""
    out = {"sigmas": sigmas, "train_corloc": [], "test_boxes": [], "test_seconds_per_image": []}
    map_shape = test_maps.shape[1:]
    for sigma in sigmas:
        est = HeuristicBoxEstimator(sigma=sigma, top_fraction=top_fraction, map_shape=map_shape)
        est.fit(np.zeros((1, map_shape[0] * map_shape[1])))
        train_pred = _heuristic_boxes(est, train_maps)
        out["train_corloc"].append(
            float(100 * correct_localizations(train_boxes, train_pred, iou_threshold).mean())
        )
        start = time.perf_counter()
        test_pred = _heuristic_boxes(est, test_maps)
        out["test_seconds_per_image"].append((time.perf_counter() - start) / len(test_pred))
        out["test_boxes"].append(test_pred.tolist())
    return out


def _heuristic_boxes(estimator, full_maps):
    n_features = estimator.n_features_in_
    boxes = [
        estimator.predict(np.asarray(full_maps[s : s + CHUNK]).reshape(-1, n_features))
        for s in range(0, len(full_maps), CHUNK)
    ]
    return np.concatenate(boxes)
