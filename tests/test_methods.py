"""Every saliency method against a reference computed directly, and in a search."""

import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from conftest import IMAGE_SIZE, make_scenes
from sklearn_sensloc import (
    BoxRegressor,
    CorLocScorer,
    HeuristicBoxEstimator,
    SensitivityTransformer,
    gradient_cache,
)
from sklearn_sensloc._engine import image_seeds
from sklearn_sensloc._engine._targets import adding_to_output
from test_transformer import smooth_model

METHODS = ["gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam"]


@pytest.fixture(autouse=True)
def empty_cache():
    gradient_cache.clear()
    yield
    gradient_cache.clear()


def raw_engine(model, method, target=0, preprocessing="tf", **params):
    """The engine of a transformer that neither pools nor normalizes."""
    sens = SensitivityTransformer(
        model=model, method=method, target=target, preprocessing=preprocessing, cache=False, **params
    )
    return sens.fit(None).gradient_engine()


def target_gradient(model, inputs, target):
    """Signed gradient of the target with respect to the model's own input, by GradientTape.

    TensorFlow only: the references of the TensorFlow engine's exact noise.
    """
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        total = tf.reduce_sum(model(inputs)[:, target])
    return tape.gradient(total, inputs).numpy()


def images(n=3, size=8, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def to_numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


@pytest.mark.backends
def test_gradient_x_input_multiplies_by_the_preprocessed_input():
    model, x = smooth_model(), images()
    inputs = x / 127.5 - 1.0
    # |g * u| = |g| * |u|, with |g| the plain map of the model on its own input u.
    expected = raw_engine(model, "gradient", target=1, preprocessing="none")(inputs) * np.abs(inputs)
    np.testing.assert_allclose(raw_engine(model, "gradient_x_input", target=1)(x), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.backends
def test_smoothgrad_without_noise_is_the_gradient():
    model, x = smooth_model(), images()
    smooth = raw_engine(model, "smoothgrad", noise_level=0.0, n_samples=3)(x)
    np.testing.assert_allclose(smooth, raw_engine(model, "gradient")(x), rtol=1e-5, atol=1e-9)


def test_smoothgrad_is_the_abs_of_the_mean_noisy_gradient():
    # TensorFlow's noise, drawn as before the other backends came: its stored maps stay valid.
    model, x = smooth_model(), images()
    # 4 samples in chunks of 5 rows: chunks straddle images.
    engine = raw_engine(model, "smoothgrad", n_samples=4, noise_level=0.1, random_state=3, batch_size=5)
    seeds = image_seeds(x, 3)
    expected = np.empty_like(x)
    for i, image in enumerate(x):
        sigma = 0.1 * (image.max() - image.min())
        noisy = [image + sigma * tf.random.stateless_normal(image.shape, [seeds[i], k]) for k in range(4)]
        pixels_gradient = target_gradient(model, np.stack(noisy) / 127.5 - 1.0, 0) / 127.5
        expected[i] = np.abs(pixels_gradient.mean(axis=0))
    np.testing.assert_allclose(engine(x), expected, rtol=1e-4, atol=1e-9)


@pytest.mark.backends
def test_smoothgrad_averages_the_gradient_over_the_backends_noise():
    # x -> sum(w * x**2) has the gradient 2 w x, linear in x: the mean noisy
    # gradient is 2 w (x + sigma * mean noise), exact for the noise drawn.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    squares = keras.layers.Multiply()([inputs, inputs])
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(squares)))
    w = model.layers[-1].get_weights()[0][:, 0].reshape(6, 6, 3)
    x = images(2, size=6) / 255
    engine = raw_engine(model, "smoothgrad", preprocessing="none", n_samples=3, noise_level=0.5, batch_size=4)
    seeds = image_seeds(x, 0)
    pairs = keras.ops.convert_to_tensor([[seed, k] for seed in seeds for k in range(3)], "int32")
    draw = engine._backend_module.normal_noise
    many = to_numpy(draw(pairs, (64, 64, 3)))  # 73,728 draws: moments to about 0.004
    assert abs(many.mean()) < 0.02 and abs(many.std() - 1) < 0.02
    noise = to_numpy(draw(pairs, (6, 6, 3))).reshape(2, 3, 6, 6, 3)
    assert not np.allclose(noise[0], noise[1])
    sigmas = 0.5 * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    expected = np.abs(2 * w * (x + sigmas[:, None, None, None] * noise.mean(axis=1)))
    np.testing.assert_allclose(engine(x), expected, rtol=1e-4, atol=1e-7)


