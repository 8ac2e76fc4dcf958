"""Raw gradients computed once per image and model, then reused.

A parameter search over map-side parameters (aggregation, normalization,
pooling) and over the box regressor refits the transformer on every fold and
candidate; the backward passes are the expensive part and do not depend on
those parameters. Absolute gradients are therefore cached per image, keyed by
the transformer's gradient key and the image's key (see ``_identity``), in a
bounded in-process LRU here and, optionally, on disk (``_store``), in a
directory shared by processes and runs. The maps made from them are kept too,
per image, in a second, smaller LRU, so that the folds and candidates of a
search make each image's map once per map-side parameters.
"""

import threading
from collections import OrderedDict

DEFAULT_MAX_BYTES = 1 << 30

#: Bound of :attr:`GradientCache.maps`: maps are pooled, so much smaller than gradients.
DEFAULT_MAX_MAP_BYTES = 1 << 28

#: Bound of :attr:`GradientCache.image_keys`, in bytes of the images' copies.
DEFAULT_MAX_IMAGE_KEY_BYTES = 1 << 28


class BoundedLRU:
    """Thread-safe LRU bounded in bytes.

    Each entry costs ``size`` bytes, by default ``value.nbytes``; an entry
    larger than the bound is not kept.

    Attributes
    ----------
    max_bytes : int
        Upper bound on the bytes held; the least recently used entries are
        dropped first. 0 disables the cache.
    hits, misses : int
        Lookups answered from the cache, and not.
    """

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found[0]

    def put(self, key, value, size=None):
        size = value.nbytes if size is None else size
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def clear(self):
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0

    def info(self):
        """Entries, bytes held, hits and misses, as a dict."""
        return {
            "entries": len(self._entries),
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "hits": self.hits,
            "misses": self.misses,
        }


class GradientCache(BoundedLRU):
    """Process-wide LRU of absolute gradients, bounded in bytes, with the maps made from them.

    Attributes
    ----------
    max_bytes : int
        Upper bound on the bytes of gradients held; the least recently used
        entries are dropped first. 0 disables the in-memory cache.
    hits, misses : int
        Gradient lookups answered from the cache, and not.
    maps : BoundedLRU
        Each image's map as ``transform`` returns it, keyed by the map-side
        parameters with the gradient key (``maps_key``) and the image's key.
    image_keys : BoundedLRU
        The keys of image arrays met recently, found again by the image's
        bytes (a copy, taken when first met): a search indexes ``X`` anew for
        every fold and candidate, so the same images come back in new arrays,
        and a lookup by their bytes is several times faster than
        fingerprinting them again. Keyed by content, not by the array object,
        a changed image never gets its old key.

    All three are cleared together, so that a cleared cache recomputes everything.
    """

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES, max_map_bytes=DEFAULT_MAX_MAP_BYTES,
                 max_image_key_bytes=DEFAULT_MAX_IMAGE_KEY_BYTES):
        super().__init__(max_bytes)
        self.maps = BoundedLRU(max_map_bytes)
        self.image_keys = BoundedLRU(max_image_key_bytes)

    def clear(self):
        """Drop every gradient, map and image key, and reset the counters."""
        super().clear()
        self.maps.clear()
        self.image_keys.clear()


#: The cache every SensitivityTransformer with ``cache=True`` shares.
gradient_cache = GradientCache()
