"""Sensitivity maps and box regression on a Dask cluster.

Needs the ``dask`` extra: ``pip install 'sklearn-sensloc[dask]'`` (dask[array,dataframe],
distributed, dask-ml).

- :func:`sensitivity_maps_dask` computes maps block by block on the workers.
  The transformer is one key of the graph: Dask sends it once to each worker
  that needs it and keeps it there, unpickled, while the graph runs; the
  worker builds its network and compiled gradient function on first use,
  once, whatever the number of blocks, and frees them with the key.
- ``dask_ml.wrappers.Incremental(BoxRegressor())`` fits over the blocks of
  the maps when the ``(n, 4)`` boxes are a dask DataFrame with one partition
  per block: ``dask_ml`` looks a target's blocks up by the keys of a 1-D
  collection, which a 2-D dask array does not have (``ValueError: could not
  convert string to float: 'array-...'`` in ``partial_fit``), and its
  ``predict`` on a dask array declares a 1-D result (``ValueError: could not
  broadcast input array from shape (k,4) into shape (k,)``).
- :class:`BoxIncremental` is ``Incremental`` without those two limits: boxes
  as a dask array, a dask DataFrame or a numpy array, and a ``(n, 4)`` dask
  array from ``predict``.
"""

import copy

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
    from dask_ml.wrappers import Incremental
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"sklearn-sensloc's Dask support needs dask[array,dataframe], distributed and dask-ml "
        f"({error}): pip install 'sklearn-sensloc[dask]'."
    ) from error
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._images._batches import check_image_array_shape, is_image_array
from ._maps._transformer import fitted_transformer
from ._utils._identity import fingerprint
from ._utils._validation import check_positive_int


def sensitivity_maps_dask(transformer, images, *, chunk_size=None, cache=False):
    """Sensitivity maps of images held by Dask, computed block by block on the workers.

    The result is lazy: ``.compute()``, ``.persist()``, ``.to_zarr(...)`` or
    feed it to :class:`BoxIncremental`. Its blocks are aligned with the blocks
    of ``images``; each is computed by one task, which may run on any worker
    and is simply recomputed elsewhere if its worker dies. Each worker
    process builds the network once per transformer, not once per block.

    Parameters
    ----------
    transformer : SensitivityTransformer
        Fitted here if it is not (which only loads the model, on the client).
        It is pickled to the workers once; prefer a registered name or a
        ``.keras`` path on a shared file system for ``model`` on a real
        cluster, which is cheaper to ship than a ``keras.Model``.
    images : dask array (n, H, W, 3), dask bag, numpy array or list of paths
        A dask array is used blockwise along its first axis (other axes are
        merged into one chunk). A numpy array or list (of paths or arrays) is
        cut into chunks of ``chunk_size`` images; paths are read on the
        workers, so they must be visible to them. A dask bag gives one block
        per partition, whose sizes are unknown until computed.
    chunk_size : int or None, default=None
        Images per block when ``images`` is not a dask collection; None uses
        ``4 * transformer.batch_size``.
    cache : bool or GradientCache, default=False
        Also keep each image's raw gradients in a cache on the workers (True:
        each worker process's :data:`~sklearn_sensloc.gradient_cache`; a
        :class:`~sklearn_sensloc.GradientCache`: an empty one of its size on
        each worker). Off by default whatever the transformer's ``cache``:
        each block is computed once.

    Returns
    -------
    maps : dask.array.Array of shape (n, ``n_features_out_``), float32
        Chunked like ``images`` along the first axis, one chunk along the
        second.

    Examples
    --------
    >>> import dask.array as da, numpy as np, keras
    >>> from sklearn_sensloc import SensitivityTransformer, sensitivity_maps_dask
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3, activation="relu")])
    >>> sens = SensitivityTransformer(model=model, pool=2)
    >>> images = da.random.uniform(0, 255, (10, 16, 16, 3), chunks=(4, 16, 16, 3))
    >>> maps = sensitivity_maps_dask(sens, images)
    >>> maps.shape, maps.chunks[0]
    ((10, 64), (4, 4, 2))
    >>> np.allclose(maps.compute(), sens.transform(images.compute()))
    True
    """
    transformer = fitted_transformer(transformer)
    chunk_size = check_positive_int(chunk_size, "chunk_size", allow_none=True)
    # A shallow copy: the same fitted transformer and engine, its own cache.
    transformer = copy.copy(transformer).set_params(cache=cache)
    n_features = transformer.n_features_out_
    token = transformer_token(transformer)
    # One key holds the transformer: a worker receives it once and keeps it,
    # with the engine its first block builds, for every block it computes.
    shipped = dask.delayed(transformer, name=f"sensloc-transformer-{token}", traverse=False)

    if isinstance(images, db.Bag):
        parts = images.to_delayed()
        sizes = [np.nan] * len(parts)
    else:
        if not isinstance(images, da.Array):
            chunk = chunk_size or 4 * transformer.batch_size
            if is_image_array(images):
                images = da.from_array(images, chunks=(chunk,) + images.shape[1:])
            else:
                items = [str(item) if not hasattr(item, "shape") else item for item in images]
                if not items:
                    raise ValueError("images contains no images.")
                parts = [
                    dask.delayed(items[start : start + chunk], traverse=False)
                    for start in range(0, len(items), chunk)
                ]
                sizes = [len(items[start : start + chunk]) for start in range(0, len(items), chunk)]
        if isinstance(images, da.Array):
            check_image_array_shape(images.shape, "images")
            images = images.rechunk({1: -1, 2: -1, 3: -1})
            parts = list(images.to_delayed().ravel())
            sizes = list(images.chunks[0])

    blocks = [
        da.from_delayed(
            dask.delayed(
                _maps_block, pure=True, name=f"sensloc-maps-{dask.base.tokenize(token, part)}"
            )(shipped, part, n_features),
            shape=(size, n_features),
            dtype=np.float32,
        )
        for part, size in zip(parts, sizes)
    ]
    return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def transformer_token(transformer):
    """A key equal for transformers that compute the same maps the same way."""
    params = transformer.get_params(deep=False)
    params.pop("model")
    return fingerprint(
        type(transformer).__module__,
        type(transformer).__qualname__,
        transformer.gradient_key_,
        sorted((name, repr(value)) for name, value in params.items()),
    )


