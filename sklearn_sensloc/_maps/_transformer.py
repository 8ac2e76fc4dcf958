"""SensitivityTransformer: images in, flattened sensitivity maps out."""

import copy
import os
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._classifiers._models import DEFAULT_MODEL
from .._images._batches import ImageSource
from .._images._preprocessing import PREPROCESSINGS
from .._utils._array_files import disk_store
from .._utils._validation import METHODS, check_image_size
from ._cache import GradientCache, resolve_cache
from ._provider import SharedEngines, build_provider
from ._steps import AGGREGATIONS, NORMALIZATIONS, pooled_shape

#: Parameters that act on maps after the backward pass (or on how they are
#: kept): changing one keeps the compiled engine.
MAP_SIDE_PARAMS = frozenset(
    {"aggregation", "normalize", "pool", "map_device", "cache", "memory", "verbose"})
#: Parameters that say which network runs. Every other parameter is the
#: gradient engine's, by the same name (target, preprocessing, image size,
#: method and its parameters, batch size).
MODEL_PARAMS = frozenset({"model", "weights"})


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
    image_size : int, (int, int) or None, default=None
        Size images are resized to, in pixels: an int ``n`` is ``n x n``, a
        pair ``(height, width)``. None uses the model's input size, or
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
    cache : bool or GradientCache, default=True
        Where the absolute gradients of each image are kept, so that refits
        with other map-side parameters (aggregation, normalize, pool) or other
        folds of a search never repeat a backward pass, with each image's map
        per map-side parameters, so that the folds and candidates of a search
        make it once. True: the package's :data:`~sklearn_sensloc.gradient_cache`
        (512 MiB); a :class:`~sklearn_sensloc.GradientCache`: that one, shared
        by the clones of a search; False: none, for a one-off pass over many
        images.
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
    map_device : {"auto", "cpu", "keras"}, default="auto"
        Where gradients become maps (channel aggregation, pooling,
        normalization). ``"cpu"``: with numpy on the host, from the gradients
        brought back from the backend. ``"keras"``: with ``keras.ops`` in the
        engine's compiled function, on its device, so that only pooled maps
        come back to the host (with the gradients, when ``cache`` or
        ``memory`` keeps them); uint8 images go to the device as uint8 either
        way. ``"auto"``: ``"keras"`` when the engine computes on a GPU or
        TPU, where the host's steps cost as much as the backward pass, else
        ``"cpu"``, where they cost about 1% of a VGG16 map and depend on an
        image's own gradients only, bit for bit. Both give the same maps to
        float32 rounding: about 1e-6 of a map's largest value for
        standardized pooled maps (numpy normalizes those in float64), a few
        1e-7 for the others; on the device, where the steps are compiled
        with the pass, a map's last bits may also depend on the shape of its
        batch.

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
    map_device_ : {"cpu", "keras"}
        Where ``transform`` makes maps, ``map_device="auto"`` resolved.
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
        "image_size": [Interval(Integral, 1, None, closed="left"), tuple, list, None],
        "preprocessing": [StrOptions({"auto", *PREPROCESSINGS}), callable],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": ["boolean", GradientCache],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["verbose"],
        "map_device": [StrOptions({"auto", "cpu", "keras"})],
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
        map_device="auto",
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
        self.map_device = map_device

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
        engine = self._build_provider().engine
        self.input_size_ = engine.input_size
        self.map_shape_ = pooled_shape(self.input_size_, self.pool)
        self.n_features_out_ = self.map_shape_[0] * self.map_shape_[1]
        self.target_name_ = engine.target_name
        self.map_device_ = self._map_device(engine)
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
        return self.gradient_provider().maps(
            X, self.aggregation, self.pool, self.normalize, verbose=self.verbose)

    def iter_gradients(self, X):
        """Absolute input gradients of the images in ``X``, batch by batch.

        What :meth:`transform` turns into maps, before aggregation, pooling and
        normalization: for computing maps of several map-side parameters from
        one backward pass. Gradients held by the ``cache`` or by the
        ``memory`` folder are read, not recomputed; computed ones are kept
        there.

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
        yield from self.gradient_provider().gradient_batches(X)

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

    def _build_provider(self):
        model = self._located("model", getattr(self, "model_file_", None), self.model)
        weights = self._located("weights", getattr(self, "weights_file_", None), self.weights)
        params = self.get_params(deep=False)
        engine_params = {name: value for name, value in params.items()
                         if name not in MAP_SIDE_PARAMS | MODEL_PARAMS | {"preprocessing"}}
        engine_params["image_size"] = check_image_size(self.image_size)
        self._provider, self.preprocessing_ = build_provider(
            model, weights, self.preprocessing, engine_params, engines=self._shared_engines())
        self.gradient_key_ = self._provider.gradient_key
        return self._provider

    def _shared_engines(self):
        """The engines this transformer shares with its clones (see ``__sklearn_clone__``)."""
        # setdefault: two threads of a Dask worker never make two.
        return self.__dict__.setdefault("_engines", SharedEngines())

    def _model_file(self):
        """The ``.keras`` file ``model`` names, or None (a registered name or a keras.Model)."""
        from .._classifiers._models import registered_name

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

    def gradient_provider(self, cache=None):
        """What computes this fitted transformer's gradients and maps, with its cache and store.

        :meth:`transform` and :meth:`iter_gradients` are its
        :meth:`~sklearn_sensloc._maps._provider.GradientProvider.maps` and
        :meth:`~sklearn_sensloc._maps._provider.GradientProvider.gradient_batches`;
        :class:`~sklearn_sensloc.MapStore`, the evaluation and the Dask
        workers use it the same way.

        Parameters
        ----------
        cache : bool, GradientCache or None, default=None
            The cache it keeps gradients and maps in, instead of the ``cache``
            parameter's (None keeps that one).

        Returns
        -------
        provider : GradientProvider
        """
        check_is_fitted(self)
        provider = getattr(self, "_provider", None) or self._build_provider()
        return provider.using(cache=resolve_cache(self.cache if cache is None else cache),
                              store=disk_store(self.memory),
                              map_device=self._map_device(provider.engine))

    def _map_device(self, engine):
        """``map_device`` with ``"auto"`` resolved for ``engine``."""
        if self.map_device != "auto":
            return self.map_device
        return "keras" if engine.on_accelerator else "cpu"

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
        return self.gradient_provider().engine

    def __sklearn_clone__(self):
        # The model is only ever read, so a clone uses the same one (and the
        # same compiled engines) instead of a deep copy, which for a keras.Model
        # means pickling the whole network on every clone of a search. Every
        # other parameter is cloned as sklearn does, from a shallow copy that
        # does not carry the model.
        without_model = copy.copy(self)
        without_model.model = None
        cloned = super(SensitivityTransformer, without_model).__sklearn_clone__()
        cloned.model = self.model
        cloned._engines = self._shared_engines()
        return cloned

    def __copy__(self):
        # copy.copy would go through __getstate__ and drop the engines, so a
        # copy would build and trace its own: a shallow copy shares them.
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __getstate__(self):
        # object.__getstate__ returns the live __dict__: copy before dropping.
        state = dict(super().__getstate__())
        state.pop("_provider", None)
        state.pop("_engines", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def fitted_transformer(transformer):
    """``transformer`` itself, fitted first (no images: its model loaded) if it was not yet.

    What the functions that take a transformer and compute maps with it
    (:class:`~sklearn_sensloc.MapStore`, the Dask path, the evaluation) do
    before using it.

    Raises
    ------
    TypeError
        If ``transformer`` is not a :class:`SensitivityTransformer`.
    """
    if not isinstance(transformer, SensitivityTransformer):
        raise TypeError(
            f"transformer must be a SensitivityTransformer; got {type(transformer).__name__}."
        )
    try:
        check_is_fitted(transformer)
    except NotFittedError:
        transformer.fit(None)
    return transformer


def _absolute_file(path):
    """The absolute path of an existing file; None for None or a missing file (fit's error)."""
    return os.path.abspath(path) if path is not None and os.path.isfile(path) else None
