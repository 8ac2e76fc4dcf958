"""PyTorch classifiers: a ``torch.nn.Module``, ``"timm:NAME"`` and ``"torchvision:NAME"``.

The tests marked ``torch_modules`` run under ``KERAS_BACKEND=torch`` only:
tests/test_backends.py runs them in a subprocess (conftest.py deselects them
under another backend). The others check, under TensorFlow, that a PyTorch
model is refused there. Every model has random weights; nothing is downloaded.
"""

import os
import pickle
import socket
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from torch import nn

from sklearn_sensloc import BoxRegressor, CorLocScorer, SensitivityTransformer, gradient_cache

torch_only = pytest.mark.torch_modules

SHARED_MOBILENET = (Path(os.environ.get("SENSLOC_SHARED_DATA",
                                        Path(__file__).resolve().parents[2] / "shared" / "data"))
                    / "mobilenet-v1-0.25")
SIZE = 16
METHODS = ["gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam"]


class TinyNet(nn.Module):
    """A user's own classifier: convolutions, batch norm, dropout and a head of its own."""

    def __init__(self, n_classes=3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(6, n_classes)

    def forward(self, x):
        return self.head(self.dropout(self.pool(self.body(x)).flatten(1)))


class SoftmaxNet(nn.Module):
    """A classifier that ends in a softmax, as a Keras model may."""

    def __init__(self):
        super().__init__()
        self.net = TinyNet()
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        return self.softmax(self.net(x))


def tiny_net(seed=0, cls=TinyNet):
    torch.manual_seed(seed)
    net = cls()
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, nn.BatchNorm2d):
                # Statistics that are not the identity: eval mode must use them.
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
    return net


