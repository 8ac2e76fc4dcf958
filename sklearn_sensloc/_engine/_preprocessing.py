"""Pixel preprocessing by name, written with ``keras.ops`` for every backend."""

from keras import ops

from .._models import CAFFE_BGR_MEAN


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


def _torch(images):
    mean = ops.convert_to_tensor((0.485, 0.456, 0.406), "float32")
    std = ops.convert_to_tensor((0.229, 0.224, 0.225), "float32")
    return (images / 255.0 - mean) / std


PREPROCESSORS = {
    "caffe": _caffe,
    "tf": lambda images: images / 127.5 - 1.0,
    "torch": _torch,
    "none": lambda images: images,
}
