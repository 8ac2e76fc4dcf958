"""Box estimators, above the maps: one box per image from its sensitivity map.

What every box estimator shares (``_base``: CorLoc as the score), the linear
SGD regressor (``_regressor``: :class:`~sklearn_sensloc.BoxRegressor`) and its
mini-batch solver's device products (``_keras_products``, imported only when
asked), the heuristic (``_heuristic``), and a score per predicted box
(``_box_score``). None of them imports the gradient engine.
"""
