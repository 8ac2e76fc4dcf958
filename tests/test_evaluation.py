"""The paper's protocol: maps once, every method scored, tables written atomically, resume."""

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_scenes, write_png_files
from PIL import Image

from sklearn_sensloc import BoxRegressor, SensitivityTransformer, corloc_score
from sklearn_sensloc.evaluation import _full_maps
from sklearn_sensloc._utils._atomic import (
    LOCK_FILE,
    FolderInUseError,
    atomic_write_json,
    atomic_write_text,
    folder_lock,
)
from sklearn_sensloc.evaluation import evaluate_localization, evaluate_voc, pooled_features
from sklearn_sensloc.evaluation._data import class_index
from sklearn_sensloc.evaluation._scoring import scores
from sklearn_sensloc._box_estimators._heuristic import SIGMA_GRID

FAST = dict(pool=2, sigmas=[1, 3], n_timing=8, batch_size=16)


# --------------------------------------------------------------------------- helpers


def write_voc_tree(root, n_train=24, n_test=16, seed=0):
    """A VOC tree of red 'cat' and blue 'dog' squares on noise, JPEG images of varied size.

    Every third test image holds a second, smaller object of the other class,
    and every fifth test image a difficult extra object.
    """
    rng = np.random.default_rng(seed)
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    colours = {"cat": (230, 40, 40), "dog": (40, 40, 230)}
    splits = {"trainval": [], "test": []}
    for index in range(n_train + n_test):
        split = "trainval" if index < n_train else "test"
        image_id = f"{index:06d}"
        width, height = int(rng.integers(36, 60)), int(rng.integers(36, 60))
        image = rng.normal(120, 25, (height, width, 3)).clip(0, 255)
        objects = []
        name = "cat" if index % 2 else "dog"
        n_objects = 2 if split == "test" and index % 3 == 0 else 1
        for k in range(n_objects):
            scale = (0.35, 0.7) if k == 0 else (0.15, 0.25)
            w = int(width * rng.uniform(*scale))
            h = int(height * rng.uniform(*scale))
            left, top = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            label = name if k == 0 else ("dog" if name == "cat" else "cat")
            image[top : top + h, left : left + w] = colours[label]
            objects.append((label, left + 1, top + 1, left + w, top + h, 0))
        if split == "test" and index % 5 == 0:
            objects.append((name, 1, 1, 6, 6, 1))
        Image.fromarray(image.astype(np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        xml = "".join(
            f"<object><name>{label}</name><difficult>{diff}</difficult><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for label, x0, y0, x1, y1, diff in objects
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><size><width>{width}</width><height>{height}</height></size>"
            f"{xml}</annotation>"
        )
        splits[split].append(image_id)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture(scope="module")
def split_scenes():
    images, boxes, labels = make_scenes(96, seed=5)
    names = np.array(["red", "blue"])[labels].tolist()
    return images[:64], boxes[:64], images[64:], boxes[64:], names[64:]


# --------------------------------------------------------------------------- protocol


def test_tables_scores_and_one_backward_pass(tiny_model, scenes, tmp_path, backward_calls):
    X_train, y_train, _ = scenes
    X_test, y_test, colour = make_scenes(48, seed=1)
    labels = np.array(["red", "blue"])[colour].tolist()
    result = evaluate_localization(
        X_train, y_train, X_test, y_test, test_labels=labels, model=tiny_model,
        aggregations=["max", "mean"], output=tmp_path, **{**FAST, "pool": 1},
    )
    # Both aggregations come from one backward pass per batch: 15 train + 3 test batches,
    # plus the timed batch, after a warm-up call on it.
    assert backward_calls == [16] * 15 + [16] * 3 + [8, 8]

    table1 = result.tables["table1_per_class"]
    assert table1["columns"] == ["method", "mean", "mean (n>=20)", "blue", "red"]
    methods = [row["method"] for row in table1["rows"]]
    paper = {agg: f"heuristic ({agg}, paper, sigma={result.chosen_sigma[agg]:g})"
             for agg in ("max", "mean")}
    assert methods == ["learned (max)", "heuristic (max, default)", paper["max"],
                       "learned (mean)", "heuristic (mean, default)", paper["mean"],
                       "center box", "n_test"]
    for row in table1["rows"][:-1]:
        assert row["mean"] == pytest.approx((row["red"] + row["blue"]) / 2)
        assert row["mean (n>=20)"] == pytest.approx(row["mean"])  # both classes have >= 20
    table3 = {row["method"]: row for row in result.tables["table3_methods"]["rows"]}
    for name, boxes in result.predictions.items():
        assert table3[name]["corloc"] == pytest.approx(corloc_score(y_test, boxes))
    center = table3["center box"]["corloc"]
    assert table3["learned (max)"]["corloc"] > center + 15
    assert table3[paper["max"]]["corloc"] > center
    assert table3["heuristic (max, default)"]["corloc"] > center
    # The default heuristic is HeuristicBoxEstimator() on the learned map's pooled maps.
    chosen = result.summary["default_heuristic"]["max"]
    assert chosen["sigma"] in [f * 32 for f in SIGMA_GRID]

    sweep = result.tables["table2_heuristic_sigma"]
    assert [row["sigma"] for row in sweep["rows"]] == [1.0, 3.0]
    assert sweep["columns"] == ["sigma", "test (max)", "test 95% (max)", "train (max)",
                                "test (mean)", "test 95% (mean)", "train (mean)"]
    # Sigma is chosen on the training images, never on the test images.
    train_max = [row["train (max)"] for row in sweep["rows"]]
    assert result.chosen_sigma["max"] == [1.0, 3.0][int(np.argmax(train_max))]

    timings = {row["stage"].split(" (")[0]: row["seconds_per_image"]
               for row in result.tables["timings"]["rows"]}
    assert set(timings) == {"forward pass", "sensitivity map", "box from map: learned",
                            "box from map: heuristic"}
    assert all(value > 0 for value in timings.values())
    assert "(maps made on the host)" in " ".join(result.tables["timings"]["notes"])

    for name in ("table1_per_class", "table2_heuristic_sigma", "table3_methods", "timings"):
        for ext in ("md", "csv", "json"):
            assert (tmp_path / f"{name}.{ext}").is_file()
    csv_lines = (tmp_path / "table1_per_class.csv").read_text().splitlines()
    assert csv_lines[0] == "method,mean,mean (n>=20),blue,red" and len(csv_lines) == 9
    stored = json.loads((tmp_path / "table3_methods.json").read_text())
    assert stored["rows"] == json.loads(json.dumps(result.tables["table3_methods"]["rows"]))
    assert "| learned (max) |" in (tmp_path / "summary.md").read_text()


def test_maps_equal_the_transformer_output(tiny_model, split_scenes):
    X_train, y_train, X_test, y_test, _ = split_scenes
    result = evaluate_localization(
        X_train[:16], y_train[:16], X_test[:8], y_test[:8], model=tiny_model,
        aggregations=["max", "mean"], sigmas=[1], n_timing=0, batch_size=8,
    )
    for aggregation in ("max", "mean"):
        for pool in (1, 2, 3):
            sens = SensitivityTransformer(model=tiny_model, aggregation=aggregation, pool=pool,
                                          cache=False).fit(None)
            np.testing.assert_allclose(
                pooled_features(result.test_maps[aggregation], pool), sens.transform(X_test[:8]),
                rtol=1e-5, atol=1e-6,
            )


def test_rerun_resumes_and_recomputes_only_what_changed(
    tiny_model, split_scenes, tmp_path, backward_calls
):
    X_train, y_train, X_test, y_test, _ = split_scenes
    args = (X_train, y_train, X_test, y_test)
    first = evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST)
    assert first.reused == []
    maps_files = sorted((tmp_path / "cache").glob("maps-*.npy"))
    assert len(maps_files) == 2
    stamps = [f.stat().st_mtime_ns for f in maps_files]
    table = (tmp_path / "table3_methods.json").read_text()
    backward_calls.clear()

    again = evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST)
    assert backward_calls == []
    assert again.computed == []
    assert sorted(again.reused) == sorted(first.computed)
    assert [f.stat().st_mtime_ns for f in maps_files] == stamps
    assert (tmp_path / "table3_methods.json").read_text() == table

    # Another sigma sweep reuses the maps and the learned map.
    other = evaluate_localization(*args, model=tiny_model, output=tmp_path,
                                  **{**FAST, "sigmas": [2]})
    assert backward_calls == []
    assert other.computed == ["heuristic-max"]
    # Other training boxes: maps reused, both box methods refitted.
    shifted = np.clip(y_train + 0.01, 0, 1)
    moved = evaluate_localization(X_train, shifted, X_test, y_test, model=tiny_model,
                                  output=tmp_path, **FAST)
    assert backward_calls == []
    assert set(moved.computed) == {"learned-max", "heuristic-default-max", "heuristic-max"}

    # Other test images: only their maps are computed.
    backward_calls.clear()
    fewer = evaluate_localization(X_train, y_train, X_test[:16], y_test[:16], model=tiny_model,
                                  output=tmp_path, **FAST)
    assert backward_calls == [16, 8, 8]  # the test batch, then the timed batch, warmed up
    assert "maps-test-max" in fewer.computed and "maps-train-max" in fewer.reused


