"""The mini-batch solver's matrix products on the Keras backend's default device.

:class:`~sklearn_sensloc.BoxRegressor` imports this module only when asked,
with ``solver="minibatch", device="keras"``: the device comes from the user's
parameter, never from the machine. Only ``keras.ops`` is used, so that every
Keras backend runs it on the device it puts new tensors on.
"""

import numpy as np
from keras import ops

#: Largest set of maps (float32 bytes) copied to the device once per fit;
#: above it each mini-batch is copied in turn.
RESIDENT_BYTES = 2 << 30


def default_device():
    """The Keras backend's name of the device its new tensors go to, such as ``"gpu:0"``."""
    name = str(ops.convert_to_tensor(np.zeros(1, np.float32)).device)
    # TensorFlow names it "/job:localhost/replica:0/task:0/device:GPU:0".
    return name.rsplit("device:", 1)[-1].lower()


def resident_reader(X):
    """``read(rows)`` from a copy of ``X`` on the device, or None when ``X`` is too large for it."""
    if X.size * 4 > RESIDENT_BYTES:
        return None
    # Copied once: copying each mini-batch over instead costs more than its products.
    resident = ops.convert_to_tensor(X, dtype="float32")
    return lambda rows: ops.take(resident, ops.convert_to_tensor(rows), axis=0)


def products(X_batch, weights, offset, y_batch):
    """``X_batch.T @ residual`` and the residual's column sums, on the device, as numpy."""
    X_batch = ops.convert_to_tensor(X_batch, dtype="float32")
    shift = ops.convert_to_tensor((offset - y_batch).astype(np.float32))
    residual = ops.matmul(X_batch, ops.convert_to_tensor(weights)) + shift
    product = ops.transpose(ops.matmul(ops.transpose(residual), X_batch))
    return ops.convert_to_numpy(product), ops.convert_to_numpy(ops.sum(residual, axis=0))