@pytest.mark.backends
def test_smoothgrad_noise_depends_on_the_image_and_seed_only(tiny_model, scenes):
    x = scenes[0][:5]
    params = dict(model=tiny_model, method="smoothgrad", n_samples=3, pool=1, cache=False)
    together = SensitivityTransformer(**params, batch_size=4).fit(None).transform(x)
    alone = SensitivityTransformer(**params, batch_size=1).fit(None).transform(x[3:4])
    np.testing.assert_allclose(alone[0], together[3], rtol=1e-5, atol=1e-8)
    other_seed = SensitivityTransformer(**params, random_state=1).fit(None).transform(x)
    assert not np.allclose(other_seed, together, rtol=1e-3)


@pytest.mark.backends
def test_integrated_gradients_completeness():
    model, x = smooth_model(), images(2)
    baseline = 30.0
    engine = raw_engine(model, "integrated_gradients", target=2, n_samples=64, baseline=baseline, batch_size=48)
    signed = (x - baseline) * engine._summed_gradients(x) / 64
    scores = to_numpy(model(x / 127.5 - 1.0))[:, 2]
    start = to_numpy(model(np.full_like(x, baseline) / 127.5 - 1.0))[:, 2]
    np.testing.assert_allclose(signed.sum(axis=(1, 2, 3)), scores - start, rtol=2e-3)
    np.testing.assert_allclose(engine(x), np.abs(signed), rtol=1e-6)


@pytest.mark.backends
@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients"])
def test_sampling_methods_score_the_class_predicted_for_the_image(method):
    # Points far from the image (near a black baseline, or very noisy) are
    # often predicted as another class; every point still scores the image's.
    model, x = smooth_model(), images(6)
    predicted = to_numpy(model(x / 127.5 - 1.0)).argmax(axis=1)
    params = dict(n_samples=8, noise_level=1.0)
    by_class = raw_engine(model, method, target="class", **params)(x)
    for i, k in enumerate(predicted):
        fixed = raw_engine(model, method, target=int(k), **params)(x[i : i + 1])
        np.testing.assert_allclose(by_class[i], fixed[0], rtol=1e-4, atol=1e-8)


@pytest.mark.backends
def test_integrated_gradients_of_a_linear_model_is_exact():
    keras.utils.set_random_seed(0)
    linear = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Flatten(), keras.layers.Dense(1)])
    weights = linear.layers[-1].get_weights()[0][:, 0].reshape(6, 6, 3)
    x = images(2, size=6)
    engine = raw_engine(linear, "integrated_gradients", preprocessing="none", n_samples=2, baseline=255)
    np.testing.assert_allclose(engine(x), np.abs((x - 255) * weights), rtol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("target", [1, "gestalt"])
def test_gradcam_matches_a_hand_written_one(target):
    model, x = smooth_model(), images(3)
    features = keras.Model(model.inputs[0], model.get_layer("top_conv").output)
    activations = to_numpy(features(x / 127.5 - 1.0))
    # After top_conv: Flatten, Dense. The gradient of score 1 with respect to
    # the activations is Dense's column 1; that of their mean, a constant.
    if target == 1:
        gradient = model.layers[-1].get_weights()[0][:, 1].reshape(activations.shape[1:])
    else:
        gradient = np.full(activations.shape[1:], 1 / activations[0].size)
    weights = gradient.mean(axis=(0, 1))
    cam = np.maximum((weights * activations).sum(axis=-1, keepdims=True), 0)
    expected = tf.image.resize(cam, (8, 8)).numpy()[..., 0]
    maps = raw_engine(model, "gradcam", target=target)(x)
    assert maps.shape == x.shape
    for channel in range(3):
        np.testing.assert_allclose(maps[..., channel], expected, rtol=1e-4, atol=1e-7)
    assert expected.max() > 0


@pytest.mark.backends
def test_gradcam_on_a_nested_layer(tiny_model, scenes):
    x = scenes[0][:4]
    base = keras.Model(tiny_model.inputs, tiny_model.get_layer("last_conv").output, name="base")
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    nested = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(base(inputs)))
    expected = SensitivityTransformer(model=tiny_model, method="gradcam", pool=1).fit(None).transform(x)
    maps = SensitivityTransformer(model=nested, method="gradcam", pool=1).fit(None).transform(x)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-7)
    # The recording of the layer's output is undone after tracing.
    assert "call" not in vars(tiny_model.get_layer("last_conv"))


