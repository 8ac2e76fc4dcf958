"""Pixel preprocessing by name, written with ``keras.ops`` for every backend."""

import functools

from keras import ops

from .._models import CAFFE_BGR_MEAN
from .._torch_models import IMAGENET_MEAN, IMAGENET_STD


def preprocessor(preprocessing):
    """The function applying ``preprocessing`` (a name or a callable) to RGB 0..255 tensors."""
    return on_tensor(preprocessing) if callable(preprocessing) else PREPROCESSORS[preprocessing]


def on_tensor(function):
    """``function`` called on a float32 tensor of the running backend.

    Keras' preprocess_input functions divide numpy arrays in place: a tensor
    keeps the caller's batch intact (the timings reuse it).
    """
    return lambda images: function(ops.convert_to_tensor(images, "float32"))


def _caffe(images):
    return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, "float32")


def normalized(images, mean, std):
    """``(images / 255 - mean) / std`` per channel: torchvision's and timm's ``Normalize``."""
    mean = ops.convert_to_tensor(mean, "float32")
    std = ops.convert_to_tensor(std, "float32")
    return (ops.convert_to_tensor(images, "float32") / 255.0 - mean) / std


_torch = functools.partial(normalized, mean=IMAGENET_MEAN, std=IMAGENET_STD)


PREPROCESSORS = {
    "caffe": _caffe,
    "tf": lambda images: images / 127.5 - 1.0,
    "torch": _torch,
    "none": lambda images: images,
}
