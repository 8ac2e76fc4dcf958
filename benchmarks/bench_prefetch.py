"""Maps of several batches on an accelerator: the next batch computed ahead, or each in turn.

On a GPU the device's pass is cheap and the host's part of ``transform``
(reading the images into a batch, the channel max, pooling, normalization)
takes about as long. ``SensitivityTransformer`` therefore reads and computes
the next batch in a thread while it makes the maps of the current one, when
its engine runs on an accelerator with a backend whose calls leave Python
(``GradientEngine.computes_ahead``: JAX; not PyTorch, nor TensorFlow until
measured). This times, side by side in one run and
per batch, over ``--batches`` batches of VGG16 (random weights, 224 x 224,
Gestalt target, ``cache=False``):

* ``forward``: the engine's compiled forward pass of one batch;
* ``engine``: the engine's forward + backward pass of one batch;
* ``ahead``: ``transform`` of all the batches, one batch ahead, divided by
  the number of batches;
* ``in turn``: the same with ``computes_ahead`` off, so each batch is
  computed, then made into maps, before the next is read.

Both are timed whatever the default; on a CPU the device and the host are
the same cores and nothing is expected.

    KERAS_BACKEND=jax python benchmarks/bench_prefetch.py --batch-size 32 64 --batches 8
    python benchmarks/bench_prefetch.py --model tiny --batch-size 32   # quick, any machine
"""

import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    base_parser,
    build_tiny_model,
    build_vgg16,
    interleaved_medians,
    print_header,
    print_table,
    random_images,
    write_json,
)


def measure(model, size, batch_size, n_batches, repeats):
    from sklearn_sensloc import SensitivityTransformer

    sens = SensitivityTransformer(model=model, target="gestalt", preprocessing="none",
                                  batch_size=batch_size, cache=False).fit(None)
    engine = sens.gradient_engine()
    default = engine.computes_ahead
    images = random_images(batch_size * n_batches, size)
    batch = images[:batch_size]

    def transform(ahead):
        def run():
            engine.computes_ahead = ahead
            try:
                return sens.transform(images)
            finally:
                engine.computes_ahead = default
        return run

    seconds = interleaved_medians(
        {"forward": lambda: engine.forward(batch), "engine": lambda: engine(batch),
         "ahead": transform(True), "in turn": transform(False)},
        repeats=repeats, warmup=2,
    )
    batches = {"forward": 1, "engine": 1, "ahead": n_batches, "in turn": n_batches}
    per_batch = {name: (median / batches[name], minimum / batches[name])
                 for name, (median, minimum) in seconds.items()}
    forward = per_batch["forward"]
    from sklearn_sensloc._engine import accelerators

    row = {"batch": batch_size, "batches": n_batches,
           "device": f"{engine.backend} {', '.join(accelerators()) or 'CPU'}",
           "ahead by default": default, "forward_s": forward[0]}
    for name in ("engine", "ahead", "in turn"):
        row[f"{name} / fwd"] = per_batch[name][0] / forward[0]
        row[f"{name} / fwd (min)"] = per_batch[name][1] / forward[1]
    row["in turn / ahead"] = per_batch["in turn"][0] / per_batch["ahead"][0]
    return row, transform(False)


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["vgg16-random", "tiny"], default="vgg16-random")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true",
                        help="also print where the host's time goes in one transform in turn")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.batches, args.repeats = "tiny", 4, 3

    print_header()
    model, size = (build_vgg16(), 224) if args.model == "vgg16-random" else (
        build_tiny_model(size=64), 64)
    rows = []
    for batch_size in args.batch_size:
        row, in_turn = measure(model, size, batch_size, args.batches, args.repeats)
        rows.append(row)
        print(row, flush=True)
    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(in_turn)
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    print_table(f"{args.model}: seconds per batch / one forward pass, medians of {args.repeats}",
                rows, list(rows[0]))
    write_json(args.json, "prefetch", rows)
    return rows


if __name__ == "__main__":
    main()
