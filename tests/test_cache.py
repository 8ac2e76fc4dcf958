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
from sklearn_sensloc import (
    BoxRegressor,
    CorLocScorer,
    GradientCache,
    SensitivityTransformer,
    gradient_cache,
)
from sklearn_sensloc._maps._cache import ENTRY_BYTES


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
    cache = GradientCache(max_bytes=3 * (400 + ENTRY_BYTES))
    for i in range(5):
        cache.gradients.put(("model", str(i)), np.zeros(100, np.float32))
    info = cache.info()
    assert info["entries"] == 3 and info["bytes"] == 3 * (400 + ENTRY_BYTES)
    assert cache.gradients.get(("model", "0")) is None
    assert cache.gradients.get(("model", "4")) is not None
    cache.gradients.put(("model", "big"), np.zeros(1000, np.float32))
    assert cache.gradients.get(("model", "big")) is None
    # Every kind shares the one bound, in one order.
    cache.maps.put(("maps", "0"), np.zeros(100, np.float32))
    assert cache.info()["entries"] == 3 and cache.maps.info()["entries"] == 1
    assert cache.gradients.get(("model", "2")) is None
    with pytest.raises(ValueError, match="max_bytes must be an int >= 0; got -1"):
        GradientCache(max_bytes=-1)


def test_the_bytes_counted_cover_the_memory_held():
    import tracemalloc

    cache = GradientCache(max_bytes=1 << 30)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            # A map of a search, as the provider keeps it: 16x16 floats per image.
            key = (f"{i:032x}", f"{i + 10**6:032x}")
            row = np.zeros(256, np.float32)
            row.flags.writeable = False
            cache.maps.put(key, row)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.info()["bytes"] >= held > 2000 * 1024


def test_maps_of_the_same_images_are_made_once_and_equal(
    tiny_model, scenes, backward_calls, monkeypatch
):
    from sklearn_sensloc._maps import _provider

    made = []
    original = _provider.sensitivity_maps
    monkeypatch.setattr(_provider, "sensitivity_maps",
                        lambda gradients, *args: made.append(len(gradients)) or original(gradients, *args))
    images = scenes[0][:9]
    sens = SensitivityTransformer(model=tiny_model, batch_size=4).fit(None)
    first = sens.transform(images)
    assert made == [4, 4, 1] and gradient_cache.maps.info()["entries"] == 9
    # Another array of the same images (as a search's splits are) finds the maps.
    again = sens.transform(images.copy())
    np.testing.assert_array_equal(again, first)
    # So do other sets of them, in other batches; a batch with one new image is made whole.
    np.testing.assert_array_equal(sens.transform(images[[8, 2, 5, 0, 1]]), first[[8, 2, 5, 0, 1]])
    assert made == [4, 4, 1]
    with_new = sens.transform(np.concatenate([images[:3], scenes[0][9:11]]))
    np.testing.assert_array_equal(with_new[:3], first[:3])
    assert made == [4, 4, 1, 4, 1]
    # Without the maps, from the cached gradients: the same, bit for bit.
    gradient_cache.maps.clear()
    np.testing.assert_array_equal(sens.transform(images), first)
    assert sum(backward_calls) == len(images) + 2
    # A caller changing the maps it got changes nothing kept.
    again[:] = -1
    np.testing.assert_array_equal(sens.transform(images), first)


def test_maps_are_kept_per_map_side_parameters(tiny_model, scenes):
    images = scenes[0][:5]
    settings = [{}, {"aggregation": "mean"}, {"pool": 2}, {"normalize": "sum"}]
    expected = [SensitivityTransformer(model=tiny_model, **params).fit(None).transform(images)
                for params in settings]
    assert gradient_cache.maps.info()["entries"] == 4 * len(images)
    for params, maps in zip(settings, expected):
        sens = SensitivityTransformer(model=tiny_model, **params).fit(None)
        np.testing.assert_array_equal(sens.transform(images), maps)
    assert gradient_cache.maps.info()["hits"] == 4 * len(images)


