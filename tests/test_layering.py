"""Modules meet at public names: none uses another module's underscored names.

Read from the source with ``ast``: an import of an underscored name from a
module of the package, or an underscored attribute read on anything but
``self``/``cls`` that the module does not define itself, is a reach into
another module's private members. Underscored *modules* are the package's
layout, and importing them is fine.
"""

import ast
import pkgutil
from pathlib import Path

import pytest

import sklearn_sensloc

PACKAGE = Path(sklearn_sensloc.__file__).parent

#: Other libraries' private members, each used on purpose.
OTHER_LIBRARIES = {
    "_regressor.py": {
        # scikit-learn's SGDRegressor: its checks made once per fit, not once per mini-batch.
        "_validate_params", "_more_validate_params", "_allocate_parameter_mem", "_fit_regressor",
    },
    "_engine/_targets.py": {
        # Keras' record of where a nested model is called, which has no public
        # equivalent: how the outer model feeds a nested one.
        "_inbound_nodes",
    },
}

def _modules():
    return sorted(path for path in PACKAGE.rglob("*.py"))


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(importer, node, name):
    """Whether ``from <node.module> import name`` names a module of the package."""
    base = importer.parent
    for _ in range(node.level - 1):
        base = base.parent
    for part in (node.module or "").split("."):
        if part:
            base = base / part
    return (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file()


def _own_names(tree):
    """Names the module defines: functions, classes, assignments, attributes of self."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                node.value.id in ("self", "cls"):
            names.add(node.attr)
    return names


def reaches(path):
    """``(line, what)`` for each use of another module's underscored name in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _own_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            for alias in node.names:
                if _private(alias.name) and not _is_module(path, node, alias.name):
                    found.append((node.lineno, f"imports {node.module}.{alias.name}"))
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, f"reads .{node.attr}"))
    return found


@pytest.mark.parametrize(
    "path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE))
)
def test_no_module_uses_another_modules_underscored_names(path):
    relative = str(path.relative_to(PACKAGE))
    allowed = OTHER_LIBRARIES.get(relative, set())
    assert [(line, what) for line, what in reaches(path) if what[len("reads ."):] not in allowed] \
        == []


def test_the_check_sees_a_reach(tmp_path):
    (tmp_path / "_models.py").write_text("")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from ._models import _registered_model, check_model\n"
        "from . import _models\n"
        "def f(source):\n    return source._items, _models._plain('x'), source.__class__\n"
    )
    assert reaches(sample) == [
        (1, "imports _models._registered_model"), (4, "reads ._items"), (4, "reads ._plain"),
    ]


def test_every_module_is_seen():
    names = {module.name for module in pkgutil.walk_packages([str(PACKAGE)])}
    assert {"_identity", "_store", "_dask", "evaluation"} <= names
