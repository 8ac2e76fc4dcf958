"""Maps, above the engine: from absolute input gradients to sensitivity maps.

The numpy steps that turn gradients into maps (``_steps``: aggregate, pool,
normalize), the gradient provider that asks the engine for gradients and
keeps them (``_provider``), the in-memory cache a user sizes (``_cache``), and
the scikit-learn transformer that puts them together (``_transformer``:
:class:`~sklearn_sensloc.SensitivityTransformer`).
"""