def _maps_block(transformer, images, n_features):
    if len(images) == 0:
        return np.empty((0, n_features), dtype=np.float32)
    return transformer.transform(images)


class BoxIncremental(Incremental):
    """:class:`dask_ml.wrappers.Incremental` that also handles 2-D targets such as boxes.

    Fits ``estimator`` with one ``partial_fit`` per block of a dask array,
    sequentially, in the same (optionally shuffled) block order as
    ``dask_ml``'s wrapper; each call runs as a task on a worker, next to its
    block. Targets of shape ``(n, k)`` — the ``(n, 4)`` boxes of a
    :class:`~sklearn_sensloc.BoxRegressor` — are passed block by block with
    every column, whether a dask array, a dask DataFrame or a numpy array
    (cut into the blocks of ``X``).
    ``predict`` returns a dask array of shape ``(n, k)`` for such estimators.
    All parameters, attributes and other methods are ``Incremental``'s.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
    scoring : str, callable or None, default=None
    shuffle_blocks : bool, default=True
        Visit the blocks in an order drawn from ``random_state``.
    random_state : int, RandomState instance or None, default=None
    assume_equal_chunks : bool, default=True
        Accepted for compatibility with ``Incremental``; blocks of ``y`` are
        always aligned with the blocks of ``X``.
    predict_meta, predict_proba_meta, transform_meta : array or None
        As in ``Incremental``.

    Attributes
    ----------
    estimator_ : estimator
        The fitted copy of ``estimator``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> from sklearn_sensloc import BoxRegressor
    >>> from sklearn_sensloc import BoxIncremental
    >>> rng = np.random.default_rng(0)
    >>> X = da.from_array(rng.random((60, 8)), chunks=20)
    >>> boxes = np.tile([0.1, 0.2, 0.6, 0.9], (60, 1))
    >>> inc = BoxIncremental(BoxRegressor(random_state=0), random_state=0).fit(X, boxes)
    >>> inc.estimator_.n_iter_, inc.predict(X).shape
    (3, (60, 4))
    """

    def fit(self, X, y=None, **fit_kwargs):
        """Fit a clone of ``estimator`` with one ``partial_fit`` per block of ``X``.

        Parameters
        ----------
        X : dask array of shape (n, n_features), or array-like
        y : dask array or DataFrame, or array-like, of shape (n,) or (n, k), or None
        **fit_kwargs
            Passed to every ``partial_fit`` call.

        Returns
        -------
        self : BoxIncremental
        """
        if not isinstance(X, da.Array):
            return super().fit(X, y, **fit_kwargs)
        return self._fit_blocks(clone(self.estimator), X, y, **fit_kwargs)

    def partial_fit(self, X, y=None, **fit_kwargs):
        """As :meth:`fit`, continuing from ``estimator_`` when there is one."""
        if not isinstance(X, da.Array):
            return super().partial_fit(X, y, **fit_kwargs)
        estimator = getattr(self, "estimator_", None)
        return self._fit_blocks(
            clone(self.estimator) if estimator is None else estimator, X, y, **fit_kwargs
        )

    def _fit_blocks(self, estimator, X, y, **fit_kwargs):
        fitted = partial_fit_blocks(
            estimator,
            X,
            y,
            shuffle_blocks=self.shuffle_blocks,
            random_state=self.random_state,
            **fit_kwargs,
        )
        # As Incremental does: the fitted estimator's learned attributes on the wrapper too.
        for name, value in vars(fitted).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(self, name, value)
        self.estimator_ = fitted
        return self

    def predict(self, X):
        """Predictions, a dask array ``(n,)`` or ``(n, k)`` for a dask ``X``.

        Parameters
        ----------
        X : dask array or array-like of shape (n, n_features)

        Returns
        -------
        y : dask array for a dask ``X``, else what the estimator's predict returns
        """
        if not isinstance(X, da.Array):
            return super().predict(X)
        check_is_fitted(self, "estimator_")
        estimator = self.estimator_
        # One block along the features, as every block's predict needs.
        X = X.rechunk({1: -1}) if X.ndim == 2 else X
        probe = np.asarray(estimator.predict(np.zeros((1, X.shape[1]), dtype=X.dtype)))
        if probe.ndim < 2:
            return super().predict(X)
        return X.map_blocks(
            _predict_block,
            estimator=estimator,
            chunks=(X.chunks[0], (probe.shape[1],)),
            dtype=probe.dtype,
            meta=probe[:0],
        )


