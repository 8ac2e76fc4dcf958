"""Map stores: the maps of a list of images on disk, computed once, resumed after a stop.

A :class:`MapStore` is a directory::

    store/
        manifest.json          what the maps are: transformer, images, layout
        batches/000000.npy     maps of images 0 .. images_per_file - 1
        batches/000001.npy     ...

Each batch file is written to a temporary name, flushed to disk and renamed
into place (``os.replace``, atomic on POSIX and Windows), so a batch file that
exists is a complete one: a run interrupted by an exception, a kill or a power
loss leaves at worst a stray temporary file, never a half-written batch that
would be read back as valid. Re-running :meth:`MapStore.compute` computes only
the batches whose file is missing or fails its size check.

The manifest records everything the maps depend on (the transformer's
gradient key, with the model's fingerprint, the target, the preprocessing and
the input size that name a difference; aggregation, normalization and
pooling) and a fingerprint of the image list, so that a store is never resumed
or extended with maps of another configuration or other images.

The batch files are the package's one kind of on-disk array
(:class:`~sklearn_sensloc._utils._array_files.ArrayFiles`), computed by the
transformer's :class:`~sklearn_sensloc._maps._provider.GradientProvider`
(``compute_map_files``), which skips the files already there: the store and
the evaluation's stored maps resume alike. :func:`~sklearn_sensloc.fit_from_store`
trains a regressor from a store.
"""

import json
import math
import os
import time

import numpy as np
from sklearn.utils import check_random_state

from .._images._batches import ImageSource, is_image_array
from .._maps._transformer import fitted_transformer
from .._utils._array_files import ArrayFiles
from .._utils._atomic import TEMPORARY_SUFFIX, atomic_write_json, folder_lock
from .._utils._identity import fingerprint, image_set_key
from .._utils._validation import DEPRECATED, check_positive_int, renamed_parameter, warn_renamed

FORMAT = "sklearn-sensloc map store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH_DIRECTORY = "batches"

#: Fields of the manifest's "maps" section that decide whether two maps are equal;
#: one that an older store did not record is not compared.
_MAP_FIELDS = (
    ("gradients", "gradients (the transformer's gradient_key_: model, target, preprocessing, "
                  "input size, method)"),
    ("model", "model (architecture and weights, or file, or registered name)"),
    ("target", "target"),
    ("preprocessing", "preprocessing"),
    ("input_size", "input size"),
    ("aggregation", "aggregation"),
    ("normalize", "normalize"),
    ("pool", "pool"),
    ("n_features", "number of features"),
)


class MapStoreMismatchError(ValueError):
    """An existing store was opened with other parameters or other images."""


