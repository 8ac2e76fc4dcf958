"""Raw gradients are computed once per image and model, and reused."""

import os
import time

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from conftest import build_tiny_model, make_scenes
from sklearn_sensloc import BoxRegressor, CorLocScorer, SensitivityTransformer, gradient_cache
from sklearn_sensloc._cache import GradientCache


@pytest.fixture(autouse=True)
def empty_cache():
    gradient_cache.clear()
    yield
    gradient_cache.clear()


def test_grid_search_computes_each_image_once(tiny_model, backward_calls):
    X, boxes, _ = make_scenes(60, seed=5)
    pipe = Pipeline([("sens", SensitivityTransformer(model=tiny_model, pool=2)), ("box", BoxRegressor(max_iter=5))])
    grid = {
        "sens__aggregation": ["max", "mean"],
        "sens__normalize": ["max", "standard"],
        "box__eta0": [0.01, 0.1, 0.2],
    }
    before = sum(backward_calls)
    search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
    assert len(search.cv_results_["params"]) == 12
    assert sum(backward_calls) - before == len(X)
    assert gradient_cache.info()["hits"] > 0


def test_cached_maps_equal_fresh_ones(tiny_model, scenes, backward_calls):
    images = scenes[0][:7]
    fresh = SensitivityTransformer(model=tiny_model, cache=False).fit(None).transform(images)
    cached = SensitivityTransformer(model=tiny_model, batch_size=3)
    first = cached.fit(None).transform(images[:4])
    before = sum(backward_calls)
    again = cached.transform(images)
    assert sum(backward_calls) - before == 3
    # Cached rows come back bit for bit; rows computed in batches of another
    # composition may differ in the last float32 bits (oneDNN's blocking).
    np.testing.assert_array_equal(again[:4], first)
    np.testing.assert_allclose(again, fresh, rtol=1e-5, atol=1e-7)


def test_no_false_hits_across_models_targets_and_images(scenes):
    images = scenes[0][:3]
    first, second = build_tiny_model(seed=1), build_tiny_model(seed=2)
    maps_first = SensitivityTransformer(model=first).fit(None).transform(images)
    maps_second = SensitivityTransformer(model=second).fit(None).transform(images)
    assert not np.allclose(maps_first, maps_second)
    by_class = SensitivityTransformer(model=first, target="class").fit(None).transform(images)
    assert not np.allclose(maps_first, by_class)
    shifted = SensitivityTransformer(model=first).fit(None).transform(images[::-1].copy())
    np.testing.assert_array_equal(shifted, maps_first[::-1])


def test_cache_disabled_always_recomputes(tiny_model, scenes, backward_calls):
    sens = SensitivityTransformer(model=tiny_model, cache=False).fit(None)
    before = sum(backward_calls)
    sens.transform(scenes[0][:4])
    sens.transform(scenes[0][:4])
    assert sum(backward_calls) - before == 8
    assert gradient_cache.info()["entries"] == 0


def test_disk_store_is_shared_and_survives_the_process_cache(
    tiny_model, scenes, tmp_path, backward_calls
):
    images = scenes[0][:5]
    expected = SensitivityTransformer(model=tiny_model, memory=tmp_path).fit(None).transform(images)
    files = list((tmp_path / "sensloc-gradients").rglob("*.npy"))
    assert len(files) == 5
    gradient_cache.clear()
    before = sum(backward_calls)
    again = SensitivityTransformer(model=tiny_model, memory=joblib.Memory(tmp_path, verbose=0))
    np.testing.assert_array_equal(again.fit(None).transform(images), expected)
    assert sum(backward_calls) == before
    # A damaged entry is recomputed, not trusted.
    files[0].write_bytes(b"not an array")
    gradient_cache.clear()
    np.testing.assert_array_equal(again.transform(images), expected)
    assert sum(backward_calls) == before + 1
    assert not list((tmp_path / "sensloc-gradients").rglob("*.tmp"))


def test_rewritten_file_is_recomputed(tiny_model, scenes, tmp_path):
    path = tmp_path / "scene.png"
    first, second = np.round(scenes[0][:2]).astype(np.uint8)
    Image.fromarray(first).save(path)
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    maps_first = sens.transform([path])
    Image.fromarray(second).save(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    np.testing.assert_allclose(sens.transform([path]), sens.transform(second[None]), rtol=1e-6)
    assert not np.allclose(maps_first, sens.transform([path]))


def test_lru_is_bounded_in_bytes():
    cache = GradientCache(max_bytes=3 * 400)
    for i in range(5):
        cache.put(("model", str(i)), np.zeros(100, np.float32))
    info = cache.info()
    assert info["entries"] == 3 and info["bytes"] == 1200
    assert cache.get(("model", "0")) is None
    assert cache.get(("model", "4")) is not None
    cache.put(("model", "big"), np.zeros(1000, np.float32))
    assert cache.get(("model", "big")) is None
