"""The scalar targets of a model, per image, written with ``keras.ops`` for every backend.

Also what finds them in a model: input size, the last convolutional layer,
layers by name in nested models, and the part of a graph that feeds one.
"""

import contextlib
import threading
import warnings

import keras
import numpy as np
from keras import ops

CONV_LAYER_TYPES = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
)

#: Used for fully convolutional models that accept any size: the paper's size.
DEFAULT_IMAGE_SIZE = (224, 224)


class TargetError(ValueError):
    """A target that cannot be computed as asked, whatever the backend."""


class Target:
    """A scalar per image of a model's preprocessed input.

    Parameters
    ----------
    name : str
        What it is, e.g. "gestalt total of 'block5_conv3'".
    scores : callable
        ``scores(inputs, classes=None)``: one value per image; ``classes``
        (the predicted-class target only) fixes the class each row scores.
    variables : list of keras.Variable
        Every variable ``scores`` reads, for engines that pass their values.
    predicted_classes : callable or None
        For the predicted-class target: the class each input is predicted as.
    """

    def __init__(self, name, scores, variables, predicted_classes=None):
        self.name = name
        self.scores = scores
        self.variables = variables
        self.predicted_classes = predicted_classes


class KerasNetwork:
    """A ``keras.Model`` as the engine sees it.

    The interface every network kind offers the engine: ``name``,
    ``device`` (None: the backend's default), ``input_size``, ``target``,
    ``gradcam_layer``, ``layer_output_shape`` (after the batch axis, channels
    last), ``adding_to_output`` and ``forward`` (on preprocessed NHWC inputs).
    """

    device = None

    def __init__(self, model, image_size):
        self.model = model
        self.name = model.name
        self.input_size = resolve_input_size(model, image_size)

    def target(self, target, class_score):
        return make_target(self.model, target, class_score)

    def gradcam_layer(self, target):
        return gradcam_layer(self.model, target)

    def layer_output_shape(self, layer):
        return layer_output_shape(self.model, layer, self.input_size)

    def adding_to_output(self, layer, delta):
        return adding_to_output(layer, delta)

    def forward(self, inputs):
        return self.model(inputs, training=False)


def make_target(model, target, class_score="logit"):
    """The :class:`Target` that ``target`` (see the engine) names in ``model``."""
    variables = list(model.variables)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        (scores, extra), kind = _class_scores(model, class_score)
        return _class_target(model, scores, int(target), f"{kind} of class {int(target)}",
                             variables + extra)
    if target == "class":
        (scores, extra), kind = _class_scores(model, class_score)
        return _class_target(model, scores, None, f"{kind} of the predicted class", variables + extra)
    if target == "gestalt":
        layer = last_conv_layer(model)
        return Target(f"gestalt total of {layer.name!r}", _mean_activation(model, layer), variables)
    if isinstance(target, str):
        layer = named_layer(model, target)
        return Target(f"mean activation of {layer.name!r}", _mean_activation(model, layer), variables)
    raise ValueError(
        f"target must be 'gestalt', 'class', an int class index or a layer name; got {target!r}."
    )


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


