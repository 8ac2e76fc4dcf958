"""The package's layers (docs/layout.rst): a module imports its own layer or those below, never one above.

A module's layer is its folder's: each folder of the package sits in one
layer, and so does each module at the package's top. Read from the source as
tests/test_import_cycles.py reads it, function-level imports included. Every
module of the package is in exactly one layer, so a new folder or top-level
module must be placed (and documented) before this test passes.
"""

import pytest

from test_import_cycles import PACKAGE, import_graph

#: Lowest first; each layer's folders, and the modules at the package's top (``.py``).
LAYERS = {
    "helpers": ["_utils", "_version.py"],
    "images": ["_images", "datasets"],
    "engine": ["_engine", "_classifiers"],
    "maps": ["_maps"],
    "metrics": ["_metrics"],
    "box estimators": ["_box_estimators"],
    "workflows": ["_storage", "_photos", "_dask.py", "_plots.py", "evaluation"],
    "entry points": ["_cli.py", "__init__.py"],
}


def _layer_of(path, root=PACKAGE):
    top = path.relative_to(root).parts[0]
    found = [rank for rank, members in enumerate(LAYERS.values()) if top in members]
    assert len(found) == 1, f"{path.relative_to(root)}: {top} is in {len(found)} layers of LAYERS"
    return found[0]


def upward_imports(root):
    """``"module (layer) imports module (layer)"`` for each import of a higher layer, sorted."""
    graph = import_graph(root)
    layer = {path: _layer_of(path, root) for path in graph}
    names = list(LAYERS)
    return sorted(
        f"{path.relative_to(root)} ({names[layer[path]]}) imports "
        f"{imported.relative_to(root)} ({names[layer[imported]]})"
        for path, imports in graph.items() for imported in imports if layer[imported] > layer[path]
    )


def test_every_module_is_in_one_layer():
    for path in PACKAGE.rglob("*.py"):
        _layer_of(path)
    assert _layer_of(PACKAGE / "_maps" / "_steps.py") == list(LAYERS).index("maps")


def test_every_member_of_a_layer_is_in_the_package():
    for members in LAYERS.values():
        for member in members:
            assert (PACKAGE / member).is_file() if member.endswith(".py") else \
                (PACKAGE / member / "__init__.py").is_file(), member


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(PACKAGE) == []


def test_the_check_sees_an_upward_import_and_an_unplaced_module(tmp_path):
    package = tmp_path / "sample"
    for folder in ("_maps", "_box_estimators"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "_maps" / "_steps.py").write_text(
        "def f():\n    from .._box_estimators import _base\n")
    (package / "_box_estimators" / "_base.py").write_text("from .._maps._steps import f\n")
    assert upward_imports(package) == [
        "_maps/_steps.py (maps) imports _box_estimators/__init__.py (box estimators)",
        "_maps/_steps.py (maps) imports _box_estimators/_base.py (box estimators)",
    ]
    (package / "_misc.py").write_text("")
    with pytest.raises(AssertionError, match="_misc.py is in 0 layers"):
        upward_imports(package)


def test_only_the_engine_imports_keras_at_module_level():
    # Importing the package chooses no backend: Keras comes with the engine,
    # imported when gradients are first asked for, and with the regressor's
    # device products, imported only when asked.
    asked_for = {PACKAGE / "_box_estimators" / "_keras_products.py"}
    outside = [path for path in PACKAGE.rglob("*.py")
               if path.relative_to(PACKAGE).parts[0] != "_engine" and path not in asked_for]
    assert PACKAGE / "_maps" / "_steps.py" in outside
    for path in outside:
        source = path.read_text(encoding="utf-8")
        top_level = [line for line in source.splitlines()
                     if line.startswith(("import ", "from ")) and "keras" in line]
        assert top_level == [], path
