"""The gradient engine, the only package that knows the Keras backend.

One interface (:class:`GradientEngine`) over one module per backend
(``_tensorflow``, ``_jax``, ``_torch``), chosen by ``keras.backend.backend()``.
Everything above it sees numpy.
"""

from ._backends import SUPPORTED_BACKENDS, accelerators, backend_name, backend_version
from ._base import SAMPLING_METHODS, GradientEngine, image_seeds
from ._networks import model_network
from ._targets import input_size, iter_layers, last_conv_layer

__all__ = [
    "SAMPLING_METHODS",
    "SUPPORTED_BACKENDS",
    "GradientEngine",
    "accelerators",
    "backend_name",
    "backend_version",
    "image_seeds",
    "input_size",
    "iter_layers",
    "last_conv_layer",
    "model_network",
]