class MapStore:
    """Sensitivity maps of many images, computed batch by batch into a directory.

    Create (or resume) a store with :meth:`create`, fill it with
    :meth:`compute`, and read it with :meth:`iter_batches`, :meth:`read_batch`,
    :meth:`to_numpy` or :meth:`to_dask`; :func:`fit_from_store` trains a
    :class:`~sklearn_sensloc.BoxRegressor` from it with ``partial_fit``. Memory
    stays bounded by one batch of images while computing and by one
    mini-batch of maps while fitting, whatever the number of images.

    A computation interrupted in any way (exception, Ctrl-C, killed process,
    power loss) is resumed by calling :meth:`create` with the same arguments
    and :meth:`compute` again: finished batches are kept, the others are
    computed. A batch file is complete or absent, never half-written.

    Do not instantiate directly; use :meth:`create` or :meth:`open`.

    Attributes
    ----------
    path : str
        The store's directory.
    n_images : int
        Number of images (also ``len(store)``).
    n_features : int
        Length of one flattened map.
    map_shape : tuple of int
        (height, width) of one map.
    images_per_file : int
        Images per batch file. (``batch_size`` is its old name, deprecated:
        everywhere else ``batch_size`` is what one step computes at once.)
    n_batches : int
        Number of batch files when complete.
    manifest : dict
        The parsed ``manifest.json``.

    Examples
    --------
    >>> import tempfile, numpy as np, keras
    >>> from sklearn_sensloc import MapStore, SensitivityTransformer
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3, activation="relu")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (10, 16, 16, 3))
    >>> sens = SensitivityTransformer(model=model, pool=2, batch_size=4)
    >>> path = tempfile.mkdtemp() + "/maps"
    >>> store = MapStore.create(path, sens, images).compute()
    >>> len(store), store.n_batches, store.is_complete()
    (10, 3, True)
    >>> store.to_numpy().shape
    (10, 64)
    >>> MapStore.open(path).missing_batches()
    []
    """

    def __init__(self, path, manifest, transformer=None, images=None):
        self.path = os.fspath(path)
        self._files = ArrayFiles(os.path.join(self.path, BATCH_DIRECTORY))
        self.manifest = manifest
        self._transformer = transformer
        self._images = images

    # ------------------------------------------------------------------ creation

    @classmethod
    def create(cls, path, transformer, images, *, images_per_file=None, overwrite=False,
               batch_size=DEPRECATED):
        """Create a store for the maps of ``images``, or resume an existing one.

        If ``path`` already holds a store made with the same transformer
        parameters, model and images, it is opened as is, keeping its finished
        batches. If it holds a store of other maps or images, a
        :class:`MapStoreMismatchError` (a ``ValueError``) names the path and
        every difference, unless ``overwrite=True``. Nothing is computed here;
        call :meth:`compute`.

        Parameters
        ----------
        path : str or path-like
            Directory of the store; created if needed. An existing directory
            that is neither empty nor a store is refused.
        transformer : SensitivityTransformer
            Computes the maps; fitted here if it is not (which only loads the
            model).
        images : array of shape (n, H, W, 3), or list of image paths or arrays
            The images, in the order of the store's rows. A list of paths is
            read batch by batch; only the paths stay in memory.
        images_per_file : int or None, default=None
            Images per batch file, i.e. the granularity of resuming. None keeps
            an existing store's, or else uses ``transformer.batch_size``.
        overwrite : bool, default=False
            Replace an existing store of other maps or images (its batch files
            are deleted) instead of refusing it.
        batch_size : int or None
            Deprecated old name of ``images_per_file`` (a ``FutureWarning``;
            removed in 0.4).

        Returns
        -------
        store : MapStore
            Bound to ``transformer`` and ``images``, so it can :meth:`compute`.

        Raises
        ------
        MapStoreMismatchError
            If ``path`` holds a store of other maps or images.
        """
        transformer = fitted_transformer(transformer)
        images_per_file = check_positive_int(
            renamed_parameter("MapStore.create", "batch_size", batch_size, "images_per_file",
                              images_per_file, None),
            "images_per_file", allow_none=True)
        path = os.fspath(path)
        source = ImageSource(images)
        if is_image_array(images):
            items = images
        else:
            items = list(images)
        existing = _read_manifest(path) if os.path.exists(os.path.join(path, MANIFEST)) else None
        if images_per_file is None:
            images_per_file = existing["batch_size"] if existing else transformer.batch_size
        manifest = _make_manifest(transformer, source, images_per_file)

        if existing is not None:
            differences = _differences(existing, manifest)
            if not differences:
                return cls(path, existing, transformer, items)
            if not overwrite:
                raise MapStoreMismatchError(
                    f"The map store at {path!r} was made with other parameters or images; "
                    "it differs in: " + "; ".join(differences) + ". Use another path, the "
                    "same parameters and images, or overwrite=True to replace it."
                )
            # Held until the new manifest is written: no other run computes in between.
            with folder_lock(path, "map store"):
                _remove_store_files(path)
                return cls._start(path, manifest, transformer, items)
        if os.path.isdir(path) and os.listdir(path):
            raise ValueError(
                f"Cannot create a map store at {path!r}: the directory exists, is not empty "
                f"and has no {MANIFEST}. Use an empty or new directory."
            )
        return cls._start(path, manifest, transformer, items)

    @classmethod
    def _start(cls, path, manifest, transformer, items):
        os.makedirs(os.path.join(path, BATCH_DIRECTORY), exist_ok=True)
        manifest["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(os.path.join(path, MANIFEST), manifest)
        return cls(path, manifest, transformer, items)

    @classmethod
    def open(cls, path):
        """Open an existing store to read it (no transformer, no images needed).

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        store : MapStore
            Can be read (:meth:`iter_batches`, :meth:`to_numpy`, ...) but not
            computed; use :meth:`create` to resume a computation.
        """
        path = os.fspath(path)
        return cls(path, _read_manifest(path))

    # ------------------------------------------------------------------ layout

    def __len__(self):
        return self.manifest["images"]["n"]

    def __repr__(self):
        done = self.n_batches - len(self.missing_batches())
        return (
            f"MapStore({self.path!r}, n_images={len(self)}, n_features={self.n_features}, "
            f"batches={done}/{self.n_batches})"
        )

    @property
    def n_images(self):
        return len(self)

    @property
    def n_features(self):
        return self.manifest["maps"]["n_features"]

    @property
    def map_shape(self):
        return tuple(self.manifest["maps"]["map_shape"])

    @property
    def images_per_file(self):
        return self.manifest["batch_size"]

    @property
    def batch_size(self):
        warn_renamed("MapStore.batch_size", "images_per_file")
        return self.images_per_file

    @property
    def n_batches(self):
        return self.manifest["n_batches"]

    @property
    def shape(self):
        """(n_images, n_features)."""
        return (len(self), self.n_features)

    def batch_rows(self, batch):
        """The ``range`` of image indices (rows) that batch ``batch`` holds."""
        if not 0 <= batch < self.n_batches:
            raise IndexError(f"Batch {batch} out of range: the store has {self.n_batches}.")
        start = batch * self.images_per_file
        return range(start, min(start + self.images_per_file, len(self)))

    def batch_path(self, batch):
        """Path of the file of batch ``batch``."""
        return self._files.path(_batch_name(batch))

    def _batch_shape(self, batch):
        return (len(self.batch_rows(batch)), self.n_features)

    def missing_batches(self):
        """Indices of the batches not (validly) on disk yet, in order.

        A file counts when its header announces the batch's shape and float32
        and its size matches; a file that does not is recomputed.
        """
        return [
            batch for batch in range(self.n_batches)
            if not self._files.has(_batch_name(batch), self._batch_shape(batch))
        ]

    def is_complete(self):
        """Whether every batch is on disk."""
        return not self.missing_batches()

    # ------------------------------------------------------------------ computing

    def compute(self, verbose=False, cache=False):
        """Compute the maps of every batch not on disk yet; keep the others.

        Safe to interrupt at any moment and to call again: each batch file is
        written atomically, and finished batches are never recomputed. The
        store's folder is held while computing: a second process computing
        the same store is refused (``FolderInUseError``, an ``OSError``, in
        one sentence naming the holder) rather than removing what this one
        writes.

        Parameters
        ----------
        verbose : bool, default=False
            Show a progress bar counting images.
        cache : bool or GradientCache, default=False
            Also keep each image's raw gradients in a cache (True: the
            package's :data:`~sklearn_sensloc.gradient_cache`). Off by default
            whatever the transformer's ``cache``: a store is for more images
            than memory holds, and each is computed once.

        Returns
        -------
        self : MapStore
        """
        if self._transformer is None:
            raise RuntimeError(
                f"The map store at {self.path!r} was opened for reading; to compute it, "
                "resume it with MapStore.create(path, transformer, images)."
            )
        provider = self._transformer.gradient_provider(cache=cache)
        # The manifest's settings, not the transformer's: set_params after create()
        # must not write maps of other settings under this store's name.
        maps = self.manifest["maps"]
        setting = (maps["aggregation"], maps["pool"], maps["normalize"])
        features = provider.n_features(maps["pool"])
        if features != self.n_features:
            raise RuntimeError(
                f"The transformer makes maps of {features} features; the map store at "
                f"{self.path!r} holds {self.n_features}. Resume it with "
                "MapStore.create(path, transformer, images)."
            )
        name = os.path.basename(self.path.rstrip(os.sep)) or self.path
        with folder_lock(self.path, "map store"):
            provider.compute_map_files(
                self._files, self._images,
                [(self.batch_rows(b), {setting: _batch_name(b)}) for b in range(self.n_batches)],
                verbose=verbose, description=f"maps -> {name}",
            )
        return self

    # ------------------------------------------------------------------ reading

    def read_batch(self, batch, mmap_mode=None):
        """Maps of batch ``batch``, float32 of shape ``(len(batch_rows(batch)), n_features)``.

        Raises
        ------
        ValueError
            If the batch is not on disk or its file is not a valid batch.
        """
        maps = self._files.load(_batch_name(batch), self._batch_shape(batch), mmap_mode)
        if maps is None:
            state = "missing" if not os.path.exists(self.batch_path(batch)) else "invalid"
            raise ValueError(
                f"Batch {batch} of the map store at {self.path!r} is {state}; "
                "run compute() to (re)compute it."
            )
        return maps

    def _require_complete(self):
        missing = self.missing_batches()
        if missing:
            raise ValueError(
                f"The map store at {self.path!r} is incomplete: {len(missing)} of "
                f"{self.n_batches} batches are missing (first: {missing[0]}). Run compute()."
            )

    def iter_batches(self, batch_size=2048, shuffle=True, random_state=None):
        """Mini-batches of maps with the indices of their rows.

        Store batches are read whole, in random order when ``shuffle``, and
        regrouped into mini-batches of ``batch_size`` rows whose order is also
        shuffled. Rows are not mixed across the whole store, which would need
        random reads; a new order of store batches each epoch gives new
        mini-batches. Memory holds at most ``batch_size`` plus one store batch
        of rows.

        Parameters
        ----------
        batch_size : int, default=2048
            Rows per mini-batch (the paper's); the last may be smaller.
        shuffle : bool, default=True
        random_state : int, RandomState instance or None, default=None

        Yields
        ------
        indices : ndarray of int of shape (m,)
            Image indices (rows of the store) of the mini-batch.
        maps : ndarray of shape (m, n_features), float32

        Raises
        ------
        ValueError
            If a batch is missing: the store must be complete.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        self._require_complete()
        rng = check_random_state(random_state)
        order = rng.permutation(self.n_batches) if shuffle else range(self.n_batches)
        pending_rows, pending_maps, n_pending = [], [], 0

        def pending():
            indices, maps = np.concatenate(pending_rows), np.concatenate(pending_maps)
            if shuffle:
                permutation = rng.permutation(len(indices))
                indices, maps = indices[permutation], maps[permutation]
            return indices, maps

        for batch in order:
            rows = self.batch_rows(batch)
            pending_rows.append(np.arange(rows.start, rows.stop))
            pending_maps.append(self.read_batch(batch))
            n_pending += len(rows)
            while n_pending >= batch_size:
                indices, maps = pending()
                yield indices[:batch_size], maps[:batch_size]
                pending_rows, pending_maps = [indices[batch_size:]], [maps[batch_size:]]
                n_pending -= batch_size
        if n_pending:
            yield pending()

    def to_numpy(self):
        """All maps in memory, float32 of shape ``(n_images, n_features)``."""
        self._require_complete()
        maps = np.empty(self.shape, dtype=np.float32)
        for batch in range(self.n_batches):
            rows = self.batch_rows(batch)
            maps[rows.start : rows.stop] = self.read_batch(batch)
        return maps

    def __array__(self, dtype=None, copy=None):
        maps = self.to_numpy()
        return maps if dtype is None else maps.astype(dtype, copy=False)

    def to_dask(self):
        """The maps as a lazy dask array, one chunk per batch file.

        Each chunk is read by the worker that needs it, so the store must be on
        a file system the workers share. Feed it to
        :class:`sklearn_sensloc.BoxIncremental` to fit on a cluster.

        Returns
        -------
        maps : dask.array.Array of shape (n_images, n_features), float32
        """
        import dask
        import dask.array as da

        self._require_complete()
        blocks = [
            da.from_delayed(
                # The files, not the store: a task carries a folder name, never
                # the transformer and images a store may hold.
                dask.delayed(_load_batch_file, pure=True)(
                    self._files, _batch_name(batch), self._batch_shape(batch)
                ),
                shape=self._batch_shape(batch),
                dtype=np.float32,
            )
            for batch in range(self.n_batches)
        ]
        return da.concatenate(blocks, axis=0)


# ---------------------------------------------------------------------- manifest


def _make_manifest(transformer, source, images_per_file):
    from .._classifiers._models import model_fingerprint, preprocessing_key

    model = transformer.model
    # Names and files are fingerprinted without loading the network; a
    # keras.Model by its architecture and weights.
    n_images = len(source)
    keys = source.keys()
    paths = [source.path(i) for i in range(n_images)]
    with_paths = any(path is not None for path in paths)
    if with_paths:
        names = [os.path.abspath(path) if path is not None else "<array>" for path in paths]
        list_hash = fingerprint("paths", *names)
    else:
        list_hash = fingerprint("arrays", *keys)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "maps": {
            "gradients": transformer.gradient_key_,
            "model": model_fingerprint(model, model, transformer.weights),
            "model_description": _describe_model(transformer.model),
            "target": repr(transformer.target),
            "target_name": transformer.target_name_,
            "preprocessing": preprocessing_key(transformer.preprocessing_),
            "input_size": list(transformer.input_size_),
            "aggregation": transformer.aggregation,
            "normalize": transformer.normalize,
            "pool": int(transformer.pool),
            "map_shape": list(transformer.map_shape_),
            "n_features": int(transformer.n_features_out_),
            "dtype": "float32",
        },
        "images": {
            "n": n_images,
            "kind": "paths" if with_paths else "arrays",
            "list_hash": list_hash,
            "content_hash": image_set_key(keys),
        },
        # The manifest's name for images_per_file, kept: stores already written read on.
        "batch_size": int(images_per_file),
        "n_batches": math.ceil(n_images / images_per_file),
    }


def _describe_model(model):
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    return f"{type(model).__name__} {getattr(model, 'name', '')!r}".strip()


def _differences(old, new):
    """Human-readable list of what makes ``new`` another store than ``old``."""
    found = []
    for field, label in _MAP_FIELDS:
        before, after = old["maps"].get(field), new["maps"].get(field)
        if field in old["maps"] and before != after:
            if field == "model":
                found.append(
                    f"{label}: store has {old['maps'].get('model_description')!r} "
                    f"[{before}], given {new['maps'].get('model_description')!r} [{after}]"
                )
            else:
                found.append(f"{label}: store has {before!r}, given {after!r}")
    images_old, images_new = old["images"], new["images"]
    if images_old["n"] != images_new["n"]:
        found.append(
            f"images: store has {images_old['n']} images, given {images_new['n']}"
        )
    elif images_old["list_hash"] != images_new["list_hash"]:
        what = "files or their order" if images_new["kind"] == "paths" else "pixel values"
        found.append(f"images: another image list ({what} differ)")
    elif images_old["content_hash"] != images_new["content_hash"]:
        found.append(
            "images: the same files, but at least one changed since the store was "
            "made (size or modification time)"
        )
    if old["batch_size"] != new["batch_size"]:
        found.append(
            f"images_per_file: store has {old['batch_size']}, given {new['batch_size']}")
    return found


def _read_manifest(path):
    manifest_path = os.path.join(path, MANIFEST)
    try:
        with open(manifest_path, "rb") as stream:
            manifest = json.loads(stream.read())
    except FileNotFoundError:
        raise FileNotFoundError(f"No map store at {path!r}: {MANIFEST} is missing.") from None
    except (ValueError, OSError) as error:
        raise ValueError(f"The manifest of the map store at {path!r} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path!r} is not the manifest of a sklearn-sensloc map store.")
    if manifest.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"The map store at {path!r} has format version {manifest.get('version')}; "
            f"this sklearn-sensloc reads version {FORMAT_VERSION}."
        )
    return manifest


def _remove_store_files(path):
    directory = os.path.join(path, BATCH_DIRECTORY)
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.endswith(".npy") or name.endswith(TEMPORARY_SUFFIX):
                os.unlink(os.path.join(directory, name))
    os.unlink(os.path.join(path, MANIFEST))


def _batch_name(batch):
    return f"{batch:06d}"


def _load_batch_file(files, name, shape):
    maps = files.load(name, shape)
    if maps is None:
        raise ValueError(f"Map store batch file {files.path(name)!r} is missing or invalid.")
    return maps
