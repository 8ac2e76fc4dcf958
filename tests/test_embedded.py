import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sklearn_sensloc.datasets import make_sample_scenes
from sklearn_sensloc.datasets._embedded import (
    BACKGROUNDS,
    OBJECTS,
    _render_scene,
)


@pytest.fixture(scope="module")
def scenes():
    return make_sample_scenes(50, image_size=96, random_state=0)


def test_shapes_and_dtypes(scenes):
    assert scenes.images.shape == (50, 96, 96, 3)
    assert scenes.images.dtype == np.uint8
    assert scenes.boxes.shape == (50, 4)
    assert scenes.boxes.dtype == np.float64
    assert len(scenes.labels) == len(scenes.backgrounds) == 50
    assert all(isinstance(name, str) for name in scenes.labels + scenes.backgrounds)
    assert "paths" not in scenes


def test_defaults_give_224_pixel_images():
    data = make_sample_scenes(2, random_state=0)
    assert data.images.shape == (2, 224, 224, 3)


def test_boxes_are_valid_and_sized_by_object_scale(scenes):
    boxes = scenes.boxes
    assert ((boxes >= 0) & (boxes <= 1)).all()
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    assert (widths > 0).all() and (heights > 0).all()
    # The longer side is drawn in object_scale, then jittered by up to 25%.
    longer = np.maximum(widths, heights)
    assert (longer >= 0.25 / 1.25 - 2 / 96).all()
    assert (longer <= 0.6 * 1.25 + 1 / 96).all()


def test_box_is_exact_extent_of_pasted_pixels():
    rng = np.random.RandomState(3)
    size = 80
    for _ in range(30):
        scene = _render_scene(rng, size, (0.1, 0.9))
        xmin, ymin, xmax, ymax = np.rint(scene.box * size).astype(int)
        assert np.allclose(scene.box * size, [xmin, ymin, xmax, ymax])
        inside = np.zeros((size, size), dtype=bool)
        inside[ymin:ymax, xmin:xmax] = True
        # Outside the box: the untouched background, bit for bit.
        assert np.array_equal(scene.image[~inside], scene.background[~inside])
        # Every edge of the box touches a pixel the object changed...
        changed = (scene.image != scene.background).any(axis=2)
        assert np.array_equal(_bbox(changed), [xmin, ymin, xmax, ymax])
        # ... and the box lies within the pasted mask.
        mask_box = _bbox(scene.alpha > 0)
        assert mask_box[0] <= xmin and mask_box[1] <= ymin
        assert xmax <= mask_box[2] and ymax <= mask_box[3]


def _bbox(mask):
    columns = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return [columns[0], rows[0], columns[-1] + 1, rows[-1] + 1]


def test_same_random_state_gives_same_scenes(scenes):
    again = make_sample_scenes(50, image_size=96, random_state=0)
    assert np.array_equal(again.images, scenes.images)
    assert np.array_equal(again.boxes, scenes.boxes)
    assert again.labels == scenes.labels
    assert again.backgrounds == scenes.backgrounds
    other = make_sample_scenes(50, image_size=96, random_state=1)
    assert not np.array_equal(other.boxes, scenes.boxes)


def test_random_state_instance_is_accepted():
    a = make_sample_scenes(3, image_size=32, random_state=np.random.RandomState(5))
    b = make_sample_scenes(3, image_size=32, random_state=5)
    assert np.array_equal(a.images, b.images)


def test_variety(scenes):
    assert len(set(scenes.labels)) >= 5
    assert len(set(scenes.backgrounds)) >= 5
    assert set(scenes.labels) <= {label for label, *_ in OBJECTS}
    assert set(scenes.backgrounds) <= {name for name, *_ in BACKGROUNDS}
    centers = (scenes.boxes[:, :2] + scenes.boxes[:, 2:]) / 2
    assert (centers.std(axis=0) > 0.1).all()
    for axis in (0, 1):
        assert (centers[:, axis] < 0.4).any() and (centers[:, axis] > 0.6).any()
    # Not a near-duplicate: the images differ substantially from each other.
    flat = scenes.images.reshape(50, -1).astype(float)
    assert np.abs(flat[1:] - flat[:-1]).mean(axis=1).min() > 5


def test_every_object_and_background_renders():
    data = make_sample_scenes(300, image_size=32, random_state=0)
    assert set(data.labels) == {label for label, *_ in OBJECTS}
    assert set(data.backgrounds) == {name for name, *_ in BACKGROUNDS}


def test_object_scale_one_fills_the_image():
    data = make_sample_scenes(5, image_size=64, object_scale=(1, 1), random_state=0)
    longer = np.maximum(
        data.boxes[:, 2] - data.boxes[:, 0], data.boxes[:, 3] - data.boxes[:, 1]
    )
    # Only the faded rim of the feathered mask is lost.
    assert (longer >= 1 - 4 / 64).all()


def test_tiny_object_scale_still_gives_a_visible_object():
    data = make_sample_scenes(
        10, image_size=32, object_scale=(0.001, 0.001), random_state=0
    )
    sides = (data.boxes[:, 2:] - data.boxes[:, :2]) * 32
    assert (sides >= 4).all()


def test_paths_are_written_and_match_arrays(tmp_path):
    target = tmp_path / "new" / "dir"
    data = make_sample_scenes(3, image_size=48, random_state=2,
                              return_paths_dir=target)
    assert len(data.paths) == 3
    assert all(isinstance(path, str) for path in data.paths)
    for path, image in zip(data.paths, data.images):
        assert path.endswith(".png")
        with Image.open(path) as loaded:
            assert np.array_equal(np.asarray(loaded.convert("RGB")), image)


def test_descr_is_honest(scenes):
    text = scenes.DESCR
    assert "not a benchmark" in text.lower()
    assert "VOC" in text and "ImageNet" in text
    for label, *_ in OBJECTS:
        assert label in text


def test_does_not_import_tensorflow():
    # In a fresh process: the sample scenes need neither the gradient engine
    # nor the backend it runs on.
    code = (
        "import sys\n"
        "from sklearn_sensloc.datasets import make_sample_scenes\n"
        "make_sample_scenes(2, image_size=32, random_state=0)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_images": 0}, "n_images"),
        ({"n_images": 2.5}, "n_images"),
        ({"n_images": True}, "n_images"),
        ({"image_size": 31}, "image_size"),
        ({"image_size": 64.0}, "image_size"),
        ({"object_scale": (0, 0.5)}, "object_scale"),
        ({"object_scale": (0.6, 0.5)}, "object_scale"),
        ({"object_scale": (0.5, 1.2)}, "object_scale"),
        ({"object_scale": 0.5}, "object_scale"),
        ({"object_scale": (0.1, 0.2, 0.3)}, "object_scale"),
        ({"object_scale": ("a", "b")}, "object_scale"),
    ],
)
def test_parameter_errors(kwargs, message):
    kwargs = {"n_images": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_sample_scenes(**kwargs)
