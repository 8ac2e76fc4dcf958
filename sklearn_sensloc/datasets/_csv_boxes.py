"""Reader for boxes in a CSV file: one row per object, ``image,xmin,ymin,xmax,ymax[,label]``."""

import csv
import math
from pathlib import Path

from .._images._batches import read_image_size
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
    shorten,
)

__all__ = ["load_csv_boxes"]

#: The label of every box when the file has no ``label`` column.
NO_LABEL = "object"
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
_COLUMNS = ("image", *_CORNERS)


def _read_rows(path):
    """The header, as column positions, and ``(line number, fields)`` of each non-blank row."""
    if not path.is_file():
        raise FileNotFoundError(f"box file {path} not found.")
    try:
        # utf-8-sig: spreadsheets often start their CSV files with a byte-order mark.
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: not valid CSV ({exc}).") from None
    return _columns(header, path), len(header), rows


def _columns(header, path):
    names = [name.strip().lower() for name in header or []]
    missing = [name for name in _COLUMNS if name not in names]
    if missing:
        got = shorten(",".join(header), 60) if header else "an empty file"
        raise ValueError(
            f"{path}, line 1: the header must name the columns image, xmin, ymin, xmax, ymax "
            f"(and optionally label); got {got}."
        )
    repeated = sorted({name for name in names if names.count(name) > 1} & {*_COLUMNS, "label"})
    if repeated:
        raise ValueError(f"{path}, line 1: column {repeated[0]!r} appears twice in the header.")
    return {name: names.index(name) for name in (*_COLUMNS, "label") if name in names}


def _number(text, column, where):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where} '{column}': not a number ({shorten(text)}).") from None
    if not math.isfinite(value):
        raise ValueError(f"{where} '{column}': not finite ({shorten(text)}).")
    return value


def _read_object(fields, columns, width, height, where):
    corners = [_number(fields[columns[name]].strip(), name, where) for name in _CORNERS]
    box = check_box(corners, width, height, where)
    if "label" not in columns:
        return LabelledBox(NO_LABEL, box, False)
    label = fields[columns["label"]].strip()
    if not label:
        raise ValueError(f"{where} 'label': empty.")
    return LabelledBox(label, box, False)


class _Image:
    """One image of the file: its path, size (read once) and objects."""

    def __init__(self, name, file, where):
        self.name, self.file, self.where, self.objects = name, file, where, []
        try:
            self.width, self.height = read_image_size(str(file))
        except FileNotFoundError:
            raise FileNotFoundError(f"{where}: image file {file} not found.") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None


def _read_records(path, images_dir, policy):
    columns, n_columns, rows = _read_rows(path)
    images, unreadable = {}, set()
    for line, fields in rows:
        where = f"{path}, line {line}"
        try:
            if len(fields) != n_columns:
                raise ValueError(
                    f"{where}: {len(fields)} field(s), but the header has {n_columns}."
                )
            name = fields[columns["image"]].strip()
            if name in unreadable:
                continue  # its image is skipped, and said so once
            if name not in images:
                try:
                    file = path_inside(str(images_dir), name, f"{where} 'image'")
                    images[name] = _Image(name, file, where)
                except (ValueError, FileNotFoundError) as exc:
                    unreadable.add(name)
                    policy.handle(where, exc, whole=True)
                    continue
            image = images[name]
            image.objects.append(_read_object(fields, columns, image.width, image.height, where))
        except ValueError as exc:
            policy.handle(where, exc, whole=False)
    return [ImageRecord(image.name, image.where, (image.file,), image.width, image.height,
                        image.objects) for image in images.values()]


