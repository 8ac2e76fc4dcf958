"""Reader for COCO instances JSON: images, their boxes and the category names."""

import json
import math
from pathlib import Path

from ._annotations import (
    ImageRecord,
    LabelledBox,
    SkipPolicy,
    assemble,
    check_box,
    check_choices,
    check_classes,
    check_dir,
    check_known_classes,
    path_inside,
)

__all__ = ["load_coco"]

#: COCO boxes come from polygons in floating point: a corner this far outside the image is clipped.
EDGE_TOLERANCE = 1.0
_BBOX = ("x", "y", "width", "height")
_CORNERS = ("x", "y", "x + width", "y + height")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}


def _kind(value):
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _found(entry, key):
    """``entry[key]`` as JSON text for an error message, shortened."""
    if key not in entry:
        return "nothing (no such key)"
    text = json.dumps(entry[key])
    return text if len(text) <= 30 else text[:30] + "..."


def _read_json(path):
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} not found.")
    try:
        # Bytes, so that json detects UTF-8, -16 or -32 as the JSON standard allows.
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON and bad text encodings; RecursionError, absurd nesting.
        reason = exc if isinstance(exc, ValueError) else "nested too deeply"
        raise ValueError(f"{path}: not valid JSON ({reason}).") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a JSON object with 'images', 'annotations' and 'categories', "
            f"got {_kind(data)}."
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            found = "missing" if key not in data else f"{_kind(data[key])}, not an array"
            raise ValueError(
                f"{path}: '{key}': {found}; a COCO instances file has all three lists."
            )
    return data


def _entry(entry, where):
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object, got {_kind(entry)}.")
    return entry


def _is_identifier(value):
    return isinstance(value, (int, str)) and not isinstance(value, bool) and value != ""


def _identifier(entry, key, where):
    if not _is_identifier(entry.get(key)):
        raise ValueError(
            f"{where} '{key}': expected an integer or a string, got {_found(entry, key)}."
        )
    return entry[key]


def _number(entry, key, where):
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where} '{key}': expected a finite number, got {_found(entry, key)}.")
    return float(value)


def _read_categories(entries, path):
    names = {}
    for index, entry in enumerate(entries):
        where = f"{path}: categories[{index}]"
        category_id = _identifier(_entry(entry, where), "id", where)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where} 'name': missing or empty.")
        if category_id in names:
            raise ValueError(f"{where} 'id': {category_id!r} names two categories.")
        names[category_id] = name.strip()
    return names


def _read_image(entry, where, images_dir):
    image_id = _identifier(_entry(entry, where), "id", where)
    file = path_inside(str(images_dir), entry.get("file_name"), f"{where} 'file_name'")
    size = []
    for key in ("width", "height"):
        value = _number(entry, key, where)
        if value <= 0 or value != int(value):
            raise ValueError(f"{where} '{key}': must be a positive integer, got {value:g}.")
        size.append(int(value))
    return image_id, file, *size


def _read_images(entries, path, images_dir, policy):
    """``{image id: (source, file, width, height)}`` in file order, and the ids skipped."""
    images, skipped = {}, set()
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        try:
            image_id, file, width, height = _read_image(entry, where, images_dir)
            if image_id in images:
                first = images[image_id][0]
                raise ValueError(f"{where} 'id': {image_id!r} is also the id of {first}.")
        except ValueError as exc:
            policy.handle(where, exc, whole=True)
            if isinstance(entry, dict) and _is_identifier(entry.get("id")):
                skipped.add(entry["id"])
            continue
        images[image_id] = (where, file, width, height)
    return images, skipped - images.keys()


def _read_box(entry, where, width, height):
    bbox = entry.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        raise ValueError(
            f"{where} 'bbox': expected [x, y, width, height], got {_found(entry, 'bbox')}."
        )
    x, y, w, h = (_number(dict(zip(_BBOX, bbox)), name, f"{where} bbox") for name in _BBOX)
    if w < 0 or h < 0:
        raise ValueError(
            f"{where} 'bbox': width and height must not be negative, got {w:g} and {h:g}."
        )
    corners = [x, y, x + w, y + h]
    limits = (width, height, width, height)
    corners = [min(max(c, 0.0), limit) if -EDGE_TOLERANCE <= c <= limit + EDGE_TOLERANCE else c
               for c, limit in zip(corners, limits)]
    return check_box(corners, width, height, f"{where} bbox", names=_CORNERS)


