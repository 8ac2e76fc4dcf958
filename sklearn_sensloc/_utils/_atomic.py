"""Files that are either complete or absent: write a temporary file, then rename.

Every long-running writer of the package (evaluation tables, map stores, the
on-disk gradient store) goes through here, so an interruption never leaves a
partial file that a later run would read back as valid; and a folder that one
run writes is locked against a second run (:func:`folder_lock`).
"""

import json
import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TEMPORARY_SUFFIX = ".tmp"


LOCK_FILE = ".sensloc.lock"


class FolderInUseError(OSError):
    """Another run (process) holds the folder."""


@contextmanager
def folder_lock(folder, what="folder"):
    """Hold ``folder`` for this run; refuse at once if another run holds it.

    Two runs on one folder would each remove temporary parts the other is
    reading. The lock is the kernel's (``flock`` on a file in the folder), so
    it is released when its holder exits, however it exits: a killed run
    never leaves the folder locked. None: nothing to lock. Where there is no
    ``flock`` (Windows), folders are not locked.
    """
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if folder is None or fcntl is None:
        yield
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_FILE)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise FolderInUseError(
                f"The {what} {os.fspath(folder)!r} is in use by another run ({holder}): wait "
                "for it to finish, or give this run another folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_file(path):
    """Yield a binary file whose content replaces ``path`` only if the block succeeds.

    The temporary file lives in the same folder (``os.replace`` is atomic only
    within a file system) and its name carries host and process id, so
    :func:`remove_stale_temporaries` can tell a crashed writer's leftovers from
    a live writer's file. On any exception neither a partial ``path`` nor the
    temporary file remains.
    """
    path = Path(path)
    handle = _new_temporary(path)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        try:
            os.unlink(handle.name)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically, creating its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        handle.write(data)


def atomic_write_text(path, text):
    """Atomic :func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, payload):
    """Serialise first, then write atomically: a non-serialisable payload writes nothing."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def atomic_save_npy(path, array):
    """``np.save`` atomically, without pickles."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        np.save(handle, array, allow_pickle=False)


def remove_stale_temporaries(directory):
    """Delete temporary files left by writers on this host that are no longer running."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    host = socket.gethostname()
    for name in names:
        if not (name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)):
            continue
        parts = name.split(".")
        # "", "<name>", "<ext>"..., "<host parts>"..., "<pid>", "<random>tmp" -- the
        # pid is the last field before the random part.
        try:
            pid = int(parts[-3])
        except (IndexError, ValueError):
            continue
        if not ".".join(parts[:-3]).endswith("." + host) or _process_alive(pid):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass


def _temporary_prefix(path):
    return f".{path.name}.{socket.gethostname()}.{os.getpid()}."


def _new_temporary(path):
    """A new temporary file beside ``path``, open for writing, named for its writer.

    Created by ``open(..., "x")``, whose mode the kernel masks with the
    process's umask: the result gets the permissions any new file gets, with
    the umask neither read nor changed (``tempfile``'s files are 0600).
    """
    prefix = _temporary_prefix(path)
    while True:
        try:
            return open(path.parent / f"{prefix}{secrets.token_hex(4)}{TEMPORARY_SUFFIX}", "xb")
        except FileExistsError:
            continue


def _process_alive(pid):
    if pid == os.getpid():
        # This process writes one file at a time and is not writing now.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _fsync_directory(directory):
    # Makes the rename itself durable across a power loss; not possible on
    # every platform (Windows), where the rename is still atomic.
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
