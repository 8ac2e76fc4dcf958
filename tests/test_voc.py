"""Tests for load_voc on small VOC-format trees built in temporary directories."""

import os
import time
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from PIL import Image

from sklearn_sensloc.datasets import SplitNotFoundError, load_voc
from sklearn_sensloc.datasets._voc import VOC_CLASSES


def obj(name, xmin, ymin, xmax, ymax, difficult=None):
    """One <object> element; difficult=None leaves the flag out, as many files do."""
    flag = "" if difficult is None else f"<difficult>{int(difficult)}</difficult>"
    return (
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{flag}"
        f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax>"
        "</bndbox></object>"
    )


def annotation(*objects, width=40, height=20, filename=None, size=None):
    """A VOC <annotation>; size overrides the whole <size> element (use "" to drop it)."""
    if size is None:
        size = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
    name = "" if filename is None else f"<filename>{filename}</filename>"
    return f"<annotation><folder>VOC</folder>{name}{size}{''.join(objects)}</annotation>"


def make_tree(root, annotations, *, split="trainval", split_ids=None, class_files=None,
              images=True, image_ext=".jpg"):
    """Write a VOC tree: {id: xml text}, the split list, class lists and one JPEG per id."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for image_id, xml in annotations.items():
        data = xml if isinstance(xml, bytes) else xml.encode()
        (root / "Annotations" / f"{image_id}.xml").write_bytes(data)
        if images:
            Image.new("RGB", (8, 6), (120, 30, 200)).save(root / "JPEGImages" / f"{image_id}{image_ext}")
    if split is not None:
        main = root / "ImageSets" / "Main"
        main.mkdir(parents=True)
        ids = list(annotations) if split_ids is None else split_ids
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for class_name, flags in (class_files or {}).items():
            (main / f"{class_name}_{split}.txt").write_text(
                "".join(f"{i} {flag:>2}\n" for i, flag in flags.items())
            )
    return root


@pytest.fixture
def voc_tree(tmp_path):
    return make_tree(tmp_path / "VOC", {
        "000001": annotation(obj("dog", 1, 1, 20, 10), obj("person", 5, 5, 40, 20),
                             filename="000001.jpg"),
        "000002": annotation(obj("cat", 11, 3, 30, 18)),
        "000003": annotation(obj("car", 1, 1, 4, 4), obj("dog", 2, 2, 30, 19, difficult=False),
                             width=30, height=19),
    }, split_ids=["000003", "000001", "000002"])


def assert_same_fields_as_load_voc(data, root):
    """``data``, from another loader, has load_voc's fields and types (``annotations`` for ``split``)."""
    voc = load_voc(make_tree(root, {"a": annotation(obj("dog", 1, 1, 5, 5))}))
    assert set(data) - {"annotations"} == set(voc) - {"split"}
    for field in data:
        if field in voc:
            assert type(data[field]) is type(voc[field]), field


