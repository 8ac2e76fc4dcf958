"""The image files that paths, folders and glob patterns name, as one sorted list."""

import glob
import os

#: What a folder or a pattern keeps: the extensions (any case) of the formats Pillow opens.
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_GLOB_CHARACTERS = "*?["


def find_images(*paths):
    """List the image files that files, folders and glob patterns name.

    Each argument is one of:

    - a file: kept, whatever its extension;
    - a folder: every image file in it and in its subfolders;
    - a glob pattern (``photos/*.jpg``, ``photos/**/*.png``, ``**`` for any depth): the
      image files it matches, and those of the folders it matches.

    Image files are those whose extension is in ``IMAGE_EXTENSIONS`` (``.bmp .gif
    .jpeg .jpg .png .tif .tiff .webp``, in any case). Names starting with ``.``
    (hidden files and folders, such as macOS's ``._photo.jpg`` copies, which are no
    images) are skipped when a folder is searched and, as by :mod:`glob`, by patterns;
    links to folders are not followed.

    Parameters
    ----------
    *paths : str or path-like
        Files, folders and glob patterns. An existing path is taken as it is, even
        when its name holds ``*``, ``?`` or ``[``.

    Returns
    -------
    images : list of str
        Absolute paths, sorted, each once however many arguments name it. The order
        depends only on the names, never on the file system: the same arguments give
        the same list.

    Raises
    ------
    FileNotFoundError
        When an argument names nothing: a path that does not exist, a folder holding
        no image file, a pattern matching none. The message names the argument.
    TypeError
        When an argument is not a path (e.g. a list: pass ``*paths``).
    ValueError
        When no argument is given.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from sklearn_sensloc import find_images
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "trip").mkdir()
    >>> for name in ["b.JPG", "a.png", "notes.txt", "trip/c.jpeg"]:
    ...     _ = (folder / name).write_bytes(b"")
    >>> [Path(p).relative_to(folder).as_posix() for p in find_images(folder)]
    ['a.png', 'b.JPG', 'trip/c.jpeg']
    >>> [Path(p).name for p in find_images(folder / "**" / "*.jpeg", folder / "a.png")]
    ['a.png', 'c.jpeg']
    """
    if not paths:
        raise ValueError("find_images needs at least one file, folder or glob pattern.")
    found = set()
    for path in paths:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(
                f"find_images takes files, folders and glob patterns as separate arguments, "
                f"got a {type(path).__name__}; for a list of them call find_images(*paths)."
            )
        found.update(_images_named_by(os.fspath(path)))
    return sorted(found)


def _images_named_by(path):
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if os.path.isdir(path):
        images = _images_in(path)
        if not images:
            raise FileNotFoundError(
                f"folder {path!r} holds no image file ({' '.join(IMAGE_EXTENSIONS)})."
            )
        return images
    if not any(c in path for c in _GLOB_CHARACTERS):
        raise FileNotFoundError(f"no such file or folder: {path!r}.")
    images = []
    for match in glob.glob(path, recursive=True):
        if os.path.isdir(match):
            images += _images_in(match)
        elif _is_image(match):
            images.append(os.path.abspath(match))
    if not images:
        raise FileNotFoundError(
            f"glob pattern {path!r} matches no image file ({' '.join(IMAGE_EXTENSIONS)})."
        )
    return images


def _images_in(folder):
    images = []

    def refuse(error):
        # os.walk would leave an unreadable subfolder out without a word.
        raise error

    for root, folders, files in os.walk(folder, onerror=refuse):
        folders[:] = [name for name in folders if not name.startswith(".")]
        images += [os.path.abspath(os.path.join(root, name)) for name in files
                   if not name.startswith(".") and _is_image(name)]
    return images


def _is_image(name):
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
