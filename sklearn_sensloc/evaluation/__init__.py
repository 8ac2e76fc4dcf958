"""The paper's evaluation protocol: data, maps, box methods, timings and tables.

:func:`evaluate_localization` scores the learned map, the heuristic and the
center box on the same maps and writes the paper's tables;
:func:`evaluate_voc` runs it on a PASCAL VOC style tree. Both are also
``sklearn_sensloc.evaluate_localization`` and ``sklearn_sensloc.evaluate_voc``,
and behind ``sensloc evaluate``.
"""

from ._full_maps import pooled_features
from ._protocol import DEFAULT_SIGMAS, evaluate_localization, evaluate_voc
from ._report import model_label

__all__ = [
    "DEFAULT_SIGMAS",
    "evaluate_localization",
    "evaluate_voc",
    "model_label",
    "pooled_features",
]
