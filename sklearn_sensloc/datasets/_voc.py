"""Reader for PASCAL VOC style annotation trees (ImageNet localization XML included)."""

import math
from pathlib import Path

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError
from defusedxml.ElementTree import parse as _defused_parse

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
    is_plain_name,
    shorten,
)

__all__ = ["VOC_CLASSES", "SplitNotFoundError", "load_voc"]

VOC_CLASSES = tuple(
    "aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
    "person pottedplant sheep sofa train tvmonitor".split()
)

_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")
# ImageNet XML often gives <filename> without an extension; these are the two spellings in use.
_IMAGE_EXTENSIONS = (".jpg", ".JPEG")


class SplitNotFoundError(FileNotFoundError):
    """The split file ``ImageSets/Main/<split>.txt`` of a VOC tree does not exist.

    A :class:`FileNotFoundError` whose message names the missing file and the
    splits the tree has.

    Attributes
    ----------
    split : str
        The split asked for.
    split_file : str
        The path of its missing list.
    available : list of str
        The splits in ``ImageSets/Main/``, sorted: the ``<name>.txt`` files that are
        not a class list ``<class>_<split>.txt`` of another of them.
    """

    def __init__(self, split, split_file, available):
        self.split, self.split_file, self.available = split, str(split_file), list(available)
        found = (f"; splits found beside it: {', '.join(self.available)}" if self.available
                 else ", nor any other split file beside it")
        super().__init__(f"split file {self.split_file} not found{found}.")


def _check_split(split):
    if split is not None and not (isinstance(split, str) and is_plain_name(split)):
        raise ValueError(f"split must be None or a plain file stem such as 'trainval', got {split!r}.")


def _available_splits(main_dir):
    stems = {p.stem for p in main_dir.glob("*.txt") if p.is_file()} if main_dir.is_dir() else set()
    # VOC's class lists are "<class>_<split>.txt" beside "<split>.txt".
    return sorted(s for s in stems if not any(s.endswith(f"_{other}") for other in stems))


def _read_ids(root, annotations_dir, split):
    if split is None:
        return sorted(p.stem for p in annotations_dir.glob("*.xml") if p.is_file())
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise SplitNotFoundError(split, split_file, _available_splits(split_file.parent))
    ids = []
    for lineno, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if not is_plain_name(tokens[0]):
            raise ValueError(
                f"{split_file}, line {lineno}: {shorten(tokens[0])} is not a plain image id."
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
                f"got {shorten(line)}."
            )
        flags[tokens[0]] = int(tokens[1])
    return flags


def _preselect(ids, root, split, classes):
    """Drop the ids that every requested ``<class>_<split>.txt`` marks absent (-1), unparsed.

    This only saves parsing time: it applies when every requested class has its list, and an id
    a list does not mention is kept, so the XML stays the source of truth for what is kept.
    """
    if split is None or classes is None or not all(map(is_plain_name, classes)):
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
        raise ValueError(f"{xml_path}: root element is {shorten(element.tag)}, not 'annotation'.")
    return element


def _number(parent, tag, where):
    text = parent.findtext(tag)
    if text is None or not text.strip():
        raise ValueError(f"{where} '{tag}': missing.")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} '{tag}': not a number ({shorten(text)}).") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} '{tag}': not finite ({shorten(text)}).")
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
    if not is_plain_name(filename):
        raise ValueError(f"{xml_path}: 'filename': {shorten(filename)} is not a plain file name.")
    return filename


def _read_difficult(obj, where):
    text = (obj.findtext("difficult") or "").strip()
    # ImageNet XML often leaves the flag empty; that means not difficult.
    if text not in ("", "0", "1"):
        raise ValueError(f"{where} 'difficult': expected 0 or 1, got {shorten(text)}.")
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
    check_box(coords, width, height, where_box)
    xmin, ymin, xmax, ymax = coords
    # VOC pixels are 1-based and inclusive: pixel i spans [i - 1, i] in continuous coordinates.
    # A 0 (non-VOC, 0-based) left edge would map below 0, hence the clip.
    box = (max(xmin - 1, 0) / width, max(ymin - 1, 0) / height, xmax / width, ymax / height)
    return LabelledBox(name, box, difficult)


def _image_candidates(images_dir, filename, image_id):
    name = filename or f"{image_id}.jpg"
    names = [name] if Path(name).suffix else [name + ext for ext in _IMAGE_EXTENSIONS]
    return tuple(images_dir / name for name in names)


def _parse_record(xml_path, image_id, images_dir, policy):
    annotation = _parse_xml(xml_path)
    width, height = _read_size(annotation, xml_path)
    candidates = _image_candidates(images_dir, _read_filename(annotation, xml_path), image_id)
    objects = []
    for index, obj in enumerate(annotation.findall("object")):
        try:
            objects.append(_read_object(obj, index, width, height, xml_path))
        except ValueError as exc:
            policy.handle(xml_path, exc, whole=False)
    return ImageRecord(image_id, str(xml_path), candidates, width, height, objects)


def _parse_records(ids, annotations_dir, images_dir, policy):
    records = []
    for image_id in ids:
        xml_path = annotations_dir / f"{image_id}.xml"
        try:
            records.append(_parse_record(xml_path, image_id, images_dir, policy))
        except (ValueError, FileNotFoundError) as exc:
            policy.handle(xml_path, exc, whole=True)
    return records


def _class_names(records, classes, annotations_dir, split):
    if classes is not None:
        return check_known_classes(classes, records, f"{annotations_dir} (split={split!r})")
    seen = {obj.name for record in records for obj in record.objects}
    # The full VOC list in its usual order keeps label indices stable across subsets.
    return list(VOC_CLASSES) if seen <= set(VOC_CLASSES) else sorted(seen)


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
    SplitNotFoundError
        When the split file is missing: a :class:`FileNotFoundError` naming it and the splits
        the tree has (its ``available`` attribute); ``split=None`` reads every XML instead.
    FileNotFoundError
        When ``root``, ``Annotations/`` or ``JPEGImages/`` is missing, or, with
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
    check_choices(object_choice, on_error, include_difficult=include_difficult)
    _check_split(split)
    classes = check_classes(classes)
    root = Path(root).resolve()
    check_dir(root, "VOC root")
    annotations_dir, images_dir = root / "Annotations", root / "JPEGImages"
    check_dir(annotations_dir, "annotation directory")
    check_dir(images_dir, "image directory")

    policy = SkipPolicy(on_error, "load_voc")
    ids = _preselect(_read_ids(root, annotations_dir, split), root, split, classes)
    records = _parse_records(ids, annotations_dir, images_dir, policy)
    return assemble(
        records,
        class_names=_class_names(records, classes, annotations_dir, split),
        object_choice=object_choice,
        include_difficult=include_difficult,
        policy=policy,
        context=f"{root} (split={split!r}, classes={classes!r}, "
        f"include_difficult={include_difficult})",
        root=str(root),
        split=split,
    )
