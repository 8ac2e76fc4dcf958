"""Images in, float32 batches of the model's input size out.

``X`` is an array ``(n, H, W, 3)``, a list of arrays of any sizes, or a list of
file paths. Paths are decoded batch by batch so memory stays bounded by one
batch of decoded images, whatever the number of files.
"""

import contextlib
import os
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import sparse

from .._utils._identity import array_fingerprint, file_fingerprint

#: Images larger than this are fingerprinted every time, not kept in a key memo.
ARRAY_KEYS_MAX_IMAGE_BYTES = 1 << 22


class ImageSource:
    """Validated, indexable view of ``X``: resized float32 images and their keys.

    Parameters
    ----------
    X : array of shape (n, H, W, 3), list of arrays or list of paths
    key_memo : object with ``get`` and ``put``, or None
        Where the keys of image arrays are kept, found again by the image's
        bytes (a cache's ``image_keys``); None fingerprints every array.
    """

    def __init__(self, X, key_memo=None):
        self.key_memo = key_memo
        if isinstance(X, (str, os.PathLike)) and os.path.isdir(X):
            raise ValueError(f"X is the folder {os.fspath(X)!r}: {_folder_hint(X)}")
        if isinstance(X, (str, os.PathLike)):
            raise ValueError(
                "X must be a collection of images or of image paths; got a single "
                f"path {os.fspath(X)!r}. Wrap it in a list."
            )
        if sparse.issparse(X):
            raise TypeError(
                f"X is a sparse {type(X).__name__}: sparse input is not supported. "
                "Give images as an array (n_images, height, width, 3) or a list of paths."
            )
        if is_image_array(X):
            self._items = _check_image_array(X)
        else:
            self._items = _check_image_list(X)
        if len(self._items) == 0:
            raise ValueError("X contains no images.")

    def __len__(self):
        return len(self._items)

    def key(self, index):
        """A fingerprint of image ``index`` that changes when its content does.

        Files are identified by path, size and modification time, so a cache
        lookup never decodes them; arrays by their bytes.
        """
        item = self._items[index]
        if isinstance(item, str):
            try:
                return file_fingerprint(item)
            except FileNotFoundError:
                raise FileNotFoundError(f"Image file not found: {item!r}.") from None
        if self.key_memo is None or item.nbytes > ARRAY_KEYS_MAX_IMAGE_BYTES:
            return array_fingerprint(item)
        content = (item.dtype.str, item.shape, item.tobytes())
        key = self.key_memo.get(content)
        if key is None:
            key = array_fingerprint(item)
            self.key_memo.put(content, key, size=item.nbytes)
        return key

    def keys(self):
        """The key of every image, in order (see :meth:`key`)."""
        return [self.key(i) for i in range(len(self))]

    def path(self, index):
        """The file path of image ``index``, or None when it was given as an array."""
        item = self._items[index]
        return item if isinstance(item, str) else None

    def is_uint8(self, index):
        """Whether image ``index`` has uint8 pixels: a file (decoded to 8 bits) or a uint8 array."""
        item = self._items[index]
        return isinstance(item, str) or item.dtype == np.uint8

    def image(self, index, size, dtype=np.float32):
        """Image ``index`` as (height, width, 3) pixels in 0..255 of ``dtype``.

        ``dtype`` may be uint8 where :meth:`is_uint8` says so: the pixels are
        then exactly those of the float32 image.
        """
        item = self._items[index]
        if isinstance(item, str):
            return load_image(item, size, dtype)
        return _resize_array(item, size, dtype)


def load_image(path, size, dtype=np.float32):
    """Decode an image file to RGB pixels of ``size = (height, width)`` and ``dtype``, float32 by default.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit files are
    converted; unreadable, truncated, empty and decompression-bomb files are
    refused with an error naming the file.
    """
    with opened_image(path) as image:
        # JPEG decodes straight at a reduced scale no smaller than needed.
        image.draft("RGB", (size[1], size[0]))
        return _resized(to_rgb(image), size, dtype)


def read_image_size(path):
    """``(width, height)`` of an image file, from its header: nothing is decoded.

    Refuses what :func:`load_image` refuses at this stage: a missing file, or
    one that is not an image (empty, text, unknown format).
    """
    with opened_image(path) as image:
        return image.size


