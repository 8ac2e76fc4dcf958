"""Memory of transforming image paths: one batch of decoded images at a time.

Writes ``10 N`` small JPEGs to a temporary directory, then, in a *fresh
subprocess per run* (so no run inherits another's memory), fits a
``SensitivityTransformer`` on a tiny CNN (or VGG16), warms it up on one batch
(tracing, TensorFlow's allocator pools), and measures during
``transform(paths)`` of the first ``N`` and of all ``10 N`` paths:

* ``rss_extra``: peak resident memory above the level just before
  ``transform`` (sampled from /proc every 2 ms by a thread), minus the output
  array's size -- every allocation, TensorFlow's included;
* ``py_extra``: peak of the Python/numpy allocations traced by
  ``tracemalloc`` during ``transform``, minus the output array's size.

If paths are decoded batch by batch, both stay flat from N to 10 N (target:
growth < 10%). Runs with the default ``cache=True`` (gradients kept in the
in-process cache for later refits, bounded by the cache's ``max_bytes``) and
with ``cache=False`` are reported separately.

    python benchmarks/bench_memory.py              # N = 64 and 640, tiny CNN
    python benchmarks/bench_memory.py --n 32 --model vgg16

``--stream N`` measures instead what a long run keeps: ``N`` distinct 64 x 64
uint8 images (the tiny CNN, every other parameter at its default) through
``transform``, in chunks of ``--chunk`` images, each setting (the default
cache, and ``cache=False``) in a fresh process. It prints the growth of RSS
above the level after the warm-up, after every quarter of the images and at
its peak, against the bound the default cache documents:

    python benchmarks/bench_memory.py --stream 51200
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import base_parser, print_header, print_table, write_json  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * PAGE


class PeakSampler(threading.Thread):
    def __init__(self, period=0.002):
        super().__init__(daemon=True)
        self.period, self.peak, self._stop_event = period, rss_bytes(), threading.Event()

    def run(self):
        while not self._stop_event.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.period)

    def stop(self):
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak


def write_jpegs(directory, n, size, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        # Smooth random images compress like photos, not like white noise.
        small = rng.integers(0, 256, (size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size[1], size[0]), Image.BILINEAR)
        path = os.path.join(directory, f"img_{i:05d}.jpg")
        image.save(path, quality=90)
        paths.append(path)
    return paths


def child(args):
    """One measurement in this (fresh) process; prints one JSON line."""
    import gc
    import tracemalloc

    from _common import build_tiny_model, build_vgg16
    from sklearn_sensloc import SensitivityTransformer

    with open(args.paths_file) as stream:
        paths = stream.read().split("\n")[: args.n]
    model = build_vgg16() if args.model == "vgg16" else build_tiny_model(size=224)
    params = dict(model=model, batch_size=args.batch_size, pool=args.pool)
    if "cache" in SensitivityTransformer().get_params():
        params["cache"] = bool(args.cache)
    elif args.cache:
        print(json.dumps({"skip": "this version has no cache parameter"}))
        return
    sens = SensitivityTransformer(**params).fit(None)
    # Warm-up on other images than the measured ones' (a cache hit would lie).
    sens.transform(np.random.default_rng(1).uniform(0, 255, (args.batch_size, 224, 224, 3)))
    if args.cache:
        from sklearn_sensloc._maps._cache import gradient_cache

        gradient_cache.clear()
    gc.collect()
    before = rss_bytes()
    sampler = PeakSampler()
    sampler.start()
    tracemalloc.start()
    start = time.perf_counter()
    maps = sens.transform(paths)
    seconds = time.perf_counter() - start
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = sampler.stop()
    out = maps.nbytes
    print(json.dumps({
        "n": len(paths), "cache": bool(args.cache), "output_mb": out / 2**20,
        "rss_extra_mb": (peak - before - out) / 2**20,
        "py_extra_mb": (py_peak - out) / 2**20,
        "one_batch_decoded_mb": args.batch_size * 224 * 224 * 3 * 4 / 2**20,
        "seconds": seconds,
    }))


def stream_child(args):
    """``args.stream`` distinct images through ``transform`` in this (fresh) process; one JSON line."""
    import gc

    from _common import build_tiny_model
    from sklearn_sensloc import SensitivityTransformer

    size = 64
    params = {"model": build_tiny_model(size=size)}
    if not args.cache:
        params["cache"] = False
    sens = SensitivityTransformer(**params).fit(None)
    rng = np.random.default_rng(12345)
    # Warm-up on images never measured: tracing, the allocator's first pools.
    sens.transform(rng.integers(0, 256, (args.chunk, size, size, 3), dtype=np.uint8))
    from sklearn_sensloc import gradient_cache

    gradient_cache.clear()
    if not args.cache:
        documented = None
    elif hasattr(gradient_cache, "gradients"):
        documented = gradient_cache.max_bytes
    else:
        # The package before caches were objects: three bounds, one per kind.
        documented = (gradient_cache.max_bytes + gradient_cache.maps.max_bytes
                      + gradient_cache.image_keys.max_bytes)
    gc.collect()
    before = rss_bytes()
    sampler = PeakSampler(period=0.01)
    sampler.start()
    start = time.perf_counter()
    curve = {}
    quarter = max(args.stream // 4, 1)
    for first in range(0, args.stream, args.chunk):
        n = min(args.chunk, args.stream - first)
        # Distinct images: a seed per chunk, never the warm-up's.
        images = np.random.default_rng(first).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        sens.transform(images)
        del images
        done = first + n
        if done % quarter < args.chunk or done == args.stream:
            curve[done] = (rss_bytes() - before) / 2**20
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    print(json.dumps({
        "images": args.stream, "cache": "default" if args.cache else "False",
        "growth_mib_at": curve, "peak_growth_mib": (peak - before) / 2**20,
        "documented_bound_mib": None if documented is None else documented / 2**20,
        "seconds": seconds,
    }))


def run_stream(args):
    rows = []
    for cache in (True, False):
        command = [sys.executable, os.path.abspath(__file__), "--child", "--stream",
                   str(args.stream), "--chunk", str(args.chunk), "--cache", str(int(cache))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
        row = json.loads(lines[-1])
        print(row, flush=True)
        row["growth_mib_at"] = ", ".join(
            f"{int(n):,}: {mib:.0f}" for n, mib in row["growth_mib_at"].items())
        rows.append(row)
    print_table(
        f"RSS growth over {args.stream:,} distinct 64x64 images through transform (MiB)",
        rows, ["cache", "images", "growth_mib_at", "peak_growth_mib", "documented_bound_mib",
               "seconds"],
    )
    return rows


def run_child(script, paths_file, n, cache, args):
    command = [sys.executable, script, "--child", "--paths-file", paths_file, "--n", str(n),
               "--cache", str(int(cache)), "--model", args.model,
               "--batch-size", str(args.batch_size), "--pool", str(args.pool)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="N; the second run has 10 N images")
    parser.add_argument("--model", choices=["tiny", "vgg16"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--image-size", type=int, nargs=2, default=[224, 224])
    parser.add_argument("--child", action="store_true", help=argparse_suppress())
    parser.add_argument("--paths-file", help=argparse_suppress())
    parser.add_argument("--cache", type=int, default=0, help=argparse_suppress())
    parser.add_argument("--stream", type=int, default=None, metavar="N",
                        help="N distinct 64x64 images through transform, default cache and "
                             "cache=False (e.g. 51200)")
    parser.add_argument("--chunk", type=int, default=512,
                        help="images per transform call with --stream")
    args = parser.parse_args(argv)
    if args.child:
        return stream_child(args) if args.stream else child(args)
    if args.stream:
        print_header()
        rows = run_stream(args)
        write_json(args.json, "memory-stream", rows)
        return rows
    if args.quick:
        args.n, args.batch_size = 16, 8  # N still spans two batches

    print_header()
    rows = []
    with tempfile.TemporaryDirectory(prefix="sensloc-bench-") as directory:
        paths = write_jpegs(directory, 10 * args.n, tuple(args.image_size))
        paths_file = os.path.join(directory, "paths.txt")
        with open(paths_file, "w") as stream:
            stream.write("\n".join(paths))
        for cache in (False, True):
            pair = []
            for n in (args.n, 10 * args.n):
                result = run_child(os.path.abspath(__file__), paths_file, n, cache, args)
                if "skip" in result:
                    break
                result["model"] = args.model
                pair.append(result)
                print(result, flush=True)
            if len(pair) == 2:
                for key in ("rss_extra", "py_extra"):
                    small, large = pair[0][key + "_mb"], pair[1][key + "_mb"]
                    pair[1][key + "_growth"] = (large - small) / max(small, 1e-9)
                    pair[1][key + "_growth_mb"] = large - small
                # Judged on each measure: tracemalloc's is exact, RSS also sees
                # TensorFlow's and the allocator's memory but moves by a few MiB
                # from run to run (a large share when the peak itself is small).
                pair[1]["py_flat"] = "yes" if pair[1]["py_extra_growth"] < 0.10 else "NO"
                pair[1]["rss_flat"] = "yes" if pair[1]["rss_extra_growth"] < 0.10 else "NO"
            rows += pair
    print_table(
        "peak memory of transform(paths) above its start, minus the output array (MiB)",
        rows,
        ["model", "cache", "n", "output_mb", "one_batch_decoded_mb", "py_extra_mb",
         "py_extra_growth", "py_flat", "rss_extra_mb", "rss_extra_growth", "rss_extra_growth_mb",
         "rss_flat", "seconds"],
    )
    write_json(args.json, "memory", rows)
    return rows


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
