"""The paper's evaluation protocol, usable from Python and from ``sensloc evaluate``.

Sensitivity maps are computed once per (images, model, target, aggregation)
at full resolution and cached; every box method is then scored on them:

- the learned linear map (:class:`BoxRegressor`) on pooled maps (Table 1, 3),
- the default heuristic (``HeuristicBoxEstimator()``, its smoothing and
  fraction chosen on the *training* images) on the same pooled maps,
- the paper's heuristic for a sweep of ``sigma`` on full-resolution maps
  (Table 2), with the ``sigma`` chosen on the *training* images for Table 1/3,
- the center-box baseline (Table 3),

plus per-image timings of the forward pass, the map computation and the box
prediction. Results go to an output folder as Markdown, CSV and JSON, every
file written atomically; a rerun with the same folder reuses every finished
step whose inputs did not change.
"""

import functools
import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from ._atomic import (
    atomic_file,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_text,
    folder_lock,
)
from ._boxes import check_box_sets, check_boxes
from ._cache import fingerprint
from ._heuristic import SIGMA_GRID, TOP_FRACTION_GRID, CenterBoxBaseline, HeuristicBoxEstimator
from ._images import ImageSource
from ._maps import AGGREGATIONS, pool_and_normalize, pooled_shape, sensitivity_maps
from ._metrics import corloc_interval, correct_localizations
from ._models import model_fingerprint, preprocessing_key, preprocessing_label
from ._progress import progress
from ._regressor import BoxRegressor
from ._tables import make_table, table_csv, table_markdown
from ._timings import measure_timings, timings_table
from ._transformer import SensitivityTransformer

__all__ = ["evaluate_localization", "evaluate_voc", "DEFAULT_SIGMAS"]

#: The paper's Table 2 sweep, in pixels of full-resolution (224x224) maps.
DEFAULT_SIGMAS = (5, 10, 20, 30, 40)

# Bump when the meaning of a cached file changes, so old caches are not reused
# (2: class targets of softmax models became the score before the softmax).
_FORMAT = 2
# Maps handled at once when pooling or smoothing, to bound memory.
_CHUNK = 256
# Images per cached part of a map computation (rounded up to whole batches).
_PART = 256


# --------------------------------------------------------------------------- files


def _load_npy(path, n_images):
    """A complete ``(n_images, H, W)`` array file, memory-mapped, or None."""
    if not path.is_file():
        return None
    try:
        maps = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return maps if maps.ndim == 3 and len(maps) == n_images else None


class _Store:
    """The output folder: cached maps, finished steps and tables. ``None``: memory only."""

    def __init__(self, output):
        self.root = None if output is None else Path(output)
        self.computed, self.reused = [], []
        if self.root is not None:
            (self.root / "cache").mkdir(parents=True, exist_ok=True)

    def _step_path(self, name):
        return self.root / "cache" / f"step-{name}.json"

    def step(self, name, key, compute):
        """Payload of step ``name``: read back when written with the same key, else computed."""
        if self.root is not None:
            path = self._step_path(name)
            if path.is_file():
                try:
                    stored = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    stored = None
                if isinstance(stored, dict) and stored.get("key") == key:
                    self.reused.append(name)
                    return stored["payload"]
        payload = compute()
        self.computed.append(name)
        if self.root is not None:
            atomic_write_json(self._step_path(name), {"key": key, "payload": payload})
        return payload

    def maps_path(self, key):
        return self.root / "cache" / f"maps-{key}.npy"

    def load_maps(self, key, n_images):
        """Finished maps of ``key``, memory-mapped, or None."""
        if self.root is None:
            return None
        return _load_npy(self.maps_path(key), n_images)

    def _part_path(self, key):
        return self.root / "cache" / "parts" / f"maps-{key}.npy"

    def has_part(self, key, n_images):
        return _load_npy(self._part_path(key), n_images) is not None

    def save_part(self, key, block):
        """Maps of some images: a finished part survives an interruption."""
        path = self._part_path(key)
        path.parent.mkdir(exist_ok=True)
        atomic_save_npy(path, block)

    def assemble_maps(self, key, part_keys, shape):
        """Join the parts ``{start: key}`` into one ``.npy`` (atomically), memory-map it."""
        path = self.maps_path(key)
        with atomic_file(path) as handle:
            array = np.lib.format.open_memmap(handle.name, "w+", np.float32, shape)
            for start, part_key in part_keys.items():
                block = np.load(self._part_path(part_key), mmap_mode="r")
                array[start : start + len(block)] = block
            array.flush()
            del array
        for part_key in part_keys.values():
            self._part_path(part_key).unlink(missing_ok=True)
        return np.load(path, mmap_mode="r")

    def write_table(self, name, table):
        if self.root is None:
            return []
        written = []
        for ext, text in (("md", table_markdown(table)), ("csv", table_csv(table))):
            atomic_write_text(self.root / f"{name}.{ext}", text)
            written.append(str(self.root / f"{name}.{ext}"))
        atomic_write_json(self.root / f"{name}.json", table)
        written.append(str(self.root / f"{name}.json"))
        return written


