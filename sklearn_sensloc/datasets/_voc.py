"""Reader for PASCAL VOC style annotation trees (ImageNet localization XML included)."""

import math
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import parse as _defused_parse
from sklearn.utils import Bunch

__all__ = ["VOC_CLASSES", "load_voc"]

VOC_CLASSES = tuple(
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
    "person pottedplant sheep sofa train tvmonitor".split()
)

_ON_ERROR = ("raise", "skip")
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
# ImageNet XML often gives <filename> without an extension; these are the two spellings in use.
_IMAGE_EXTENSIONS = (".jpg", ".JPEG")
_SHOWN_IN_WARNING = 3
_SHOWN_CLASSES = 20


class _Object(NamedTuple):
    name: str
    box: tuple  # (xmin, ymin, xmax, ymax) as fractions of the image size
    difficult: bool


class _Record(NamedTuple):
    image_id: str
    xml_path: Path
    filename: str | None
    width: int
    height: int
    objects: list


def _largest(objects):
    # max() keeps the first of equal areas, so ties fall back to file order.
    return max(objects, key=lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))


def _first(objects):
    return objects[0]


_CHOOSERS = {"largest": _largest, "first": _first}


class _ErrorPolicy:
    """Raise on a bad record, or remember it and warn once at the end (``on_error="skip"``)."""

    def __init__(self, on_error):
        self.skip = on_error == "skip"
        self.skipped = []
        self.n_files = 0
        self.n_objects = 0

    def handle(self, path, exc, *, whole_file):
        if not self.skip:
            raise exc
        self.skipped.append((str(path), str(exc)))
        if whole_file:
            self.n_files += 1
        else:
            self.n_objects += 1

    def warn(self):
        if not self.skipped:
            return
        names = list(dict.fromkeys(Path(path).name for path, _ in self.skipped))
        shown = _preview(names, _SHOWN_IN_WARNING)
        warnings.warn(
            f"load_voc skipped {self.n_files} file(s) and {self.n_objects} object(s) with bad "
            f"annotations or missing files (first: {shown}); the reasons are in the result's "
            "'skipped' field.",
            UserWarning,
            stacklevel=3,
        )


def _is_plain_name(name):
    # Ids, split names and <filename> values become paths: refuse anything that could leave the tree.
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def _preview(items, limit):
    return ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")


def _shorten(text, limit=30):
    text = text.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check_params(split, object_choice, include_difficult, on_error):
    if object_choice not in tuple(_CHOOSERS):
        raise ValueError(f"object_choice must be one of {tuple(_CHOOSERS)}, got {object_choice!r}.")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}.")
    if not isinstance(include_difficult, (bool, np.bool_)):
        raise ValueError(f"include_difficult must be a bool, got {include_difficult!r}.")
    if split is not None and not (isinstance(split, str) and _is_plain_name(split)):
        raise ValueError(f"split must be None or a plain file stem such as 'trainval', got {split!r}.")


def _check_classes(classes):
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


def _check_dir(path, what):
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {path} not found or not a directory.")


def _read_ids(root, annotations_dir, split):
    if split is None:
        return sorted(p.stem for p in annotations_dir.glob("*.xml") if p.is_file())
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(
            f"split file {split_file} not found; pass split=None to use every XML in {annotations_dir}."
        )
    ids = []
    for lineno, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if not _is_plain_name(tokens[0]):
            raise ValueError(
                f"{split_file}, line {lineno}: {_shorten(tokens[0])} is not a plain image id."
            )
        ids.append(tokens[0])
    # A repeated id would put the same image on both sides of a CV split.
    return list(dict.fromkeys(ids))


def _read_class_flags(path):
    flags = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 2 or tokens[1] not in ("-1", "0", "1"):
            raise ValueError(
                f"{path}, line {lineno}: expected '<id> <flag>' with flag 1, 0 or -1, "
                f"got {_shorten(line)}."
            )
        flags[tokens[0]] = int(tokens[1])
    return flags


def _preselect(ids, root, split, classes):
    """Drop the ids that every requested ``<class>_<split>.txt`` marks absent (-1), unparsed.

    This only saves parsing time: it applies when every requested class has its list, and an id
    a list does not mention is kept, so the XML stays the source of truth for what is kept.
    """
    if split is None or classes is None or not all(map(_is_plain_name, classes)):
        return ids
    paths = [root / "ImageSets" / "Main" / f"{name}_{split}.txt" for name in classes]
    if not all(p.is_file() for p in paths):
        return ids
    tables = [_read_class_flags(p) for p in paths]
    return [i for i in ids if any(t.get(i, 1) != -1 for t in tables)]


