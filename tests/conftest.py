"""Shared fixtures: generated scenes and tiny Keras models trained on them.

Everything is built here, on the CPU, in seconds: no download, no real data.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

IMAGE_SIZE = 32


def make_scenes(n_images, size=IMAGE_SIZE, seed=0):
    """Coloured squares on noisy grey backgrounds, with their exact boxes.

    Returns images (n, size, size, 3) float32 in 0..255, boxes (n, 4) and the
    colour class of each object (0 red, 1 blue).
    """
    rng = np.random.default_rng(seed)
    images = rng.normal(120, 25, (n_images, size, size, 3)).clip(0, 255)
    boxes = np.empty((n_images, 4))
    labels = rng.integers(0, 2, n_images)
    for i in range(n_images):
        height, width = rng.integers(size // 4, size * 3 // 4, 2)
        top = rng.integers(0, size - height + 1)
        left = rng.integers(0, size - width + 1)
        colour = (230, 40, 40) if labels[i] == 0 else (40, 40, 230)
        images[i, top : top + height, left : left + width] = colour
        boxes[i] = (left / size, top / size, (left + width) / size, (top + height) / size)
    return images.astype(np.float32), boxes, labels


def write_png_files(images, directory, pattern="{}.png"):
    """Save images (0..255, rounded to uint8) as PNG files; their paths as str, in order."""
    from PIL import Image

    paths = []
    for i, image in enumerate(images):
        paths.append(os.path.join(directory, pattern.format(i)))
        Image.fromarray(np.round(image).astype(np.uint8)).save(paths[-1])
    return paths


def build_tiny_model(size=IMAGE_SIZE, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, name="logits"),
        ],
        name="tiny",
    )


class FrameLike:
    """Mimics a pandas DataFrame: converts with np.asarray, but ``obj[0]`` is a column lookup."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)

    def __len__(self):
        return len(self._values)

    def __getitem__(self, key):
        raise KeyError(key)  # no column named 0


def record_backward_passes(monkeypatch, record):
    """Call ``record(kind, images, with_gradients)`` for each batch sent through a backward pass.

    ``kind``: ``"gradients"`` (``GradientEngine.__call__``: the gradients come
    back) or ``"maps"`` (``GradientEngine.maps``: maps made with the pass on
    the device; the gradients come back when ``with_gradients``). A sampling
    method's maps go through ``__call__`` and are recorded there, once.
    """
    from sklearn_sensloc._engine import SAMPLING_METHODS, GradientEngine

    call, maps = GradientEngine.__call__, GradientEngine.maps

    def recorded_call(self, images):
        record("gradients", images, True)
        return call(self, images)

    def recorded_maps(self, images, settings, *, with_gradients=False):
        if self.method not in SAMPLING_METHODS:
            record("maps", images, with_gradients)
        return maps(self, images, settings, with_gradients=with_gradients)

    monkeypatch.setattr(GradientEngine, "__call__", recorded_call)
    monkeypatch.setattr(GradientEngine, "maps", recorded_maps)


@pytest.fixture
def backward_calls(monkeypatch):
    """Sizes of the batches that go through a backward pass, in order."""
    calls = []
    record_backward_passes(monkeypatch, lambda kind, images, with_gradients: calls.append(len(images)))
    return calls


@pytest.fixture
def engine_calls(monkeypatch):
    """``(kind, rows, pixel dtype, with_gradients)`` of each batch sent through a backward pass."""
    calls = []
    record_backward_passes(monkeypatch, lambda kind, images, with_gradients: calls.append(
        (kind, len(images), np.asarray(images).dtype.name, with_gradients)))
    return calls


@pytest.fixture(scope="session")
def scenes():
    return make_scenes(240)


#: Set by tests/test_backends.py for the runs on other backends: the tiny
#: model trained by the TensorFlow run, so that every backend tests the same weights.
TRAINED_TINY_MODEL = "SENSLOC_TEST_TINY_MODEL"


@pytest.fixture(scope="session")
def tiny_model(scenes):
    """A tiny CNN trained for a few seconds to tell red objects from blue ones."""
    import keras

    if os.environ.get(TRAINED_TINY_MODEL):
        return keras.saving.load_model(os.environ[TRAINED_TINY_MODEL], compile=False)
    images, _, labels = scenes
    model = build_tiny_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images, labels, epochs=4, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def model_file(tiny_model, tmp_path_factory):
    """The trained tiny model saved as a .keras file."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model.save(path)
    return str(path)


def pytest_collection_modifyitems(config, items):
    """Deselect the PyTorch-module tests unless Keras runs on PyTorch.

    They need Keras' PyTorch backend, which a process chooses once, when keras
    is first imported: tests/test_backends.py runs them in a subprocess under
    ``KERAS_BACKEND=torch``, and the summary counts them as deselected here.
    """
    import keras

    if keras.backend.backend() == "torch":
        return
    deselected = [item for item in items if item.get_closest_marker("torch_modules")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("torch_modules")]
