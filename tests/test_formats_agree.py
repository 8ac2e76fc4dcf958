"""VOC XML, COCO JSON and CSV of the same genuine photos load as the same boxes.

The shared VOC 2012 ``val`` split (500 photos) is written out in the COCO and CSV
pixel conventions (continuous, 0-based) from ``load_voc``'s fractions; reading
them back must give ``load_voc``'s boxes, labels and flags, and the CSV reader,
which reads each photo's size from its JPEG header, the sizes of the XML files.
"""

import csv
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_real_photos import VOC, _shared

from sklearn_sensloc import load_coco, load_csv_boxes, load_voc


@pytest.fixture(scope="module")
def val():
    return load_voc(_shared(VOC), "val")


def pixels(box, size):
    """Fractions to continuous 0-based pixels: x * width, y * height."""
    (width, height), (x0, y0, x1, y1) = size, box
    return float(x0 * width), float(y0 * height), float(x1 * width), float(y1 * height)


def test_coco_of_the_val_split_loads_as_load_voc(val, tmp_path):
    names = sorted({label for labels in val.all_labels for label in labels})
    images, annotations = [], []
    for i, (path, size) in enumerate(zip(val.images, val.sizes.tolist())):
        images.append({"id": i, "file_name": path.rsplit("/", 1)[1], "width": size[0], "height": size[1]})
        for box, label, difficult in zip(val.all_boxes[i], val.all_labels[i], val.difficult[i]):
            x0, y0, x1, y1 = pixels(box, size)
            annotations.append({"image_id": i, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "category_id": names.index(label), "iscrowd": int(difficult)})
    categories = [{"id": k, "name": name} for k, name in enumerate(names)]
    path = tmp_path / "val.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))

    coco = load_coco(path, VOC / "JPEGImages")

    assert coco.images == val.images and coco.image_ids == list(range(len(val.images)))
    assert_allclose(coco.boxes, val.boxes, rtol=0, atol=1e-12)
    for field in ("all_boxes", "difficult"):
        for mine, theirs in zip(coco[field], val[field]):
            assert_allclose(mine, theirs, rtol=0, atol=1e-12)
    assert coco.labels == val.labels and coco.all_labels == val.all_labels
    assert np.array_equal(coco.sizes, val.sizes)


def test_csv_of_the_val_split_loads_as_load_voc_with_sizes_from_the_photos(val, tmp_path):
    path = tmp_path / "val.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["label", "ymax", "image", "xmin", "ymin", "xmax"])
        for i, (image, size) in enumerate(zip(val.images, val.sizes.tolist())):
            # A CSV row has no difficult flag: only the boxes load_voc may choose.
            for box, label, difficult in zip(val.all_boxes[i], val.all_labels[i], val.difficult[i]):
                if not difficult:
                    x0, y0, x1, y1 = pixels(box, size)
                    writer.writerow([label, repr(y1), image.rsplit("/", 1)[1], repr(x0), repr(y0), repr(x1)])

    rows = load_csv_boxes(path, VOC / "JPEGImages")

    assert rows.images == val.images
    assert np.array_equal(rows.sizes, val.sizes)
    assert_allclose(rows.boxes, val.boxes, rtol=0, atol=1e-12)
    assert rows.labels == val.labels
