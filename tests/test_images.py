"""Image files and arrays as the transformer reads them: conversions and refusals."""

import numpy as np
import pytest
from PIL import Image

from sklearn_sensloc import find_images
from sklearn_sensloc._images._batches import ImageSource, load_image, read_image_size

SIZE = (16, 20)


def gradient_rgb(height=24, width=30):
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 10 % 256, cols * 8 % 256, (rows + cols) * 4 % 256], -1).astype(np.uint8)


def test_rgb_file_is_resized_to_height_and_width(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(gradient_rgb()).save(path)
    image = load_image(str(path), SIZE)
    assert image.shape == (16, 20, 3) and image.dtype == np.float32


def test_grayscale_and_palette_become_three_equal_channels(tmp_path):
    gray = gradient_rgb()[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    Image.fromarray(gray).convert("P").save(tmp_path / "palette.gif")
    for name in ("gray.png", "palette.gif"):
        image = load_image(str(tmp_path / name), (24, 30))
        np.testing.assert_array_equal(image[..., 0], image[..., 1])
        np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_array_equal(load_image(str(tmp_path / "gray.png"), (24, 30))[..., 0], gray)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    image = load_image(str(tmp_path / "rgba.png"), (8, 8))
    np.testing.assert_array_equal(image[:4, :, :], np.broadcast_to([200, 0, 0], (4, 8, 3)))
    np.testing.assert_array_equal(image[4:, :, :], 255)


def test_cmyk_jpeg_is_converted(tmp_path):
    Image.fromarray(gradient_rgb()).convert("CMYK").save(tmp_path / "cmyk.jpg")
    image = load_image(str(tmp_path / "cmyk.jpg"), (24, 30))
    assert image.shape == (24, 30, 3)
    assert np.abs(image - gradient_rgb()).mean() < 20


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    gray8 = gradient_rgb()[..., 1]
    gray16 = gray8.astype(np.uint16) * 257
    Image.fromarray(gray16).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as opened:
        assert opened.mode.startswith("I")
    image = load_image(str(tmp_path / "deep.png"), (24, 30))
    np.testing.assert_allclose(image[..., 0], gray8, atol=1)


@pytest.mark.parametrize("content", [b"", b"\xff\xd8\xff\xe0 not really a jpeg", b"plain text"])
def test_unreadable_files_are_named(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="Cannot read image file .*broken.jpg"):
        load_image(str(path), SIZE)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "whole.png"
    Image.fromarray(gradient_rgb(64, 64)).save(path)
    data = path.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.png"):
        load_image(str(tmp_path / "cut.png"), SIZE)


def test_decompression_bombs_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(ValueError, match="Cannot read image file .*bomb.png"):
        load_image(str(path), SIZE)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150 * 150)
    with pytest.raises(ValueError, match="bomb.png"):
        load_image(str(path), SIZE)


def test_a_bad_path_in_a_batch_names_itself(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(gradient_rgb()).save(good)
    (tmp_path / "bad.png").write_bytes(b"junk")
    source = ImageSource([good, tmp_path / "bad.png"])
    assert source.image(0, SIZE).shape == (16, 20, 3)
    with pytest.raises(ValueError, match="bad.png"):
        source.image(1, SIZE)


@pytest.mark.parametrize("as_list", [False, True])
def test_a_folder_as_x_says_to_pass_its_image_files(tmp_path, as_list):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(gradient_rgb()).save(photos / "a.png")
    X = [str(photos / "a.png"), str(photos)] if as_list else str(photos)
    where = "Image 1 of X, '.*photos', is a folder" if as_list else "X is the folder '.*photos'"
    with pytest.raises(ValueError, match=where + r": pass its image files instead, "
                       r"e\.g\. sklearn_sensloc\.find_images\('.*photos'\)\."):
        ImageSource(X)
    # The advice works: the folder's image files are accepted.
    assert len(ImageSource(find_images(photos))) == 1


def test_a_folder_opened_as_an_image_is_named_as_a_folder(tmp_path):
    for read in (lambda path: load_image(path, SIZE), read_image_size):
        with pytest.raises(ValueError, match="is a folder, not an image file: pass its image files"):
            read(str(tmp_path))


def test_read_image_size_reads_the_header_and_refuses_what_load_image_refuses(tmp_path):
    Image.fromarray(gradient_rgb(height=24, width=30)).save(tmp_path / "a.png")
    assert read_image_size(str(tmp_path / "a.png")) == (30, 24)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Cannot read image file .*junk.jpg"):
        read_image_size(str(tmp_path / "junk.jpg"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image_size(str(tmp_path / "missing.png"))


def test_integer_arrays_are_range_checked():
    ImageSource(np.full((2, 4, 4, 3), 255, dtype=np.int64))
    with pytest.raises(ValueError, match="Image 1 of X has pixel values outside 0..255"):
        ImageSource(np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 1000)]).astype(np.uint16))
    with pytest.raises(ValueError, match="X must hold numbers"):
        ImageSource(np.zeros((1, 4, 4, 3), dtype=bool))


def test_uint8_arrays_and_their_files_agree(tmp_path):
    image = gradient_rgb()
    Image.fromarray(image).save(tmp_path / "same.png")
    from_file = ImageSource([tmp_path / "same.png"]).image(0, SIZE)
    from_array = ImageSource(image[None]).image(0, SIZE)
    np.testing.assert_array_equal(from_file, from_array)


def test_array_keys_follow_the_content_not_the_array():
    from sklearn_sensloc import GradientCache
    from sklearn_sensloc._utils._identity import array_fingerprint

    cache = GradientCache()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 128, (3, 8, 8, 3), dtype=np.uint8)  # int8 views stay in range
    keys = ImageSource(images, cache.image_keys).keys()
    assert keys == [array_fingerprint(image) for image in images]
    # The same content in another array: found again, the same keys.
    assert ImageSource(images.copy(), cache.image_keys).keys() == keys
    assert cache.image_keys.info()["hits"] == 3
    # Without a memo, every array is fingerprinted: the same keys.
    assert ImageSource(images).keys() == keys
    # Changed in place: the same array object, a new key, the one its content has.
    images[1, 0, 0, 0] ^= 1
    changed = ImageSource(images, cache.image_keys).keys()
    assert changed[1] != keys[1] and changed[1] == array_fingerprint(images[1])
    assert changed[0] == keys[0] and changed[2] == keys[2]
    # Equal bytes of another dtype or shape are other images.
    as_int8 = images.view(np.int8)
    assert ImageSource(as_int8, cache.image_keys).keys()[0] != keys[0]
    assert ImageSource(as_int8, cache.image_keys).keys()[0] == array_fingerprint(as_int8[0])
    reshaped = images.reshape(3, 4, 16, 3)
    assert ImageSource(reshaped, cache.image_keys).keys()[0] == array_fingerprint(reshaped[0]) != keys[0]
    # A strided view is keyed by its content, as a copy of it is.
    view = images[:, ::2, ::2]
    assert ImageSource(view, cache.image_keys).keys() == ImageSource(view.copy(), cache.image_keys).keys()
    assert ImageSource(view, cache.image_keys).keys() == [array_fingerprint(image) for image in view.copy()]
