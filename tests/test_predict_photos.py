"""Boxes for photo files: pixel boxes, CSV and COCO output, bad photos, kills and reruns."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import make_scenes
from PIL import Image
from sklearn.pipeline import Pipeline

from sklearn_sensloc import (
    BoxRegressor,
    SensitivityTransformer,
    fit_box_scorer,
    gradient_cache,
    predict_photos,
    save_localizer,
    write_boxes,
)
from sklearn_sensloc._engine import GradientEngine
from sklearn_sensloc._photos._box_files import OutputExistsError, run_file


@pytest.fixture(scope="module")
def localizer(tiny_model):
    images, boxes, _ = make_scenes(40, seed=4)
    pipeline = Pipeline([("sens", SensitivityTransformer(model=tiny_model, target="class",
                                                         pool=2, batch_size=4)),
                         ("box", BoxRegressor(random_state=0))]).fit(images, boxes)
    # What load_localizer gives a localizer file's pipeline.
    pipeline.box_scorer_ = fit_box_scorer(pipeline, images, boxes)
    return pipeline


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Photos of several sizes and formats in nested folders; names are numbers."""
    root = tmp_path_factory.mktemp("photos")
    images, _, _ = make_scenes(11, size=48, seed=5)
    paths = []
    for index, image in enumerate(images):
        folder = root / "a" if index % 2 else root / "b" / "c"
        folder.mkdir(parents=True, exist_ok=True)
        width, height = 40 + 7 * index, 30 + 5 * index
        photo = Image.fromarray(image.astype(np.uint8)).resize((width, height))
        path = folder / f"{index:04d}.{'png' if index % 3 == 0 else 'jpg'}"
        photo.save(path)
        paths.append(str(path))
    return sorted(paths)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_rows_hold_pixel_boxes_of_the_original_photo(localizer, photos):
    rows = list(predict_photos(localizer, photos))
    fractions = localizer.predict(photos)
    assert [row.image for row in rows] == photos
    for row, box, path in zip(rows, fractions, photos):
        with Image.open(path) as image:
            assert (row.width, row.height) == image.size
        np.testing.assert_allclose([row.xmin, row.ymin, row.xmax, row.ymax],
                                   box * [row.width, row.height, row.width, row.height])
    maps = localizer.steps[0][1].transform(photos)
    np.testing.assert_allclose([row.score for row in rows],
                               localizer.box_scorer_.score_boxes(maps, fractions))
    assert len({round(row.score, 6) for row in rows}) > 1


def test_without_a_box_score_scores_are_empty_and_a_warning_says_how_to_get_one(
        localizer, photos, tmp_path):
    bare = Pipeline(localizer.steps)
    with pytest.warns(UserWarning, match="no box score: every score is NaN. Fit one with"):
        rows = list(predict_photos(bare, photos[:2]))
    assert all(np.isnan(row.score) for row in rows)
    with pytest.warns(UserWarning, match="no box score") as caught:
        write_boxes(bare, photos[:5], tmp_path / "b.csv", overlays=tmp_path / "o", batch_size=2)
        write_boxes(bare, photos[:5], tmp_path / "b.json", batch_size=2)
    assert len(caught) == 2
    assert [row["score"] for row in _rows(tmp_path / "b.csv")] == [""] * 5
    assert [r["score"] for r in json.loads((tmp_path / "b.json").read_text())] == [None] * 5


def test_predicting_photos_keeps_nothing_in_the_caches(localizer, photos):
    gradient_cache.clear()
    list(predict_photos(localizer, photos))
    info = gradient_cache.info()
    assert info["entries"] == 0 and gradient_cache.maps.info()["entries"] == 0
    assert localizer.steps[0][1].cache is True


def test_boxing_photos_batch_by_batch_uses_the_localizer_s_engine(localizer, photos, tmp_path,
                                                                  monkeypatch):
    engine = localizer.steps[0][1].gradient_engine()
    built = []
    original_init = GradientEngine.__init__

    def counting_init(self, *args, **kwargs):
        built.append(args)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(GradientEngine, "__init__", counting_init)
    write_boxes(localizer, photos, tmp_path / "boxes.csv", batch_size=3)
    assert built == []
    assert localizer.steps[0][1].gradient_engine() is engine


