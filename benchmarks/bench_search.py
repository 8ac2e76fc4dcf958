"""A 2x2x3 GridSearchCV over map-side parameters and eta0 versus one transform pass.

Raw gradients are computed once per image and model and reused by every fold
and candidate, so the whole search should cost little more than the single
pass over the images that computes them. Prints both times and their ratio,
measured side by side in one run.

    python benchmarks/bench_search.py [--n-images 48] [--model vgg16-hed]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from sklearn_sensloc import (  # noqa: E402
    BoxRegressor,
    CorLocScorer,
    SensitivityTransformer,
    gradient_cache,
    make_sample_scenes,
)
from sklearn_sensloc._gradients import GradientEngine  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=48)
    parser.add_argument("--model", default="vgg16-hed")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    scenes = make_sample_scenes(args.n_images, random_state=0)
    X, boxes = scenes.images, scenes.boxes

    warm = SensitivityTransformer(model=args.model, batch_size=args.batch_size, cache=False).fit(None)
    warm.transform(X[:2])  # builds the model and traces the gradient function once

    start = time.perf_counter()
    SensitivityTransformer(model=args.model, batch_size=args.batch_size, cache=False).fit(None).transform(X)
    one_pass = time.perf_counter() - start

    gradient_cache.clear()
    pipe = Pipeline(
        [
            ("sens", SensitivityTransformer(model=args.model, batch_size=args.batch_size)),
            ("box", BoxRegressor(random_state=0)),
        ]
    )
    grid = {"sens__aggregation": ["max", "mean"], "sens__pool": [4, 8], "box__eta0": [0.01, 0.1, 0.2]}
    before = GradientEngine.images_processed
    start = time.perf_counter()
    search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
    search_time = time.perf_counter() - start
    backward_images = GradientEngine.images_processed - before

    print(f"model={args.model} images={args.n_images} batch_size={args.batch_size}")
    print(f"candidates x folds: {len(search.cv_results_['params'])} x 3 (+ refit)")
    print(f"images through a backward pass during the search: {backward_images}")
    print(f"one transform pass: {one_pass:.2f} s")
    print(f"whole search:       {search_time:.2f} s")
    print(f"ratio search / one pass: {search_time / one_pass:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
