"""The package's shared checks: one each, the same answer wherever they are used."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from sklearn_sensloc import SensitivityTransformer
from sklearn_sensloc._cli import build_parser
from sklearn_sensloc._images._batches import check_image_array_shape, is_image_array
from sklearn_sensloc._maps._transformer import fitted_transformer
from sklearn_sensloc._utils._validation import check_image_size, check_positive_int, is_int
from sklearn_sensloc.datasets import make_sample_scenes


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(200)])
def test_positive_ints_pass_as_python_ints(value):
    checked = check_positive_int(value, "n")
    assert checked == value and type(checked) is int


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "3", None, np.float32(2)])
def test_anything_else_is_named_in_the_error(value):
    with pytest.raises(ValueError, match=r"^n must be a positive int; got "):
        check_positive_int(value, "n")


def test_none_passes_only_when_allowed():
    assert check_positive_int(None, "n", allow_none=True) is None
    with pytest.raises(ValueError, match="n must be a positive int or None; got 0"):
        check_positive_int(0, "n", allow_none=True)


def test_bools_are_not_ints():
    assert is_int(np.int32(1)) and not is_int(True) and not is_int(np.bool_(True))


@pytest.mark.parametrize(
    "value, size",
    [(None, None), (224, (224, 224)), ((240, 320), (240, 320)), ([240, 320], (240, 320)),
     (np.array([8, 6]), (8, 6)), (np.int64(5), (5, 5))],
)
def test_an_image_size_is_a_side_or_a_height_and_width(value, size):
    assert check_image_size(value) == size


@pytest.mark.parametrize("value", [0, (0, 4), (4,), (4, 4, 4), 2.5, (2.0, 3), "224", (True, 4)])
def test_other_image_sizes_are_refused(value):
    with pytest.raises(ValueError, match=r"image_size must be an int n \(n x n pixels\) or a pair"):
        check_image_size(value)


def test_image_size_minimum():
    assert check_image_size(32, minimum=32) == (32, 32)
    with pytest.raises(ValueError, match="ints >= 32; got 31"):
        check_image_size(31, minimum=32)


def test_the_transformer_reads_an_int_image_size_as_a_square():
    import keras

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3)])
    square = SensitivityTransformer(model=model, image_size=12, preprocessing="none").fit(None)
    pair = SensitivityTransformer(model=model, image_size=(12, 12), preprocessing="none").fit(None)
    assert square.input_size_ == pair.input_size_ == (12, 12)
    assert square.gradient_key_ == pair.gradient_key_
    with pytest.raises(ValueError, match="image_size must be an int n"):
        SensitivityTransformer(model=model, image_size=(12, 0)).fit(None)


@pytest.mark.parametrize("text, size", [("224", (224, 224)), ("240x320", (240, 320)),
                                        ("240X320", (240, 320))])
def test_the_command_line_reads_image_size_as_python_does(text, size):
    args = build_parser().parse_args(["evaluate", "--voc", ".", "--image-size", text])
    assert args.image_size == size == check_image_size(size)


@pytest.mark.parametrize("text", ["0", "240x0", "1x2x3", "big", "-4"])
def test_the_command_line_refuses_other_image_sizes(text, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["evaluate", "--voc", ".", "--image-size", text])
    assert exit_info.value.code == 2
    assert f"expected a size like 224 or 240x320, got {text!r}" in capsys.readouterr().err


def test_sample_scenes_take_a_pair_of_equal_sides():
    square = make_sample_scenes(2, image_size=(40, 40), random_state=0)
    assert square.images.shape == (2, 40, 40, 3)
    np.testing.assert_array_equal(square.images,
                                  make_sample_scenes(2, image_size=40, random_state=0).images)
    with pytest.raises(ValueError, match="scenes are square"):
        make_sample_scenes(2, image_size=(40, 48))


def test_image_arrays_are_arrays_of_numbers():
    assert is_image_array(np.zeros((2, 4, 4, 3), np.uint8))
    assert not is_image_array(np.array(["a.png", "b.png"]))
    assert not is_image_array(np.array([np.zeros((4, 4, 3)), np.zeros((5, 5, 3))], dtype=object))
    assert not is_image_array([np.zeros((4, 4, 3))])


def test_image_array_shapes():
    check_image_array_shape((2, 4, 4, 3))
    with pytest.raises(ValueError, match=r"images must be .* got shape \(4, 4, 3\)\. For a single "
                                         r"image use images\[None\]"):
        check_image_array_shape((4, 4, 3), "images")
    with pytest.raises(ValueError, match=r"got shape \(2, 4, 4, 1\)\.$"):
        check_image_array_shape((2, 4, 4, 1))


def test_fitted_transformer_fits_only_what_is_not_fitted(tiny_model):
    sens = SensitivityTransformer(model=tiny_model)
    with pytest.raises(NotFittedError):
        sens.transform(np.zeros((1, 32, 32, 3)))
    assert fitted_transformer(sens) is sens
    key = sens.gradient_key_
    provider = sens.gradient_provider().engine
    assert fitted_transformer(sens) is sens
    assert sens.gradient_key_ == key and sens.gradient_provider().engine is provider
    with pytest.raises(TypeError, match="transformer must be a SensitivityTransformer; got str"):
        fitted_transformer("vgg16")
