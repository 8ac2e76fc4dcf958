"""Figures: the paper's Fig. 1 (maps over their images) and Fig. 2 (predicted vs true boxes)."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from conftest import write_png_files
from sklearn_sensloc._plots import CENTER_COLOUR, PRED_COLOURS, TRUE_COLOUR, plot_boxes, plot_maps


def _pyplot_figures():
    import matplotlib.pyplot as plt

    return plt.get_fignums()


def _check_png(path, min_size):
    assert path.is_file()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    # A real drawing: many distinct colours, not a blank canvas.
    assert pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 40, 60, 3), dtype=np.uint8)


def test_plot_maps_overlays_each_map_at_its_image_size(images, tmp_path):
    maps = np.zeros((5, 10 * 15))
    maps[:, 3] = 2.0
    before = _pyplot_figures()
    figure = plot_maps(images, maps, (10, 15), max_images=3, path=tmp_path / "maps.png")
    assert isinstance(figure, Figure)
    assert _pyplot_figures() == before  # nothing registered with pyplot, nothing shown
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 3
    assert [ax.get_title() for ax in shown] == ["image 0", "image 1", "image 2"]
    photo, overlay = shown[0].images
    np.testing.assert_array_equal(photo.get_array(), images[0])
    # Photo and map both span the photo's 60 x 40 pixels, whatever the map's shape.
    assert photo.get_extent() == overlay.get_extent() == [0, 60, 40, 0]
    assert 0 < overlay.get_alpha() < 1
    drawn_map = overlay.get_array()
    assert drawn_map.shape == (10, 15) and drawn_map[0, 3] == 1.0  # divided by its maximum
    _check_png(tmp_path / "maps.png", (300, 150))


def test_plot_maps_has_one_labelled_colour_scale(images):
    figure = plot_maps(images, np.random.default_rng(1).random((5, 64)), max_images=4, ncols=2)
    colorbars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
    assert len(colorbars) == 1
    assert colorbars[0].get_ylabel() == "sensitivity (normalized)"
    assert colorbars[0].get_ylim() == (0.0, 1.0)
    mappable = [ax for ax in figure.axes if ax.images][0].images[1]
    assert mappable.get_clim() == (0.0, 1.0)


def test_plot_maps_side_by_side(images):
    figure = plot_maps(images, np.random.default_rng(1).random((5, 64)), overlay=False,
                       max_images=2)
    shown = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in shown] == [
        "image 0", "sensitivity map", "image 1", "sensitivity map"]
    assert all(len(ax.images) == 1 for ax in shown)
    assert shown[1].images[0].get_extent() == [0, 60, 40, 0]
    assert shown[1].images[0].get_alpha() is None


def test_plot_maps_reads_paths_titled_by_their_stems(images, tmp_path):
    paths = write_png_files(images, tmp_path, pattern="2008_00000{}.png")
    figure = plot_maps(paths, np.random.default_rng(1).random((5, 64)), indices=[4, 2], ncols=1)
    shown = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in shown] == ["2008_000004", "2008_000002"]
    np.testing.assert_array_equal(shown[0].images[0].get_array(), images[4])
    assert shown[0].images[1].get_array().shape == (8, 8)
    figure = plot_maps(paths, np.zeros((5, 64)), indices=[1], titles=["one"])
    assert [ax.get_title() for ax in figure.axes if ax.images] == ["one"]


def test_plot_maps_overlay_keeps_a_portrait_photo_tall(tmp_path):
    portrait = np.full((1, 50, 30, 3), 200, dtype=np.uint8)
    figure = plot_maps(portrait, np.ones((1, 7, 7)), path=tmp_path / "portrait.png")
    ax = [ax for ax in figure.axes if ax.images][0]
    assert ax.images[1].get_extent() == [0, 30, 50, 0]
    box = ax.get_position()  # drawn with equal aspect: taller than wide on the page
    width, height = figure.get_size_inches()
    assert box.height * height > 1.5 * box.width * width


def test_plot_maps_refuses_inconsistent_input(images):
    with pytest.raises(ValueError, match="not a square"):
        plot_maps(images, np.zeros((5, 50)))
    with pytest.raises(ValueError, match="does not match"):
        plot_maps(images, np.zeros((5, 50)), (7, 7))
    with pytest.raises(ValueError, match="5 images but 4 maps"):
        plot_maps(images, np.zeros((4, 64)))
    with pytest.raises(ValueError, match="out of range"):
        plot_maps(images, np.zeros((5, 64)), indices=[5])


def test_plot_boxes_draws_every_box_at_image_scale(images, tmp_path):
    truth = [np.array([[0.1, 0.2, 0.5, 0.6], [0.6, 0.1, 0.9, 0.4]])] + [
        np.array([[0.2, 0.2, 0.8, 0.8]])] * 4
    learned = np.tile([0.1, 0.2, 0.5, 0.6], (5, 1))
    heuristic = np.tile([0.0, 0.0, 1.0, 1.0], (5, 1))
    figure = plot_boxes(images, truth, {"learned": learned, "heuristic": heuristic},
                        max_images=2, ncols=2, path=tmp_path / "boxes.png")
    assert isinstance(figure, Figure)
    panels = [ax for ax in figure.axes if ax.images]
    assert len(panels) == 2
    first = [p for p in panels[0].patches if isinstance(p, Rectangle)]
    assert len(first) == 4  # two true boxes, two predictions
    true_box = first[0]
    assert matplotlib.colors.to_hex(true_box.get_edgecolor()) == TRUE_COLOUR
    # Fractions times the image size: width 60, height 40.
    assert true_box.get_xy() == pytest.approx((6.0, 8.0))
    assert (true_box.get_width(), true_box.get_height()) == pytest.approx((24.0, 16.0))
    assert matplotlib.colors.to_hex(first[2].get_edgecolor()) == PRED_COLOURS[0]
    assert panels[0].get_title() == (
        "image 0\nlearned: IoU 1.00 correct\nheuristic: IoU 0.16 miss")
    assert panels[1].get_title() == "image 1\nlearned: IoU 0.30 miss\nheuristic: IoU 0.36 miss"
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["true", "learned", "heuristic"]
    _check_png(tmp_path / "boxes.png", (300, 150))


def test_plot_boxes_center_box_dotted_grey_with_its_iou(images):
    truth = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    learned = np.tile([0.0, 0.0, 0.5, 0.5], (5, 1))
    center = [0.25, 0.25, 0.75, 0.75]
    for center_box in (center, np.tile(center, (5, 1))):
        figure = plot_boxes(images, truth, {"learned": learned}, center_box=center_box,
                            max_images=1)
        ax = [ax for ax in figure.axes if ax.images][0]
        drawn = ax.patches[-1]
        assert matplotlib.colors.to_hex(drawn.get_edgecolor()) == CENTER_COLOUR
        assert drawn.get_linestyle() == ":"
        assert drawn.get_xy() == pytest.approx((15.0, 10.0))
        assert ax.get_title().splitlines()[-1] == "center box: IoU 0.69 correct"
        labels = [t.get_text() for t in figure.legends[0].get_texts()]
        assert labels == ["true", "learned", "center box"]
    without = plot_boxes(images, truth, {"learned": learned}, max_images=1)
    assert len(without.axes[0].patches) == 2
    with pytest.raises(ValueError, match="5 images but 4 boxes for 'center box'"):
        plot_boxes(images, truth, learned, center_box=np.tile(center, (4, 1)))


def test_plot_boxes_iou_threshold_decides_correct(images):
    truth = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    pred = np.tile([0.25, 0.25, 0.75, 0.75], (5, 1))  # IoU 0.69
    titles = [plot_boxes(images, truth, pred, iou_threshold=t, max_images=1).axes[0].get_title()
              for t in (0.6, 0.7)]
    assert titles == ["image 0\npredicted: IoU 0.69 correct", "image 0\npredicted: IoU 0.69 miss"]


def test_plot_boxes_titles_paths_by_their_stems(images, tmp_path):
    paths = write_png_files(images, tmp_path, pattern="2009_00000{}.png")
    boxes = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    figure = plot_boxes(paths, boxes, boxes, indices=[3, 1])
    assert [ax.get_title().splitlines()[0] for ax in figure.axes] == ["2009_000003", "2009_000001"]


def test_plot_boxes_single_prediction_and_errors(images):
    boxes = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    figure = plot_boxes(images, boxes, boxes, titles=list("abcde"), max_images=5)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [f"{t}\npredicted: IoU 1.00 correct" for t in "abcde"]
    with pytest.raises(ValueError, match="5 images but 4 boxes"):
        plot_boxes(images, boxes, boxes[:4])
    with pytest.raises(ValueError, match="outside"):
        plot_boxes(images, boxes, boxes * 2)
    with pytest.raises(ValueError, match="At most"):
        plot_boxes(images, boxes, {str(i): boxes for i in range(len(PRED_COLOURS) + 1)})


def _overlap(a, b):
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _check_layout(figure):
    """Every panel and title inside the figure, none over another, the legend below them all."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    boxes = []
    for ax in figure.axes:
        boxes += [ax.get_window_extent(renderer), ax.title.get_window_extent(renderer)]
    for box in boxes:
        assert page.x0 - 0.5 <= box.x0 and box.x1 <= page.x1 + 0.5
        assert page.y0 - 0.5 <= box.y0 and box.y1 <= page.y1 + 0.5
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    legend = figure.legends[0].get_window_extent(renderer)
    assert page.x0 <= legend.x0 and legend.x1 <= page.x1 and legend.y0 >= page.y0
    assert legend.y1 <= min(box.y0 for box in boxes) + 0.5
    # Not mostly blank: the photos cover a good share of the page.
    covered = sum(ax.get_window_extent(renderer).width * ax.get_window_extent(renderer).height
                  for ax in figure.axes)
    return covered / (page.width * page.height)


