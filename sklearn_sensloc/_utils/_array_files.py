"""Arrays on disk: float32 ``.npy`` files that are either complete or absent.

The package's one kind of on-disk array, below everything that computes: a
:class:`~sklearn_sensloc.MapStore`'s batch files, the evaluation's stored
maps (``--output``'s ``cache/``) and the raw gradients that
``SensitivityTransformer(memory=...)`` keeps, one per image,
``sensloc-gradients/<gradient key>/<image key>.npy``
(:class:`DiskGradientStore`). Each file is written atomically
(:mod:`~sklearn_sensloc._utils._atomic`) and read back only when its header and size
say it is complete.
"""

import contextlib
import math
import os

import numpy as np

from ._atomic import atomic_file, atomic_save_npy

def valid_npy(path, shape=None):
    """Whether ``path`` is a complete C-ordered float32 ``.npy`` (of ``shape``, if given).

    Read from the header and the file's size, without loading the data: a
    file cut short or of another layout does not count.
    """
    try:
        with open(path, "rb") as stream:
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(stream)
            else:
                return False
            offset = stream.tell()
        size = os.path.getsize(path)
    except (OSError, ValueError, EOFError):
        return False
    found, fortran, dtype = header
    return (
        (shape is None or found == tuple(shape))
        and dtype == np.dtype(np.float32)
        and not fortran
        and size == offset + math.prod(found) * 4
    )


class ArrayFiles:
    """A folder of float32 ``.npy`` arrays named by key, each complete or absent.

    The package's one kind of on-disk array: :class:`~sklearn_sensloc.MapStore`'s
    batch files, the evaluation's stored maps and the raw gradients of
    ``SensitivityTransformer(memory=...)`` (:class:`DiskGradientStore`). Each
    file is written atomically and read back only when :func:`valid_npy`
    finds it complete, so an interrupted writer (exception, kill, power loss)
    costs at most the file it was writing. Writers that may remove files hold
    the folder above (:func:`~sklearn_sensloc._utils._atomic.folder_lock`); the
    files of a folder nobody removes from are shared by any number of
    processes.

    Parameters
    ----------
    directory : str or path-like
        Created when the first file is saved.
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)

    def __repr__(self):
        return f"ArrayFiles({self.directory!r})"

    def path(self, name):
        """Path of the file ``name`` (``/`` in a name makes a subfolder)."""
        return os.path.join(self.directory, name + ".npy")

    def has(self, name, shape=None):
        """Whether the file ``name`` is complete (and of ``shape``, if given)."""
        return valid_npy(self.path(name), shape)

    def load(self, name, shape=None, mmap_mode=None):
        """The array ``name``, or None when it is missing, incomplete or of another shape.

        Parameters
        ----------
        name : str
        shape : tuple of int or None, default=None
            The shape it must have; None accepts any.
        mmap_mode : {None, "r", "r+", "c"}, default=None
            As for :func:`numpy.load`.

        Returns
        -------
        array : ndarray or None
        """
        path = self.path(name)
        if not valid_npy(path, shape):
            return None
        try:
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        except (OSError, ValueError):
            # Removed or replaced since it was checked: absent, never trusted.
            return None

    def save(self, name, array):
        """Write ``array`` as float32 to the file ``name``, atomically."""
        atomic_save_npy(self.path(name), np.ascontiguousarray(array, dtype=np.float32))

    def remove(self, name):
        """Delete the file ``name``, if there is one."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(name))

    def join(self, name, source, parts, shape):
        """Join files of ``source`` into the file ``name``, then delete them.

        Parameters
        ----------
        name : str
        source : ArrayFiles
            Holds the ``parts``.
        parts : list of str
            Complete files, in row order; their rows, reshaped to
            ``shape[1:]``, make the joined array.
        shape : tuple of int

        Returns
        -------
        array : numpy.memmap of ``shape``
            The joined file, memory-mapped read-only.
        """
        path = self.path(name)
        os.makedirs(self.directory, exist_ok=True)
        with atomic_file(path) as handle:
            array = np.lib.format.open_memmap(handle.name, "w+", np.float32, tuple(shape))
            start = 0
            for part in parts:
                block = np.load(source.path(part), mmap_mode="r", allow_pickle=False)
                array[start : start + len(block)] = block.reshape(len(block), *shape[1:])
                start += len(block)
            array.flush()
            del array
        for part in parts:
            source.remove(part)
        return np.load(path, mmap_mode="r", allow_pickle=False)


class DiskGradientStore(ArrayFiles):
    """Raw gradients, one file per image under ``directory``, shared by processes and runs.

    ``SensitivityTransformer(memory=...)`` keeps them here, keyed by the
    transformer's gradient key and the image's key (``<gradient key>/<image
    key>.npy``), with the ``get``/``put`` of the in-memory
    :data:`~sklearn_sensloc.gradient_cache`. Files are only ever added, so no
    lock is needed.
    """

    def get(self, key):
        """The gradients of ``key``, or None: a missing or damaged file is recomputed."""
        return self.load(os.path.join(*key))

    def put(self, key, value):
        """Keep the gradients ``value`` of ``key``."""
        self.save(os.path.join(*key), value)


def disk_store(memory):
    """The on-disk store for a ``memory=`` value: None, a path or a joblib.Memory."""
    if memory is None:
        return None
    location = getattr(memory, "location", memory)
    if location is None:
        return None
    return DiskGradientStore(os.path.join(os.fspath(location), "sensloc-gradients"))