# --------------------------------------------------------------------------- keys


def _digest(*parts):
    """Cache key of values and arrays (an array counts by dtype, shape and bytes)."""
    return fingerprint(*(
        fingerprint(p.dtype.str, p.shape, np.ascontiguousarray(p).data)
        if isinstance(p, np.ndarray) else p
        for p in parts
    ))


def _image_keys(images):
    """Key of each image: file name, size and date for a path, bytes for an array."""
    source = ImageSource(images)
    return [source.key(i) for i in range(len(source))]


def _images_digest(images):
    """Key of an image set."""
    return fingerprint(*_image_keys(images))


def _model_digest(model, weights=None):
    import keras

    return model_fingerprint(model, model if isinstance(model, keras.Model) else None, weights)


def _check_overlap(train_keys, test_keys, test_images, allow_overlap):
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
    warnings.warn(f"{message} Scored anyway (allow_overlap=True).", UserWarning, stacklevel=3)
    return len(shared)


def model_label(model):
    """A short human name for a ``model=`` value."""
    import keras

    if isinstance(model, keras.Model):
        return f"keras.Model {model.name!r}"
    return os.fspath(model)


# --------------------------------------------------------------------------- maps


class _MapComputer:
    """Full-resolution, max-normalised maps of several aggregations from one backward pass.

    Max-normalised full-resolution maps lose nothing the pipeline needs: any
    pooling followed by any of the normalizations gives exactly what
    :class:`SensitivityTransformer` with that ``pool`` and ``normalize``
    returns, because every normalization is invariant to the per-map scale.
    """

    def __init__(self, store, model, weights, target, preprocessing, image_size, batch_size,
                 verbose):
        self.store = store
        self.transformer = SensitivityTransformer(
            model=model, weights=weights, target=target, pool=1, normalize="max",
            preprocessing=preprocessing, image_size=image_size, batch_size=batch_size,
            verbose=verbose,
            # These maps are cached whole below; raw gradients would only churn the LRU.
            cache=False,
        )
        self.model_digest = _model_digest(model, weights)
        self.settings = (target, preprocessing_key(preprocessing), image_size)

    def fit(self):
        if not hasattr(self.transformer, "input_size_"):
            self.transformer.fit(None)
        return self.transformer

    def key(self, images_digest, aggregation):
        return _digest(_FORMAT, images_digest, self.model_digest, *self.settings, aggregation, 1)

    def maps(self, images, images_digest, aggregations, role):
        """``{aggregation: (n, H, W) float32 maps}``, computing only those not cached."""
        keys = {agg: self.key(images_digest, agg) for agg in aggregations}
        result = {agg: self.store.load_maps(keys[agg], len(images)) for agg in aggregations}
        for agg in aggregations:
            if result[agg] is not None:
                self.store.reused.append(f"maps-{role}-{agg}")
        missing = [agg for agg in aggregations if result[agg] is None]
        if missing:
            result.update(self._compute(images, {a: keys[a] for a in missing}, role))
        return result

    def _compute(self, images, keys, role):
        sens = self.fit()
        shape = (len(images), *sens.input_size_)
        if self.store.root is None:
            arrays = {agg: np.empty(shape, dtype=np.float32) for agg in keys}
            for start, blocks in self._blocks(images, list(keys), [0], len(images), role):
                for agg, block in blocks.items():
                    arrays[agg][start : start + len(block)] = block
            self.store.computed.extend(f"maps-{role}-{agg}" for agg in keys)
            return arrays
        # Parts of whole batches, keyed by their own images: an interruption, or a
        # file replaced in one part, costs at most that part.
        part = sens.batch_size * max(1, math.ceil(_PART / sens.batch_size))
        starts = range(0, len(images), part)
        part_keys = {
            agg: {start: self.key(_images_digest(images[start : start + part]), agg)
                  for start in starts}
            for agg in keys
        }
        todo = [
            start for start in starts
            if not all(self.store.has_part(part_keys[agg][start],
                                           len(images[start : start + part])) for agg in keys)
        ]
        for start, blocks in self._blocks(images, list(keys), todo, part, role):
            for agg, block in blocks.items():
                self.store.save_part(part_keys[agg][start], block)
        done = {}
        for agg, key in keys.items():
            done[agg] = self.store.assemble_maps(key, part_keys[agg], shape)
            self.store.computed.append(f"maps-{role}-{agg}")
        return done

    def _blocks(self, images, aggregations, starts, part, role):
        """Yield ``(start, {aggregation: maps})`` for the parts beginning at ``starts``."""
        sens = self.transformer
        n_todo = sum(len(images[start : start + part]) for start in starts)

        def batches():
            for start in starts:
                source = ImageSource(images[start : start + part])
                for offset, gradients in sens._abs_gradients(source):
                    yield start + offset, gradients

        def joined(pending):
            return {agg: np.concatenate(blocks) for agg, blocks in pending.items()}

        bar = progress(batches(), n_todo, sens.batch_size, sens.verbose, f"maps of {role} images")
        pending, filled = {}, 0
        for start, gradients in bar:
            # One backward pass serves every aggregation.
            for agg in aggregations:
                pending.setdefault(agg, []).append(sensitivity_maps(gradients, agg, 1, "max"))
            filled += len(gradients)
            part_start = start // part * part
            if filled == min(part, len(images) - part_start):
                # Yielded as soon as it is complete, before the next image is read.
                yield part_start, joined(pending)
                pending, filled = {}, 0


