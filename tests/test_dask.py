"""The whole pipeline on a real two-process Dask cluster, worker deaths included."""

import logging
import os
import sys
import time

import cloudpickle
import dask
import dask.array as da
import dask.bag as db
import dask.dataframe as dd
import joblib
import numpy as np
import pytest
from distributed import Client, KilledWorker, LocalCluster
from dask_ml.wrappers import Incremental
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from conftest import make_scenes, write_png_files
from sklearn_sensloc import BoxRegressor, CorLocScorer, SensitivityTransformer, gradient_cache
from sklearn_sensloc._metrics._boxes import BOX_COLUMNS
from sklearn_sensloc._dask import (
    BoxIncremental,
    partial_fit_blocks,
    sensitivity_maps_dask,
)
from sklearn_sensloc import MapStore

# Worker processes cannot import this test module: ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

N_IMAGES = 40
CHUNK = 7
N_BLOCKS = 6  # the last of 5 images
TIMEOUT = 120


@pytest.fixture(scope="module")
def client():
    # One retry per task: a task whose worker died once is rerun elsewhere, a
    # task that kills two workers fails the computation with KilledWorker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        )
    client = Client(cluster, timeout=60)
    try:
        yield client
    finally:
        client.close(timeout=30)
        cluster.close(timeout=30)


@pytest.fixture(scope="module")
def data():
    images, boxes, _ = make_scenes(N_IMAGES, seed=21)
    return images, boxes


@pytest.fixture(scope="module")
def sens(tiny_model):
    return SensitivityTransformer(model=tiny_model, pool=2, batch_size=4).fit(None)


@pytest.fixture(scope="module")
def reference(sens, data):
    return sens.transform(data[0])


def compute(client, collection):
    """Compute on the cluster, never waiting forever."""
    return client.compute(collection).result(timeout=TIMEOUT)


def fit_blocks_in_dask_ml_order(regressor, maps, boxes, random_state):
    """partial_fit over the blocks of CHUNK rows, in dask_ml's shuffled order."""
    order = list(range(N_BLOCKS))
    np.random.RandomState(random_state).shuffle(order)
    assert order != sorted(order)
    for block in order:
        rows = slice(block * CHUNK, (block + 1) * CHUNK)
        regressor.partial_fit(maps[rows], boxes[rows])
    return regressor


def assert_same_fit(fitted, expected):
    assert fitted.n_iter_ == expected.n_iter_
    np.testing.assert_allclose(fitted.coef_, expected.coef_, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fitted.intercept_, expected.intercept_, rtol=1e-5, atol=1e-8)


def _engine_builds():
    """Engines built in this process since the first call; run on each worker."""
    from sklearn_sensloc._engine import GradientEngine

    original = GradientEngine.__init__
    if not hasattr(original, "builds"):

        def counting(self, *args, **kwargs):
            counting.builds += 1
            original(self, *args, **kwargs)

        counting.builds = 0
        GradientEngine.__init__ = counting
    return GradientEngine.__init__.builds


def test_maps_on_the_cluster_equal_local_maps(client, sens, data, reference, tmp_path):
    images = da.from_array(data[0], chunks=(CHUNK, 32, 32, 3))
    before = client.run(_engine_builds)
    maps = sensitivity_maps_dask(sens, images)
    assert maps.shape == (N_IMAGES, 256) and maps.dtype == np.float32
    assert maps.chunks == ((7, 7, 7, 7, 7, 5), (256,))
    np.testing.assert_allclose(compute(client, maps), reference, rtol=1e-5, atol=1e-7)

    # Each worker built the network once, however many blocks it computed.
    builds = [count - before[worker] for worker, count in client.run(_engine_builds).items()]
    assert sum(builds) >= 1 and all(count <= 1 for count in builds)

    # Paths, read on the workers, as a list cut into chunks or as a bag.
    paths = write_png_files(data[0][:12], tmp_path)
    expected = sens.transform(paths)
    from_list = sensitivity_maps_dask(sens, paths, chunk_size=5)
    assert from_list.chunks[0] == (5, 5, 2)
    np.testing.assert_allclose(compute(client, from_list), expected, rtol=1e-5, atol=1e-7)
    from_bag = sensitivity_maps_dask(sens, db.from_sequence(paths, npartitions=3))
    np.testing.assert_allclose(compute(client, from_bag), expected, rtol=1e-5, atol=1e-7)

    # A map store written here is read by the workers, one task per batch file.
    store = MapStore.create(tmp_path / "store", sens, paths, images_per_file=5).compute()
    np.testing.assert_array_equal(compute(client, store.to_dask()), store.to_numpy())


