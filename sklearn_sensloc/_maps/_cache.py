"""What ``transform`` keeps in memory for refits: a cache object a user creates, sizes and clears.

A parameter search over map-side parameters (aggregation, normalization,
pooling) and over the box regressor refits the transformer on every fold and
candidate; the backward passes are the expensive part and do not depend on
those parameters. A :class:`GradientCache` therefore keeps, per image, its
absolute gradients (keyed by the transformer's gradient key and the image's
key, see ``_identity``), its maps per map-side parameters, and the key of an
image array found again by its bytes, all in one least-recently-used order,
bounded in bytes as a whole. ``SensitivityTransformer(cache=True)`` uses the
package's :data:`gradient_cache`; ``cache=GradientCache(...)`` one of the
user's own, shared by the clones of a search; ``cache=False`` none.
"""

import threading
from collections import OrderedDict

import numpy as np

from .._utils._validation import is_int

#: The default bound; docs/benchmarks.rst ("Memory over a whole data set") gives
#: the process growth it leads to, measured by benchmarks/bench_memory.py --stream.
DEFAULT_MAX_BYTES = 512 << 20

#: Python's bookkeeping of one entry on top of its array's bytes: the key's
#: tuples and strings, the array's header, the ordered dict's node and slot
#: (tests/test_cache.py measures it with tracemalloc, keys of two new strings).
ENTRY_BYTES = 600

#: The kinds of entries, in the order ``info`` lists them.
KINDS = ("gradients", "maps", "image_keys")


class GradientCache:
    """Gradients, maps and image keys that ``transform`` keeps for refits, bounded in bytes.

    One least-recently-used order over every entry, so the bound holds for
    everything held together: each image's absolute gradients (what a refit
    with other map-side parameters, or another fold, needs instead of a
    backward pass), its maps per map-side parameters (what a refit with the
    same ones copies), and the key of each image array met (found again by
    its bytes, several times faster than fingerprinting them again; a search
    indexes ``X`` anew for every fold and candidate). Each entry counts its
    array's bytes plus :data:`ENTRY_BYTES` of Python's bookkeeping. Safe to
    share between threads.

    Pass it as ``SensitivityTransformer(cache=...)``: the clones of a search
    share it (``sklearn.clone`` returns the object itself), a pickled copy is
    an empty cache of the same size.

    Parameters
    ----------
    max_bytes : int, default=512 MiB
        Bound on the bytes held; the least recently used entries are dropped
        first, and an entry larger than the bound is not kept. 0 keeps nothing.

    Attributes
    ----------
    gradients, maps, image_keys : CacheSection
        The entries of each kind: ``get``, ``put``, ``info`` and ``clear``
        for that kind alone.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sensloc import GradientCache
    >>> cache = GradientCache(max_bytes=1 << 20)
    >>> cache.gradients.put(("model", "image"), np.zeros((8, 8, 3), np.float32))
    >>> cache.gradients.get(("model", "image")).shape
    (8, 8, 3)
    >>> cache.info()["bytes"], cache.info()["entries"]
    (1368, 1)
    >>> cache.clear()
    >>> cache.info()["entries"]
    0
    """

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        if not is_int(max_bytes) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0; got {max_bytes!r}.")
        self.max_bytes = int(max_bytes)
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._counts = {kind: {"hits": 0, "misses": 0} for kind in KINDS}
        self.gradients, self.maps, self.image_keys = (CacheSection(self, kind) for kind in KINDS)

    def __repr__(self):
        return f"GradientCache(max_bytes={self.max_bytes})"

    def get(self, kind, key):
        """The value kept for ``key`` among the entries of ``kind``, or None."""
        with self._lock:
            found = self._entries.get((kind, key))
            if found is None:
                self._counts[kind]["misses"] += 1
                return None
            self._entries.move_to_end((kind, key))
            self._counts[kind]["hits"] += 1
            return found[0]

    def put(self, kind, key, value, size=None):
        """Keep ``value`` for ``key`` among the entries of ``kind``.

        ``size``: the bytes it holds, by default ``value.nbytes``; the entry
        counts :data:`ENTRY_BYTES` more. A key already kept keeps its value.
        """
        size = (value.nbytes if size is None else size) + ENTRY_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            if (kind, key) in self._entries:
                return
            self._entries[(kind, key)] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self, kind=None):
        """Drop every entry (of ``kind`` only, if given) and reset its counters."""
        with self._lock:
            if kind is None:
                self._entries.clear()
                self._bytes = 0
            else:
                for entry in [entry for entry in self._entries if entry[0] == kind]:
                    self._bytes -= self._entries.pop(entry)[1]
            for name in KINDS if kind is None else (kind,):
                self._counts[name] = {"hits": 0, "misses": 0}

    def info(self, kind=None):
        """Entries, bytes held, the bound, hits and misses (of ``kind`` only, if given), as a dict."""
        with self._lock:
            sizes = [size for entry, (_, size) in self._entries.items()
                     if kind is None or entry[0] == kind]
            counts = [self._counts[kind]] if kind is not None else self._counts.values()
            return {
                "entries": len(sizes),
                "bytes": sum(sizes),
                "max_bytes": self.max_bytes,
                "hits": sum(count["hits"] for count in counts),
                "misses": sum(count["misses"] for count in counts),
            }

    def __sklearn_clone__(self):
        # A parameter shared by the clones of a search, as joblib.Memory's folder is.
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        # Held arrays stay in this process: a pickled cache arrives empty.
        return type(self), (self.max_bytes,)


class CacheSection:
    """The entries of one kind in a :class:`GradientCache`, with its bound and order.

    Parameters
    ----------
    cache : GradientCache
    kind : {"gradients", "maps", "image_keys"}
    """

    def __init__(self, cache, kind):
        self.cache = cache
        self.kind = kind

    def __repr__(self):
        return f"<{self.kind} of {self.cache!r}>"

    def get(self, key):
        """The value kept for ``key``, or None."""
        return self.cache.get(self.kind, key)

    def put(self, key, value, size=None):
        """Keep ``value`` for ``key`` (see :meth:`GradientCache.put`)."""
        self.cache.put(self.kind, key, value, size)

    def clear(self):
        """Drop the entries of this kind."""
        self.cache.clear(self.kind)

    def info(self):
        """Entries, bytes, hits and misses of this kind, and the cache's bound, as a dict."""
        return self.cache.info(self.kind)


def resolve_cache(cache):
    """The cache a ``cache=`` value means: the package's for True, None for False or None."""
    if isinstance(cache, GradientCache) or cache is None:
        return cache
    if isinstance(cache, (bool, np.bool_)):
        return gradient_cache if cache else None
    raise TypeError(f"cache must be True, False or a GradientCache; got {cache!r}.")


#: The cache of every ``SensitivityTransformer(cache=True)``, the default.
gradient_cache = GradientCache()