def partial_fit_blocks(estimator, X, y, *, shuffle_blocks=True, random_state=None, **fit_kwargs):
    """Call ``estimator.partial_fit`` once per block of ``X``, in a chain of Dask tasks.

    The block order is ``dask_ml``'s: ``range(n_blocks)``, shuffled by
    ``check_random_state(random_state).shuffle`` when ``shuffle_blocks``, so
    the result equals sequential ``partial_fit`` calls over the same blocks in
    that order.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        Fitted in place when the scheduler runs in this process; use the
        returned estimator.
    X : dask array of shape (n, n_features)
    y : dask array or DataFrame, or array-like, of shape (n,) or (n, k), or None
        A dask DataFrame with one partition per block of ``X`` gives its
        partitions as they are; other dask targets are rechunked like ``X``.
    shuffle_blocks : bool, default=True
    random_state : int, RandomState instance or None, default=None
    **fit_kwargs
        Passed to every ``partial_fit`` call.

    Returns
    -------
    estimator
        The fitted estimator.
    """
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D dask array; got shape {X.shape}.")
    X = X.rechunk({1: -1})
    x_blocks = list(X.to_delayed().ravel())
    if y is None:
        y_blocks = [None] * len(x_blocks)
    elif _is_dask_frame(y) and y.npartitions == len(x_blocks):
        # A dask DataFrame aligned with X: its partitions are the blocks of y.
        y_blocks = list(y.to_delayed())
    else:
        if _is_dask_frame(y):
            y = y.to_dask_array(lengths=True)
        if not isinstance(y, da.Array):
            y = np.asarray(y)
            if len(y) != X.shape[0]:
                raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}.")
            y = da.from_array(y, chunks=(X.chunks[0],) + y.shape[1:])
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}.")
        y = y.rechunk({1: -1}) if y.ndim == 2 else y
        if y.chunks[0] != X.chunks[0]:
            if any(np.isnan(size) for size in X.chunks[0] + y.chunks[0]):
                raise ValueError(
                    "X and y have unknown chunk sizes that may differ; call "
                    "compute_chunk_sizes() on both first."
                )
            if X.shape[0] != y.shape[0]:
                raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}.")
            y = y.rechunk({0: X.chunks[0]})
        y_blocks = list(y.to_delayed().ravel())
    order = list(range(len(x_blocks)))
    if shuffle_blocks:
        check_random_state(random_state).shuffle(order)
    model = estimator
    for index in order:
        model = dask.delayed(_partial_fit, pure=False)(
            model, x_blocks[index], y_blocks[index], fit_kwargs
        )
    return model.compute() if order else estimator


def _is_dask_frame(y):
    return dask.is_dask_collection(y) and hasattr(y, "to_dask_array")


def _partial_fit(model, X, y, fit_kwargs):
    model.partial_fit(X, y, **fit_kwargs)
    return model


def _predict_block(block, estimator):
    return estimator.predict(block)


__all__ = [
    "BoxIncremental",
    "partial_fit_blocks",
    "sensitivity_maps_dask",
    "transformer_token",
]
