"""An offline sample of real object crops pasted onto real background crops.

Every source photograph ships inside scikit-learn or scikit-image, so the
sample needs no download and the same ``random_state`` gives the same scenes
on every machine that has the same library versions.
"""

import functools
import os

import numpy as np
from PIL import Image
from sklearn.utils import Bunch, check_random_state

from .._utils._validation import check_image_size, check_positive_int

# Object crops ``(label, source, (left, top, right, bottom), shape)`` in source
# pixels. ``shape`` is the exponent of the superellipse that masks the crop:
# 2 is an ellipse, for round objects; larger values approach the rectangle,
# for tall objects an ellipse would cut off at the ends.
OBJECTS = (
    # The tabby cat's face, whiskers and ears.
    ("cat", "chelsea", (40, 0, 420, 300), 2.0),
    # Espresso cup on its saucer, with the spoon.
    ("coffee_cup", "coffee", (70, 8, 492, 392), 2.0),
    # The astronaut's head and shoulders in the orange suit.
    ("astronaut", "astronaut", (60, 5, 370, 400), 3.0),
    # White space-shuttle model standing behind the astronaut.
    ("space_shuttle", "astronaut", (348, 0, 478, 280), 4.0),
    # Launch vehicle on its pad at dusk, nose to base.
    ("rocket", "rocket", (285, 118, 357, 412), 6.0),
    # The orange dahlia bloom.
    ("dahlia", "flower", (158, 76, 454, 370), 2.0),
    # The Summer Palace pagoda (Tower of Buddhist Incense).
    ("pagoda", "china", (58, 22, 362, 392), 4.0),
    # The largest coin, bottom right of the coin collection.
    ("coin", "coins", (308, 148, 382, 228), 2.0),
    # The cameraman's head, hands and camera.
    ("cameraman", "camera", (140, 58, 340, 262), 3.0),
)

# Background regions ``(name, source, (left, top, right, bottom))`` chosen to
# hold no salient object, so the pasted object is the only one in a scene.
# ``None`` uses the whole photograph.
BACKGROUNDS = (
    ("grass", "grass", None),
    ("gravel", "gravel", None),
    ("brick", "brick", None),
    ("moon_surface", "moon", None),
    ("hubble_deep_field", "hubble_deep_field", None),
    ("summer_palace_sky", "china", (335, 0, 560, 185)),
    ("summer_palace_trees", "china", (380, 300, 640, 427)),
    ("dahlia_bokeh_left", "flower", (0, 0, 160, 427)),
    ("dahlia_bokeh_right", "flower", (460, 0, 640, 360)),
    ("coffee_table_wood", "coffee", (490, 0, 600, 400)),
    ("dusk_sky", "rocket", (95, 0, 545, 110)),
)

# Objects are never smaller than this many pixels, so that a tiny
# ``object_scale`` still yields a visible object and a non-degenerate box.
_MIN_OBJECT_PIXELS = 8
# Width of the soft edge of the mask, as a fraction of the mask's radius.
_FEATHER = 0.15
# Alpha below this is dropped: such faint pixels round to the background, and
# keeping them would stretch the box beyond what anyone sees of the object.
_MIN_ALPHA = 0.05
# Aspect jitter: the object's width/height ratio is multiplied by a factor
# drawn log-uniformly in [1 / _ASPECT_JITTER, _ASPECT_JITTER].
_ASPECT_JITTER = 1.25
# Background brightness factor range.
_BRIGHTNESS = (0.85, 1.15)

DESCR = """\
Embedded sample scenes (sklearn_sensloc.datasets.make_sample_scenes)
---------------------------------------------------------------------

Synthetic composites built from real photographs that ship with scikit-learn
(china.jpg, flower.jpg) and scikit-image (astronaut, chelsea, coffee, rocket,
camera, coins, grass, gravel, brick, moon, hubble_deep_field). Each scene is
one hand-picked crop of a real object ({n_objects} kinds: {objects}),
resized, flipped and pasted with a feathered superellipse mask at a random
position onto a random crop of one of {n_backgrounds} real background regions.

``boxes`` is the exact bounding box of the pasted pixels that differ from
the background: every pixel outside it is the untouched background, and each
of its four edges touches a pixel of the object. Boxes are (xmin, ymin, xmax, ymax) fractions
of the image side, with pixel edges as coordinates (pixel column ``i`` spans
``[i, i + 1) / image_size``).

Purpose: a data set that works offline anywhere, to run the pipeline end to
end, test it and demonstrate it. It is NOT a benchmark. The objects are few,
come from a handful of photographs, and often stand out from their background
by colour or texture alone; the pasted crop carries some of its own
surroundings. CorLoc measured on it is not comparable with CorLoc on PASCAL
VOC or ImageNet, and says little about performance on natural images.
"""