def pooled_features(full_maps, pool, normalize="max"):
    """Flattened maps as :class:`SensitivityTransformer` returns them for ``pool``.

    Parameters
    ----------
    full_maps : ndarray of shape (n, H, W)
        Full-resolution maps (``pool=1``), any per-map scale.
    pool : int
        Side of the averaged blocks.
    normalize : {"max", "sum", "standard"} or None, default="max"

    Returns
    -------
    features : ndarray of shape (n, ceil(H / pool) * ceil(W / pool)), float32
    """
    blocks = []
    for start in range(0, len(full_maps), _CHUNK):
        chunk = np.asarray(full_maps[start : start + _CHUNK], dtype=np.float32)
        chunk = pool_and_normalize(chunk, pool, normalize)
        blocks.append(chunk.reshape(len(chunk), -1))
    return np.concatenate(blocks)


def _heuristic_boxes(estimator, full_maps):
    boxes = [
        estimator.predict(np.asarray(full_maps[s : s + _CHUNK]).reshape(-1, estimator.n_features_in_))
        for s in range(0, len(full_maps), _CHUNK)
    ]
    return np.concatenate(boxes)


# --------------------------------------------------------------------------- scoring


def _class_index(test_boxes, test_labels, test_difficult, class_names):
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


def _hits(pred, test_boxes, class_index, counted, iou_threshold):
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


def _scores(pred, test_boxes, class_index, counted, iou_threshold):
    return _corlocs(*_hits(pred, test_boxes, class_index, counted, iou_threshold))


def _corlocs(overall, per_class):
    """(CorLoc, mean of the per-class CorLocs, per-class CorLocs) of the hits."""
    per_class = {name: 100.0 * hits.mean() for name, hits in per_class.items()}
    mean = float(np.mean(list(per_class.values()))) if per_class else float("nan")
    return float(100.0 * overall.mean()), mean, per_class


def _interval_text(hits):
    low, high = corloc_interval(hits)
    return f"{low:.0f}-{high:.0f}"


def _learned_step(regressor, train_features, train_boxes, test_features):
    reg = clone(regressor).fit(train_features, train_boxes)
    start = time.perf_counter()
    boxes = reg.predict(test_features)
    elapsed = time.perf_counter() - start
    return {"test_boxes": boxes.tolist(), "seconds_per_image": elapsed / len(boxes)}


def _default_heuristic_step(train_features, train_boxes, test_features, map_shape):
    """``HeuristicBoxEstimator()`` as a Pipeline after the transformer uses it: pooled maps."""
    est = HeuristicBoxEstimator(map_shape=map_shape).fit(train_features, train_boxes)
    return {"test_boxes": est.predict(test_features).tolist(), "sigma": est.sigma_,
            "top_fraction": est.fraction_}


