"""One gradient provider: the engine, the gradient key, and the caches and stores handed to it.

Everything that needs an image's absolute gradients, or the maps made from
them, asks a :class:`GradientProvider`: ``SensitivityTransformer.transform``
and ``iter_gradients``, :class:`~sklearn_sensloc.MapStore`, the evaluation's
stored maps and the Dask workers. It computes only what the cache and the
on-disk store it was given do not hold, keyed by its gradient key and each
image's key, and keeps what it computes there; it holds no process state of
its own. The engines it runs are built once per model and engine parameters
and kept by :class:`SharedEngines`, which the clones of a transformer share.
"""

import math
import threading
from collections import OrderedDict

import numpy as np

from .._images._batches import ImageSource
from .._utils._atomic import remove_stale_temporaries
from .._utils._identity import gradient_key, maps_key
from .._utils._prefetch import ahead
from .._utils._progress import progress
from ._steps import pooled_shape, sensitivity_maps


class GradientProvider:
    """Absolute gradients and maps of images from one engine, through a cache and a store.

    Parameters
    ----------
    engine : GradientEngine
        Computes the absolute gradients of a batch (see ``gradient_engine()``
        of :class:`~sklearn_sensloc.SensitivityTransformer`).
    gradient_key : str
        The identity of the engine's gradients (``gradient_key_``).
    cache : GradientCache or None, default=None
        Where gradients, maps and image keys are kept in memory; None keeps nothing.
    store : DiskGradientStore or None, default=None
        Where gradients are also kept on disk, shared by processes.
    map_device : {"cpu", "keras"}, default="cpu"
        Where gradients become maps: ``"cpu"``, with numpy on the host, from
        the gradients brought back; ``"keras"``, with ``keras.ops`` inside
        the engine's compiled function, on its device, so that only pooled
        maps come back (and the gradients, when a cache or store keeps them).
        Both give the same maps to float32 rounding.
    """

    def __init__(self, engine, gradient_key, *, cache=None, store=None, map_device="cpu"):
        self.engine = engine
        self.gradient_key = gradient_key
        self.cache = cache
        self.store = store
        self.map_device = map_device

    def __repr__(self):
        return (f"GradientProvider({self.engine.target_name}, cache={self.cache!r}, "
                f"store={self.store!r}, map_device={self.map_device!r})")

    @property
    def batch_size(self):
        """Images per backward pass: the engine's."""
        return self.engine.batch_size

    @property
    def input_size(self):
        """(height, width) of the gradients: the engine's input size."""
        return self.engine.input_size

    def using(self, *, cache, store, map_device="cpu"):
        """The same engine and gradient key with another cache, store and map device."""
        return GradientProvider(self.engine, self.gradient_key, cache=cache, store=store,
                                map_device=map_device)

    def images(self, X):
        """``X`` as an :class:`ImageSource` whose array keys the cache remembers."""
        if isinstance(X, ImageSource):
            return X
        return ImageSource(X, key_memo=None if self.cache is None else self.cache.image_keys)

    def n_features(self, pool):
        """Length of one flattened map pooled by ``pool``."""
        return math.prod(pooled_shape(self.input_size, pool))

    def gradient_batches(self, X, image_keys=None, starts=None):
        """``(start, gradients)`` batch by batch, computing only what no cache or store holds.

        Parameters
        ----------
        X : array of shape (n, H, W, 3), list of arrays or paths, or ImageSource
        image_keys : list of str or None, default=None
            The keys of the images, when already known.
        starts : iterable of int or None, default=None
            The first indices of the batches wanted; None: every batch.

        Yields
        ------
        start : int
        gradients : ndarray of shape (batch, height, width, 3), float32
            At most ``batch_size`` images. On an accelerator where the engine
            ``computes_ahead``, the next batch is read and computed in a thread
            while the caller uses this one.
        """
        for start, gradients, _ in self._batches(self.images(X), image_keys, starts):
            yield start, gradients

    def _batches(self, source, image_keys, starts, settings=None):
        """``(start, gradients, maps)`` per batch; maps made on the device for ``settings``.

        Without ``settings`` the maps are None and the caller makes them.
        With them, each batch's maps of every setting are made by the engine
        (``map_device="keras"``): along with the backward pass when no image
        of the batch is kept, and then the gradients are None unless a cache
        or store keeps them; from the gradients otherwise.
        """
        batches = self._stored_or_computed(source, image_keys, starts, settings)
        return ahead(batches) if self.engine.computes_ahead else batches

    def _stored_or_computed(self, source, image_keys, starts, settings):
        stores = [store for store in (
            None if self.cache is None else self.cache.gradients, self.store) if store is not None]
        size = self.batch_size
        for start in range(0, len(source), size) if starts is None else starts:
            indices = range(start, min(start + size, len(source)))
            keys = [
                (self.gradient_key, source.key(i) if image_keys is None else image_keys[i])
                for i in indices
            ] if stores else []
            gradients = [_lookup(stores, key) for key in keys] or [None] * len(indices)
            missing = [j for j, found in enumerate(gradients) if found is None]
            computed = maps = None
            if missing:
                images = self._decoded(source, [indices[j] for j in missing])
                if settings and len(missing) == len(indices):
                    computed, maps = self.engine.maps(images, settings, with_gradients=bool(stores))
                else:
                    computed = self.engine(images)
                del images
                for j, row in zip(missing, computed if stores else ()):
                    # A copy: a row kept alone must not keep its whole batch alive.
                    kept = row.copy()
                    kept.flags.writeable = False
                    for store in stores:
                        store.put(keys[j], kept)
                    gradients[j] = kept
            # Nothing came from a store: the engine's array as is, no copy.
            block = computed if len(missing) == len(indices) else np.stack(gradients)
            del gradients, computed
            if settings and maps is None:
                maps = self.engine.map_steps(block, settings)
            yield start, block, maps
            del block, maps  # not held while the next batch is decoded

    def _decoded(self, source, indices):
        """The images at ``indices`` as one batch array, uint8 when every one of them is."""
        dtype = np.uint8 if all(source.is_uint8(i) for i in indices) else np.float32
        # Decoded straight into the batch: no list of images plus a stacked copy.
        images = np.empty((len(indices), *self.input_size, 3), dtype)
        for row, index in enumerate(indices):
            images[row] = source.image(index, self.input_size, dtype)
        return images

    def maps(self, X, aggregation, pool, normalize, *, verbose=False):
        """Flattened maps of the images in ``X``, as ``transform`` returns them.

        With a cache, each image's map is kept there per map-side parameters:
        the folds of a search share images, and its candidates map-side
        parameters. A batch all of whose maps are kept is copied; any other is
        made as a whole, as without a cache (a map depends on its own image's
        gradients only).

        Returns
        -------
        maps : ndarray of shape (n, ``n_features(pool)``), float32
        """
        source = self.images(X)
        size = self.batch_size
        maps = np.empty((len(source), self.n_features(pool)), dtype=np.float32)
        starts = range(0, len(source), size)
        keys = source.keys() if self.cache is not None else None
        if keys is not None:
            made_by = maps_key(self.gradient_key, aggregation, pool, normalize)
            starts = [start for start in starts if not self._kept_maps(made_by, keys, start, maps)]
        setting = (aggregation, pool, normalize)
        batches = self._batches(source, keys, starts, self._device_settings([setting]))
        n_made = sum(min(size, len(source) - start) for start in starts)
        for start, gradients, made in progress(batches, n_made, size, verbose):
            block = made[0] if made is not None else sensitivity_maps(gradients, *setting)
            block = block.reshape(len(block), -1)
            maps[start : start + len(block)] = block
            for index, row in enumerate(block if keys is not None else ()):
                kept = row.copy()
                kept.flags.writeable = False
                self.cache.maps.put((made_by, keys[start + index]), kept)
            del gradients, made, block  # free this batch before the next one is decoded
        return maps

    def _device_settings(self, settings):
        """``settings`` when the engine makes the maps (``map_device="keras"``), else None."""
        return list(settings) if self.map_device == "keras" else None

    def _kept_maps(self, made_by, keys, start, maps):
        """Copy the kept maps of the batch at ``start`` into ``maps``; False if any is missing."""
        stop = min(start + self.batch_size, len(keys))
        rows = []
        for key in keys[start:stop]:
            row = self.cache.maps.get((made_by, key))
            if row is None:
                return False
            rows.append(row)
        np.stack(rows, out=maps[start:stop])
        return True

    def map_parts(self, X, parts, *, verbose=False, description="sensitivity maps"):
        """Maps of several map-side settings from one backward pass, part by part.

        Parameters
        ----------
        X : array of shape (n, H, W, 3), or list of image paths or arrays
        parts : iterable of (range, list of (aggregation, pool, normalize))
            The rows of each part and the settings of the maps wanted for them.
        verbose : bool, default=False
            Show one progress bar counting the images of every part.
        description : str, default="sensitivity maps"
            The progress bar's label.

        Yields
        ------
        rows : range
            The part's rows, as given.
        maps : dict
            Per setting, float32 maps of shape ``(len(rows), n_features)``,
            flattened as ``transform`` returns them. Each part is yielded as
            soon as it is complete, before the next image is read.
        """
        from tqdm.auto import tqdm

        parts = list(parts)
        with tqdm(total=sum(len(rows) for rows, _ in parts), desc=description, unit="img",
                  disable=not verbose) as bar:
            for rows, settings in parts:
                maps = {setting: np.empty((len(rows), self.n_features(setting[1])), np.float32)
                        for setting in settings}
                batches = self._batches(self.images(X[rows.start : rows.stop]), None, None,
                                        self._device_settings(maps))
                for offset, gradients, made in batches:
                    # One backward pass serves every setting.
                    made = made or [sensitivity_maps(gradients, *setting) for setting in maps]
                    for block, found in zip(maps.values(), made):
                        block[offset : offset + len(found)] = found.reshape(len(found), -1)
                    bar.update(len(found))
                    del gradients, made, found  # not held while the next batch is decoded
                yield rows, maps

    def compute_map_files(self, files, X, parts, *, verbose=False,
                          description="sensitivity maps"):
        """Compute into ``files`` the map files of ``parts`` not complete there; keep the others.

        The maps of every setting of a part come from one backward pass
        (:meth:`map_parts`) and are saved as soon as the part is complete, so
        an interruption costs at most the part being computed. Temporary files
        of writers no longer running are deleted first. The caller holds the
        folder (:func:`~sklearn_sensloc._utils._atomic.folder_lock`) if another run
        might write it.

        Parameters
        ----------
        files : ArrayFiles
        X : array of shape (n, H, W, 3), or list of image paths or arrays
        parts : list of (range, dict)
            The rows of each part and, per setting ``(aggregation, pool,
            normalize)``, the name of the file of its maps, float32 of shape
            ``(len(rows), n_features)``.
        verbose : bool, default=False
        description : str, default="sensitivity maps"
            The progress bar's label.

        Returns
        -------
        computed : int
            Number of parts computed.
        """
        remove_stale_temporaries(files.directory)
        todo = [
            (rows, names) for rows, names in parts
            if not all(files.has(name, (len(rows), self.n_features(setting[1])))
                       for setting, name in names.items())
        ]
        done = self.map_parts(X, [(rows, list(names)) for rows, names in todo],
                              verbose=verbose, description=description)
        for (_, maps), (_, names) in zip(done, todo):
            for setting, name in names.items():
                files.save(name, maps[setting])
        return len(todo)


