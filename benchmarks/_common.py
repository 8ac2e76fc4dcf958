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
    for name in ("tensorflow", "keras", "numpy", "scikit-learn", "xplique", "tf-keras-vis"):
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


def write_json(path, benchmark, rows, **extra):
    """Write results for ``run_all.py``; a no-op when ``path`` is None."""
    if not path:
        return
    with open(path, "w") as stream:
        json.dump({"benchmark": benchmark, "rows": rows, **extra}, stream, indent=1, default=float)


def base_parser(description):
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    return parser
