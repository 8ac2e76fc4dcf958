"""Box files written row by row, that a rerun of the same job completes.

Two formats, chosen by the output's extension:

- ``.csv``: ``image,width,height,xmin,ymin,xmax,ymax,score``, one row per
  photo, boxes in pixels of the original photo;
- ``.json``: COCO results, a list of ``{"image_id", "file_name", "bbox":
  [x, y, width, height], "score"}``, one object per line.

Rows are appended a batch at a time and flushed to disk. A hidden file beside
the output (``.<name>.sensloc-run``) records which localizer writes it. A job
started again on an output of the same localizer drops a row torn by a kill,
skips the photos already written and appends the others, so an interrupted
job, rerun, ends with every photo exactly once; an output of another
localizer, or not of this package, is never appended to.
"""

import csv
import io
import json
import math
import os
from typing import NamedTuple

from .._utils._atomic import atomic_write_json
from .._version import __version__

RUN_SUFFIX = ".sensloc-run"
CSV_COLUMNS = ("image", "width", "height", "xmin", "ymin", "xmax", "ymax", "score")


class BoxRow(NamedTuple):
    """One photo's box: ``xmin, ymin, xmax, ymax`` in pixels of the original photo.

    ``x`` runs from 0 at the left edge to ``width`` at the right edge (pixel
    ``i`` covers ``[i, i + 1)``), ``y`` from the top; ``score`` is the
    estimated probability that the box is right (NaN without a box score):
    empty in a CSV, null in COCO results.
    """

    image: str
    width: int
    height: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    score: float


class OutputExistsError(FileExistsError):
    """The output exists, but another localizer wrote it, or not this package."""


def box_file(path, localizer_key, image_ids=None, *, overwrite=False):
    """The writer for ``path``'s format, opened to append to what an earlier run wrote.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` or ``.json`` (COCO results).
    localizer_key : str
        Identity of the localizer writing: an output of another one is
        refused rather than completed with other boxes.
    image_ids : dict, optional
        ``{image: image_id}`` for COCO results.
    overwrite : bool, default=False
        Start afresh, removing any earlier output.

    Returns
    -------
    writer : CsvBoxFile or CocoBoxFile
        Its ``done`` holds the images an earlier run wrote.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    writers = {".csv": CsvBoxFile, ".json": CocoBoxFile}
    if extension not in writers:
        raise ValueError(
            f"The output {path!r} must end in .csv (pixel boxes, one row per photo) or .json "
            "(COCO results)."
        )
    if os.path.isdir(path):
        raise ValueError(
            f"The output {path!r} is a folder; give a file name ending in {extension}."
        )
    return writers[extension](path, localizer_key, image_ids, overwrite)


def run_file(path):
    """The hidden file beside an output that says which localizer writes it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{RUN_SUFFIX}")


class _BoxFile:
    """Append-only rows and their run file; the format's parts are in the subclasses."""

    def __init__(self, path, localizer_key, image_ids, overwrite):
        self.path = path
        self.image_ids = image_ids or {}
        run = run_file(path)
        if overwrite:
            for stale in (path, run):
                if os.path.exists(stale):
                    os.remove(stale)
        if os.path.exists(path):
            _check_run(path, run, localizer_key)
        else:
            os.makedirs(os.path.dirname(run), exist_ok=True)
            # The run file first: an output without one is not this package's.
            atomic_write_json(run, {"localizer": localizer_key, "output": os.path.basename(path),
                                    "sklearn-sensloc": __version__})
        with open(path, "a+b") as handle:
            handle.seek(0)
            text = handle.read().decode("utf-8", errors="replace")
            images, end = self._read_images(text)
            # A row torn by a kill is dropped with anything after it, and a
            # finished file loses its footer to be appended to.
            handle.truncate(len(text[:end].encode("utf-8")))
        self.done = set(images)
        self._has_rows = bool(images)
        self._handle = open(path, "a", encoding="utf-8", newline="")
        if end == 0:
            self._write(self._header())

    def append(self, rows):
        """Write ``rows`` (:class:`BoxRow`) and flush them to disk."""
        if rows:
            self._write("".join(self._format(row) for row in rows))
            self.done.update(row.image for row in rows)

    def _write(self, text):
        self._handle.write(text)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self):
        """Finish the file (a rerun reopens it) and close it."""
        self._write(self._footer())
        self._handle.close()

    def _header(self):
        return ""

    def _footer(self):
        return ""


