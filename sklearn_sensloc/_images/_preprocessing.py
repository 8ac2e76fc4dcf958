"""Pixel preprocessing: the names, and the code of each, in one list.

Each function takes a float batch of RGB 0..255 pixels (a tensor of the
running Keras backend, NHWC) and returns the network's input, written with
``keras.ops`` for every backend. The gradient engine applies them inside its
compiled functions; the model registry names the one each classifier was
trained with. Keras is imported when a function runs, not here: a backend is
chosen before its first import.
"""

import functools

#: Channel means of the ImageNet training set, in BGR order, used by the
#: original Caffe VGG16 ("caffe" preprocessing in Keras).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

#: ImageNet's channel mean and standard deviation on 0..1 pixels (RGB), as
#: torchvision and timm normalize.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _caffe(images):
    from keras import ops

    return ops.flip(images, axis=-1) - ops.convert_to_tensor(CAFFE_BGR_MEAN, "float32")


def _tf(images):
    return images / 127.5 - 1.0


def normalized(images, mean, std):
    """``(images / 255 - mean) / std`` per channel: torchvision's and timm's ``Normalize``."""
    from keras import ops

    mean = ops.convert_to_tensor(mean, "float32")
    std = ops.convert_to_tensor(std, "float32")
    return (ops.convert_to_tensor(images, "float32") / 255.0 - mean) / std


def _none(images):
    return images


#: Every named preprocessing, by name: keras.applications' modes of
#: ``imagenet_utils.preprocess_input``, and "none".
PREPROCESSORS = {
    "caffe": _caffe,
    "tf": _tf,
    "torch": functools.partial(normalized, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    "none": _none,
}

PREPROCESSINGS = tuple(PREPROCESSORS)


def preprocessor(preprocessing):
    """The function applying ``preprocessing`` (a name or a callable) to RGB 0..255 tensors."""
    return on_tensor(preprocessing) if callable(preprocessing) else PREPROCESSORS[preprocessing]


def on_tensor(function):
    """``function`` called on a float32 tensor of the running backend.

    Keras' preprocess_input functions divide numpy arrays in place: a tensor
    keeps the caller's batch intact (the timings reuse it).
    """

    def applied(images):
        from keras import ops

        return function(ops.convert_to_tensor(images, "float32"))

    return applied
