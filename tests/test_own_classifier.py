"""Your own classifier: names, weights files, preprocessing, and the errors that guard them."""

import inspect
import json
import pickle
import warnings
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from sklearn.base import clone
from test_evaluation import write_voc_tree

from sklearn_sensloc import SensitivityTransformer, corloc_interval, evaluate_localization
from sklearn_sensloc._cli import main
from sklearn_sensloc._classifiers._models import (
    OFFLINE_MODEL,
    REGISTRY,
    mobilenet_width,
    preprocessing_key,
    registered_name,
    resolve_model,
    resolve_preprocessing,
)
from sklearn_sensloc._images._preprocessing import PREPROCESSINGS, PREPROCESSORS

SHARED_MOBILENET = (
    Path(__file__).resolve().parents[1].parent
    / "shared" / "data" / "mobilenet-v1-0.25" / "mobilenet_v1_0.25_224_imagenet.weights.h5"
)
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def mobilenet_weights():
    if not SHARED_MOBILENET.is_file():
        pytest.fail(
            f"The shared MobileNet weights are missing: {SHARED_MOBILENET}. These tests need "
            "../shared/data (see its README)."
        )
    return str(SHARED_MOBILENET)


@pytest.fixture(scope="module")
def chelsea():
    """scikit-image's cat photo, centre crop resized to 224x224, RGB 0..255."""
    from PIL import Image
    from skimage import data

    image = data.chelsea()
    height, width, _ = image.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(image[top : top + side, left : left + side]).resize((224, 224))
    return np.asarray(crop, dtype=np.float32)[None]


@pytest.fixture
def offline_keras(monkeypatch, tmp_path):
    """Keras downloads fail as they do without network, into an empty Keras cache."""
    from keras.src.utils import file_utils

    attempts = []

    def fail(fname, origin=None, **kwargs):
        attempts.append(origin)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", fail)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return attempts


def ops_tf_scaling(images):
    """The 'tf' preprocessing written with keras.ops: runs on tensors inside tf.function."""
    return keras.ops.subtract(keras.ops.divide(images, 127.5), 1.0)


