"""The gradient engine: the only module that knows TensorFlow.

It turns a batch of images into the absolute gradient of a scalar target with
respect to every input pixel, in one compiled backward pass per batch, or into
another saliency method's absolute attributions of that target, with one
compiled function per method.
"""

import contextlib
import threading
import warnings

import keras
import numpy as np
import tensorflow as tf

from ._cache import fingerprint
from ._maps import METHODS
from ._models import CAFFE_BGR_MEAN

CONV_LAYER_TYPES = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
)


#: Used for fully convolutional models that accept any size: the paper's size.
DEFAULT_IMAGE_SIZE = (224, 224)


#: Methods that average gradients over ``n_samples`` points per image.
SAMPLING_METHODS = ("smoothgrad", "integrated_gradients")


class GradientEngine:
    """Absolute input attributions of ``target`` for a Keras ``model``.

    Parameters
    ----------
    model : keras.Model
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
    class_score : {"logit", "output"}, default="logit"
        For class targets: ``"logit"`` differentiates the score before a
        final softmax (the model's output when it ends in none), ``"output"``
        the model's output as it is.
    method : str, default="gradient"
        One of ``METHODS``; see :class:`~sklearn_sensloc.SensitivityTransformer`.
    n_samples : int, default=16
        Noisy copies (smoothgrad) or path points (integrated_gradients) per image.
    noise_level : float, default=0.2
        SmoothGrad's noise standard deviation as a fraction of each image's
        pixel range.
    baseline : float, default=0.0
        Integrated gradients' baseline pixel value (0 is a black image).
    random_state : int, default=0
        Seeds SmoothGrad's noise, together with each image's pixels.
    batch_size : int, default=32
        Most images, noisy copies or path points sent through the network at once.
    """

    def __init__(
        self,
        model,
        target,
        preprocessing,
        image_size=None,
        class_score="logit",
        method="gradient",
        n_samples=16,
        noise_level=0.2,
        baseline=0.0,
        random_state=0,
        batch_size=32,
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        self.model = model
        self.method = method
        self.n_samples = n_samples
        self.noise_level = noise_level
        self.baseline = baseline
        self.random_state = random_state
        self.batch_size = batch_size
        self.input_size = _resolve_input_size(model, image_size)
        self.target_name, target_fn = _target_function(model, target, class_score)
        self.preprocess = preprocess = (
            _on_tensor(preprocessing) if callable(preprocessing) else _PREPROCESSORS[preprocessing]
        )
        self.n_backward_passes = 0

        def gradient(function, inputs):
            # Only the input is watched: no weight gradient is ever built.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(inputs)
                # Images are independent in inference mode, so the gradient of
                # the sum is each image's own gradient: one backward pass.
                total = tf.reduce_sum(function(inputs))
            return tape.gradient(total, inputs)

        def input_gradient(images):
            return gradient(lambda pixels: target_fn(preprocess(pixels)), images)

        # The predicted class of a sampled point (noisy, or on the path from
        # the baseline) is often not the image's: score the image's own class.
        predicted_classes = getattr(target_fn, "predicted_classes", None)

        def points_gradient(images, owners, points):
            if predicted_classes is None:
                return input_gradient(points)
            classes = tf.gather(predicted_classes(preprocess(images)), owners)
            return gradient(lambda pixels: target_fn(preprocess(pixels), classes), points)

        spec = tf.TensorSpec([None, *self.input_size, 3], tf.float32)
        rows = tf.TensorSpec([None], tf.int32)
        per_row = tf.TensorSpec([None], tf.float32)

        # Fixed signatures with free batch axes: one trace serves every batch,
        # the short last one included, so long runs never retrace.
        if method == "gradient":

            @tf.function(input_signature=[spec])
            def gradients(images):
                return tf.abs(input_gradient(images))

        elif method == "gradient_x_input":

            @tf.function(input_signature=[spec])
            def gradients(images):
                # The model's own input, after preprocessing, as xplique does.
                inputs = preprocess(images)
                return tf.abs(gradient(target_fn, inputs) * inputs)

        elif method == "smoothgrad":

            @tf.function(input_signature=[spec, rows, tf.TensorSpec([None, 2], tf.int32), per_row])
            def gradients(images, owners, seeds, sigmas):
                noise = smoothgrad_noise(seeds, self.input_size)
                points = tf.gather(images, owners) + tf.gather(sigmas, owners)[:, None, None, None] * noise
                return tf.math.unsorted_segment_sum(
                    points_gradient(images, owners, points), owners, tf.shape(images)[0]
                )

        elif method == "integrated_gradients":

            @tf.function(input_signature=[spec, rows, per_row])
            def gradients(images, owners, alphas):
                start = tf.constant(float(baseline), tf.float32)
                points = start + alphas[:, None, None, None] * (tf.gather(images, owners) - start)
                return tf.math.unsorted_segment_sum(
                    points_gradient(images, owners, points), owners, tf.shape(images)[0]
                )

        else:
            layer = _target_layer(model, target)

            @tf.function(input_signature=[spec])
            def gradients(images):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    with _recording_output(layer, tape) as outputs:
                        total = tf.reduce_sum(target_fn(preprocess(images)))
                activations = outputs[0]
                weights = tf.reduce_mean(tape.gradient(total, activations), axis=(1, 2), keepdims=True)
                cam = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
                cam = tf.image.resize(cam, self.input_size, method="bilinear")
                # Three equal channels: aggregation, pooling and normalization
                # then apply to Grad-CAM maps unchanged.
                return tf.repeat(cam, 3, axis=-1)

        self._gradients = gradients

    #: Images pushed through a backward pass by any engine of this process;
    #: lets tests and benchmarks prove that a search does not repeat them.
    images_processed = 0

    def __call__(self, images):
        """Absolute attributions, float32 array of the same shape as ``images``."""
        self.n_backward_passes += 1
        GradientEngine.images_processed += len(images)
        images = np.asarray(images, np.float32)
        if self.method not in SAMPLING_METHODS:
            return self._gradients(tf.convert_to_tensor(images)).numpy()
        sums = self._summed_gradients(images)
        if self.method == "smoothgrad":
            # The SmoothGrad paper and tf-keras-vis: abs of the mean gradient.
            return np.abs(sums / np.float32(self.n_samples))
        return np.abs((images - np.float32(self.baseline)) * (sums / np.float32(self.n_samples)))

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
            if self.method == "smoothgrad":
                extra = (
                    np.stack([seeds[owners[chunk]], samples[chunk]], axis=1),
                    sigmas[first:stop].astype(np.float32),
                )
            else:
                # Midpoint rule on [0, 1]: no point sits on the baseline itself.
                extra = ((samples[chunk] + np.float32(0.5)) / np.float32(n_samples),)
            sums[first:stop] += self._gradients(images[first:stop], local, *extra).numpy()
        return sums


def image_seeds(images, random_state):
    """One int32 noise seed per image, from ``random_state`` and its pixels.

    Seeding from the pixels, not from a position in a batch, keeps each map
    independent of batch composition, of caches, and of whether the image came
    as an array or a file.
    """
    return np.asarray(
        [int(fingerprint(random_state, image.tobytes())[:7], 16) for image in images], np.int32
    )


def smoothgrad_noise(seeds, size):
    """Standard normal noise ``(len(seeds), *size, 3)``, one stateless draw per seed pair."""
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal([*size, 3], seed),
        seeds,
        fn_output_signature=tf.float32,
    )


