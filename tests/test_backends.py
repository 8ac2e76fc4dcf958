"""The core tests, and the same maps, on every Keras backend.

``KERAS_BACKEND`` is read once, when keras is first imported, so this process
runs one backend (TensorFlow, Keras' default) and the others run in
subprocesses: the tests marked ``backends`` under pytest, and the maps of
:mod:`backend_maps` compared with this process's. Both need the
``backends`` extra (JAX and PyTorch), which ``dev`` includes: without it these
tests fail, saying so.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from backend_maps import CASES, compute_maps
from conftest import IMAGE_SIZE, TRAINED_TINY_MODEL
from test_transformer import smooth_model, with_softmax

OTHER_BACKENDS = ("jax", "torch")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 900


def run_on(backend, arguments, **environment):
    """Run ``python arguments`` under ``backend``; fail with its output if it fails."""
    if keras.backend.backend() != "tensorflow":
        pytest.fail("tests/test_backends.py runs under TensorFlow, Keras' default backend.")
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend, **environment},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        pytest.fail(
            f"KERAS_BACKEND={backend} python {' '.join(arguments)} exited with "
            f"{completed.returncode} (the backends extra: pip install -e '.[backends]'):\n{output}",
            pytrace=False,
        )
    return completed.stdout


@pytest.fixture(scope="module")
def trained_tiny_model(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("backends") / "tiny.keras"
    tiny_model.save(path)
    return str(path)


def assert_all_passed(output):
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary), output
    # Nothing skipped, expected to fail or erroring: every test ran and passed.
    assert not re.search(r"skipped|xfailed|xpassed|error|failed|warnings? summary", summary), output


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_core_tests_pass_on_every_backend(backend, trained_tiny_model):
    assert_all_passed(run_on(
        backend,
        ["-m", "pytest", "-m", "backends", "-q", "-p", "no:cacheprovider", "tests"],
        **{TRAINED_TINY_MODEL: trained_tiny_model},
    ))


def test_torch_module_tests_pass_under_the_torch_backend():
    # PyTorch modules, timm and torchvision run on Keras' PyTorch backend only.
    assert_all_passed(run_on(
        "torch",
        ["-m", "pytest", "-m", "torch_modules", "-q", "-p", "no:cacheprovider",
         "tests/test_torch_modules.py"],
    ))


@pytest.fixture(scope="module")
def maps_directory(tmp_path_factory):
    """The models and images of :data:`backend_maps.CASES`, and this backend's maps."""
    directory = tmp_path_factory.mktemp("maps")
    smooth = smooth_model()
    keras.utils.set_random_seed(2)
    base = keras.Sequential(
        [keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.Conv2D(3, 3, activation="tanh", name="inner_conv")], name="base",
    )
    inputs = keras.Input((8, 8, 3))
    resized = keras.layers.Resizing(IMAGE_SIZE, IMAGE_SIZE)(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(base(resized))
    nested = keras.Model(inputs, keras.layers.Dense(3)(pooled))
    any_size = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, activation="tanh")]
    )
    models = {"smooth": smooth, "softmax": with_softmax(smooth, "dense"), "nested": nested,
              "any_size": any_size}
    for name, model in models.items():
        model.save(directory / f"{name}.keras")
    np.save(directory / "images.npy", np.random.default_rng(5).uniform(0, 255, (5, 8, 8, 3)))
    np.savez(directory / "maps_tensorflow.npz", **compute_maps(directory))
    return directory


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_maps_equal_tensorflows_on_the_same_weights(backend, maps_directory):
    run_on(backend, ["tests/backend_maps.py", str(maps_directory)])
    expected = np.load(maps_directory / "maps_tensorflow.npz")
    found = np.load(maps_directory / f"maps_{backend}.npz")
    assert sorted(found.files) == sorted(expected.files) == sorted(name for name, _, _ in CASES)
    for name in expected.files:
        scale = np.abs(expected[name]).max()
        assert scale > 0, name
        # 1e-5 of the map's scale: float32 sums in another order differ in
        # their last bits, which is large relative to an entry near zero.
        np.testing.assert_allclose(found[name], expected[name], rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=f"{name} on {backend}")