def images(n=3, size=SIZE, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def raw(model, images_, **params):
    """Signed-free raw attributions (n, H, W, 3) of the transformer's engine."""
    params = {"preprocessing": "tf", "cache": False, "image_size": images_.shape[1:3], **params}
    return SensitivityTransformer(model=model, **params).fit(None).gradient_engine()(images_)


def nchw(images_):
    """The module's input by hand: preprocessed ("tf"), channels first, differentiable."""
    pixels = torch.tensor(images_, requires_grad=True)
    return pixels, (pixels / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


def output_of(module, layer, inputs):
    found = []
    handle = layer.register_forward_hook(lambda _, args, output: found.append(output))
    module(inputs)
    handle.remove()
    return found[0]


def by_hand(module, images_, target):
    """|d target / d pixel| with torch.autograd.grad on the module in eval mode."""
    module.eval()
    pixels, inputs = nchw(images_)
    if target == "class":
        values = module(inputs).max(1).values
    elif isinstance(target, int):
        values = module(inputs)[:, target]
    else:
        values = output_of(module, target, inputs).flatten(1).mean(1)
    (gradient,) = torch.autograd.grad(values.sum(), pixels)
    return gradient.abs().numpy()


def assert_maps_equal(found, expected):
    scale = np.abs(expected).max()
    assert scale > 0
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.fixture(autouse=True)
def empty_cache():
    gradient_cache.clear()
    yield
    gradient_cache.clear()


@torch_only
@pytest.mark.parametrize("target", ["class", 2, "gestalt", "body.2"])
def test_gradient_maps_equal_autograd_by_hand(target):
    net, x = tiny_net(), images()
    layer = {"gestalt": net.body[3], "body.2": net.body[2]}.get(target, target)
    assert_maps_equal(raw(net, x, target=target), by_hand(net, x, layer))


@torch_only
def test_other_methods_equal_their_definitions_by_hand():
    net, x = tiny_net(), images(2)
    net.eval()
    pixels, inputs = nchw(x)
    (gradient_u,) = torch.autograd.grad(net(inputs)[:, 1].sum(), inputs)
    expected = (gradient_u * inputs).abs().permute(0, 2, 3, 1).detach().numpy()
    assert_maps_equal(raw(net, x, target=1, method="gradient_x_input"), expected)

    n_samples = 4
    midpoints = (np.arange(n_samples) + 0.5) / n_samples
    total = sum(_signed(net, np.float32(alpha) * x, 1) for alpha in midpoints)
    expected = np.abs(x * total / n_samples)
    assert_maps_equal(raw(net, x, target=1, method="integrated_gradients", n_samples=n_samples),
                      expected)
    # Without noise, SmoothGrad is the gradient.
    assert_maps_equal(raw(net, x, target=1, method="smoothgrad", noise_level=0.0, n_samples=2),
                      by_hand(net, x, 1))


def _signed(module, images_, target):
    pixels, inputs = nchw(images_)
    (gradient,) = torch.autograd.grad(module(inputs)[:, target].sum(), pixels)
    return gradient.numpy()


@torch_only
def test_gradcam_equals_its_definition_by_hand():
    net, x = tiny_net(), images(2)
    net.eval()
    _, inputs = nchw(x)
    activations = output_of(net, net.body[3], inputs)
    scores = net.head(net.pool(net.body[4](activations)).flatten(1))
    (gradient,) = torch.autograd.grad(scores[:, 0].sum(), activations)
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    heat = torch.relu((weights * activations).sum(1, keepdim=True)).permute(0, 2, 3, 1)
    expected = np.repeat(heat.detach().numpy(), 3, axis=-1)  # already at the input size
    assert_maps_equal(raw(net, x, target=0, method="gradcam"), expected)


@torch_only
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target", ["gestalt", "class", 1, "body.3"])
def test_every_method_and_target_runs_and_leaves_the_module_as_it_was(method, target):
    net = tiny_net(seed=1)
    net.train()
    net.body[1].eval()  # a frozen batch norm: its own flag is kept
    flags = [layer.training for layer in net.modules()]
    state = {key: value.clone() for key, value in net.state_dict().items()}
    sens = SensitivityTransformer(model=net, preprocessing="tf", method=method, target=target,
                                  n_samples=2, pool=2).fit(None)
    first = sens.transform(images())
    assert first.shape == (3, (224 // 2) ** 2) and np.isfinite(first).all() and first.max() > 0
    gradient_cache.clear()
    # Eval mode: dropout off, batch norm's running statistics; the same maps again.
    np.testing.assert_array_equal(sens.transform(images()), first)
    assert [layer.training for layer in net.modules()] == flags
    assert all(parameter.grad is None for parameter in net.parameters())
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


@torch_only
def test_gradcam_hooks_its_layer_for_its_own_thread_only():
    net = tiny_net().eval()
    network = SensitivityTransformer(model=net, preprocessing="tf").fit(None).gradient_engine()._network
    x = torch.from_numpy(images(2)).permute(0, 3, 1, 2) / 127.5 - 1.0
    with torch.no_grad():
        plain = net(x)
        elsewhere = []
        with network.adding_to_output("body.3", torch.ones(2, SIZE, SIZE, 6)) as outputs:
            other = threading.Thread(target=lambda: elsewhere.append(net(x)))
            other.start()
            other.join()
            assert outputs == []
            shifted = net(x)
        assert len(outputs) == 1
        torch.testing.assert_close(elsewhere[0], plain, rtol=0, atol=0)
        assert (shifted - plain).abs().max() > 1e-3
        torch.testing.assert_close(net(x), plain, rtol=0, atol=0)
    assert not net.body[3]._forward_hooks


@torch_only
def test_the_module_runs_on_the_device_of_its_parameters():
    net = tiny_net()
    engine = SensitivityTransformer(model=net, preprocessing="tf").fit(None).gradient_engine()
    assert engine._network.device == str(next(net.parameters()).device) == "cpu"
    assert engine(images(1, size=224)).shape == (1, 224, 224, 3)


@torch_only
def test_a_module_declares_no_size_so_images_take_image_size():
    sens = SensitivityTransformer(model=tiny_net(), preprocessing="tf", image_size=(20, 24), pool=1)
    assert sens.fit(None).transform(images(2, size=32)).shape == (2, 20 * 24)
    assert SensitivityTransformer(model=tiny_net(), preprocessing="tf").fit(None).input_size_ == (224, 224)


@torch_only
def test_auto_preprocessing_warns_for_a_bare_module_and_uses_a_declared_one():
    with pytest.warns(UserWarning, match=r"Module TinyNet declares no preprocessing.*'torch'"):
        sens = SensitivityTransformer(model=tiny_net()).fit(None)
    assert sens.preprocessing_ == "none"
    declared = tiny_net()
    declared.pretrained_cfg = {"input_size": (3, 20, 20), "mean": (0.5,) * 3, "std": (0.25,) * 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sens = SensitivityTransformer(model=declared).fit(None)
    assert sens.input_size_ == (20, 20)
    assert sens.preprocessing_.keywords == {"mean": (0.5,) * 3, "std": (0.25,) * 3}
    pixels = np.full((1, 2, 2, 3), 255.0)
    np.testing.assert_allclose(np.asarray(sens.preprocessing_(pixels)), 2.0)


@torch_only
def test_class_scores_are_the_logits_before_a_final_softmax():
    net = tiny_net(cls=SoftmaxNet)
    x = images(2)
    logit = SensitivityTransformer(model=net, target=1, preprocessing="tf", cache=False).fit(None)
    assert logit.target_name_ == "logit of class 1"
    assert_maps_equal(logit.gradient_engine()(x), by_hand(net.net, x, 1))
    with pytest.warns(UserWarning, match="ends in a softmax and class_score='output'"):
        output = SensitivityTransformer(model=net, target=1, preprocessing="tf",
                                        class_score="output").fit(None)
    assert output.target_name_ == "probability of class 1"
    assert not np.allclose(output.gradient_engine()(x), logit.gradient_engine()(x))


@torch_only
def test_bad_targets_say_what_to_pass():
    net = tiny_net()
    with pytest.raises(ValueError, match=r"Unknown target 'body\.9'.*close: 'body\.4'"):
        SensitivityTransformer(model=net, target="body.9", preprocessing="tf").fit(None)
    with pytest.raises(ValueError, match=r"out of range for a model with 3 classes"):
        SensitivityTransformer(model=net, target=3, preprocessing="tf").fit(None)
    with pytest.raises(ValueError, match=r"Grad-CAM needs a layer with a spatial output.*'head' "
                                         r"of module TinyNet outputs \(1, 3\).*'body\.3', 'body\.0'"):
        SensitivityTransformer(model=net, target="head", method="gradcam", preprocessing="tf").fit(None)
    with pytest.raises(ValueError, match=r"cannot run on a batch of shape \(1, 3, 224, 224\)"):
        SensitivityTransformer(model=nn.Linear(4, 2), target="class", preprocessing="tf").fit(None)


def save_state(module, path):
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(module.state_dict(), str(path))
    else:
        torch.save(module.state_dict(), path)
    return str(path)


@torch_only
@pytest.mark.parametrize("name, suffix", [("timm:resnet10t", ".pth"),
                                          ("timm:vit_tiny_patch16_224", ".safetensors"),
                                          ("torchvision:squeezenet1_1", ".pt")])
def test_library_names_load_a_state_dict_and_their_documented_preprocessing(name, suffix, tmp_path):
    from sklearn_sensloc._classifiers._torch_models import build_library_model

    torch.manual_seed(0)
    built = build_library_model(name, _random_state(name))
    path = save_state(built, tmp_path / f"weights{suffix}")
    x = images(2, size=40)
    sens = SensitivityTransformer(model=name, weights=path, target="class", pool=1,
                                  normalize=None, cache=False).fit(None)
    config = built.pretrained_cfg
    size = tuple(config["input_size"][1:])
    assert sens.input_size_ == size
    # By hand: the library's normalization, the module, torch.autograd.grad.
    resized = np.stack([_resized(image, size) for image in x]).astype(np.float32)
    pixels = torch.tensor(resized, requires_grad=True)
    mean, std = torch.tensor(config["mean"]), torch.tensor(config["std"])
    inputs = ((pixels / 255.0 - mean) / std).permute(0, 3, 1, 2).contiguous()
    built.eval()
    (gradient,) = torch.autograd.grad(built(inputs).max(1).values.sum(), pixels)
    expected = gradient.abs().amax(-1).reshape(2, -1).numpy()
    assert_maps_equal(sens.transform(x), expected)


def _random_state(name):
    """A random state dict for ``name``, made without a download."""
    library, arch = name.split(":")
    if library == "timm":
        import timm

        return timm.create_model(arch, pretrained=False).state_dict()
    import torchvision

    return torchvision.models.get_model(arch, weights=None).state_dict()


def _resized(image, size):
    from sklearn_sensloc._images._batches import ImageSource

    return ImageSource(image[None]).image(0, size)


@torch_only
def test_a_vit_has_a_token_gestalt_and_gradcam_names_the_layers_it_could_use(tmp_path):
    from sklearn_sensloc._classifiers._torch_models import build_library_model

    torch.manual_seed(0)
    path = save_state(build_library_model("timm:vit_tiny_patch16_224", _random_state(
        "timm:vit_tiny_patch16_224")), tmp_path / "vit.pth")
    sens = SensitivityTransformer(model="timm:vit_tiny_patch16_224", weights=path).fit(None)
    assert sens.target_name_ == "gestalt total of 'norm'"
    assert sens.transform(images(1, size=224)).std() > 0
    with pytest.raises(ValueError, match=r"image_size=\(128, 128\) conflicts with the model's "
                                         r"fixed input size \(224, 224\)"):
        SensitivityTransformer(model="timm:vit_tiny_patch16_224", weights=path,
                               image_size=(128, 128)).fit(None)
    with pytest.raises(ValueError, match=r"Grad-CAM needs a layer with a spatial output.*'norm'.*"
                                         r"\(1, 197, 192\).*'patch_embed\.proj'"):
        SensitivityTransformer(model="timm:vit_tiny_patch16_224", weights=path,
                               method="gradcam").fit(None)


@torch_only
def test_a_state_dict_with_another_head_builds_that_many_classes(tmp_path):
    import timm

    torch.manual_seed(0)
    path = save_state(timm.create_model("resnet10t", num_classes=5), tmp_path / "five.pth")
    with pytest.raises(ValueError, match="out of range for a model with 5 classes"):
        SensitivityTransformer(model="timm:resnet10t", weights=path, target=5).fit(None)
    assert SensitivityTransformer(model="timm:resnet10t", weights=path, target=4).fit(None)


@torch_only
def test_a_wrong_state_dict_names_its_first_mismatched_key(tmp_path):
    import timm

    torch.manual_seed(0)
    gray = save_state(timm.create_model("resnet10t", in_chans=1), tmp_path / "gray.pth")
    with pytest.raises(ValueError, match=r"Weights file '.*gray\.pth' does not fit "
                                         r"timm:resnet10t: 'conv1\.0\.weight' is \(24, 1, 3, 3\) "
                                         r"there and \(24, 3, 3, 3\) in the model\.$"):
        SensitivityTransformer(model="timm:resnet10t", weights=gray).fit(None)
    resnet = save_state(timm.create_model("resnet10t"), tmp_path / "resnet10t.pth")
    with pytest.raises(ValueError, match=r"does not fit timm:resnet18: it has no 'conv1\.weight', "
                                         r"which the model needs\.$"):
        SensitivityTransformer(model="timm:resnet18", weights=resnet).fit(None)
    with pytest.raises(ValueError, match=r"does not fit torchvision:squeezenet1_1: it has no "
                                         r"'features\.0\.weight', which the model needs\.$"):
        SensitivityTransformer(model="torchvision:squeezenet1_1", weights=resnet).fit(None)
    pickled = tmp_path / "module.pth"
    torch.save(timm.create_model("resnet10t"), pickled)
    with pytest.raises(ValueError, match=r"Cannot read the state dict file .*weights_only=True.*"
                                         r"save module\.state_dict\(\), not the module"):
        SensitivityTransformer(model="timm:resnet10t", weights=str(pickled)).fit(None)
    with pytest.raises(ValueError, match=r"must be a state dict file \(\.pth, \.pt, \.bin, "
                                         r"\.safetensors\)"):
        SensitivityTransformer(model="timm:resnet10t", weights=__file__).fit(None)
    with pytest.raises(ValueError, match=r"timm has no classifier called 'resnet5O' \(did you "
                                         r"mean timm:resnet50\?\)"):
        SensitivityTransformer(model="timm:resnet5O").fit(None)


@torch_only
@pytest.mark.parametrize("name, announced", [("timm:resnet10t", r"about 22 MB"),
                                             ("torchvision:squeezenet1_1", r"5 MB")])
def test_without_weights_offline_the_error_says_to_pass_them(name, announced, tmp_path,
                                                             monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise OSError("network unreachable (blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.warns(UserWarning, match=f"{name}' downloads its pretrained weights now: {announced}"):
        with pytest.raises(ConnectionError, match=r"Cannot download the pretrained weights of "
                                                  r".*No network\? Pass weights=PATH"):
            SensitivityTransformer(model=name).fit(None)


@torch_only
def test_a_search_shares_the_module_and_one_engine():
    from sklearn_sensloc._engine import GradientEngine

    net = tiny_net()
    built = []
    original = GradientEngine.__init__

    def counting(self, *args, **kwargs):
        built.append(args)
        original(self, *args, **kwargs)

    rng = np.random.default_rng(0)
    X = images(24, seed=3)
    corners = rng.uniform(0, 0.5, (24, 2))
    boxes = np.hstack([corners, corners + 0.4])
    pipe = Pipeline([("sens", SensitivityTransformer(model=net, preprocessing="tf", image_size=(16, 16),
                                                     pool=2)),
                     ("box", BoxRegressor())])
    grid = {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}
    search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3)
    try:
        GradientEngine.__init__ = counting
        search.fit(X, boxes)
    finally:
        GradientEngine.__init__ = original
    assert search.best_estimator_.named_steps["sens"].model is net
    assert len(built) == 1
    assert search.predict(X).shape == (24, 4)


@torch_only
def test_a_pickled_pipeline_with_a_module_gives_the_same_maps():
    net = tiny_net()
    attributes = set(vars(net))
    sens = SensitivityTransformer(model=net, preprocessing="tf", image_size=(16, 16)).fit(None)
    restored = pickle.loads(pickle.dumps(sens))
    assert restored.model is not net
    np.testing.assert_array_equal(restored.transform(images()), sens.transform(images()))
    # Engines are kept by the transformers that share them, never on the user's module.
    assert set(vars(net)) == attributes


@torch_only
def test_the_command_line_takes_a_library_name_and_a_state_dict(tmp_path):
    import timm

    from sklearn_sensloc._cli import main
    from test_evaluation import write_voc_tree

    torch.manual_seed(0)
    weights = save_state(timm.create_model("resnet10t"), tmp_path / "resnet10t.pth")
    voc = write_voc_tree(tmp_path / "VOC", n_train=12, n_test=6)
    code = main(["evaluate", "--voc", str(voc), "--classes", "cat", "dog",
                 "--model", "timm:resnet10t", "--weights", weights, "--image-size", "32",
                 "--target", "class", "--timing-images", "0", "--quiet",
                 "--output", str(tmp_path / "out")])
    assert code == 0
    summary = (tmp_path / "out" / "summary.json").read_text()
    assert '"model": "timm:resnet10t"' in summary


@torch_only
def test_the_shared_mobilenet_module_gives_the_keras_mobilenets_maps():
    """The genuine MobileNet v1 0.25 as a PyTorch module and as a Keras model, same weights."""
    if not SHARED_MOBILENET.exists():
        pytest.fail(f"Genuine test data missing: {SHARED_MOBILENET} (set SENSLOC_SHARED_DATA).")
    sys.path.insert(0, str(SHARED_MOBILENET / "torch"))
    try:
        from mobilenet_v1 import mobilenet_v1
    finally:
        sys.path.remove(str(SHARED_MOBILENET / "torch"))
    net = mobilenet_v1(alpha=0.25)
    net.load_state_dict(torch.load(SHARED_MOBILENET / "torch" / "mobilenet_v1_0.25_224_imagenet.pt",
                                   weights_only=True))
    photos = sorted((SHARED_MOBILENET.parent / "voc2012-animals" / "JPEGImages").glob("*.jpg"))[:4]
    photos = [str(path) for path in photos]
    module = SensitivityTransformer(model=net, preprocessing="tf", target="class", pool=1,
                                    cache=False).fit(None)
    keras_model = SensitivityTransformer(
        model="mobilenet", weights=SHARED_MOBILENET / "mobilenet_v1_0.25_224_imagenet.weights.h5",
        target="class", pool=1, cache=False).fit(None)
    assert module.preprocessing_ == keras_model.preprocessing_ == "tf"
    found, expected = module.transform(photos), keras_model.transform(photos)
    for row, other in zip(found, expected):
        assert np.corrcoef(row, other)[0, 1] > 0.9999
    # Maps normalized to [0, 1]: float32 sums in another order.
    assert np.abs(found - expected).max() < 0.05


def test_a_module_under_another_backend_says_to_set_keras_backend():
    import keras

    if keras.backend.backend() == "torch":
        pytest.fail("This test checks the refusal under another backend than PyTorch.")
    for model in (tiny_net(), "timm:resnet10t", "torchvision:resnet18"):
        with pytest.raises(ValueError, match=r"is a PyTorch model, which runs on Keras' PyTorch "
                                             r"backend only, and Keras runs on 'tensorflow': set "
                                             r"the environment variable KERAS_BACKEND=torch"):
            SensitivityTransformer(model=model).fit(None)


def test_the_command_line_refuses_a_library_name_under_another_backend(tmp_path, capsys):
    from sklearn_sensloc._cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--model", "timm:resnet10t", "--output", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert "set the environment variable KERAS_BACKEND=torch" in capsys.readouterr().err


@torch_only
def test_a_library_classifier_travels_in_a_localizer_file_and_a_module_of_ones_own_does_not(
        tmp_path):
    import timm

    from sklearn_sensloc import BoxScorer, load_localizer, save_localizer, write_boxes

    torch.manual_seed(0)
    weights = save_state(timm.create_model("resnet10t"), tmp_path / "resnet10t.pth")
    x = images(12, size=40)
    boxes = np.tile([0.2, 0.3, 0.7, 0.8], (12, 1))
    pipe = Pipeline([("sens", SensitivityTransformer(model="timm:resnet10t", weights=weights,
                                                     target="class", image_size=(32, 32))),
                     ("box", BoxRegressor(random_state=0))]).fit(x, boxes)
    maps = pipe.steps[0][1].transform(x)
    scorer = BoxScorer(map_shape=pipe.steps[0][1].map_shape_).fit(
        maps, pipe.predict(x), np.arange(12) % 2 == 0)
    path = save_localizer(pipe, tmp_path / "timm.sensloc", box_scorer=scorer)
    os.remove(weights)
    loaded = load_localizer(path)
    assert loaded.localizer_record_["model"]["library_model"] == "timm:resnet10t"
    np.testing.assert_allclose(loaded.predict(x), pipe.predict(x), atol=1e-6)
    assert isinstance(loaded.steps[0][1].model, torch.nn.Module)
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(x[0].astype(np.uint8)).save(photo)
    summary = write_boxes(loaded, [str(photo)], tmp_path / "boxes.csv")
    assert summary.n_written == 1
    own = Pipeline([("sens", SensitivityTransformer(model=tiny_net(), preprocessing="tf",
                                                    image_size=(SIZE, SIZE))),
                    ("box", BoxRegressor(random_state=0))]).fit(images(8), boxes[:8])
    with pytest.raises(ValueError, match="PyTorch module of your own .* timm or torchvision"):
        save_localizer(own, tmp_path / "own.sensloc")
    assert not (tmp_path / "own.sensloc").exists()
