"""Classifiers, beside the engine: what a ``model=`` parameter means.

Registered names, model files and weights files (``_models``), and PyTorch
classifiers (``_torch_models``), each with the preprocessing its inputs need.
Importing this folder imports no Keras and no torch; the engine in
``_engine/`` runs the networks these modules build.
"""
