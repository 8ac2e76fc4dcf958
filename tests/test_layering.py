"""Modules meet at public names: none uses another module's underscored names.

Read from the source with ``ast``: an import of an underscored name from a
module of the package, or an underscored attribute read that the module does
not define itself (on ``self`` too: a base class's private member), is a
reach into another module's private members. Underscored *modules* are the
package's layout, and importing them is fine.

Other libraries are held to the same rule, their private modules included
(``sklearn.preprocessing._data``, ``dask_ml._utils``), and a class of the
package may not override a private method of another library's class: their
next release may change any of these. The exceptions are listed below.
"""

import ast
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest

import sklearn_sensloc

PACKAGE = Path(sklearn_sensloc.__file__).parent

#: Other libraries' private members, each used on purpose.
OTHER_LIBRARIES = {
    "_engine/_targets.py": {
        # Keras' record of where a nested model is called, which has no public
        # equivalent: how the outer model feeds a nested one.
        "reads ._inbound_nodes",
    },
}

#: Private modules and names of other libraries that third-party code is meant
#: to use: scikit-learn's parameter validation and fit context, which
#: third-party estimators share with scikit-learn's own.
SHARED_PRIVATE_MODULES = {"sklearn.utils._param_validation"}
SHARED_PRIVATE_NAMES = {("sklearn.base", "_fit_context")}
#: The attribute of that validation which every estimator defines, read with it.
SHARED_PRIVATE_ATTRIBUTES = {"_parameter_constraints"}

#: The box estimators' folder: none of its modules imports the gradient engine, even lazily.
BOX_ESTIMATORS = PACKAGE / "_box_estimators"

def _modules():
    return sorted(path for path in PACKAGE.rglob("*.py"))


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _import_base(importer, node):
    """The path a relative ``from <node.module> import ...`` in ``importer`` starts from."""
    base = importer.parent
    for _ in range(node.level - 1):
        base = base.parent
    for part in (node.module or "").split("."):
        if part:
            base = base / part
    return base


def _is_module(importer, node, name):
    """Whether ``from <node.module> import name`` names a module of the package."""
    base = _import_base(importer, node)
    return (base / f"{name}.py").is_file() or (base / name / "__init__.py").is_file()


def _own_names(tree):
    """Names the module defines: functions, classes, assignments, attributes it sets."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
    return names


def _private_module(dotted):
    return any(_private(part) for part in dotted.split(".")) and \
        dotted not in SHARED_PRIVATE_MODULES


def _other_library_imports(node):
    """What an absolute import takes from another library's private modules or names."""
    if isinstance(node, ast.Import):
        return [f"imports {alias.name}" for alias in node.names if _private_module(alias.name)]
    if _private_module(node.module):
        return [f"imports {node.module}.{alias.name}" for alias in node.names]
    return [
        f"imports {node.module}.{alias.name}" for alias in node.names
        if _private(alias.name) and (node.module, alias.name) not in SHARED_PRIVATE_NAMES
    ]


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
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [(node.lineno, what) for what in _other_library_imports(node)]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and \
                node.attr not in own | SHARED_PRIVATE_ATTRIBUTES:
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            found.append((node.lineno, f"reads {'self' if on_self else ''}.{node.attr}"))
    return found


@pytest.mark.parametrize(
    "path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE))
)
def test_no_module_uses_another_modules_underscored_names(path):
    allowed = OTHER_LIBRARIES.get(str(path.relative_to(PACKAGE)), set())
    assert [(line, what) for line, what in reaches(path) if what not in allowed] == []


def test_every_allowed_reach_is_still_made():
    for relative, allowed in OTHER_LIBRARIES.items():
        assert allowed <= {what for _, what in reaches(PACKAGE / relative)}, relative


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def overrides(path):
    """``(class, name)`` for each private method of another library's class that ``path`` overrides."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    if not classes:
        return []
    module = importlib.import_module(_module_name(path))
    found = []
    for node in classes:
        cls = getattr(module, node.name, None)
        if not inspect.isclass(cls):
            continue
        defined = {item.name for item in node.body
                   if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
        defined |= {target.id for item in node.body if isinstance(item, ast.Assign)
                    for target in item.targets if isinstance(target, ast.Name)}
        for name in sorted(filter(_private, defined)):
            if any(name in vars(base) for base in cls.__mro__[1:]
                   if base.__module__.split(".")[0] != PACKAGE.name):
                found.append((node.name, name))
    return found


@pytest.mark.parametrize(
    # The other backends' engines hold no class and import their framework.
    "path", [path for path in _modules() if path.name not in ("_jax.py", "_torch.py")],
    ids=lambda path: str(path.relative_to(PACKAGE)),
)
def test_no_class_overrides_another_librarys_private_methods(path):
    assert overrides(path) == []


def _package_imports(path):
    """The package's modules that ``path`` imports, anywhere in it (lazily too), as paths."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = _import_base(path, node)
        targets = [base / alias.name for alias in node.names] if node.module is None else [base]
        for target in targets:
            for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                if candidate.is_file():
                    found.add(candidate)
    return found


def imported_closure(paths):
    """Every module of the package that ``paths`` import, directly or through others."""
    seen, todo = set(), list(paths)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += _package_imports(path)
    return seen


def test_box_estimators_never_import_the_gradient_engine():
    closure = imported_closure(BOX_ESTIMATORS.glob("*.py"))
    assert BOX_ESTIMATORS / "_regressor.py" in closure
    assert PACKAGE / "_metrics" / "_corloc.py" in closure
    assert [str(path.relative_to(PACKAGE)) for path in closure
            if path.relative_to(PACKAGE).parts[0] == "_engine"] == []
    transformer = PACKAGE / "_maps" / "_transformer.py"
    assert PACKAGE / "_engine" / "__init__.py" in imported_closure([transformer])


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


def test_the_check_sees_other_libraries_private_names(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import dask_ml._utils\n"
        "from sklearn.preprocessing._data import _handle_zeros_in_scale\n"
        "from sklearn.utils.validation import _num_samples, validate_data\n"
        "from sklearn.base import BaseEstimator, _fit_context\n"
        "from sklearn.utils._param_validation import Interval\n"
        "class Wrapper(BaseEstimator):\n"
        "    def predict(self, X):\n"
        "        self._fitted = True\n"
        "        return self._postfit_estimator.predict(self._check_array(X)), self._fitted\n"
    )
    assert reaches(sample) == [
        (1, "imports dask_ml._utils"),
        (2, "imports sklearn.preprocessing._data._handle_zeros_in_scale"),
        (3, "imports sklearn.utils.validation._num_samples"),
        (9, "reads self._postfit_estimator"), (9, "reads self._check_array"),
    ]


def test_the_check_sees_an_override_of_a_private_method(tmp_path, monkeypatch):
    package = tmp_path / "sklearn_sensloc_sample"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "wrapper.py").write_text(
        "from dask_ml.wrappers import Incremental\n"
        "class Wrapper(Incremental):\n"
        "    def _fit_for_estimator(self, estimator, X, y):\n"
        "        return self\n"
        "    def _own(self):\n"
        "        return self\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    assert overrides(package / "wrapper.py") == [("Wrapper", "_fit_for_estimator")]


def test_every_module_is_seen():
    names = {module.name.split(".")[-1]
             for module in pkgutil.walk_packages([str(PACKAGE)], prefix=f"{PACKAGE.name}.")}
    assert {"_identity", "_store", "_dask", "evaluation"} <= names
