"""The TensorFlow engine: ``tf.GradientTape`` inside one ``tf.function`` per method."""

import keras
import tensorflow as tf

#: One trace serves every batch shape (free batch axis in the signature).
FIXED_SHAPES = False

#: Whether, on an accelerator, the next batch is computed in a thread while the
#: host makes maps of this one. Not measured on a GPU with TensorFlow: each batch
#: in turn until it is (docs/benchmarks.rst, "One batch ahead").
COMPUTE_AHEAD = False


def gradient(function, inputs):
    """Gradient of the sum of ``function(inputs)[0]`` w.r.t. ``inputs``, and its aux output.

    ``function`` returns ``(values, aux)``; ``aux`` (a tensor or None) is passed
    through. The gradient is None where the values do not depend on ``inputs``.
    """
    # Only the input is watched: no weight gradient is ever built.
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(inputs)
        values, aux = function(inputs)
        total = tf.reduce_sum(values)
    return tape.gradient(total, inputs), aux


def compile_function(function, signature, variables):
    """``function`` compiled once, called on numpy arrays, returning numpy arrays, nested as it nests them.

    ``signature`` gives each argument's shape after the batch axis and its
    dtype. A fixed signature with a free batch axis means one trace serves
    every batch, the short last one included, so long runs never retrace.
    The variables are read by the graph itself, on the device TensorFlow
    placed them on.
    """
    del variables
    # No autograph: the functions hold no tensor-dependent Python control flow,
    # and our own errors raised while tracing then reach the caller as they are.
    compiled = tf.function(
        function,
        input_signature=[tf.TensorSpec([None, *shape], dtype) for shape, dtype in signature],
        autograph=False,
    )

    def run(*arrays):
        return keras.tree.map_structure(keras.ops.convert_to_numpy, compiled(*arrays))

    # TensorFlow's benchmarks trace the graph itself (benchmarks/bench_kernels.py).
    run.tf_function = compiled
    return run


def normal_noise(seeds, size):
    """Standard normal noise ``(len(seeds), *size)``, one stateless draw per seed pair."""
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal(size, seed), seeds, fn_output_signature=tf.float32
    )


def accelerators():
    """TensorFlow's GPUs and TPUs."""
    return [device.name for kind in ("GPU", "TPU") for device in tf.config.list_physical_devices(kind)]
