"""Storage, a workflow above the estimators: maps computed once, kept on disk, trained on.

Map stores, resumed after a stop (``_store``: :class:`~sklearn_sensloc.MapStore`),
and a box regressor fitted on a store's maps out of core (``_fit_from_store``).
"""
