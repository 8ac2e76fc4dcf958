"""Boxes for photo files: pixel boxes with scores, streamed, written, resumed.

What ``sensloc predict`` runs. Photos go through the localizer a batch at a
time, so memory does not grow with their number; each batch's rows are
written to the output as it finishes, and a job started again on the same
output carries on where the last one stopped.
"""

import copy
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from tqdm.auto import tqdm

from .._images._batches import read_image_size
from ._box_files import BoxRow, box_file
from ._localizer import check_localizer, localizer_key
from ._overlays import overlay_path, write_overlay


def predict_photos(localizer, images, *, box_scorer=None, batch_size=None):
    """Boxes in pixels of each photo, with a score, a batch of photos at a time.

    Photo files are read, mapped and boxed in batches: memory stays that of
    one batch whatever the number of photos. A photo that cannot be read (a
    truncated or empty file, a text file named ``.jpg``) is named in one
    warning and skipped; every other photo gets its box.

    Parameters
    ----------
    localizer : sklearn.pipeline.Pipeline
        A fitted :class:`SensitivityTransformer` and box estimator, e.g. from
        :func:`load_localizer`.
    images : sequence of str or path-like
        Photo files, of any size (:func:`find_images` lists a folder's).
    box_scorer : BoxScorer, optional
        Scores each box (:func:`fit_box_scorer`); default the localizer's own
        ``box_scorer_`` (:func:`load_localizer`). Without one, scores are NaN,
        with a warning.
    batch_size : int, optional
        Photos per batch; default the transformer's ``batch_size``.

    Yields
    ------
    row : BoxRow
        ``image, width, height, xmin, ymin, xmax, ymax, score``: the box in
        pixels of the original photo (``x`` from 0 at the left edge to
        ``width`` at the right edge, ``y`` from the top) and its score, the
        estimated probability that the box is right (see :ref:`box_score`),
        in the order of ``images``.

    Examples
    --------
    >>> from sklearn_sensloc import find_images, load_localizer, predict_photos
    >>> localizer = load_localizer("my.sensloc")  # doctest: +SKIP
    >>> for row in predict_photos(localizer, find_images("photos/")):  # doctest: +SKIP
    ...     print(row.image, row.xmin, row.ymin, row.xmax, row.ymax, row.score)
    """
    check_localizer(localizer)
    yield from _rows(localizer, images, _scorer(localizer, box_scorer), batch_size)


def _rows(localizer, images, scorer, batch_size):
    transformer, estimator = localizer.steps[0][1], localizer.steps[-1][1]
    # Photos stream through once: keeping their gradients and maps would
    # grow memory with their number (to the caches' bounds) for no reuse.
    streaming = copy.copy(transformer)
    streaming.cache = False
    batch_size = batch_size or transformer.batch_size
    images = [os.fspath(image) for image in images]
    for start in range(0, len(images), batch_size):
        yield from _batch_rows(streaming, estimator, scorer, images[start : start + batch_size])


def _scorer(localizer, box_scorer):
    scorer = getattr(localizer, "box_scorer_", None) if box_scorer is None else box_scorer
    if scorer is None:
        warnings.warn(
            "This localizer has no box score: every score is NaN. Fit one with "
            "fit_box_scorer(localizer, X_train, boxes_train) and pass it as box_scorer=, or "
            "save it with save_localizer(..., box_scorer=); sensloc fit does both.",
            UserWarning, stacklevel=4,
        )
    return scorer


def _batch_rows(transformer, estimator, scorer, images):
    readable, maps = readable_maps(transformer, images)
    if not readable:
        return
    boxes = estimator.predict(maps)
    scores = (np.full(len(boxes), np.nan) if scorer is None
              else scorer.score_boxes(maps, boxes))
    for (image, (width, height)), box, score in zip(readable, boxes, scores):
        yield BoxRow(image, width, height, *(box * [width, height, width, height]).tolist(),
                     float(score))


def readable_maps(transformer, images):
    """The photos of ``images`` that can be read, and their maps.

    Returns ``(readable, maps)``: ``readable`` lists ``(image, (width,
    height))``; a photo that cannot be read is named in a warning and left out.
    """
    readable = []
    for image in images:
        try:
            readable.append((image, read_image_size(image)))
        except (ValueError, FileNotFoundError) as error:
            _skip(image, error)
    if not readable:
        return [], None
    try:
        return readable, transformer.transform([image for image, _ in readable])
    except (ValueError, FileNotFoundError):
        # A photo whose header reads but whose pixels do not (a truncated
        # JPEG): map them one by one to find it; the others keep their maps.
        kept, maps = [], []
        for image, size in readable:
            try:
                maps.append(transformer.transform([image]))
            except (ValueError, FileNotFoundError) as error:
                _skip(image, error)
                continue
            kept.append((image, size))
        return kept, (np.concatenate(maps) if maps else None)


