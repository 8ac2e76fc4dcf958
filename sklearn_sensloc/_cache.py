"""Raw gradients computed once per image and model, then reused.

A parameter search over map-side parameters (aggregation, normalization,
pooling) and over the box regressor refits the transformer on every fold and
candidate; the backward passes are the expensive part and do not depend on
those parameters. Absolute gradients are therefore cached per image, keyed by
the transformer's gradient key and the image's key (see ``_identity``), in a
bounded in-process LRU here and, optionally, on disk (``_store``), in a
directory shared by processes and runs.
"""

import threading
from collections import OrderedDict

DEFAULT_MAX_BYTES = 1 << 30


class GradientCache:
    """Process-wide LRU of absolute gradients, bounded in bytes.

    Attributes
    ----------
    max_bytes : int
        Upper bound on the bytes held; the least recently used entries are
        dropped first. 0 disables the in-memory cache.
    hits, misses : int
        Lookups answered from the cache, and not.
    """

    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value):
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

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


#: The cache every SensitivityTransformer with ``cache=True`` shares.
gradient_cache = GradientCache()
