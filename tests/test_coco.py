"""Tests for load_coco on small COCO instances files written in temporary directories."""

import copy
import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from test_voc import assert_same_fields_as_load_voc

import sklearn_sensloc
from sklearn_sensloc.datasets import load_coco

CATEGORIES = [{"id": 18, "name": "dog"}, {"id": 3, "name": "car"}, {"id": 17, "name": "cat"}]


def image(image_id, file_name, width=200, height=100):
    return {"id": image_id, "file_name": file_name, "width": width, "height": height,
            "license": 1, "coco_url": "http://example.invalid/x.jpg"}


def ann(image_id, bbox, category_id=18, iscrowd=0, **extra):
    return {"id": 1000 + image_id, "image_id": image_id, "bbox": bbox, "category_id": category_id,
            "iscrowd": iscrowd, "area": bbox[2] * bbox[3] if len(bbox) == 4 else 0,
            "segmentation": [[0, 0, 1, 1, 1, 0]], **extra}


def write(folder, data, images=True):
    """Write the JSON and an empty file for each image entry's file_name; return the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instances.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    if images and isinstance(data, dict):
        for entry in data.get("images", []):
            name = entry.get("file_name") if isinstance(entry, dict) else None
            if isinstance(name, str) and name and not name.startswith(("/", "..")):
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(b"")
    return path


@pytest.fixture
def coco():
    return {
        "info": {"description": "test"},
        "images": [image(42, "b.jpg"), image(7, "sub/a.jpg", 640, 480), image(9, "empty.jpg"),
                   image(11, "crowd_only.jpg")],
        "annotations": [
            ann(42, [20, 10, 100, 50]),                       # 0.1 0.1 0.6 0.6
            ann(7, [64, 120, 256, 240], category_id=3),       # 0.1 0.25 0.5 0.75
            ann(42, [0, 0, 20, 20], category_id=17),
            ann(7, [0, 0, 640, 480], category_id=18, iscrowd=1),
            ann(11, [0, 0, 50, 50], iscrowd=1),
        ],
        "categories": CATEGORIES,
    }


def load_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_coco(*args, **kwargs)
    return data, caught


# --- normal files --------------------------------------------------------------------------------

def test_normal_file_fields(tmp_path, coco):
    path = write(tmp_path, coco)
    data = load_coco(path, tmp_path)

    assert data.image_ids == [42, 7]  # file order; no annotation, or crowds only: dropped
    assert data.images == [str(tmp_path / "b.jpg"), str(tmp_path / "sub" / "a.jpg")]
    assert all(os.path.isabs(p) for p in data.images)
    assert_allclose(data.boxes, [[0.1, 0.1, 0.6, 0.6], [0.1, 0.25, 0.5, 0.75]])
    assert data.boxes.dtype == np.float64
    assert data.labels == ["dog", "car"]
    assert data.all_labels == [["dog", "cat"], ["car", "dog"]]
    assert_allclose(data.all_boxes[1], [[0.1, 0.25, 0.5, 0.75], [0, 0, 1, 1]])
    assert [d.tolist() for d in data.difficult] == [[False, False], [False, True]]
    assert data.class_names == ["dog", "car", "cat"]  # the file's category order
    assert data.sizes.tolist() == [[200, 100], [640, 480]]
    assert np.issubdtype(data.sizes.dtype, np.integer)
    assert data.root == str(tmp_path.resolve())
    assert data.annotations == str(path.resolve())
    assert data.skipped == []


def test_same_fields_as_load_voc(tmp_path, coco):
    assert_same_fields_as_load_voc(load_coco(write(tmp_path / "coco", coco), tmp_path / "coco"), tmp_path / "voc")


def test_exported_from_the_package():
    assert sklearn_sensloc.load_coco is load_coco


@pytest.mark.parametrize("fractions", [[0, 0, 1, 1], [0.25, 0.5, 0.75, 1.0], [0.5, 0.5, 0.5, 0.5]])
def test_known_fractions(tmp_path, fractions):
    width, height = 640, 480
    x0, y0, x1, y1 = fractions
    bbox = [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]
    coco = {"images": [image(1, "a.jpg", width, height)], "annotations": [ann(1, bbox)],
            "categories": CATEGORIES}
    assert_array_equal(load_coco(write(tmp_path, coco), tmp_path).boxes, [fractions])


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000),
       st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_round_trip_of_pixel_boxes(tmp_path_factory, width, height, raw):
    x0, x1 = sorted(raw[:2])
    y0, y1 = sorted(raw[2:])
    bbox = [x0 * width, y0 * height, x1 * width - x0 * width, y1 * height - y0 * height]
    coco = {"images": [image(1, "a.jpg", width, height)], "annotations": [ann(1, bbox)],
            "categories": CATEGORIES}
    folder = tmp_path_factory.mktemp("round")
    boxes = load_coco(write(folder, coco), folder).boxes
    assert_allclose(boxes, [[x0, y0, x1, y1]], atol=1e-12)
    assert np.all((boxes >= 0) & (boxes <= 1))


def test_string_ids_and_missing_iscrowd(tmp_path):
    coco = {"images": [{"id": "img-1", "file_name": "a.jpg", "width": 10, "height": 10}],
            "annotations": [{"image_id": "img-1", "bbox": [0, 0, 5, 5], "category_id": "d"}],
            "categories": [{"id": "d", "name": "dog"}]}
    data = load_coco(write(tmp_path, coco), tmp_path)
    assert data.image_ids == ["img-1"] and data.labels == ["dog"]
    assert data.difficult[0].tolist() == [False]


def test_corners_within_a_pixel_outside_are_clipped(tmp_path):
    coco = {"images": [image(1, "a.jpg", 200, 100)],
            "annotations": [ann(1, [-0.4, 50, 200.7, 50.9])], "categories": CATEGORIES}
    assert_array_equal(load_coco(write(tmp_path, coco), tmp_path).boxes, [[0, 0.5, 1, 1]])


# --- choice, crowds, classes ----------------------------------------------------------------------

def test_object_choice(tmp_path, coco):
    path = write(tmp_path, coco)
    assert load_coco(path, tmp_path).labels == ["dog", "car"]
    assert load_coco(path, tmp_path, object_choice="first").labels == ["dog", "car"]
    coco["annotations"][0]["bbox"] = [0, 0, 10, 10]
    path = write(tmp_path, coco)
    assert load_coco(path, tmp_path).labels == ["cat", "car"]
    assert load_coco(path, tmp_path, object_choice="first").labels == ["dog", "car"]


def test_crowds_are_kept_apart_like_difficult_objects(tmp_path, coco):
    path = write(tmp_path, coco)
    data = load_coco(path, tmp_path, include_crowd=True)
    assert data.image_ids == [42, 7, 11]
    assert data.labels == ["dog", "dog", "dog"]  # the whole-image crowd is now the largest
    assert data.difficult[2].tolist() == [True]


def test_classes_filter(tmp_path, coco):
    path = write(tmp_path, coco)
    data = load_coco(path, tmp_path, classes=["car"])
    assert data.image_ids == [7] and data.class_names == ["car"]
    assert data.all_labels == [["car"]]
    cats = load_coco(path, tmp_path, classes="cat")
    assert cats.image_ids == [42] and cats.all_labels == [["cat"]]
    with pytest.raises(ValueError, match=r"\['unicorn'\] appear in no annotation of .*instances\.json"):
        load_coco(path, tmp_path, classes=["dog", "unicorn"])


# --- malformed files ------------------------------------------------------------------------------

def mutate(coco, section, index, key, value):
    broken = copy.deepcopy(coco)
    if key is None:
        broken[section][index] = value
    elif value is KeyError:
        del broken[section][index][key]
    else:
        broken[section][index][key] = value
    return broken


MALFORMED = {
    "image id missing": (("images", 1, "id", KeyError), r"images\[1\] 'id': expected an integer or a string, got nothing"),
    "image id a float": (("images", 1, "id", 7.5), r"images\[1\] 'id': .* got 7\.5"),
    "image id twice": (("images", 1, "id", 42), r"images\[1\] 'id': 42 is also the id of .*images\[0\]"),
    "file_name missing": (("images", 1, "file_name", KeyError), r"images\[1\] 'file_name': the image file name is missing"),
    "file_name leaves the folder": (("images", 1, "file_name", "../../etc/passwd"), r"images\[1\] 'file_name': .*'\.\./\.\./etc/passwd' is not a relative path inside"),
    "file_name absolute": (("images", 1, "file_name", "/etc/passwd"), r"images\[1\] 'file_name': .*is not a relative path inside"),
    "width missing": (("images", 1, "width", KeyError), r"images\[1\] 'width': expected a finite number, got nothing"),
    "width zero": (("images", 1, "width", 0), r"images\[1\] 'width': must be a positive integer, got 0"),
    "height fractional": (("images", 1, "height", 10.5), r"images\[1\] 'height': must be a positive integer"),
    "width a string": (("images", 1, "width", "640"), r"images\[1\] 'width': expected a finite number, got \"640\""),
    "width a boolean": (("images", 1, "width", True), r"images\[1\] 'width': expected a finite number, got true"),
    "image not an object": (("images", 1, None, 7), r"images\[1\]: expected an object, got a number"),
    "unknown image_id": (("annotations", 1, "image_id", 99), r"annotations\[1\] 'image_id': 99 is the id of no image"),
    "image_id a list": (("annotations", 1, "image_id", [7]), r"annotations\[1\] 'image_id': expected an integer or a string, got \[7\]"),
    "unknown category": (("annotations", 1, "category_id", 5), r"annotations\[1\] 'category_id': 5 is the id of no category"),
    "bbox missing": (("annotations", 1, "bbox", KeyError), r"annotations\[1\] 'bbox': expected \[x, y, width, height\], got nothing"),
    "bbox of three": (("annotations", 1, "bbox", [1, 2, 3]), r"annotations\[1\] 'bbox': expected \[x, y, width, height\], got \[1, 2, 3\]"),
    "bbox corners": (("annotations", 1, "bbox", {"x": 1}), r"annotations\[1\] 'bbox': expected"),
    "bbox text": (("annotations", 1, "bbox", [1, "2", 3, 4]), r"annotations\[1\] bbox 'y': expected a finite number, got \"2\""),
    "bbox NaN": (("annotations", 1, "bbox", [1, 2, float("nan"), 4]), r"annotations\[1\] bbox 'width': expected a finite number, got NaN"),
    "bbox null": (("annotations", 1, "bbox", [1, 2, 3, None]), r"annotations\[1\] bbox 'height': expected a finite number, got null"),
    "negative width": (("annotations", 1, "bbox", [10, 10, -3, 4]), r"annotations\[1\] 'bbox': width and height must not be negative, got -3 and 4"),
    "negative x": (("annotations", 1, "bbox", [-5, 10, 3, 4]), r"annotations\[1\] bbox 'x': -5 is outside the image \[0, 640\] \(the image is 640 x 480 pixels\)"),
    "beyond the right edge": (("annotations", 1, "bbox", [600, 10, 50, 4]), r"annotations\[1\] bbox 'x \+ width': 650 is outside the image \[0, 640\]"),
    "beyond the bottom edge": (("annotations", 1, "bbox", [0, 400, 5, 90]), r"annotations\[1\] bbox 'y \+ height': 490 is outside"),
    "iscrowd 2": (("annotations", 1, "iscrowd", 2), r"annotations\[1\] 'iscrowd': expected 0 or 1, got 2"),
    "iscrowd text": (("annotations", 1, "iscrowd", "0"), r"annotations\[1\] 'iscrowd': expected 0 or 1, got \"0\""),
    "annotation not an object": (("annotations", 1, None, [1, 2]), r"annotations\[1\]: expected an object, got an array"),
    "category without name": (("categories", 2, "name", ""), r"categories\[2\] 'name': missing or empty"),
    "category id twice": (("categories", 2, "id", 3), r"categories\[2\] 'id': 3 names two categories"),
    "category not an object": (("categories", 0, None, "dog"), r"categories\[0\]: expected an object, got a string"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_entry_names_file_list_index_and_key(tmp_path, coco, case):
    edit, pattern = MALFORMED[case]
    path = write(tmp_path, mutate(coco, *edit))
    with pytest.raises(ValueError, match=pattern) as info:
        load_coco(path, tmp_path)
    assert str(info.value).startswith(f"{path.resolve()}: ")


STRUCTURE = {
    "not JSON": ("{'images': []}", r"not valid JSON \(Expecting property name"),
    "empty file": ("", r"not valid JSON"),
    "not UTF-8": (b"\xff\xfe\xfa{", r"not valid JSON"),
    "nested too deeply": ("[" * 100_000 + "]" * 100_000, r"not valid JSON \(nested too deeply\)"),
    "a list": ("[]", r"expected a JSON object with 'images', 'annotations' and 'categories', got an array"),
    "no annotations": ('{"images": [], "categories": []}', r"'annotations': missing; a COCO instances file has all three lists"),
    "images an object": ('{"images": {}, "annotations": [], "categories": []}', r"'images': an object, not an array"),
}


@pytest.mark.parametrize("case", STRUCTURE)
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_not_a_coco_file_always_raises_naming_it(tmp_path, case, on_error):
    text, pattern = STRUCTURE[case]
    path = tmp_path / "instances.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=pattern) as info:
        load_coco(path, tmp_path, on_error=on_error)
    assert str(path) in str(info.value)


def test_nothing_left(tmp_path):
    coco = {"images": [image(1, "a.jpg")], "annotations": [], "categories": CATEGORIES}
    with pytest.raises(ValueError, match=r"no image left from .*instances\.json"):
        load_coco(write(tmp_path, coco), tmp_path)


# --- files and folders ----------------------------------------------------------------------------

def test_missing_files_and_folders(tmp_path, coco):
    path = write(tmp_path, coco)
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        load_coco(tmp_path / "nowhere.json", tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere"):
        load_coco(path, tmp_path / "nowhere")
    (tmp_path / "sub" / "a.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image file .*sub/a\.jpg \(named by .*images\[1\]\) not found"):
        load_coco(path, tmp_path)


def test_skip_warns_once_and_keeps_good_entries(tmp_path, coco):
    coco["images"].append({"id": 50, "file_name": "bad.jpg", "width": -1, "height": 10})
    coco["annotations"] += [ann(50, [0, 0, 1, 1]),  # of the skipped image: dropped with it
                            ann(42, [0, 0, 900, 5]), ann(77, [0, 0, 1, 1])]
    path = write(tmp_path, coco)
    (tmp_path / "sub" / "a.jpg").unlink()

    data, caught = load_quietly(path, tmp_path, on_error="skip")

    assert data.image_ids == [42]
    assert data.all_labels == [["dog", "cat"]]
    assert [w.category for w in caught] == [UserWarning]
    message = str(caught[0].message)
    assert message.startswith("load_coco skipped 2 image(s) and 2 annotation(s)")
    assert "(first: instances.json: images[4], instances.json: annotations[6], " in message
    reasons = dict(data.skipped)
    assert list(reasons) == [f"{path.resolve()}: images[4]", f"{path.resolve()}: annotations[6]",
                             f"{path.resolve()}: annotations[7]", f"{path.resolve()}: images[1]"]
    assert "'width': must be a positive integer" in reasons[f"{path.resolve()}: images[4]"]
    assert "sub/a.jpg" in reasons[f"{path.resolve()}: images[1]"]


def test_no_warning_without_skips(tmp_path, coco):
    data, caught = load_quietly(write(tmp_path, coco), tmp_path, on_error="skip")
    assert caught == [] and data.skipped == []


@pytest.mark.parametrize("kwargs, pattern", [
    ({"on_error": "ignore"}, "on_error"),
    ({"include_crowd": 1}, "include_crowd"),
    ({"object_choice": "biggest"}, "object_choice"),
    ({"classes": []}, "classes"),
])
def test_invalid_parameters(tmp_path, coco, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_coco(write(tmp_path, coco), tmp_path, **kwargs)


# --- fuzzing --------------------------------------------------------------------------------------

FUZZ_BASE = json.dumps({"images": [image(1, "a.jpg")], "annotations": [ann(1, [10, 10, 50, 50])],
                        "categories": CATEGORIES})


@settings(max_examples=100, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(FUZZ_BASE)), st.integers(0, 3),
                                st.text('{}[]",:0-9.e-/\\ x\x00é', max_size=3)),
                      min_size=1, max_size=4))
def test_fuzz_mutated_json_loads_or_raises_value_error(tmp_path_factory, edits):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "a.jpg").write_bytes(b"")
    text = FUZZ_BASE
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    (folder / "instances.json").write_text(text)
    for on_error in ("raise", "skip"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = load_coco(folder / "instances.json", folder, on_error=on_error)
        except (ValueError, FileNotFoundError) as exc:
            assert str(folder.resolve()) in str(exc)
        else:
            assert np.all((data.boxes >= 0) & (data.boxes <= 1))
