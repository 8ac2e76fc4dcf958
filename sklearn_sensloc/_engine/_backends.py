"""Which engine module serves the running Keras backend."""

import importlib

import keras

#: The Keras backends an engine exists for; TensorFlow is Keras' default.
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")


def backend_name():
    """The running Keras backend, refused clearly when no engine exists for it."""
    name = keras.backend.backend()
    if name not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"The Keras backend is {name!r}, which cannot differentiate a model with respect "
            f"to its input here; sklearn-sensloc supports {', '.join(SUPPORTED_BACKENDS)}. "
            "Set the environment variable KERAS_BACKEND to one of them before keras is first "
            "imported."
        )
    return name


def backend_module():
    """The module computing gradients, noise and devices on the running backend."""
    return importlib.import_module(f"._{backend_name()}", __package__)


def accelerators():
    """Names of the GPUs or TPUs the running Keras backend computes on; empty on a CPU."""
    return backend_module().accelerators()


def backend_version():
    """``"name version"`` of the running backend's framework, for the record of a timing."""
    name = backend_name()
    return f"{name} {importlib.import_module(name).__version__}"
