"""The one-ahead producer that overlaps device batches with host work."""

import contextlib
import os
import threading

import numpy as np
import pytest

from sklearn_sensloc._utils._prefetch import ahead


def test_items_in_order_and_produced_in_another_thread():
    threads = []

    def numbers():
        for i in range(50):
            threads.append(threading.current_thread())
            yield i

    assert list(ahead(numbers())) == list(range(50))
    assert threading.current_thread() not in threads


def test_an_error_is_raised_after_the_items_before_it():
    def failing():
        yield 1
        yield 2
        raise ValueError("image 2 is unreadable")

    got = []
    with pytest.raises(ValueError, match="image 2 is unreadable"):
        for item in ahead(failing()):
            got.append(item)
    assert got == [1, 2]


@pytest.mark.parametrize("how", ["break", "error"])
def test_leaving_early_stops_the_producer_and_cleans_up(how):
    produced, closed = [], threading.Event()

    def endless():
        try:
            i = 0
            while True:
                produced.append(i)
                yield i
                i += 1
        finally:
            closed.set()

    batches = ahead(endless(), depth=2)
    with pytest.raises(RuntimeError) if how == "error" else contextlib.nullcontext():
        for item in batches:
            if item == 3:
                if how == "error":
                    raise RuntimeError("the consumer failed")
                break
    batches.close()
    assert closed.wait(5)
    # At most the depth of the queue and the item in hand beyond the one consumed.
    assert len(produced) <= 3 + 1 + 2 + 1



@pytest.mark.backends
def test_batches_run_ahead_only_on_an_accelerator_with_jax(tiny_model):
    from sklearn_sensloc import SensitivityTransformer
    from sklearn_sensloc._engine import accelerators, backend_name

    engine = SensitivityTransformer(model=tiny_model, cache=False).fit(None).gradient_engine()
    expected = bool(accelerators()) and backend_name() == "jax"
    assert engine.computes_ahead is expected


@pytest.fixture
def transformer_ahead(tiny_model):
    """A fitted transformer whose engine computes batches ahead, or in turn, as asked."""
    from sklearn_sensloc import SensitivityTransformer

    def fitted(ahead_or_not):
        sens = SensitivityTransformer(model=tiny_model, batch_size=8, cache=False).fit(None)
        engine = sens.gradient_engine()
        previous = engine.computes_ahead
        engine.computes_ahead = ahead_or_not
        return sens, lambda: setattr(engine, "computes_ahead", previous)

    return fitted


def test_maps_made_one_batch_ahead_equal_the_plain_ones(transformer_ahead, scenes, tmp_path):
    from conftest import write_png_files

    images = scenes[0][:30]
    paths = write_png_files(images, tmp_path)
    sens, restore = transformer_ahead(True)
    try:
        ahead_maps = sens.transform(paths)
        ahead_gradients = [g for _, g in sens.iter_gradients(images)]
    finally:
        restore()
    sens, restore = transformer_ahead(False)
    try:
        np.testing.assert_array_equal(ahead_maps, sens.transform(paths))
        plain = [g for _, g in sens.iter_gradients(images)]
    finally:
        restore()
    assert [len(g) for g in ahead_gradients] == [8, 8, 8, 6]
    for got, expected in zip(ahead_gradients, plain, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_an_unreadable_file_is_named_when_batches_run_ahead(transformer_ahead, scenes, tmp_path):
    from conftest import write_png_files

    paths = write_png_files(scenes[0][:20], tmp_path)
    with open(paths[13], "wb") as stream:
        stream.write(b"not a png")
    sens, restore = transformer_ahead(True)
    try:
        with pytest.raises(ValueError, match=f"Cannot read image file.*{os.path.basename(paths[13])}"):
            sens.transform(paths)
    finally:
        restore()
