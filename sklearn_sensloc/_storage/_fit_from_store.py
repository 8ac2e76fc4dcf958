"""Training a regressor on the maps of a :class:`~sklearn_sensloc.MapStore`, out of core."""

from sklearn.utils import check_random_state

from .._metrics._boxes import check_boxes
from .._utils._validation import check_positive_int
from ._store import MapStore


def fit_from_store(
    regressor, store, boxes, *, batch_size=2048, epochs=None, shuffle=True, random_state=None
):
    """Train a regressor on the maps of a store by ``partial_fit`` over mini-batches.

    The out-of-core counterpart of ``regressor.fit(maps, boxes)``: each epoch
    reads the store's batches (in a new random order when ``shuffle``),
    regroups them into mini-batches of ``batch_size`` rows, and calls
    ``regressor.partial_fit`` on each with the matching boxes. Memory holds one
    mini-batch of maps.

    Training continues from the regressor's state when it is already fitted
    (``partial_fit`` semantics); pass ``sklearn.clone(regressor)`` to start
    afresh. Note that :class:`~sklearn_sensloc.BoxRegressor` with
    ``step_size="auto"`` uses the paper's schedule in ``partial_fit``, a drop
    of the learning rate every 10,000 mini-batches; on a small store give
    ``step_size`` explicitly.

    Parameters
    ----------
    regressor : estimator with ``partial_fit(X, y)``
        Typically a :class:`~sklearn_sensloc.BoxRegressor`.
    store : MapStore or str or path-like
        A complete store, or its path.
    boxes : array-like of shape (n_images, 4)
        True boxes ``(xmin, ymin, xmax, ymax)``, in the store's image order.
    batch_size : int, default=2048
        Rows per mini-batch, as in the paper.
    epochs : int or None, default=None
        Passes over the store; None makes as many as the regressor's ``fit``
        would (its ``epochs``, else its ``max_iter``), or 1 if it has neither.
    shuffle : bool, default=True
        Shuffle the order of store batches and of rows in each mini-batch,
        anew each epoch.
    random_state : int, RandomState instance or None, default=None
        Seed of the shuffling (the regressor's own ``random_state`` seeds its
        SGD models).

    Returns
    -------
    regressor
        The fitted regressor.

    Examples
    --------
    >>> import tempfile, numpy as np, keras
    >>> from sklearn_sensloc import BoxRegressor, MapStore, SensitivityTransformer, fit_from_store
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3, activation="relu")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (12, 16, 16, 3))
    >>> boxes = np.tile([0.2, 0.2, 0.8, 0.8], (12, 1))
    >>> store = MapStore.create(tempfile.mkdtemp(), SensitivityTransformer(model=model, pool=2),
    ...                         images).compute()
    >>> reg = fit_from_store(BoxRegressor(random_state=0), store, boxes,
    ...                      batch_size=5, epochs=3, random_state=0)
    >>> reg.n_iter_, reg.predict(store.read_batch(0)).shape
    (9, (12, 4))
    """
    if not isinstance(store, MapStore):
        store = MapStore.open(store)
    boxes = check_boxes(boxes, name="boxes")
    if len(boxes) != len(store):
        raise ValueError(
            f"boxes has {len(boxes)} rows but the map store at {store.path!r} holds "
            f"{len(store)} images; give one box per image, in the store's order."
        )
    if epochs is None:
        epochs = getattr(regressor, "epochs", getattr(regressor, "max_iter", 1))
    epochs = check_positive_int(epochs, "epochs")
    if not hasattr(regressor, "partial_fit"):
        raise TypeError(f"{type(regressor).__name__} has no partial_fit method.")
    rng = check_random_state(random_state)
    for _ in range(epochs):
        for indices, maps in store.iter_batches(batch_size, shuffle=shuffle, random_state=rng):
            regressor.partial_fit(maps, boxes[indices])
    return regressor