def test_a_changed_regressor_default_refits_the_learned_map(
    tiny_model, split_scenes, tmp_path, monkeypatch
):
    # repr(BoxRegressor()) hides defaults: a new package default must not
    # reuse a learned map fitted under the old one.
    args = split_scenes[:4]
    evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST)
    defaults = dict(inspect.signature(BoxRegressor).parameters)
    changed = [p.replace(default=0.5) if name == "alpha" else p for name, p in defaults.items()]
    monkeypatch.setattr(BoxRegressor.__init__, "__defaults__",
                        tuple(p.default for p in changed))
    assert BoxRegressor().alpha == 0.5
    again = evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST)
    assert again.computed == ["learned-max"]


def test_a_corrupt_cache_entry_is_recomputed(tiny_model, split_scenes, tmp_path):
    X_train, y_train, X_test, y_test, _ = split_scenes
    evaluate_localization(X_train, y_train, X_test, y_test, model=tiny_model, output=tmp_path,
                          **FAST)
    corrupted = [path for path in (tmp_path / "cache").glob("*") if path.is_file()]
    assert len(corrupted) == 2 + 4  # maps of both splits; learned, two heuristics, timing steps
    for path in corrupted:
        path.write_bytes(b"garbage")
    again = evaluate_localization(X_train, y_train, X_test, y_test, model=tiny_model,
                                  output=tmp_path, **FAST)
    assert again.reused == []
    assert "maps-train-max" in again.computed and "learned-max" in again.computed