def test_incremental_fit_on_the_cluster_equals_sequential_partial_fit(
    client, sens, data, reference
):
    images, boxes = data
    maps = sensitivity_maps_dask(sens, da.from_array(images, chunks=(CHUNK, 32, 32, 3)))
    maps = client.persist(maps)
    boxes_dask = da.from_array(boxes, chunks=(CHUNK, 4))
    regressor = BoxRegressor(random_state=0, step_size=2, eta0=0.05)
    inc = BoxIncremental(regressor, shuffle_blocks=True, random_state=3).fit(maps, boxes_dask)

    sequential = fit_blocks_in_dask_ml_order(
        BoxRegressor(random_state=0, step_size=2, eta0=0.05), reference, boxes, random_state=3
    )
    assert_same_fit(inc.estimator_, sequential)
    assert not hasattr(regressor, "estimators_")  # fitted a clone

    predicted = inc.predict(maps)
    assert isinstance(predicted, da.Array) and predicted.chunks == (maps.chunks[0], (4,))
    np.testing.assert_allclose(
        compute(client, predicted), sequential.predict(reference), rtol=1e-5, atol=1e-7
    )
    assert inc.score(maps, boxes_dask) == pytest.approx(sequential.score(reference, boxes))

    # Numpy boxes are cut into the blocks of the maps; partial_fit continues.
    again = BoxIncremental(BoxRegressor(random_state=0, step_size=2, eta0=0.05), random_state=3)
    again.fit(maps, boxes)
    np.testing.assert_allclose(again.estimator_.coef_, sequential.coef_, rtol=1e-5, atol=1e-8)
    again.partial_fit(maps, boxes)
    assert again.estimator_.n_iter_ == 12
    unshuffled = partial_fit_blocks(BoxRegressor(random_state=0), maps, boxes, shuffle_blocks=False)
    in_order = BoxRegressor(random_state=0)
    for start in range(0, N_IMAGES, CHUNK):
        in_order.partial_fit(reference[start : start + CHUNK], boxes[start : start + CHUNK])
    np.testing.assert_allclose(unshuffled.coef_, in_order.coef_, rtol=1e-5, atol=1e-8)


def test_dask_ml_incremental_fits_boxes_given_as_a_dask_dataframe(client, sens, data, reference):
    # dask_ml's own wrapper, unchanged: it finds the blocks of a 1-D-keyed
    # collection, so the (n, 4) boxes go in as a 4-column dask DataFrame.
    images, boxes = data
    maps = client.persist(sensitivity_maps_dask(sens, da.from_array(images, chunks=(CHUNK, 32, 32, 3))))
    frame = dd.from_dask_array(da.from_array(boxes, chunks=(CHUNK, 4)), columns=list(BOX_COLUMNS))
    assert frame.npartitions == N_BLOCKS
    inc = Incremental(BoxRegressor(random_state=0, eta0=0.05), random_state=5).fit(maps, frame)

    sequential = fit_blocks_in_dask_ml_order(
        BoxRegressor(random_state=0, eta0=0.05), reference, boxes, random_state=5
    )
    assert_same_fit(inc.estimator_, sequential)
    np.testing.assert_allclose(inc.predict(reference), sequential.predict(reference), rtol=1e-5)

    # BoxIncremental takes the same frame, and one partitioned unlike the maps.
    coarse = dd.from_dask_array(da.from_array(boxes, chunks=(20, 4)), columns=list(BOX_COLUMNS))
    assert coarse.npartitions == 2
    for boxes_frame in (frame, coarse):
        ours = BoxIncremental(BoxRegressor(random_state=0, eta0=0.05), random_state=5)
        assert_same_fit(ours.fit(maps, boxes_frame).estimator_, sequential)


def _backward_passes():
    """Images the engines of this process sent through a backward pass since the first call.

    Run on each worker, where a test's monkeypatch does not reach: the first
    call installs the count.
    """
    from sklearn_sensloc._engine import GradientEngine

    original = GradientEngine.__call__
    if not hasattr(original, "images"):

        def counting(self, images):
            counting.images += len(images)
            return original(self, images)

        counting.images = 0
        GradientEngine.__call__ = counting
    return GradientEngine.__call__.images


