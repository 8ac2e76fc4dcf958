"""Helpers, the lowest layer: no step of the method, only what every layer above shares.

Shared parameter checks and renames (``_validation``), files that are complete
or absent (``_atomic``), arrays on disk (``_array_files``), the one key of
images, model, target, preprocessing and size (``_identity``), progress bars,
tables and prefetching. Nothing here imports another folder of the package.
"""
