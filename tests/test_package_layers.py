"""The package's layers (docs/layout.rst): a module imports its own layer or those below, never one above.

Read from the source as tests/test_import_cycles.py reads it, function-level
imports included. Every module of the package is in exactly one layer, so a
new module must be placed (and documented) before this test passes.
"""

from test_import_cycles import PACKAGE, import_graph

#: Lowest first; the names are paths under the package, a folder for all its modules.
LAYERS = {
    "helpers": ["_validation.py", "_version.py", "_atomic.py", "_identity.py", "_progress.py",
                "_tables.py", "_prefetch.py", "_array_files.py"],
    "arrays": ["_images.py", "_image_files.py", "_preprocessing.py", "_maps.py", "_boxes.py",
               "_metrics.py", "datasets"],
    "engine": ["_engine", "_models.py", "_torch_models.py"],
    "estimators": ["_cache.py", "_provider.py", "_transformer.py", "_base.py",
                   "_keras_products.py", "_regressor.py", "_heuristic.py", "_box_score.py",
                   "_timings.py"],
    "workflows": ["_store.py", "_fit_from_store.py", "_dask.py", "_localizer.py", "_box_files.py",
                  "_overlays.py", "_predict_photos.py", "_plots.py", "evaluation"],
    "entry points": ["_cli.py", "__init__.py"],
}


def _layer_of(path):
    relative = path.relative_to(PACKAGE)
    found = [rank for rank, members in enumerate(LAYERS.values())
             for member in members if relative.parts[0] == member
             or str(relative) == member]
    assert len(found) == 1, f"{relative} is in {len(found)} layers of LAYERS"
    return found[0]


def test_every_module_is_in_one_layer():
    for path in PACKAGE.rglob("*.py"):
        _layer_of(path)


def test_no_module_imports_a_layer_above_its_own():
    names = list(LAYERS)
    upward = [
        f"{path.relative_to(PACKAGE)} ({names[_layer_of(path)]}) imports "
        f"{imported.relative_to(PACKAGE)} ({names[_layer_of(imported)]})"
        for path, imports in import_graph(PACKAGE).items() for imported in imports
        if _layer_of(imported) > _layer_of(path)
    ]
    assert upward == []


def test_the_layers_below_the_engine_import_no_keras_at_module_level():
    # The layers below the engine are numpy only: importing them needs no backend.
    below = [path for path in PACKAGE.rglob("*.py") if _layer_of(path) < list(LAYERS).index("engine")]
    assert below
    for path in below:
        source = path.read_text(encoding="utf-8")
        top_level = [line for line in source.splitlines()
                     if line.startswith(("import ", "from ")) and "keras" in line]
        assert top_level == [], path
