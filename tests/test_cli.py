"""The ``sensloc`` command: fit, predict, demo, evaluate, resume, and its error handling."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_evaluation import write_voc_tree

from sklearn_sensloc._utils._atomic import folder_lock
from sklearn_sensloc._cli import build_parser, choose_demo_model, main, run_demo

TABLES = ("table1_per_class", "table2_heuristic_sigma", "table3_methods", "timings")


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return write_voc_tree(tmp_path_factory.mktemp("data") / "VOC", n_train=20, n_test=12)


@pytest.fixture
def demo_classifier(monkeypatch):
    """Swap the demo's classifier build for a stand-in: a tiny model, or a failed download."""
    from sklearn_sensloc._classifiers import _models
    from sklearn_sensloc._cli import DEMO_CLASSIFIER

    def use(build):
        entry = _models.REGISTRY[DEMO_CLASSIFIER]
        monkeypatch.setitem(_models.REGISTRY, DEMO_CLASSIFIER, entry._replace(build=build))
        _models.loaded_models.clear()

    yield use
    _models.loaded_models.clear()


def test_demo_falls_back_to_the_offline_backbone_without_a_network(demo_classifier):
    def offline(weights):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- "
                        "[Errno -2] Name or service not known")

    demo_classifier(offline)
    out = io.StringIO()
    with pytest.warns(UserWarning, match="downloads its ImageNet weights now: about 14 MB"):
        assert choose_demo_model(out) == ("vgg16-hed", "gestalt")
    text = out.getvalue()
    assert "Cannot download the ImageNet weights of 'mobilenetv2'" in text
    assert "no better than the center box" in text and "--weights FILE" in text


def test_demo_uses_a_genuine_classifier_when_keras_has_one(demo_classifier, tiny_model):
    demo_classifier(lambda weights: tiny_model)
    out = io.StringIO()
    with pytest.warns(UserWarning, match="downloads its ImageNet weights now"):
        assert choose_demo_model(out) == ("mobilenetv2", "class")
    assert "genuine ImageNet classifier" in out.getvalue()


