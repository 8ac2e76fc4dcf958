"""The GPU check: on one lent accelerator, how far the host is from the device's pass.

One prepared run for a session with a GPU (the issue "GPU: the host out of the
way"), meant to finish in under 5 minutes there. For VGG16 and ResNet50
(random weights, 224x224, Gestalt Total) at batch 32 and 128, on JAX and on
PyTorch (each backend in a process of its own, ``KERAS_BACKEND``), it times
side by side, after a warm-up, on the same batch (``bench_map_vs_forward.py``'s
contenders, the cache miss among them):

* ``forward``   -- the model alone, compiled as the engine's maps are;
* ``engine``    -- the gradient engine alone (absolute input gradients);
* ``transform`` -- ``SensitivityTransformer(cache=False).transform``, the user's path
  (``map_device="auto"``: maps made on the device on a GPU);
* ``host maps`` / ``device maps`` -- the same with ``map_device="cpu"`` (the
  numpy steps on the host) and ``"keras"``, side by side;
* ``uint8`` -- ``transform`` of the batch as uint8 pixels, sent as they are;
* ``cache hit`` -- the same with the default cache holding the batch (a refit);

and, at batch 32, a 2x2x3 ``GridSearchCV`` (aggregation x pool x eta0, 3
folds, the default gradient cache cleared before each search) over 48 images
against one ``transform`` pass over them (``bench_search.py``'s timing), with
the default ``BoxRegressor`` (SGD on the host: ``search/pass``) and with the
documented rule for a GPU, ``solver="minibatch", device="keras"``
(``device search/pass``). It prints a table in forward passes and maps per
second, then one line per backend, model and batch::

    backend=jax model=vgg16 batch=32 transform/engine=... search/pass=... maps_per_s=...

where ``search/pass`` is the better of the two searches (the line says which).

``maps_per_s`` is ``transform``'s, end to end. The device machine has JAX and
PyTorch but not TensorFlow: carry Keras and this package (``pip install
--no-deps -e .``) as the device tool's README shows.

    python benchmarks/gpu_check.py                   # the check, on the GPU machine
    python benchmarks/gpu_check.py --backends jax    # one backend
    python benchmarks/gpu_check.py --quick           # a smoke test anywhere: tiny CNN, small batches
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    base_parser,
    build_tiny_model,
    build_vgg16,
    load_average,
    print_header,
    print_table,
    random_images,
)


#: The documented rule for box fits on a GPU (docs/backends.rst, "Devices").
DEVICE_BOXES = {"solver": "minibatch", "device": "keras"}


def build_resnet50(seed=0):
    """ResNet50 at 224x224, random weights (timing only)."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))


def models(quick):
    """(name, builder, image size) of each model the check times."""
    if quick:
        return [("tiny", lambda: build_tiny_model(size=64), 64)]
    return [("vgg16", build_vgg16, 224), ("resnet50", build_resnet50, 224)]


def time_batch(name, model, size, batch_size, repeats):
    """The map's costs on one batch, in forward passes, from ``bench_map_vs_forward``."""
    from bench_map_vs_forward import measure

    rows = {row["path"]: row for row in
            measure(name, model, random_images(batch_size, size), batch_size, repeats, xla=False)}
    engine, transform = rows["engine"], rows["transform"]
    return {
        "backend": engine["backend"], "model": name, "batch": batch_size,
        "forward_s": engine["base_median_s"], "engine/forward": engine["ratio"],
        "transform/forward": transform["ratio"],
        "host maps/forward": rows["transform-host-maps"]["ratio"],
        "device maps/forward": rows["transform-device-maps"]["ratio"],
        "uint8/forward": rows["transform-uint8"]["ratio"],
        "cache hit/forward": rows["transform-cache-hit"]["ratio"],
        "transform/engine": transform["median_s"] / engine["median_s"],
        "maps_per_s": transform["maps_per_s"], "repeats": repeats,
    }


def time_search(model, size, n_images, batch_size, repeats, box_params=None):
    """A 2x2x3 search over ``n_images`` images / one transform pass over them, from ``bench_search``."""
    from bench_search import GRIDS
    from bench_search import time_search as search_and_pass

    from sklearn_sensloc import make_sample_scenes

    scenes = make_sample_scenes(n_images, image_size=size, random_state=0)
    times, _ = search_and_pass(model, scenes.images, scenes.boxes, batch_size=batch_size,
                               grid=GRIDS["wide"], repeats=repeats, box_params=box_params,
                               target="gestalt", preprocessing="none")
    return times["search"][0] / times["one pass"][0]


def worker(args):
    """One backend, in this process: every model and batch, written to ``args.out``."""
    print_header()
    rows = []
    for name, builder, size in models(args.quick):
        model = builder()
        for batch_size in args.batch:
            rows.append(time_batch(name, model, size, batch_size, args.repeats))
            print(f"{rows[-1]['backend']} {name} batch {batch_size}: done", flush=True)
        searches = {
            "search/pass": time_search(model, size, args.search_images, min(args.batch),
                                       args.search_repeats),
            "device search/pass": time_search(model, size, args.search_images, min(args.batch),
                                              args.search_repeats, DEVICE_BOXES),
        }
        for row in rows:
            if row["model"] == name and row["batch"] == min(args.batch):
                row.update(searches)
    print(load_average(), flush=True)
    Path(args.out).write_text(json.dumps(rows))


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "torch"],
                        choices=["jax", "torch", "tensorflow"])
    parser.add_argument("--batch", type=int, nargs="+", default=None,
                        help="batch sizes (default 32 128; --quick: 4 8)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per batch (default 5; --quick: 2)")
    parser.add_argument("--search-images", type=int, default=None,
                        help="images of the search (default 48; --quick: 12)")
    parser.add_argument("--search-repeats", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.batch = args.batch or ([4, 8] if args.quick else [32, 128])
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.search_images = args.search_images or (12 if args.quick else 48)
    if args.worker:
        return worker(args)

    rows, failed = [], []
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends:
            out = Path(folder, f"{backend}.json")
            command = [sys.executable, __file__, "--worker", "--out", str(out),
                       "--batch", *map(str, args.batch), "--repeats", str(args.repeats),
                       "--search-images", str(args.search_images),
                       "--search-repeats", str(args.search_repeats),
                       *(["--quick"] if args.quick else [])]
            print(f"== KERAS_BACKEND={backend} ==", flush=True)
            done = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend})
            if done.returncode or not out.exists():
                failed.append(backend)
                continue
            rows += json.loads(out.read_text())
    print_table("map cost in forward passes of the same batch (medians), maps/s through transform",
                rows, ["backend", "model", "batch", "forward_s", "engine/forward",
                       "transform/forward", "host maps/forward", "device maps/forward",
                       "uint8/forward", "cache hit/forward", "transform/engine", "search/pass",
                       "device search/pass", "maps_per_s"])
    for row in rows:
        search = "-"
        if "search/pass" in row:
            boxes = min(["search/pass", "device search/pass"], key=row.get)
            search = f"{row[boxes]:.2f} ({'minibatch on the device' if 'device' in boxes else 'SGD'})"
        print(f"backend={row['backend']} model={row['model']} batch={row['batch']} "
              f"transform/engine={row['transform/engine']:.2f} search/pass={search} "
              f"maps_per_s={row['maps_per_s']:.0f}")
    if failed:
        raise SystemExit(f"failed on: {', '.join(failed)} (its output is above)")


if __name__ == "__main__":
    main()
