"""No import cycle inside the package, imports inside functions included.

Keras is imported lazily (a backend is chosen before its first import), so
many of the package's imports sit inside functions, where Python never
complains about a cycle. Read from the source with ``ast``, every import of a
module of the package, wherever it is written, is an edge; importing a
module of a subpackage from outside it also runs the subpackage's
``__init__``. The graph must have no cycle: each module then sits on one
level, above everything it imports.
"""

import ast
from pathlib import Path

import sklearn_sensloc

PACKAGE = Path(sklearn_sensloc.__file__).parent


def _module_path(root, dotted_parts):
    """The file of the module ``dotted_parts`` under ``root``, or None."""
    base = root.joinpath(*dotted_parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_parts(root, path):
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(root, path):
    """The package's modules that ``path`` imports, anywhere in it, with the ``__init__`` they run.

    ``from X import name`` imports the module ``X.name`` when there is one,
    else the module ``X`` (the top package's ``__init__`` included); a module
    of a subpackage imported from outside it runs the subpackage's
    ``__init__`` first. The top package's ``__init__``, which every module is
    imported through, counts only where it is imported by name.
    """
    own = _package_parts(root, path)
    # What a relative import counts from: the module's package.
    package = own if path.name == "__init__.py" else own[:-1]
    modules = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            dotted = [part for part in (node.module or "").split(".") if part]
            if node.level:
                base = package[: len(package) - (node.level - 1)] + dotted
            elif dotted[:1] == [root.name]:
                base = dotted[1:]
            else:
                continue
            for alias in node.names:
                named = base + [alias.name]
                modules.append(named if _module_path(root, named) else base)
        elif isinstance(node, ast.Import):
            modules += [alias.name.split(".")[1:] for alias in node.names
                        if alias.name.split(".")[0] == root.name]
    found = set()
    for module in modules:
        # The subpackages on the way, outside the importer's own, then the module.
        steps = [module[:depth] for depth in range(1, len(module))
                 if module[:depth] != own[:depth]] + [module]
        found |= {_module_path(root, step) for step in steps}
    return found - {None, path}


def import_graph(root):
    """``{module path: set of module paths it imports}`` for every module under ``root``."""
    return {path: _imported(root, path) for path in sorted(root.rglob("*.py"))}


def cycles(graph):
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE)
    # A function-level import is an edge: the engine is imported when a provider is built.
    assert PACKAGE / "_engine" / "__init__.py" in graph[PACKAGE / "_maps" / "_provider.py"]
    found = [[str(path.relative_to(PACKAGE)) for path in group] for group in cycles(graph)]
    assert found == []


def test_the_check_sees_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "sample"
    (package / "_engine").mkdir(parents=True)
    (package / "__init__.py").write_text("from ._models import load\n")
    (package / "_models.py").write_text("def load():\n    from ._engine import run\n")
    (package / "_engine" / "__init__.py").write_text("from ._base import run\n")
    (package / "_engine" / "_base.py").write_text(
        "from .._models import load\nfrom . import _helpers\ndef run():\n    pass\n")
    (package / "_engine" / "_helpers.py").write_text("import sample._models\n")
    (package / "_plain.py").write_text("from sample import _models\n")
    graph = import_graph(package)
    assert graph[package / "_engine" / "_base.py"] == {
        package / "_models.py", package / "_engine" / "_helpers.py"}
    assert graph[package / "_plain.py"] == {package / "_models.py"}
    assert [[str(path.relative_to(package)) for path in group] for group in cycles(graph)] == [
        ["_engine/__init__.py", "_engine/_base.py", "_engine/_helpers.py", "_models.py"]]
