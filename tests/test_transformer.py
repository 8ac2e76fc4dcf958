"""SensitivityTransformer and its gradient engine, on tiny Keras models."""

import pickle
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from conftest import IMAGE_SIZE, build_tiny_model, make_scenes, write_png_files
from sklearn_sensloc import SensitivityTransformer


def smooth_model(size=8, seed=1):
    """A tanh network: its gradient is smooth, so finite differences are exact enough."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
            keras.layers.Conv2D(3, 3, activation="tanh", name="top_conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="scores"),
        ]
    )


def target_value(model, images, target):
    """The scalar target computed directly from the model, in float64."""
    if target == "gestalt":
        features = keras.Model(model.inputs[0], model.get_layer("top_conv").output)
        return keras.ops.convert_to_numpy(features(images)).astype(np.float64).mean(axis=(1, 2, 3))
    scores = keras.ops.convert_to_numpy(model(images)).astype(np.float64)
    return scores[:, target]


@pytest.mark.backends
@pytest.mark.parametrize("target", ["gestalt", 0, 2])
def test_gradients_match_finite_differences(target):
    model = smooth_model()
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    sens = SensitivityTransformer(model=model, target=target, pool=1, normalize=None).fit(None)
    engine = sens.gradient_engine()
    analytic = engine(images)
    step = 0.5
    for pixel in [(0, 3, 4, 1), (1, 0, 7, 2), (1, 5, 2, 0)]:
        plus, minus = images.copy(), images.copy()
        plus[pixel] += step
        minus[pixel] -= step
        image = pixel[0]
        numeric = (
            target_value(model, plus, target)[image] - target_value(model, minus, target)[image]
        ) / (2 * step)
        assert analytic[pixel] == pytest.approx(abs(numeric), rel=2e-2, abs=1e-7)
        assert analytic[pixel] > 0


@pytest.mark.backends
def test_predicted_class_target_uses_each_images_own_class():
    model = smooth_model()
    images = np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    predicted = keras.ops.convert_to_numpy(model(images)).argmax(axis=1)
    by_class = {
        k: SensitivityTransformer(model=model, target=k, pool=1, normalize=None).fit(None).transform(images)
        for k in set(predicted)
    }
    maps = SensitivityTransformer(model=model, target="class", pool=1, normalize=None).fit(None).transform(images)
    for i, k in enumerate(predicted):
        np.testing.assert_allclose(maps[i], by_class[k][i], rtol=1e-5)


def with_softmax(model, kind):
    """The same weights ending in a softmax: on the Dense layer, or as a layer after it."""
    layers = [keras.Input(model.input_shape[1:]), *model.layers[:-1]]
    dense = model.layers[-1]
    if kind == "dense":
        head = keras.layers.Dense(dense.units, activation="softmax")
        softmax = keras.Sequential(layers + [head])
        head.set_weights(dense.get_weights())
        return softmax
    return keras.Sequential(layers + [dense, keras.layers.Activation("softmax")])


@pytest.mark.backends
@pytest.mark.parametrize("kind", ["dense", "activation"])
@pytest.mark.parametrize("target", ["class", 1])
def test_class_targets_use_the_score_before_the_softmax(kind, target):
    logits_model = smooth_model()
    softmax_model = with_softmax(logits_model, kind)
    images = np.random.default_rng(3).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)

    def maps(model, **params):
        sens = SensitivityTransformer(model=model, target=target, pool=1, normalize=None, **params)
        return sens.fit(None), sens.transform(images)

    plain, expected = maps(logits_model)
    assert plain.target_name_.startswith("score")
    sens, found = maps(softmax_model)
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-9)
    assert sens.target_name_.startswith("logit")
    with pytest.warns(UserWarning, match="ends in a softmax.*class_score='logit'"):
        sens, probabilities = maps(softmax_model, class_score="output")
    assert sens.target_name_.startswith("probability")
    assert not np.allclose(probabilities, expected, rtol=1e-2)


@pytest.mark.backends
def test_aggregation_max_and_mean_of_channel_gradients():
    model = smooth_model()
    images = np.random.default_rng(2).uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    raw = SensitivityTransformer(model=model, pool=1, normalize=None).fit(None).gradient_engine()(images)
    for aggregation, reduce in [("max", np.max), ("mean", np.mean)]:
        maps = SensitivityTransformer(
            model=model, aggregation=aggregation, pool=1, normalize=None
        ).fit(None).transform(images)
        np.testing.assert_allclose(maps, reduce(raw, axis=-1).reshape(3, -1), rtol=1e-6)


def test_pooling_and_normalization():
    model = smooth_model(size=10)
    images = np.random.default_rng(3).uniform(0, 255, (3, 10, 10, 3))
    full = SensitivityTransformer(model=model, pool=1, normalize=None).fit(None).transform(images)
    pooled = SensitivityTransformer(model=model, pool=4, normalize=None).fit(images)
    assert pooled.map_shape_ == (3, 3)
    maps = pooled.transform(images).reshape(3, 3, 3)
    full = full.reshape(3, 10, 10)
    np.testing.assert_allclose(maps[:, 0, 0], full[:, :4, :4].mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(maps[:, 2, 2], full[:, 8:, 8:].mean(axis=(1, 2)), rtol=1e-5)
    by_max = SensitivityTransformer(model=model, pool=1, normalize="max").fit(None).transform(images)
    np.testing.assert_allclose(by_max.max(axis=1), 1.0, rtol=1e-6)
    by_sum = SensitivityTransformer(model=model, pool=1, normalize="sum").fit(None).transform(images)
    np.testing.assert_allclose(by_sum.sum(axis=1), 1.0, rtol=1e-4)
    standard = SensitivityTransformer(model=model, pool=1, normalize="standard").fit(None).transform(images)
    np.testing.assert_allclose(standard.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(standard.std(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("normalize", ["max", "sum", "standard", None])
def test_a_map_depends_on_its_own_gradients_only(normalize):
    # What lets the gradient cache keep maps per image: made in any batch, a
    # map is the same, bit for bit.
    from sklearn_sensloc._maps._steps import sensitivity_maps

    rng = np.random.default_rng(7)
    gradients = np.abs(rng.standard_normal((9, 30, 28, 3))).astype(np.float32)
    gradients *= 10.0 ** rng.uniform(-6, 2, (9, 1, 1, 1)).astype(np.float32)
    for aggregation in ("max", "mean"):
        for pool in (1, 3, 4, 9):
            whole = sensitivity_maps(gradients, aggregation, pool, normalize)
            for part in (slice(0, 1), slice(2, 7), slice(8, 9)):
                np.testing.assert_array_equal(
                    sensitivity_maps(gradients[part], aggregation, pool, normalize), whole[part]
                )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [1, 2, 3, 4, 7, 8, 9, 16])
def test_block_sums_are_reduceats_bit_for_bit(pool, dtype):
    from sklearn_sensloc._maps._steps import block_sums

    rng = np.random.default_rng(pool)
    for height, width in [(64, 64), (10, 13), (pool, 1), (1, 2 * pool + 1)]:
        # Magnitudes over many decades, where the order of the additions shows.
        maps = (rng.exponential(size=(3, height, width)) * 10.0 ** rng.uniform(-6, 3, (3, 1, 1)))
        maps = maps.astype(dtype)
        for axis in (1, 2):
            expected = np.add.reduceat(maps, np.arange(0, maps.shape[axis], pool), axis=axis)
            sums = block_sums(maps, pool, axis)
            assert sums.dtype == expected.dtype
            np.testing.assert_array_equal(sums, expected)


@pytest.mark.backends
@pytest.mark.parametrize("normalize", ["max", "sum", "standard", None])
def test_zero_gradient_maps_stay_finite(normalize):
    keras.utils.set_random_seed(0)
    dead = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(2, 3, activation="relu", bias_initializer=keras.initializers.Constant(-1e4)),
        ]
    )
    images = np.full((2, 8, 8, 3), 128.0)
    sens = SensitivityTransformer(model=dead, pool=2, normalize=normalize, preprocessing="none")
    maps = sens.fit(None).transform(images)
    assert np.all(np.isfinite(maps))
    np.testing.assert_array_equal(maps, 0.0)


@pytest.mark.backends
def test_gestalt_finds_the_last_conv_layer_in_nested_models(tiny_model, scenes):
    images = scenes[0][:6]
    base = keras.Model(tiny_model.inputs, tiny_model.get_layer("last_conv").output, name="base")
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    head = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    functional = keras.Model(inputs, head)
    sequential = keras.Sequential(
        [keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)), base, keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    reference = SensitivityTransformer(model=tiny_model, pool=1).fit(None)
    assert reference.target_name_ == "gestalt total of 'last_conv'"
    expected = reference.transform(images)
    for model in (base, functional, sequential):
        sens = SensitivityTransformer(model=model, pool=1).fit(None)
        assert sens.target_name_ == "gestalt total of 'last_conv'"
        np.testing.assert_allclose(sens.transform(images), expected, rtol=1e-5, atol=1e-7)
    by_name = SensitivityTransformer(model=functional, target="last_conv", pool=1).fit(None)
    np.testing.assert_allclose(by_name.transform(images), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.backends
def test_preprocessing_is_applied_inside_the_gradient(tiny_model, scenes):
    images = scenes[0][:4]
    with_tf = SensitivityTransformer(model=tiny_model, preprocessing="tf", normalize=None, pool=1)
    wrapped = keras.Sequential(
        [keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)), keras.layers.Rescaling(1 / 127.5, offset=-1.0), tiny_model]
    )
    explicit = SensitivityTransformer(model=wrapped, normalize=None, pool=1)
    np.testing.assert_allclose(
        with_tf.fit(None).transform(images), explicit.fit(None).transform(images), rtol=1e-4, atol=1e-9
    )
    caffe = SensitivityTransformer(model=tiny_model, preprocessing="caffe", normalize=None, pool=1)
    assert not np.allclose(caffe.fit(None).transform(images), with_tf.transform(images))


@pytest.mark.backends
def test_batches_do_not_change_results_or_retrace(tiny_model, scenes, backward_calls):
    images = scenes[0][:11]
    big = SensitivityTransformer(model=tiny_model, batch_size=64).fit(None).transform(images)
    runs = []

    def counting(pixels):
        # Runs when the engine's function is traced (TensorFlow, JAX) or run (PyTorch).
        runs.append(pixels)
        return pixels

    small = SensitivityTransformer(
        model=tiny_model, batch_size=3, cache=False, preprocessing=counting
    ).fit(None)
    np.testing.assert_allclose(small.transform(images), big, rtol=1e-5, atol=1e-7)
    small.transform(images[:5])
    assert backward_calls[-6:] == [3, 3, 3, 2, 3, 2]
    # TensorFlow's signature has a free batch axis: one trace. JAX pads a call
    # to whole batches or, below batch_size, to a power of two: here 3 and 2.
    expected_runs = {"tensorflow": 1, "jax": 2, "torch": 6}
    assert len(runs) == expected_runs[keras.backend.backend()]


def test_images_as_uint8_float_lists_and_paths_agree(tiny_model, scenes, tmp_path):
    images = np.round(scenes[0][:5]).astype(np.uint8)
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    expected = sens.transform(images)
    np.testing.assert_allclose(sens.transform(images.astype(np.float64)), expected, rtol=1e-6)
    np.testing.assert_allclose(sens.transform(list(images)), expected, rtol=1e-6)
    paths = write_png_files(images, tmp_path, "image_{}.png")
    np.testing.assert_allclose(sens.transform([Path(p) for p in paths]), expected, rtol=1e-6)
    np.testing.assert_allclose(sens.transform(paths), expected, rtol=1e-6)


def test_images_of_other_sizes_are_resized(tiny_model, scenes, tmp_path):
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    image = np.round(scenes[0][0]).astype(np.uint8)
    big = np.asarray(Image.fromarray(image).resize((64, 48), Image.BILINEAR))
    Image.fromarray(big).save(tmp_path / "big.png")
    mixed = [image, big, str(tmp_path / "big.png")]
    maps = sens.transform(mixed)
    assert maps.shape == (3, sens.n_features_out_)
    np.testing.assert_allclose(maps[1], maps[2], rtol=1e-5)
    assert np.corrcoef(maps[0], maps[1])[0, 1] > 0.5


@pytest.mark.backends
def test_pickle_clone_and_feature_names(tiny_model, scenes):
    images = scenes[0][:4]
    sens = SensitivityTransformer(model=tiny_model, pool=8).fit(None)
    expected = sens.transform(images)
    restored = pickle.loads(pickle.dumps(sens))
    assert "_provider" not in restored.__dict__ and "_engines" not in restored.__dict__
    assert "_provider" in sens.__dict__, "pickling must not strip the live object"
    np.testing.assert_array_equal(restored.transform(images), expected)
    cloned = clone(sens)
    assert not hasattr(cloned, "map_shape_")
    np.testing.assert_array_equal(cloned.fit(None).transform(images), expected)
    names = sens.get_feature_names_out()
    assert list(names) == [f"map_r{r}_c{c}" for r in range(4) for c in range(4)]


def test_set_output_pandas(tiny_model, scenes):
    import pandas as pd
    sens = SensitivityTransformer(model=tiny_model, pool=16).fit(None).set_output(transform="pandas")
    frame = sens.transform(scenes[0][:3])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["map_r0_c0", "map_r0_c1", "map_r1_c0", "map_r1_c1"]


@pytest.mark.parametrize(
    "X, message",
    [
        (np.zeros((2, 32, 32)), r"shape \(n_images, height, width, 3\); got shape \(2, 32, 32\)"),
        (np.zeros((32, 32, 3)), r"For a single image use X\[None\]"),
        (np.zeros((2, 32, 32, 4)), r"got shape \(2, 32, 32, 4\)"),
        (np.zeros((0, 32, 32, 3)), "X contains no images"),
        ([], "X contains no images"),
        ("image.jpg", "got a single path 'image.jpg'. Wrap it in a list"),
        ([np.zeros((8, 8, 3)), np.zeros((8, 8))], r"Image 1 of X must be a path or an RGB array"),
        ([np.zeros((0, 8, 3))], "Image 0 of X is empty"),
    ],
)
def test_bad_images_are_refused_clearly(tiny_model, X, message):
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    with pytest.raises(ValueError, match=message):
        sens.transform(X)


def test_a_folder_of_photos_as_x_is_refused_with_what_to_pass(tiny_model, tmp_path):
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    for X in (str(tmp_path), [str(tmp_path)]):
        with pytest.raises(ValueError, match=r"folder.*: pass its image files instead, "
                           r"e\.g\. sklearn_sensloc\.find_images\("):
            sens.transform(X)


def test_bad_pixel_values_name_the_image(tiny_model):
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    images = np.full((4, 32, 32, 3), 100.0)
    images[2, 5, 5, 1] = np.nan
    with pytest.raises(ValueError, match="Image 2 of X contains NaN or inf pixels"):
        sens.transform(images)
    images[2, 5, 5, 1] = 300.0
    with pytest.raises(ValueError, match=r"Image 2 of X has pixel values outside 0\.\.255 "
                                         r"\(min 100, max 300\)"):
        sens.fit(images)
    images[3, 0, 0, 0] = -np.inf
    with pytest.raises(ValueError, match="Image 3 of X contains NaN or inf pixels"):
        sens.transform(images)
    images = list(np.full((3, 32, 32, 3), 100.0))
    images[1][0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="Image 1 of X contains NaN or inf"):
        sens.transform(images)
    with pytest.warns(UserWarning, match=r"Every pixel of X is in \[0, 1\]"):
        sens.transform(np.full((2, 32, 32, 3), 0.5))


def test_bad_files_are_named(tiny_model, tmp_path):
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    missing = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError, match="missing.png"):
        sens.transform([missing])
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="Cannot read image file .*notes.png"):
        sens.transform([not_an_image])


def test_bad_targets_and_models():
    model = build_tiny_model()
    with pytest.raises(ValueError, match="Unknown target 'nope'.*its layers: rescaling"):
        SensitivityTransformer(model=model, target="nope").fit(None)
    with pytest.raises(ValueError, match="Class index 7 is out of range for a model with 2 classes"):
        SensitivityTransformer(model=model, target=7).fit(None)
    with pytest.raises(ValueError, match="target must be"):
        SensitivityTransformer(model=model, target=True).fit(None)
    dense = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="target='gestalt' needs a convolutional layer"):
        SensitivityTransformer(model=dense).fit(None)
    gray = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"must take RGB images .* \(None, 8, 8, 1\)"):
        SensitivityTransformer(model=gray).fit(None)
    with pytest.raises(ValueError, match="conflicts with the model's fixed input size"):
        SensitivityTransformer(model=model, image_size=(64, 64)).fit(None)
    with pytest.raises(ValueError, match="one of the registered names \\(vgg16, .*vgg16-hed\\)"):
        SensitivityTransformer(model=3).fit(None)
    with pytest.raises(ValueError, match="neither a registered name"):
        SensitivityTransformer(model="resnet").fit(None)
    with pytest.raises(ValueError, match="aggregation"):
        SensitivityTransformer(model=model, aggregation="median").fit(None)


@pytest.mark.backends
def test_fully_convolutional_model_uses_image_size():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3, activation="relu")])
    sens = SensitivityTransformer(model=model, image_size=(16, 12), pool=1, preprocessing="none")
    assert sens.fit(None).input_size_ == (16, 12)
    assert sens.transform(np.full((2, 40, 40, 3), 10.0)).shape == (2, 16 * 12)
    default_size = SensitivityTransformer(model=model, preprocessing="none").fit(None)
    assert default_size.input_size_ == (224, 224)


def test_models_load_from_keras_files_in_safe_mode(tiny_model, scenes, tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model.save(path)
    expected = SensitivityTransformer(model=tiny_model).fit(None).transform(scenes[0][:3])
    from_file = SensitivityTransformer(model=str(path)).fit(None)
    np.testing.assert_allclose(from_file.transform(scenes[0][:3]), expected, rtol=1e-5)
    unsafe = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Conv2D(2, 3)]
    )
    unsafe_path = tmp_path / "unsafe.keras"
    unsafe.save(unsafe_path)
    with pytest.raises(ValueError, match=r"Cannot load .*unsafe.keras.* in Keras' safe mode: its Lambda"):
        SensitivityTransformer(model=str(unsafe_path)).fit(None)
    with pytest.raises(FileNotFoundError, match="absent.keras"):
        SensitivityTransformer(model=str(tmp_path / "absent.keras")).fit(None)


@pytest.mark.backends
def test_fit_does_not_compute_gradients(tiny_model, backward_calls):
    SensitivityTransformer(model=tiny_model).fit(make_scenes(3)[0])
    assert backward_calls == []


@pytest.mark.parametrize("normalize", ["max", "sum", "standard", None])
def test_constant_images_give_finite_maps(tiny_model, normalize):
    constant = np.stack([np.zeros((32, 32, 3)), np.full((32, 32, 3), 255.0), np.full((32, 32, 3), 77.0)])
    maps = SensitivityTransformer(model=tiny_model, normalize=normalize, cache=False).fit(None).transform(constant)
    assert np.all(np.isfinite(maps))


def test_public_seams_gradients_key_and_engine(tiny_model, scenes):
    from sklearn_sensloc._maps._steps import sensitivity_maps

    images = scenes[0][:10]
    sens = SensitivityTransformer(model=tiny_model, pool=2, batch_size=4, cache=False).fit(None)
    batches = list(sens.iter_gradients(images))
    assert [start for start, _ in batches] == [0, 4, 8]
    assert all(g.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) for _, g in batches)
    maps = np.concatenate([sensitivity_maps(g, "max", 2, "max") for _, g in batches])
    np.testing.assert_allclose(maps.reshape(10, -1), sens.transform(images), rtol=1e-6)
    # Equal gradients, equal keys; only engine-side parameters change the key.
    assert clone(sens).set_params(pool=4).fit(None).gradient_key_ == sens.gradient_key_
    assert clone(sens).set_params(target="class").fit(None).gradient_key_ != sens.gradient_key_
    restored = pickle.loads(pickle.dumps(sens))
    # The engine is not pickled: gradient_engine() rebuilds it, once.
    assert restored.gradient_engine() is restored.gradient_engine()
    np.testing.assert_allclose(restored.transform(images), sens.transform(images), rtol=1e-6)


@pytest.mark.backends
def test_an_unsupported_backend_is_refused_clearly(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    with pytest.raises(ValueError, match="Keras backend is 'numpy'.*tensorflow, jax, torch.*KERAS_BACKEND"):
        SensitivityTransformer(model=build_tiny_model(seed=5)).fit(None)


class HostRoundTrip(keras.layers.Layer):
    """Sends its input through numpy: no backend can trace or differentiate that."""

    def call(self, inputs):
        return keras.ops.convert_to_tensor(np.asarray(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape


class Constant(keras.layers.Layer):
    """Forgets its input: nothing after it depends on the pixels."""

    def call(self, inputs):
        return keras.ops.zeros_like(inputs)


@pytest.mark.backends
def test_a_model_the_backend_cannot_differentiate_is_named():
    images = np.full((2, 8, 8, 3), 100.0)

    def maps(layer):
        model = keras.Sequential([keras.Input((8, 8, 3)), layer, keras.layers.Conv2D(2, 3)], name="odd")
        return SensitivityTransformer(model=model, preprocessing="none").fit(None).transform(images)

    backend = keras.backend.backend()
    with pytest.raises(RuntimeError, match=rf"model 'odd' failed on the Keras {backend} backend: .+must run"):
        maps(HostRoundTrip())
    if backend == "jax":
        # jax.grad gives zeros where nothing depends on the input.
        np.testing.assert_array_equal(maps(Constant()), 0.0)
    else:
        with pytest.raises(ValueError, match=f"of model 'odd' does not depend on its input on the Keras {backend}"):
            maps(Constant())


@pytest.mark.backends
@pytest.mark.parametrize("method", ["gradient", "integrated_gradients", "gradcam"])
def test_maps_leave_the_model_untouched(method):
    model = build_tiny_model(seed=6)
    before = [keras.ops.convert_to_numpy(weight) for weight in model.weights]
    sens = SensitivityTransformer(model=model, method=method, target="class", n_samples=2, cache=False)
    sens.fit(None).transform(make_scenes(3)[0])
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(weight), value)
    if keras.backend.backend() == "torch":
        # Only the input is differentiated: no weight gradient is accumulated.
        assert all(weight.value.grad is None for weight in model.weights)
    assert "call" not in vars(model.get_layer("last_conv"))