def test_plot_boxes_draws_predictions_alone(images, tmp_path):
    pred = np.tile([0.1, 0.2, 0.5, 0.6], (5, 1))
    figure = plot_boxes(images, None, pred, max_images=3, path=tmp_path / "pred.png")
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["image 0", "image 1", "image 2"]
    for ax in panels:
        (box,) = ax.patches  # the prediction, and no true box
        assert matplotlib.colors.to_hex(box.get_edgecolor()) == PRED_COLOURS[0]
        assert box.get_xy() == pytest.approx((6.0, 8.0))
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["predicted"]
    _check_png(tmp_path / "pred.png", (300, 150))

    several = plot_boxes(images, None, {"learned": pred, "heuristic": pred},
                         center_box=[0.25, 0.25, 0.75, 0.75], max_images=1)
    assert several.axes[0].get_title() == "image 0"
    assert len(several.axes[0].patches) == 3
    assert [t.get_text() for t in several.legends[0].get_texts()] == [
        "learned", "heuristic", "center box"]


def test_plot_boxes_every_image_with_max_images_none(tmp_path):
    rng = np.random.default_rng(2)
    landscape = list(rng.integers(0, 256, (20, 30, 40, 3), dtype=np.uint8))
    portrait = list(rng.integers(0, 256, (10, 50, 30, 3), dtype=np.uint8))
    mixed = [image for pair in zip(landscape, portrait) for image in pair] + landscape[10:]
    pred = np.tile([0.2, 0.2, 0.7, 0.8], (30, 1))
    figure = plot_boxes(mixed, None, pred, max_images=None, path=tmp_path / "thirty.png")
    assert [ax.get_title() for ax in figure.axes] == [f"image {i}" for i in range(30)]
    assert _check_layout(figure) > 0.5
    with_truth = plot_boxes(mixed, pred, {"a": pred, "b": pred}, max_images=None)
    assert len(with_truth.axes) == 30
    assert _check_layout(with_truth) > 0.5  # the engine-laid grid before covered 0.39
    _check_png(tmp_path / "thirty.png", (1200, 2000))