def _parse_xml(xml_path):
    if not xml_path.is_file():
        raise FileNotFoundError(f"annotation file {xml_path} not found.")
    try:
        # forbid_dtd also shuts out entity expansion ("billion laughs") and external entities.
        tree = _defused_parse(str(xml_path), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ValueError(f"{xml_path}: refused unsafe XML ({type(exc).__name__}).") from None
    except (ParseError, LookupError, ValueError) as exc:
        # LookupError and ValueError come from expat on unknown or multi-byte declared encodings.
        raise ValueError(f"{xml_path}: not valid XML ({exc}).") from None
    element = tree.getroot()
    if element.tag != "annotation":
        raise ValueError(f"{xml_path}: root element is {_shorten(element.tag)}, not 'annotation'.")
    return element


def _number(parent, tag, where):
    text = parent.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{where} '{tag}': missing.")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} '{tag}': not a number ({_shorten(text)}).") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} '{tag}': not finite ({_shorten(text)}).")
    return value


def _read_size(annotation, xml_path):
    size = annotation.find("size")
    if size is None:
        raise ValueError(f"{xml_path}: 'size': missing, so boxes cannot be normalised.")
    dims = []
    for tag in ("width", "height"):
        value = _number(size, tag, f"{xml_path}: size")
        if value <= 0 or value != int(value):
            raise ValueError(f"{xml_path}: size '{tag}': must be a positive integer, got {value:g}.")
        dims.append(int(value))
    return tuple(dims)


def _read_filename(annotation, xml_path):
    filename = (annotation.findtext("filename") or "").strip()
    if not filename:
        return None
    if not _is_plain_name(filename):
        raise ValueError(f"{xml_path}: 'filename': {_shorten(filename)} is not a plain file name.")
    return filename


def _read_difficult(obj, where):
    text = (obj.findtext("difficult") or "").strip()
    # ImageNet XML often leaves the flag empty; that means not difficult.
    if text not in ("", "0", "1"):
        raise ValueError(f"{where} 'difficult': expected 0 or 1, got {_shorten(text)}.")
    return text == "1"


def _read_object(obj, index, width, height, xml_path):
    where = f"{xml_path}: object[{index}]"
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise ValueError(f"{where} 'name': missing or empty.")
    difficult = _read_difficult(obj, where)
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise ValueError(f"{where} 'bndbox': missing.")
    where_box = f"{where} bndbox"
    coords = [_number(bndbox, tag, where_box) for tag in _BOX_TAGS]
    for tag, value, limit in zip(_BOX_TAGS, coords, (width, height, width, height)):
        if not 0 <= value <= limit:
            raise ValueError(f"{where_box} '{tag}': {value:g} is outside the image [0, {limit}].")
    xmin, ymin, xmax, ymax = coords
    if xmin > xmax:
        raise ValueError(f"{where_box} 'xmin': {xmin:g} is greater than xmax {xmax:g}.")
    if ymin > ymax:
        raise ValueError(f"{where_box} 'ymin': {ymin:g} is greater than ymax {ymax:g}.")
    # VOC pixels are 1-based and inclusive: pixel i spans [i - 1, i] in continuous coordinates.
    # A 0 (non-VOC, 0-based) left edge would map below 0, hence the clip.
    box = (max(xmin - 1, 0) / width, max(ymin - 1, 0) / height, xmax / width, ymax / height)
    return _Object(name, box, difficult)


def _parse_record(xml_path, image_id, policy):
    annotation = _parse_xml(xml_path)
    width, height = _read_size(annotation, xml_path)
    filename = _read_filename(annotation, xml_path)
    objects = []
    for index, obj in enumerate(annotation.findall("object")):
        try:
            objects.append(_read_object(obj, index, width, height, xml_path))
        except ValueError as exc:
            policy.handle(xml_path, exc, whole_file=False)
    return _Record(image_id, xml_path, filename, width, height, objects)


def _parse_records(ids, annotations_dir, policy):
    records = []
    for image_id in ids:
        xml_path = annotations_dir / f"{image_id}.xml"
        try:
            records.append(_parse_record(xml_path, image_id, policy))
        except (ValueError, FileNotFoundError) as exc:
            policy.handle(xml_path, exc, whole_file=True)
    return records