def _clear_gradient_cache():
    from sklearn_sensloc import gradient_cache

    gradient_cache.clear()


def _gradient_cache_entries():
    from sklearn_sensloc import gradient_cache

    return gradient_cache.gradients.info()["entries"]


def test_workers_fill_their_gradient_cache_only_when_asked(client, sens, data, reference):
    images, _ = data
    client.run(_clear_gradient_cache)
    maps = compute(client, sensitivity_maps_dask(sens, images, chunk_size=CHUNK))
    np.testing.assert_allclose(maps, reference, rtol=1e-5, atol=1e-6)
    assert sum(client.run(_gradient_cache_entries).values()) == 0
    compute(client, sensitivity_maps_dask(sens, images, chunk_size=CHUNK, cache=True))
    assert sum(client.run(_gradient_cache_entries).values()) == N_IMAGES
    client.run(_clear_gradient_cache)


def test_grid_search_under_the_dask_joblib_backend(client, tiny_model, data, backward_calls):
    images, boxes = data
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=tiny_model, pool=2)),
            ("box", BoxRegressor(random_state=0, max_iter=5)),
        ]
    )
    grid = {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}
    local = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=2).fit(images, boxes)

    client.run(_clear_gradient_cache)  # earlier tests cached these images' gradients
    before = sum(client.run(_backward_passes).values())
    gradient_cache.clear()
    local_before = sum(backward_calls)
    with joblib.parallel_backend("dask"):
        remote = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=2, n_jobs=-1)
        remote.fit(images, boxes)
    # The candidates were fitted on the workers (only the refit runs here).
    assert sum(client.run(_backward_passes).values()) - before >= N_IMAGES
    assert sum(backward_calls) - local_before == N_IMAGES
    assert remote.best_params_ == local.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key])
    np.testing.assert_allclose(remote.predict(images), local.predict(images), rtol=1e-6)


def wait_for_live_workers(client, n, timeout=TIMEOUT):
    """Process ids of ``n`` workers that answer, waiting for restarted ones."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.wait_for_workers(n, timeout=max(1, deadline - time.monotonic()))
            pids = set(client.run(os.getpid, on_error="ignore").values())
        except (OSError, TimeoutError):
            pids = set()
        if len(pids) >= n:
            return pids
        if time.monotonic() > deadline:
            raise TimeoutError(f"Fewer than {n} live workers after {timeout} s.")
        time.sleep(0.2)


def _load_block(block, marker, always=False):
    """Return ``block``, but first kill this worker process if asked to."""
    if marker is not None and (always or not os.path.exists(marker)):
        with open(marker, "w") as stream:
            stream.write(str(os.getpid()))
        os._exit(1)
    return block


def _images_with_a_killer(images, marker, killer_block, always=False):
    blocks = []
    for index, start in enumerate(range(0, len(images), CHUNK)):
        block = images[start : start + CHUNK]
        loaded = dask.delayed(_load_block, pure=False)(
            block, marker if index == killer_block else None, always
        )
        blocks.append(da.from_delayed(loaded, shape=block.shape, dtype=block.dtype))
    return da.concatenate(blocks)


def test_a_worker_killed_mid_run_is_replaced_and_nothing_is_missing(
    client, sens, data, reference, tmp_path
):
    marker = str(tmp_path / "killed")
    pids_before = set(client.run(os.getpid).values())
    maps = sensitivity_maps_dask(sens, _images_with_a_killer(data[0], marker, killer_block=4))
    result = compute(client, maps)
    assert os.path.exists(marker)  # a worker did die, running the computation
    assert result.shape == (N_IMAGES, 256)
    np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-7)
    # The nanny replaced the dead worker process.
    assert wait_for_live_workers(client, 2) != pids_before


def test_a_task_that_keeps_killing_workers_fails_clearly(client, sens, data, tmp_path):
    wait_for_live_workers(client, 2)
    marker = str(tmp_path / "killed")
    maps = sensitivity_maps_dask(
        sens, _images_with_a_killer(data[0][:CHUNK], marker, killer_block=0, always=True)
    )
    with pytest.raises(KilledWorker, match="all those workers died while running it"):
        compute(client, maps)