def _check_run(path, run, localizer_key):
    try:
        with open(run, encoding="utf-8") as handle:
            written_by = json.load(handle).get("localizer")
    except FileNotFoundError:
        raise OutputExistsError(
            f"{path!r} exists and was not written by sensloc predict (there is no "
            f"{os.path.basename(run)} beside it): pass --overwrite (overwrite=True) to replace "
            "it, or another output."
        ) from None
    except (OSError, ValueError, AttributeError):
        written_by = None
    if written_by != localizer_key:
        raise OutputExistsError(
            f"{path!r} holds the boxes of another localizer or other settings: pass "
            "--overwrite (overwrite=True) to replace them, or another output."
        )


class CsvBoxFile(_BoxFile):
    """``image,width,height,xmin,ymin,xmax,ymax,score``, pixels of the original photo."""

    def _header(self):
        return ",".join(CSV_COLUMNS) + "\r\n"

    def _format(self, row):
        buffer = io.StringIO()
        csv.writer(buffer).writerow([
            row.image, row.width, row.height,
            *(f"{value:.1f}" for value in (row.xmin, row.ymin, row.xmax, row.ymax)),
            "" if math.isnan(row.score) else f"{row.score:.4f}",
        ])
        return buffer.getvalue()

    def _read_images(self, text):
        """The images of the complete rows of ``text``, and the offset where those rows end."""
        first = text.split("\n", 1)[0]
        if first.rstrip("\r") != self._header().rstrip("\r\n") or "\n" not in text:
            return [], 0
        consumed = len(first) + 1
        ends = []

        def lines():
            nonlocal consumed
            for line in text[consumed:].splitlines(keepends=True):
                consumed += len(line)
                ends.append(line.endswith("\n"))
                yield line

        images, end = [], consumed
        # csv.reader joins the lines of a quoted field that holds a newline.
        for fields in csv.reader(lines()):
            if not ends[-1] or len(fields) != len(CSV_COLUMNS):
                break
            images.append(fields[0])
            end = consumed
        return images, end


class CocoBoxFile(_BoxFile):
    """COCO results: ``[{"image_id", "file_name", "bbox": [x, y, w, h], "score"}, ...]``."""

    def _header(self):
        return "["

    def _footer(self):
        return "\n]\n"

    def _format(self, row):
        result = {
            "image_id": self.image_ids.get(row.image, row.image),
            "file_name": row.image,
            "bbox": [round(row.xmin, 1), round(row.ymin, 1), round(row.xmax - row.xmin, 1),
                     round(row.ymax - row.ymin, 1)],
            "score": None if math.isnan(row.score) else round(row.score, 4),
        }
        # The separator leads each row but the first: a file cut after any
        # row is a list missing only its closing bracket.
        separator = ",\n" if self._has_rows else "\n"
        self._has_rows = True
        return separator + json.dumps(result)

    def _read_images(self, text):
        """The images of the complete rows of ``text``, and the offset where those rows end."""
        if not text.startswith("["):
            return [], 0
        images, end, position = [], 1, 1
        for line in text[1:].split("\n"):
            start, position = position, position + len(line) + 1
            body = line[:-1] if line.endswith(",") else line
            if not body:
                continue
            try:
                result = json.loads(body)
            except ValueError:
                break
            if not isinstance(result, dict) or not isinstance(result.get("file_name"), str):
                break
            images.append(result["file_name"])
            end = start + len(body)
        return images, end