def _class_names(records, classes, annotations_dir, split):
    seen = {obj.name for record in records for obj in record.objects}
    if classes is None:
        # The full VOC list in its usual order keeps label indices stable across subsets.
        return list(VOC_CLASSES) if seen <= set(VOC_CLASSES) else sorted(seen)
    unknown = [c for c in classes if c not in seen]
    if unknown:
        shown = _preview(sorted(seen), _SHOWN_CLASSES)
        raise ValueError(
            f"classes {unknown} appear in no annotation under {annotations_dir} (split={split!r}); "
            f"classes found: {shown or 'none'}."
        )
    return classes


def _image_path(images_dir, record):
    name = record.filename or f"{record.image_id}.jpg"
    candidates = [name] if Path(name).suffix else [name + ext for ext in _IMAGE_EXTENSIONS]
    for candidate in candidates:
        path = images_dir / candidate
        if path.is_file():
            return path
    tried = " or ".join(str(images_dir / c) for c in candidates)
    raise FileNotFoundError(f"image file {tried} for annotation {record.xml_path} not found.")


def _select(record, keep, choose, include_difficult):
    """Return (objects of the kept classes, chosen training object), or None to drop the image."""
    objects = [obj for obj in record.objects if obj.name in keep]
    candidates = objects if include_difficult else [obj for obj in objects if not obj.difficult]
    if not candidates:
        return None
    return objects, choose(candidates)


