"""Helpers of the documentation build (kept out of conf.py so the config pickles)."""


def figure_scraper(block, block_vars, gallery_conf):
    """Embed the matplotlib Figures that an example holds in variables.

    The package draws with ``matplotlib.figure.Figure`` rather than pyplot, so
    sphinx-gallery's pyplot scraper would not see its figures.
    """
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    seen = block_vars.setdefault("sensloc_seen_figures", set())
    paths = []
    for value in list(block_vars["example_globals"].values()):
        if isinstance(value, Figure) and id(value) not in seen:
            seen.add(id(value))
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=80)
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])


def skip_metadata_request_methods(app, what, name, obj, skip, options):
    """scikit-learn's generated ``set_*_request`` methods: documented by scikit-learn."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None