def unscaled_model(size=32):
    return keras.Sequential(
        [keras.Input((size, size, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)],
        name="unscaled",
    )


# --------------------------------------------------------------------------- registry


def _constructor(entry):
    return entry.build.args[0] if hasattr(entry.build, "args") else "MobileNet"


def test_registry_names_every_imagenet_family_with_its_keras_preprocessing():
    expected = {"vgg16", "vgg19", "resnet50", "resnet101", "resnet152", "resnet50v2",
                "mobilenet", "mobilenetv2", "mobilenetv3small", "mobilenetv3large",
                "densenet121", "inceptionv3", "inceptionresnetv2", "xception", "nasnetmobile",
                "nasnetlarge", "efficientnetb0", "efficientnetb7", "efficientnetv2s",
                "convnexttiny", "convnextxlarge", OFFLINE_MODEL}
    assert expected <= set(REGISTRY)
    batch = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    for name, entry in REGISTRY.items():
        assert callable(entry.build) and entry.preprocessing in PREPROCESSINGS and entry.description
        if name == OFFLINE_MODEL:
            assert entry.weights_file is None
            continue
        assert entry.weights_file.endswith(".h5") and entry.download_mb > 0
        constructor = getattr(keras.applications, _constructor(entry))
        assert "classifier_activation" in inspect.signature(constructor).parameters
        # The registry's preprocessing does what the family's own preprocess_input does.
        module = inspect.getmodule(constructor)
        own = np.asarray(module.preprocess_input(batch.copy()))
        ours = np.asarray(PREPROCESSORS[entry.preprocessing](batch))
        np.testing.assert_allclose(ours, own, rtol=1e-5, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("name", ["mobilenetv3small", "efficientnetb0"])
def test_small_registered_architectures_build_with_logits(name):
    # Built without weights (no download): the preprocessing-free families rescale inside.
    model = getattr(keras.applications, _constructor(REGISTRY[name]))(
        weights=None, classifier_activation=None)
    assert model.output_shape == (None, 1000) and REGISTRY[name].preprocessing == "none"
    assert any(isinstance(layer, keras.layers.Rescaling) for layer in model.layers)
    scores = np.asarray(model(np.full((1, 224, 224, 3), 128.0, np.float32)))
    assert scores.sum() != pytest.approx(1.0)  # logits, not probabilities


def test_names_are_read_in_any_spelling_and_misspellings_are_answered():
    assert registered_name("MobileNetV2") == registered_name("mobilenet_v2") == "mobilenetv2"
    assert registered_name("EfficientNet-B0") == "efficientnetb0"
    with pytest.raises(ValueError, match=r"did you mean 'resnet50'\?"):
        resolve_model("resnet5O")


# --------------------------------------------------------------------------- weights files


def test_shared_mobilenet_loads_by_name_with_its_width_and_sees_a_cat(mobilenet_weights, chelsea):
    assert mobilenet_width(mobilenet_weights) == 0.25
    model, preprocessing = resolve_model("mobilenet", mobilenet_weights)
    assert preprocessing == "tf" and model.get_layer("conv1").kernel.shape == (3, 3, 3, 8)
    scores = np.asarray(model(keras.applications.mobilenet.preprocess_input(chelsea.copy())))
    assert int(scores.argmax()) in CAT_CLASSES
    assert scores.min() < 0  # logits, not softmax
    sens = SensitivityTransformer(model="mobilenet", weights=mobilenet_weights, target="class",
                                  pool=8).fit(None)
    assert sens.preprocessing_ == "tf" and sens.input_size_ == (224, 224)
    maps = sens.transform(chelsea)
    assert maps.shape == (1, 28 * 28) and np.isfinite(maps).all() and maps.max() == 1.0


def test_weights_file_that_does_not_fit_names_layer_and_shapes(mobilenet_weights, tmp_path):
    with pytest.raises(ValueError, match=r"does not fit MobileNetV2: layer 'Conv1' expects "
                                         r"weights of shape \(3, 3, 3, 32\), the file has "
                                         r"\(3, 3, 3, 8\)"):
        resolve_model("mobilenetv2", mobilenet_weights)
    other = tmp_path / "other.weights.h5"
    with h5py.File(other, "w") as store:
        store.create_dataset("layers/conv/vars/0", data=np.zeros((3, 3, 3, 12)))
    with pytest.raises(ValueError, match=r"not a MobileNet v1: .* found \(3, 3, 3, 12\)"):
        resolve_model("mobilenet", other)
    with pytest.raises(FileNotFoundError, match="no-such.weights.h5"):
        resolve_model("mobilenet", tmp_path / "no-such.weights.h5")


def test_weights_file_is_part_of_the_cache_identity(mobilenet_weights, tmp_path):
    copy = tmp_path / "copy.weights.h5"
    copy.write_bytes(Path(mobilenet_weights).read_bytes())
    keys = []
    for weights in (mobilenet_weights, copy):
        sens = SensitivityTransformer(model="mobilenet", weights=weights).fit(None)
        keys.append(sens.gradient_key_)
    assert keys[0] != keys[1]


def test_weights_need_a_registered_name(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="is for a registered model name"):
        SensitivityTransformer(model=tiny_model, weights=str(tmp_path / "w.weights.h5")).fit(None)
    with pytest.raises(ValueError, match="is a weights file: it needs its architecture.*"
                                         "model='mobilenet', weights=PATH"):
        SensitivityTransformer(model=str(tmp_path / "w.weights.h5")).fit(None)


def test_lambda_layer_in_a_keras_file_is_named_with_the_way_out(tmp_path):
    inputs = keras.Input((16, 16, 3))
    scaled = keras.layers.Lambda(keras.applications.mobilenet.preprocess_input,
                                 name="preprocess")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(scaled))
    path = tmp_path / "with_lambda.keras"
    model.save(path)
    with pytest.raises(ValueError) as error:
        SensitivityTransformer(model=str(path)).fit(None)
    message = str(error.value)
    assert "safe mode" in message and "Lambda layer(s) 'preprocess'" in message
    assert "Rescaling" in message and "safe_mode=False" in message and "preprocessing=" in message
    assert len(message) < 600


# --------------------------------------------------------------------------- downloads


def test_constructor_downloads_nothing_and_offline_fit_fails_in_one_sentence(offline_keras):
    sens = SensitivityTransformer(model="vgg16")
    assert offline_keras == []
    with pytest.warns(UserWarning, match=r"model='vgg16' downloads its ImageNet weights now: "
                                         r"about 528 MB"):
        with pytest.raises(ConnectionError) as error:
            sens.fit(None)
    message = str(error.value)
    assert message.startswith("Cannot download the ImageNet weights of 'vgg16' (528 MB")
    assert "weights=PATH" in message and "'vgg16-hed'" in message and "\n" not in message
    assert len(offline_keras) == 1


def test_no_download_notice_when_keras_has_the_file(offline_keras, tmp_path):
    cached = tmp_path / "keras-home" / "models" / REGISTRY["vgg16"].weights_file
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(ConnectionError):
            resolve_model("vgg16")


# --------------------------------------------------------------------------- preprocessing


def test_callable_preprocessing_runs_inside_the_compiled_function(tiny_model, scenes):
    images = scenes[0][:4]
    maps = {
        name: SensitivityTransformer(model=tiny_model, preprocessing=p, pool=2,
                                     cache=False).fit(None).transform(images)
        for name, p in [("tf", "tf"), ("ops", ops_tf_scaling),
                        ("keras", keras.applications.mobilenet.preprocess_input)]
    }
    np.testing.assert_allclose(maps["ops"], maps["tf"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maps["keras"], maps["tf"], rtol=1e-5, atol=1e-6)


def test_callable_preprocessing_is_cloneable_picklable_and_keyed_by_its_code(tiny_model, scenes):
    sens = SensitivityTransformer(model=tiny_model, preprocessing=ops_tf_scaling, pool=2).fit(None)
    restored = pickle.loads(pickle.dumps(sens))
    np.testing.assert_array_equal(restored.transform(scenes[0][:2]), sens.transform(scenes[0][:2]))
    assert clone(sens).fit(None).gradient_key_ == sens.gradient_key_
    keys = {preprocessing_key(p) for p in (ops_tf_scaling, lambda x: x / 255.0,
                                           lambda x: x / 127.5, "tf")}
    assert len(keys) == 4
    with pytest.raises(ValueError, match="preprocessing"):
        SensitivityTransformer(model=tiny_model, preprocessing="imagenet").fit(None)


def test_user_model_without_rescaling_warns_what_to_pass():
    model = unscaled_model()
    with pytest.warns(UserWarning, match=r"no Rescaling or Normalization layer.*"
                                         r"preprocessing='tf'.*preprocess_input"):
        SensitivityTransformer(model=model).fit(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        SensitivityTransformer(model=model, preprocessing="none").fit(None)
        SensitivityTransformer(model=model, preprocessing=ops_tf_scaling).fit(None)
        assert resolve_preprocessing("auto", "mobilenet", None) == "tf"
        assert resolve_preprocessing("auto", "efficientnetb0", None) == "none"


def test_fine_tuned_head_on_a_nested_mobilenet_base(mobilenet_weights, chelsea):
    """The docs' transfer-learning example: shared MobileNet base, new head, Rescaling in front."""
    full, _ = resolve_model("mobilenet", mobilenet_weights)
    base = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=0.25,
                                        include_top=False, weights=None)
    for layer in base.layers[1:]:  # after its input layer
        layer.set_weights(full.get_layer(layer.name).get_weights())
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the Rescaling layer: no warning
        gestalt = SensitivityTransformer(model=model, pool=8).fit(None)
        by_class = SensitivityTransformer(model=model, target=2, pool=8).fit(None)
    assert gestalt.target_name_ == "gestalt total of 'conv_pw_13'"
    assert by_class.target_name_ == "score of class 2"
    for sens in (gestalt, by_class):
        maps = sens.transform(chelsea)
        assert maps.shape == (1, 784) and np.isfinite(maps).all() and maps.max() == 1.0


# --------------------------------------------------------------------------- evaluation


def test_corloc_interval_matches_wilson_known_values():
    low, high = corloc_interval([True] * 8 + [False] * 2)
    assert (low, high) == pytest.approx((49.016, 94.332), abs=1e-3)
    assert corloc_interval([False] * 10) == pytest.approx((0.0, 27.753), abs=1e-3)
    assert corloc_interval([True] * 10) == pytest.approx((72.247, 100.0), abs=1e-3)
    low99, high99 = corloc_interval([True] * 8 + [False] * 2, confidence=0.99)
    assert low99 < low and high99 > high
    assert np.isnan(corloc_interval([])).all()
    with pytest.raises(ValueError, match="confidence"):
        corloc_interval([True], confidence=95)


FAST = {"sigmas": [1], "n_timing": 0, "batch_size": 16, "pool": 2}


def test_overlapping_train_and_test_images_are_refused_unless_allowed(tiny_model, scenes):
    images, boxes, _ = scenes
    with pytest.raises(ValueError, match=r"3 of 6 test images are also training images "
                                         r"\(e.g. #0, #1, #2\).*allow_overlap=True"):
        evaluate_localization(images[:10], boxes[:10], images[7:13], boxes[7:13],
                              model=tiny_model, **FAST)
    with pytest.warns(UserWarning, match="3 of 6 test images are also training images"):
        result = evaluate_localization(images[:10], boxes[:10], images[7:13], boxes[7:13],
                                       model=tiny_model, allow_overlap=True, **FAST)
    assert result.summary["allow_overlap"] is True and result.summary["n_overlap"] == 3
    assert any("allow_overlap=True" in note for note in result.tables["table3_methods"]["notes"])


def test_tables_count_test_images_per_class_and_give_intervals(tiny_model, scenes):
    images, boxes, labels = scenes
    names = np.array(["red", "blue"])[labels]
    # 30 test images, about half of each colour: only classes with >= 14 count in the 2nd mean.
    result = evaluate_localization(images[:60], boxes[:60], images[60:90], boxes[60:90],
                                   test_labels=list(names[60:90]), model=tiny_model,
                                   min_class_images=14, **FAST)
    table1 = result.tables["table1_per_class"]
    assert table1["columns"] == ["method", "mean", "mean (n>=14)", "blue", "red"]
    counts = table1["rows"][-1]
    assert counts["method"] == "n_test"
    assert counts["red"] == int((names[60:90] == "red").sum())
    assert counts["blue"] == int((names[60:90] == "blue").sum())
    large = [c for c in ("blue", "red") if counts[c] >= 14]
    for row in table1["rows"][:-1]:
        expected = np.mean([row[c] for c in large]) if large else np.nan
        np.testing.assert_allclose(row["mean (n>=14)"], expected)
    assert any(note.startswith("95% intervals (Wilson) of learned (max): blue ")
               for note in table1["notes"])
    for row in result.tables["table3_methods"]["rows"]:
        assert row["corloc_low"] <= row["corloc"] <= row["corloc_high"]
        assert row["corloc_high"] - row["corloc_low"] > 10  # 30 images: wide
    assert "test 95% (max)" in result.tables["table2_heuristic_sigma"]["columns"]
    assert result.summary["preprocessing"] == "none" and result.summary["image_size"] == [32, 32]


# --------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_voc_tree(tmp_path_factory.mktemp("data") / "VOC", n_train=12, n_test=8)


@pytest.fixture(scope="module")
def any_size_model_file(tmp_path_factory):
    """A fully convolutional .keras model that accepts any image size."""
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(4, 3, activation="relu")])
    path = tmp_path_factory.mktemp("any") / "any_size.keras"
    model.save(path)
    return str(path)