def test_interrupted_maps_keep_finished_parts_and_resume(
    tiny_model, tmp_path, monkeypatch, backward_calls
):
    monkeypatch.setattr(_full_maps, "PART", 4)
    images, boxes, _ = make_scenes(20, seed=2)
    paths = write_png_files(images, tmp_path)
    (tmp_path / "17.png").write_bytes(b"not an image")
    output = tmp_path / "out"
    kwargs = dict(model=tiny_model, output=output, batch_size=4, sigmas=[1], n_timing=0, pool=2)
    with pytest.raises(ValueError, match="17.png"):
        evaluate_localization(paths[:12], boxes[:12], paths[12:], boxes[12:], **kwargs)
    assert backward_calls == [4, 4, 4, 4]  # 3 train batches, the first test batch
    cache = output / "cache"
    # The training maps are finished; of the test maps, the first part (images 12-15).
    finished = [p for p in cache.iterdir() if p.is_file()]
    assert len(finished) == 1 and finished[0].suffix == ".npy"
    parts = cache / "parts"
    assert len(list(parts.iterdir())) == 1
    assert not list(output.glob("table*"))
    # No temporary file left behind; the lock file stays (the lock is on it, not its existence).
    assert [p.name for p in output.rglob(".*")] == [LOCK_FILE]

    Image.fromarray(images[17].astype(np.uint8)).save(paths[17])
    backward_calls.clear()
    result = evaluate_localization(paths[:12], boxes[:12], paths[12:], boxes[12:], **kwargs)
    # Only the part whose image was replaced; the other test part is reused.
    assert backward_calls == [4]
    assert list(parts.iterdir()) == []  # parts joined into one file
    sens = SensitivityTransformer(model=tiny_model, pool=1, cache=False).fit(None)
    np.testing.assert_allclose(result.test_maps["max"].reshape(8, -1), sens.transform(paths[12:]),
                               rtol=1e-5, atol=1e-6)


def test_atomic_writes_leave_nothing_on_error(tmp_path, monkeypatch):
    target = tmp_path / "table.json"
    with pytest.raises(TypeError):
        atomic_write_json(target, {"value": object()})
    assert list(tmp_path.iterdir()) == []

    previous = os.umask(0o027)
    try:
        with monkeypatch.context() as patched:
            # The process's umask is neither read nor changed by a write.
            patched.setattr(os, "umask", lambda mask: pytest.fail("os.umask called"))
            atomic_write_text(target, "old")
    finally:
        os.umask(previous)
    # Not a temporary file's private 0600: what any new file gets under the umask.
    assert target.stat().st_mode & 0o777 == 0o640

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


