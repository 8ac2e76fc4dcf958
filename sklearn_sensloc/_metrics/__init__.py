"""Metrics, below the box estimators: how a predicted box is compared with the truth.

Box checks and IoU (``_boxes``), CorLoc, its interval and scorer
(``_corloc``), and the seconds per image of each step (``_timings``). The box
estimators score with CorLoc, so this folder sits under them.
"""