def _read_annotation(entry, where, images, categories):
    image_id = _identifier(entry, "image_id", where)
    if image_id not in images:
        raise ValueError(f"{where} 'image_id': {image_id!r} is the id of no image in 'images'.")
    category = _identifier(entry, "category_id", where)
    if category not in categories:
        raise ValueError(
            f"{where} 'category_id': {category!r} is the id of no category in 'categories'."
        )
    crowd = entry.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        raise ValueError(f"{where} 'iscrowd': expected 0 or 1, got {_found(entry, 'iscrowd')}.")
    _, _, width, height = images[image_id]
    box = _read_box(entry, where, width, height)
    return image_id, LabelledBox(categories[category], box, crowd == 1)


def _read_records(data, path, images_dir, policy):
    categories = _read_categories(data["categories"], path)
    images, skipped = _read_images(data["images"], path, images_dir, policy)
    objects = {image_id: [] for image_id in images}
    for index, entry in enumerate(data["annotations"]):
        where = f"{path}: annotations[{index}]"
        try:
            named = _entry(entry, where).get("image_id")
            if _is_identifier(named) and named in skipped:
                continue  # its image is skipped, and said so once
            image_id, obj = _read_annotation(entry, where, images, categories)
        except ValueError as exc:
            policy.handle(where, exc, whole=False)
            continue
        objects[image_id].append(obj)
    records = [ImageRecord(image_id, source, (file,), width, height, objects[image_id])
               for image_id, (source, file, width, height) in images.items()]
    return records, list(dict.fromkeys(categories.values()))