def make_sample_scenes(
    n_images=200,
    *,
    image_size=224,
    object_scale=(0.25, 0.6),
    random_state=None,
    return_paths_dir=None,
):
    """Generate scenes of one real object pasted onto a real background.

    Works offline: the photographs come with scikit-learn and scikit-image.
    The object crops and background regions are listed in the module
    constants ``OBJECTS`` and ``BACKGROUNDS``. See ``DESCR`` of the result
    for what the data set is and is not.

    Parameters
    ----------
    n_images : int, default=200
        Number of scenes.
    image_size : int or (int, int), default=224
        Size of the images in pixels, as everywhere in the package: an int
        is the side of a square, a pair ``(height, width)`` (the scenes are
        square: equal sides); at least 32.
    object_scale : tuple of two floats (low, high), default=(0.25, 0.6)
        The longer side of each object is drawn uniformly in
        ``[low, high] * image_size`` (before an aspect jitter of up to 25%,
        and never below 8 pixels). Requires ``0 < low <= high <= 1``.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible scenes.
    return_paths_dir : str or path-like, default=None
        If given, the images are also written there as PNG files
        ``scene_0000.png``, ... (the directory is created if needed) and
        their paths are returned in ``paths``.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : ndarray of shape (n_images, image_size, image_size, 3), uint8
            The scenes.
        boxes : ndarray of shape (n_images, 4), float64
            Exact ``(xmin, ymin, xmax, ymax)`` box of the pixels each pasted
            object changed, as fractions of the image side, pixel edges as
            coordinates. It can be a pixel or two smaller than the pasted
            crop, whose feathered edge fades out.
        labels : list of str
            Which object crop each scene holds.
        backgrounds : list of str
            Which background region each scene uses.
        paths : list of str
            Only with ``return_paths_dir``: the PNG file of each scene.
        DESCR : str
            Description of the data set.

    Examples
    --------
    >>> from sklearn_sensloc.datasets import make_sample_scenes
    >>> data = make_sample_scenes(4, image_size=64, random_state=0)
    >>> data.images.shape, data.images.dtype
    ((4, 64, 64, 3), dtype('uint8'))
    >>> data.boxes.shape
    (4, 4)
    >>> bool(((data.boxes >= 0) & (data.boxes <= 1)).all())
    True
    >>> len(data.labels), len(data.backgrounds)
    (4, 4)
    """
    n_images, image_size, object_scale = _check_params(
        n_images, image_size, object_scale
    )
    rng = check_random_state(random_state)
    images = np.empty((n_images, image_size, image_size, 3), dtype=np.uint8)
    boxes = np.empty((n_images, 4), dtype=np.float64)
    labels, backgrounds = [], []
    for i in range(n_images):
        scene = _render_scene(rng, image_size, object_scale)
        images[i] = scene.image
        boxes[i] = scene.box
        labels.append(scene.label)
        backgrounds.append(scene.background_name)
    data = Bunch(
        images=images,
        boxes=boxes,
        labels=labels,
        backgrounds=backgrounds,
        DESCR=DESCR.format(
            n_objects=len(OBJECTS),
            objects=", ".join(label for label, *_ in OBJECTS),
            n_backgrounds=len(BACKGROUNDS),
        ),
    )
    if return_paths_dir is not None:
        data.paths = _write_pngs(images, return_paths_dir)
    return data


def _check_params(n_images, image_size, object_scale):
    n_images = check_positive_int(n_images, "n_images")
    height, width = check_image_size(image_size, minimum=32)
    if height != width:
        raise ValueError(f"The embedded scenes are square: image_size must be one side, or a "
                         f"pair of equal sides; got {image_size!r}.")
    try:
        low, high = (float(value) for value in object_scale)
    except (TypeError, ValueError):
        raise ValueError(
            "object_scale must be a pair of numbers (low, high); "
            f"got {object_scale!r}."
        ) from None
    if not 0 < low <= high <= 1:
        raise ValueError(
            "object_scale = (low, high) must satisfy 0 < low <= high <= 1; "
            f"got {object_scale!r}."
        )
    return n_images, height, (low, high)


