"""From absolute gradients to sensitivity maps with ``keras.ops``, where the gradients are.

The same steps as the package's numpy ones (``_maps/_steps.py``: channel
aggregation, average pooling, per-map normalization), written once for every
Keras backend, so that the engine runs them inside its compiled function, on
its device, and only pooled maps come back to the host. Equal to the numpy
steps to float32 rounding: numpy sums a block in another order and
normalizes pooled maps in float64.
"""

import numpy as np
from keras import ops


def device_maps(gradients, aggregation, pool, normalize):
    """Maps ``(n, ceil(H / pool), ceil(W / pool))`` of absolute gradients ``(n, H, W, 3)``, as tensors."""
    channels = [gradients[..., c] for c in range(3)]
    if aggregation == "max":
        maps = ops.maximum(ops.maximum(channels[0], channels[1]), channels[2])
    else:
        maps = (channels[0] + channels[1] + channels[2]) / np.float32(3)
    if pool > 1:
        maps = _average_pool(maps, pool)
    return _normalized(maps, normalize)


def _average_pool(maps, pool):
    """Mean over ``pool x pool`` blocks; the last block of a side may be smaller."""
    height, width = int(maps.shape[1]), int(maps.shape[2])
    rows, cols = -(-height // pool), -(-width // pool)
    # Zeros pad the short last blocks; dividing by each block's own pixel
    # count keeps their means those of the pixels they hold.
    padded = ops.pad(maps, [[0, 0], [0, rows * pool - height], [0, cols * pool - width]])
    sums = ops.sum(ops.reshape(padded, (-1, rows, pool, cols, pool)), axis=(2, 4))
    counts = np.outer(_block_sides(height, pool), _block_sides(width, pool))
    return sums / ops.convert_to_tensor(counts, "float32")


def _block_sides(side, pool):
    return np.diff(np.append(np.arange(0, side, pool), side))


def _normalized(maps, normalize):
    """Per-map scaling; a constant (e.g. all-zero) map stays finite."""
    if normalize is None:
        return maps
    flat = ops.reshape(maps, (-1, int(maps.shape[1]) * int(maps.shape[2])))
    shift = None
    if normalize == "max":
        scale = ops.max(flat, axis=1)
    elif normalize == "sum":
        scale = ops.sum(flat, axis=1)
    else:
        shift = ops.mean(flat, axis=1)
        scale = ops.std(flat, axis=1)
    scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    if shift is not None:
        maps = maps - ops.reshape(shift, (-1, 1, 1))
    return maps / ops.reshape(scale, (-1, 1, 1))
