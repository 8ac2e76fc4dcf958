"""Honest per-image timings: forward pass, sensitivity map and box, side by side."""

import os
import platform
import time

import numpy as np

from .._images._batches import ImageSource
from .._maps._steps import sensitivity_maps
from .._utils._tables import make_table


def _time_per_image(function, batches):
    """Seconds per image of ``function`` over ``batches``, after one warm-up call.

    Always warmed up: a backend that compiles per input shape (JAX) may meet
    the timed batches' shape for the first time here.
    """
    function(batches[0])
    start = time.perf_counter()
    for batch in batches:
        function(batch)
    return (time.perf_counter() - start) / sum(len(b) for b in batches)


def measure_timings(computer, test_images, n_timing, aggregation):
    """Forward pass and map per image, on the same images, batch size and preprocessing."""
    sens = computer.fit()
    engine = sens.gradient_engine()
    source = ImageSource(test_images)
    n = min(n_timing, len(source))
    batch_size = min(sens.batch_size, n)
    images = np.stack([source.image(i, sens.input_size_) for i in range(n)])
    batches = [images[s : s + batch_size] for s in range(0, n, batch_size)]

    def maps(batch):
        # Made where transform makes them: on the device, or from the gradients on the host.
        if sens.map_device_ == "keras":
            return engine.maps(batch, [(aggregation, 1, "max")])[1][0]
        return sensitivity_maps(engine(batch), aggregation, 1, "max")

    return {
        "n_images": n,
        "batch_size": batch_size,
        "forward_s": _time_per_image(engine.forward, batches),
        "maps_s": _time_per_image(maps, batches),
        "map_device": sens.map_device_,
        "machine": machine_description(),
    }


def machine_description():
    """CPU/GPU, core count and library versions, for the record of a timing."""
    import keras

    from .._engine import accelerators, backend_version

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": accelerators(),
        "backend": backend_version(),
        "keras": keras.__version__,
    }


def timings_table(measured, aggregation):
    machine = measured["machine"]
    rows = [
        {"stage": "forward pass (model prediction)", "seconds_per_image": measured["forward_s"]},
        {"stage": f"sensitivity map (backward pass, {aggregation})",
         "seconds_per_image": measured["maps_s"]},
        {"stage": "box from map: learned (pool + linear map)",
         "seconds_per_image": measured["learned_box_s"]},
        {"stage": "box from map: heuristic (smooth + top pixels)",
         "seconds_per_image": measured["heuristic_box_s"]},
    ]
    ratio = measured["maps_s"] / measured["forward_s"] if measured["forward_s"] > 0 else float("nan")
    device = ", ".join(machine["gpus"]) or f"CPU only, {machine['cpu_count']} cores"
    notes = [
        f"Forward pass and map: {measured['n_images']} test images held in memory, batches of "
        f"{measured['batch_size']}, the same preprocessing, after tracing (a warm-up batch). Boxes: "
        f"all {measured['n_test']} test maps. Wall time (time.perf_counter) per image.",
        f"map / forward = {ratio:.2f} (maps made on the "
        f"{'device' if measured['map_device'] == 'keras' else 'host'}); {device}, "
        f"{machine['processor']}, "
        f"{machine['backend']}, Keras {machine['keras']}.",
    ]
    return make_table("timings", ["stage", "seconds_per_image"], rows, notes)
