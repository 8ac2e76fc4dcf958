"""One self-contained localizer file: a fitted pipeline saved without pickle.

A localizer file is a zip archive holding everything ``predict`` needs:

- ``localizer.json``: what the file is (format name and version), the
  versions it was made with, each step's class and parameters, the fitted
  values that are plain numbers or lists, and a free ``record`` of how it was
  made (data, command line);
- ``arrays.npz``: the fitted arrays (numpy's format, read without pickle);
- ``model.keras``: the classifier itself, architecture and weights, read back
  in Keras' safe mode, which runs no code from the file; or, for a PyTorch
  classifier of timm or torchvision (``"timm:NAME"``), ``model.pt``: its state
  dict, read with ``torch.load(..., weights_only=True)``, and the name that
  builds its architecture.

Only the package's own estimators are rebuilt, by a fixed table of class
names: nothing in the file names code to import or run.
"""

import contextlib
import datetime
import io
import json
import os
import platform
import shutil
import tempfile
import zipfile
from numbers import Integral

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted

from .._box_estimators._box_score import BOX_SCORE_FEATURES, BoxScorer
from .._box_estimators._heuristic import CenterBoxBaseline, HeuristicBoxEstimator
from .._box_estimators._regressor import BoxRegressor
from .._maps._transformer import SensitivityTransformer
from .._utils._identity import fingerprint

FORMAT = "sklearn-sensloc localizer"
FORMAT_VERSION = 1
MANIFEST = "localizer.json"
ARRAYS = "arrays.npz"
MODEL = "model.keras"
TORCH_MODEL = "model.pt"

#: Largest manifest read, in bytes: it holds parameters and a few lists.
MAX_MANIFEST_BYTES = 16 << 20

#: Largest model or array member extracted, in bytes: a member claiming more
#: is refused before anything is written.
MAX_MEMBER_BYTES = 8 << 30

#: Transformer parameters that say where this machine keeps things: not
#: saved, since the file must work on another machine.
MACHINE_PARAMS = {"memory": None, "verbose": False, "weights": None}

#: The estimators a localizer file may hold, by class name, and their fitted
#: attributes: (kept as JSON, kept as arrays). The transformer keeps none: it
#: is fitted again from its saved network when loaded.
FITTED = {
    SensitivityTransformer: ((), ()),
    BoxRegressor: (("flips_", "n_features_in_"), ("coef_", "intercept_")),
    HeuristicBoxEstimator: (
        ("sigma_", "fraction_", "map_shape_", "n_features_in_", "grid_scores_"), ()),
    CenterBoxBaseline: ((), ("box_",)),
}
CLASSES = {cls.__name__: cls for cls in FITTED}


class LocalizerFileError(ValueError):
    """A file that is not a localizer this version can read; the message says what to do."""


def save_localizer(pipeline, path, *, box_scorer=None, record=None):
    """Save a fitted localizer pipeline as one self-contained file.

    The file holds the classifier itself (not a path to it), the map
    settings, the fitted box estimator and the versions it was made with, so
    that :func:`load_localizer` gives the same boxes on another machine, in
    another folder. No pickle is written.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        A fitted ``Pipeline`` of a :class:`SensitivityTransformer` and a box
        estimator (:class:`BoxRegressor`, :class:`HeuristicBoxEstimator` or
        :class:`CenterBoxBaseline`), e.g. a search's ``best_estimator_``.
    path : str or path-like
        The file to write, replaced atomically; ``.sensloc`` by convention.
    box_scorer : BoxScorer, optional
        The score of each box (:func:`fit_box_scorer`), fitted on maps and
        boxes alone; kept with the localizer for :func:`predict_photos`.
        Default: the pipeline's ``box_scorer_``, which a loaded localizer
        has, else none.
    record : dict, optional
        Anything JSON can hold that says how the localizer was made (training
        data, command line); kept in the file as it is.

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    ValueError
        For a pipeline that is not a fitted transformer and box estimator,
        or a setting that cannot be saved without code (a preprocessing
        function other than the named ones).

    Examples
    --------
    >>> import os, tempfile, numpy as np, keras
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn_sensloc import (BoxRegressor, SensitivityTransformer, load_localizer,
    ...                              save_localizer)
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
    ...                           keras.layers.Conv2D(4, 3, activation="relu")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3))
    >>> boxes = np.tile([0.2, 0.2, 0.8, 0.8], (8, 1))
    >>> pipe = make_pipeline(SensitivityTransformer(model=model, pool=2),
    ...                      BoxRegressor(random_state=0)).fit(images, boxes)
    >>> path = save_localizer(pipe, os.path.join(tempfile.mkdtemp(), "my.sensloc"))
    >>> loaded = load_localizer(path)
    >>> bool(np.allclose(loaded.predict(images), pipe.predict(images)))
    True
    """
    transformer, estimator = check_localizer(pipeline)
    if box_scorer is None:
        box_scorer = getattr(pipeline, "box_scorer_", None)
    _check_scorer(box_scorer, transformer)
    arrays = {}
    steps = []
    for name, step in pipeline.steps:
        params, fitted = _step_state(step, name, arrays)
        steps.append({"name": name, "class": type(step).__name__, "params": params,
                      "fitted": fitted})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(),
        "model": _model_record(transformer),
        "steps": steps,
        "box_scorer": None if box_scorer is None else box_scorer.to_dict(),
        "record": {} if record is None else record,
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode("utf-8")
    path = os.fspath(path)
    with tempfile.TemporaryDirectory() as scratch:
        model_name = MODEL if manifest["model"]["kind"] == "keras" else TORCH_MODEL
        model_file = os.path.join(scratch, model_name)
        network = transformer.gradient_engine().model
        if model_name == MODEL:
            network.save(model_file)
        else:
            import torch

            torch.save(network.state_dict(), model_file)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        from .._utils._atomic import atomic_file

        with atomic_file(path) as handle, zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(MANIFEST, manifest_bytes, zipfile.ZIP_DEFLATED)
            archive.writestr(ARRAYS, buffer.getvalue(), zipfile.ZIP_DEFLATED)
            # A .keras file is a zip itself: stored, not compressed again.
            archive.write(model_file, model_name, zipfile.ZIP_STORED)
    return path


def localizer_backend(path):
    """``"torch"`` when the localizer file at ``path`` holds a PyTorch classifier, else None.

    Reads the file's description only, without Keras: the command line sets
    Keras' backend from it before Keras is imported. A file it cannot read
    gives None; loading it says why.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
        return "torch" if manifest["model"]["kind"] == "torch" else None
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None


def load_localizer(path):
    """A fitted pipeline from a file written by :func:`save_localizer`.

    Nothing in the file is run as code: the settings and fitted values are
    JSON and numpy arrays read without pickle, and the classifier is loaded
    in Keras' safe mode. The pipeline predicts the same boxes as the one
    saved, and as ``sensloc predict`` with the same file.

    Parameters
    ----------
    path : str or path-like
        A localizer file.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Fitted: ``predict`` gives boxes at once. Its ``box_scorer_``
        attribute is the file's :class:`BoxScorer` (None if it has none),
        which :func:`predict_photos` uses, and ``localizer_record_`` holds the
        file's versions, model description and record.

    Raises
    ------
    LocalizerFileError
        A file that is not a localizer, is damaged or truncated, or was written
        by a version of sklearn-sensloc this one cannot read; one sentence says
        which and what to do.
    FileNotFoundError
        No file at ``path``.

    Examples
    --------
    >>> from sklearn_sensloc import load_localizer
    >>> pipe = load_localizer("my.sensloc")  # doctest: +SKIP
    >>> boxes = pipe.predict(["photo1.jpg", "photo2.jpg"])  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Localizer file not found: {path!r}.")
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = _read_manifest(archive, path)
            arrays = _read_arrays(archive, path)
            model = _read_model(archive, manifest["model"], path)
    except zipfile.BadZipFile as error:
        raise LocalizerFileError(_not_a_localizer(path, error)) from error
    except (EOFError, zipfile.LargeZipFile, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise LocalizerFileError(
            f"{path!r} is damaged or incomplete ({error}): copy the whole file again, or "
            "make it again with sensloc fit / save_localizer."
        ) from error
    steps = [_rebuild_step(entry, arrays, model, manifest, path) for entry in manifest["steps"]]
    (_, transformer), (_, estimator) = steps
    if getattr(estimator, "n_features_in_", transformer.n_features_out_) != \
            transformer.n_features_out_:
        raise LocalizerFileError(
            f"{path!r} does not hold a transformer whose maps its box estimator reads: the "
            "file is damaged; make it again with sensloc fit / save_localizer."
        )
    pipeline = Pipeline(steps)
    pipeline.box_scorer_ = _read_scorer(manifest["box_scorer"], transformer, path)
    pipeline.localizer_record_ = {key: manifest[key] for key in
                                  ("created", "versions", "model", "record")}
    return pipeline


def check_localizer(pipeline):
    """``(transformer, box estimator)`` of a fitted localizer pipeline; else a sentence why not."""
    if hasattr(pipeline, "best_estimator_"):
        raise ValueError(
            "save_localizer takes the fitted pipeline itself: pass search.best_estimator_ "
            "(refit=True), not the search."
        )
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise ValueError(
            "save_localizer takes a fitted Pipeline of two steps, a SensitivityTransformer and "
            f"a box estimator; got {type(pipeline).__name__}."
        )
    (_, transformer), (_, estimator) = pipeline.steps
    if not isinstance(transformer, SensitivityTransformer):
        raise ValueError(
            "The pipeline's first step must be a SensitivityTransformer; got "
            f"{type(transformer).__name__}."
        )
    if type(estimator) not in FITTED:
        names = ", ".join(cls.__name__ for cls in FITTED if cls is not SensitivityTransformer)
        raise ValueError(
            f"The pipeline's last step is a {type(estimator).__name__}; a localizer file holds "
            f"one of {names}."
        )
    check_is_fitted(transformer)
    check_is_fitted(estimator)
    return transformer, estimator


def _check_scorer(box_scorer, transformer):
    if box_scorer is None:
        return
    if not isinstance(box_scorer, BoxScorer):
        raise ValueError(f"box_scorer must be a fitted BoxScorer; got {type(box_scorer).__name__}.")
    check_is_fitted(box_scorer)
    if len(box_scorer.features_) != len(BOX_SCORE_FEATURES):
        raise ValueError(
            "This BoxScorer weighs the classifier's class probabilities, which predicting from "
            "a localizer file does not compute: fit it on maps and boxes alone."
        )
    if tuple(box_scorer.map_shape_) != tuple(transformer.map_shape_):
        raise ValueError(
            f"The BoxScorer reads {tuple(box_scorer.map_shape_)} maps, the transformer makes "
            f"{tuple(transformer.map_shape_)}: fit it on this localizer's maps."
        )


def _read_scorer(state, transformer, path):
    if state is None:
        return None
    try:
        scorer = BoxScorer.from_dict(state)
        _check_scorer(scorer, transformer)
    except ValueError as error:
        raise LocalizerFileError(
            f"{path!r} holds a box score this version cannot use ({error}); make the "
            "localizer again with sensloc fit / save_localizer."
        ) from error
    return scorer


def localizer_key(pipeline, box_scorer=None):
    """The identity of what a localizer predicts: equal keys, equal boxes and scores.

    The transformer's gradient key (network, target, preprocessing, size,
    method) with its map-side settings, the box estimator's class, parameters
    and fitted values, and the box score's weights.
    """
    transformer, estimator = check_localizer(pipeline)
    arrays = {}
    params, fitted = _step_state(estimator, "estimator", arrays)
    return fingerprint(transformer.gradient_key_, transformer.aggregation, transformer.pool,
                       transformer.normalize, type(estimator).__name__,
                       sorted(params.items()), sorted(fitted.items()),
                       None if box_scorer is None else sorted(box_scorer.to_dict().items()),
                       *(np.ascontiguousarray(arrays[name]).data for name in sorted(arrays)))


def _step_state(step, name, arrays):
    """``(params, fitted)`` of one step as JSON values; its arrays added to ``arrays``."""
    params = step.get_params(deep=False)
    if isinstance(step, SensitivityTransformer):
        from .._classifiers._torch_models import library_model

        params.pop("model")
        params.update(MACHINE_PARAMS)
        if not (library_model(step.model) is not None and step.preprocessing == "auto"):
            # A timm or torchvision classifier rebuilt by name declares its own again.
            params["preprocessing"] = _named_preprocessing(step)
    elif "random_state" in params and not (
        params["random_state"] is None or isinstance(params["random_state"], Integral)
    ):
        # A RandomState instance seeds a fit, not a prediction: nothing to keep.
        params["random_state"] = None
    json_attributes, array_attributes = FITTED[type(step)]
    fitted = {attribute: _json_value(getattr(step, attribute)) for attribute in json_attributes
              if hasattr(step, attribute)}
    for attribute in array_attributes:
        arrays[f"{name}/{attribute}"] = np.asarray(getattr(step, attribute))
    return {key: _json_value(value) for key, value in params.items()}, fitted


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    return value


def _named_preprocessing(transformer):
    """The transformer's preprocessing as a name: a function is matched to the named ones.

    A file must not hold code, so a preprocessing function is saved as the
    named preprocessing it equals on a probe batch (Keras'
    ``mobilenet.preprocess_input`` is ``"tf"``), or refused.
    """
    preprocessing = transformer.preprocessing_
    if isinstance(preprocessing, str):
        return preprocessing
    from keras import ops

    from .._images._preprocessing import PREPROCESSORS, preprocessor

    probe = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    given = ops.convert_to_numpy(preprocessor(preprocessing)(probe))
    for name, function in PREPROCESSORS.items():
        expected = ops.convert_to_numpy(function(ops.convert_to_tensor(probe)))
        if given.shape == expected.shape and np.allclose(given, expected, rtol=1e-5, atol=1e-4):
            return name
    from .._classifiers._models import preprocessing_label

    raise ValueError(
        f"The preprocessing function {preprocessing_label(preprocessing)} equals none of the "
        f"named ones ({', '.join(PREPROCESSORS)}), and a localizer file holds no code: pass "
        "the name it stands for, or put its arithmetic in the model (a keras.layers.Rescaling "
        "or Normalization layer) and preprocessing='none', then fit and save again."
    )


def _model_record(transformer):
    """How the network is kept, and what it was: name, file or object, weights file.

    ``kind`` is ``"keras"`` (a ``.keras`` file) or ``"torch"`` (a timm or
    torchvision name, ``library_model``, and its state dict). A PyTorch
    module of the user's own is refused: its architecture is Python code.
    """
    from .._classifiers._models import preprocessing_label, registered_name
    from .._classifiers._torch_models import is_torch_module, library_model

    model, weights = transformer.model, transformer.weights
    described = {"kind": "keras"}
    if library_model(model) is not None:
        described = {"kind": "torch", "library_model": model}
    elif is_torch_module(model):
        raise ValueError(
            f"The classifier is a PyTorch module of your own ({type(model).__name__}), whose "
            "architecture is Python code, which a localizer file does not hold: save its state "
            "dict (torch.save(module.state_dict(), PATH)) and pickle the pipeline yourself, or "
            "use a timm or torchvision classifier by name (model='timm:NAME', weights=PATH), "
            "which a localizer file holds."
        )
    elif registered_name(model) is not None:
        described["name"] = registered_name(model)
    elif isinstance(model, (str, os.PathLike)):
        described["file"] = os.path.basename(os.fspath(model))
    else:
        described["keras_model"] = transformer.gradient_engine().model.name
    if weights is not None:
        described["weights_file"] = os.path.basename(os.fspath(weights))
    described.update(target=transformer.target_name_, input_size=list(transformer.input_size_),
                     preprocessing=preprocessing_label(transformer.preprocessing_))
    return described


def _versions():
    import keras
    import sklearn

    from .._engine import backend_version
    from .._version import __version__

    return {"sklearn-sensloc": __version__, "keras": keras.__version__,
            "keras_backend": backend_version(), "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


# --------------------------------------------------------------------------- reading


def _member(archive, name, path, limit):
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise LocalizerFileError(
            f"{path!r} is a zip archive without {name}: it is not a complete localizer file. "
            "Make it again with sensloc fit / save_localizer."
        ) from None
    if info.file_size > limit:
        raise LocalizerFileError(
            f"{path!r} claims a {name} of {info.file_size} bytes, more than a localizer holds "
            f"({limit}): it is not a localizer file this package wrote."
        )
    return info


def _read_manifest(archive, path):
    if MANIFEST not in archive.namelist():
        raise LocalizerFileError(_not_a_localizer(path, archive=archive))
    info = _member(archive, MANIFEST, path, MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(archive.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LocalizerFileError(
            f"{path!r} has an unreadable {MANIFEST} ({error}): the file is damaged; make it "
            "again with sensloc fit / save_localizer."
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LocalizerFileError(_not_a_localizer(path, archive=archive))
    version = manifest.get("format_version")
    written_by = manifest.get("versions", {}).get("sklearn-sensloc", "an unknown version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        from .._version import __version__

        raise LocalizerFileError(
            f"{path!r} was written by sklearn-sensloc {written_by} in localizer format "
            f"{version!r}; this is sklearn-sensloc {__version__}, which reads format "
            f"{FORMAT_VERSION}: upgrade sklearn-sensloc (pip install -U sklearn-sensloc)."
        )
    steps = manifest.get("steps")
    if (not isinstance(steps, list) or len(steps) != 2
            or not all(isinstance(step, dict) for step in steps)
            or steps[0].get("class") != SensitivityTransformer.__name__
            or steps[1].get("class") == SensitivityTransformer.__name__):
        raise LocalizerFileError(
            f"{path!r} does not describe a transformer and a box estimator: the file is damaged "
            "or was not written by save_localizer."
        )
    for key in ("created", "versions", "model", "box_scorer", "record"):
        manifest.setdefault(key, None)
    return manifest


def _read_arrays(archive, path):
    info = _member(archive, ARRAYS, path, MAX_MEMBER_BYTES)
    try:
        with np.load(io.BytesIO(archive.read(info)), allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except ValueError as error:
        # numpy refuses object arrays without pickle: a file made to run code.
        raise LocalizerFileError(
            f"{path!r} holds arrays that are not plain numbers ({error}); a localizer file "
            "never does. It was not written by save_localizer: do not use it."
        ) from error


@contextlib.contextmanager
def _extracted(archive, name, path):
    """The member ``name`` copied to a temporary file of that name, removed after."""
    info = _member(archive, name, path, MAX_MEMBER_BYTES)
    with tempfile.TemporaryDirectory() as scratch:
        extracted = os.path.join(scratch, name)
        with archive.open(info) as source, open(extracted, "wb") as target:
            shutil.copyfileobj(source, target)
        yield extracted


def _read_model(archive, described, path):
    """The classifier of the file, from a temporary copy: Keras' safe mode, or a state dict."""
    import keras

    if isinstance(described, dict) and described.get("kind") == "torch":
        return _read_torch_model(archive, described.get("library_model"), path)
    with _extracted(archive, MODEL, path) as model_file:
        try:
            return keras.saving.load_model(model_file, compile=False, safe_mode=True)
        except Exception as error:
            first_line = " ".join(str(error).splitlines()[0].split()) if str(error) else ""
            raise LocalizerFileError(
                f"The classifier in {path!r} cannot be loaded in Keras' safe mode "
                f"({type(error).__name__}: {first_line}): the file is damaged, holds code, or "
                "needs a newer Keras; make it again with sensloc fit / save_localizer."
            ) from error


def _read_torch_model(archive, name, path):
    """A timm or torchvision classifier built by name, filled with the file's state dict."""
    from .._classifiers._torch_models import (
        build_library_model,
        check_torch_backend,
        library_model,
        load_state_dict,
    )

    if library_model(name) is None:
        raise LocalizerFileError(
            f"{path!r} names its PyTorch classifier {name!r}, not a timm or torchvision name: "
            "the file is damaged or was not written by save_localizer."
        )
    try:
        check_torch_backend(f"The classifier of {path!r}, {name},")
    except ValueError as error:
        raise LocalizerFileError(str(error)) from None
    with _extracted(archive, TORCH_MODEL, path) as state_file:
        try:
            return build_library_model(name, load_state_dict(state_file))
        except (ValueError, ImportError) as error:
            raise LocalizerFileError(
                f"The classifier in {path!r} ({name}) cannot be rebuilt: {error}"
            ) from error


def _not_a_localizer(path, error=None, archive=None):
    if archive is not None and {"config.json", "model.weights.h5"} <= set(archive.namelist()):
        kind = "a Keras model file (.keras): pass it to sensloc fit as --model to make a localizer"
    elif archive is not None:
        kind = "a zip archive, but not a localizer file"
    else:
        with open(path, "rb") as handle:
            head = handle.read(8)
        if head.startswith(b"\x89HDF"):
            kind = ("an HDF5 file (weights?): pass it to sensloc fit as --weights, with its "
                    "architecture as --model, to make a localizer")
        elif head.startswith(b"PK"):
            kind = f"a damaged or truncated zip archive ({error})"
        elif head.startswith(b"\x80"):
            kind = "a Python pickle, which this package never loads"
        elif not head:
            kind = "empty"
        else:
            kind = "not a zip archive"
    return (f"{path!r} is {kind}. A localizer file is made by sensloc fit or "
            "save_localizer.")


def _rebuild_step(entry, arrays, model, manifest, path):
    """``(name, estimator)``: one step built from its class name, parameters and fitted values."""
    name, class_name = entry.get("name"), entry.get("class")
    cls = CLASSES.get(class_name)
    if cls is None or not isinstance(name, str):
        raise LocalizerFileError(
            f"{path!r} names a step {class_name!r}, which is not an estimator a localizer holds "
            f"({', '.join(CLASSES)}): the file was not written by save_localizer."
        )
    params = dict(entry.get("params") or {})
    unknown = sorted(set(params) - set(cls().get_params(deep=False)))
    if unknown:
        written_by = (manifest["versions"] or {}).get("sklearn-sensloc", "another version")
        raise LocalizerFileError(
            f"{path!r} sets {class_name} parameter(s) {', '.join(unknown)}, which this "
            f"sklearn-sensloc does not know: it was written by sklearn-sensloc {written_by}; "
            "upgrade sklearn-sensloc (pip install -U sklearn-sensloc)."
        )
    if cls is SensitivityTransformer:
        params["model"] = model
    try:
        if cls is not SensitivityTransformer:
            validate_parameter_constraints(cls._parameter_constraints, params, class_name)
        estimator = cls(**params)
    except (InvalidParameterError, TypeError) as error:
        raise LocalizerFileError(
            f"{path!r} holds an invalid {class_name} setting ({error}): the file is damaged "
            "or was not written by save_localizer."
        ) from error
    if cls is SensitivityTransformer:
        try:
            return name, estimator.fit(None)
        except (ValueError, TypeError) as error:
            raise LocalizerFileError(
                f"{path!r} holds a classifier its settings do not fit ({error}): the file is "
                "damaged; make it again with sensloc fit / save_localizer."
            ) from error
    json_attributes, array_attributes = FITTED[cls]
    fitted = entry.get("fitted") or {}
    for attribute in json_attributes:
        if attribute in fitted:
            value = fitted[attribute]
            setattr(estimator, attribute, tuple(value) if attribute == "map_shape_" else value)
    for attribute in array_attributes:
        key = f"{name}/{attribute}"
        if key not in arrays:
            raise LocalizerFileError(
                f"{path!r} lacks the fitted {class_name}.{attribute}: the file is damaged; make "
                "it again with sensloc fit / save_localizer."
            )
        setattr(estimator, attribute, arrays[key])
    _check_fitted_shapes(estimator, path)
    return name, estimator


def _check_fitted_shapes(estimator, path):
    """Refuse fitted values that ``predict`` could not use as they are."""
    if isinstance(estimator, BoxRegressor):
        n_features = estimator.n_features_in_
        good = (isinstance(n_features, int) and estimator.coef_.shape == (4, n_features)
                and estimator.intercept_.shape == (4,)
                and estimator.coef_.dtype.kind == estimator.intercept_.dtype.kind == "f")
    elif isinstance(estimator, CenterBoxBaseline):
        good = estimator.box_.shape == (4,) and estimator.box_.dtype.kind == "f"
    else:
        shape = getattr(estimator, "map_shape_", None)
        good = (isinstance(shape, tuple) and len(shape) == 2
                and all(isinstance(side, int) and side > 0 for side in shape)
                and estimator.n_features_in_ == shape[0] * shape[1])
    if not good:
        raise LocalizerFileError(
            f"{path!r} holds a {type(estimator).__name__} whose fitted values do not fit "
            "together: the file is damaged; make it again with sensloc fit / save_localizer."
        )