def _skip(image, error):
    if isinstance(error, FileNotFoundError):
        reason = "the file is gone"
    else:
        # Pillow's own words, without the path the warning gives once.
        reason = str(error.__cause__ or error).replace(repr(image), "").replace(image, "")
        reason = " ".join(reason.split()).strip(" :.") or type(error.__cause__ or error).__name__
    warnings.warn(f"Skipped photo {image!r}: cannot read it ({reason}).", UserWarning,
                  stacklevel=5)


def write_boxes(localizer, images, output, *, box_scorer=None, overlays=None, image_ids=None,
                batch_size=None, overwrite=False, progress=False):
    """Write the box of every photo to a CSV or COCO results file, resumably.

    Rows are written as batches finish. A job stopped at any point (an
    interruption, a kill) and started again with the same arguments skips the
    photos already written, drops a row the stop cut short, and ends with
    every photo exactly once; photos added since are boxed too.

    Parameters
    ----------
    localizer : sklearn.pipeline.Pipeline
        A fitted localizer (:func:`load_localizer`).
    images : sequence of str or path-like
        Photo files; :func:`find_images` lists folders and patterns.
    output : str or path-like
        ``.csv``: columns ``image,width,height,xmin,ymin,xmax,ymax,score``,
        boxes in pixels of the original photo; ``.json``: COCO results,
        ``{"image_id", "file_name", "bbox": [x, y, width, height], "score"}``
        per photo. A hidden file beside it (``.<name>.sensloc-run``) records
        which localizer writes it.
    box_scorer : BoxScorer, optional
        As for :func:`predict_photos`.
    overlays : str or path-like, optional
        Folder where each photo is drawn with its box and score, at its path
        below the photos' common folder.
    image_ids : dict, optional
        COCO ``image_id`` per file name (a photo's base name), e.g. from the
        ``images`` of a COCO annotation file; by default a photo whose name is
        a number (``000000397133.jpg``, as in COCO) has that number, any other
        its name without extension.
    batch_size : int, optional
        Photos per batch; default the transformer's ``batch_size``.
    overwrite : bool, default=False
        Start the output afresh. Without it, an output that another localizer
        wrote, or that this package did not write, is refused.
    progress : bool, default=False
        A progress bar on standard error.

    Returns
    -------
    summary : sklearn.utils.Bunch
        ``output``; ``n_written`` (rows written now), ``n_kept`` (rows an
        earlier run wrote), ``n_skipped`` (photos that could not be read).

    Examples
    --------
    >>> from sklearn_sensloc import find_images, load_localizer, write_boxes
    >>> localizer = load_localizer("my.sensloc")  # doctest: +SKIP
    >>> write_boxes(localizer, find_images("photos/"), "boxes.csv")  # doctest: +SKIP
    {'output': 'boxes.csv', 'n_written': 120, 'n_kept': 0, 'n_skipped': 0}
    """
    check_localizer(localizer)
    scorer = _scorer(localizer, box_scorer)
    images = list(dict.fromkeys(os.fspath(image) for image in images))
    if not images:
        raise ValueError("No photos to box.")
    ids = {image: _image_id(image, image_ids) for image in images}
    writer = box_file(output, localizer_key(localizer, scorer), ids, overwrite=overwrite)
    todo = [image for image in images if image not in writer.done]
    root = _common_folder(images) if overlays is not None else None
    n_written = n_skipped = 0
    batch_size = batch_size or localizer.steps[0][1].batch_size
    try:
        with tqdm(total=len(todo), desc="boxes", unit="photo", disable=not progress) as bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                rows = list(_rows(localizer, batch, scorer, len(batch)))
                # Overlays before rows: a written row promises its overlay.
                for row in rows if overlays is not None else ():
                    write_overlay(row, overlay_path(row.image, root, overlays))
                writer.append(rows)
                n_written += len(rows)
                n_skipped += len(batch) - len(rows)
                bar.update(len(batch))
    finally:
        writer.close()
    return Bunch(output=os.fspath(output), n_written=n_written,
                 n_kept=len(images) - len(todo), n_skipped=n_skipped)


def _image_id(image, image_ids):
    name = Path(image).name
    if image_ids is not None:
        if name not in image_ids:
            raise ValueError(f"Photo {image!r} has no image id: {name!r} is not in image_ids.")
        return image_ids[name]
    stem = Path(image).stem
    return int(stem) if stem.isdigit() else stem


def _common_folder(images):
    folders = [os.path.dirname(os.path.abspath(image)) for image in images]
    return os.path.commonpath(folders)

