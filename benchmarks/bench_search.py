"""A 2x2x3 GridSearchCV over map-side parameters and eta0 versus one transform pass.

Raw gradients are computed once per image and model and reused by every fold
and candidate, and every clone of the transformer shares its model and compiled
engine, so the whole search should cost little more than the single pass over
the images that computes them. The two are timed side by side, round-robin
(``--repeats`` times each, the gradient cache, its maps and the images' keys
cleared before every search, so that each search computes them once itself),
and the medians compared.

``--model`` is a registered name (``vgg16-hed``), ``tiny`` (the test suite's
small CNN, untrained, at 64 x 64) or ``vgg16-random`` (a ``keras.Model``:
VGG16 with random weights at 224 x 224); the last two are passed as
``keras.Model`` objects, which a search used to deep-copy for every clone.

    python benchmarks/bench_search.py [--n-images 48] [--model vgg16-hed] [--repeats 3]
    python benchmarks/bench_search.py --model tiny --n-images 240
    python benchmarks/bench_search.py --model vgg16-random --n-images 48
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    base_parser,
    build_tiny_model,
    build_vgg16,
    interleaved_medians,
    load_average,
    print_header,
    write_json,
)

from sklearn.model_selection import GridSearchCV, ParameterGrid
from sklearn.pipeline import Pipeline

from sklearn_sensloc import (
    BoxRegressor,
    CorLocScorer,
    SensitivityTransformer,
    gradient_cache,
    make_sample_scenes,
)
from sklearn_sensloc._engine import SAMPLING_METHODS, GradientEngine


GRIDS = {
    "design": {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]},
    "wide": {"sens__aggregation": ["max", "mean"], "sens__pool": [4, 8],
             "box__eta0": [0.01, 0.1, 0.2]},
}


def time_search(model, X, boxes, *, batch_size, grid, repeats, box_params=None, **params):
    """One ``transform`` pass over ``X`` and a 3-fold search over ``grid``, side by side.

    ``params`` go to both transformers, ``box_params`` to the search's
    ``BoxRegressor``. Returns ``{"one pass": (median, minimum), "search":
    (median, minimum)}`` in seconds and the numbers of images each search
    sent through a backward pass.
    """
    one_pass = SensitivityTransformer(model=model, batch_size=batch_size, cache=False, **params)
    one_pass.fit(None)
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=model, batch_size=batch_size, **params)),
            ("box", BoxRegressor(random_state=0, **(box_params or {}))),
        ]
    )
    backward_images = []
    engine_call, engine_maps = GradientEngine.__call__, GradientEngine.maps

    def search():
        # Gradients, the maps made from them and the images' keys: the search meets them first.
        gradient_cache.clear()
        counted = []

        def counting(engine, images):
            counted.append(len(images))
            return engine_call(engine, images)

        def counting_maps(engine, images, settings, **kwargs):
            # Maps made with the pass on the device (map_device="keras"); a
            # sampling method's go through __call__, counted there.
            if engine.method not in SAMPLING_METHODS:
                counted.append(len(images))
            return engine_maps(engine, images, settings, **kwargs)

        # Counts the images the search sends through a backward pass.
        GradientEngine.__call__, GradientEngine.maps = counting, counting_maps
        try:
            GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
        finally:
            GradientEngine.__call__, GradientEngine.maps = engine_call, engine_maps
        backward_images.append(sum(counted))

    times = interleaved_medians(
        {"one pass": lambda: one_pass.transform(X), "search": search},
        repeats=repeats,
        warmup=1,
    )
    return times, backward_images


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=48)
    parser.add_argument("--model", default="vgg16-hed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="wide",
                        help="design: the design card's 2x2 grid (aggregation x eta0); "
                             "wide: 2x2x3 (aggregation x pool x eta0)")
    args = parser.parse_args()
    n_images = 12 if args.quick else args.n_images

    model = {"tiny": lambda: build_tiny_model(size=64), "vgg16-random": build_vgg16}.get(
        args.model, lambda: args.model
    )()
    size = 64 if args.model == "tiny" else 224
    scenes = make_sample_scenes(n_images, image_size=size, random_state=0)
    grid = GRIDS[args.grid]

    print_header()
    times, backward_images = time_search(model, scenes.images, scenes.boxes,
                                         batch_size=args.batch_size, grid=grid,
                                         repeats=args.repeats)
    print(load_average())
    (pass_median, pass_min), (search_median, search_min) = times["one pass"], times["search"]
    row = {
        "model": args.model, "images": n_images, "batch": args.batch_size, "grid": args.grid,
        "candidates": len(ParameterGrid(grid)), "folds": 3, "repeats": args.repeats,
        "backward_images_per_search": max(backward_images),
        "pass_median_s": pass_median, "search_median_s": search_median,
        "ratio": search_median / pass_median, "ratio_min": search_min / pass_min,
    }
    print(f"model={args.model} images={n_images} batch_size={args.batch_size} "
          f"repeats={args.repeats}")
    print(f"candidates x folds: {row['candidates']} x 3 (+ refit)")
    print(f"images through a backward pass per search: {sorted(set(backward_images))}")
    print(f"one transform pass: median {pass_median:.2f} s, min {pass_min:.2f} s")
    print(f"whole search:       median {search_median:.2f} s, min {search_min:.2f} s")
    target = {"tiny": 2.0, "vgg16-random": 1.3}.get(args.model, 1.5)
    row["target"] = target
    print(f"ratio search / one pass: {row['ratio']:.2f} "
          f"(min / min {row['ratio_min']:.2f}; target <= {target})")
    write_json(args.json, "search", [row])

if __name__ == "__main__":
    main()
