"""Maps made on the engine's device (``map_device="keras"``) and uint8 images sent as they are.

Marked ``backends``: tests/test_backends.py runs them on JAX and PyTorch too.
"""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from conftest import IMAGE_SIZE, write_png_files
from sklearn_sensloc import BoxRegressor, GradientCache, MapStore, SensitivityTransformer
from sklearn_sensloc._engine import SAMPLING_METHODS
from sklearn_sensloc._engine._map_steps import device_maps
from sklearn_sensloc._maps._steps import sensitivity_maps

SETTINGS = [(aggregation, pool, normalize) for aggregation in ("max", "mean")
            for pool in (1, 3, 4, 9) for normalize in ("max", "sum", "standard", None)]


def assert_same_maps(found, expected, tolerance=2e-6):
    """Equal to float32 rounding: within ``tolerance`` times each map's largest magnitude.

    The numpy steps normalize pooled maps in float64; standardized, a pooled
    map's float32 rounding grows to about 1e-6 of its largest value, the
    other settings' to a few 1e-7.
    """
    assert found.shape == expected.shape
    flat = expected.reshape(len(expected), -1)
    scale = np.abs(flat).max(axis=1).reshape(-1, *[1] * (expected.ndim - 1))
    error = np.abs(found - expected)
    assert np.all(error <= tolerance * scale), (error / np.where(scale > 0, scale, 1)).max()


@pytest.mark.backends
def test_device_steps_equal_the_numpy_steps():
    from keras import ops

    rng = np.random.default_rng(3)
    gradients = np.abs(rng.standard_normal((5, 30, 28, 3))).astype(np.float32)
    # Maps of very different scales, and a constant one.
    gradients *= 10.0 ** rng.uniform(-6, 2, (5, 1, 1, 1)).astype(np.float32)
    gradients[2] = 0.0
    for setting in SETTINGS:
        found = ops.convert_to_numpy(device_maps(ops.convert_to_tensor(gradients), *setting))
        assert np.all(np.isfinite(found)), setting
        assert_same_maps(found, sensitivity_maps(gradients, *setting))


@pytest.mark.backends
@pytest.mark.parametrize("method", ["gradient", "gradcam", "smoothgrad"])
def test_maps_made_on_the_device_equal_the_hosts(tiny_model, scenes, method, engine_calls):
    images = scenes[0][:10]
    params = dict(model=tiny_model, method=method, n_samples=2, batch_size=4, cache=False, pool=3,
                  normalize="standard")
    on_host = SensitivityTransformer(**params, map_device="cpu").fit(None)
    on_device = SensitivityTransformer(**params, map_device="keras").fit(None)
    assert (on_host.map_device_, on_device.map_device_) == ("cpu", "keras")
    expected = on_host.transform(images)
    engine_calls.clear()
    found = on_device.transform(images)
    assert_same_maps(found, expected)
    kinds = [kind for kind, *_ in engine_calls]
    # One pass per batch; sampling methods sum their gradients on the host first.
    assert kinds == ["gradients" if method in SAMPLING_METHODS else "maps"] * 3
    # Without a cache nor a store, only the maps come back.
    assert all(not back for kind, _, _, back in engine_calls if kind == "maps")


@pytest.mark.backends
def test_a_cache_keeps_the_gradients_and_a_search_makes_one_pass_per_image(
    tiny_model, scenes, engine_calls
):
    images = scenes[0][:12]
    boxes = scenes[1][:12]
    cache = GradientCache()
    sens = SensitivityTransformer(model=tiny_model, batch_size=4, cache=cache, map_device="keras")
    first = sens.fit(None).transform(images)
    assert [(kind, back) for kind, _, _, back in engine_calls] == [("maps", True)] * 3
    assert cache.gradients.info()["entries"] == 12
    # Other map-side settings come from the kept gradients, on the device too, without a pass.
    engine_calls.clear()
    cache.maps.clear()
    again = clone(sens).set_params(aggregation="mean", pool=2).fit(None).transform(images)
    assert engine_calls == []
    on_host = SensitivityTransformer(model=tiny_model, aggregation="mean", pool=2, cache=False,
                                     map_device="cpu").fit(None).transform(images)
    assert_same_maps(again, on_host)
    assert_same_maps(sens.transform(images), first)
    cache.clear()
    engine_calls.clear()
    pipeline = Pipeline([("maps", sens), ("boxes", BoxRegressor(max_iter=2, random_state=0))])
    search = GridSearchCV(pipeline, {"maps__aggregation": ["max", "mean"], "maps__pool": [2, 4]},
                          cv=3).fit(images, boxes)
    assert search.best_estimator_.named_steps["maps"].map_device_ == "keras"
    assert sum(rows for _, rows, _, _ in engine_calls) == len(images)


