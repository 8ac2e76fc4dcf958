"""The evaluation's output folder: finished steps, stored maps and tables, all atomic."""

import json
from pathlib import Path

from .._utils._array_files import ArrayFiles
from .._utils._atomic import atomic_write_json, atomic_write_text
from .._utils._tables import table_csv, table_markdown


class OutputFolder:
    """Stored maps, finished steps and tables of a run; ``output=None`` keeps all in memory.

    Every entry is named by the key of what it was computed from, so a rerun
    reads back exactly the entries whose inputs did not change.

    Attributes
    ----------
    root : Path or None
    maps : ArrayFiles or None
        Finished maps, ``cache/maps-<key>.npy`` (None without a folder).
    parts : ArrayFiles or None
        Maps of some images while a computation is under way,
        ``cache/parts/maps-<key>.npy``: joined into ``maps`` and deleted at
        its end, kept when it is interrupted.
    computed, reused : list of str
        Steps computed in this run, and read back from an earlier one.
    """

    def __init__(self, output):
        self.root = None if output is None else Path(output)
        self.computed, self.reused = [], []
        self.maps = self.parts = None
        if self.root is not None:
            (self.root / "cache").mkdir(parents=True, exist_ok=True)
            self.maps = ArrayFiles(self.root / "cache")
            self.parts = ArrayFiles(self.root / "cache" / "parts")

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