def load_voc(
    root,
    split="trainval",
    *,
    classes=None,
    object_choice="largest",
    include_difficult=False,
    on_error="raise",
):
    """Load a PASCAL VOC style tree as image paths and normalised boxes.

    The tree holds ``Annotations/<id>.xml``, ``JPEGImages/<image>`` and, unless ``split`` is
    None, ``ImageSets/Main/<split>.txt`` (one id per line). ImageNet localization XML has the
    same format and can be read the same way, usually with ``split=None``.

    Parameters
    ----------
    root : str or path-like
        Directory holding ``Annotations/``, ``JPEGImages/`` and, optionally, ``ImageSets/``.
    split : str or None, default="trainval"
        Name of the id list ``ImageSets/Main/<split>.txt``. None uses every
        ``Annotations/*.xml``, sorted by id.
    classes : str, list of str or None, default=None
        Classes to keep. None keeps every class found. Otherwise, objects of other classes are
        ignored and images with no object of these classes are dropped; a name found in no
        annotation is an error.
    object_choice : {"largest", "first"}, default="largest"
        Which object gives an image its single training box: the one of largest area (ties go
        to the first in file order), or the first in file order.
    include_difficult : bool, default=False
        Whether objects marked ``<difficult>1</difficult>`` may be chosen as training boxes.
    on_error : {"raise", "skip"}, default="raise"
        What to do with a bad record: "raise" a ``ValueError`` (``FileNotFoundError`` for a
        missing annotation or image file), or "skip" it (the whole file for unreadable XML, a
        missing file, a bad ``<size>`` or ``<filename>``; only the object for a bad object)
        and emit one ``UserWarning`` at the end.

    Returns
    -------
    data : sklearn.utils.Bunch
        With ``n`` the number of images kept:

        images : list of str
            Absolute image paths.
        boxes : ndarray of shape (n, 4), float64
            The training box per image, ``(xmin, ymin, xmax, ymax)`` as fractions of the
            image width and height, in ``[0, 1]``.
        all_boxes : list of ndarray of shape (k_i, 4)
            Every box of the kept classes per image, difficult ones included, normalised the
            same way; for evaluation against several ground truths.
        labels : list of str
            Class of each training box.
        all_labels : list of list of str
            Class of each row of ``all_boxes``.
        difficult : list of ndarray of shape (k_i,), bool
            Difficult flag of each row of ``all_boxes``.
        class_names : list of str
            ``classes`` as given; else the 20 VOC classes in their usual order when every name
            found is a VOC name, or else the sorted names found.
        image_ids : list of str
            The annotation ids, in split file order (sorted when ``split`` is None).
        sizes : ndarray of shape (n, 2), int
            ``(width, height)`` from each XML ``<size>``.
        root : str
            The resolved ``root``.
        split : str or None
            ``split``, as given.
        skipped : list of (str, str)
            ``(path, reason)`` of each record skipped under ``on_error="skip"``; empty otherwise.

    Raises
    ------
    FileNotFoundError
        When ``root``, ``Annotations/``, ``JPEGImages/`` or the split file is missing, or, with
        ``on_error="raise"``, an annotation or image file.
    ValueError
        For invalid parameters, unsafe or malformed XML (the message names the file and, for
        an object, its 0-based index and field), or when no image is left.

    Notes
    -----
    **Coordinates.** VOC pixel coordinates are 1-based and inclusive: pixel ``i`` covers
    ``[i - 1, i]``. Hence ``xmin_frac = (xmin - 1) / width`` and ``xmax_frac = xmax / width``
    (the same for y with ``height``), so a box covering the whole image, ``(1, 1, width,
    height)``, is exactly ``(0, 0, 1, 1)``. Coordinates must lie in ``[0, width]`` and
    ``[0, height]``, with no tolerance; a 0 left or top edge (0-based data) maps to 0.

    **Difficult objects.** The VOC CorLoc protocol ignores objects marked difficult, so they
    are not chosen as training boxes unless ``include_difficult=True``, and an image whose
    only objects of the kept classes are difficult is dropped. They stay in ``all_boxes``,
    flagged in ``difficult``, so an evaluation can decide about them.

    **Why one box per image.** The model regresses one box per image from the sensitivity
    map, and the largest object dominates that map, so "largest" is the default.

    **Class lists.** When ``classes`` and ``split`` are given and every
    ``ImageSets/Main/<class>_<split>.txt`` exists, ids all of them mark absent (-1) are
    dropped without parsing their XML. Otherwise the class lists are not read; boxes and
    classes always come from the XML.

    **Safety.** XML is parsed with :mod:`defusedxml`, with DTDs, entity declarations and
    external references refused, and ids and ``<filename>`` values must be plain file names,
    so no annotation can expand without bound or read or point outside the tree. Image files
    are only checked to exist, never opened.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sklearn_sensloc.datasets import load_voc
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "Annotations").mkdir()
    >>> (root / "JPEGImages").mkdir()
    >>> _ = (root / "Annotations" / "img1.xml").write_text(
    ...     "<annotation><size><width>200</width><height>100</height></size>"
    ...     "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
    ...     "<xmax>100</xmax><ymax>50</ymax></bndbox></object></annotation>")
    >>> _ = (root / "JPEGImages" / "img1.jpg").write_bytes(b"")  # only its presence is checked
    >>> data = load_voc(root, split=None)
    >>> data.boxes
    array([[0. , 0. , 0.5, 0.5]])
    >>> data.labels, data.sizes.tolist()
    (['dog'], [[200, 100]])

    On a real VOC tree:

    >>> voc = load_voc("VOCdevkit/VOC2007", "trainval", classes=["cat", "dog"])  # doctest: +SKIP
    """
    _check_params(split, object_choice, include_difficult, on_error)
    classes = _check_classes(classes)
    root = Path(root).resolve()
    _check_dir(root, "VOC root")
    annotations_dir, images_dir = root / "Annotations", root / "JPEGImages"
    _check_dir(annotations_dir, "annotation directory")
    _check_dir(images_dir, "image directory")

    policy = _ErrorPolicy(on_error)
    ids = _preselect(_read_ids(root, annotations_dir, split), root, split, classes)
    records = _parse_records(ids, annotations_dir, policy)
    class_names = _class_names(records, classes, annotations_dir, split)

    keep, choose = set(class_names), _CHOOSERS[object_choice]
    fields = ("images", "boxes", "all_boxes", "labels", "all_labels", "difficult", "image_ids", "sizes")
    out = {field: [] for field in fields}
    for record in records:
        selection = _select(record, keep, choose, include_difficult)
        if selection is None:
            continue
        try:
            image = _image_path(images_dir, record)
        except FileNotFoundError as exc:
            policy.handle(record.xml_path, exc, whole_file=True)
            continue
        objects, chosen = selection
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
            f"no image left from {root} (split={split!r}, classes={classes!r}, "
            f"include_difficult={include_difficult}, {len(policy.skipped)} record(s) skipped): "
            "no annotation has a usable object of the kept classes."
        )
    out["boxes"] = np.array(out["boxes"], dtype=np.float64)
    out["sizes"] = np.array(out["sizes"], dtype=np.int64)
    return Bunch(
        **out, class_names=list(class_names), root=str(root), split=split, skipped=policy.skipped
    )
