"""The localizer file: one self-contained file, same boxes anywhere, no code run from it."""

import io
import json
import os
import pickle
import shutil
import zipfile

import keras
import numpy as np
import pytest
from conftest import make_scenes, write_png_files
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.validation import check_is_fitted
from test_own_classifier import SHARED_MOBILENET

from sklearn_sensloc import (
    BoxRegressor,
    BoxScorer,
    CenterBoxBaseline,
    CorLocScorer,
    HeuristicBoxEstimator,
    LocalizerFileError,
    SensitivityTransformer,
    fit_box_scorer,
    load_localizer,
    save_localizer,
)
from sklearn_sensloc._photos import _localizer


@pytest.fixture(scope="module")
def data():
    images, boxes, _ = make_scenes(40, seed=3)
    return images, boxes


@pytest.fixture(scope="module")
def fitted(tiny_model, data):
    images, boxes = data
    return Pipeline([("sens", SensitivityTransformer(model=tiny_model, target="class", pool=2)),
                     ("box", BoxRegressor(random_state=0))]).fit(images, boxes)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save_localizer(fitted, tmp_path_factory.mktemp("saved") / "tiny.sensloc",
                          record={"data": "scenes"})


def _rewritten(source, target, **members):
    """A copy of the localizer ``source`` with some members replaced (bytes) or removed (None)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name in members:
                continue
            new.writestr(name, old.read(name))
        for name, content in members.items():
            if content is not None:
                new.writestr(name, content)
    return target


def _manifest(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(_localizer.MANIFEST))


def test_loaded_localizer_predicts_the_same_boxes_from_arrays_and_files(fitted, saved, data,
                                                                        tmp_path):
    images, boxes = data
    loaded = load_localizer(saved)
    assert isinstance(loaded, Pipeline) and [name for name, _ in loaded.steps] == ["sens", "box"]
    check_is_fitted(loaded.steps[-1][1])
    np.testing.assert_array_equal(loaded.predict(images), fitted.predict(images))
    paths = write_png_files(images[:6], tmp_path)
    np.testing.assert_allclose(loaded.predict(paths), fitted.predict(paths), atol=1e-12)
    assert loaded.score(images, boxes) == fitted.score(images, boxes)
    assert loaded.box_scorer_ is None
    record = loaded.localizer_record_
    assert record["record"] == {"data": "scenes"}
    assert record["versions"]["keras"] == keras.__version__
    assert record["model"]["target"] == "score of the predicted class"
    sens = loaded.named_steps["sens"]
    assert (sens.target, sens.pool, sens.preprocessing, sens.memory) == ("class", 2, "none", None)


def test_a_loaded_regressor_predicts_and_refits_but_does_not_pretend_to_continue(saved, data):
    images, boxes = data
    loaded = load_localizer(saved)
    maps = loaded.steps[0][1].transform(images)
    regressor = loaded.steps[-1][1]
    with pytest.raises(ValueError, match="loaded from a localizer file.* fit it again"):
        regressor.partial_fit(maps, boxes)
    assert regressor.fit(maps, boxes).predict(maps).shape == (len(images), 4)
    assert regressor.partial_fit(maps, boxes).n_iter_ > 0


def test_the_box_score_travels_with_the_localizer(fitted, data, tmp_path):
    images, boxes = data
    scorer = fit_box_scorer(fitted, images, boxes)
    loaded = load_localizer(save_localizer(fitted, tmp_path / "s.sensloc", box_scorer=scorer))
    maps = fitted.steps[0][1].transform(images)
    predicted = fitted.predict(images)
    np.testing.assert_array_equal(loaded.box_scorer_.score_boxes(maps, predicted),
                                  scorer.score_boxes(maps, predicted))
    manifest = _manifest(tmp_path / "s.sensloc")
    manifest["box_scorer"]["coef"] = [1.0]
    with pytest.raises(LocalizerFileError, match="box score this version cannot use"):
        load_localizer(_rewritten(tmp_path / "s.sensloc", tmp_path / "t.sensloc",
                                  **{_localizer.MANIFEST: json.dumps(manifest)}))
    other = BoxScorer().fit(np.random.default_rng(0).random((20, 9)), np.tile(boxes[:1], (20, 1)),
                            np.arange(20) % 2 == 0)
    with pytest.raises(ValueError, match="reads \\(3, 3\\) maps, the transformer makes"):
        save_localizer(fitted, tmp_path / "x.sensloc", box_scorer=other)


def test_a_localizer_moved_to_another_folder_gives_the_same_boxes(saved, fitted, data, tmp_path,
                                                                  monkeypatch):
    moved = tmp_path / "elsewhere" / "copy.sensloc"
    moved.parent.mkdir()
    shutil.copy(saved, moved)
    monkeypatch.chdir(moved.parent)
    loaded = load_localizer("copy.sensloc")
    np.testing.assert_array_equal(loaded.predict(data[0]), fitted.predict(data[0]))


def test_a_named_model_with_a_weights_file_is_embedded_not_referred_to(tmp_path, monkeypatch):
    if not SHARED_MOBILENET.is_file():
        pytest.fail(f"The shared MobileNet weights are missing: {SHARED_MOBILENET}.")
    weights = tmp_path / "w" / "mobilenet.weights.h5"
    weights.parent.mkdir()
    shutil.copy(SHARED_MOBILENET, weights)
    monkeypatch.chdir(tmp_path)
    images, boxes, _ = make_scenes(6, size=64, seed=1)
    pipe = make_pipeline(
        SensitivityTransformer(model="mobilenet", weights="w/mobilenet.weights.h5",
                               target="class", pool=8),
        HeuristicBoxEstimator(sigma=1.0, top_fraction=0.2),
    ).fit(images, boxes)
    path = save_localizer(pipe, "mobilenet.sensloc")
    expected = pipe.predict(images)
    shutil.rmtree(tmp_path / "w")
    loaded = load_localizer(path)
    np.testing.assert_array_equal(loaded.predict(images), expected)
    sens = loaded.steps[0][1]
    assert sens.weights is None and sens.preprocessing == "tf"
    assert loaded.localizer_record_["model"]["name"] == "mobilenet"
    assert loaded.localizer_record_["model"]["weights_file"] == "mobilenet.weights.h5"


@pytest.mark.parametrize("estimator", [HeuristicBoxEstimator(), CenterBoxBaseline(),
                                       HeuristicBoxEstimator(sigma=0.5, top_fraction=0.3,
                                                             region="largest")])
def test_every_box_estimator_survives_the_file(tiny_model, data, estimator, tmp_path):
    images, boxes = data
    pipe = make_pipeline(SensitivityTransformer(model=tiny_model, pool=2), estimator)
    pipe.fit(images, boxes)
    loaded = load_localizer(save_localizer(pipe, tmp_path / "h.sensloc"))
    np.testing.assert_array_equal(loaded.predict(images), pipe.predict(images))
    assert type(loaded.steps[-1][1]) is type(estimator)


def test_a_preprocessing_function_is_saved_as_the_name_it_equals(tiny_model, data, tmp_path):
    images, boxes = data
    pipe = make_pipeline(
        SensitivityTransformer(model=tiny_model, preprocessing=keras.applications.mobilenet
                               .preprocess_input, pool=2),
        CenterBoxBaseline(),
    ).fit(images, boxes)
    loaded = load_localizer(save_localizer(pipe, tmp_path / "p.sensloc"))
    assert loaded.steps[0][1].preprocessing == "tf"
    np.testing.assert_allclose(loaded.steps[0][1].transform(images[:4]),
                               pipe.steps[0][1].transform(images[:4]), atol=1e-6)


def test_code_is_never_saved(tiny_model, data, tmp_path):
    images, boxes = data
    pipe = make_pipeline(SensitivityTransformer(model=tiny_model, pool=2,
                                                preprocessing=lambda x: x / 2.0 + 1.0),
                         CenterBoxBaseline()).fit(images, boxes)
    with pytest.raises(ValueError, match="holds no code: pass the name it stands for"):
        save_localizer(pipe, tmp_path / "never.sensloc")
    assert not (tmp_path / "never.sensloc").exists()


def test_what_save_localizer_refuses(fitted, tiny_model, data, tmp_path):
    with pytest.raises(ValueError, match="pass search.best_estimator_"):
        search = GridSearchCV(fitted, {"box__eta0": [0.1]}, scoring=CorLocScorer(), cv=2)
        save_localizer(search.fit(*data), tmp_path / "s.sensloc")
    with pytest.raises(ValueError, match="fitted Pipeline of two steps"):
        save_localizer(fitted.steps[-1][1], tmp_path / "s.sensloc")
    with pytest.raises(ValueError, match="last step is a StandardScaler"):
        from sklearn.preprocessing import StandardScaler

        save_localizer(make_pipeline(SensitivityTransformer(model=tiny_model), StandardScaler()),
                       tmp_path / "s.sensloc")
    unfitted = make_pipeline(SensitivityTransformer(model=tiny_model), BoxRegressor())
    with pytest.raises(Exception, match="not fitted"):
        save_localizer(unfitted, tmp_path / "s.sensloc")


def test_a_pickled_pipeline_finds_its_weights_file_from_another_folder(tmp_path, monkeypatch,
                                                                       tiny_model):
    keras_file = tmp_path / "project" / "models" / "tiny.keras"
    keras_file.parent.mkdir(parents=True)
    tiny_model.save(keras_file)
    monkeypatch.chdir(tmp_path / "project")
    images, boxes, _ = make_scenes(8, seed=2)
    pipe = make_pipeline(SensitivityTransformer(model="models/tiny.keras", pool=2),
                         CenterBoxBaseline()).fit(images, boxes)
    expected = pipe.steps[0][1].transform(images)
    pickled = pickle.dumps(pipe)
    monkeypatch.chdir(tmp_path)
    np.testing.assert_allclose(pickle.loads(pickled).steps[0][1].transform(images), expected)
    os.remove(keras_file)
    with pytest.raises(FileNotFoundError, match="neither at .*tiny.keras.*save_localizer"):
        pickle.loads(pickled).steps[0][1].transform(images)


# --------------------------------------------------------------------------- hostile files


def test_files_that_are_not_localizers_are_named_for_what_they_are(tmp_path, model_file):
    cases = {
        "text.sensloc": (b"hello, not a localizer", "is not a zip archive"),
        "empty.sensloc": (b"", "is empty"),
        "weights.sensloc": (b"\x89HDF\r\n\x1a\n" + bytes(100), "an HDF5 file"),
        "pickle.sensloc": (pickle.dumps({"a": 1}), "a Python pickle, which this package never"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LocalizerFileError, match=message):
            load_localizer(tmp_path / name)
    with pytest.raises(LocalizerFileError, match="a Keras model file .* --model"):
        load_localizer(model_file)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hi")
    with pytest.raises(LocalizerFileError, match="a zip archive, but not a localizer file"):
        load_localizer(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError, match="Localizer file not found"):
        load_localizer(tmp_path / "missing.sensloc")


@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.1])
def test_a_truncated_localizer_is_refused_in_one_sentence(saved, tmp_path, fraction):
    content = open(saved, "rb").read()
    cut = tmp_path / "cut.sensloc"
    cut.write_bytes(content[: int(len(content) * fraction)])
    with pytest.raises(LocalizerFileError, match="damaged|truncated|not a zip"):
        load_localizer(cut)


def test_a_file_from_a_newer_version_says_to_upgrade(saved, tmp_path):
    manifest = _manifest(saved)
    manifest.update(format_version=99)
    manifest["versions"]["sklearn-sensloc"] = "9.0"
    newer = _rewritten(saved, tmp_path / "newer.sensloc",
                       **{_localizer.MANIFEST: json.dumps(manifest)})
    with pytest.raises(LocalizerFileError, match="written by sklearn-sensloc 9.0 .* upgrade"):
        load_localizer(newer)
    manifest = _manifest(saved)
    manifest["steps"][1]["params"]["new_option"] = 1
    with pytest.raises(LocalizerFileError, match="new_option, which this sklearn-sensloc does"):
        load_localizer(_rewritten(saved, tmp_path / "option.sensloc",
                                  **{_localizer.MANIFEST: json.dumps(manifest)}))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["steps"][1].update({"class": "os.system"}), "does not describe|not an estimator"),
    (lambda m: m["steps"][1].update({"class": "SensitivityTransformer"}), "does not describe"),
    (lambda m: m["steps"].pop(), "does not describe"),
    (lambda m: m["steps"][1]["params"].update({"eta0": "rm -rf /"}), "invalid BoxRegressor"),
    (lambda m: m.update({"format": "something else"}), "not a localizer file"),
])
def test_a_tampered_manifest_is_refused(saved, tmp_path, change, message):
    manifest = _manifest(saved)
    change(manifest)
    tampered = _rewritten(saved, tmp_path / "t.sensloc",
                          **{_localizer.MANIFEST: json.dumps(manifest)})
    with pytest.raises(LocalizerFileError, match=message):
        load_localizer(tampered)


def test_arrays_that_need_a_pickle_are_refused(saved, tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, **{"box/coef_": np.array([{"code": 1}], dtype=object),
                        "box/intercept_": np.zeros(4)})
    with pytest.raises(LocalizerFileError, match="not plain numbers"):
        load_localizer(_rewritten(saved, tmp_path / "o.sensloc",
                                  **{_localizer.ARRAYS: buffer.getvalue()}))
    buffer = io.BytesIO()
    np.savez(buffer, **{"box/coef_": np.zeros((4, 3)), "box/intercept_": np.zeros(4)})
    with pytest.raises(LocalizerFileError, match="do not fit together"):
        load_localizer(_rewritten(saved, tmp_path / "s.sensloc",
                                  **{_localizer.ARRAYS: buffer.getvalue()}))
    with pytest.raises(LocalizerFileError, match="without arrays.npz"):
        load_localizer(_rewritten(saved, tmp_path / "m.sensloc", **{_localizer.ARRAYS: None}))


def test_a_network_that_holds_code_is_not_run(saved, tmp_path):
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Lambda(lambda x: x * 2, name="code"),
                              keras.layers.Conv2D(2, 3)])
    model.save(tmp_path / "code.keras")
    tampered = _rewritten(saved, tmp_path / "code.sensloc",
                          **{_localizer.MODEL: (tmp_path / "code.keras").read_bytes()})
    with pytest.raises(LocalizerFileError, match="safe mode"):
        load_localizer(tampered)


def test_a_member_claiming_too_many_bytes_is_refused_unread(saved, monkeypatch):
    monkeypatch.setattr(_localizer, "MAX_MEMBER_BYTES", 100)
    with pytest.raises(LocalizerFileError, match="more than a localizer holds"):
        load_localizer(saved)


def test_a_pytorch_localizer_under_another_backend_says_to_set_keras_backend(saved, tmp_path):
    manifest = _manifest(saved)
    manifest["model"] = {"kind": "torch", "library_model": "timm:resnet10t"}
    torch_file = _rewritten(saved, tmp_path / "torch.sensloc",
                            **{_localizer.MANIFEST: json.dumps(manifest)})
    assert _localizer.localizer_backend(torch_file) == "torch"
    assert _localizer.localizer_backend(saved) is None
    with pytest.raises(LocalizerFileError,
                       match="set the environment variable KERAS_BACKEND=torch"):
        load_localizer(torch_file)
    manifest["model"]["library_model"] = "os:system"
    with pytest.raises(LocalizerFileError, match="not a timm or torchvision name"):
        load_localizer(_rewritten(saved, tmp_path / "n.sensloc",
                                  **{_localizer.MANIFEST: json.dumps(manifest)}))
