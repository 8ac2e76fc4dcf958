"""A ``torch.nn.Module`` as the engine sees it: NCHW calls, forward hooks, eval mode.

The module is called as it is: its layers are found by ``named_modules()``
and observed with forward hooks, removed after each call; nothing is copied
or wrapped. Layers are found by one probe call on a batch of zeros, which
tells the order they run in, their output shapes and how often each runs.
"""

import contextlib
import difflib
import threading
from numbers import Integral

import torch
from torch import nn

from .._classifiers._torch_models import declared_input_size, first_line
from ._targets import (
    DEFAULT_IMAGE_SIZE,
    Target,
    TargetError,
    check_image_size,
    class_target,
    score_kind,
)

#: The module is shared (by clones, engines and threads): hooks and modes
#: are set for one call at a time.
_CALL_LOCK = threading.RLock()


class _Stop(Exception):
    """Carries a layer's output out of the forward pass: the rest of the network need not run."""

    def __init__(self, value):
        super().__init__()
        self.value = value


class TorchNetwork:
    """A PyTorch module under Keras' PyTorch backend; see ``KerasNetwork`` for the interface.

    The preprocessed NHWC images are moved to NCHW, to the dtype of the
    module's parameters, and given to the module on the device of its
    parameters, in eval mode (each submodule's ``training`` flag is restored
    after the call). Class scores are the module's output (its ``logits``
    attribute where it returns an object holding them, as Hugging Face's
    models do), or the input of a final ``nn.Softmax``.
    """

    def __init__(self, module, image_size):
        self.module = module
        self.name = type(module).__name__
        first = next(iter(module.state_dict().values()), None)
        self.device = None if first is None else str(first.device)
        self.dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        self.input_size = _input_size(module, image_size)
        self._modules = dict(module.named_modules())
        self._probe()

    def _probe(self):
        """Run the module once on zeros, recording each layer's calls in the order they end."""
        inputs = torch.zeros((1, 3, *self.input_size), dtype=self.dtype, device=self.device)
        self._order, self._shapes, self._calls, self._reads_input = [], {}, {}, set()
        outputs = {}

        def recording(name):
            def record(_, args, output):
                self._order.append(name)
                self._calls[name] = self._calls.get(name, 0) + 1
                self._shapes[name] = tuple(output.shape) if torch.is_tensor(output) else None
                outputs[name] = output
                if args and args[0] is inputs:
                    self._reads_input.add(name)

            return record

        hooks = [(layer, recording(name)) for name, layer in self._modules.items() if name]
        try:
            with torch.no_grad():
                output = self._scores_of(self._call(inputs, hooks))
        except Exception as error:
            raise ValueError(
                f"Module {self.name} cannot run on a batch of shape {tuple(inputs.shape)} "
                f"(NCHW): {type(error).__name__}: {first_line(error)}. Pass image_size=(height, "
                "width) of the images it takes."
            ) from error
        self._output_shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        # A final softmax: a layer whose output is the module's own.
        self._softmax = next((self._modules[name] for name, value in outputs.items()
                              if value is output and isinstance(self._modules[name], nn.Softmax)),
                             None)

    def _call(self, inputs, hooks=()):
        """The module's output on NCHW ``inputs``, in eval mode, with forward ``hooks`` for this call."""
        with _CALL_LOCK, _evaluating(self.module):
            handles = [layer.register_forward_hook(hook) for layer, hook in hooks]
            try:
                return self.module(inputs)
            except _Stop as stop:
                return stop.value
            finally:
                for handle in handles:
                    handle.remove()

    def _nchw(self, inputs):
        # Contiguous NCHW, as the module's own data loaders give it.
        return inputs.permute(0, 3, 1, 2).contiguous().to(self.dtype)

    @staticmethod
    def _scores_of(output):
        return getattr(output, "logits", output)

    def forward(self, inputs):
        return self._scores_of(self._call(self._nchw(inputs)))

    def target(self, target, class_score):
        if (isinstance(target, Integral) and not isinstance(target, bool)) or target == "class":
            return self._class_target(None if target == "class" else int(target), class_score)
        if target == "gestalt":
            name = self._gestalt_layer()
            return Target(f"gestalt total of {name!r}", self._mean_activation(name), [])
        if isinstance(target, str):
            name = self._named_layer(target)
            return Target(f"mean activation of {name!r}", self._mean_activation(name), [])
        raise ValueError(
            f"target must be 'gestalt', 'class', an int class index or a layer name; got {target!r}."
        )

    def _class_target(self, class_index, class_score):
        softmax = self._softmax
        if class_score == "logit" and softmax is not None:
            def stop_at_input(_, args, output):
                raise _Stop(args[0])

            hooks, kind = [(softmax, stop_at_input)], "logit"
        else:
            hooks, kind = [], score_kind(self.name, softmax is not None, class_score)

        def scores(inputs):
            return self._scores_of(self._call(self._nchw(inputs), hooks))

        label = f"{kind} of the predicted class" if class_index is None else f"{kind} of class {class_index}"
        shape = self._output_shape if isinstance(self._output_shape, tuple) else [self._output_shape]
        return class_target(self.name, shape, scores, class_index, label, [])

    def _mean_activation(self, name):
        layer = self._modules[name]

        def stop(_, args, output):
            raise _Stop(output)

        def mean(inputs, classes=None):
            return self._call(self._nchw(inputs), [(layer, stop)]).flatten(1).mean(1)

        return mean

    def _gestalt_layer(self):
        """The last convolution that runs; a transformer's last token map instead of its patch embedding.

        A convolution fed the module's input directly, when no other runs
        after it, is a patch embedding (a ViT's): its mean activation is linear in
        the pixels, the same map for every image.
        """
        convs = [name for name in self._order if isinstance(self._modules[name], nn.Conv2d)]
        if convs and convs[-1] not in self._reads_input:
            return convs[-1]
        maps = self._feature_maps(spatial_only=False)
        if not maps:
            raise ValueError(
                f"target='gestalt' needs a convolutional layer or a feature map, but module "
                f"{self.name} has neither. Use target='class' or a layer name."
            )
        return maps[-1]

    def _feature_maps(self, spatial_only):
        """Layers, in the order they end, run once, whose output keeps several positions.

        ``(batch, channels, height, width)`` maps, and with ``spatial_only``
        false also ``(batch, tokens, features)`` token maps.
        """
        found = []
        for name in self._order:
            shape = self._shapes[name]
            if self._calls[name] != 1 or shape is None:
                continue
            if (len(shape) == 4 and shape[2] * shape[3] > 1) or (
                not spatial_only and len(shape) == 3 and shape[1] > 1
            ):
                found.append(name)
        return found

    def _named_layer(self, name):
        if name not in self._modules or not name:
            close = difflib.get_close_matches(name, [n for n in self._modules if n], n=3)
            raise ValueError(
                f"Unknown target {name!r}: not 'gestalt', 'class', a class index or a layer of "
                f"module {self.name} (its named_modules(); "
                + (f"close: {', '.join(map(repr, close))})." if close else f"{len(self._modules) - 1} layers).")
            )
        if name not in self._calls:
            raise ValueError(f"Layer {name!r} of module {self.name} does not run in its forward pass.")
        if self._calls[name] != 1:
            raise TargetError(
                f"Layer {name!r} of module {self.name} runs {self._calls[name]} times per forward "
                "pass, so it has no one output to take: name a layer that runs once (one of "
                "its parents)."
            )
        if self._shapes[name] is None:
            raise ValueError(
                f"Layer {name!r} of module {self.name} does not output a tensor: name one that does."
            )
        return name

    def gradcam_layer(self, target):
        if isinstance(target, str) and target not in ("gestalt", "class"):
            name = self._named_layer(target)
        else:
            name = self._gestalt_layer()
        shape = self._shapes[name]
        if len(shape) != 4:
            candidates = [layer for layer in self._feature_maps(spatial_only=True)
                          if isinstance(self._modules[layer], nn.Conv2d)][-3:]
            raise ValueError(
                f"Grad-CAM needs a layer with a spatial output (batch, channels, height, width), "
                f"and layer {name!r} of module {self.name} outputs {shape}: pass target= the name "
                f"of one that does, such as "
                + (", ".join(map(repr, reversed(candidates))) if candidates else "none: it has none")
                + "."
            )
        return name

    def layer_output_shape(self, layer):
        _, channels, height, width = self._shapes[layer]
        return height, width, channels

    @contextlib.contextmanager
    def adding_to_output(self, layer, delta):
        """Add the NHWC ``delta`` to ``layer``'s NCHW output while the target runs; collect it NHWC.

        As the Keras network does: the hook acts in the thread that entered
        here only, and is removed on exit.
        """
        outputs = []
        owner = threading.get_ident()

        def adding(_, args, output):
            if threading.get_ident() != owner:
                return None  # the module's own output, unchanged
            outputs.append(output.permute(0, 2, 3, 1))
            return output + delta.permute(0, 3, 1, 2).to(output.dtype)

        with _CALL_LOCK:
            handle = self._modules[layer].register_forward_hook(adding)
            try:
                yield outputs
            finally:
                handle.remove()
        if len(outputs) != 1:
            raise TargetError(
                f"Grad-CAM needs layer {layer!r} to run once per forward pass; it ran "
                f"{len(outputs)} times."
            )


@contextlib.contextmanager
def _evaluating(module):
    """``module`` in eval mode, each submodule's ``training`` flag restored afterwards."""
    modes = [(layer, layer.training) for layer in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for layer, training in modes:
            layer.training = training


def _input_size(module, image_size):
    declared = declared_input_size(module)
    if declared is None:
        return tuple(image_size) if image_size is not None else DEFAULT_IMAGE_SIZE
    size, fixed = declared
    if fixed:
        check_image_size(image_size, size)
    return tuple(image_size) if image_size is not None else size