def load_quietly(*args, **kwargs):
    """Call load_voc and return (result, list of warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_voc(*args, **kwargs)
    return data, caught


# --- normal trees ------------------------------------------------------------------------------

def test_normal_tree_fields(voc_tree):
    data = load_voc(voc_tree)

    assert data.image_ids == ["000003", "000001", "000002"]  # split file order
    assert data.images == [str((voc_tree / "JPEGImages" / f"{i}.jpg").resolve()) for i in data.image_ids]
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in data.images)
    assert data.boxes.dtype == np.float64 and data.boxes.shape == (3, 4)
    assert data.labels == ["dog", "person", "cat"]
    assert data.all_labels == [["car", "dog"], ["dog", "person"], ["cat"]]
    assert [b.shape for b in data.all_boxes] == [(2, 4), (2, 4), (1, 4)]
    assert all(b.dtype == np.float64 for b in data.all_boxes)
    assert [d.tolist() for d in data.difficult] == [[False, False], [False, False], [False]]
    assert data.class_names == list(VOC_CLASSES)
    assert data.sizes.tolist() == [[30, 19], [40, 20], [40, 20]]
    assert np.issubdtype(data.sizes.dtype, np.integer)
    assert data.root == str(voc_tree.resolve())
    assert data.split == "trainval"
    assert data.skipped == []
    assert np.all((data.boxes >= 0) & (data.boxes <= 1))
    assert np.all(data.boxes[:, :2] <= data.boxes[:, 2:])


def test_class_names_sorted_when_not_all_voc(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("zebra", 1, 1, 5, 5), obj("dog", 1, 1, 9, 9)),
                                "b": annotation(obj("apple", 1, 1, 5, 5))})
    assert load_voc(root).class_names == ["apple", "dog", "zebra"]


def test_imagenet_style_tree_without_imagesets(tmp_path):
    # ImageNet XML names the image without extension and uses upper-case .JPEG files.
    root = make_tree(tmp_path, {
        "n02_2": annotation(obj("n02084071", 3, 4, 30, 15), filename="n02_2"),
        "n01_1": annotation(obj("n01440764", 1, 1, 40, 20), filename="n01_1"),
    }, split=None, image_ext=".JPEG")
    assert not (root / "ImageSets").exists()

    data = load_voc(root, split=None)

    assert data.image_ids == ["n01_1", "n02_2"]
    assert data.class_names == ["n01440764", "n02084071"]
    assert data.images[0].endswith("n01_1.JPEG")
    assert data.split is None
    with pytest.raises(FileNotFoundError, match="trainval.txt"):
        load_voc(root)


def test_split_none_ignores_split_files(voc_tree):
    data = load_voc(voc_tree, split=None)
    assert data.image_ids == ["000001", "000002", "000003"]


def test_filename_element_picks_the_image(tmp_path):
    root = make_tree(tmp_path, {"x": annotation(obj("dog", 1, 1, 5, 5), filename="other.png")})
    Image.new("RGB", (8, 6)).save(root / "JPEGImages" / "other.png")
    assert load_voc(root).images == [str((root / "JPEGImages" / "other.png").resolve())]


# --- normalisation -----------------------------------------------------------------------------

def test_full_image_box_is_exactly_unit(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 1, 1, 333, 257), width=333, height=257)})
    data = load_voc(root)
    assert_array_equal(data.boxes, [[0.0, 0.0, 1.0, 1.0]])
    assert_array_equal(data.all_boxes[0], [[0.0, 0.0, 1.0, 1.0]])


def test_hand_computed_box(tmp_path):
    # 1-based inclusive pixels 11..110 x 21..70 of a 200x100 image span [10, 110] x [20, 70].
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 11, 21, 110, 70), width=200, height=100)})
    assert_array_equal(load_voc(root).boxes, [[0.05, 0.2, 0.55, 0.7]])


def test_fractional_and_zero_based_coordinates(tmp_path):
    # Some VOC2012 files have fractional coordinates; a 0 edge (0-based data) is clipped to 0.
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 0, 0.5, 20.5, 10), width=41, height=20)})
    assert_array_equal(load_voc(root).boxes, [[0.0, 0.0, 0.5, 0.5]])


# --- object choice and difficult objects --------------------------------------------------------

def test_object_choice_largest_vs_first(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("cat", 1, 1, 5, 5), obj("dog", 1, 1, 30, 15),
                                                obj("cow", 1, 1, 10, 10))})
    largest = load_voc(root)
    first = load_voc(root, object_choice="first")
    assert largest.labels == ["dog"]
    assert_array_equal(largest.boxes, [[0, 0, 0.75, 0.75]])
    assert first.labels == ["cat"]
    assert_array_equal(first.boxes, [[0, 0, 0.125, 0.25]])
    assert largest.all_labels == first.all_labels == [["cat", "dog", "cow"]]


def test_largest_tie_keeps_file_order(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("cat", 1, 1, 10, 10), obj("dog", 11, 11, 20, 20))})
    assert load_voc(root).labels == ["cat"]


@pytest.mark.parametrize("bad", ["biggest", None, "", ["largest"]])
def test_invalid_object_choice(voc_tree, bad):
    with pytest.raises(ValueError, match="object_choice"):
        load_voc(voc_tree, object_choice=bad)


def test_difficult_objects(tmp_path):
    root = make_tree(tmp_path, {
        "mixed": annotation(obj("dog", 1, 1, 40, 20, difficult=True), obj("cat", 1, 1, 4, 4)),
        "only_difficult": annotation(obj("dog", 1, 1, 10, 10, difficult=True)),
    })
    data = load_voc(root)
    assert data.image_ids == ["mixed"]
    assert data.labels == ["cat"]
    # Difficult objects are still reported for evaluation, flagged.
    assert data.all_labels == [["dog", "cat"]]
    assert data.difficult[0].tolist() == [True, False]
    assert_array_equal(data.all_boxes[0][0], [0, 0, 1, 1])

    with_difficult = load_voc(root, include_difficult=True)
    assert with_difficult.image_ids == ["mixed", "only_difficult"]
    assert with_difficult.labels == ["dog", "dog"]


def test_only_difficult_everywhere_is_an_empty_result(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 1, 1, 10, 10, difficult=True))})
    with pytest.raises(ValueError, match="no image left"):
        load_voc(root)


# --- class filter and class lists ---------------------------------------------------------------

def test_classes_filter(voc_tree):
    data = load_voc(voc_tree, classes=["dog", "cat"])
    assert data.class_names == ["dog", "cat"]
    assert data.image_ids == ["000003", "000001", "000002"]
    assert data.labels == ["dog", "dog", "cat"]
    # Objects of other classes leave all_boxes too.
    assert data.all_labels == [["dog"], ["dog"], ["cat"]]
    assert [b.shape[0] for b in data.all_boxes] == [1, 1, 1]

    person = load_voc(voc_tree, classes="person")
    assert person.image_ids == ["000001"] and person.class_names == ["person"]


def test_unknown_class_is_an_error(voc_tree):
    with pytest.raises(ValueError, match=r"unicorn.*appear in no annotation"):
        load_voc(voc_tree, classes=["dog", "unicorn"])


@pytest.mark.parametrize("bad", [[], [""], ["dog", 3], 5])
def test_invalid_classes(voc_tree, bad):
    with pytest.raises(ValueError, match="classes"):
        load_voc(voc_tree, classes=bad)


def test_class_split_files_preselect_images(tmp_path):
    # The -1 image has a broken XML: with the class lists it is never parsed.
    root = make_tree(tmp_path, {
        "1": annotation(obj("dog", 1, 1, 10, 10)),
        "2": "<annotation><size>broken",
        "3": annotation(obj("dog", 1, 1, 10, 10, difficult=True)),
        "4": annotation(obj("cat", 1, 1, 10, 10)),
    }, class_files={"dog": {"1": 1, "2": -1, "3": 0, "4": -1},
                    "cat": {"1": -1, "2": -1, "3": -1, "4": 1}})

    assert load_voc(root, classes=["dog"]).image_ids == ["1"]
    assert load_voc(root, classes=["dog"], include_difficult=True).image_ids == ["1", "3"]
    assert load_voc(root, classes=["dog", "cat"]).image_ids == ["1", "4"]
    with pytest.raises(ValueError, match=r"2\.xml"):
        load_voc(root)


def test_class_file_does_not_override_xml(tmp_path):
    # An id the list leaves out is parsed anyway; boxes come from the XML.
    root = make_tree(tmp_path, {"1": annotation(obj("dog", 1, 1, 10, 10)),
                                "2": annotation(obj("dog", 1, 1, 20, 20))},
                     class_files={"dog": {"1": 1}})
    data = load_voc(root, classes=["dog"])
    assert data.image_ids == ["1", "2"]
    assert_array_equal(data.boxes[1], [0, 0, 0.5, 1])


def test_malformed_class_file(tmp_path):
    root = make_tree(tmp_path, {"1": annotation(obj("dog", 1, 1, 10, 10))},
                     class_files={"dog": {"1": 7}})
    with pytest.raises(ValueError, match=r"dog_trainval\.txt, line 1"):
        load_voc(root, classes=["dog"])


# --- malformed annotations ----------------------------------------------------------------------

GOOD = obj("cat", 1, 1, 5, 5)

MALFORMED = {
    "missing size": (annotation(GOOD, size=""), "'size'"),
    "missing width": (annotation(GOOD, size="<size><height>20</height></size>"), "'width'"),
    "zero width": (annotation(GOOD, width=0), "'width'"),
    "negative height": (annotation(GOOD, height=-5), "'height'"),
    "fractional width": (annotation(GOOD, width=10.5), "'width'"),
    "non-numeric xmin": (annotation(GOOD, obj("dog", "abc", 1, 5, 5)), r"object\[1\] bndbox 'xmin'"),
    "missing ymax": (annotation(GOOD, obj("dog", 1, 1, 5, "")), r"object\[1\] bndbox 'ymax'"),
    "nan xmax": (annotation(GOOD, obj("dog", 1, 1, "nan", 5)), r"object\[1\] bndbox 'xmax'"),
    "negative xmin": (annotation(GOOD, obj("dog", -3, 1, 5, 5)), r"object\[1\] bndbox 'xmin'"),
    "xmax beyond width": (annotation(GOOD, obj("dog", 1, 1, 41, 5)), r"object\[1\] bndbox 'xmax'"),
    "ymax beyond height": (annotation(GOOD, obj("dog", 1, 1, 5, 21)), r"object\[1\] bndbox 'ymax'"),
    "reversed x": (annotation(GOOD, obj("dog", 9, 1, 5, 5)), r"object\[1\] bndbox 'xmin'"),
    "reversed y": (annotation(GOOD, obj("dog", 1, 9, 5, 5)), r"object\[1\] bndbox 'ymin'"),
    "missing bndbox": (annotation(GOOD, "<object><name>dog</name></object>"), r"object\[1\] 'bndbox'"),
    "missing name": (annotation(GOOD, obj("", 1, 1, 5, 5)), r"object\[1\] 'name'"),
    "bad difficult": (annotation(GOOD, obj("dog", 1, 1, 5, 5, difficult=2)), r"object\[1\] 'difficult'"),
    "filename leaves the tree": (annotation(GOOD, filename="../../etc/passwd"), "'filename'"),
    "unparseable": ("<annotation><size>", "not valid XML"),
    "empty file": ("", "not valid XML"),
    "unknown encoding": ('<?xml version="1.0" encoding="nope"?><annotation/>', "not valid XML"),
    "wrong root": ("<notes><size/></notes>", "'notes'"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_annotation_names_file(tmp_path, case):
    xml, pattern = MALFORMED[case]
    root = make_tree(tmp_path, {"ok": annotation(GOOD), "bad": xml})
    with pytest.raises(ValueError, match=pattern) as info:
        load_voc(root)
    assert str((root / "Annotations" / "bad.xml").resolve()) in str(info.value)


def test_coordinates_on_the_image_border_are_accepted(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 0, 0, 40, 20))})
    assert_array_equal(load_voc(root).boxes, [[0, 0, 1, 1]])


def test_skip_warns_once_and_keeps_good_records(tmp_path):
    root = make_tree(tmp_path, {
        "good": annotation(obj("dog", 1, 1, 10, 10)),
        "bad_object": annotation(obj("dog", 1, 1, 99, 10), obj("cat", 1, 1, 20, 20)),
        "unparseable": "<annotation><oops></annotation>",
        "no_size": annotation(GOOD, size=""),
        "no_image": annotation(GOOD),
    }, split_ids=["good", "bad_object", "unparseable", "no_size", "no_image", "no_xml"])
    (root / "JPEGImages" / "no_image.jpg").unlink()

    data, caught = load_quietly(root, on_error="skip")

    assert data.image_ids == ["good", "bad_object"]
    assert data.labels == ["dog", "cat"]
    assert data.all_labels == [["dog"], ["cat"]]
    assert [w.category for w in caught] == [UserWarning]
    message = str(caught[0].message)
    assert "4 file(s) and 1 object(s)" in message
    assert "bad_object.xml, unparseable.xml, no_size.xml, ..." in message
    assert len(data.skipped) == 5
    reasons = dict(data.skipped)
    assert "object[0]" in reasons[str(root.resolve() / "Annotations" / "bad_object.xml")]
    assert "no_image.jpg" in reasons[str(root.resolve() / "Annotations" / "no_image.xml")]


def test_skip_everything_is_an_empty_result_after_the_warning(tmp_path):
    root = make_tree(tmp_path, {"bad": "<annotation>"})
    with pytest.warns(UserWarning, match="1 file"), pytest.raises(ValueError, match="no image left"):
        load_voc(root, on_error="skip")


def test_no_warning_without_skips(voc_tree):
    data, caught = load_quietly(voc_tree, on_error="skip")
    assert caught == [] and data.skipped == []


# --- unsafe XML ---------------------------------------------------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE annotation [\n<!ENTITY lol0 "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    + ']>\n<annotation><filename>&lol9;</filename>'
    "<size><width>40</width><height>20</height></size></annotation>"
)


def external_entity(target):
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE annotation [<!ENTITY xxe SYSTEM "{target}">]>\n'
        "<annotation><filename>&xxe;</filename><size><width>40</width><height>20</height></size>"
        f"{GOOD}</annotation>"
    )


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_billion_laughs_is_refused_without_expansion(tmp_path, on_error):
    root = make_tree(tmp_path, {"ok": annotation(GOOD), "lol": BILLION_LAUGHS})
    start = time.perf_counter()
    if on_error == "raise":
        with pytest.raises(ValueError, match=r"lol\.xml: refused unsafe XML"):
            load_voc(root)
    else:
        data, _ = load_quietly(root, on_error="skip")
        assert data.image_ids == ["ok"]
        assert "refused unsafe XML" in data.skipped[0][1]
    # Expanding 10**9 "lol"s would take minutes and gigabytes.
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("target", ["file:///etc/passwd", "SECRET_FILE"])
def test_external_entity_is_refused_without_reading(tmp_path, target):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    target = secret.as_uri() if target == "SECRET_FILE" else target
    root = make_tree(tmp_path / "voc", {"xxe": external_entity(target)})
    with pytest.raises(ValueError, match=r"xxe\.xml: refused unsafe XML") as info:
        load_voc(root)
    assert "TOP-SECRET" not in str(info.value) and "root:" not in str(info.value)

    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no image left"):
        load_voc(root, on_error="skip")


def test_dtd_is_refused(tmp_path):
    xml = '<!DOCTYPE annotation SYSTEM "http://example.invalid/voc.dtd">' + annotation(GOOD)
    root = make_tree(tmp_path, {"dtd": xml})
    with pytest.raises(ValueError, match=r"dtd\.xml: refused unsafe XML"):
        load_voc(root)


# --- tree-level errors and parameters -----------------------------------------------------------

def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_voc(tmp_path / "nowhere")


@pytest.mark.parametrize("missing", ["Annotations", "JPEGImages"])
def test_missing_directories(voc_tree, missing):
    for path in (voc_tree / missing).iterdir():
        path.unlink()
    (voc_tree / missing).rmdir()
    with pytest.raises(FileNotFoundError, match=missing):
        load_voc(voc_tree)


def test_missing_split_file_names_the_splits_that_exist(voc_tree):
    main = voc_tree / "ImageSets" / "Main"
    (main / "train.txt").write_text("000001\n")
    (main / "dog_train.txt").write_text("000001  1\n")  # a class list, not a split
    with pytest.raises(SplitNotFoundError) as info:
        load_voc(voc_tree, split="val")
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert (error.split, error.available) == ("val", ["train", "trainval"])
    assert error.split_file == str(main.resolve() / "val.txt")
    assert str(error) == f"split file {error.split_file} not found; splits found beside it: train, trainval."
    assert "split=None" not in str(error)


def test_missing_split_file_without_any_split(tmp_path):
    root = make_tree(tmp_path, {"a": annotation(obj("dog", 1, 1, 5, 5))}, split=None)
    with pytest.raises(SplitNotFoundError, match=r"Main/trainval\.txt not found, nor any other") as info:
        load_voc(root)
    assert info.value.available == []


def test_missing_image_and_annotation_files(voc_tree):
    (voc_tree / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"000002\.jpg"):
        load_voc(voc_tree)
    (voc_tree / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000404\n")
    with pytest.raises(FileNotFoundError, match=r"Annotations/000404\.xml"):
        load_voc(voc_tree)


def test_split_file_with_path_is_refused(voc_tree):
    (voc_tree / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n../../escape\n")
    with pytest.raises(ValueError, match=r"trainval\.txt, line 2"):
        load_voc(voc_tree)


def test_duplicate_ids_are_loaded_once(voc_tree):
    (voc_tree / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n\n000001\n000002\n")
    assert load_voc(voc_tree).image_ids == ["000001", "000002"]


@pytest.mark.parametrize("kwargs, pattern", [
    ({"on_error": "ignore"}, "on_error"),
    ({"include_difficult": "yes"}, "include_difficult"),
    ({"split": "../trainval"}, "split"),
    ({"split": 3}, "split"),
])
def test_invalid_parameters(voc_tree, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_voc(voc_tree, **kwargs)


# --- fuzzing ------------------------------------------------------------------------------------

FUZZ_BASE = annotation(obj("dog", 2, 3, 30, 15, difficult=False), obj("cat", 1, 1, 40, 20))


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    # No <filename>, so a mutation cannot turn a parse problem into a missing-image problem.
    return make_tree(tmp_path_factory.mktemp("fuzz"), {"f": FUZZ_BASE}, split=None)


def check_loads_or_value_error(root, payload):
    xml_path = root / "Annotations" / "f.xml"
    xml_path.write_bytes(payload)
    for on_error in ("raise", "skip"):
        try:
            data, _ = load_quietly(root, split=None, on_error=on_error)
        except ValueError as exc:
            assert str(root.resolve()) in str(exc)
        else:
            assert np.all((data.boxes >= 0) & (data.boxes <= 1))


fuzz_settings = settings(max_examples=100, deadline=None)


@fuzz_settings
@given(payload=st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_root, payload):
    check_loads_or_value_error(fuzz_root, payload)


@fuzz_settings
@given(edits=st.lists(st.tuples(st.integers(0, len(FUZZ_BASE)), st.integers(0, 3),
                                st.text("<>/&;!\"'=x0-9 .\x00é", max_size=3)),
                      min_size=1, max_size=4))
def test_fuzz_mutated_xml(fuzz_root, edits):
    text = FUZZ_BASE
    for position, deleted, inserted in edits:
        text = text[:position] + inserted + text[position + deleted:]
    check_loads_or_value_error(fuzz_root, text.encode())
