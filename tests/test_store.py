"""Out-of-core maps: an on-disk store that resumes after any interruption."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import build_tiny_model, make_scenes, write_png_files
from sklearn_sensloc import BoxRegressor, SensitivityTransformer
from sklearn_sensloc import MapStore, MapStoreMismatchError, fit_from_store
from sklearn_sensloc._maps._provider import GradientProvider

N_IMAGES = 22
BATCH = 4  # 6 batch files, the last one of 2 images


@pytest.fixture(scope="module")
def images():
    return make_scenes(N_IMAGES, seed=11)[0]


@pytest.fixture(scope="module")
def boxes():
    return make_scenes(N_IMAGES, seed=11)[1]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, images):
    directory = tmp_path_factory.mktemp("images")
    return write_png_files(images, directory, "{:03d}.png")


def transformer(model, **params):
    # No in-memory gradient cache: every image a store computes is a backward pass.
    return SensitivityTransformer(**{"model": model, "pool": 2, "batch_size": 3, "cache": False, **params})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_file, image_files):
    """An uninterrupted run over the image files, to compare resumed runs with."""
    path = tmp_path_factory.mktemp("reference") / "store"
    store = MapStore.create(path, transformer(model_file), image_files, images_per_file=BATCH)
    return store.compute().to_numpy()


def test_store_holds_the_transformer_maps(tmp_path, tiny_model, images, backward_calls):
    sens = transformer(tiny_model)
    store = MapStore.create(tmp_path / "s", sens, images, images_per_file=BATCH)
    assert (len(store), store.n_batches, store.shape) == (N_IMAGES, 6, (N_IMAGES, 256))
    assert store.missing_batches() == list(range(6)) and not store.is_complete()
    before = sum(backward_calls)
    store.compute()
    assert sum(backward_calls) - before == N_IMAGES
    assert store.is_complete() and store.missing_batches() == []
    expected = sens.transform(images)
    np.testing.assert_allclose(store.to_numpy(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(store), store.to_numpy())
    assert store.read_batch(5).shape == (2, 256)
    # Computing a complete store again does nothing.
    before = sum(backward_calls)
    store.compute()
    assert sum(backward_calls) == before
    # Read-only opening sees the same maps; a dask view of the batches too.
    reopened = MapStore.open(tmp_path / "s")
    np.testing.assert_array_equal(reopened.to_numpy(), store.to_numpy())
    lazy = reopened.to_dask()
    assert lazy.chunks[0] == (4, 4, 4, 4, 4, 2)
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), store.to_numpy())
    assert "6/6" in repr(reopened)


def test_resume_after_an_exception_computes_only_unfinished_batches(
    tmp_path, model_file, image_files, reference, backward_calls, monkeypatch
):
    path = tmp_path / "store"
    sens = transformer(model_file)
    store = MapStore.create(path, sens, image_files, images_per_file=BATCH)
    calls = {"n": 0}
    real_gradients = GradientProvider._batches

    def failing_gradients(provider, X, *args):
        # Called once per batch file.
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real_gradients(provider, X, *args)

    with monkeypatch.context() as patched:
        patched.setattr(GradientProvider, "_batches", failing_gradients)
        with pytest.raises(KeyboardInterrupt):
            store.compute()
    assert store.missing_batches() == [2, 3, 4, 5]
    assert sorted(os.listdir(path / "batches")) == ["000000.npy", "000001.npy"]

    # A new process would rebuild everything from the same arguments.
    before = sum(backward_calls)
    resumed = MapStore.create(path, transformer(model_file), image_files).compute()
    assert sum(backward_calls) - before == N_IMAGES - 2 * BATCH
    assert resumed.images_per_file == BATCH  # kept from the store
    np.testing.assert_array_equal(resumed.to_numpy(), reference)


KILLER = textwrap.dedent(
    """
    import io, os, signal, sys
    import numpy as np
    from sklearn_sensloc import SensitivityTransformer
    from sklearn_sensloc._storage._store import MapStore

    path, model, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
    real_save, writes = np.save, []

    def save(stream, array, allow_pickle=False):
        writes.append(len(array))
        if len(writes) == 4:
            # Die half-way through writing the 4th batch file: no cleanup runs.
            buffer = io.BytesIO()
            real_save(buffer, array)
            stream.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            stream.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(stream, array, allow_pickle=allow_pickle)

    np.save = save
    sens = SensitivityTransformer(model=model, pool=2, batch_size=3, cache=False)
    MapStore.create(path, sens, paths, images_per_file=4).compute()
    """
)


def test_resume_after_the_process_is_killed_mid_write(
    tmp_path, model_file, image_files, reference, backward_calls
):
    path = tmp_path / "store"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(
        [sys.executable, "-c", KILLER, str(path), model_file, *image_files],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == -9, run.stderr[-2000:]
    left = sorted(os.listdir(path / "batches"))
    # Three finished batches and the dead writer's half-written temporary file.
    finished = [name for name in left if name.endswith(".npy")]
    partial = [name for name in left if name.endswith(".tmp")]
    assert finished == ["000000.npy", "000001.npy", "000002.npy"]
    assert len(partial) == 1 and partial[0].startswith(".000003.npy.")
    assert 0 < os.path.getsize(path / "batches" / partial[0])

    store = MapStore.create(path, transformer(model_file), image_files)
    assert store.missing_batches() == [3, 4, 5]
    before = sum(backward_calls)
    store.compute()
    assert sum(backward_calls) - before == N_IMAGES - 3 * BATCH
    assert sorted(os.listdir(path / "batches")) == [f"{b:06d}.npy" for b in range(6)]
    np.testing.assert_array_equal(store.to_numpy(), reference)


def test_a_damaged_batch_file_is_never_read_as_valid(tmp_path, tiny_model, images, backward_calls):
    store = MapStore.create(tmp_path / "s", transformer(tiny_model), images, images_per_file=BATCH)
    good = store.compute().to_numpy()
    batch_file = store.batch_path(1)
    with open(batch_file, "r+b") as stream:
        stream.truncate(os.path.getsize(batch_file) - 7)
    assert store.missing_batches() == [1]
    with pytest.raises(ValueError, match="Batch 1 .* is invalid; run compute"):
        store.read_batch(1)
    with pytest.raises(ValueError, match="incomplete: 1 of 6 batches are missing"):
        next(store.iter_batches(8))
    os.unlink(batch_file)
    with pytest.raises(ValueError, match="Batch 1 .* is missing"):
        store.read_batch(1)
    before = sum(backward_calls)
    store.compute()
    assert sum(backward_calls) - before == BATCH
    np.testing.assert_array_equal(store.to_numpy(), good)


def test_a_store_of_other_maps_or_images_is_refused(tmp_path, tiny_model, images):
    path = tmp_path / "s"
    MapStore.create(path, transformer(tiny_model), images, images_per_file=BATCH).compute()

    def refused(sens, X, **kwargs):
        with pytest.raises(MapStoreMismatchError) as error:
            MapStore.create(path, sens, X, **kwargs)
        message = str(error.value)
        assert repr(str(path)) in message
        return message

    message = refused(transformer(tiny_model, aggregation="mean", normalize="sum"), images)
    assert "aggregation: store has 'max', given 'mean'" in message
    assert "normalize: store has 'max', given 'sum'" in message
    assert "pool:" not in message and "images:" not in message
    assert "model" in refused(transformer(build_tiny_model(seed=3)), images)
    assert "target: store has \"'gestalt'\", given \"'class'\"" in refused(
        transformer(tiny_model, target="class"), images
    )
    assert "store has 22 images, given 21" in refused(transformer(tiny_model), images[:-1])
    changed = images.copy()
    changed[7, 0, 0, 0] += 1
    assert "another image list (pixel values differ)" in refused(transformer(tiny_model), changed)
    assert "images_per_file: store has 4, given 5" in refused(
        transformer(tiny_model), images, images_per_file=5
    )
    # The refused attempts changed nothing; overwrite replaces the store.
    assert MapStore.open(path).is_complete()
    store = MapStore.create(path, transformer(tiny_model, pool=4), images, images_per_file=5, overwrite=True)
    assert store.missing_batches() == list(range(5)) and store.n_features == 64
    # Equal parameters given differently (batch_size and cache do not change maps) resume.
    same = SensitivityTransformer(model=tiny_model, pool=4, batch_size=7, preprocessing="none")
    assert MapStore.create(path, same, images).images_per_file == 5


def test_changed_or_reordered_image_files_are_refused(tmp_path, model_file, image_files):
    path = tmp_path / "s"
    files = image_files[:6]
    MapStore.create(path, transformer(model_file), files, images_per_file=BATCH)
    message = str(
        pytest.raises(MapStoreMismatchError, MapStore.create, path, transformer(model_file), files[::-1])
        .value
    )
    assert "another image list (files or their order differ)" in message
    stat = os.stat(files[2])
    os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        message = str(
            pytest.raises(MapStoreMismatchError, MapStore.create, path, transformer(model_file), files)
            .value
        )
    finally:
        os.utime(files[2], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert "the same files, but at least one changed" in message
    assert MapStore.create(path, transformer(model_file), files).n_batches == 2


def test_foreign_directories_and_read_only_stores(tmp_path, tiny_model, images):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and has no manifest.json"):
        MapStore.create(tmp_path / "other", transformer(tiny_model), images)
    with pytest.raises(FileNotFoundError, match="No map store at"):
        MapStore.open(tmp_path / "nothing")
    MapStore.create(tmp_path / "s", transformer(tiny_model), images[:5], images_per_file=BATCH)
    store = MapStore.open(tmp_path / "s")
    with pytest.raises(RuntimeError, match="opened for reading"):
        store.compute()
    with pytest.raises(ValueError, match="incomplete: 2 of 2 batches"):
        store.to_numpy()
    with pytest.raises(TypeError, match="SensitivityTransformer"):
        MapStore.create(tmp_path / "t", BoxRegressor(), images)


def test_iter_batches_visits_every_row_once_per_epoch(tmp_path, tiny_model, images):
    store = MapStore.create(tmp_path / "s", transformer(tiny_model), images, images_per_file=BATCH)
    maps = store.compute().to_numpy()
    ordered = list(store.iter_batches(8, shuffle=False))
    assert [len(rows) for rows, _ in ordered] == [8, 8, 6]
    np.testing.assert_array_equal(np.concatenate([rows for rows, _ in ordered]), np.arange(N_IMAGES))
    epochs = [list(store.iter_batches(8, shuffle=True, random_state=seed)) for seed in (0, 0, 1)]
    for epoch in epochs:
        rows = np.concatenate([r for r, _ in epoch])
        assert sorted(rows) == list(range(N_IMAGES))
        for r, m in epoch:
            np.testing.assert_array_equal(m, maps[r])
    first = np.concatenate([r for r, _ in epochs[0]])
    assert np.array_equal(first, np.concatenate([r for r, _ in epochs[1]]))
    assert not np.array_equal(first, np.concatenate([r for r, _ in epochs[2]]))
    assert not np.array_equal(first, np.arange(N_IMAGES))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        next(store.iter_batches(0))


def test_fit_from_store_equals_fit_in_memory(tmp_path, tiny_model, images, boxes):
    store = MapStore.create(tmp_path / "s", transformer(tiny_model), images, images_per_file=BATCH)
    maps = store.compute().to_numpy()
    # One mini-batch holding every row, no shuffling: the same SGD steps as fit.
    params = dict(random_state=0, step_size=3, max_iter=7, eta0=0.05, flip=False)
    in_memory = BoxRegressor(shuffle=False, batch_size=N_IMAGES, **params).fit(maps, boxes)
    from_store = fit_from_store(BoxRegressor(**params), store, boxes, batch_size=64, shuffle=False)
    assert from_store.n_iter_ == 7  # epochs=None: the regressor's max_iter
    np.testing.assert_allclose(from_store.coef_, in_memory.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(from_store.intercept_, in_memory.intercept_, rtol=1e-6, atol=1e-9)


def test_fit_from_store_mini_batches_epochs_and_shuffling(tmp_path, tiny_model, images, boxes):
    store = MapStore.create(tmp_path / "s", transformer(tiny_model), images, images_per_file=BATCH)
    store.compute()
    fits = [
        fit_from_store(BoxRegressor(random_state=0), str(store.path), boxes, batch_size=8,
                       epochs=3, random_state=seed)
        for seed in (0, 0, 1)
    ]
    assert fits[0].n_iter_ == 3 * 3
    np.testing.assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert not np.allclose(fits[0].coef_, fits[2].coef_)
    # The same as partial_fit over the mini-batches the store yields.
    rng = np.random.RandomState(0)
    manual = BoxRegressor(random_state=0)
    for _ in range(3):
        for rows, maps in store.iter_batches(8, random_state=rng):
            manual.partial_fit(maps, boxes[rows])
    np.testing.assert_array_equal(manual.coef_, fits[0].coef_)
    with pytest.raises(ValueError, match="boxes has 21 rows but the map store"):
        fit_from_store(BoxRegressor(), store, boxes[:-1])
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit_from_store(BoxRegressor(), store, boxes, epochs=0)


def test_compute_on_a_store_in_use_refuses_in_one_sentence(tiny_model, images, tmp_path):
    from sklearn_sensloc._utils._atomic import FolderInUseError, folder_lock

    store = MapStore.create(tmp_path / "maps", transformer(tiny_model), images[:6], images_per_file=BATCH)
    with folder_lock(store.path, "map store"):
        with pytest.raises(FolderInUseError, match=r"^The map store .* is in use by another run"):
            store.compute()
    assert store.missing_batches() == [0, 1]
    # Released when the holder is done: the computation goes through.
    assert store.compute().is_complete()


def test_compute_fills_the_gradient_cache_only_when_asked(tiny_model, images, tmp_path):
    from sklearn_sensloc import gradient_cache

    sens = transformer(tiny_model, cache=True)
    gradient_cache.clear()
    MapStore.create(tmp_path / "a", sens, images[:6], images_per_file=BATCH).compute()
    assert gradient_cache.info()["entries"] == 0
    MapStore.create(tmp_path / "b", sens, images[:6], images_per_file=BATCH).compute(cache=True)
    assert gradient_cache.gradients.info()["entries"] == 6
    gradient_cache.clear()
    assert sens.cache is True, "the user's transformer is left as it was"
