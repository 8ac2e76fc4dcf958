"""The paper's tables as plain dicts, and their Markdown and CSV forms."""

import csv
import io

import numpy as np

TABLES = {
    "table1_per_class": "Table 1. CorLoc (%) per class",
    "table2_heuristic_sigma": "Table 2. CorLoc (%) of the heuristic against sigma (full-resolution maps)",
    "table3_methods": "Table 3. CorLoc (%) of each method and of the center-box baseline",
    "timings": "Timings per image (seconds)",
}


def make_table(name, columns, rows, notes=()):
    return {"name": name, "title": TABLES[name], "columns": list(columns), "rows": rows,
            "notes": list(notes)}


def _format(value):
    if isinstance(value, float):
        if not np.isfinite(value):
            return "n/a"
        return f"{value:.1f}" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}"
    return str(value)


def table_markdown(table):
    """A table dict (title, columns, rows, notes) as Markdown."""
    columns = table["columns"]
    lines = [f"### {table['title']}", ""]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")
    for row in table["rows"]:
        lines.append("| " + " | ".join(_format(row.get(c, "")) for c in columns) + " |")
    if table["notes"]:
        lines.append("")
        lines.extend(f"- {note}" for note in table["notes"])
    return "\n".join(lines) + "\n"


def table_csv(table):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=table["columns"], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(table["rows"])
    return buffer.getvalue()
