"""Data sets: VOC / ImageNet-style trees, COCO JSON, CSV boxes and the embedded offline sample.

``find_images``, which lists unlabelled photos, is here too, beside the readers of
labelled ones.
"""

from .._images._image_files import find_images
from ._coco import load_coco
from ._csv_boxes import load_csv_boxes
from ._embedded import make_sample_scenes
from ._voc import SplitNotFoundError, load_voc

__all__ = [
    "SplitNotFoundError",
    "find_images",
    "load_coco",
    "load_csv_boxes",
    "load_voc",
    "make_sample_scenes",
]
