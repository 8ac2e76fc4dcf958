"""Each photo with its predicted box and score drawn on it, for a look by eye."""

import math
import os

from PIL import Image, ImageDraw, ImageFont

from .._images._batches import to_rgb
from .._utils._atomic import atomic_file

BOX_COLOUR = (230, 25, 75)
#: Formats Pillow writes; a photo in another is drawn into a PNG.
WRITABLE = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
            ".tiff": "TIFF", ".webp": "WEBP"}


def overlay_path(image, root, folder):
    """Where the overlay of ``image`` goes: its path below ``root``, mirrored into ``folder``."""
    relative = os.path.relpath(os.path.abspath(image), root)
    stem, extension = os.path.splitext(relative)
    if extension.lower() not in WRITABLE:
        relative = stem + ".png"
    return os.path.join(folder, relative)


def write_overlay(row, path):
    """Draw ``row``'s box and score on its photo, into ``path``.

    ``row`` is a :class:`~sklearn_sensloc.BoxRow`: the box in pixels of the photo.
    """
    with Image.open(row.image) as opened:
        image = to_rgb(opened).copy()
    draw = ImageDraw.Draw(image)
    line = max(2, round(min(image.size) / 150))
    box = (row.xmin, row.ymin, max(row.xmin, row.xmax - 1), max(row.ymin, row.ymax - 1))
    draw.rectangle(box, outline=BOX_COLOUR, width=line)
    if math.isnan(row.score):
        _save(image, path)
        return
    font = ImageFont.load_default(size=max(12, round(min(image.size) / 25)))
    label = f"{row.score:.2f}"
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    # Above the box where there is room, else just inside its top edge.
    y = row.ymin - (bottom - top) - 2 * line if row.ymin > (bottom - top) + 2 * line else row.ymin
    x = row.xmin
    draw.rectangle((x, y, x + right - left + 2 * line, y + bottom - top + 2 * line),
                   fill=BOX_COLOUR)
    draw.text((x + line - left, y + line - top), label, fill=(255, 255, 255), font=font)
    _save(image, path)


def _save(image, path):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    file_format = WRITABLE[os.path.splitext(path)[1].lower()]
    with atomic_file(path) as handle:
        image.save(handle, format=file_format, **({"quality": 90} if file_format == "JPEG" else {}))