def test_csv_output(localizer, photos, tmp_path):
    output = tmp_path / "out" / "boxes.csv"
    summary = write_boxes(localizer, photos, output)
    assert (summary.n_written, summary.n_kept, summary.n_skipped) == (len(photos), 0, 0)
    rows = _rows(output)
    assert list(rows[0]) == ["image", "width", "height", "xmin", "ymin", "xmax", "ymax", "score"]
    expected = list(predict_photos(localizer, photos))
    assert [row["image"] for row in rows] == photos
    for row, want in zip(rows, expected):
        assert (int(row["width"]), int(row["height"])) == (want.width, want.height)
        np.testing.assert_allclose([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")],
                                   [want.xmin, want.ymin, want.xmax, want.ymax], atol=0.051)
        assert float(row["score"]) == pytest.approx(want.score, abs=5e-5)


def test_coco_results_output(localizer, photos, tmp_path):
    output = tmp_path / "boxes.json"
    write_boxes(localizer, photos, output)
    results = json.loads(output.read_text())
    assert [r["file_name"] for r in results] == photos
    # Names that are numbers, as COCO's, are the ids.
    assert [r["image_id"] for r in results] == [int(os.path.basename(p)[:4]) for p in photos]
    expected = list(predict_photos(localizer, photos))
    for result, want in zip(results, expected):
        assert set(result) == {"image_id", "file_name", "bbox", "score"}
        x, y, w, h = result["bbox"]
        np.testing.assert_allclose([x, y, x + w, y + h], [want.xmin, want.ymin, want.xmax,
                                                          want.ymax], atol=0.11)
    ids = {os.path.basename(p): 100 + i for i, p in enumerate(photos)}
    write_boxes(localizer, photos, tmp_path / "ids.json", image_ids=ids)
    assert [r["image_id"] for r in json.loads((tmp_path / "ids.json").read_text())] == \
        [100 + i for i in range(len(photos))]
    with pytest.raises(ValueError, match="'0001.jpg' is not in image_ids"):
        write_boxes(localizer, photos, tmp_path / "bad.json", image_ids={})


def test_photos_that_cannot_be_read_are_named_and_skipped(localizer, photos, tmp_path):
    bad = {"text.jpg": b"just some text", "empty.jpg": b""}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
    with open(photos[1], "rb") as handle:
        (tmp_path / "truncated.jpg").write_bytes(handle.read()[:300])
    inputs = [str(tmp_path / name) for name in ("text.jpg", "empty.jpg", "truncated.jpg")]
    inputs = photos[:3] + inputs + photos[3:6]
    with pytest.warns(UserWarning) as caught:
        summary = write_boxes(localizer, inputs, tmp_path / "boxes.csv", batch_size=4)
    messages = [str(w.message) for w in caught]
    for name in ("text.jpg", "empty.jpg", "truncated.jpg"):
        assert sum(name in m and "Skipped photo" in m for m in messages) == 1
    assert (summary.n_written, summary.n_skipped) == (6, 3)
    assert [row["image"] for row in _rows(tmp_path / "boxes.csv")] == photos[:6]


@pytest.mark.parametrize("name", ["boxes.csv", "boxes.json"])
def test_a_row_torn_by_a_kill_is_dropped_and_the_rerun_completes_the_output(
        localizer, photos, tmp_path, name):
    whole = tmp_path / f"whole-{name}"
    write_boxes(localizer, photos, whole)
    output = tmp_path / name
    write_boxes(localizer, photos[:5], output)
    text = output.read_text()
    # What a kill mid-write leaves: the footer not yet written, half a row.
    body = text[: len(text) - (len("\n]\n") if name.endswith(".json") else 0)]
    torn = whole.read_text()[len(body):]
    output.write_text(body + torn[: len(torn) // 7])
    summary = write_boxes(localizer, photos, output)
    assert (summary.n_kept, summary.n_written) == (5, len(photos) - 5)
    assert output.read_text() == whole.read_text()


def test_a_killed_job_rerun_ends_with_every_photo_once_and_the_same_boxes(localizer, photos,
                                                                          tmp_path):
    path = save_localizer(localizer, tmp_path / "tiny.sensloc")
    whole = tmp_path / "whole.csv"
    write_boxes(localizer, photos, whole)
    output = tmp_path / "boxes.csv"
    # A job that writes a batch of two photos, then another, slowly: killed in between.
    job = textwrap.dedent(f"""
        import time
        from sklearn_sensloc import load_localizer, write_boxes
        from sklearn_sensloc._photos import _box_files
        append = _box_files._BoxFile.append
        def slow(self, rows):
            append(self, rows)
            print("wrote", flush=True)
            time.sleep(30)
        _box_files._BoxFile.append = slow
        write_boxes(load_localizer({str(path)!r}), {photos!r}, {str(output)!r}, batch_size=2)
    """)
    process = subprocess.Popen([sys.executable, "-c", job], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        assert process.stdout.readline().strip() == "wrote"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert len(_rows(output)) == 2
    from sklearn_sensloc import load_localizer

    summary = write_boxes(load_localizer(path), photos, output)
    assert (summary.n_kept, summary.n_written) == (2, len(photos) - 2)
    assert sorted(output.read_text().splitlines()) == sorted(whole.read_text().splitlines())
    assert len(_rows(output)) == len(photos)


def test_a_finished_job_rerun_writes_only_new_photos(localizer, photos, tmp_path):
    output = tmp_path / "boxes.csv"
    write_boxes(localizer, photos[:-2], output)
    again = write_boxes(localizer, photos[:-2], output)
    assert (again.n_written, again.n_kept) == (0, len(photos) - 2)
    more = write_boxes(localizer, photos, output)
    assert (more.n_written, more.n_kept) == (2, len(photos) - 2)
    assert [row["image"] for row in _rows(output)] == photos
    assert run_file(output) == str(tmp_path / ".boxes.csv.sensloc-run")


def test_an_output_of_another_localizer_or_of_no_job_is_never_appended_to(
        localizer, tiny_model, photos, tmp_path):
    output = tmp_path / "boxes.csv"
    write_boxes(localizer, photos[:3], output)
    other = Pipeline([("sens", SensitivityTransformer(model=tiny_model, target="gestalt", pool=2)),
                      ("box", BoxRegressor(random_state=0))])
    images, boxes, _ = make_scenes(20, seed=9)
    other.fit(images, boxes)
    other.box_scorer_ = fit_box_scorer(other, images, boxes)
    with pytest.raises(OutputExistsError, match="boxes of another localizer .* --overwrite"):
        write_boxes(other, photos, output)
    assert len(_rows(output)) == 3
    assert write_boxes(other, photos, output, overwrite=True).n_written == len(photos)
    mine = tmp_path / "mine.csv"
    mine.write_text("my,own,data\n")
    with pytest.raises(OutputExistsError, match="not written by sensloc predict"):
        write_boxes(localizer, photos, mine)
    assert mine.read_text() == "my,own,data\n"
    with pytest.raises(ValueError, match="must end in .csv .* or .json"):
        write_boxes(localizer, photos, tmp_path / "boxes.txt")


def test_overlays_draw_each_photo_with_its_box(localizer, photos, tmp_path):
    overlays = tmp_path / "overlays"
    write_boxes(localizer, photos, tmp_path / "boxes.csv", overlays=overlays)
    root = os.path.commonpath([os.path.dirname(p) for p in photos])
    for photo, row in zip(photos, _rows(tmp_path / "boxes.csv")):
        drawn = overlays / os.path.relpath(photo, root)
        with Image.open(drawn) as image, Image.open(photo) as original:
            assert image.size == original.size
            pixels = np.asarray(image.convert("RGB"), dtype=int)
        if photo.endswith(".png"):
            # Lossless: the left edge of the box, halfway down, is drawn in the box colour.
            x = int(round(float(row["xmin"])))
            y = int((float(row["ymin"]) + float(row["ymax"])) / 2)
            np.testing.assert_array_equal(pixels[y, x], (230, 25, 75))