@pytest.mark.parametrize("shape", [(40, 60, 3), (60, 30, 3)])
def test_plot_boxes_layout_of_one_photo_with_long_titles_and_legend(shape):
    image = np.full((1, *shape), 100, dtype=np.uint8)
    boxes = np.array([[0.2, 0.2, 0.8, 0.8]])
    methods = {f"method {i}": boxes for i in range(len(PRED_COLOURS))}
    figure = plot_boxes(image, boxes, methods, center_box=boxes[0])
    assert len(figure.axes[0].get_title().splitlines()) == 8
    assert len(figure.legends[0].get_texts()) == 8
    assert _check_layout(figure) > 0.35
    assert _check_layout(plot_boxes(image, None, boxes)) > 0.6
    assert _check_layout(plot_boxes(image, boxes, methods, titles=["two\nlines"])) > 0.35


def test_plot_boxes_shrinks_large_photo_files(tmp_path):
    from sklearn_sensloc._plots import DISPLAY_MAX_SIDE

    path = tmp_path / "large.jpg"
    Image.new("RGB", (3000, 2000), (200, 100, 50)).save(path)
    figure = plot_boxes([path], None, [[0.5, 0.5, 1.0, 1.0]])
    ax = figure.axes[0]
    height, width = ax.images[0].get_array().shape[:2]
    assert max(height, width) == DISPLAY_MAX_SIDE and width / height == pytest.approx(1.5, abs=0.01)
    # The box stays at its fractions of the photo, whatever size the photo is drawn at.
    assert ax.patches[0].get_xy() == pytest.approx((width / 2, height / 2))


@pytest.mark.parametrize("bad", [0, -1, 2.5, "all", True])
def test_max_images_must_be_positive_or_none(images, bad):
    boxes = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    with pytest.raises(ValueError, match="max_images must be a positive int or None"):
        plot_boxes(images, boxes, boxes, max_images=bad)
