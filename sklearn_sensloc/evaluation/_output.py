"""The evaluation's output folder: finished steps, stored maps and tables, all atomic."""

import json
from pathlib import Path

import numpy as np

from .._atomic import atomic_file, atomic_save_npy, atomic_write_json, atomic_write_text
from .._store import valid_npy
from .._tables import table_csv, table_markdown


def _load_npy(path, shape):
    """A complete float32 array file of ``shape``, memory-mapped, or None."""
    return np.load(path, mmap_mode="r") if valid_npy(path, shape) else None


class OutputFolder:
    """Stored maps, finished steps and tables of a run; ``output=None`` keeps all in memory.

    Every entry is named by the key of what it was computed from, so a rerun
    reads back exactly the entries whose inputs did not change.

    Attributes
    ----------
    root : Path or None
    computed, reused : list of str
        Steps computed in this run, and read back from an earlier one.
    """

    def __init__(self, output):
        self.root = None if output is None else Path(output)
        self.computed, self.reused = [], []
        if self.root is not None:
            (self.root / "cache").mkdir(parents=True, exist_ok=True)

    def _step_path(self, name):
        return self.root / "cache" / f"step-{name}.json"

    def step(self, name, key, compute):
        """Payload of step ``name``: read back when written with the same key, else computed."""
        if self.root is not None:
            path = self._step_path(name)
            if path.is_file():
                try:
                    stored = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    stored = None
                if isinstance(stored, dict) and stored.get("key") == key:
                    self.reused.append(name)
                    return stored["payload"]
        payload = compute()
        self.computed.append(name)
        if self.root is not None:
            atomic_write_json(self._step_path(name), {"key": key, "payload": payload})
        return payload

    def maps_path(self, key):
        return self.root / "cache" / f"maps-{key}.npy"

    def load_maps(self, key, shape):
        """Finished maps of ``key``, of ``shape``, memory-mapped, or None."""
        if self.root is None:
            return None
        return _load_npy(self.maps_path(key), shape)

    def _part_path(self, key):
        return self.root / "cache" / "parts" / f"maps-{key}.npy"

    def has_part(self, key, shape):
        return valid_npy(self._part_path(key), shape)

    def save_part(self, key, block):
        """Maps of some images: a finished part survives an interruption."""
        path = self._part_path(key)
        path.parent.mkdir(exist_ok=True)
        atomic_save_npy(path, block)

    def assemble_maps(self, key, part_keys, shape):
        """Join the parts ``{start: key}`` into one ``.npy`` (atomically), memory-map it."""
        path = self.maps_path(key)
        with atomic_file(path) as handle:
            array = np.lib.format.open_memmap(handle.name, "w+", np.float32, shape)
            for start, part_key in part_keys.items():
                block = np.load(self._part_path(part_key), mmap_mode="r")
                array[start : start + len(block)] = block
            array.flush()
            del array
        for part_key in part_keys.values():
            self._part_path(part_key).unlink(missing_ok=True)
        return np.load(path, mmap_mode="r")

    def write_table(self, name, table):
        """The table as Markdown, CSV and JSON; the paths written."""
        if self.root is None:
            return []
        written = []
        for ext, text in (("md", table_markdown(table)), ("csv", table_csv(table))):
            atomic_write_text(self.root / f"{name}.{ext}", text)
            written.append(str(self.root / f"{name}.{ext}"))
        atomic_write_json(self.root / f"{name}.json", table)
        written.append(str(self.root / f"{name}.json"))
        return written

    def write_summary(self, summary, tables):
        """``summary.md`` and ``summary.json``; the paths written."""
        if self.root is None:
            return []
        text = "# sklearn-sensloc evaluation\n\n" + "".join(
            f"- {k}: {v}\n" for k, v in summary.items()
        ) + "\n" + "\n".join(table_markdown(t) for t in tables.values())
        atomic_write_text(self.root / "summary.md", text)
        atomic_write_json(self.root / "summary.json", {**summary, "tables": tables})
        return [str(self.root / "summary.md"), str(self.root / "summary.json")]