def load_csv_boxes(
    csv_path,
    images,
    *,
    classes=None,
    object_choice="largest",
    on_error="raise",
):
    """Load boxes from a CSV file as image paths and normalised boxes.

    The file has a header line naming the columns ``image``, ``xmin``, ``ymin``,
    ``xmax``, ``ymax`` and, optionally, ``label`` (in any order and case; other
    columns are ignored), then one row per object, in pixels::

        image,xmin,ymin,xmax,ymax,label
        holiday/beach.jpg,120,80,460,390,dog
        holiday/beach.jpg,10,200,90,300,person
        cat.png,0,0,640,480,cat

    Several rows for one image are several objects. The image sizes are not in the
    file: each image's header is read (with Pillow, no pixel decoded) to turn the
    boxes into fractions. Returns the same fields as :func:`load_voc`.

    Parameters
    ----------
    csv_path : str or path-like
        The CSV file, UTF-8 (with or without a byte-order mark), comma-separated.
    images : str or path-like
        The folder the ``image`` values are relative to.
    classes : str, list of str or None, default=None
        Labels to keep. None keeps every label. Otherwise, rows of other labels are
        ignored and images with none of these are dropped; a label found in no row is
        an error.
    object_choice : {"largest", "first"}, default="largest"
        Which object gives an image its single training box: the one of largest area
        (ties go to the first in file order), or the first in file order.
    on_error : {"raise", "skip"}, default="raise"
        What to do with a bad row: "raise" a ``ValueError`` (``FileNotFoundError`` for
        a missing image file), or "skip" it (every row of an image whose file is
        missing or unreadable; only the row for a bad box) and emit one
        ``UserWarning`` at the end. A bad header always raises.

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
            Every box of the kept labels per image.
        labels : list of str
            Label of each training box (``"object"`` when the file has no ``label``
            column).
        all_labels : list of list of str
            Label of each row of ``all_boxes``.
        difficult : list of ndarray of shape (k_i,), bool
            All False: a CSV row has no difficult flag.
        class_names : list of str
            ``classes`` as given, else the sorted labels found.
        image_ids : list of str
            The ``image`` value of each image, as written, in the order each first
            appears.
        sizes : ndarray of shape (n, 2), int
            ``(width, height)`` read from each image file.
        root : str
            The resolved ``images`` folder.
        annotations : str
            The resolved CSV file.
        skipped : list of (str, str)
            ``(row, reason)`` of each row skipped under ``on_error="skip"``, the row as
            ``"<file>, line <number>"``; empty otherwise.

    Raises
    ------
    FileNotFoundError
        When the CSV file or the images folder is missing, or, with
        ``on_error="raise"``, an image file.
    ValueError
        For invalid parameters, a file that is not UTF-8 CSV, a header without the five
        columns, a bad row (the message names the file, the line and the column: a
        missing field, a bad number, a box outside its image or with ``xmin > xmax``,
        an image name leaving the folder, an unreadable image), or when no image is
        left.

    Notes
    -----
    **Coordinates.** Continuous pixel coordinates with the origin at the top-left
    corner of the image, ``xmax`` and ``ymax`` exclusive: a box covering the pixel
    columns 10 to 19 has ``xmin=10, xmax=20``, and a whole-image box is ``0, 0, width,
    height``. Hence the fractions are ``xmin / width``, ``ymin / height``,
    ``xmax / width`` and ``ymax / height``, the image's ``(width, height)`` being its
    stored pixels (an EXIF orientation is not applied, as the images are read that
    way too). Coordinates must lie in ``[0, width]`` and ``[0, height]``, with no
    tolerance. (VOC's XML counts pixels from 1, inclusive: see :func:`load_voc`.)

    **Safety.** The file is read with the standard :mod:`csv` module; an ``image``
    value must be a relative path that stays inside ``images`` (no ``..`` above it, no
    absolute path).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from sklearn_sensloc import load_csv_boxes
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (200, 100)).save(folder / "dog.png")
    >>> _ = (folder / "boxes.csv").write_text(
    ...     "image,xmin,ymin,xmax,ymax,label\\n"
    ...     "dog.png,20,10,120,60,dog\\n"
    ...     "dog.png,0,0,10,10,ball\\n")
    >>> data = load_csv_boxes(folder / "boxes.csv", folder)
    >>> data.boxes
    array([[0.1, 0.1, 0.6, 0.6]])
    >>> data.labels, data.all_labels, data.sizes.tolist()
    (['dog'], [['dog', 'ball']], [[200, 100]])
    """
    check_choices(object_choice, on_error)
    classes = check_classes(classes)
    path, images_dir = Path(csv_path).resolve(), Path(images).resolve()
    check_dir(images_dir, "image folder")
    policy = SkipPolicy(on_error, "load_csv_boxes", whole="image", part="row")
    records = _read_records(path, images_dir, policy)
    if classes is None:
        class_names = sorted({obj.name for record in records for obj in record.objects})
    else:
        class_names = check_known_classes(classes, records, path)
    return assemble(
        records,
        class_names=class_names,
        object_choice=object_choice,
        include_difficult=False,
        policy=policy,
        context=f"{path} (classes={classes!r})",
        root=str(images_dir),
        annotations=str(path),
    )
