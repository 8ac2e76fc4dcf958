"""Photos, a workflow above the estimators: a fitted localizer run on photo files.

Self-contained localizer files (``_localizer``), boxes for photo files,
streamed and resumed (``_predict_photos``), the box files they are written to
(``_box_files``), and overlays of each box on its photo (``_overlays``).
"""