def test_changed_images_get_their_own_maps(tiny_model, scenes):
    images = scenes[0][:4].copy()
    sens = SensitivityTransformer(model=tiny_model).fit(None)
    before = sens.transform(images)
    images[2] = scenes[0][7]  # changed in place: the same array object
    after = sens.transform(images)
    np.testing.assert_array_equal(after[[0, 1, 3]], before[[0, 1, 3]])
    uncached = SensitivityTransformer(model=tiny_model, cache=False).fit(None)
    np.testing.assert_allclose(after[2], uncached.transform(scenes[0][7:8])[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(after[2], before[2])


def test_clearing_the_cache_drops_the_maps_and_no_cache_keeps_none(tiny_model, scenes, backward_calls):
    images = scenes[0][:3]
    SensitivityTransformer(model=tiny_model).fit(None).transform(images)
    gradient_cache.clear()
    assert gradient_cache.maps.info()["entries"] == 0
    SensitivityTransformer(model=tiny_model, cache=False).fit(None).transform(images)
    assert gradient_cache.maps.info()["entries"] == 0
    before = sum(backward_calls)
    SensitivityTransformer(model=tiny_model).fit(None).transform(images)
    assert sum(backward_calls) - before == len(images)


def test_search_results_equal_without_the_maps_and_key_memos(tiny_model, monkeypatch):
    X, boxes, _ = make_scenes(45, seed=3)
    pipe = Pipeline([("sens", SensitivityTransformer(model=tiny_model, pool=2)),
                     ("box", BoxRegressor(max_iter=3, random_state=0))])
    grid = {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}

    def search():
        gradient_cache.clear()
        fitted = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
        return fitted.cv_results_["mean_test_score"], fitted.best_estimator_[-1].coef_

    scores, coef = search()
    assert gradient_cache.maps.info()["hits"] > 0
    monkeypatch.setattr(gradient_cache.maps, "put", lambda *args: None)
    monkeypatch.setattr(gradient_cache.image_keys, "put", lambda *args, **kwargs: None)
    scores_without, coef_without = search()
    assert gradient_cache.maps.info()["entries"] == 0
    np.testing.assert_array_equal(scores_without, scores)
    np.testing.assert_array_equal(coef_without, coef)


def test_lru_counts_the_size_it_is_given():
    cache = GradientCache(max_bytes=100 + ENTRY_BYTES)
    cache.image_keys.put("a", "key of a", size=60)
    cache.image_keys.put("b", "key of b", size=60)
    assert cache.image_keys.get("a") is None and cache.image_keys.get("b") == "key of b"
    assert cache.image_keys.info()["bytes"] == 60 + ENTRY_BYTES
    assert cache.image_keys.info()["hits"] == 1 and cache.image_keys.info()["misses"] == 1
    cache.image_keys.clear()
    assert cache.info() == {"entries": 0, "bytes": 0, "max_bytes": 100 + ENTRY_BYTES,
                            "hits": 0, "misses": 0}


def test_a_cache_of_ones_own_is_used_shared_by_clones_and_sized(tiny_model, scenes,
                                                                  backward_calls):
    import pickle
    import warnings

    from sklearn.base import clone

    images = scenes[0][:6]
    own = GradientCache(max_bytes=64 << 20)
    sens = SensitivityTransformer(model=tiny_model, cache=own)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the bool and the object are both plain values
        maps = sens.fit(None).transform(images)
        SensitivityTransformer(model=tiny_model, cache=True).fit(None)
    assert own.gradients.info()["entries"] == own.maps.info()["entries"] == len(images)
    assert gradient_cache.info()["entries"] == 0, "the package's cache is left alone"
    cloned = clone(sens).set_params(aggregation="mean").fit(None)
    assert cloned.cache is own
    before = sum(backward_calls)
    cloned.transform(images)
    assert sum(backward_calls) == before, "a clone finds the gradients in the shared cache"
    np.testing.assert_array_equal(sens.transform(images), maps)
    assert repr(own) == "GradientCache(max_bytes=67108864)"
    restored = pickle.loads(pickle.dumps(sens))
    assert restored.cache is not own and restored.cache.max_bytes == own.max_bytes
    assert restored.cache.info()["entries"] == 0
    own.clear()
    assert own.info()["entries"] == 0
    # A cache that keeps nothing: every call computes.
    nothing = SensitivityTransformer(model=tiny_model, cache=GradientCache(max_bytes=0))
    before = sum(backward_calls)
    np.testing.assert_array_equal(nothing.fit(None).transform(images), maps)
    nothing.transform(images)
    assert sum(backward_calls) - before == 2 * len(images)
    with pytest.raises(Exception, match="cache"):
        SensitivityTransformer(model=tiny_model, cache="yes").fit(None)