def resolve_input_size(model, image_size):
    """The size images are resized to: the model's own, else ``image_size`` or the default."""
    model_size = input_size(model)
    if model_size is None:
        return tuple(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE
    check_image_size(image_size, model_size)
    return model_size


def check_image_size(image_size, model_size):
    """Refuse an ``image_size`` other than a model's fixed input size."""
    if image_size is not None and tuple(image_size) != tuple(model_size):
        raise ValueError(
            f"image_size={tuple(image_size)} conflicts with the model's fixed input "
            f"size {tuple(model_size)}; leave image_size=None."
        )


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


def gradcam_layer(model, target):
    """Grad-CAM's layer: a layer target's own, else the last convolutional layer."""
    if isinstance(target, str) and target not in ("gestalt", "class"):
        return named_layer(model, target)
    return last_conv_layer(model)


def named_layer(model, name):
    """The layer called ``name`` (or ``nested/name``), searching nested models too."""
    layers = {path: layer for path, layer in iter_layers(model)}
    layers.update({layer.name: layer for layer in layers.values()})
    if name not in layers:
        names = ", ".join(path for path, _ in iter_layers(model))
        raise ValueError(
            f"Unknown target {name!r}: not 'gestalt', 'class', a class index "
            f"or a layer of model {model.name!r} (its layers: {names})."
        )
    return layers[name]


def layer_output_shape(model, layer, size):
    """Shape of ``layer``'s output, after the batch axis, for ``size`` inputs (symbolic)."""
    features = layer_output_function(model, layer)
    return tuple(features(keras.KerasTensor((None, *size, 3))).shape[1:])


@contextlib.contextmanager
def adding_to_output(layer, delta):
    """Add ``delta`` to ``layer``'s output while the target runs; collect the output.

    The gradient with respect to a zero ``delta`` is the gradient with respect
    to the layer's activations, on every backend's autodiff. The target
    functions call the whole model (nested ones too), so the layer's own call
    is the only place where its activations belong to the target's graph.

    Keras layers have no forward hooks, so the layer's ``call`` is wrapped on
    the instance for the duration, and unwrapped on exit (Grad-CAM does this
    while its engine is traced; on the PyTorch backend, on every call). The
    wrapper acts in the thread that entered here only: the model called
    meanwhile from another thread, by the user or another engine, runs
    unchanged. One wrap at a time in the process (``_ADDING_LOCK``).
    """
    outputs = []
    call = layer.call
    owner = threading.get_ident()

    def adding(*args, **kwargs):
        output = call(*args, **kwargs)
        if threading.get_ident() != owner:
            return output
        outputs.append(output)
        return output + delta

    with _ADDING_LOCK:
        # Bypass Keras' attribute tracking: this is a temporary instance override.
        object.__setattr__(layer, "call", adding)
        try:
            yield outputs
        finally:
            object.__delattr__(layer, "call")
    if len(outputs) != 1:
        raise TargetError(
            f"Grad-CAM needs layer {layer.name!r} to run once per forward pass; it ran "
            f"{len(outputs)} times."
        )


_ADDING_LOCK = threading.Lock()


def _class_scores(model, class_score):
    """``((function, extra variables), kind)``: the class scores to differentiate.

    The paper's class score, like the saliency literature's, is the score
    before the softmax: a softmax output also moves when *other* classes'
    scores move, so its gradient mixes every class into the map.
    """
    last = model.layers[-1] if getattr(model, "layers", None) else None
    ends_in_softmax = last is not None and _is_softmax(last)
    if class_score == "output" or not ends_in_softmax:
        return ((lambda images: model(images, training=False)), []), score_kind(
            model.name, ends_in_softmax, class_score
        )
    return _scores_before_softmax(model, last), "logit"


def score_kind(name, ends_in_softmax, class_score):
    """What the model's output is as a class score, warning when it mixes classes in."""
    if class_score == "output" and ends_in_softmax:
        warnings.warn(
            f"Model {name!r} ends in a softmax and class_score='output': the maps "
            "are gradients of class probabilities, which mix every other class in. "
            "Use class_score='logit' (the default) for the score before the softmax.",
            UserWarning,
            stacklevel=5,
        )
    return "probability" if ends_in_softmax else "score"


def _is_softmax(layer):
    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _scores_before_softmax(model, last):
    features = keras.Model(_single_input(model), last.input)
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return (lambda images: features(images, training=False)), []
    # A layer with a softmax activation (Dense, as in VGG16): the same layer
    # with a linear activation, on copies of its weights (never modified).
    linear = type(last).from_config({**last.get_config(), "activation": "linear"})
    linear.build(last.input.shape)
    linear.set_weights(last.get_weights())
    return (lambda images: linear(features(images, training=False))), list(linear.variables)


def _class_target(model, scores, class_index, name, variables):
    return class_target(model.name, model.output_shape, scores, class_index, name, variables)


def class_target(model_name, output_shape, scores, class_index, name, variables):
    """The :class:`Target` of class ``class_index`` (None: the predicted class) of ``scores``."""
    if isinstance(output_shape, list) or len(output_shape) != 2:
        raise ValueError(
            "A class target needs a model whose output is (batch, n_classes); "
            f"model {model_name!r} outputs {output_shape}."
        )
    n_classes = output_shape[1]
    if class_index is not None and not 0 <= class_index < n_classes:
        raise ValueError(
            f"Class index {class_index} is out of range for a model with {n_classes} classes."
        )
    if class_index is not None:
        return Target(name, lambda inputs, classes=None: scores(inputs)[:, class_index], variables)

    def predicted_classes(inputs):
        return ops.argmax(scores(inputs), axis=1)

    def score(inputs, classes=None):
        outputs = scores(inputs)
        if classes is None:
            classes = ops.stop_gradient(ops.argmax(outputs, axis=1))
        return ops.take_along_axis(outputs, ops.expand_dims(classes, 1), axis=1)[:, 0]

    return Target(name, score, variables, predicted_classes)


def _mean_activation(model, layer):
    features = layer_output_function(model, layer)

    def mean(inputs, classes=None):
        activations = features(inputs)
        return ops.mean(activations, axis=tuple(range(1, len(activations.shape))))

    return mean


def layer_output_function(model, layer):
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
            inner = layer_output_function(child, layer)
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
