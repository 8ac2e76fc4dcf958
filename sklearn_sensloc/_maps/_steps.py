"""From absolute input gradients to sensitivity maps: aggregate, pool, normalize.

Plain numpy on purpose: these steps are what a parameter search varies, so they
run on gradients computed once, without touching the network again. The same
steps in ``keras.ops``, which the engine compiles with its backward pass for
maps made on its device (``map_device="keras"``), are ``_engine/_map_steps.py``.
"""

import functools

import numpy as np

AGGREGATIONS = ("max", "mean")
NORMALIZATIONS = ("max", "sum", "standard")


def sensitivity_maps(abs_gradients, aggregation="max", pool=1, normalize="max"):
    """Sensitivity maps from absolute gradients of shape (n, H, W, 3).

    Returns float32 maps of shape (n, ceil(H / pool), ceil(W / pool)).
    """
    # numpy reduces a short last axis (3 channels) element by element, far
    # slower than combining the three channel planes; same values, bit for bit.
    channels = [abs_gradients[..., c] for c in range(abs_gradients.shape[-1])]
    if aggregation == "max":
        maps = functools.reduce(np.maximum, channels)
    else:
        maps = functools.reduce(np.add, channels) / np.float32(len(channels))
    return pool_and_normalize(maps, pool, normalize)


def pool_and_normalize(maps, pool, normalize):
    """Average-pool maps of shape (n, H, W) by ``pool``, then normalize each; float32."""
    if pool > 1:
        maps = average_pool(maps, pool)
    return normalize_maps(maps, normalize).astype(np.float32, copy=False)


def pooled_shape(size, pool):
    return tuple(-(-side // pool) for side in size)


#: Largest pool whose block sums :func:`block_sums` adds as strided slices.
SLICED_POOL_MAX = 8


def average_pool(maps, pool):
    """Mean over ``pool x pool`` blocks; the last block of a side may be smaller."""
    rows = np.arange(0, maps.shape[1], pool)
    cols = np.arange(0, maps.shape[2], pool)
    sums = block_sums(block_sums(maps, pool, axis=1), pool, axis=2)
    counts = np.outer(np.diff(np.append(rows, maps.shape[1])), np.diff(np.append(cols, maps.shape[2])))
    return sums / counts


def block_sums(array, pool, axis):
    """Sums of consecutive blocks of ``pool`` along ``axis``: ``np.add.reduceat``'s, bit for bit.

    ``reduceat`` adds to a block's first element the sum of the others, and
    numpy sums fewer than 8 terms in order; for pools up to
    :data:`SLICED_POOL_MAX` the same additions are made here on whole strided
    slices, several times faster than ``reduceat``'s loop per block. Larger
    pools, whose sums numpy pairs differently, go to ``reduceat``.
    """
    if pool > SLICED_POOL_MAX:
        return np.add.reduceat(array, np.arange(0, array.shape[axis], pool), axis=axis)
    moved = np.moveaxis(array, axis, 0)
    sums = moved[::pool].copy()
    if pool > 1:
        rest = moved[1::pool].copy()
        for offset in range(2, pool):
            part = moved[offset::pool]
            rest[: len(part)] += part
        sums[: len(rest)] += rest
    return np.moveaxis(sums, 0, axis)


def normalize_maps(maps, normalize):
    """Per-map scaling. A constant (e.g. all-zero) map stays finite: no NaN."""
    if normalize is None:
        return maps
    flat = maps.reshape(len(maps), -1)
    if normalize == "max":
        scale = flat.max(axis=1)
        shift = np.zeros_like(scale)
    elif normalize == "sum":
        scale = flat.sum(axis=1)
        shift = np.zeros_like(scale)
    else:
        scale = flat.std(axis=1)
        shift = flat.mean(axis=1)
    scale = np.where(scale > 0, scale, 1.0)
    return (maps - shift[:, None, None]) / scale[:, None, None]