def _heuristic_step(train_maps, train_boxes, test_maps, sigmas, top_fraction, iou_threshold):
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


# --------------------------------------------------------------------------- protocol


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
    model="vgg16-hed",
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
        Passed to :class:`SensitivityTransformer`.
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
    class_index, counted = _class_index(test_sets, test_labels, test_difficult, class_names)
    if not counted.any():
        raise ValueError("Every test image has only difficult boxes: nothing to score.")
    keys = {"train": _image_keys(train_images), "test": _image_keys(test_images)}
    n_overlap = _check_overlap(keys["train"], keys["test"], test_images, allow_overlap)
    regressor = BoxRegressor(random_state=random_state) if regressor is None else regressor

    store = _Store(output)
    computer = _MapComputer(store, model, weights, target, preprocessing, image_size, batch_size,
                            verbose)
    sens = computer.fit()
    digests = {role: fingerprint(*role_keys) for role, role_keys in keys.items()}
    train_maps = computer.maps(train_images, digests["train"], aggregations, "train")
    test_maps = computer.maps(test_images, digests["test"], aggregations, "test")
    map_shape = next(iter(test_maps.values())).shape[1:]
    boxes_digest = _digest(train_boxes)

    predictions, chosen_sigma, sweep, learned, chosen = {}, {}, {}, {}, {}
    for agg in aggregations:
        # Pooled once, and only when a step that needs them is not on disk.
        pooled = functools.cache(lambda agg=agg: tuple(
            pooled_features(maps[agg], pool) for maps in (train_maps, test_maps)
        ))
        maps_key = _digest(computer.key(digests["train"], agg), computer.key(digests["test"], agg))
        # Every parameter, defaults included: repr shows only the changed ones,
        # and shortens long values.
        key = _digest(maps_key, boxes_digest, pool, type(regressor).__qualname__,
                      sorted(regressor.get_params().items()))
        learned[agg] = store.step(
            f"learned-{agg}", key,
            lambda pooled=pooled: _learned_step(regressor, pooled()[0], train_boxes, pooled()[1]),
        )
        predictions[f"learned ({agg})"] = np.asarray(learned[agg]["test_boxes"])
        key = _digest(maps_key, boxes_digest, pool, SIGMA_GRID, TOP_FRACTION_GRID)
        chosen[agg] = store.step(
            f"heuristic-default-{agg}", key,
            lambda pooled=pooled: _default_heuristic_step(
                pooled()[0], train_boxes, pooled()[1], pooled_shape(map_shape, pool)),
        )
        predictions[f"heuristic ({agg}, default)"] = np.asarray(chosen[agg]["test_boxes"])
        key = _digest(maps_key, boxes_digest, sigmas, top_fraction, iou_threshold)
        sweep[agg] = store.step(
            f"heuristic-{agg}", key,
            lambda agg=agg: _heuristic_step(train_maps[agg], train_boxes, test_maps[agg], sigmas,
                                            top_fraction, iou_threshold),
        )
        best = int(np.argmax(sweep[agg]["train_corloc"]))
        chosen_sigma[agg] = sigmas[best]
        predictions[f"heuristic ({agg}, paper, sigma={sigmas[best]:g})"] = np.asarray(
            sweep[agg]["test_boxes"][best]
        )
    center = CenterBoxBaseline().fit(np.zeros(len(train_boxes)), train_boxes)
    predictions["center box"] = center.predict(np.zeros(len(test_sets)))

    hits = {name: _hits(pred, test_sets, class_index, counted, iou_threshold)
            for name, pred in predictions.items()}
    scores = {name: _corlocs(*name_hits) for name, name_hits in hits.items()}
    n_counted = int(counted.sum())
    settings = {
        "model": model_label(model), "weights": None if weights is None else os.fspath(weights),
        "preprocessing": preprocessing_label(sens.preprocessing_),
        "image_size": list(sens.input_size_), "target": target,
    }
    base_notes = [
        f"{len(train_boxes)} training images, {n_counted} test images; a hit is IoU > "
        f"{iou_threshold:g} with any ground-truth box of the image (of the class, per class).",
        f"model {settings['model']}"
        + (f" with weights {settings['weights']}" if weights is not None else "")
        + f", preprocessing {settings['preprocessing']}, images {map_shape[0]}x{map_shape[1]}, "
        f"target {target!r}; learned map (BoxRegressor) and default heuristic "
        f"(HeuristicBoxEstimator(): sigma and top fraction chosen on the training images, "
        + ", ".join(f"{agg}: sigma {c['sigma']:g}, top {c['top_fraction']:g}"
                    for agg, c in chosen.items())
        + f") on maps pooled by {pool}; paper's heuristic on full-resolution maps, top "
        f"{top_fraction:g} of the pixels, sigma chosen on the training images.",
    ] + ([f"{n_overlap} test images are also training images (allow_overlap=True): "
          "their CorLoc is inflated."] if n_overlap else [])
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
            + ", ".join(f"{c} {_interval_text(h)}" for c, h in class_hits.items())
            for name, (_, class_hits) in hits.items()
        ],
    )
    rows2 = []
    for i, sigma in enumerate(sigmas):
        row = {"sigma": sigma}
        for agg in aggregations:
            test_pred = np.asarray(sweep[agg]["test_boxes"][i])
            test_hits = _hits(test_pred, test_sets, class_index, counted, iou_threshold)[0]
            row[f"test ({agg})"] = float(100.0 * test_hits.mean())
            row[f"test 95% ({agg})"] = _interval_text(test_hits)
            row[f"train ({agg})"] = sweep[agg]["train_corloc"][i]
        rows2.append(row)
    columns2 = ["sigma"] + [f"{side} ({agg})" for agg in aggregations
                            for side in ("test", "test 95%", "train")]
    table2 = make_table("table2_heuristic_sigma", columns2, rows2,
                    base_notes[:1] + [f"sigma in pixels of the {map_shape[0]}x{map_shape[1]} maps; "
                                      f"top {top_fraction:g} of the pixels kept; train: CorLoc "
                                      "on the training images, which choose sigma; test 95%: "
                                      "Wilson interval of the test CorLoc."])
    table3 = make_table(
        "table3_methods",
        ["method", "corloc", "corloc_low", "corloc_high", "mean_per_class", "n_test"],
        [{"method": name, "corloc": s[0],
          **dict(zip(("corloc_low", "corloc_high"), corloc_interval(hits[name][0]))),
          "mean_per_class": s[1], "n_test": n_counted}
         for name, s in scores.items()],
        base_notes + ["corloc_low, corloc_high: 95% Wilson interval of the CorLoc."],
    )
    tables = {t["name"]: t for t in (table1, table2, table3)}

    if n_timing > 0:
        agg = aggregations[0]
        key = _digest(computer.model_digest, computer.settings, digests["test"], n_timing,
                      batch_size, agg)
        measured = store.step(
            "timings", key, lambda: measure_timings(computer, test_images, n_timing, agg)
        )
        best = sigmas.index(chosen_sigma[agg])
        measured = {**measured, "learned_box_s": learned[agg]["seconds_per_image"],
                    "heuristic_box_s": sweep[agg]["test_seconds_per_image"][best],
                    "n_test": len(test_sets)}
        tables["timings"] = timings_table(measured, agg)

    files = []
    for name, table in tables.items():
        files += store.write_table(name, table)
    summary = {
        **settings, "aggregations": aggregations,
        "pool": pool, "sigmas": sigmas, "top_fraction": top_fraction,
        "iou_threshold": iou_threshold, "n_train": len(train_boxes), "n_test": n_counted,
        "chosen_sigma": chosen_sigma, "random_state": random_state,
        "default_heuristic": {agg: {k: c[k] for k in ("sigma", "top_fraction")}
                              for agg, c in chosen.items()},
        "regressor": repr(regressor), "allow_overlap": allow_overlap, "n_overlap": n_overlap,
        "min_class_images": min_class_images, **(description or {}),
    }
    if store.root is not None:
        text = "# sklearn-sensloc evaluation\n\n" + "".join(
            f"- {k}: {v}\n" for k, v in summary.items()
        ) + "\n" + "\n".join(table_markdown(t) for t in tables.values())
        atomic_write_text(store.root / "summary.md", text)
        atomic_write_json(store.root / "summary.json", {**summary, "tables": tables})
        files += [str(store.root / "summary.md"), str(store.root / "summary.json")]
    return Bunch(
        tables=tables, predictions=predictions, test_maps=test_maps, chosen_sigma=chosen_sigma,
        computed=store.computed, reused=store.reused, files=files, summary=summary,
        class_names=classes, output=None if store.root is None else str(store.root),
    )


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
    from .datasets import load_voc

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