@pytest.mark.backends
def test_a_batch_with_kept_and_new_images_is_made_whole(tiny_model, scenes, engine_calls):
    images = scenes[0][:6]
    cache = GradientCache()
    sens = SensitivityTransformer(model=tiny_model, batch_size=4, cache=cache, pool=2,
                                  map_device="keras").fit(None)
    sens.transform(images[:2])
    cache.maps.clear()
    engine_calls.clear()
    found = sens.transform(images)
    # The first batch's two new images: their gradients, then the whole batch's maps.
    assert [(kind, rows) for kind, rows, _, _ in engine_calls] == [("gradients", 2), ("maps", 2)]
    expected = SensitivityTransformer(model=tiny_model, pool=2, cache=False,
                                      map_device="cpu").fit(None).transform(images)
    assert_same_maps(found, expected)


@pytest.mark.backends
def test_several_settings_and_map_stores_from_one_pass_on_the_device(
    tiny_model, scenes, tmp_path, engine_calls
):
    images = scenes[0][:8]
    settings = [("max", 1, "max"), ("mean", 4, "sum"), ("max", 3, "standard")]
    made, stores = {}, {}
    for device in ("cpu", "keras"):
        sens = SensitivityTransformer(model=tiny_model, batch_size=4, cache=False, map_device=device)
        parts = sens.fit(None).gradient_provider().map_parts(images, [(range(2, 8), settings)])
        ((rows, made[device]),) = list(parts)
        assert rows == range(2, 8)
        stores[device] = MapStore.create(tmp_path / device, sens, images).compute().to_numpy()
    assert [(kind, rows, back) for kind, rows, _, back in engine_calls] == [
        ("gradients", 4, True), ("gradients", 2, True), ("gradients", 4, True), ("gradients", 4, True),
        ("maps", 4, False), ("maps", 2, False), ("maps", 4, False), ("maps", 4, False)]
    for setting in settings:
        assert_same_maps(made["keras"][setting], made["cpu"][setting])
    assert_same_maps(stores["keras"], stores["cpu"])


@pytest.mark.backends
@pytest.mark.parametrize("map_device", ["cpu", "keras"])
def test_uint8_images_go_to_the_device_as_uint8(tiny_model, scenes, tmp_path, map_device, engine_calls):
    pixels = np.clip(scenes[0][:5], 0, 255).round().astype(np.uint8)
    paths = write_png_files(pixels, tmp_path)
    sens = SensitivityTransformer(model=tiny_model, batch_size=8, cache=False,
                                  map_device=map_device).fit(None)
    from_float = sens.transform(pixels.astype(np.float64))
    from_uint8 = sens.transform(pixels)
    from_files = sens.transform(paths)
    assert [dtype for _, _, dtype, _ in engine_calls] == ["float32", "uint8", "uint8"]
    # The same pixels, the same gradients; on the device the steps are
    # compiled with the pass, into one program per pixel dtype and batch
    # shape, which XLA may fuse and sum in another order.
    same = np.testing.assert_array_equal if map_device == "cpu" else assert_same_maps
    same(from_uint8, from_float)
    same(from_files, from_float)
    # A batch with one float image goes as float32.
    mixed = sens.transform([pixels[0], pixels[1].astype(np.float32)])
    assert engine_calls[-1][2] == "float32"
    same(mixed, from_float[:2])


def test_auto_makes_maps_on_the_device_only_on_an_accelerator(tiny_model, monkeypatch):
    sens = SensitivityTransformer(model=tiny_model, image_size=IMAGE_SIZE).fit(None)
    assert sens.map_device_ == "cpu" and not sens.gradient_engine().on_accelerator
    assert sens.gradient_provider().map_device == "cpu"
    monkeypatch.setattr(sens.gradient_engine(), "on_accelerator", True)
    assert sens.gradient_provider().map_device == "keras"
    assert sens.set_params(map_device="cpu").gradient_provider().map_device == "cpu"
    with pytest.raises(ValueError, match="map_device"):
        SensitivityTransformer(model=tiny_model, map_device="gpu").fit(None)


@pytest.mark.parametrize("map_device", ["cpu", "keras"])
def test_timings_make_maps_where_transform_does(tiny_model, scenes, map_device, engine_calls):
    from types import SimpleNamespace

    from sklearn_sensloc._metrics._timings import measure_timings

    sens = SensitivityTransformer(model=tiny_model, batch_size=4, map_device=map_device).fit(None)
    measured = measure_timings(SimpleNamespace(fit=lambda: sens), scenes[0][:8], 8, "max")
    assert measured["map_device"] == map_device and measured["maps_s"] > 0
    kind = "maps" if map_device == "keras" else "gradients"
    # A warm-up batch, then the two timed ones.
    assert [call[0] for call in engine_calls] == [kind] * 3
