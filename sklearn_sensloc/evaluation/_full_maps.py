"""The evaluation's maps: full resolution, every aggregation from one backward pass, stored."""

import math

import numpy as np

from .._identity import array_fingerprint, fingerprint, image_set_key, maps_key
from .._images import ImageSource
from .._maps import pool_and_normalize, sensitivity_maps
from .._progress import progress
from .._transformer import SensitivityTransformer

# Bump when the meaning of a stored file changes, so old ones are not reused
# (2: class targets of softmax models became the score before the softmax).
FORMAT = 2
#: Maps handled at once when pooling or smoothing, to bound memory.
CHUNK = 256
#: Images per stored part of a map computation (rounded up to whole batches).
PART = 256


def digest(*parts):
    """Key of values and arrays (an array counts by dtype, shape and bytes)."""
    return fingerprint(*(
        array_fingerprint(p) if isinstance(p, np.ndarray) else p for p in parts
    ))


def image_keys(images):
    """Key of each image: file name, size and date for a path, bytes for an array."""
    return ImageSource(images).keys()


class MapComputer:
    """Full-resolution, max-normalised maps of several aggregations from one backward pass.

    Max-normalised full-resolution maps lose nothing the pipeline needs: any
    pooling followed by any of the normalizations gives exactly what
    :class:`SensitivityTransformer` with that ``pool`` and ``normalize``
    returns, because every normalization is invariant to the per-map scale.
    Stored maps are named by the transformer's gradient key, the images' key
    and the aggregation.
    """

    def __init__(self, output, model, weights, target, preprocessing, image_size, batch_size,
                 verbose):
        self.output = output
        self.transformer = SensitivityTransformer(
            model=model, weights=weights, target=target, pool=1, normalize="max",
            preprocessing=preprocessing, image_size=image_size, batch_size=batch_size,
            verbose=verbose,
            # These maps are stored whole; raw gradients would only churn the LRU.
            cache=False,
        )

    def fit(self):
        """The fitted transformer (the model loaded once)."""
        if not hasattr(self.transformer, "input_size_"):
            self.transformer.fit(None)
        return self.transformer

    def key(self, images_key, aggregation):
        """Name of the maps of the images ``images_key`` with ``aggregation``."""
        gradients = self.fit().gradient_key_
        return fingerprint(FORMAT, images_key, maps_key(gradients, aggregation, 1, "max"))

    def maps(self, images, images_key, aggregations, role):
        """``{aggregation: (n, H, W) float32 maps}``, computing only those not stored."""
        keys = {agg: self.key(images_key, agg) for agg in aggregations}
        shape = (len(images), *self.fit().input_size_)
        result = {agg: self.output.load_maps(keys[agg], shape) for agg in aggregations}
        for agg in aggregations:
            if result[agg] is not None:
                self.output.reused.append(f"maps-{role}-{agg}")
        missing = [agg for agg in aggregations if result[agg] is None]
        if missing:
            result.update(self._compute(images, {a: keys[a] for a in missing}, role))
        return result

    def _compute(self, images, keys, role):
        sens = self.fit()
        shape = (len(images), *sens.input_size_)
        if self.output.root is None:
            arrays = {agg: np.empty(shape, dtype=np.float32) for agg in keys}
            for start, blocks in self._blocks(images, list(keys), [0], len(images), role):
                for agg, block in blocks.items():
                    arrays[agg][start : start + len(block)] = block
            self.output.computed.extend(f"maps-{role}-{agg}" for agg in keys)
            return arrays
        # Parts of whole batches, keyed by their own images: an interruption, or a
        # file replaced in one part, costs at most that part.
        part = sens.batch_size * max(1, math.ceil(PART / sens.batch_size))
        starts = range(0, len(images), part)
        # Each part's images are keyed once, whatever the number of aggregations.
        part_images = {start: image_set_key(image_keys(images[start : start + part]))
                       for start in starts}
        part_keys = {agg: {start: self.key(part_images[start], agg) for start in starts}
                     for agg in keys}
        todo = [
            start for start in starts
            if not all(self.output.has_part(part_keys[agg][start],
                                            (len(images[start : start + part]), *shape[1:]))
                       for agg in keys)
        ]
        for start, blocks in self._blocks(images, list(keys), todo, part, role):
            for agg, block in blocks.items():
                self.output.save_part(part_keys[agg][start], block)
        done = {}
        for agg, key in keys.items():
            done[agg] = self.output.assemble_maps(key, part_keys[agg], shape)
            self.output.computed.append(f"maps-{role}-{agg}")
        return done

    def _blocks(self, images, aggregations, starts, part, role):
        """Yield ``(start, {aggregation: maps})`` for the parts beginning at ``starts``."""
        sens = self.transformer
        n_todo = sum(len(images[start : start + part]) for start in starts)

        def batches():
            for start in starts:
                for offset, gradients in sens.iter_gradients(images[start : start + part]):
                    yield start + offset, gradients

        def joined(pending):
            return {agg: np.concatenate(blocks) for agg, blocks in pending.items()}

        bar = progress(batches(), n_todo, sens.batch_size, sens.verbose, f"maps of {role} images")
        pending, filled = {}, 0
        for start, gradients in bar:
            # One backward pass serves every aggregation.
            for agg in aggregations:
                pending.setdefault(agg, []).append(sensitivity_maps(gradients, agg, 1, "max"))
            filled += len(gradients)
            part_start = start // part * part
            if filled == min(part, len(images) - part_start):
                # Yielded as soon as it is complete, before the next image is read.
                yield part_start, joined(pending)
                pending, filled = {}, 0


def pooled_features(full_maps, pool, normalize="max"):
    """Flattened maps as :class:`SensitivityTransformer` returns them for ``pool``.

    Parameters
    ----------
    full_maps : ndarray of shape (n, H, W)
        Full-resolution maps (``pool=1``), any per-map scale.
    pool : int
        Side of the averaged blocks.
    normalize : {"max", "sum", "standard"} or None, default="max"

    Returns
    -------
    features : ndarray of shape (n, ceil(H / pool) * ceil(W / pool)), float32
    """
    blocks = []
    for start in range(0, len(full_maps), CHUNK):
        chunk = np.asarray(full_maps[start : start + CHUNK], dtype=np.float32)
        chunk = pool_and_normalize(chunk, pool, normalize)
        blocks.append(chunk.reshape(len(chunk), -1))
    return np.concatenate(blocks)
