"""What the box readers share: parameter checks, the skip policy, object choice and the Bunch.

``load_voc``, ``load_coco`` and ``load_csv_boxes`` each turn their format into
:class:`ImageRecord` objects; :func:`assemble` turns those into the one Bunch
they all return, so the three agree on every field.
"""

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sklearn.utils import Bunch

ON_ERROR = ("raise", "skip")
_SHOWN_IN_WARNING = 3
_SHOWN_CLASSES = 20
_FIELDS = (
    "images", "boxes", "all_boxes", "labels", "all_labels", "difficult", "image_ids", "sizes"
)


class LabelledBox(NamedTuple):
    name: str
    box: tuple  # (xmin, ymin, xmax, ymax) as fractions of the image size
    difficult: bool  # VOC's <difficult>, COCO's iscrowd: never a training box by default


class ImageRecord(NamedTuple):
    image_id: object
    source: str  # the annotation file, entry or line that named the image: what errors cite
    candidates: tuple  # the paths its file may have; the first that exists is the image
    width: int
    height: int
    objects: list


def _largest(objects):
    # max() keeps the first of equal areas, so ties fall back to file order.
    return max(objects, key=lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))


def _first(objects):
    return objects[0]


OBJECT_CHOICES = {"largest": _largest, "first": _first}


class SkipPolicy:
    """Raise on a bad record, or remember it and warn once at the end (``on_error="skip"``).

    ``loader`` names the function in the warning; ``whole`` and ``part`` name what is
    skipped: a whole image's record (an annotation file, an image entry) or one object of it.
    """

    def __init__(self, on_error, loader, whole="file", part="object"):
        self.skip = on_error == "skip"
        self.loader, self.whole, self.part = loader, whole, part
        self.skipped = []
        self.n_whole = 0
        self.n_parts = 0

    def handle(self, source, exc, *, whole):
        if not self.skip:
            raise exc
        self.skipped.append((str(source), str(exc)))
        if whole:
            self.n_whole += 1
        else:
            self.n_parts += 1

    def warn(self):
        if not self.skipped:
            return
        names = list(dict.fromkeys(Path(source).name for source, _ in self.skipped))
        # Called by assemble, called by the loader: the warning points at the loader's caller.
        warnings.warn(
            f"{self.loader} skipped {self.n_whole} {self.whole}(s) and {self.n_parts} "
            f"{self.part}(s) with bad annotations or missing files (first: "
            f"{preview(names, _SHOWN_IN_WARNING)}); the reasons are in the result's "
            "'skipped' field.",
            UserWarning,
            stacklevel=4,
        )


def is_plain_name(name):
    """Whether ``name`` is one path component: no separator, NUL, ``.`` or ``..``."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def preview(items, limit):
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def shorten(text, limit=30):
    text = str(text).strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def check_choices(object_choice, on_error, **flags):
    """Check ``object_choice``, ``on_error`` and boolean flags such as ``include_difficult``."""
    if object_choice not in tuple(OBJECT_CHOICES):
        raise ValueError(
            f"object_choice must be one of {tuple(OBJECT_CHOICES)}, got {object_choice!r}."
        )
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}.")
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be a bool, got {value!r}.")


def check_classes(classes):
    """``classes`` as a list of unique stripped names, or None."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = [classes]
    try:
        classes = list(classes)
    except TypeError:
        raise ValueError(
            f"classes must be None, a class name or a list of names, got {classes!r}."
        ) from None
    if not classes:
        raise ValueError("classes must not be empty; pass None to keep every class.")
    bad = [c for c in classes if not isinstance(c, str) or not c.strip()]
    if bad:
        raise ValueError(f"classes must be non-empty strings, got {bad!r}.")
    return list(dict.fromkeys(c.strip() for c in classes))