def load_coco(
    annotations,
    images,
    *,
    classes=None,
    object_choice="largest",
    include_crowd=False,
    on_error="raise",
):
    """Load a COCO instances JSON file as image paths and normalised boxes.

    Reads the ``images``, ``annotations`` and ``categories`` lists of a COCO
    object-detection file (``instances_*.json`` or any export in that format) and
    returns the same fields as :func:`load_voc`.

    Parameters
    ----------
    annotations : str or path-like
        The JSON file. ``images`` entries need ``id``, ``file_name``, ``width`` and
        ``height``; ``annotations`` entries ``image_id``, ``bbox`` ``[x, y, width,
        height]`` in pixels and ``category_id``, and may have ``iscrowd`` (0 when
        absent); ``categories`` entries ``id`` and ``name``. Other keys (segmentation,
        area, ...) are ignored.
    images : str or path-like
        The folder the ``file_name`` values are relative to.
    classes : str, list of str or None, default=None
        Category names to keep. None keeps every category. Otherwise, annotations of
        other categories are ignored and images with none of these are dropped; a name
        found in no annotation is an error.
    object_choice : {"largest", "first"}, default="largest"
        Which annotation gives an image its single training box: the one of largest
        area (ties go to the first in file order), or the first in file order.
    include_crowd : bool, default=False
        Whether crowd annotations (``iscrowd`` 1) may be chosen as training boxes.
    on_error : {"raise", "skip"}, default="raise"
        What to do with a bad entry: "raise" a ``ValueError`` (``FileNotFoundError``
        for a missing image file), or "skip" it (an image entry with its annotations,
        or one annotation) and emit one ``UserWarning`` at the end. A file that is not
        a COCO instances file, or a bad category, always raises.

    Returns
    -------
    data : sklearn.utils.Bunch
        With ``n`` the number of images kept:

        images : list of str
            Absolute image paths.
        boxes : ndarray of shape (n, 4), float64
            The training box per image, ``(xmin, ymin, xmax, ymax)`` as fractions of
            the image width and height, in ``[0, 1]``.
        all_boxes : list of ndarray of shape (k_i, 4)
            Every box of the kept categories per image, crowd ones included.
        labels : list of str
            Category name of each training box.
        all_labels : list of list of str
            Category name of each row of ``all_boxes``.
        difficult : list of ndarray of shape (k_i,), bool
            Whether each row of ``all_boxes`` is a crowd annotation.
        class_names : list of str
            ``classes`` as given, else every category name in the file's order.
        image_ids : list of int or str
            The ``id`` of each image, as in the file, in the order of ``images``.
        sizes : ndarray of shape (n, 2), int
            ``(width, height)`` from each image entry.
        root : str
            The resolved ``images`` folder.
        annotations : str
            The resolved JSON file.
        skipped : list of (str, str)
            ``(entry, reason)`` of each entry skipped under ``on_error="skip"``, the
            entry as ``"<file>: annotations[<index>]"`` or ``"<file>: images[<index>]"``;
            empty otherwise.

    Raises
    ------
    FileNotFoundError
        When the JSON file or the images folder is missing, or, with
        ``on_error="raise"``, an image file.
    ValueError
        For invalid parameters, a file that is not JSON or has no ``images``,
        ``annotations`` or ``categories`` list, a malformed entry (the message names the
        file, the list, the 0-based index and the key), or when no image is left.

    Notes
    -----
    **Coordinates.** COCO's ``bbox`` is ``[x, y, width, height]`` in continuous pixel
    coordinates with the origin at the top-left corner of the image: the box spans
    ``[x, x + width]`` by ``[y, y + height]``. Hence ``xmin = x / W``, ``ymin = y / H``,
    ``xmax = (x + width) / W`` and ``ymax = (y + height) / H`` for an image ``W`` by
    ``H`` pixels from its entry, and a whole-image box ``[0, 0, W, H]`` is exactly
    ``(0, 0, 1, 1)``. A corner at most ``EDGE_TOLERANCE`` (1) pixel outside the image
    is clipped to it: COCO boxes are computed from polygons, and some overshoot the
    border by a fraction of a pixel. Farther is an error.

    **Crowd annotations.** A crowd annotation (``iscrowd`` 1) boxes a group of objects
    (a crowd of people, a pile of fruit) rather than one. Like VOC's difficult objects
    in :func:`load_voc`, they are not chosen as training boxes unless
    ``include_crowd=True``, an image whose only annotations of the kept categories are
    crowds is dropped, and they stay in ``all_boxes``, flagged in ``difficult``.

    **Images without a usable annotation** (none at all, none of the kept categories,
    only crowds) are dropped, as :func:`load_voc` drops them.

    **Safety.** The file is read with the standard :mod:`json` module (no code runs);
    a ``file_name`` must be a relative path that stays inside ``images`` (no ``..``
    above it, no absolute path). Image files are only checked to exist, never opened.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from sklearn_sensloc import load_coco
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "dog.jpg").write_bytes(b"")  # only its presence is checked
    >>> coco = {"images": [{"id": 7, "file_name": "dog.jpg", "width": 200, "height": 100}],
    ...         "annotations": [{"image_id": 7, "bbox": [20, 10, 100, 50], "category_id": 1}],
    ...         "categories": [{"id": 1, "name": "dog"}]}
    >>> _ = (folder / "instances.json").write_text(json.dumps(coco))
    >>> data = load_coco(folder / "instances.json", folder)
    >>> data.boxes
    array([[0.1, 0.1, 0.6, 0.6]])
    >>> data.labels, data.image_ids, data.sizes.tolist()
    (['dog'], [7], [[200, 100]])
    """
    check_choices(object_choice, on_error, include_crowd=include_crowd)
    classes = check_classes(classes)
    path, images_dir = Path(annotations).resolve(), Path(images).resolve()
    check_dir(images_dir, "image folder")
    policy = SkipPolicy(on_error, "load_coco", whole="image", part="annotation")
    records, categories = _read_records(_read_json(path), path, images_dir, policy)
    return assemble(
        records,
        class_names=categories if classes is None else check_known_classes(classes, records, path),
        object_choice=object_choice,
        include_difficult=include_crowd,
        policy=policy,
        context=f"{path} (classes={classes!r}, include_crowd={include_crowd})",
        root=str(images_dir),
        annotations=str(path),
    )
