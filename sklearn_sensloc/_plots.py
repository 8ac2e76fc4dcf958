"""Figures in the style of the paper: images beside their maps, predicted and true boxes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas,
never through ``pyplot``: nothing is shown, no global figure list grows in a
loop, and the functions work on machines without a display.
"""

import math
import os

import numpy as np

from ._boxes import box_iou, check_box_sets, check_boxes

__all__ = ["plot_maps", "plot_boxes"]

#: Colours of predicted boxes, one per method; true boxes are drawn in green.
PRED_COLOURS = ("#e6194b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6")
TRUE_COLOUR = "#3cb44b"


def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _display_image(image):
    """An image for ``imshow``: a path is read, floats in 0..255 become uint8."""
    if isinstance(image, (str, os.PathLike)):
        from PIL import Image

        with Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image


def _layout(n_items, indices, max_images, titles, ncols):
    """The images shown, and the rows and columns of their grid."""
    if indices is None:
        shown = list(range(min(n_items, max_images)))
    else:
        shown = [int(i) for i in indices]
        bad = [i for i in shown if not 0 <= i < n_items]
        if bad:
            raise ValueError(f"indices {bad} are out of range for {n_items} images.")
    if titles is not None and len(titles) != len(shown):
        raise ValueError(f"{len(titles)} titles for {len(shown)} images shown.")
    ncols = max(1, min(ncols, len(shown)))
    return shown, math.ceil(len(shown) / ncols), ncols


def _save(figure, path, dpi):
    if path is not None:
        figure.savefig(os.fspath(path), dpi=dpi)
    return figure


def _grid(figure, nrows, ncols):
    axes = np.atleast_1d(figure.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    return axes


def plot_maps(
    images,
    maps,
    map_shape=None,
    *,
    indices=None,
    max_images=6,
    ncols=2,
    cmap="inferno",
    titles=None,
    path=None,
    dpi=100,
):
    """Images beside their sensitivity maps, as in the paper's Fig. 1.

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or list of arrays or paths
        The images, pixel values in 0..255.
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
    ncols : int, default=2
        Image/map pairs per row.
    cmap : str, default="inferno"
        Colour map of the sensitivity maps.
    titles : sequence of str, optional
        One title per image shown.
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
    >>> from sklearn_sensloc._plots import plot_maps
    >>> rng = np.random.default_rng(0)
    >>> images = rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    >>> maps = rng.random((2, 16 * 16))
    >>> fig = plot_maps(images, maps, (16, 16))
    >>> len([ax for ax in fig.axes if ax.images])
    4
    """
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
    shown, nrows, ncols = _layout(len(images), indices, max_images, titles, ncols)
    figure = _new_figure(4.4 * ncols, 2.3 * nrows)
    axes = _grid(figure, nrows, 2 * ncols)
    for k, index in enumerate(shown):
        image_ax, map_ax = axes[2 * k], axes[2 * k + 1]
        image_ax.imshow(_display_image(images[index]))
        image_ax.set_title(titles[k] if titles is not None else f"image {index}", fontsize=9)
        map_ax.imshow(maps[index], cmap=cmap, interpolation="nearest")
        map_ax.set_title("sensitivity map", fontsize=9)
    return _save(figure, path, dpi)


def plot_boxes(
    images,
    true_boxes,
    pred_boxes,
    *,
    indices=None,
    max_images=8,
    ncols=4,
    iou_threshold=0.5,
    titles=None,
    path=None,
    dpi=100,
):
    """Predicted and true boxes drawn on the images, as in the paper's Fig. 2.

    True boxes are green; each method's prediction has its own colour, and
    the panel title gives its IoU with the best-matching true box (``ok``
    when it counts as a correct localization, IoU > ``iou_threshold``).

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or list of arrays or paths
        The images, pixel values in 0..255, at any size: boxes are fractions
        of the width and height.
    true_boxes : array-like of shape (n, 4) or list of (k_i, 4) arrays
        Ground truth, one or several boxes per image.
    pred_boxes : array-like of shape (n, 4), or dict of them
        Predictions; a dict ``{method name: boxes}`` draws several methods.
    indices : sequence of int, optional
        Which images to show; default the first ``max_images``.
    max_images : int, default=8
        Number of images shown when ``indices`` is None.
    ncols : int, default=4
        Images per row.
    iou_threshold : float, default=0.5
        The CorLoc rule used to mark a prediction ``ok``.
    titles : sequence of str, optional
        One title line per image shown, above the IoUs.
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
    >>> from sklearn_sensloc._plots import plot_boxes
    >>> images = np.full((2, 40, 60, 3), 128, dtype=np.uint8)
    >>> truth = [[0.1, 0.1, 0.5, 0.6], [0.4, 0.2, 0.9, 0.9]]
    >>> fig = plot_boxes(images, truth, {"learned": [[0.1, 0.1, 0.5, 0.5], [0, 0, 1, 1]]})
    >>> [ax.get_title() for ax in fig.axes if ax.images]
    ['learned 0.80 ok', 'learned 0.35']
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    truth = check_box_sets(true_boxes, name="true_boxes")
    if not isinstance(pred_boxes, dict):
        pred_boxes = {"predicted": pred_boxes}
    if len(pred_boxes) > len(PRED_COLOURS):
        raise ValueError(f"At most {len(PRED_COLOURS)} methods can be drawn; got {len(pred_boxes)}.")
    predictions = {name: check_boxes(b, name=f"pred_boxes[{name!r}]") for name, b in pred_boxes.items()}
    for name, boxes in predictions.items():
        if len(boxes) != len(images):
            raise ValueError(f"{len(images)} images but {len(boxes)} boxes for {name!r}.")
    if len(truth) != len(images):
        raise ValueError(f"{len(images)} images but {len(truth)} true box sets.")
    shown, nrows, ncols = _layout(len(images), indices, max_images, titles, ncols)
    figure = _new_figure(3.0 * ncols, 3.0 * nrows + 0.4)
    axes = _grid(figure, nrows, ncols)

    def rectangle(box, width, height, colour, style):
        xmin, ymin, xmax, ymax = box
        return Rectangle((xmin * width, ymin * height), (xmax - xmin) * width,
                         (ymax - ymin) * height, fill=False, edgecolor=colour, linewidth=2,
                         linestyle=style)

    for k, index in enumerate(shown):
        ax = axes[k]
        image = _display_image(images[index])
        height, width = image.shape[:2]
        ax.imshow(image)
        for box in truth[index]:
            ax.add_patch(rectangle(box, width, height, TRUE_COLOUR, "-"))
        lines = [titles[k]] if titles is not None else []
        for colour, (name, boxes) in zip(PRED_COLOURS, predictions.items()):
            ax.add_patch(rectangle(boxes[index], width, height, colour, "--"))
            iou = float(box_iou(truth[index], boxes[index]).max())
            lines.append(f"{name} {iou:.2f}" + (" ok" if iou > iou_threshold else ""))
        ax.set_title("\n".join(lines), fontsize=8)
    handles = [Line2D([], [], color=TRUE_COLOUR, linewidth=2, label="true")] + [
        Line2D([], [], color=colour, linewidth=2, linestyle="--", label=name)
        for colour, name in zip(PRED_COLOURS, predictions)
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9,
                  frameon=False)
    return _save(figure, path, dpi)