def _evaluate(voc_root, output, *extra):
    return main(["evaluate", "--voc", str(voc_root), "-q", "--sigmas", "1", "--pool", "2",
                 "--timing-images", "0", "--output", str(output), *extra])


def test_cli_weights_file_by_name_records_every_setting(voc_root, mobilenet_weights, tmp_path):
    assert _evaluate(voc_root, tmp_path, "--model", "mobilenet", "--weights", mobilenet_weights,
                     "--target", "class", "--limit", "6") == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "mobilenet" and summary["weights"] == mobilenet_weights
    assert summary["preprocessing"] == "tf" and summary["image_size"] == [224, 224]
    assert summary["target"] == "class" and summary["allow_overlap"] is False
    notes = " ".join(json.loads((tmp_path / "table3_methods.json").read_text())["notes"])
    assert f"with weights {mobilenet_weights}, preprocessing tf, images 224x224" in notes


def test_cli_preprocessing_and_image_size(voc_root, any_size_model_file, tmp_path):
    assert _evaluate(voc_root, tmp_path, "--model", any_size_model_file, "--preprocessing", "tf",
                     "--image-size", "40x48") == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["preprocessing"] == "tf" and summary["image_size"] == [40, 48]


def test_cli_overlap_is_refused_then_allowed_and_debug_shows_the_traceback(
        voc_root, model_file, tmp_path, capsys):
    same = ("--model", model_file, "--train-split", "trainval", "--test-split", "trainval")
    assert _evaluate(voc_root, tmp_path / "a", *same) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "12 of 12 test images are also training images" in err
    assert "--allow-overlap" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="also training images"):
        _evaluate(voc_root, tmp_path / "b", *same, "--debug")
    assert _evaluate(voc_root, tmp_path / "c", *same, "--allow-overlap") == 0
    err = capsys.readouterr().err
    assert err.startswith("sensloc: warning: 12 of 12 test images are also training images")
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["allow_overlap"] is True and summary["n_overlap"] == 12


def test_cli_offline_download_is_one_error_line(voc_root, tmp_path, capsys, offline_keras):
    assert _evaluate(voc_root, tmp_path, "--model", "vgg16") == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("sensloc: warning: model='vgg16' downloads its ImageNet weights")
    assert lines[1].startswith("sensloc: error: Cannot download the ImageNet weights of 'vgg16'")
    assert len(lines) == 2 and "--weights PATH" in lines[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "w.weights.h5"], "is a weights file: it needs its architecture"),
        (["--model", "mobilenet", "--weights", "missing.h5"], "Weights file not found: 'missing.h5'"),
        (["--model", "resnet5"], "neither a registered name (did you mean 'resnet50'?)"),
        (["--preprocessing", "imagenet"], "invalid choice: 'imagenet'"),
        (["--image-size", "224x"], "expected a size like 224 or 240x320"),
    ],
)
def test_cli_usage_errors_for_models(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--voc", ".", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
