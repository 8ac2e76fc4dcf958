"""Tests for load_csv_boxes on small CSV files and images written in temporary directories."""

import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from PIL import Image
from test_voc import assert_same_fields_as_load_voc

import sklearn_sensloc
from sklearn_sensloc.datasets import load_csv_boxes

HEADER = "image,xmin,ymin,xmax,ymax,label\n"


def photo(folder, name, width=200, height=100):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 140, 30)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    photo(tmp_path, "b.png")
    photo(tmp_path, "trip/a.jpg", 640, 480)
    photo(tmp_path, "other.png", 10, 10)
    return tmp_path


def write(folder, text, name="boxes.csv"):
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD = (HEADER
        + "b.png,20,10,120,60,dog\n"            # 0.1 0.1 0.6 0.6
        + "trip/a.jpg,64,120,320,360,car\n"     # 0.1 0.25 0.5 0.75
        + "b.png,0,0,10,10,ball\n"
        + "trip/a.jpg,0,0,640,480,person\n")


def load_quietly(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_csv_boxes(*args, **kwargs)
    return data, caught


# --- normal files --------------------------------------------------------------------------------

def test_normal_file_fields(folder):
    path = write(folder, GOOD)
    data = load_csv_boxes(path, folder)

    assert data.image_ids == ["b.png", "trip/a.jpg"]  # first appearance
    assert data.images == [str(folder / "b.png"), str(folder / "trip" / "a.jpg")]
    assert all(os.path.isabs(p) for p in data.images)
    assert_allclose(data.boxes, [[0.1, 0.1, 0.6, 0.6], [0, 0, 1, 1]])
    assert data.labels == ["dog", "person"]  # the largest of each image
    assert data.all_labels == [["dog", "ball"], ["car", "person"]]
    assert_allclose(data.all_boxes[1], [[0.1, 0.25, 0.5, 0.75], [0, 0, 1, 1]])
    assert [d.tolist() for d in data.difficult] == [[False, False], [False, False]]
    assert data.class_names == ["ball", "car", "dog", "person"]
    assert data.sizes.tolist() == [[200, 100], [640, 480]]  # read from the image files
    assert data.root == str(folder.resolve())
    assert data.annotations == str(path.resolve())
    assert data.skipped == []


def test_same_fields_as_load_voc(tmp_path, folder):
    assert_same_fields_as_load_voc(load_csv_boxes(write(folder, GOOD), folder), tmp_path / "voc")


def test_exported_from_the_package():
    assert sklearn_sensloc.load_csv_boxes is load_csv_boxes


def test_without_label_column_columns_in_any_order_and_case(folder):
    text = " YMAX , Image,xmin,ymax_note,XMax,ymin\r\n60,b.png,20,x,120,10\r\n"
    data = load_csv_boxes(write(folder, text), folder)
    assert_allclose(data.boxes, [[0.1, 0.1, 0.6, 0.6]])
    assert data.labels == ["object"] and data.class_names == ["object"]


def test_byte_order_mark_quotes_and_blank_lines(folder):
    photo(folder, "with, comma.png", 100, 100)
    text = '\ufeff' + HEADER + '\n"with, comma.png", 0 ,0,50,100, dog \n\n,,,,,\n'
    data = load_csv_boxes(write(folder, text.encode("utf-8")), folder)
    assert data.image_ids == ["with, comma.png"]
    assert_array_equal(data.boxes, [[0, 0, 0.5, 1]])
    assert data.labels == ["dog"]


@pytest.mark.parametrize("fractions", [[0, 0, 1, 1], [0.25, 0.5, 0.75, 1.0], [0.5, 0.5, 0.5, 0.5]])
def test_known_fractions(folder, fractions):
    # Continuous 0-based pixels, xmax exclusive: the fractions are x / width and y / height.
    x0, y0, x1, y1 = fractions
    text = HEADER + f"trip/a.jpg,{x0 * 640},{y0 * 480},{x1 * 640},{y1 * 480},dog\n"
    assert_array_equal(load_csv_boxes(write(folder, text), folder).boxes, [fractions])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.lists(st.integers(0, 300), min_size=4, max_size=4))
