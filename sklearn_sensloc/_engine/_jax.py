"""The JAX engine: ``jax.grad`` under ``jax.jit``, one trace per input shape."""

import jax
import keras
import numpy as np

#: jit compiles once per input shape: the engine pads calls to a few shapes.
FIXED_SHAPES = True

#: Whether, on an accelerator, the next batch is computed in a thread while the
#: host makes maps of this one: yes, a call runs one compiled program outside
#: Python's GIL (docs/benchmarks.rst, "One batch ahead", measures the gain).
COMPUTE_AHEAD = True


def gradient(function, inputs):
    """Gradient of the sum of ``function(inputs)[0]`` w.r.t. ``inputs``, and its aux output."""

    def total(points):
        values, aux = function(points)
        return jax.numpy.sum(values), aux

    return jax.grad(total, has_aux=True)(inputs)


def compile_function(function, signature, variables):
    """``function`` jitted, called on numpy arrays, returning numpy arrays, nested as it nests them.

    The variables' values are arguments of the jitted function, as in Keras'
    own JAX trainer: baked in as constants, a large model's weights would be
    copied into every compiled program. jit traces once per input shape.
    """

    def stateless(values, *args):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return function(*args)

    jitted = jax.jit(stateless)

    def run(*arrays):
        arrays = [np.asarray(array, dtype) for array, (_, dtype) in zip(arrays, signature)]
        found = jitted([variable.value for variable in variables], *arrays)
        return jax.tree_util.tree_map(np.asarray, found)

    return run


def normal_noise(seeds, size):
    """Standard normal noise ``(len(seeds), *size)``, one draw per seed pair."""

    def draw(seed):
        return jax.random.normal(jax.random.fold_in(jax.random.key(seed[0]), seed[1]), size)

    return jax.vmap(draw)(seeds)


def accelerators():
    """JAX's devices other than the CPU."""
    return [str(device) for device in jax.devices() if device.platform != "cpu"]