@contextlib.contextmanager
def _recording_output(layer, tape):
    """Collect ``layer``'s outputs, watched by ``tape``, while the target is traced.

    The target functions call the whole model (nested ones too), so the only
    place where the activations are tensors of the same graph as the target,
    which Grad-CAM differentiates with respect to, is the layer's own call.
    """
    outputs = []
    call = layer.call

    def recording(*args, **kwargs):
        outputs.append(call(*args, **kwargs))
        tape.watch(outputs[-1])
        return outputs[-1]

    with _RECORDING_LOCK:
        # Bypass Keras' attribute tracking: this is a temporary instance override.
        object.__setattr__(layer, "call", recording)
        try:
            yield outputs
        finally:
            object.__delattr__(layer, "call")
    if len(outputs) != 1:
        raise ValueError(
            f"Grad-CAM needs layer {layer.name!r} to run once per forward pass; it ran "
            f"{len(outputs)} times."
        )


_RECORDING_LOCK = threading.Lock()


def input_size(model):
    """(height, width) the model expects, or None where it accepts any size."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0]
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise ValueError(
            "The model must take RGB images of shape (batch, height, width, 3); "
            f"its input shape is {shape}."
        )
    if shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def _resolve_input_size(model, image_size):
    model_size = input_size(model)
    if model_size is None:
        return tuple(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE
    if image_size is not None and tuple(image_size) != model_size:
        raise ValueError(
            f"image_size={tuple(image_size)} conflicts with the model's fixed input "
            f"size {model_size}; leave image_size=None."
        )
    return model_size


def iter_layers(model, prefix=""):
    """Every layer of ``model`` in graph order, descending into nested models."""
    for layer in model.layers:
        yield prefix + layer.name, layer
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, prefix + layer.name + "/")


def last_conv_layer(model):
    """The last 2-D convolutional layer, searching nested models too."""
    convs = [layer for _, layer in iter_layers(model) if isinstance(layer, CONV_LAYER_TYPES)]
    if not convs:
        raise ValueError(
            f"target='gestalt' needs a convolutional layer, but model {model.name!r} "
            "has none. Use target='class' or a layer name."
        )
    return convs[-1]


def _target_function(model, target, class_score="logit"):
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        scores, kind = _class_scores(model, class_score)
        return f"{kind} of class {int(target)}", _class_score(model, scores, int(target))
    if target == "class":
        scores, kind = _class_scores(model, class_score)
        return f"{kind} of the predicted class", _class_score(model, scores, None)
    if target == "gestalt":
        layer = last_conv_layer(model)
        return f"gestalt total of {layer.name!r}", _mean_activation(model, layer)
    if isinstance(target, str):
        layer = _named_layer(model, target)
        return f"mean activation of {layer.name!r}", _mean_activation(model, layer)
    raise ValueError(
        f"target must be 'gestalt', 'class', an int class index or a layer name; got {target!r}."
    )


def _class_scores(model, class_score):
    """The function giving the class scores to differentiate, and what they are.

    The paper's class score, like the saliency literature's, is the score
    before the softmax: a softmax output also moves when *other* classes'
    scores move, so its gradient mixes every class into the map.
    """
    last = model.layers[-1] if getattr(model, "layers", None) else None
    ends_in_softmax = last is not None and _is_softmax(last)
    if class_score == "output" or not ends_in_softmax:
        if class_score == "output" and ends_in_softmax:
            warnings.warn(
                f"Model {model.name!r} ends in a softmax and class_score='output': the maps "
                "are gradients of class probabilities, which mix every other class in. "
                "Use class_score='logit' (the default) for the score before the softmax.",
                UserWarning,
                stacklevel=4,
            )
        kind = "probability" if ends_in_softmax else "score"
        return (lambda images: model(images, training=False)), kind
    return _scores_before_softmax(model, last), "logit"


def _is_softmax(layer):
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _scores_before_softmax(model, last):
    features = keras.Model(_single_input(model), last.input)
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return lambda images: features(images, training=False)
    # A layer with a softmax activation (Dense, as in VGG16): the same layer
    # with a linear activation, on copies of its weights (never modified).
    linear = type(last).from_config({**last.get_config(), "activation": "linear"})
    linear.build(last.input.shape)
    linear.set_weights(last.get_weights())
    return lambda images: linear(features(images, training=False))


def _target_layer(model, target):
    """Grad-CAM's layer: a layer target's own, else the last convolutional layer."""
    if isinstance(target, str) and target not in ("gestalt", "class"):
        return _named_layer(model, target)
    return last_conv_layer(model)


def _named_layer(model, name):
    layers = {path: layer for path, layer in iter_layers(model)}
    layers.update({layer.name: layer for layer in layers.values()})
    if name not in layers:
        names = ", ".join(path for path, _ in iter_layers(model))
        raise ValueError(
            f"Unknown target {name!r}: not 'gestalt', 'class', a class index "
            f"or a layer of model {model.name!r} (its layers: {names})."
        )
    return layers[name]


def _class_score(model, scores, class_index):
    shape = model.output_shape
    if isinstance(shape, list) or len(shape) != 2:
        raise ValueError(
            "A class target needs a model whose output is (batch, n_classes); "
            f"model {model.name!r} outputs {shape}."
        )
    n_classes = shape[1]
    if class_index is not None and not 0 <= class_index < n_classes:
        raise ValueError(
            f"Class index {class_index} is out of range for a model with {n_classes} classes."
        )

    if class_index is not None:
        return lambda images: scores(images)[:, class_index]

    def score(images, classes=None):
        """The score of each image's predicted class, or of ``classes`` when given."""
        outputs = scores(images)
        if classes is None:
            classes = tf.stop_gradient(tf.argmax(outputs, axis=1))
        return tf.gather(outputs, classes, axis=1, batch_dims=1)

    score.predicted_classes = lambda images: tf.argmax(scores(images), axis=1)
    return score