def test_gradcam_wraps_its_layer_for_its_own_thread_only(tiny_model, scenes):
    x = scenes[0][:2]
    layer = tiny_model.get_layer("last_conv")
    plain = keras.ops.convert_to_numpy(tiny_model(x))
    delta = keras.ops.ones((2, *layer.output.shape[1:]))
    elsewhere = []
    with adding_to_output(layer, delta) as outputs:
        other = threading.Thread(
            target=lambda: elsewhere.append(keras.ops.convert_to_numpy(tiny_model(x))))
        other.start()
        other.join()
        assert outputs == []
        shifted = keras.ops.convert_to_numpy(tiny_model(x))
    assert len(outputs) == 1
    np.testing.assert_array_equal(elsewhere[0], plain)
    assert np.abs(shifted - plain).max() > 1e-3
    assert "call" not in vars(layer)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(tiny_model(x)), plain)


@pytest.mark.backends
@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients"])
def test_sampling_methods_bound_the_rows_per_pass_and_never_retrace(tiny_model, scenes, method):
    runs = []

    def counting(pixels):
        # Runs when the engine's function is traced (TensorFlow, JAX) or run (PyTorch).
        runs.append(pixels)
        return pixels

    engine = SensitivityTransformer(
        model=tiny_model, method=method, n_samples=5, batch_size=4, cache=False, preprocessing=counting
    ).fit(None).gradient_engine()
    compiled, rows = engine._gradients, []

    def recording(batch, owners, *extra):
        rows.append(len(owners))
        return compiled(batch, owners, *extra)

    engine._gradients = recording
    engine(scenes[0][:3])
    engine(scenes[0][:2])
    # JAX pads every pass to batch_size rows: one shape, one compiled program.
    assert rows == ([4] * 7 if engine._backend_module.FIXED_SHAPES else [4, 4, 4, 3] + [4, 4, 2])
    expected_runs = {"tensorflow": 1, "jax": 1, "torch": len(rows)}
    assert len(runs) == expected_runs[keras.backend.backend()]


@pytest.mark.backends
@pytest.mark.parametrize("method", METHODS)
def test_each_method_in_the_design_card_pipeline(tiny_model, method):
    X, boxes, _ = make_scenes(60, seed=4)
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=tiny_model, method=method, n_samples=4)),
            ("box", BoxRegressor(max_iter=5, random_state=0)),
        ]
    ).fit(X[:40], boxes[:40])
    predicted = pipe.predict(X[40:])
    assert predicted.shape == (20, 4)
    assert np.all((predicted >= 0) & (predicted <= 1))
    assert np.all(predicted[:, :2] <= predicted[:, 2:])
    assert 0 <= pipe.score(X[40:], boxes[40:]) <= 100


@pytest.mark.backends
def test_search_over_methods_runs_each_methods_backward_passes_once(tiny_model, backward_calls):
    X, boxes, _ = make_scenes(45, seed=6)
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=tiny_model, n_samples=4, batch_size=16)),
            ("box", HeuristicBoxEstimator(sigma=2, top_fraction=0.3)),
        ]
    )
    grid = {"sens__method": METHODS, "sens__aggregation": ["max", "mean"]}
    search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
    assert len(search.cv_results_["params"]) == 10
    assert search.best_params_["sens__method"] in METHODS
    assert sum(backward_calls) == len(METHODS) * len(X)


@pytest.mark.backends
def test_cache_keys_hold_only_the_parameters_a_method_uses(tiny_model, scenes, backward_calls):
    x = scenes[0][:3]

    def maps(**params):
        return SensitivityTransformer(model=tiny_model, **params).fit(None).transform(x)

    smooth = maps(method="smoothgrad", n_samples=2)
    maps(method="gradient", n_samples=2)
    maps(method="gradient", n_samples=3, noise_level=0.5)
    maps(method="gradcam", n_samples=3)
    assert sum(backward_calls) == 9
    np.testing.assert_array_equal(maps(method="smoothgrad", n_samples=2, baseline=9.0), smooth)
    assert sum(backward_calls) == 9
    assert not np.allclose(maps(method="smoothgrad", n_samples=2, noise_level=0.5), smooth)
    maps(method="integrated_gradients", n_samples=2)
    maps(method="integrated_gradients", n_samples=2, baseline=9.0)
    assert sum(backward_calls) == 18


@pytest.mark.parametrize(
    "params",
    [
        {"method": "occlusion"},
        {"n_samples": 0},
        {"noise_level": -0.1},
        {"baseline": 300.0},
        {"random_state": None},
    ],
)
def test_bad_method_parameters_are_refused_in_fit(tiny_model, params):
    sens = SensitivityTransformer(model=tiny_model, **params)
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        sens.fit(None)
