"""Figures: the paper's Fig. 1 (image beside its map) and Fig. 2 (predicted vs true boxes)."""

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from conftest import write_png_files
from sklearn_sensloc._plots import PRED_COLOURS, TRUE_COLOUR, plot_boxes, plot_maps


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


def test_plot_maps_pairs_images_with_their_maps(images, tmp_path):
    maps = np.zeros((5, 10 * 15))
    maps[:, 3] = 1.0
    before = _pyplot_figures()
    figure = plot_maps(images, maps, (10, 15), max_images=3, path=tmp_path / "maps.png")
    assert isinstance(figure, Figure)
    assert _pyplot_figures() == before  # nothing registered with pyplot, nothing shown
    shown = [ax for ax in figure.axes if ax.images]
    assert len(shown) == 6
    np.testing.assert_array_equal(shown[0].images[0].get_array(), images[0])
    drawn_map = shown[1].images[0].get_array()
    assert drawn_map.shape == (10, 15) and drawn_map[0, 3] == 1.0
    assert [ax.get_title() for ax in shown] == ["image 0", "sensitivity map"] * 1 + [
        "image 1", "sensitivity map", "image 2", "sensitivity map"]
    _check_png(tmp_path / "maps.png", (300, 150))


def test_plot_maps_reads_paths_square_maps_and_chosen_indices(images, tmp_path):
    paths = write_png_files(images, tmp_path)
    figure = plot_maps(paths, np.random.default_rng(1).random((5, 64)), indices=[4, 2],
                       titles=["four", "two"], ncols=1)
    shown = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in shown[::2]] == ["four", "two"]
    np.testing.assert_array_equal(shown[0].images[0].get_array(), images[4])
    assert shown[1].images[0].get_array().shape == (8, 8)


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
    assert panels[0].get_title() == "learned 1.00 ok\nheuristic 0.16"
    assert panels[1].get_title() == "learned 0.30\nheuristic 0.36"
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["true", "learned", "heuristic"]
    _check_png(tmp_path / "boxes.png", (300, 150))


def test_plot_boxes_single_prediction_and_errors(images):
    boxes = np.tile([0.2, 0.2, 0.8, 0.8], (5, 1))
    figure = plot_boxes(images, boxes, boxes, titles=list("abcde"), max_images=5)
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [f"{t}\npredicted 1.00 ok" for t in "abcde"]
    with pytest.raises(ValueError, match="5 images but 4 boxes"):
        plot_boxes(images, boxes, boxes[:4])
    with pytest.raises(ValueError, match="outside"):
        plot_boxes(images, boxes, boxes * 2)
    with pytest.raises(ValueError, match="At most"):
        plot_boxes(images, boxes, {str(i): boxes for i in range(len(PRED_COLOURS) + 1)})
