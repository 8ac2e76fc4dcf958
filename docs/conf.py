"""Sphinx configuration of the sklearn-sensloc documentation.

Build: ``sphinx-build -b html docs docs/_build/html`` (add ``-W`` to turn
warnings into errors). The gallery scripts in ``examples/`` are rendered but
not executed, because they run VGG16 for minutes on a CPU; set
``SENSLOC_GALLERY_RUN=1`` to execute them and embed their figures.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import sklearn_sensloc  # noqa: E402

project = "sklearn-sensloc"
author = "sklearn-sensloc developers"
copyright = "sklearn-sensloc developers"
release = sklearn_sensloc.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "_ext", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
templates_path = []
html_static_path = ["_static"]
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-sensloc {release}"
html_theme_options = {"navigation_with_keys": False, "show_toc_level": 2}

autodoc_default_options = {"members": True, "inherited-members": False}
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross references in parameter types ("array-like of shape (n, 4)") are prose, not objects.
numpydoc_xref_param_type = False

# Offline builds: no inventory download. Intersphinx links resolve only when
# SENSLOC_DOCS_ONLINE=1 and the network is reachable.
intersphinx_mapping = {}
if os.environ.get("SENSLOC_DOCS_ONLINE"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
# Without inventories, references to scikit-learn, numpy and matplotlib
# objects in docstrings stay plain text instead of warning.
nitpicky = False


sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Execute nothing unless asked: every example runs VGG16.
    "filename_pattern": r"/plot_" if os.environ.get("SENSLOC_GALLERY_RUN") else r"^$",
    "plot_gallery": "True",
    "image_scrapers": ("matplotlib", "sensloc_docs.figure_scraper"),
    "download_all_examples": False,
    "write_computation_times": False,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}


# --------------------------------------------------------------------------- API page

PUBLIC_API_MARKER = ".. sensloc-public-api::"


def _public_api_rst():
    """Autosummary table and entries of every name in ``sklearn_sensloc.__all__``."""
    import inspect

    names = list(sklearn_sensloc.__all__)
    lines = [".. currentmodule:: sklearn_sensloc", "", ".. autosummary::", ""]
    lines += [f"   {name}" for name in names]
    lines.append("")
    for name in names:
        obj = getattr(sklearn_sensloc, name)
        lines += [name, "-" * len(name), ""]
        if inspect.isclass(obj):
            lines += [f".. autoclass:: {name}", "   :members:", ""]
        elif callable(obj):
            lines += [f".. autofunction:: {name}", ""]
        else:
            kind = type(obj)
            lines += [f".. autodata:: {name}", "   :no-value:", "",
                      f"   An instance of :class:`{kind.__module__}.{kind.__qualname__}`:", "",
                      f"   .. autoclass:: {kind.__module__}.{kind.__qualname__}",
                      "      :members:", "      :no-index:", ""]
    return "\n".join(lines)


def _fill_public_api(app, docname, source):
    if PUBLIC_API_MARKER in source[0]:
        source[0] = source[0].replace(PUBLIC_API_MARKER, _public_api_rst())


def setup(app):
    from sensloc_docs import skip_metadata_request_methods

    app.connect("source-read", _fill_public_api)
    app.connect("autodoc-skip-member", skip_metadata_request_methods)
