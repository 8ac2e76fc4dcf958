"""What makes two maps the same: the one notion of identity every cache and store uses.

Raw gradients depend on the image and on everything the transformer does
before and during the backward pass: the model (architecture and weights, or
file, or registered name and weights file), the target, the preprocessing,
the input size and the saliency method with the parameters it reads. That is
the *gradient key* (:func:`gradient_key`, held by a fitted transformer as
``gradient_key_``). With an image's key (``ImageSource.key``) it names one
image's gradients in the in-memory cache and on disk; with an image set's key
(:func:`image_set_key`) and the map-side parameters (:func:`maps_key`) it
names the maps that :class:`~sklearn_sensloc.MapStore`, the evaluation's
stored maps and the Dask graph hold.
"""

import hashlib
import os

import numpy as np


def fingerprint(*parts):
    """Hex digest of byte strings and values, for cache keys."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part if isinstance(part, (bytes, memoryview)) else repr(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def file_fingerprint(path):
    """Key of a file that changes when it does, without reading it: path, size, date.

    Raises FileNotFoundError when the file does not exist.
    """
    stat = os.stat(path)
    return fingerprint("file", os.path.abspath(path), stat.st_size, stat.st_mtime_ns)


def array_fingerprint(array):
    """Key of an array's content: dtype, shape and bytes."""
    return fingerprint("array", array.dtype.str, array.shape, np.ascontiguousarray(array).data)


def gradient_key(model_key, target, preprocessing_key, input_size, method_key, target_name):
    """The identity of raw gradients: what the backward pass of one image depends on.

    Parameters
    ----------
    model_key : str
        ``model_fingerprint`` of the model.
    target : int or str
        The ``target=`` parameter.
    preprocessing_key : str
        ``preprocessing_key`` of the resolved preprocessing.
    input_size : tuple of int
        (height, width) the images are resized to.
    method_key : tuple
        The saliency method and the parameters its attributions read; empty
        for ``"gradient"``, which keeps the keys of stores made before other
        methods existed.
    target_name : str
        What the gradient is taken of; says logit or probability for class
        targets.
    """
    return fingerprint(model_key, target, preprocessing_key, tuple(input_size), *method_key,
                       target_name)


def image_set_key(image_keys):
    """The identity of an ordered set of images, from their keys."""
    return fingerprint("images", *image_keys)


def maps_key(gradients, aggregation, pool, normalize):
    """The identity of maps made from the gradients ``gradients`` (a gradient key)."""
    return fingerprint("maps", gradients, aggregation, int(pool), normalize)
