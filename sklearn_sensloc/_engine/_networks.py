"""What the engine computes on: a network, whichever framework the model is of."""

from .._classifiers._torch_models import is_torch_module
from ._targets import KerasNetwork


def model_network(model, image_size):
    """The engine's view of ``model``: a :class:`KerasNetwork`, or a ``TorchNetwork`` for a module.

    Both offer the engine one interface (see :class:`KerasNetwork`); the
    PyTorch one is imported only for a module, which exists only once torch is.
    """
    if is_torch_module(model):
        from ._torch_modules import TorchNetwork

        return TorchNetwork(model, image_size)
    return KerasNetwork(model, image_size)