def test_run_demo_with_a_tiny_model(tiny_model, tmp_path):
    out = io.StringIO()
    result = run_demo(model=tiny_model, n_images=40, output=tmp_path, image_size=32,
                      batch_size=8, n_timing=8, verbose=False, stream=out)
    text = out.getvalue()
    assert "40 scenes (28 train, 12 test), seed 0" in text
    assert "| learned (max) |" in text and "| center box |" in text
    assert f"Outputs are in {tmp_path.resolve()}" in text and "fig2_boxes.png" in text
    for name in TABLES:
        for ext in ("md", "csv", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    for name in ("fig1_maps.png", "fig2_boxes.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size[0] > 300
    rows = json.loads((tmp_path / "table3_methods.json").read_text())["rows"]
    assert [row["n_test"] for row in rows] == [12, 12, 12, 12]
    # Per-class columns are the object kinds of the embedded sample.
    columns = json.loads((tmp_path / "table1_per_class.json").read_text())["columns"]
    assert columns[:3] == ["method", "mean", "mean (n>=20)"] and set(columns[3:]) <= {
        "cat", "coffee_cup", "astronaut", "space_shuttle", "rocket", "dahlia", "pagoda", "coin",
        "cameraman"}
    assert sorted(result.figures) == sorted(str(tmp_path / n) for n in ("fig1_maps.png",
                                                                        "fig2_boxes.png"))


def test_demo_command_runs_and_resumes(model_file, tmp_path, capsys, backward_calls):
    argv = ["demo", "--model", model_file, "--n-images", "12", "--output", str(tmp_path),
            "--batch-size", "8", "--timing-images", "4", "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "12 scenes (8 train, 4 test)" in first and "reused" not in first
    assert backward_calls  # maps computed
    backward_calls.clear()
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert backward_calls == []
    assert "reused from an earlier run: maps-train-max, maps-test-max" in second
    # Same tables, byte for byte, on the rerun.
    assert first.split("### Table 3")[1].split("### Timings")[0] == \
        second.split("### Table 3")[1].split("### Timings")[0]


def test_evaluate_command_writes_the_tables_and_resumes(model_file, voc_root, tmp_path, capsys,
                                                        backward_calls):
    output = tmp_path / "out"
    common = ["evaluate", "--voc", str(voc_root), "--classes", "cat", "dog", "--model", model_file,
              "--aggregation", "max", "mean", "--sigmas", "1", "2", "--pool", "2",
              "--batch-size", "8", "-q"]
    argv = [*common, "--output", str(output), "--timing-images", "4"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "### Table 1. CorLoc (%) per class" in text and "| sigma |" in text
    assert (output / "table1_per_class.csv").read_text().splitlines()[0] == \
        "method,mean,mean (n>=20),cat,dog"
    for name in TABLES:
        for ext in ("md", "csv", "json"):
            assert (output / f"{name}.{ext}").is_file()
    assert (output / "fig2_boxes.png").is_file()
    summary = json.loads((output / "summary.json").read_text())
    assert summary["aggregations"] == ["max", "mean"] and summary["sigmas"] == [1.0, 2.0]
    assert summary["n_train"] == 20 and summary["n_test"] == 12
    # Train and test batches of 8; the timed batch, after a warm-up call on it.
    assert len(backward_calls) == 3 + 2 + 2
    stamps = {p.name: p.stat().st_mtime_ns for p in (output / "cache").iterdir()}

    backward_calls.clear()
    assert main(argv) == 0
    assert "reused from an earlier run" in capsys.readouterr().out
    assert backward_calls == []
    assert {p.name: p.stat().st_mtime_ns for p in (output / "cache").iterdir()} == stamps

    # --limit: the first images of each split only.
    assert main([*common, "--output", str(tmp_path / "small"), "--limit", "6",
                 "--timing-images", "0"]) == 0
    assert json.loads((tmp_path / "small" / "summary.json").read_text())["n_train"] == 6
    assert not (tmp_path / "small" / "timings.md").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "required: COMMAND"),
        (["demo", "--n-images", "0"], "--n-images: expected a positive integer"),
        (["demo", "--n-images", "3"], "--n-images must be at least 4"),
        (["demo", "--test-size", "1.5"], "expected a number between 0 and 1"),
        (["demo", "--model", "resnet"], "neither a registered name (did you mean"),
        (["demo", "--model", "missing.keras"], "Model file not found: 'missing.keras'"),
        (["demo", "--model", "mobilenet.h5"], "is a weights file: it needs its architecture"),
        (["demo", "--weights", "missing.h5"], "Weights file not found: 'missing.h5'"),
        (["demo", "--aggregation", "median"], "invalid choice: 'median'"),
        (["evaluate"], "the following arguments are required: --voc"),
        (["evaluate", "--voc", "/no/such/VOCdevkit"], "--voc '/no/such/VOCdevkit': no such folder"),
        (["evaluate", "--voc", ".", "--sigmas", "-1"], "expected a finite number >= 0"),
        (["evaluate", "--voc", ".", "--limit", "x"], "--limit: expected a positive integer"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_with_code_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: sensloc")


def test_output_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output", str(tmp_path / "taken")])
    assert exit_info.value.code == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("sensloc ")
    help_text = build_parser().format_help()
    assert "demo" in help_text and "evaluate" in help_text


def test_data_errors_exit_with_code_1_and_one_line(model_file, voc_root, tmp_path, capsys):
    # A folder that is not a VOC tree.
    (tmp_path / "empty").mkdir()
    code = main(["evaluate", "--voc", str(tmp_path / "empty"), "--model", model_file, "-q",
                 "--output", str(tmp_path / "o1")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("sensloc: error: ") and "Annotations" in err

    # An unknown class.
    code = main(["evaluate", "--voc", str(voc_root), "--classes", "unicorn", "--model", model_file,
                 "-q", "--output", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 1 and "unicorn" in err and err.count("\n") == 1

    # An output folder another run is writing.
    with folder_lock(tmp_path / "busy"):
        code = main(["evaluate", "--voc", str(voc_root), "--model", model_file, "-q",
                     "--output", str(tmp_path / "busy")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "is in use by another run" in err and "give this run another folder" in err

    # A corrupt test image: the message names the file, and nothing partial is left.
    broken = tmp_path / "broken"
    broken_root = write_voc_tree(broken, n_train=8, n_test=4)
    bad_image = broken_root / "JPEGImages" / "000009.jpg"
    bad_image.write_bytes(b"\xff\xd8 not really a jpeg")
    code = main(["evaluate", "--voc", str(broken_root), "--model", model_file, "-q",
                 "--sigmas", "1", "--output", str(tmp_path / "o3")])
    err = capsys.readouterr().err
    assert code == 1 and str(bad_image) in err and err.count("\n") == 1
    leftovers = [p for p in (tmp_path / "o3" / "cache").rglob("*") if p.is_file()]
    assert leftovers and all(p.suffix == ".npy" and not p.name.startswith(".") for p in leftovers)
    assert not list((tmp_path / "o3").glob("table*"))


# --------------------------------------------------------------------------- fit and predict


def _csv_rows(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_fit_then_predict_from_a_voc_tree(model_file, voc_root, tmp_path, capsys):
    from sklearn_sensloc import load_localizer, load_voc

    localizer = tmp_path / "my.sensloc"
    assert main(["fit", "--voc", str(voc_root), "--split", "trainval", "--model", model_file,
                 "--pool", "2", "-q", "--output", str(localizer)]) == 0
    out = capsys.readouterr().out
    assert "Fitted on 20 photos (score of the predicted class, BoxRegressor)" in out
    loaded = load_localizer(localizer)
    assert loaded.steps[0][1].target == "class"
    record = loaded.localizer_record_["record"]
    assert record["data"]["split"] == "trainval" and record["command"].startswith("sensloc fit")
    output = tmp_path / "boxes.csv"
    photos = voc_root / "JPEGImages"
    assert main(["predict", str(localizer), str(photos), "--output", str(output), "-q",
                 "--overlays", str(tmp_path / "drawn")]) == 0
    assert "32 photos: 32 boxes written" in capsys.readouterr().out
    rows = _csv_rows(output)
    test = load_voc(voc_root, "test")
    fractions = loaded.predict(test.images)
    by_image = {row["image"]: row for row in rows}
    for image, box in zip(test.images, fractions):
        row = by_image[image]
        width, height = float(row["width"]), float(row["height"])
        np.testing.assert_allclose([float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax")],
                                   box * [width, height, width, height], atol=0.051)
    assert len(list((tmp_path / "drawn").glob("*.jpg"))) == 32
    # The same command again: every photo already has its row.
    assert main(["predict", str(localizer), str(photos), "--output", str(output), "-q"]) == 0
    assert "0 boxes written to" in capsys.readouterr().out and len(_csv_rows(output)) == 32


def test_fit_from_coco_and_csv_then_predict_coco_results(model_file, voc_root, tmp_path, capsys):
    from sklearn_sensloc import load_voc

    train = load_voc(voc_root, "trainval")
    images = [Path(image).name for image in train.images]
    sizes = train.sizes
    coco = {"images": [{"id": i + 1, "file_name": name, "width": int(w), "height": int(h)}
                       for i, (name, (w, h)) in enumerate(zip(images, sizes))],
            "categories": [{"id": 1, "name": "animal"}],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                             "bbox": [b[0] * w, b[1] * h, (b[2] - b[0]) * w, (b[3] - b[1]) * h]}
                            for i, (b, (w, h)) in enumerate(zip(train.boxes, sizes))]}
    (tmp_path / "train.json").write_text(json.dumps(coco))
    lines = ["image,xmin,ymin,xmax,ymax"] + [
        f"{name},{b[0] * w},{b[1] * h},{b[2] * w},{b[3] * h}"
        for name, b, (w, h) in zip(images, train.boxes, sizes)]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    folder = str(voc_root / "JPEGImages")
    for option in ("--coco", "--csv"):
        source = tmp_path / f"train.{option[2:] if option == '--csv' else 'json'}"
        assert main(["fit", option, str(source), "--images", folder, "--model", model_file,
                     "--estimator", "heuristic", "--pool", "2", "-q",
                     "--output", str(tmp_path / f"{option[2:]}.sensloc")]) == 0
        assert "Fitted on 20 photos" in capsys.readouterr().out
    output = tmp_path / "results.json"
    assert main(["predict", str(tmp_path / "coco.sensloc"), folder + "/00001*.jpg",
                 "--image-ids", str(tmp_path / "train.json"), "--output", str(output),
                 "-q"]) == 0
    results = json.loads(output.read_text())
    names = sorted(Path(p).name for p in (voc_root / "JPEGImages").glob("00001*.jpg"))
    assert [Path(r["file_name"]).name for r in results] == names
    ids = {entry["file_name"]: entry["id"] for entry in coco["images"]}
    assert [r["image_id"] for r in results] == [ids[name] for name in names]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--model", "x.keras", "--output", "o.sensloc"],
         "one of the arguments --voc --coco --csv is required"),
        (["fit", "--coco", "a.json", "--output", "o.sensloc"], "--coco needs --images DIR"),
        (["fit", "--voc", ".", "--images", ".", "--output", "o.sensloc"], "--images is for"),
        (["fit", "--csv", "a.csv", "--images", ".", "--split", "train", "--output", "o.sensloc"],
         "--split is for --voc"),
        (["fit", "--voc", ".", "--output", "."], "is a folder; give a file name"),
        (["fit", "--voc", "."], "the following arguments are required: --output"),
        (["predict", "missing.sensloc", "photos", "--output", "b.csv"],
         "LOCALIZER 'missing.sensloc': no such file"),
        (["predict", "x.sensloc"], "the following arguments are required: PATH"),
    ],
)
def test_fit_and_predict_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_fit_and_predict_data_errors_are_one_line(model_file, voc_root, tmp_path, capsys):
    code = main(["fit", "--voc", str(voc_root), "--split", "test2007", "--model", model_file,
                 "-q", "--output", str(tmp_path / "m.sensloc")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "splits found beside it: test, trainval. Pass --split with one of test, trainval." in err
    code = main(["evaluate", "--voc", str(voc_root), "--test-split", "val", "--model", model_file,
                 "-q", "--output", str(tmp_path / "e")])
    assert "Pass --test-split with one of test, trainval." in capsys.readouterr().err
    (tmp_path / "not.sensloc").write_text("hello")
    code = main(["predict", str(tmp_path / "not.sensloc"), str(voc_root / "JPEGImages"),
                 "--output", str(tmp_path / "b.csv")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "is not a zip archive" in err
    localizer = tmp_path / "m.sensloc"
    main(["fit", "--voc", str(voc_root), "--split", "trainval", "--model", model_file, "-q",
          "--output", str(localizer)])
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "fake.jpg").write_text("not a photo")
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "photos" / "real.png")
    capsys.readouterr()
    code = main(["predict", str(localizer), str(tmp_path / "photos"), "-q",
                 "--output", str(tmp_path / "b.csv")])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count("\n") == 1 and "sensloc: warning: Skipped photo" in captured.err
    assert "fake.jpg" in captured.err and "1 unreadable skipped" in captured.out
    assert [Path(row["image"]).name for row in _csv_rows(tmp_path / "b.csv")] == ["real.png"]
    code = main(["predict", str(localizer), str(tmp_path / "nothing"), "-q",
                 "--output", str(tmp_path / "b.csv")])
    assert code == 1 and "nothing" in capsys.readouterr().err
