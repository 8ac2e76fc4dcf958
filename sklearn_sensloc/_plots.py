"""Figures in the style of the paper: maps over their images, predicted and true boxes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas,
never through ``pyplot``: nothing is shown, no global figure list grows in a
loop, and the functions work on machines without a display.
"""

import math
import os
from pathlib import Path

import numpy as np

from ._metrics._boxes import box_iou, check_box_sets, check_boxes
from ._utils._validation import check_positive_int

__all__ = ["plot_maps", "plot_boxes"]

#: Colours of predicted boxes, one per method; true boxes are drawn in green.
PRED_COLOURS = ("#e6194b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
TRUE_COLOUR = "#3cb44b"
#: The center-box baseline, drawn dotted in this colour when given.
CENTER_NAME, CENTER_COLOUR = "center box", "#a9a9a9"


def _new_figure(width, height, layout="compressed"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(figure)
    return figure


#: Width of one photo's panel in ``plot_boxes``, in inches.
PANEL_SIZE = 3.2
#: A photo read from a file is shrunk to at most this many pixels a side: a panel shows no
#: more, and a figure of many camera photos would otherwise hold them all at full size.
DISPLAY_MAX_SIDE = 1024


def _display_image(image):
    """An image for ``imshow``: a path is read (shrunk), floats in 0..255 become uint8."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        with Image.open(image) as opened:
            opened.draft("RGB", (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
            rgb = opened.convert("RGB")
            rgb.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))
            return np.asarray(rgb)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image


def _image_id(image, index):
    """The title naming an image: a file's stem (a VOC image id), else its index."""
    if isinstance(image, (str, os.PathLike)):
        return Path(image).stem
    return f"image {index}"


def _show_image(ax, image):
    """Draw an image in pixel coordinates ``0..width`` and ``0..height``; its (height, width).

    Maps and boxes drawn on the same axes then only need these two numbers,
    whatever the photo's aspect ratio.
    """
    height, width = image.shape[:2]
    ax.imshow(image, extent=(0, width, height, 0))
    return height, width


def _layout(images, indices, max_images, titles, ncols):
    """The images shown, their titles (image ids by default), and their grid's rows and columns."""
    max_images = check_positive_int(max_images, "max_images", allow_none=True)
    if indices is None:
        shown = list(range(len(images) if max_images is None else min(len(images), max_images)))
    else:
        shown = [int(i) for i in indices]
        bad = [i for i in shown if not 0 <= i < len(images)]
        if bad:
            raise ValueError(f"indices {bad} are out of range for {len(images)} images.")
    if titles is None:
        titles = [_image_id(images[i], i) for i in shown]
    elif len(titles) != len(shown):
        raise ValueError(f"{len(titles)} titles for {len(shown)} images shown.")
    ncols = max(1, min(ncols, len(shown)))
    return shown, list(titles), math.ceil(len(shown) / ncols), ncols


def _save(figure, path, dpi):
    if path is not None:
        figure.savefig(os.fspath(path), dpi=dpi)
    return figure


def _grid(figure, nrows, ncols):
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    return axes


def _panels(figure, n, ncols, row_heights, title_height):
    """``n`` axes, ``ncols`` a row, each row ``row_heights[i]`` inches tall under its titles.

    Placed by hand: a layout engine leaves fixed-aspect photos of mixed shapes in a corner
    of a tall figure, or pushes a long title out of a short one.
    """
    width, height = figure.get_size_inches()
    axes = []
    top = height
    for k in range(n):
        row, column = divmod(k, ncols)
        if column == 0:
            top -= title_height + (row_heights[row - 1] if row else 0)
        left, bottom = column * PANEL_SIZE + 0.05, top - row_heights[row]
        ax = figure.add_axes((left / width, bottom / height,
                              (PANEL_SIZE - 0.1) / width, row_heights[row] / height))
        ax.set_axis_off()
        axes.append(ax)
    return axes


def plot_maps(
    images,
    maps,
    map_shape=None,
    *,
    indices=None,
    max_images=6,
    ncols=3,
    overlay=True,
    alpha=0.55,
    cmap="inferno",
    titles=None,
    path=None,
    dpi=100,
):
    """Sensitivity maps over their images, as in the paper's Fig. 1.

    A map is computed on the image resized to the model's square input; it is
    drawn stretched back over the whole image, so that it lines up with the
    photo at the photo's own aspect ratio. Each map is divided by its maximum,
    so that one colour scale, from 0 to 1, serves every panel; the colour bar
    on the right gives it.

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or list of arrays or paths
        The images, pixel values in 0..255, at any size.
    maps : array of shape (n, M) or (n, h, w)
        One map per image, flattened (as :class:`SensitivityTransformer`
        returns them) or 2-D.
    map_shape : tuple (h, w), optional
        Shape of one flattened map, e.g. ``transformer.map_shape_``. None
        assumes square maps.
    indices : sequence of int, optional
        Which images to show; default the first ``max_images``.
    max_images : int, default=6
        Number of images shown when ``indices`` is None.
    ncols : int, default=3
        Images per row.
    overlay : bool, default=True
        Draw each map semi-transparent over its image; False draws it in a
        panel of its own, beside the image.
    alpha : float, default=0.55
        Opacity of an overlaid map.
    cmap : str, default="inferno"
        Colour map of the sensitivity maps.
    titles : sequence of str, optional
        One title per image shown; default the file's stem (the VOC image
        id, e.g. ``2008_000008``) for a path, ``image i`` for an array.
    path : str or path-like, optional
        Save the figure there (the format follows the extension).
    dpi : int, default=100
        Resolution of the saved file.

    Returns
    -------
    figure : matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import plot_maps
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (2, 30, 40, 3), dtype=np.uint8)
    >>> maps = rng.random((2, 16 * 16))
    >>> fig = plot_maps(images, maps, (16, 16))
    >>> [(ax.get_title(), ax.images[1].get_extent()) for ax in fig.axes if ax.images]
    [('image 0', [0, 40, 30, 0]), ('image 1', [0, 40, 30, 0])]
    >>> fig.axes[-1].get_ylabel()
    'sensitivity (normalized)'
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    maps = np.asarray(maps)
    if maps.ndim == 2:
        if map_shape is None:
            side = math.isqrt(maps.shape[1])
            if side * side != maps.shape[1]:
                raise ValueError(
                    f"maps have {maps.shape[1]} columns, not a square: pass map_shape=(h, w)."
                )
            map_shape = (side, side)
        if map_shape[0] * map_shape[1] != maps.shape[1]:
            raise ValueError(f"map_shape={tuple(map_shape)} does not match {maps.shape[1]} columns.")
        maps = maps.reshape(len(maps), *map_shape)
    elif maps.ndim != 3:
        raise ValueError(f"maps must have shape (n, M) or (n, h, w); got {maps.shape}.")
    if len(maps) != len(images):
        raise ValueError(f"{len(images)} images but {len(maps)} maps.")
    shown, titles, nrows, ncols = _layout(images, indices, max_images, titles, ncols)
    panels = 1 if overlay else 2
    figure = _new_figure(2.6 * panels * ncols + 0.8, 2.2 * nrows + 0.3)
    axes = _grid(figure, nrows, panels * ncols)
    for k, index in enumerate(shown):
        image_ax, map_ax = axes[panels * k], axes[panels * k + panels - 1]
        height, width = _show_image(image_ax, _display_image(images[index]))
        image_ax.set_title(titles[k], fontsize=9)
        peak = float(maps[index].max())
        # Nearest-neighbour: a pooled map shows its blocks as they are, not a blur of them.
        map_ax.imshow(maps[index] / peak if peak > 0 else maps[index], cmap=cmap, vmin=0, vmax=1,
                      alpha=alpha if overlay else None, interpolation="nearest",
                      extent=(0, width, height, 0))
        if not overlay:
            map_ax.set_title("sensitivity map", fontsize=9)
    # A mappable of its own: the colour bar is drawn opaque, not at the overlay's alpha.
    scale = ScalarMappable(Normalize(0, 1), cmap)
    figure.colorbar(scale, ax=axes, aspect=30, label="sensitivity (normalized)")
    return _save(figure, path, dpi)


def plot_boxes(
    images,
    true_boxes,
    pred_boxes,
    *,
    center_box=None,
    indices=None,
    max_images=8,
    ncols=4,
    iou_threshold=0.5,
    titles=None,
    path=None,
    dpi=100,
):
    """Predicted and true boxes drawn on the images, as in the paper's Fig. 2.

    True boxes are green; each method's prediction has its own colour. Below
    the image id, the panel title gives each prediction's IoU with the
    best-matching true box, and whether it is ``correct`` (IoU >
    ``iou_threshold``, the CorLoc rule) or a ``miss``. Without true boxes
    (``true_boxes=None``, e.g. boxes predicted for new photos), only the
    predictions are drawn, under the image id.

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or list of arrays or paths
        The images, pixel values in 0..255, at any size: boxes are fractions
        of the width and height.
    true_boxes : array-like of shape (n, 4), list of (k_i, 4) arrays, or None
        Ground truth, one or several boxes per image; None draws the
        predictions alone (no IoU, no "true" entry in the legend).
    pred_boxes : array-like of shape (n, 4), or dict of them
        Predictions; a dict ``{method name: boxes}`` draws several methods.
    center_box : array-like of shape (4,) or (n, 4), optional
        The center-box baseline (as :class:`CenterBoxBaseline` predicts it),
        drawn dotted in grey for comparison, with its IoU.
    indices : sequence of int, optional
        Which images to show; default the first ``max_images``.
    max_images : int or None, default=8
        Images shown when ``indices`` is None: the first ``max_images``, or
        every image for None.
    ncols : int, default=4
        Images per row; the figure grows a row for each further ``ncols``
        images, each panel keeping its size.
    iou_threshold : float, default=0.5
        The CorLoc rule: a prediction is ``correct`` when its IoU is above.
    titles : sequence of str, optional
        One title line per image shown, above the IoUs; default the file's
        stem (the VOC image id) for a path, ``image i`` for an array.
    path : str or path-like, optional
        Save the figure there (the format follows the extension).
    dpi : int, default=100
        Resolution of the saved file, in dots per inch.

    Returns
    -------
    figure : matplotlib.figure.Figure
        One panel per image shown, and the legend of the boxes drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import plot_boxes
    >>> images = np.full((2, 40, 60, 3), 128, dtype=np.uint8)
    >>> truth = [[0.1, 0.1, 0.5, 0.6], [0.4, 0.2, 0.9, 0.9]]
    >>> fig = plot_boxes(images, truth, {"learned": [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]]},
    ...                  center_box=[0.25, 0.25, 0.75, 0.75])
    >>> for ax in fig.axes:
    ...     print(ax.get_title())
    image 0
    learned: IoU 0.80 correct
    center box: IoU 0.24 miss
    image 1
    learned: IoU 0.35 miss
    center box: IoU 0.41 miss

    Predictions alone, on every image:

    >>> fig = plot_boxes(images, None, [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]], max_images=None)
    >>> [ax.get_title() for ax in fig.axes], [t.get_text() for t in fig.legends[0].get_texts()]
    (['image 0', 'image 1'], ['predicted'])
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    truth = None if true_boxes is None else check_box_sets(true_boxes, name="true_boxes")
    if not isinstance(pred_boxes, dict):
        pred_boxes = {"predicted": pred_boxes}
    if len(pred_boxes) > len(PRED_COLOURS):
        raise ValueError(f"At most {len(PRED_COLOURS)} methods can be drawn; got {len(pred_boxes)}.")
    predictions = {name: check_boxes(b, name=f"pred_boxes[{name!r}]") for name, b in pred_boxes.items()}
    # name: (boxes, colour, line style); the baseline last, apart from the methods.
    drawn = {name: (boxes, colour, "--")
             for colour, (name, boxes) in zip(PRED_COLOURS, predictions.items())}
    if center_box is not None:
        center = np.asarray(center_box, dtype=float)
        if center.ndim == 1:
            center = np.tile(center, (len(images), 1))
        drawn[CENTER_NAME] = (check_boxes(center, name="center_box"), CENTER_COLOUR, ":")
    for name, (boxes, _, _) in drawn.items():
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes for {name!r}.")
    if truth is not None and len(truth) != len(images):
        raise ValueError(f"{len(images)} images but {len(truth)} true box sets.")
    shown, titles, nrows, ncols = _layout(images, indices, max_images, titles, ncols)
    handles = [] if truth is None else [Line2D([], [], color=TRUE_COLOUR, linewidth=2, label="true")]
    handles += [
        Line2D([], [], color=colour, linewidth=2, linestyle=style, label=name)
        for name, (_, colour, style) in drawn.items()
    ]
    # As many legend entries a row as the figure's width holds: a narrow figure wraps them.
    entry_width = 0.6 + 0.075 * max(len(handle.get_label()) for handle in handles)
    per_row = max(1, min(len(handles), int(PANEL_SIZE * ncols // entry_width)))
    pictures = [_display_image(images[index]) for index in shown]
    # Each row as tall as its tallest photo (portraits capped at 3:2) under its title lines:
    # neither one photo nor thirty leave the figure mostly blank.
    title_lines = max(title.count("\n") + 1 for title in titles)
    title_height = 0.14 * (title_lines + (0 if truth is None else len(drawn))) + 0.1
    row_heights = [
        PANEL_SIZE * max(min(p.shape[0] / p.shape[1], 1.5) for p in pictures[start:start + ncols])
        for start in range(0, len(pictures), ncols)
    ]
    legend_height = 0.25 * math.ceil(len(handles) / per_row) + 0.1
    figure_height = sum(row_heights) + nrows * title_height + legend_height
    figure = _new_figure(PANEL_SIZE * ncols, figure_height, layout=None)
    axes = _panels(figure, len(pictures), ncols, row_heights, title_height)

    def rectangle(box, width, height, colour, style):
        xmin, ymin, xmax, ymax = box
        return Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                         (ymax - ymin) * height, fill=False, edgecolor=colour, linewidth=2,
                         linestyle=style)

    for k, index in enumerate(shown):
        ax = axes[k]
        height, width = _show_image(ax, pictures[k])
        for box in [] if truth is None else truth[index]:
            ax.add_patch(rectangle(box, width, height, TRUE_COLOUR, "-"))
        lines = [titles[k]]
        for name, (boxes, colour, style) in drawn.items():
            ax.add_patch(rectangle(boxes[index], width, height, colour, style))
            if truth is not None:
                iou = float(box_iou(truth[index], boxes[index]).max())
                verdict = "correct" if iou > iou_threshold else "miss"
                lines.append(f"{name}: IoU {iou:.2f} {verdict}")
        ax.set_title("\n".join(lines), fontsize=8)
    figure.legend(handles=handles, loc="lower center", ncols=per_row, fontsize=9, frameon=False)
    return _save(figure, path, dpi)