def _mean_activation(model, layer):
    features = _layer_output_function(model, layer)

    def mean(images):
        activations = features(images)
        return tf.reduce_mean(activations, axis=list(range(1, len(activations.shape))))

    return mean


def _layer_output_function(model, layer):
    """A callable mapping the model's input to ``layer``'s output.

    A layer inside a nested model (a transfer-learning base, say) is not
    connected to the outer model's inputs, so ``keras.Model(outer.inputs,
    layer.output)`` fails with "not connected". Instead, compose the part of the
    outer graph that feeds the nested model with the nested model's own
    sub-graph up to the layer.
    """
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Model {model.name!r} has no symbolic inputs (a subclassed model, or a "
            "Sequential model never built): layer targets such as 'gestalt' need a "
            "functional or Sequential model with an Input."
        )
    if any(member is layer for member in model.layers):
        return keras.Model(_single_input(model), layer.output)
    for child in model.layers:
        if isinstance(child, keras.Model) and any(
            member is layer for _, member in iter_layers(child)
        ):
            inner = _layer_output_function(child, layer)
            feed = _input_feeding(model, child)
            return lambda images: inner(feed(images))
    raise ValueError(f"Layer {layer.name!r} is not part of model {model.name!r}.")


def _input_feeding(model, child):
    for node in child._inbound_nodes:
        tensors = node.input_tensors
        if len(tensors) != 1:
            continue
        if any(tensors[0] is tensor for tensor in model.inputs):
            return lambda images: images
        try:
            return keras.Model(_single_input(model), tensors[0])
        except ValueError:
            # A node from another graph the child model is also used in.
            continue
    raise ValueError(
        f"Cannot find how model {model.name!r} feeds its nested model {child.name!r}."
    )


def _single_input(model):
    # A one-element list would make Keras warn on every call with a tensor.
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def _on_tensor(function):
    # Keras' preprocess_input functions divide numpy arrays in place: a tensor
    # keeps the caller's batch intact (the timings reuse it).
    return lambda images: function(tf.convert_to_tensor(images, tf.float32))


def _caffe(images):
    return images[..., ::-1] - tf.constant(CAFFE_BGR_MEAN, tf.float32)


def _torch(images):
    mean = tf.constant((0.485, 0.456, 0.406), tf.float32)
    std = tf.constant((0.229, 0.224, 0.225), tf.float32)
    return (images / 255.0 - mean) / std


_PREPROCESSORS = {
    "caffe": _caffe,
    "tf": lambda images: images / 127.5 - 1.0,
    "torch": _torch,
    "none": lambda images: images,
}
