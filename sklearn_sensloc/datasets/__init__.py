"""Data sets: PASCAL VOC / ImageNet-style trees and the embedded offline sample."""

from ._embedded import make_sample_scenes
from ._voc import load_voc

__all__ = ["load_voc", "make_sample_scenes"]