def check_known_classes(classes, records, where):
    """Refuse a requested class that no record holds; ``where`` names the data in the error."""
    seen = {obj.name for record in records for obj in record.objects}
    unknown = [c for c in classes if c not in seen]
    if unknown:
        shown = preview(sorted(seen), _SHOWN_CLASSES)
        raise ValueError(
            f"classes {unknown} appear in no annotation of {where}; "
            f"classes found: {shown or 'none'}."
        )
    return classes


def check_dir(path, what):
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path} not found or not a directory.")


def path_inside(folder, name, where):
    """``folder / name`` for a relative ``name`` that stays inside ``folder``; else ValueError.

    Checked on the text (no link is followed), so an annotation cannot name a file outside
    the images folder with ``..`` or an absolute path.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where}: the image file name is missing or empty.")
    joined = os.path.normpath(os.path.join(folder, name))
    if "\0" in name or os.path.isabs(name) or not joined.startswith(os.path.join(folder, "")):
        raise ValueError(
            f"{where}: image file name {shorten(name)} is not a relative path inside {folder}."
        )
    return Path(joined)


def check_box(coords, width, height, where, names=("xmin", "ymin", "xmax", "ymax")):
    """Pixel corners checked against the image; the box as fractions of its size.

    ``coords`` are continuous 0-based pixel coordinates (a whole-image box is
    ``(0, 0, width, height)``); ``names`` are the fields the error names.
    """
    for name, value, limit in zip(names, coords, (width, height, width, height)):
        if not 0 <= value <= limit:
            raise ValueError(
                f"{where} '{name}': {value:g} is outside the image [0, {limit}] "
                f"(the image is {width} x {height} pixels)."
            )
    xmin, ymin, xmax, ymax = coords
    if xmin > xmax:
        raise ValueError(f"{where} '{names[0]}': {xmin:g} is greater than {names[2]} {xmax:g}.")
    if ymin > ymax:
        raise ValueError(f"{where} '{names[1]}': {ymin:g} is greater than {names[3]} {ymax:g}.")
    return (xmin / width, ymin / height, xmax / width, ymax / height)


def _image_file(record):
    for path in record.candidates:
        if path.is_file():
            return path
    tried = " or ".join(str(path) for path in record.candidates)
    raise FileNotFoundError(f"image file {tried} (named by {record.source}) not found.")


def assemble(records, *, class_names, object_choice, include_difficult, policy, context, **extra):
    """The Bunch of the records that keep a usable object of ``class_names``.

    A record is kept when one of its objects of these classes may be its training box
    (difficult ones only with ``include_difficult``) and its image file exists. ``context``
    describes the data for the error raised when no record is kept; ``extra`` adds fields.
    """
    keep, choose = set(class_names), OBJECT_CHOICES[object_choice]
    out = {field: [] for field in _FIELDS}
    for record in records:
        objects = [obj for obj in record.objects if obj.name in keep]
        candidates = objects if include_difficult else [obj for obj in objects if not obj.difficult]
        if not candidates:
            continue
        try:
            image = _image_file(record)
        except FileNotFoundError as exc:
            policy.handle(record.source, exc, whole=True)
            continue
        chosen = choose(candidates)
        out["images"].append(str(image))
        out["boxes"].append(chosen.box)
        out["all_boxes"].append(np.array([obj.box for obj in objects], dtype=np.float64))
        out["labels"].append(chosen.name)
        out["all_labels"].append([obj.name for obj in objects])
        out["difficult"].append(np.array([obj.difficult for obj in objects], dtype=bool))
        out["image_ids"].append(record.image_id)
        out["sizes"].append((record.width, record.height))
    policy.warn()
    if not out["images"]:
        raise ValueError(
            f"no image left from {context} ({len(policy.skipped)} record(s) skipped): "
            "no annotation has a usable object of the kept classes."
        )
    out["boxes"] = np.array(out["boxes"], dtype=np.float64)
    out["sizes"] = np.array(out["sizes"], dtype=np.int64)
    return Bunch(**out, class_names=list(class_names), skipped=policy.skipped, **extra)