def _render_scene(rng, image_size, object_scale):
    """Draw one scene; also return its pure background and the object's alpha.

    Returning the background and alpha lets tests check that the box is exact.
    """
    objects, backgrounds = _load_sources()
    object_index = rng.randint(len(objects))
    background_index = rng.randint(len(backgrounds))

    background = _random_background(
        backgrounds[background_index], rng, image_size
    )
    crop = objects[object_index]
    width, height = _object_size(crop.size, rng, image_size, object_scale)
    patch = crop.resize((width, height), Image.BILINEAR)
    if rng.rand() < 0.5:
        patch = patch.transpose(Image.FLIP_LEFT_RIGHT)
    left = rng.randint(image_size - width + 1)
    top = rng.randint(image_size - height + 1)

    alpha = np.zeros((image_size, image_size), dtype=np.float64)
    alpha[top:top + height, left:left + width] = _superellipse_alpha(
        width, height, OBJECTS[object_index][3]
    )
    foreground = np.zeros((image_size, image_size, 3), dtype=np.float64)
    foreground[top:top + height, left:left + width] = np.asarray(patch)
    image = background + alpha[..., None] * (foreground - background)
    image = np.rint(image).astype(np.uint8)

    # The box encloses what can be seen of the object: a masked pixel whose
    # blend rounds back to the background's value carries no trace of it.
    # Only an object identical to its background would show nothing at all.
    visible = (image != background).any(axis=2)
    if not visible.any():
        visible = alpha > 0
    columns = np.flatnonzero(visible.any(axis=0))
    rows = np.flatnonzero(visible.any(axis=1))
    box = np.array(
        [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1], dtype=np.float64
    ) / image_size
    return Bunch(
        image=image,
        background=background.astype(np.uint8),
        alpha=alpha,
        box=box,
        label=OBJECTS[object_index][0],
        background_name=BACKGROUNDS[background_index][0],
    )


def _random_background(region, rng, image_size):
    """A random square crop of ``region``, resized, flipped and re-lit.

    Returned as float64 holding whole numbers in 0..255, so that compositing
    with alpha 0 reproduces it bit for bit.
    """
    side = int(round(min(region.size) * rng.uniform(0.6, 1.0)))
    left = rng.randint(region.size[0] - side + 1)
    top = rng.randint(region.size[1] - side + 1)
    crop = region.crop((left, top, left + side, top + side))
    crop = crop.resize((image_size, image_size), Image.BILINEAR)
    if rng.rand() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = np.asarray(crop, dtype=np.float64) * rng.uniform(*_BRIGHTNESS)
    return np.rint(np.clip(pixels, 0, 255))


def _object_size(crop_size, rng, image_size, object_scale):
    longer = rng.uniform(*object_scale) * image_size
    aspect = crop_size[0] / crop_size[1] * np.exp(
        rng.uniform(-1, 1) * np.log(_ASPECT_JITTER)
    )
    if aspect >= 1:
        width, height = longer, longer / aspect
    else:
        width, height = longer * aspect, longer
    return tuple(
        int(np.clip(round(side), _MIN_OBJECT_PIXELS, image_size))
        for side in (width, height)
    )


def _superellipse_alpha(width, height, exponent):
    """Alpha in [0, 1]: 1 inside, a smooth ramp to exactly 0 at the boundary.

    The boundary is the superellipse inscribed in the ``width x height``
    rectangle, so the alpha is zero at the rectangle's corners and, for
    round objects, hides most of the crop's own surroundings.
    """
    u = np.abs((np.arange(width) + 0.5) / width * 2 - 1)
    v = np.abs((np.arange(height) + 0.5) / height * 2 - 1)
    radius = (u[None, :] ** exponent + v[:, None] ** exponent) ** (1 / exponent)
    ramp = np.clip((1 - radius) / _FEATHER, 0, 1)
    alpha = ramp * ramp * (3 - 2 * ramp)
    alpha[alpha < _MIN_ALPHA] = 0
    return alpha


@functools.lru_cache(maxsize=1)
def _load_sources():
    """Decode the photographs once per process; crop objects and backgrounds.

    scikit-image is imported here, not at module import, so that importing
    the package stays light for users who never ask for the sample.
    """
    from skimage import data as skdata
    from sklearn.datasets import load_sample_images

    photos = {}
    sample = load_sample_images()
    for filename, array in zip(sample.filenames, sample.images):
        photos[os.path.splitext(os.path.basename(filename))[0]] = array
    names = {source for _, source, *_ in OBJECTS + BACKGROUNDS}
    for name in sorted(names - photos.keys()):
        photos[name] = getattr(skdata, name)()
    photos = {name: _to_rgb_image(array) for name, array in photos.items()}
    objects = tuple(
        photos[source].crop(rect) for _, source, rect, _ in OBJECTS
    )
    backgrounds = tuple(
        photos[source] if rect is None else photos[source].crop(rect)
        for _, source, rect in BACKGROUNDS
    )
    return objects, backgrounds


def _to_rgb_image(array):
    array = np.asarray(array, dtype=np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return Image.fromarray(array[..., :3])


def _write_pngs(images, directory):
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = os.path.join(os.fspath(directory), f"scene_{i:04d}.png")
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths
