"""PyTorch classifiers: modules, ``"timm:NAME"`` and ``"torchvision:NAME"``, state dict files.

Nothing here imports torch, timm or torchvision before a PyTorch model is
asked for: a module can only exist once torch is imported, and a name loads
its library when it is built. A module may declare its input size and
preprocessing the way timm's models do, with a ``pretrained_cfg`` dict
(``input_size``, ``mean``, ``std``, ``fixed_input_size``); models built from a
torchvision name get one from their weights' documented transforms.
"""

import difflib
import functools
import os
import sys
import warnings

from .._images._preprocessing import IMAGENET_MEAN, IMAGENET_STD, normalized
from .._utils._identity import fingerprint

#: The libraries whose classifiers ``model="LIBRARY:NAME"`` builds.
LIBRARIES = ("timm", "torchvision")

#: State dict files read with ``torch.load(..., weights_only=True)``, or safetensors.
STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

EXTRA = "pip install 'sklearn-sensloc[torch]'"


def is_torch_module(model):
    """Whether ``model`` is a PyTorch module and not a Keras one; imports nothing.

    Under Keras' PyTorch backend every Keras layer and model is also a
    ``torch.nn.Module``: those are Keras models here.
    """
    torch, keras = sys.modules.get("torch"), sys.modules.get("keras")
    return (torch is not None and isinstance(model, torch.nn.Module)
            and not (keras is not None and isinstance(model, keras.Layer)))


def library_model(model):
    """``("timm", "resnet50")`` for ``model="timm:resnet50"``, None for any other value."""
    if not isinstance(model, str) or ":" not in model:
        return None
    library, _, name = model.partition(":")
    return (library, name) if library in LIBRARIES else None


def check_torch_backend(what):
    """Refuse a PyTorch model unless Keras runs on PyTorch, in one sentence that says what to do."""
    import keras

    backend = keras.backend.backend()
    if backend != "torch":
        raise ValueError(
            f"{what} is a PyTorch model, which runs on Keras' PyTorch backend only, and Keras "
            f"runs on {backend!r}: set the environment variable KERAS_BACKEND=torch before "
            "keras (or sklearn_sensloc) is first imported."
        )


def check_library_model(model, weights=None):
    """Refuse a ``"LIBRARY:NAME"`` and ``weights`` that cannot load, without building anything."""
    library, name = library_model(model)
    check_torch_backend(f"model={model!r}")
    known = _known_names(library)
    if _architecture(library, name) not in known:
        close = difflib.get_close_matches(_architecture(library, name), known, n=1)
        hint = f" (did you mean {library}:{close[0]}?)" if close else ""
        raise ValueError(
            f"model={model!r}: {library} has no classifier called {name!r}{hint}; "
            f"{library} lists its classifiers with "
            + ("timm.list_models()." if library == "timm"
               else "torchvision.models.list_models(torchvision.models).")
        )
    if weights is None:
        return
    path = os.fspath(weights)
    if not path.endswith(STATE_DICT_SUFFIXES):
        raise ValueError(
            f"weights={path!r} for {model} must be a state dict file ({', '.join(STATE_DICT_SUFFIXES)}): "
            "torch.save(module.state_dict(), PATH) or safetensors' save_file."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Weights file not found: {path!r}.")


def _library(library):
    try:
        return __import__(library)
    except ImportError as error:
        raise ImportError(
            f"model='{library}:...' needs {library}: {EXTRA} ({error})."
        ) from error


def _known_names(library):
    module = _library(library)
    if library == "timm":
        return module.list_models()
    # Classifiers only: torchvision also lists its detection and video models.
    return module.models.list_models(module=module.models)


def _architecture(library, name):
    # timm names may carry a pretrained tag: "vit_small_patch16_224.augreg_in21k_ft_in1k".
    return name.split(".", 1)[0] if library == "timm" else name


def build_library_model(model, weights=None):
    """The module that ``model="timm:NAME"`` or ``"torchvision:NAME"`` names, in eval mode.

    Parameters
    ----------
    model : str
        ``"timm:NAME"`` (a timm model name, with or without a pretrained
        tag) or ``"torchvision:NAME"`` (a torchvision classifier).
    weights : str, path, mapping or None
        A state dict: a file (``.pth``, ``.pt``, ``.bin`` read with
        ``torch.load(..., weights_only=True)``; ``.safetensors``) or a
        mapping of names to tensors. A state dict whose classifier has
        another number of classes (a fine-tuned head) builds the model with
        that many. None: the library's pretrained weights, downloaded (with
        the size announced) unless cached.

    Returns
    -------
    module : torch.nn.Module
        On Keras' default device, with a timm-style ``pretrained_cfg`` that
        says its input size and normalization.
    """
    library, name = library_model(model)
    check_library_model(model, None if weights is None or not _is_path(weights) else weights)
    build = _build_timm if library == "timm" else _build_torchvision
    if weights is None:
        module = _downloading(model, lambda: build(name, pretrained=True))
    else:
        state = load_state_dict(weights) if _is_path(weights) else dict(weights)
        source = f"Weights file {os.fspath(weights)!r}" if _is_path(weights) else "The state dict"
        module = build(name, pretrained=False)
        classes = _classifier_classes(module, state)
        if classes is not None:
            module = build(name, pretrained=False, num_classes=classes)
        load_into(module, state, f"{source} does not fit {model}")
    import keras

    # Where Keras puts tensors: the GPU when PyTorch sees one.
    device = keras.ops.convert_to_tensor(0.0).device
    return module.to(device).eval()


def _is_path(weights):
    return isinstance(weights, (str, os.PathLike))


def _build_timm(name, *, pretrained, **options):
    timm = _library("timm")
    if pretrained:
        _announce_timm_download(timm, name)
    return timm.create_model(name, pretrained=pretrained, **options)


def _announce_timm_download(timm, name):
    import torch

    with torch.device("meta"):
        # No memory and no download: the architecture alone, for its size.
        skeleton = timm.create_model(name, pretrained=False)
    hub_id = skeleton.pretrained_cfg.get("hf_hub_id")
    if hub_id and _hub_cached(hub_id):
        return
    megabytes = sum(p.numel() for p in skeleton.parameters()) * 4 / 1e6
    _announce(f"timm:{name}", f"about {megabytes:.0f} MB (its parameters as float32)",
              f"from the Hugging Face Hub ({hub_id})" if hub_id else "")


def _hub_cached(hub_id):
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(hub_id, filename), str)
               for filename in ("model.safetensors", "pytorch_model.bin"))


def _build_torchvision(name, *, pretrained, **options):
    models = _library("torchvision").models
    documented = models.get_model_weights(name).DEFAULT
    if pretrained:
        import torch

        cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(documented.url))
        if not os.path.isfile(cached):
            megabytes = documented.meta.get("_file_size")
            _announce(f"torchvision:{name}", f"{megabytes:.0f} MB" if megabytes else "a file",
                      f"({documented})")
    module = models.get_model(name, weights=documented if pretrained else None, **options)
    transforms = documented.transforms()
    # The preprocessing torchvision documents for the weights, in timm's terms.
    module.pretrained_cfg = {
        "input_size": (3, *_pair(transforms.crop_size)),
        "mean": tuple(transforms.mean),
        "std": tuple(transforms.std),
        "interpolation": transforms.interpolation.value,
    }
    return module


def _pair(size):
    size = list(size)
    return (size[0], size[-1])


def _announce(model, size, origin):
    warnings.warn(
        f"model={model!r} downloads its pretrained weights now: {size} {origin} (once). "
        "Pass weights=PATH to a state dict file you have.",
        UserWarning,
        stacklevel=5,
    )


def _downloading(model, build):
    try:
        return build()
    except Exception as error:
        if _is_download_failure(error):
            raise ConnectionError(
                f"Cannot download the pretrained weights of {model!r}: {first_line(error)}. "
                f"No network? Pass weights=PATH (--weights PATH) to a state dict file "
                f"({', '.join(STATE_DICT_SUFFIXES)}) of this architecture."
            ) from error
        raise


def _is_download_failure(error):
    # Network errors are OSErrors (urllib, requests, sockets, the Hub's cache
    # misses) or httpx's ConnectError / TimeoutException, often chained.
    while error is not None:
        if isinstance(error, OSError) or any(
            word in type(error).__name__ for word in ("Connect", "Timeout", "Offline")
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def load_state_dict(path):
    """The state dict in the file ``path``: ``.safetensors``, or a torch file read without code."""
    path = os.fspath(path)
    import torch

    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as error:
        raise ImportError(f"Reading {path!r} needs safetensors: {EXTRA}.") from error
    except Exception as error:
        raise ValueError(
            f"Cannot read the state dict file {path!r}: {first_line(error)} (it is read with "
            "torch.load(weights_only=True), which runs no code: save module.state_dict(), "
            "not the module)."
        ) from error
    # A training checkpoint keeps the state dict under a key of its own.
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path!r} holds no state dict (a mapping of parameter names to tensors): save "
            "module.state_dict() with torch.save or safetensors."
        )
    return state


def _classifier_classes(module, state):
    """The file's number of classes, where only its classifier's differs from the module's."""
    expected = module.state_dict()
    weights = [key for key in expected if key.endswith("weight")]
    if not weights or weights[-1] not in state:
        return None
    found, built = tuple(state[weights[-1]].shape), tuple(expected[weights[-1]].shape)
    if found != built and found[1:] == built[1:]:
        return found[0]
    return None


def load_into(module, state, problem):
    """``module.load_state_dict(state)``, a mismatch told by its first key, after ``problem``."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"{problem}: it has no {key!r}, which the model needs.")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{problem}: {key!r} is {tuple(state[key].shape)} there and "
                f"{tuple(tensor.shape)} in the model."
            )
    extra = [key for key in state if key not in expected]
    if extra:
        raise ValueError(f"{problem}: it has {extra[0]!r}, which the model lacks.")
    module.load_state_dict(state)


def data_config(module):
    """The timm-style ``pretrained_cfg`` a module declares, or None."""
    config = getattr(module, "pretrained_cfg", None)
    return config if isinstance(config, dict) else None


def declared_input_size(module):
    """``((height, width), fixed)`` that the module's ``pretrained_cfg`` says; None without one."""
    config = data_config(module)
    if config is None or "input_size" not in config:
        return None
    return tuple(config["input_size"][1:]), bool(config.get("fixed_input_size", False))


def declared_preprocessing(module):
    """The normalization the module's ``pretrained_cfg`` says, as a preprocessing callable; or None."""
    config = data_config(module)
    if config is None:
        return None
    mean = tuple(float(m) for m in config.get("mean", IMAGENET_MEAN))
    std = tuple(float(s) for s in config.get("std", IMAGENET_STD))
    return functools.partial(normalized, mean=mean, std=std)


def module_fingerprint(module):
    """Architecture and every tensor of ``module``'s state dict."""
    import torch

    parts = []
    for key, tensor in module.state_dict().items():
        # Bytes of any dtype, bfloat16 included, which numpy lacks.
        data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        parts += [key, tuple(tensor.shape), str(tensor.dtype), data.numpy().data]
    return fingerprint("torch module", type(module).__module__, type(module).__qualname__,
                       repr(module), *parts)


def weights_checksum(module):
    """A cheap checksum of the module's state: the sum of each tensor."""
    return tuple(float(tensor.detach().float().sum()) for tensor in module.state_dict().values())


def library_fingerprint(model, weights_key):
    """The key of ``"LIBRARY:NAME"`` with a weights file's key, or its library's version."""
    from importlib.metadata import version

    library, name = library_model(model)
    return fingerprint("torch library model", library, name,
                       weights_key if weights_key is not None else ("pretrained", version(library)))


def first_line(error):
    """An error's first line, spaces collapsed, without a final period; else its type's name."""
    text = str(error)
    return " ".join(text.splitlines()[0].split()).rstrip(".") if text.strip() else type(error).__name__