def _lookup(stores, key):
    for level, store in enumerate(stores):
        found = store.get(key)
        if found is not None:
            # A disk hit is promoted to the faster stores before it.
            for faster in stores[:level]:
                faster.put(key, found)
            return found
    return None


def build_provider(model, weights, preprocessing, engine_params, *, engines):
    """The provider of a model's gradients, its engine built once per ``engines``.

    Parameters
    ----------
    model : str, path, keras.Model or torch.nn.Module
        A ``model=`` value (see :class:`~sklearn_sensloc.SensitivityTransformer`).
    weights : str, path or None
    preprocessing : str or callable
        A ``preprocessing=`` value, ``"auto"`` included.
    engine_params : dict
        Every other keyword of :class:`GradientEngine`, by name.
    engines : SharedEngines
        Where the engine is looked up, and kept once built.

    Returns
    -------
    provider : GradientProvider
        Without a cache or a store; see :meth:`GradientProvider.using`.
    preprocessing : str or callable
        ``preprocessing`` with ``"auto"`` resolved.
    """
    from .._classifiers._models import (
        model_fingerprint,
        preprocessing_key,
        resolve_model,
        resolve_preprocessing,
    )
    from .._engine import GradientEngine

    network, _ = resolve_model(model, weights)
    resolved = resolve_preprocessing(preprocessing, model, network)
    preprocessing_id = preprocessing_key(resolved)

    def identity(engine):
        return gradient_key(
            model_fingerprint(model, network, weights), engine_params["target"],
            preprocessing_id, engine.input_size, engine.method_key,
            # Says logit or probability for class targets; layer targets ignore class_score.
            engine.target_name,
        )

    engine, key = engines.get(
        network, (preprocessing_id, *sorted((name, repr(value)) for name, value in engine_params.items())),
        lambda: GradientEngine(network, preprocessing=resolved, **engine_params), identity,
    )
    return GradientProvider(engine, key), resolved