@contextlib.contextmanager
def opened_image(path):
    """The Pillow image of ``path``; any failure to read it is an error naming the file."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its two size limits; a file that large
            # is refused here, not decoded into gigabytes.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path!r}.") from None
    except IsADirectoryError:
        raise ValueError(f"{path!r} is a folder, not an image file: {_folder_hint(path)}") from None
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as error:
        raise ValueError(f"Cannot read image file {path!r}: {error}") from error


def _folder_hint(path):
    return f"pass its image files instead, e.g. sklearn_sensloc.find_images({os.fspath(path)!r})."


def to_rgb(image):
    """A Pillow image as RGB: 16-bit scaled to 8, transparency composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float32)
        # 16-bit images would be clipped at 255 by Pillow's convert.
        if image.mode.startswith("I;16") or pixels.max(initial=0) > 255:
            pixels = pixels / 257.0
        gray = np.clip(pixels, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def is_image_array(X):
    """Whether ``X`` is one array of images (of numbers), not a list of paths or of images.

    An array of strings or objects holds paths or images of several sizes:
    :class:`ImageSource` reads it as a list.
    """
    return isinstance(X, np.ndarray) and X.dtype.kind not in "OUS"


def check_image_array_shape(shape, name="X"):
    """Raise a ValueError naming ``name`` unless ``shape`` is ``(n_images, height, width, 3)``."""
    if len(shape) != 4 or shape[-1] != 3:
        hint = f" For a single image use {name}[None]." if len(shape) == 3 else ""
        raise ValueError(
            f"{name} must be an array of RGB images of shape (n_images, height, width, 3); "
            f"got shape {tuple(shape)}.{hint}"
        )


def _check_image_array(X):
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: X must hold pixel values; got {X.dtype}.")
    check_image_array_shape(X.shape)
    if X.dtype.kind not in "uif":
        raise ValueError(f"X must hold numbers; got dtype {X.dtype}.")
    if X.dtype != np.uint8 and X.size:
        _check_pixel_values(X.reshape(len(X), -1))
    return X


def _check_image_list(X):
    try:
        items = list(X)
    except TypeError:
        raise ValueError(
            f"X must be an array of images or a list of image paths; got {type(X).__name__}."
        ) from None
    checked = []
    for index, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            if os.path.isdir(item):
                raise ValueError(
                    f"Image {index} of X, {os.fspath(item)!r}, is a folder: {_folder_hint(item)}"
                )
            checked.append(os.fspath(item))
            continue
        image = np.asarray(item)
        if image.ndim != 3 or image.shape[-1] != 3 or image.dtype.kind not in "uif":
            raise ValueError(
                f"Image {index} of X must be a path or an RGB array (height, width, 3); "
                f"got {type(item).__name__} with shape {image.shape}."
            )
        if image.size == 0:
            raise ValueError(f"Image {index} of X is empty: shape {image.shape}.")
        if image.dtype != np.uint8:
            _check_pixel_values(image.reshape(1, -1), offset=index)
        checked.append(image)
    return checked


def _check_pixel_values(flat, offset=0):
    # Two passes over the pixels: a NaN propagates through min and max, and
    # an inf is one of them.
    lowest, highest = flat.min(axis=1), flat.max(axis=1)
    finite = np.isfinite(lowest) & np.isfinite(highest)
    if not finite.all():
        index = offset + int(np.flatnonzero(~finite)[0])
        raise ValueError(f"Image {index} of X contains NaN or inf pixels.")
    out_of_range = (lowest < 0) | (highest > 255)
    if out_of_range.any():
        first = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(
            f"Image {offset + first} of X has pixel values outside 0..255 "
            f"(min {lowest[first]:g}, max {highest[first]:g})."
        )
    if flat.size and offset == 0 and len(flat) > 1 and highest.max() <= 1.0:
        warnings.warn(
            "Every pixel of X is in [0, 1]: images are expected in 0..255. "
            "Multiply by 255 if they were scaled.",
            UserWarning,
            stacklevel=4,
        )


def _resize_array(image, size, dtype=np.float32):
    if image.shape[:2] == tuple(size):
        return image.astype(dtype, copy=False)
    if image.dtype == np.uint8:
        # The same resampling as for files, so an array and its saved file agree.
        return _resized(Image.fromarray(image), size, dtype)
    channels = [_resized(Image.fromarray(image[..., c].astype(np.float32)), size) for c in range(3)]
    return np.stack(channels, axis=-1)


def _resized(image, size, dtype=np.float32):
    if image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(image, dtype=dtype)