def test_round_trip_of_integer_pixel_boxes(tmp_path_factory, width, height, raw):
    folder = tmp_path_factory.mktemp("round")
    photo(folder, "a.png", width, height)
    x0, x1 = sorted(min(v, width) for v in raw[:2])
    y0, y1 = sorted(min(v, height) for v in raw[2:])
    data = load_csv_boxes(write(folder, HEADER + f"a.png,{x0},{y0},{x1},{y1},x\n"), folder)
    assert_allclose(data.boxes, [[x0 / width, y0 / height, x1 / width, y1 / height]])
    assert np.all((data.boxes >= 0) & (data.boxes <= 1))


# --- choice and classes ---------------------------------------------------------------------------

def test_object_choice_and_classes(folder):
    path = write(folder, GOOD)
    assert load_csv_boxes(path, folder, object_choice="first").labels == ["dog", "car"]
    cars = load_csv_boxes(path, folder, classes=["car"])
    assert cars.image_ids == ["trip/a.jpg"] and cars.all_labels == [["car"]]
    assert cars.class_names == ["car"]
    with pytest.raises(ValueError, match=r"\['unicorn'\] appear in no annotation of .*boxes\.csv"):
        load_csv_boxes(path, folder, classes="unicorn")


# --- malformed files ------------------------------------------------------------------------------

MALFORMED_ROWS = {
    "bad number": ("b.png,20,ten,120,60,dog", r"line 3 'ymin': not a number \('ten'\)"),
    "missing number": ("b.png,20,10,,60,dog", r"line 3 'xmax': not a number \(''\)"),
    "a NUL byte": ("b.png,2\x000,10,120,60,dog", r"line 3 'xmin': not a number \('2\\x000'\)"),
    "infinite": ("b.png,20,10,inf,60,dog", r"line 3 'xmax': not finite \('inf'\)"),
    "negative": ("b.png,-1,10,120,60,dog", r"line 3 'xmin': -1 is outside the image \[0, 200\] \(the image is 200 x 100 pixels\)"),
    "beyond the width": ("b.png,20,10,201,60,dog", r"line 3 'xmax': 201 is outside the image \[0, 200\]"),
    "beyond the height": ("b.png,20,10,120,100.5,dog", r"line 3 'ymax': 100.5 is outside the image \[0, 100\]"),
    "reversed x": ("b.png,120,10,20,60,dog", r"line 3 'xmin': 120 is greater than xmax 20"),
    "reversed y": ("b.png,20,60,120,10,dog", r"line 3 'ymin': 60 is greater than ymax 10"),
    "empty label": ("b.png,20,10,120,60, ", r"line 3 'label': empty"),
    "too few fields": ("b.png,20,10,120,60", r"line 3: 5 field\(s\), but the header has 6"),
    "too many fields": ("b.png,20,10,120,60,dog,extra", r"line 3: 7 field\(s\), but the header has 6"),
    "empty image": (",20,10,120,60,dog", r"line 3 'image': the image file name is missing or empty"),
    "image leaves the folder": ("../b.png,20,10,120,60,dog", r"line 3 'image': image file name '\.\./b\.png' is not a relative path inside"),
    "absolute image": ("/etc/passwd,20,10,120,60,dog", r"line 3 'image': image file name '/etc/passwd' is not a relative path"),
    "image not an image": ("notes.png,20,10,120,60,dog", r"line 3: Cannot read image file '.*notes\.png'"),
    "image a folder": ("trip,20,10,120,60,dog", r"line 3: '.*trip' is a folder, not an image file"),
}


@pytest.mark.parametrize("case", MALFORMED_ROWS)
def test_bad_row_names_file_line_and_column(folder, case):
    row, pattern = MALFORMED_ROWS[case]
    (folder / "notes.png").write_text("not an image")
    path = write(folder, HEADER + "other.png,0,0,5,5,cat\n" + row + "\n")
    with pytest.raises(ValueError, match=pattern) as info:
        load_csv_boxes(path, folder)
    assert str(info.value).startswith(f"{path.resolve()}, line 3")


def test_missing_image_names_file_and_line(folder):
    path = write(folder, HEADER + "other.png,0,0,5,5,cat\n\nmissing.jpg,0,0,5,5,cat\n")
    with pytest.raises(FileNotFoundError, match=r"boxes\.csv, line 4: image file .*missing\.jpg not found"):
        load_csv_boxes(path, folder)


