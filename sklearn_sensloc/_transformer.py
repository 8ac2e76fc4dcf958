"""SensitivityTransformer: images in, flattened sensitivity maps out."""

import copy
import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._cache import gradient_cache
from ._identity import gradient_key, maps_key
from ._images import ImageSource
from ._maps import AGGREGATIONS, METHODS, NORMALIZATIONS, pooled_shape, sensitivity_maps
from ._models import DEFAULT_MODEL, PREPROCESSINGS
from ._prefetch import ahead
from ._progress import progress
from ._store import disk_store

#: Parameters that act on maps after the backward pass (or on how they are
#: stored): changing one keeps the compiled engine. Every other parameter
#: (model, target, preprocessing, image size, method, batch size, which
#: bounds the images a method sends through the network at once) selects one.
MAP_SIDE_PARAMS = frozenset({"aggregation", "normalize", "pool", "cache", "memory", "verbose"})


class SensitivityTransformer(TransformerMixin, BaseEstimator):
    """Sensitivity maps of a pretrained CNN as features, one row per image.

    For each image the map is the absolute gradient of a scalar target of the
    network with respect to every input pixel, computed in one backward pass
    per batch, aggregated over the three colour channels, optionally pooled,
    normalized per image, and flattened. Other saliency methods replace the
    gradient with their own absolute attributions of the same target; see
    :ref:`saliency_methods`.

    Parameters
    ----------
    model : str, path, keras.Model or torch.nn.Module, default="vgg16"
        A registered name: a ``keras.applications`` ImageNet classifier by its
        lower-case name (``"vgg16"``, ``"resnet50"``, ``"mobilenet"``,
        ``"efficientnetb0"``, ...; Keras downloads its weights when ``fit``
        first needs them, unless ``weights`` is given) or ``"vgg16-hed"``, the
        offline VGG16 backbone (needs the ``offline`` extra); a path to a
        ``.keras`` file (loaded in Keras' safe mode); or a ``keras.Model``
        taking ``(batch, H, W, 3)`` images. Under Keras' PyTorch backend
        (``KERAS_BACKEND=torch``) also a ``torch.nn.Module`` taking
        ``(batch, 3, H, W)`` batches, or ``"timm:NAME"`` /
        ``"torchvision:NAME"``, a classifier of those libraries (the ``torch``
        extra) with the preprocessing and input size it documents; see
        :ref:`torch_classifiers`.
    target : {"gestalt", "class"}, int or str, default="gestalt"
        ``"gestalt"``: the Gestalt Total, mean activation of the last
        convolutional layer; ``"class"``: score of the predicted class; an int:
        score of that class; any other string: mean activation of the layer
        of that name (searched in nested models too).
    aggregation : {"max", "mean"}, default="max"
        How the three absolute channel derivatives of a pixel are combined.
    normalize : {"max", "sum", "standard"} or None, default="max"
        Per-map scaling: divide by the maximum (maps in [0, 1]), by the sum,
        or standardize to zero mean and unit variance. Scaling makes maps of
        images with strong and weak gradients comparable for the regressor.
    pool : int, default=4
        Side of the square blocks over which the map is averaged. The default
        turns 224x224 maps into 56x56 = 3,136 features, which a linear box
        regressor learns from a few hundred images; use 1 for full-resolution
        maps, as in the paper's ImageNet run.
    image_size : tuple of int (height, width) or None, default=None
        Size images are resized to. None uses the model's input size, or
        224x224 when the model accepts any size.
    preprocessing : {"auto", "caffe", "tf", "torch", "none"} or callable, default="auto"
        Pixel preprocessing applied before the network, inside the compiled
        gradient function. ``"auto"`` uses the registered model's own
        (``"caffe"`` for VGG16) and ``"none"`` for user models, with a warning
        when such a model has no rescaling layer of its own. A callable takes
        a float batch of RGB 0..255 pixels (a tensor) and returns the
        network's input, e.g. ``keras.applications.mobilenet.preprocess_input``;
        a module-level function keeps the transformer picklable.
    batch_size : int, default=32
        Images per forward/backward pass; bounds memory.
    cache : bool, default=True
        Keep the absolute gradients of each image in the process-wide,
        size-bounded :data:`sklearn_sensloc.gradient_cache`, so that refits
        with other map-side parameters (aggregation, normalize, pool) or other
        folds of a search never repeat a backward pass; and keep each
        image's map there too (``gradient_cache.maps``), so that the folds
        and candidates of a search make each image's map once per map-side
        parameters.
    memory : str, path, joblib.Memory or None, default=None
        Directory where gradients are also stored, one file per image, shared
        by processes (``GridSearchCV(n_jobs=...)``) and later runs.
    verbose : bool, default=False
        Show a progress bar while computing maps.
    weights : str, path or None, default=None
        For a registered name: a weights file of that architecture to use
        instead of the downloaded ImageNet weights (for ``"mobilenet"`` the
        width ``alpha`` is read from the file); for ``"timm:NAME"`` or
        ``"torchvision:NAME"``, a state dict file (``.pth``, ``.pt``,
        ``.bin``, ``.safetensors``). None: the name's own weights.
    class_score : {"logit", "output"}, default="logit"
        What a class target differentiates. ``"logit"``: the class score
        before a final softmax (the paper's score; for a model without a
        final softmax, its output); ``"output"``: the model's output as it
        is, class probabilities for a softmax model (warns: such maps mix in
        every other class).
    method : {"gradient", "smoothgrad", "gradient_x_input", \
            "integrated_gradients", "gradcam"}, default="gradient"
        The saliency method, each taken of ``target``:

        - ``"gradient"``: the paper's, ``|d target / d pixel|``.
        - ``"smoothgrad"``: the absolute value of the mean gradient over
          ``n_samples`` copies of the image with Gaussian noise of standard
          deviation ``noise_level`` times the image's pixel range (max - min,
          0..255 pixels before preprocessing), as in the SmoothGrad paper and
          tf-keras-vis.
        - ``"gradient_x_input"``: ``|d target / d u * u|`` with ``u`` the
          model's input after preprocessing, as in xplique.
        - ``"integrated_gradients"``: ``|(x - b) * mean of the gradient at
          n_samples midpoints of the straight path from b to x|``, with ``b``
          the constant image ``baseline``.
        - ``"gradcam"``: ReLU of the activations of the target's layer (the
          layer of a layer target, else the last convolutional layer)
          weighted by the spatial mean of the target's gradient, resized
          bilinearly to the input size; equal in the three channels.

        Sampling methods cost ``n_samples`` backward passes per image.
    n_samples : int, default=16
        Noisy copies (``"smoothgrad"``) or path points
        (``"integrated_gradients"``) per image; ignored by the other methods.
        16 keeps a CPU run affordable; xplique defaults to 50.
    noise_level : float, default=0.2
        SmoothGrad's noise standard deviation as a fraction of each image's
        pixel range (the paper finds 0.1 to 0.2 best).
    baseline : float, default=0.0
        Pixel value, in 0..255, of the constant baseline image of
        ``"integrated_gradients"``: 0 is black.
    random_state : int, default=0
        Seeds SmoothGrad's noise together with each image's pixels, so that
        an image's map does not depend on the batch it is in, on caches, or
        on being given as an array or a file. An int, not None: cached maps
        must be reproducible.

    Attributes
    ----------
    preprocessing_ : str or callable
        The preprocessing applied, ``"auto"`` resolved.
    input_size_ : tuple of int
        (height, width) the images are resized to.
    map_shape_ : tuple of int
        (height, width) of one map after pooling.
    target_name_ : str
        What the gradient is taken of, e.g. "gestalt total of 'block5_conv3'".
    n_features_out_ : int
        Number of output columns, ``map_shape_[0] * map_shape_[1]``.
    gradient_key_ : str
        The identity of the raw gradients (model, target, preprocessing,
        input size, method and the parameters it reads): equal for
        transformers whose backward passes give equal gradients. Caches and
        stores key an image's gradients by it and the image's key.
    model_file_, weights_file_ : str or None
        Absolute paths of the ``.keras`` and weights files ``fit`` read, so
        that a pickled transformer finds them from any working folder.

    Examples
    --------
    >>> import numpy as np, keras
    >>> from sklearn_sensloc import SensitivityTransformer
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3, activation="relu")])
    >>> sens = SensitivityTransformer(model=model, pool=2).fit(None)
    >>> images = np.random.default_rng(0).uniform(0, 255, (5, 16, 16, 3))
    >>> sens.transform(images).shape
    (5, 64)
    >>> smooth = SensitivityTransformer(model=model, method="smoothgrad", n_samples=4, pool=2)
    >>> smooth.fit(None).transform(images).shape
    (5, 64)
    """

    _parameter_constraints = {
        "model": "no_validation",
        "weights": [None, str, os.PathLike],
        "target": [Integral, str],
        "class_score": [StrOptions({"logit", "output"})],
        "aggregation": [StrOptions(set(AGGREGATIONS))],
        "method": [StrOptions(set(METHODS))],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "noise_level": [Interval(Real, 0, None, closed="left")],
        "baseline": [Interval(Real, 0, 255, closed="both")],
        "random_state": [Interval(Integral, 0, None, closed="left")],
        "normalize": [StrOptions(set(NORMALIZATIONS)), None],
        "pool": [Interval(Integral, 1, None, closed="left")],
        "image_size": [tuple, list, None],
        "preprocessing": [StrOptions({"auto", *PREPROCESSINGS}), callable],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model=DEFAULT_MODEL,
        target="gestalt",
        aggregation="max",
        normalize="max",
        pool=4,
        image_size=None,
        preprocessing="auto",
        batch_size=32,
        cache=True,
        memory=None,
        verbose=False,
        weights=None,
        class_score="logit",
        method="gradient",
        n_samples=16,
        noise_level=0.2,
        baseline=0.0,
        random_state=0,
    ):
        self.model = model
        self.target = target
        self.aggregation = aggregation
        self.normalize = normalize
        self.pool = pool
        self.image_size = image_size
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.cache = cache
        self.memory = memory
        self.verbose = verbose
        self.weights = weights
        self.class_score = class_score
        self.method = method
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.baseline = baseline
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the model and check the target; no gradient is computed.

        Parameters
        ----------
        X : array of shape (n, H, W, 3), list of arrays or list of paths, or None
            Checked for shape and values when given; not otherwise used.
        y : ignored

        Returns
        -------
        self : SensitivityTransformer
        """
        if X is not None:
            ImageSource(X)
        self.model_file_, self.weights_file_ = (
            _absolute_file(value) for value in (self._model_file(), self.weights)
        )
        engine = self._build_engine()
        self.input_size_ = engine.input_size
        self.map_shape_ = pooled_shape(self.input_size_, self.pool)
        self.n_features_out_ = self.map_shape_[0] * self.map_shape_[1]
        self.target_name_ = engine.target_name
        return self

    def transform(self, X):
        """Sensitivity maps of the images in ``X``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3), list of arrays or list of paths
            RGB images with pixel values in 0..255. Images of another size
            than ``input_size_`` are resized; paths are read batch by batch.

        Returns
        -------
        maps : ndarray of shape (n, ``n_features_out_``), float32
            One flattened map per image, rows of pixels in order.
        """
        check_is_fitted(self)
        source = ImageSource(X)
        maps = np.empty((len(source), self.n_features_out_), dtype=np.float32)
        starts = range(0, len(source), self.batch_size)
        keys = source.keys() if self.cache else None
        if keys is not None:
            # Each image's map is kept: the folds of a search share images,
            # and its candidates map-side parameters. A batch all of whose
            # maps are kept is copied; any other is made as a whole, as
            # without them. (A map depends on its own image's gradients only.)
            made_by = maps_key(self.gradient_key_, self.aggregation, self.pool, self.normalize)
            starts = [start for start in starts
                      if not self._kept_maps(made_by, keys, start, maps)]
        batches = self._gradient_batches(source, keys, starts)
        n_made = sum(min(self.batch_size, len(source) - start) for start in starts)
        for start, gradients in progress(batches, n_made, self.batch_size, self.verbose):
            block = sensitivity_maps(gradients, self.aggregation, self.pool, self.normalize)
            block = block.reshape(len(block), -1)
            maps[start : start + len(block)] = block
            for index, row in enumerate(block if keys is not None else ()):
                kept = row.copy()
                kept.flags.writeable = False
                gradient_cache.maps.put((made_by, keys[start + index]), kept)
            del gradients, block  # free this batch before the next one is decoded
        return maps

    def _kept_maps(self, made_by, keys, start, maps):
        """Copy the kept maps of the batch at ``start`` into ``maps``; False if any is missing."""
        stop = min(start + self.batch_size, len(keys))
        rows = []
        for key in keys[start:stop]:
            row = gradient_cache.maps.get((made_by, key))
            if row is None:
                return False
            rows.append(row)
        np.stack(rows, out=maps[start:stop])
        return True

    def iter_gradients(self, X):
        """Absolute input gradients of the images in ``X``, batch by batch.

        What :meth:`transform` turns into maps, before aggregation, pooling and
        normalization: for computing maps of several map-side parameters from
        one backward pass. Gradients held by :data:`~sklearn_sensloc.gradient_cache`
        (``cache=True``) or by the ``memory`` folder are read, not recomputed;
        computed ones are kept there.

        Parameters
        ----------
        X : array of shape (n, H, W, 3), list of arrays or list of paths
            RGB images with pixel values in 0..255.

        Yields
        ------
        start : int
            Index in ``X`` of the batch's first image.
        gradients : ndarray of shape (batch, height, width, 3), float32
            ``|d target / d pixel|`` of each image of the batch, at
            ``input_size_``; at most ``batch_size`` images.
        """
        check_is_fitted(self)
        yield from self._gradient_batches(ImageSource(X))

    def _gradient_batches(self, source, image_keys=None, starts=None):
        """``(start, gradients)`` batch by batch, computing only what no cache holds.

        ``image_keys``: the keys of the images of ``source`` when already known;
        ``starts``: the first indices of the batches wanted, by default all. On
        an accelerator the next batch is read and computed in a thread while
        the caller turns this one into maps (``computes_ahead`` of the engine).
        """
        batches = self._stored_or_computed_batches(source, image_keys, starts)
        return ahead(batches) if self.gradient_engine().computes_ahead else batches

    def _stored_or_computed_batches(self, source, image_keys, starts):
        engine = self.gradient_engine()
        stores = ([gradient_cache] if self.cache else []) + [
            store for store in [disk_store(self.memory)] if store is not None
        ]
        for start in range(0, len(source), self.batch_size) if starts is None else starts:
            indices = range(start, min(start + self.batch_size, len(source)))
            keys = [
                (self.gradient_key_, source.key(i) if image_keys is None else image_keys[i])
                for i in indices
            ] if stores else []
            gradients = [_lookup(stores, key) for key in keys] or [None] * len(indices)
            missing = [j for j, found in enumerate(gradients) if found is None]
            computed = None
            if missing:
                # Decode straight into one batch array: no list of images plus a stacked copy.
                images = np.empty((len(missing), *self.input_size_, 3), np.float32)
                for row, j in enumerate(missing):
                    images[row] = source.image(indices[j], self.input_size_)
                computed = engine(images)
                del images
                for j, row in zip(missing, computed):
                    gradients[j] = row
                    for store in stores:
                        store.put(keys[j], row)
            # Nothing came from a store: the engine's array as is, no copy.
            block = computed if len(missing) == len(indices) else np.stack(gradients)
            del gradients, computed
            yield start, block
            del block  # not held while the next batch is decoded

    def get_feature_names_out(self, input_features=None):
        """Names ``map_r{row}_c{col}`` of the output columns.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        rows, cols = self.map_shape_
        return np.asarray(
            [f"map_r{r}_c{c}" for r in range(rows) for c in range(cols)], dtype=object
        )

    def _build_engine(self):
        from ._engine import GradientEngine
        from ._models import (
            model_fingerprint,
            preprocessing_key,
            resolve_model,
            resolve_preprocessing,
        )

        model_arg = self._located("model", getattr(self, "model_file_", None), self.model)
        weights = self._located("weights", getattr(self, "weights_file_", None), self.weights)
        model, _ = resolve_model(model_arg, weights)
        self.preprocessing_ = resolve_preprocessing(self.preprocessing, self.model, model)
        preprocessing = preprocessing_key(self.preprocessing_)
        engine_params = sorted(
            (name, repr(value))
            for name, value in self.get_params(deep=False).items()
            if name != "model" and name not in MAP_SIDE_PARAMS
        )
        self._engine, self.gradient_key_ = _shared_engine(
            model,
            (preprocessing, *engine_params),
            lambda: GradientEngine(
                model,
                self.target,
                self.preprocessing_,
                self._image_size(),
                class_score=self.class_score,
                method=self.method,
                n_samples=self.n_samples,
                noise_level=self.noise_level,
                baseline=self.baseline,
                random_state=self.random_state,
                batch_size=self.batch_size,
            ),
            lambda engine: gradient_key(
                model_fingerprint(model_arg, model, weights),
                self.target,
                preprocessing,
                engine.input_size,
                self._method_key(),
                # Says logit or probability for class targets; layer targets ignore class_score.
                engine.target_name,
            ),
        )
        return self._engine

    def _model_file(self):
        """The ``.keras`` file ``model`` names, or None (a registered name or a keras.Model)."""
        from ._models import registered_name

        if isinstance(self.model, (str, os.PathLike)) and registered_name(self.model) is None:
            return self.model
        return None

    def _located(self, parameter, fitted_file, given):
        """``given``, with a file found where ``fit`` found it, from any working folder.

        A pickled transformer keeps its parameters as typed: a relative path
        would point elsewhere once loaded in another folder. ``fit`` records
        each file's absolute path (``model_file_``, ``weights_file_``), which
        is used first; the path as given serves when the files moved with it.
        """
        if fitted_file is None:
            return given
        for candidate in (fitted_file, given):
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(
            f"The {parameter} file {os.fspath(given)!r} of this fitted SensitivityTransformer is "
            f"gone: it is neither at {fitted_file!r}, where fit found it, nor at "
            f"{os.path.abspath(given)!r}. Put the file back, or fit again; to move a fitted "
            "pipeline between folders or machines, save it with "
            "sklearn_sensloc.save_localizer, which embeds the network."
        )

    def _method_key(self):
        """The method and the parameters its attributions depend on; none for the gradient.

        Nothing for ``"gradient"`` keeps its keys, and so existing stores, as
        they were; a parameter a method ignores is left out so that changing it
        does not recompute that method.
        """
        if self.method == "gradient":
            return ()
        if self.method == "smoothgrad":
            from ._engine import backend_name

            key = (self.method, int(self.n_samples), float(self.noise_level), int(self.random_state))
            # Each backend draws its own noise; TensorFlow's keys stay as they were.
            return key if backend_name() == "tensorflow" else (*key, backend_name())
        if self.method == "integrated_gradients":
            return (self.method, int(self.n_samples), float(self.baseline))
        return (self.method,)

    def _image_size(self):
        if self.image_size is None:
            return None
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(s, Integral) and s > 0 for s in size):
            raise ValueError(f"image_size must be (height, width) in pixels; got {self.image_size!r}.")
        return size

    def gradient_engine(self):
        """The fitted transformer's gradient engine, shared by its clones.

        It computes the absolute attributions ``transform`` maps (``engine(images)``
        on a float32 batch of RGB 0..255 images of size ``input_size_``) and,
        for timings, the model's compiled forward pass (``engine.forward(images)``),
        on the running Keras backend. The engine is not pickled with the
        transformer: after unpickling it is rebuilt on first use, or by
        calling this method, which a process serving many calls (a Dask
        worker) does once, up front.

        Returns
        -------
        engine : GradientEngine
        """
        check_is_fitted(self)
        engine = getattr(self, "_engine", None)
        return engine if engine is not None else self._build_engine()

    def __sklearn_clone__(self):
        # The model is only ever read, so a clone uses the same one (and the
        # same compiled engine) instead of a deep copy, which for a keras.Model
        # means pickling the whole network on every clone of a search. Every
        # other parameter is cloned as sklearn does, from a shallow copy that
        # does not carry the model, leaving this estimator untouched.
        without_model = copy.copy(self)
        without_model.model = None
        cloned = super(SensitivityTransformer, without_model).__sklearn_clone__()
        cloned.model = self.model
        return cloned

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before dropping.
        state = dict(super().__getstate__())
        state.pop("_engine", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def _absolute_file(path):
    """The absolute path of an existing file; None for None or a missing file (fit's error)."""
    return os.path.abspath(path) if path is not None and os.path.isfile(path) else None


def _shared_engine(model, key, build, gradient_key):
    """``(engine, gradient_key(engine))``, built once per model object and ``key``.

    Engines are kept on the model object itself: an engine holds its model, so
    a module-level table would keep every model alive, while an attribute of
    the model lives and dies with it (Keras neither pickles nor copies it).
    The gradient key of a ``keras.Model`` hashes every weight, which takes
    longer than a small fit; it is reused while a cheap checksum of the
    weights is unchanged, so a model trained further, or given other weights,
    gets a new key.
    """
    engines = getattr(model, "_sensloc_engines", None)
    if engines is None:
        engines = _Engines()
        # A plain attribute, outside Keras' (and torch's) tracking of layers and variables.
        object.__setattr__(model, "_sensloc_engines", engines)
    if key not in engines:
        engines[key] = {"engine": build(), "checksum": None}
    entry = engines[key]
    checksum = _weights_checksum(model)
    if entry["checksum"] != checksum:
        entry["gradient_key"] = gradient_key(entry["engine"])
        entry["checksum"] = checksum
    return entry["engine"], entry["gradient_key"]


class _Engines(dict):
    """The engines kept on a model object; a pickled or copied model carries none.

    A torch module pickles and deep-copies its ``__dict__``, where this
    lives, and engines hold compiled functions.
    """

    def __reduce__(self):
        return type(self), ()

    def __deepcopy__(self, memo):
        return type(self)()


def _weights_checksum(model):
    import keras

    from ._torch_models import is_torch_module, weights_checksum

    if is_torch_module(model):
        return weights_checksum(model)
    return tuple(float(keras.ops.convert_to_numpy(keras.ops.sum(weight))) for weight in model.weights)


def _lookup(stores, key):
    for level, store in enumerate(stores):
        found = store.get(key)
        if found is not None:
            # A disk hit is promoted to the faster stores before it.
            for faster in stores[:level]:
                faster.put(key, found)
            return found
    return None
