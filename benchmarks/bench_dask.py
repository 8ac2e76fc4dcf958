"""Dask scale-out: sensitivity-map throughput with 1 and 2 worker processes.

The same images go, side by side and interleaved, through

* ``in-process``      -- ``SensitivityTransformer.transform``, no Dask (TensorFlow
  uses every core by itself);
* ``1 worker``        -- ``sensitivity_maps_dask`` on a ``LocalCluster`` of one
  worker process (one thread);
* ``2 workers``       -- the same with two worker processes;
* ``2 workers, 1 TF thread`` -- two workers whose TensorFlow and oneDNN are
  limited to one thread each (``TF_NUM_INTRAOP_THREADS=1``, ...), i.e. one
  core per worker, as one would pin one worker per GPU or per socket.

All clusters are started first and kept; each contender is warmed up (workers
import TensorFlow, unpickle the model and compile the gradient function once),
then timed ``--repeats`` times round-robin; medians are compared. The gradient
cache is off (``cache=False``) so every run does every backward pass. Images
are in the graph (numpy -> dask array), so the time includes shipping them.

On a machine with C cores, a single TensorFlow process already spreads a
batch over the cores, so several CPU workers can at best match it; the point
of the Dask path is several machines or GPUs (one worker each), where the
throughput adds up. The ``ratio`` column is throughput / 1 worker.

    python benchmarks/bench_dask.py            # tiny CNN (2,048 images) + VGG16 224x224 (16)
    python benchmarks/bench_dask.py --quick    # tiny CNN, 512 images, no VGG16
"""

import logging
import os
import statistics
import sys
import tempfile
import time
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
    write_json,
)

ONE_THREAD = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


def start_cluster(n_workers, env=None):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
        env=dict(env or {"TF_CPP_MIN_LOG_LEVEL": "3"}),
    )
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    return cluster, Client(cluster, set_as_default=False)


def measure(label, model_path, images, batch_size, chunk_size, clients, repeats):
    import numpy as np

    from sklearn_sensloc import SensitivityTransformer
    from sklearn_sensloc._dask import sensitivity_maps_dask

    sens = SensitivityTransformer(
        model=model_path, target="gestalt", batch_size=batch_size, cache=False
    ).fit(None)
    reference = sens.transform(images[:2])

    def local():
        return sens.transform(images)

    def on(client):
        def run():
            maps = sensitivity_maps_dask(sens, images, chunk_size=chunk_size)
            result = client.compute(maps).result(timeout=1800)
            assert result.shape == (len(images), sens.n_features_out_)
            return result

        return run

    contenders = {"in-process": local, **{name: on(client) for name, client in clients.items()}}
    # Every path computes the same maps.
    for name, fn in contenders.items():
        np.testing.assert_allclose(fn()[:2], reference, rtol=1e-4, atol=1e-6, err_msg=name)
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():  # round-robin: a busier machine slows all alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    base = len(images) / statistics.median(times["1 worker"])
    rows = []
    for name, seconds in times.items():
        median = statistics.median(seconds)
        throughput = len(images) / median
        rows.append(
            {
                "model": label,
                "images": len(images),
                "path": name,
                "seconds": median,
                "images/s": throughput,
                "ratio": throughput / base,
                "min s": min(seconds),
                "max s": max(seconds),
            }
        )
    return rows


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--tiny-images", type=int, default=2048)
    parser.add_argument("--vgg-images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-vgg", action="store_true", help="skip VGG16")
    args = parser.parse_args(argv)
    if args.quick:
        args.tiny_images, args.no_vgg = 512, True

    print_header()
    directory = tempfile.mkdtemp(prefix="bench-dask-")
    tiny_path = os.path.join(directory, "tiny.keras")
    build_tiny_model().save(tiny_path)
    vgg_path = None
    if not args.no_vgg:
        vgg_path = os.path.join(directory, "vgg16.keras")
        build_vgg16().save(vgg_path)

    started = [
        ("1 worker", start_cluster(1)),
        ("2 workers", start_cluster(2)),
        ("2 workers, 1 TF thread", start_cluster(2, ONE_THREAD)),
    ]
    clients = {name: client for name, (_, client) in started}
    rows = []
    try:
        rows += measure(
            "tiny CNN 32x32", tiny_path, random_images(args.tiny_images, 32),
            batch_size=32, chunk_size=128, clients=clients, repeats=args.repeats,
        )
        if vgg_path:
            rows += measure(
                "VGG16 224x224", vgg_path, random_images(args.vgg_images, 224, seed=1),
                batch_size=4, chunk_size=4, clients=clients, repeats=args.repeats,
            )
    finally:
        for _, (cluster, client) in started:
            client.close(timeout=30)
            cluster.close(timeout=30)
    print_table(
        "Sensitivity maps through Dask: throughput (ratio = images/s / 1 worker's)",
        rows,
        ["model", "images", "path", "seconds", "images/s", "ratio", "min s", "max s"],
    )
    load = load_average()
    print(load)
    write_json(args.json, "dask", rows, load=load)


if __name__ == "__main__":
    main()