BAD_FILES = {
    "no header": ("b.png,20,10,120,60,dog\n", r"line 1: the header must name the columns image, xmin, ymin, xmax, ymax \(and optionally label\); got 'b\.png,20,10,120,60,dog'"),
    "a column missing": ("image,xmin,ymin,xmax,label\n", r"line 1: the header must name .*got 'image,xmin,ymin,xmax,label'"),
    "empty file": ("", r"line 1: the header must name .*got an empty file"),
    "a column twice": ("image,xmin,ymin,xmax,ymax,xmin\n", r"line 1: column 'xmin' appears twice"),
    "not UTF-8": (b"image,xmin,ymin,xmax,ymax\n\xff\xfe,1,2,3,4\n", r"not UTF-8 text \(invalid start byte at byte \d+\)"),
    "an unclosed quote in a huge field": ('image,xmin,ymin,xmax,ymax\n"b.png' + "x" * 200_000 + "\n", r"line \d+: not valid CSV \(field larger than field limit"),
}


@pytest.mark.parametrize("case", BAD_FILES)
@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_bad_file_always_raises_naming_it(folder, case, on_error):
    text, pattern = BAD_FILES[case]
    path = write(folder, text)
    with pytest.raises(ValueError, match=pattern) as info:
        load_csv_boxes(path, folder, on_error=on_error)
    assert str(info.value).startswith(str(path.resolve()))


def test_nothing_left(folder):
    with pytest.raises(ValueError, match=r"no image left from .*boxes\.csv"):
        load_csv_boxes(write(folder, HEADER), folder)


def test_missing_csv_or_folder(folder):
    with pytest.raises(FileNotFoundError, match="box file .*nowhere.csv not found"):
        load_csv_boxes(folder / "nowhere.csv", folder)
    with pytest.raises(FileNotFoundError, match="image folder .*nowhere not found"):
        load_csv_boxes(write(folder, GOOD), folder / "nowhere")


def test_skip_warns_once_and_keeps_good_rows(folder):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    text = (HEADER
            + "b.png,20,10,120,60,dog\n"
            + "b.png,20,10,999,60,cat\n"          # line 3: bad box, only the row
            + "missing.jpg,0,0,1,1,cat\n"         # line 4: missing image
            + "missing.jpg,0,0,2,2,cat\n"         # line 5: same image, not counted again
            + "broken.jpg,0,0,1,1,cat\n"          # line 6: unreadable image
            + "other.png,0,0,1,1\n")              # line 7: a field short
    path = write(folder, text)

    data, caught = load_quietly(path, folder, on_error="skip")

    assert data.image_ids == ["b.png"] and data.all_labels == [["dog"]]
    assert [w.category for w in caught] == [UserWarning]
    message = str(caught[0].message)
    assert message.startswith("load_csv_boxes skipped 2 image(s) and 2 row(s)")
    assert "(first: boxes.csv, line 3, boxes.csv, line 4, boxes.csv, line 6, ...)" in message
    assert [where for where, _ in data.skipped] == [f"{path.resolve()}, line {n}" for n in (3, 4, 6, 7)]
    assert "missing.jpg not found" in data.skipped[1][1]
    assert "Cannot read image file" in data.skipped[2][1]


def test_each_image_is_opened_once(folder, monkeypatch):
    from sklearn_sensloc.datasets import _csv_boxes

    opened = []
    real = _csv_boxes.read_image_size
    monkeypatch.setattr(_csv_boxes, "read_image_size", lambda path: opened.append(path) or real(path))
    load_csv_boxes(write(folder, GOOD), folder)
    assert sorted(opened) == [str(folder / "b.png"), str(folder / "trip" / "a.jpg")]


@pytest.mark.parametrize("kwargs, pattern", [
    ({"on_error": "ignore"}, "on_error"),
    ({"object_choice": "biggest"}, "object_choice"),
    ({"classes": [""]}, "classes"),
])
def test_invalid_parameters(folder, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_csv_boxes(write(folder, GOOD), folder, **kwargs)
