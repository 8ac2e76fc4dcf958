"""The gradient engine: one interface, the backend's autodiff behind it.

It turns a batch of images into the absolute gradient of a scalar target with
respect to every input pixel, in one compiled backward pass per batch, or into
another saliency method's absolute attributions of that target, with one
compiled function per method. The methods are written once with
``keras.ops``; the backend module of the running Keras backend supplies the
differentiation, the compilation, SmoothGrad's noise and the devices.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from .._images._preprocessing import preprocessor
from .._utils._identity import fingerprint
from .._utils._validation import METHODS
from ._backends import backend_module, backend_name
from ._map_steps import device_maps
from ._networks import model_network
from ._targets import TargetError

#: Methods that average gradients over ``n_samples`` points per image.
SAMPLING_METHODS = ("smoothgrad", "integrated_gradients")

#: Argument kinds of the compiled functions: (shape after the batch axis, dtype).
IMAGES = "images"  # (*input_size, 3) float32, known once the engine is built
ROWS = ((), "int32")
SEEDS = ((2,), "int32")
PER_ROW = ((), "float32")


class GradientEngine:
    """Absolute input attributions of ``target`` for a Keras ``model`` or a PyTorch module.

    The running Keras backend (``keras.backend.backend()``: TensorFlow, JAX
    or PyTorch) computes them, on its default device: a GPU when it sees one;
    a ``torch.nn.Module`` (PyTorch backend only) on the device of its
    parameters, in eval mode, its training flags restored after each call.
    Every array in and out is numpy, one batch at a time. Built by
    :class:`~sklearn_sensloc.SensitivityTransformer`, whose parameters of the
    same names give the defaults (``gradient_engine()`` returns it).

    Parameters
    ----------
    model : keras.Model or torch.nn.Module
        A module takes NCHW batches: the engine moves the channels of the
        preprocessed NHWC images.
    target : {"gestalt", "class"}, int or str
        ``"gestalt"``: mean activation of the last convolutional layer;
        ``"class"``: score of the predicted class; an int: score of that class;
        any other string: mean activation of the layer of that name.
    preprocessing : {"caffe", "tf", "torch", "none"} or callable
        Applied inside the compiled function, so gradients are taken with
        respect to the pixels the user gave (RGB, 0..255). A callable gets
        a float32 tensor of such pixels.
    image_size : tuple of int or None
        Input size for models that accept any size.
    class_score : {"logit", "output"}
        For class targets: ``"logit"`` differentiates the score before a
        final softmax (the model's output when it ends in none), ``"output"``
        the model's output as it is.
    method : str
        One of ``METHODS``; see :class:`~sklearn_sensloc.SensitivityTransformer`.
    batch_size : int
        Most images, noisy copies or path points sent through the network at once.
    n_samples : int
        Noisy copies (smoothgrad) or path points (integrated_gradients) per image.
    noise_level : float
        SmoothGrad's noise standard deviation as a fraction of each image's
        pixel range.
    baseline : float
        Integrated gradients' baseline pixel value (0 is a black image).
    random_state : int
        Seeds SmoothGrad's noise, together with each image's pixels.

    Attributes
    ----------
    on_accelerator : bool
        Whether the engine computes on a GPU or TPU: the backend sees one and,
        for a PyTorch module, its parameters are there.
    computes_ahead : bool
        Whether callers compute the next batch in a thread while they make
        maps of this one: on a GPU or TPU with JAX, whose calls leave Python;
        not with PyTorch's eager dispatch, nor with TensorFlow until it is
        measured on a GPU (docs/benchmarks.rst, "One batch ahead", has the
        figures and the command). On a CPU the host and the device are the
        same cores.
    """

    def __init__(
        self,
        model,
        target,
        preprocessing,
        image_size,
        *,
        class_score,
        method,
        batch_size,
        n_samples,
        noise_level,
        baseline,
        random_state,
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        self.backend = backend_name()
        self._backend_module = backend_module()
        self.model = model
        self.method = method
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.baseline = baseline
        self.random_state = random_state
        self.batch_size = batch_size
        self._network = model_network(model, image_size)
        self.on_accelerator = bool(self._backend_module.accelerators()) and not str(
            self._network.device or ""
        ).startswith("cpu")
        self.computes_ahead = self._backend_module.COMPUTE_AHEAD and self.on_accelerator
        self.input_size = self._network.input_size
        self._target = self._network.target(target, class_score)
        self.target_name = self._target.name
        self.preprocess = preprocessor(preprocessing)
        self._layer = self._network.gradcam_layer(target) if method == "gradcam" else None
        self._method_function, signature = getattr(self, "_" + method)()
        self._gradients = self._compile(self._method_function, signature)
        # Compiled on first use, per kind and image dtype (see _compiled).
        self._functions = {}
        self._forward = None

    @property
    def method_key(self):
        """The method and the parameters its attributions depend on, as a part of the gradient key.

        Empty for ``"gradient"``, which keeps the keys, and so the stores, made
        before other methods existed; a parameter a method ignores is left
        out, so that changing it does not recompute that method.
        """
        if self.method == "gradient":
            return ()
        if self.method == "smoothgrad":
            key = (self.method, int(self.n_samples), float(self.noise_level), int(self.random_state))
            # Each backend draws its own noise; TensorFlow's keys stay as they were.
            return key if self.backend == "tensorflow" else (*key, self.backend)
        if self.method == "integrated_gradients":
            return (self.method, int(self.n_samples), float(self.baseline))
        return (self.method,)

    def __call__(self, images):
        """Absolute attributions, float32 array of the same shape as ``images``.

        ``images``: RGB 0..255 pixels, float32 or uint8; uint8 pixels go to
        the device as they are, a quarter of the bytes, and become float32
        there.
        """
        if self.method not in SAMPLING_METHODS:
            images = _pixels(images)
            if images.dtype == np.float32:
                return self._run_images(self._gradients, images)
            return self._run_images(self._compiled(("gradients",), images.dtype), images)
        images = np.asarray(images, np.float32)
        sums = self._summed_gradients(images)
        if self.method == "smoothgrad":
            # The SmoothGrad paper and tf-keras-vis: abs of the mean gradient.
            return np.abs(sums / np.float32(self.n_samples))
        return np.abs((images - np.float32(self.baseline)) * (sums / np.float32(self.n_samples)))

    def maps(self, images, settings, *, with_gradients=False):
        """Sensitivity maps of several map-side settings from one backward pass, made on the device.

        The channel aggregation, pooling and normalization run in the
        engine's compiled function, with ``keras.ops``, so that only the
        pooled maps come back to the host (and the gradients, when asked).
        Sampling methods sum their gradients on the host first; their maps
        are then made on the device from those sums.

        Parameters
        ----------
        images : ndarray of shape (n, height, width, 3), float32 or uint8
            RGB 0..255 pixels at ``input_size``.
        settings : sequence of (aggregation, pool, normalize)
        with_gradients : bool, default=False
            Also return the absolute attributions the maps were made from.

        Returns
        -------
        gradients : ndarray of shape (n, height, width, 3), float32, or None
        maps : list of ndarray
            Per setting, float32 maps of shape ``(n, ceil(height / pool),
            ceil(width / pool))``.
        """
        settings = tuple(tuple(setting) for setting in settings)
        if self.method in SAMPLING_METHODS:
            gradients = self(images)
            return (gradients if with_gradients else None), self.map_steps(gradients, settings)
        images = _pixels(images)
        compiled = self._compiled(("maps", settings, with_gradients), images.dtype)
        found = self._run_images(compiled, images)
        gradients, maps = found if with_gradients else (None, found)
        return gradients, list(maps)

    def map_steps(self, gradients, settings):
        """Maps of ``settings`` from absolute attributions already computed, on the device.

        What :meth:`maps` makes after its backward pass, for attributions
        kept from an earlier one (a cache's).

        Returns
        -------
        maps : list of ndarray
        """
        settings = tuple(tuple(setting) for setting in settings)
        compiled = self._compiled(("map_steps", settings), np.dtype(np.float32))
        return list(self._run_images(compiled, np.asarray(gradients, np.float32)))

    def _compiled(self, kind, dtype):
        """The compiled function of ``kind`` for images of ``dtype``, compiled once."""
        key = (kind, np.dtype(dtype).name)
        compiled = self._functions.get(key)
        if compiled is None:
            compiled = self._compile(self._function(kind), [(IMAGES, key[1])])
            self._functions[key] = compiled
        return compiled

    def _function(self, kind):
        """The Python function of ``kind``, pixels of any dtype made float32 first.

        ``kind``: ``("gradients",)``, ``("map_steps", settings)`` or
        ``("maps", settings, with_gradients)``.
        """
        method = self._method_function
        if kind[0] == "gradients":
            return lambda images: method(ops.cast(images, "float32"))
        if kind[0] == "map_steps":
            return lambda gradients: [device_maps(gradients, *setting) for setting in kind[1]]
        _, settings, with_gradients = kind

        def fused(images):
            gradients = method(ops.cast(images, "float32"))
            maps = [device_maps(gradients, *setting) for setting in settings]
            return (gradients, maps) if with_gradients else maps

        return fused

    def _run_images(self, compiled, images):
        """``compiled(images)``, padded to a bucket of rows where the backend compiles per shape."""
        if not self._backend_module.FIXED_SHAPES:
            return self._run(compiled, images)
        found = self._run(compiled, _padded(images, self._bucket(len(images))))
        return keras.tree.map_structure(lambda array: array[: len(images)], found)

    def _bucket(self, n_images):
        """The rows a call of ``n_images`` is padded to, with images of zeros.

        Whole batches, or below ``batch_size`` the next power of two: a few
        shapes, so a few compilations, and less than twice the work on a
        short last batch.
        """
        if n_images >= self.batch_size:
            return -(-n_images // self.batch_size) * self.batch_size
        return min(self.batch_size, 1 << (n_images - 1).bit_length())

    def forward(self, images):
        """The model's output on preprocessed ``images``, compiled as the maps are.

        The reference a map's cost is measured against: the same backend,
        device, preprocessing and batch, without the backward pass.
        """
        if self._forward is None:
            network, preprocess = self._network, self.preprocess
            self._forward = self._compile(lambda pixels: network.forward(preprocess(pixels)), [IMAGES])
        return self._run(self._forward, np.asarray(images, np.float32))

    def _compile(self, function, signature):
        size = (*self.input_size, 3)
        # IMAGES alone is float32; (IMAGES, dtype) names another pixel dtype.
        signature = [
            (size, "float32") if spec == IMAGES
            else (size, spec[1]) if spec[0] == IMAGES else spec
            for spec in signature
        ]
        return self._backend_module.compile_function(function, signature, self._target.variables)

    def _run(self, compiled, *arrays):
        device = self._network.device
        try:
            with keras.device(device) if device is not None else contextlib.nullcontext():
                return compiled(*arrays)
        except TargetError:
            raise
        except Exception as error:
            # The framework's message is kept, chained, and named here: the
            # user sees which model, method and backend failed, not only a
            # frame deep inside the framework.
            raise RuntimeError(
                f"Computing {self.method} maps of the {self.target_name} of model "
                f"{self._network.name!r} failed on the Keras {self.backend} backend: "
                f"{type(error).__name__}: {_first_line(error)}. Every layer of the model must "
                f"run, and be differentiable, on {self.backend}, and a batch of batch_size="
                f"{self.batch_size} must fit the device's memory."
            ) from error

    def _input_gradient(self, points, classes=None):
        """Signed gradient of the target with respect to the pixels ``points``."""
        target, preprocess = self._target, self.preprocess
        return self._checked_gradient(
            lambda pixels: (target.scores(preprocess(pixels), classes), None), points
        )[0]

    def _checked_gradient(self, function, inputs):
        found, aux = self._backend_module.gradient(function, inputs)
        if found is None:
            raise TargetError(
                f"The {self.target_name} of model {self._network.name!r} does not depend on its "
                f"input on the Keras {self.backend} backend: there is no gradient to map."
            )
        return found, aux

    def _points_gradient(self, images, owners, points):
        # The predicted class of a sampled point (noisy, or on the path from
        # the baseline) is often not the image's: score the image's own class.
        if self._target.predicted_classes is None:
            return self._input_gradient(points)
        classes = ops.take(self._target.predicted_classes(self.preprocess(images)), owners, axis=0)
        return self._input_gradient(points, classes)

    def _gradient(self):
        return (lambda images: ops.abs(self._input_gradient(images))), [IMAGES]

    def _gradient_x_input(self):
        target, preprocess = self._target, self.preprocess

        def attributions(images):
            # The model's own input, after preprocessing, as xplique does.
            inputs = preprocess(images)
            found, _ = self._checked_gradient(lambda u: (target.scores(u), None), inputs)
            return ops.abs(found * inputs)

        return attributions, [IMAGES]

    def _smoothgrad(self):
        noise = self._backend_module.normal_noise

        def summed(images, owners, seeds, sigmas):
            scales = ops.reshape(ops.take(sigmas, owners, axis=0), (-1, 1, 1, 1))
            points = ops.take(images, owners, axis=0) + scales * noise(seeds, (*self.input_size, 3))
            return self._segment_sum(images, owners, points)

        return summed, [IMAGES, ROWS, SEEDS, PER_ROW]

    def _integrated_gradients(self):
        start = float(self.baseline)

        def summed(images, owners, alphas):
            alphas = ops.reshape(alphas, (-1, 1, 1, 1))
            points = start + alphas * (ops.take(images, owners, axis=0) - start)
            return self._segment_sum(images, owners, points)

        return summed, [IMAGES, ROWS, PER_ROW]

    def _segment_sum(self, images, owners, points):
        return ops.segment_sum(
            self._points_gradient(images, owners, points), owners, num_segments=ops.shape(images)[0]
        )

    def _gradcam(self):
        target, preprocess, layer, network = self._target, self.preprocess, self._layer, self._network
        shape = network.layer_output_shape(layer)

        def cam(images):
            inputs = preprocess(images)

            def total(delta):
                with network.adding_to_output(layer, delta) as outputs:
                    values = target.scores(inputs)
                return values, outputs[0]

            delta = ops.zeros((ops.shape(images)[0], *shape), "float32")
            found, activations = self._checked_gradient(total, delta)
            weights = ops.mean(found, axis=(1, 2), keepdims=True)
            heat = ops.relu(ops.sum(weights * activations, axis=-1, keepdims=True))
            heat = ops.image.resize(heat, self.input_size, interpolation="bilinear")
            # Three equal channels: aggregation, pooling and normalization
            # then apply to Grad-CAM maps unchanged.
            return ops.repeat(heat, 3, axis=-1)

        return cam, [IMAGES]

    def _summed_gradients(self, images):
        """Sum over each image's ``n_samples`` points of the input gradient.

        The images x points rows are sent in chunks of ``batch_size`` rows, so
        memory is bounded whatever ``n_samples`` is.
        """
        n_samples = self.n_samples
        owners = np.repeat(np.arange(len(images), dtype=np.int32), n_samples)
        samples = np.tile(np.arange(n_samples, dtype=np.int32), len(images))
        if self.method == "smoothgrad":
            seeds = image_seeds(images, self.random_state)
            sigmas = self.noise_level * (images.max(axis=(1, 2, 3)) - images.min(axis=(1, 2, 3)))
        sums = np.zeros_like(images)
        for start in range(0, len(owners), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            first, stop = owners[chunk][0], owners[chunk][-1] + 1
            local = owners[chunk] - first
            per_image = [images[first:stop]]
            if self.method == "smoothgrad":
                per_row = [np.stack([seeds[owners[chunk]], samples[chunk]], axis=1)]
                per_image.append(sigmas[first:stop].astype(np.float32))
            else:
                # Midpoint rule on [0, 1]: no point sits on the baseline itself.
                per_row = [(samples[chunk] + np.float32(0.5)) / np.float32(n_samples)]
            if self._backend_module.FIXED_SHAPES:
                local, per_row, per_image = self._padded_chunk(local, per_row, per_image)
            summed = self._run(self._gradients, per_image[0], local, *per_row, *per_image[1:])
            sums[first:stop] += summed[: stop - first]
        return sums

    def _padded_chunk(self, owners, per_row, per_image):
        """A chunk padded to ``batch_size`` rows and the most images such a chunk spans.

        The padding rows belong to a padding image of zeros, whose sum is
        dropped: every chunk then has the same shapes, and is compiled once.
        """
        n_images = 2 + (self.batch_size + self.n_samples - 2) // self.n_samples
        owners = _padded(owners, self.batch_size, fill=len(per_image[0]))
        per_row = [_padded(array, self.batch_size) for array in per_row]
        per_image = [_padded(array, n_images) for array in per_image]
        return owners, per_row, per_image


def image_seeds(images, random_state):
    """One int32 noise seed per image, from ``random_state`` and its pixels.

    Seeding from the pixels, not from a position in a batch, keeps each map
    independent of batch composition, of caches, and of whether the image came
    as an array or a file.
    """
    return np.asarray(
        [int(fingerprint(random_state, image.tobytes())[:7], 16) for image in images], np.int32
    )


def _pixels(images):
    """``images`` as a numpy array of uint8 (kept so) or float32 pixels."""
    images = np.asarray(images)
    return images if images.dtype == np.uint8 else images.astype(np.float32, copy=False)


def _padded(array, length, fill=0):
    """``array`` with rows of ``fill`` appended up to ``length`` rows (itself if it has them)."""
    if len(array) == length:
        # A whole batch, the common case: no copy, which on a GPU costs as much
        # as a good part of the pass (docs/benchmarks.rst, "Where the time goes").
        return array
    padding = np.full((length - len(array), *array.shape[1:]), fill, array.dtype)
    return np.concatenate([array, padding])


def _first_line(error):
    return " ".join(str(error).splitlines()[0].split()).rstrip(".") if str(error) else ""
