"""The gradient engine: the only module that knows TensorFlow.

It turns a batch of images into the absolute gradient of a scalar target with
respect to every input pixel, in one compiled backward pass per batch.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

from ._models import CAFFE_BGR_MEAN

CONV_LAYER_TYPES = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
)


#: Used for fully convolutional models that accept any size: the paper's size.
DEFAULT_IMAGE_SIZE = (224, 224)


class GradientEngine:
    """Absolute input gradients of ``target`` for a Keras ``model``.

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
    image_size : tuple (height, width) or None
        Size for models that accept any size; None: the model's own.
    class_score : {"logit", "output"}
        For class targets: ``"logit"`` differentiates the score before a
        final softmax (the model's output when it ends in none), ``"output"``
        the model's output as it is.
    """

    def __init__(self, model, target, preprocessing, image_size=None, class_score="logit"):
        self.model = model
        self.input_size = _resolve_input_size(model, image_size)
        self.target_name, target_fn = _target_function(model, target, class_score)
        self.preprocess = preprocess = (
            _on_tensor(preprocessing) if callable(preprocessing) else _PREPROCESSORS[preprocessing]
        )
        self.n_backward_passes = 0

        spec = tf.TensorSpec([None, *self.input_size, 3], tf.float32)

        # A fixed signature with a free batch axis: one trace serves every batch,
        # the short last one included, so long runs never retrace.
        @tf.function(input_signature=[spec])
        def gradients(images):
            # Only the input is watched: no weight gradient is ever built.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(images)
                # Images are independent in inference mode, so the gradient of
                # the sum is each image's own gradient: one backward pass.
                total = tf.reduce_sum(target_fn(preprocess(images)))
            return tf.abs(tape.gradient(total, images))

        self._gradients = gradients

    #: Images pushed through a backward pass by any engine of this process;
    #: lets tests and benchmarks prove that a search does not repeat them.
    images_processed = 0

    def __call__(self, images):
        """Absolute gradients, float32 array of the same shape as ``images``."""
        self.n_backward_passes += 1
        GradientEngine.images_processed += len(images)
        return self._gradients(tf.convert_to_tensor(images, tf.float32)).numpy()


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
        layers = {name: layer for name, layer in iter_layers(model)}
        layers.update({layer.name: layer for layer in layers.values()})
        if target not in layers:
            names = ", ".join(name for name, _ in iter_layers(model))
            raise ValueError(
                f"Unknown target {target!r}: not 'gestalt', 'class', a class index "
                f"or a layer of model {model.name!r} (its layers: {names})."
            )
        layer = layers[target]
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
        return (lambda images: model(images, training=False)), "output"
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

    def score(images):
        outputs = scores(images)
        if class_index is not None:
            return outputs[:, class_index]
        predicted = tf.stop_gradient(tf.argmax(outputs, axis=1))
        return tf.gather(outputs, predicted, axis=1, batch_dims=1)

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
