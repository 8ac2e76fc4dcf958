"""The evaluation's maps: full resolution, every aggregation from one backward pass, stored."""

import math

import numpy as np

from .._images._batches import ImageSource
from .._maps._steps import pool_and_normalize
from .._maps._transformer import SensitivityTransformer, fitted_transformer
from .._utils._identity import array_fingerprint, fingerprint, image_set_key, maps_key

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


class MapComputer:
    """Full-resolution, max-normalised maps of several aggregations from one backward pass.

    Max-normalised full-resolution maps lose nothing the pipeline needs: any
    pooling followed by any of the normalizations gives exactly what
    :class:`SensitivityTransformer` with that ``pool`` and ``normalize``
    returns, because every normalization is invariant to the per-map scale.
    Stored maps are named by the transformer's gradient key, the images' key
    and the aggregation. The transformer's provider computes them into the
    output's :class:`~sklearn_sensloc._utils._array_files.ArrayFiles` as parts of
    whole batches, each named by its own images
    (:meth:`~sklearn_sensloc._maps._provider.GradientProvider.compute_map_files`),
    then joined into one memory-mapped file per aggregation.
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
        return fitted_transformer(self.transformer)

    def key(self, images_key, aggregation):
        """Name of the maps of the images ``images_key`` with ``aggregation``."""
        gradients = self.fit().gradient_key_
        return fingerprint(FORMAT, images_key, maps_key(gradients, aggregation, 1, "max"))

    def maps(self, images, images_key, aggregations, role):
        """``{aggregation: (n, H, W) float32 maps}``, computing only those not stored."""
        keys = {agg: self.key(images_key, agg) for agg in aggregations}
        shape = (len(images), *self.fit().input_size_)
        result = {}
        if self.output.root is not None:
            for agg in aggregations:
                stored = self.output.maps.load(f"maps-{keys[agg]}", shape, mmap_mode="r")
                if stored is not None:
                    result[agg] = stored
                    self.output.reused.append(f"maps-{role}-{agg}")
        missing = [agg for agg in aggregations if agg not in result]
        if missing:
            result.update(self._compute(images, {a: keys[a] for a in missing}, role))
        return result

    def _compute(self, images, keys, role):
        sens = self.fit()
        shape = (len(images), *sens.input_size_)
        settings = {agg: (agg, 1, "max") for agg in keys}
        description = f"maps of {role} images"
        self.output.computed.extend(f"maps-{role}-{agg}" for agg in keys)
        provider = sens.gradient_provider()
        if self.output.root is None:
            ((_, maps),) = provider.map_parts(
                images, [(range(len(images)), list(settings.values()))],
                verbose=sens.verbose, description=description)
            return {agg: maps[settings[agg]].reshape(shape) for agg in keys}
        # Parts of whole batches, keyed by their own images: an interruption, or a
        # file replaced in one part, costs at most that part.
        size = sens.batch_size * max(1, math.ceil(PART / sens.batch_size))
        parts = [range(start, min(start + size, len(images)))
                 for start in range(0, len(images), size)]
        # Each part's images are keyed once, whatever the number of aggregations.
        part_images = [image_set_key(ImageSource(images[rows.start : rows.stop]).keys())
                       for rows in parts]
        names = {agg: [f"maps-{self.key(key, agg)}" for key in part_images] for agg in keys}
        provider.compute_map_files(
            self.output.parts, images,
            [(rows, {settings[agg]: names[agg][i] for agg in keys}) for i, rows in enumerate(parts)],
            verbose=sens.verbose, description=description,
        )
        return {agg: self.output.maps.join(f"maps-{key}", self.output.parts, names[agg], shape)
                for agg, key in keys.items()}


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