class SharedEngines:
    """Gradient engines shared by the clones of one transformer, and freed with them.

    An engine holds its model and compiled functions: building one costs a
    trace, and a search fits dozens of clones of one transformer. The clones
    share this object (``SensitivityTransformer.__sklearn_clone__`` hands it
    on), so they build each engine once; it is neither pickled nor kept
    anywhere else, so the engines and their models go with the last clone.
    The gradient key of a ``keras.Model`` hashes every weight, which takes
    longer than a small fit: it is reused while a cheap checksum of the
    weights is unchanged, so a model trained further gets a new key.

    Parameters
    ----------
    max_engines : int, default=8
        Engines kept, the least recently used dropped first (a search over
        several models or targets builds one per combination).
    """

    def __init__(self, max_engines=8):
        self.max_engines = max_engines
        self._entries = OrderedDict()
        # One build at a time: the threads of a Dask worker share one transformer.
        self._lock = threading.RLock()

    def __repr__(self):
        return f"SharedEngines({len(self._entries)} of at most {self.max_engines})"

    def get(self, model, key, build, identity):
        """``(engine, identity(engine))`` for ``model`` and ``key``, built by ``build()`` once."""
        with self._lock:
            # The entry holds the model, so its id is not reused while the entry lives.
            entry = self._entries.get((id(model), key))
            if entry is None or entry["model"] is not model:
                entry = {"model": model, "engine": build(), "checksum": None}
                self._entries[(id(model), key)] = entry
            self._entries.move_to_end((id(model), key))
            while len(self._entries) > self.max_engines:
                self._entries.popitem(last=False)
            checksum = _weights_checksum(model)
            if entry["checksum"] != checksum:
                entry["identity"] = identity(entry["engine"])
                entry["checksum"] = checksum
            return entry["engine"], entry["identity"]

    def __len__(self):
        return len(self._entries)

    def __reduce__(self):
        # Compiled functions stay in their process.
        return type(self), (self.max_engines,)

    def __deepcopy__(self, memo):
        return type(self)(self.max_engines)


def _weights_checksum(model):
    import keras

    from .._classifiers._torch_models import is_torch_module, weights_checksum

    if is_torch_module(model):
        return weights_checksum(model)
    return tuple(float(keras.ops.convert_to_numpy(keras.ops.sum(weight))) for weight in model.weights)