# --------------------------------------------------------------------------- rules


def test_several_boxes_per_image_difficult_rule_and_per_class():
    boxes = [
        np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]),  # cat, dog
        np.array([[0.0, 0.0, 1.0, 1.0]]),  # only a difficult cat: not counted
        np.array([[0.1, 0.1, 0.6, 0.6], [0.0, 0.0, 0.2, 0.2]]),  # dog, difficult dog
    ]
    labels = [["cat", "dog"], ["cat"], ["dog", "dog"]]
    difficult = [np.array([0, 0]), np.array([1]), np.array([0, 1])]
    index, counted = class_index(boxes, labels, difficult, ["cat", "dog", "bird"])
    assert list(index) == ["cat", "dog"]  # bird has no image and is left out
    assert counted.tolist() == [True, False, True]
    assert index["cat"][0].tolist() == [0]
    assert index["dog"][0].tolist() == [0, 2]

    # Image 0 predicted on the dog, image 2 on its difficult dog: both hits for "dog".
    pred = np.array([[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.2, 0.2]])
    overall, mean, per_class = scores(pred, boxes, index, counted, 0.5)
    assert per_class == {"cat": 0.0, "dog": 100.0}
    assert mean == 50.0
    assert overall == 100.0  # image 1 does not count

    # The strict rule: IoU of exactly 0.5 is a miss.
    half = np.array([[0.5, 0.5, 1.0, 0.75], [0, 0, 1, 1], [0.1, 0.1, 0.6, 0.6]])
    _, _, per_class = scores(half, boxes, index, counted, 0.5)
    assert per_class["dog"] == 50.0


def test_bad_inputs_are_refused(tiny_model):
    X, y, _ = make_scenes(8)
    with pytest.raises(ValueError, match="aggregations"):
        evaluate_localization(X, y, X, y, model=tiny_model, aggregations=["median"])
    with pytest.raises(ValueError, match="sigmas"):
        evaluate_localization(X, y, X, y, model=tiny_model, sigmas=[-1])
    with pytest.raises(ValueError, match="8 training images but 7 boxes"):
        evaluate_localization(X, y[:7], X, y, model=tiny_model)
    with pytest.raises(ValueError, match="labels"):
        evaluate_localization(X, y, X, y, model=tiny_model, test_labels=[["a", "b"]] * 8)
    with pytest.raises(ValueError, match="only difficult"):
        evaluate_localization(X, y, X, y, model=tiny_model,
                              test_difficult=[np.array([True])] * 8)


# --------------------------------------------------------------------------- VOC


def test_evaluate_voc_two_classes(tiny_model, tmp_path):
    root = write_voc_tree(tmp_path / "VOC")
    output = tmp_path / "out"
    result = evaluate_voc(root, "trainval", "test", classes=["cat", "dog"], model=tiny_model,
                          output=output, **FAST)
    assert result.class_names == ["cat", "dog"]
    assert len(result.test_images) == 16
    # Test images keep every box: a third of them hold two objects, a fifth a difficult one.
    assert max(len(b) for b in result.test_boxes) == 3
    header = (output / "table1_per_class.csv").read_text().splitlines()[0]
    assert header == "method,mean,mean (n>=20),cat,dog"
    rows = json.loads((output / "table3_methods.json").read_text())["rows"]
    assert {row["n_test"] for row in rows} == {16}
    assert json.loads((output / "summary.json").read_text())["test_split"] == "test"

    limited = evaluate_voc(root, classes=["cat"], limit=5, model=tiny_model, output=None, **FAST)
    assert limited.summary["n_train"] == 5 and limited.class_names == ["cat"]


def test_a_second_run_on_a_busy_output_folder_refuses_in_one_sentence(
    tiny_model, split_scenes, tmp_path
):
    args = split_scenes[:4]
    with folder_lock(tmp_path, "output folder"):
        with pytest.raises(FolderInUseError, match="is in use by another run .pid"):
            evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST)
    # Released when the holder is done: the run goes through.
    assert evaluate_localization(*args, model=tiny_model, output=tmp_path, **FAST).computed


def test_a_killed_holder_leaves_the_folder_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from sklearn_sensloc._utils._atomic import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderInUseError):
        with folder_lock(tmp_path):
            pass
    holder.kill()
    holder.wait()
    with folder_lock(tmp_path):
        pass
