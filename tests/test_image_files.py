"""find_images: the image files that files, folders and glob patterns name."""

import os
from pathlib import Path

import pytest

from sklearn_sensloc import find_images
from sklearn_sensloc._images._image_files import IMAGE_EXTENSIONS


@pytest.fixture
def photos(tmp_path):
    """A folder of photos, subfolders, other files and hidden ones."""
    root = tmp_path / "photos"
    for name in ["b.JPG", "a.png", "c.jpeg", "readme.txt", "model.sensloc", "trip/d.webp",
                 "trip/2024/e.TIFF", "trip/notes.md", ".hidden.jpg", ".cache/f.jpg",
                 "trip/._d.webp", "scans/g.bmp", "scans/h.gif", "scans/i.tif"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def names(paths, root):
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_a_folder_gives_its_images_recursively_sorted_absolute(photos):
    found = find_images(photos)
    assert names(found, photos) == ["a.png", "b.JPG", "c.jpeg", "scans/g.bmp", "scans/h.gif",
                                    "scans/i.tif", "trip/2024/e.TIFF", "trip/d.webp"]
    assert all(os.path.isabs(p) and isinstance(p, str) for p in found)
    assert found == sorted(found)


def test_every_extension_in_any_case(tmp_path):
    for ext in IMAGE_EXTENSIONS:
        (tmp_path / f"lower{ext}").write_bytes(b"")
        (tmp_path / f"upper{ext.upper()}").write_bytes(b"")
    assert len(find_images(tmp_path)) == 2 * len(IMAGE_EXTENSIONS)


def test_files_are_kept_whatever_their_extension(photos):
    assert names(find_images(photos / "readme.txt", photos / "a.png"), photos) == [
        "a.png", "readme.txt"]


def test_glob_patterns(photos):
    assert names(find_images(str(photos / "[ab].*")), photos) == ["a.png", "b.JPG"]
    assert names(find_images(str(photos / "**" / "*.webp")), photos) == ["trip/d.webp"]
    # A pattern keeps image files only, and searches the folders it matches.
    assert names(find_images(str(photos / "*")), photos) == names(find_images(photos), photos)
    assert names(find_images(str(photos / "tri?")), photos) == ["trip/2024/e.TIFF", "trip/d.webp"]


def test_relative_paths_and_patterns(photos, monkeypatch):
    monkeypatch.chdir(photos.parent)
    assert find_images("photos/scans/*.gif") == [str(photos / "scans" / "h.gif")]
    assert find_images(Path("photos") / "a.png") == [str(photos / "a.png")]


def test_duplicates_are_listed_once_and_order_does_not_follow_the_arguments(photos):
    once = find_images(photos)
    assert find_images(photos / "trip", photos, photos / "a.png", str(photos / "**" / "*.gif")) == once
    assert find_images(photos / "scans", photos / "a.png") == find_images(
        photos / "a.png", photos / "scans")


def test_an_existing_name_with_glob_characters_is_taken_as_it_is(tmp_path):
    odd = tmp_path / "photo [1].jpg"
    odd.write_bytes(b"")
    (tmp_path / "photo 1.jpg").write_bytes(b"")  # what the pattern "[1]" would match
    assert find_images(odd) == [str(odd)]


@pytest.mark.parametrize("argument, message", [
    ("missing.jpg", r"no such file or folder: '.*missing\.jpg'"),
    ("empty", r"folder '.*empty' holds no image file \(\.bmp .*\.webp\)"),
    ("photos/*.raw", r"glob pattern '.*photos/\*\.raw' matches no image file"),
    ("nowhere/**/*.jpg", r"glob pattern '.*nowhere/\*\*/\*\.jpg' matches no image file"),
])
def test_a_path_naming_nothing_is_an_error_naming_it(photos, argument, message):
    (photos.parent / "empty").mkdir()
    (photos / "x.raw").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=message):
        find_images(photos / "a.png", str(photos.parent / argument))


def test_no_argument_or_a_list_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        find_images()
    with pytest.raises(TypeError, match=r"got a list; for a list of them call find_images\(\*paths\)"):
        find_images(["a.jpg", "b.jpg"])


def test_an_unreadable_subfolder_is_an_error_not_a_silent_gap(photos, monkeypatch):
    scandir = os.scandir

    def refusing(path):
        if Path(path).name == "trip":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    # Tests may run as root, who reads every folder: the refusal is simulated.
    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(PermissionError, match="trip"):
        find_images(photos)


def test_links_to_folders_are_not_followed(photos):
    before = find_images(photos)
    (photos / "loop").symlink_to(photos, target_is_directory=True)
    assert find_images(photos) == before
