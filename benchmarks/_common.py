"""Shared helpers of the benchmark scripts: models, timing, result tables.

Every benchmark measures the things it compares *side by side in one run*,
interleaving the contenders repeat by repeat, so that a machine that gets
busier half-way (other processes, thermal limits) slows every contender alike
and the printed ratios stay meaningful even when absolute seconds do not.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def build_tiny_model(size=32, seed=0, n_classes=2):
    """The test suite's tiny CNN (tests/conftest.py), untrained: fine for timing."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(n_classes, name="logits"),
        ],
        name="tiny",
    )


def build_vgg16(seed=0):
    """VGG16 convolutional backbone at 224x224, random weights (timing only)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))


def random_images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def interleaved_medians(contenders, repeats, warmup=1):
    """Median and minimum seconds of each callable, timed round-robin.

    ``contenders`` maps a name to a zero-argument callable. Each is called
    ``warmup`` times first (tracing, allocation), then every repeat calls each
    once in turn. Returns ``{name: (median, minimum)}``.

    Both statistics are reported because the benchmark machine may be shared:
    the median is the typical cost under the load of the moment, the minimum
    the cost least disturbed by other processes (what ``timeit`` reports).
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t)) for name, t in times.items()}


def load_average():
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(
            line.split(":", 1) for line in out.splitlines() if ":" in line
        )
        cpu = fields.get("Model name", cpu).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def versions():
    import importlib.metadata as md

    found = {}
    for name in ("tensorflow", "jax", "torch", "keras", "numpy", "scikit-learn", "xplique",
                 "tf-keras-vis"):
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return found


def print_table(title, rows, columns):
    """Print ``rows`` (list of dicts) as an aligned text table."""
    print(f"\n== {title} ==")
    cells = [[_fmt(row.get(col, "")) for col in columns] for row in rows]
    widths = [max(len(col), *(len(c[i]) for c in cells)) for i, col in enumerate(columns)]
    print("  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    sys.stdout.flush()


def _fmt(value):
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


def print_header():
    """Print what every result depends on: the machine, library versions and load."""
    print("machine:", machine_description())
    import keras

    from sklearn_sensloc._engine import accelerators

    print("versions:", versions())
    print("Keras backend:", keras.backend.backend(), "devices:", accelerators() or "CPU only")
    print(load_average(), flush=True)


def write_json(path, benchmark, rows, **extra):
    """Write results, with the machine and versions, for ``run_all.py``; no-op if ``path`` is None."""
    if not path:
        return
    record = {"benchmark": benchmark, "rows": rows, "machine": machine_description(),
              "versions": versions(), **extra}
    with open(path, "w") as stream:
        json.dump(record, stream, indent=1, default=float)


def base_parser(description):
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    return parser


def kernel_seconds(function, batch, repeats=3):
    """Seconds TensorFlow spends inside each kind of kernel in one call of ``function``.

    ``function`` is a ``tf.function`` with an input signature taking one
    float32 batch. Its graph, with the model's variables frozen to constants,
    runs in a session with full tracing, which records how long every kernel
    ran; ``repeats`` traced calls (after two untraced ones) give a median per
    op type, e.g. ``{"Conv2D": 1.07, "Conv2DBackpropInput": 1.11, ...}``.
    The sum is the time no implementation running these kernels can go below;
    comparing it with the call's wall time shows the overhead around them.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, frozen.inputs[0].shape)
        (output,) = tf.graph_util.import_graph_def(
            frozen.graph.as_graph_def(),
            input_map={frozen.inputs[0].name: placeholder},
            return_elements=[frozen.outputs[0].name],
        )
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_run = []
    with tf.compat.v1.Session(graph=graph) as session:
        for _ in range(2):
            session.run(output, {placeholder: batch})
        for _ in range(repeats):
            metadata = tf.compat.v1.RunMetadata()
            session.run(output, {placeholder: batch}, options=options, run_metadata=metadata)
            seconds = {}
            for device in metadata.step_stats.dev_stats:
                for node in device.node_stats:
                    label = node.timeline_label
                    # "name = OpType(inputs)"; oneDNN's kernels are "_MklNative<OpType>".
                    kind = label.split(" = ", 1)[1].split("(", 1)[0] if " = " in label else "?"
                    kind = kind.removeprefix("_MklNative").removeprefix("_Mkl")
                    seconds[kind] = seconds.get(kind, 0.0) + node.all_end_rel_micros / 1e6
            per_run.append(seconds)
    kinds = set().union(*per_run)
    return {kind: statistics.median(run.get(kind, 0.0) for run in per_run) for kind in kinds}
