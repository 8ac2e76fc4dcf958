"""The PyTorch engine: ``torch.autograd.grad`` on the input alone, eagerly."""

import keras
import numpy as np
import torch

#: Eager: nothing is compiled per shape.
FIXED_SHAPES = False

#: Whether, on an accelerator, the next batch is computed in a thread while the
#: host makes maps of this one: no, each operation of the model is dispatched
#: from Python, holding the GIL that the map making needs, so nothing is gained
#: (docs/benchmarks.rst, "One batch ahead").
COMPUTE_AHEAD = False


def gradient(function, inputs):
    """Gradient of the sum of ``function(inputs)[0]`` w.r.t. ``inputs``, and its aux output.

    The gradient is None where the values do not depend on ``inputs``.
    """
    with torch.enable_grad():
        inputs = inputs.detach().requires_grad_()
        values, aux = function(inputs)
        if not values.requires_grad:
            return None, aux
        # The weights are detached constants (see compile_function): the
        # backward pass builds the input's gradient only.
        (found,) = torch.autograd.grad(values.sum(), inputs, allow_unused=True)
    return found, None if aux is None else aux.detach()


def compile_function(function, signature, variables):
    """``function`` run eagerly on numpy arrays, returning numpy arrays, nested as it nests them.

    The arrays go to the device Keras put the variables on (a GPU when
    PyTorch sees one). The variables are read through detached views of
    their values, under ``torch.no_grad``: no graph is kept for weights, no
    ``.grad`` is ever accumulated, and only :func:`gradient` records one.
    """

    def run(*arrays):
        tensors = [
            keras.ops.convert_to_tensor(np.asarray(array, dtype), dtype)
            for array, (_, dtype) in zip(arrays, signature)
        ]
        detached = [(variable, variable.value.detach()) for variable in variables]
        with torch.no_grad(), keras.StatelessScope(state_mapping=detached):
            return keras.tree.map_structure(keras.ops.convert_to_numpy, function(*tensors))

    return run


def normal_noise(seeds, size):
    """Standard normal noise ``(len(seeds), *size)``, one generator per seed pair."""
    device = seeds.device
    draws = []
    for pair in seeds.tolist():
        # The CPU generator keeps 32 bits of a seed: mix the pair into them.
        seed = int(np.random.SeedSequence(pair).generate_state(1)[0])
        generator = torch.Generator(device).manual_seed(seed)
        draws.append(torch.randn(size, generator=generator, device=device))
    return torch.stack(draws)


def accelerators():
    """PyTorch's CUDA devices."""
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
