"""BoxRegressor: fit time of both solvers on 5,000 maps, next to the BLAS floor and exact ridge.

Synthetic but realistic maps: each map is rendered from a known box (a soft
box-shaped blob, edges blurred over a few pixels, with multiplicative speckle
as in real gradient maps, plus positive background noise), at 224x224 and
average-pooled like ``SensitivityTransformer(pool=p)`` does, then
max-normalized. The box is thus a smooth but not linear function of the map,
as with real sensitivity maps; what is compared is two linear solvers of the
same problem on a held-out set:

* ``BoxRegressor`` with each solver (``"sgd"``, the default, and
  ``"minibatch"``), the package's defaults otherwise;
* the BLAS floor: the time of the mini-batch solver's matrix products alone
  (``X_batch @ W`` and ``residual.T @ X_batch`` with numpy, for the same
  epochs and mini-batches, on contiguous rows), what no solver reading the
  maps once per mini-batch can go below;
* ``lstsq``: the exact least-squares fit (``np.linalg.lstsq``, minimum-norm
  where features outnumber samples) on standardized features, with an
  intercept;
* ``ridge``: the exact minimizer of the objective BoxRegressor's SGD
  minimizes (squared loss + ``alpha`` L2 on the same scaled features, i.e.
  ``Ridge(alpha=alpha * n_samples)``).

Both predictions go through the same box validation (clip, order corners) and
CorLoc (IoU > 0.5). The gap to the exact solution must be under 1 CorLoc point.

    python benchmarks/bench_regressor.py                      # pools 8, 4, 2 and 1
    python benchmarks/bench_regressor.py --pools 8 4 --quick  # smaller
    python benchmarks/bench_regressor.py --pools 1 --full-max-iter 50  # both solvers, 50 epochs
    python benchmarks/bench_regressor.py --defaults --pools 8 4  # BoxRegressor() vs 50 epochs
    python benchmarks/bench_regressor.py --device keras       # mini-batch products on Keras' device
"""

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import base_parser, print_header, print_table, write_json  # noqa: E402

SIZE = 224


def sample_boxes(n, rng):
    """Boxes (xmin, ymin, xmax, ymax) of 10%..90% of each side, anywhere."""
    sides = rng.uniform(0.1, 0.9, (n, 2))
    centres = rng.uniform(sides / 2, 1 - sides / 2)
    return np.hstack([centres - sides / 2, centres + sides / 2])


def render_maps(boxes, rng, size=SIZE, edge=6.0, chunk=250, pools=(1,)):
    """Maps of ``boxes`` at ``size``, average-pooled by each of ``pools``.

    Returns ``{pool: (n, h*w) float32}``; full-size maps are built in chunks so
    only the requested pooled copies are kept.
    """
    from sklearn_sensloc._maps._steps import average_pool, normalize_maps, pooled_shape

    coords = (np.arange(size) + 0.5) / size
    out = {p: np.empty((len(boxes), math.prod(pooled_shape((size, size), p))), np.float32)
           for p in pools}
    for start in range(0, len(boxes), chunk):
        b = boxes[start : start + chunk]
        # Soft indicator of [lo, hi] along each axis (sigmoid edges of ~edge px).
        def profile(lo, hi):
            k = size / edge
            return (1 / (1 + np.exp(-k * (coords - lo[:, None])))
                    * 1 / (1 + np.exp(-k * (hi[:, None] - coords)))).astype(np.float32)

        cols = profile(b[:, 0], b[:, 2])
        rows = profile(b[:, 1], b[:, 3])
        blob = rows[:, :, None] * cols[:, None, :]
        speckle = np.abs(rng.standard_normal(blob.shape, dtype=np.float32))
        background = 0.15 * np.abs(rng.standard_normal(blob.shape, dtype=np.float32))
        maps = blob * speckle + background
        for p in pools:
            pooled = average_pool(maps, p) if p > 1 else maps
            out[p][start : start + len(b)] = normalize_maps(pooled, "max").reshape(len(b), -1)
    return out


def exact_least_squares(X, y, X_test):
    """Minimum-norm least squares on standardized features, with intercept."""
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1
    A = (X - mean) / std
    coef, *_ = np.linalg.lstsq(A, y - y.mean(axis=0), rcond=None)
    return ((X_test - mean) / std) @ coef + y.mean(axis=0)


def exact_ridge(X, y, X_test, alpha):
    """Exact minimizer of BoxRegressor's objective on its own feature scaling."""
    from sklearn.linear_model import Ridge

    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1
    norm = 1 / math.sqrt(X.shape[1])
    # SGDRegressor: mean(0.5 * err^2) + 0.5 * alpha * |w|^2
    # Ridge:        sum(err^2) + alpha_r * |w|^2        ->  alpha_r = alpha * n
    ridge = Ridge(alpha=alpha * len(X)).fit((X - mean) / std * norm, y)
    return ridge.predict((X_test - mean) / std * norm)


def blas_floor(X, y, max_iter, batch_size=2048):
    """Seconds of the mini-batch solver's two matrix products alone, for ``max_iter`` epochs."""
    weights = np.zeros((X.shape[1], 4), np.float32)
    targets = y.astype(np.float32)
    start = time.perf_counter()
    for _ in range(max_iter):
        for first in range(0, len(X), batch_size):
            batch = X[first : first + batch_size]
            residual = batch @ weights - targets[first : first + batch_size]
            weights -= 1e-9 * (residual.T @ batch).T
    return time.perf_counter() - start


def device_floor(X, y, max_iter, batch_size=2048):
    """:func:`blas_floor` on the Keras backend's default device, the maps copied there first.

    The products go through ``keras.ops`` and the weights update comes back
    to numpy after each, as in the solver; the copy is not timed.
    """
    from keras import ops

    on_device = ops.convert_to_tensor(X, dtype="float32")
    targets = ops.convert_to_tensor(y, dtype="float32")
    weights = np.zeros((X.shape[1], 4), np.float32)
    start = time.perf_counter()
    for _ in range(max_iter):
        for first in range(0, len(X), batch_size):
            batch = on_device[first : first + batch_size]
            residual = ops.matmul(batch, ops.convert_to_tensor(weights))
            residual = residual - targets[first : first + batch_size]
            weights -= 1e-9 * ops.convert_to_numpy(ops.matmul(ops.transpose(batch), residual))
    return time.perf_counter() - start


def run_pool(pool, maps, boxes, maps_test, boxes_test, max_iter, sgd_max_iter, lstsq_limit,
             device="cpu"):
    from sklearn_sensloc import BoxRegressor, CenterBoxBaseline, corloc_score
    from sklearn_sensloc._metrics._boxes import to_valid_boxes

    row = {"pool": pool, "features": maps.shape[1], "n_train": len(maps), "max_iter": max_iter,
           "sgd_max_iter": sgd_max_iter}
    for solver, epochs in [("sgd", sgd_max_iter), ("minibatch", max_iter)]:
        # The solvers on the paper's plain regression (no square root, no
        # mirrored maps, least-squares boxes), which the exact ridge solution
        # below also solves.
        reg = BoxRegressor(random_state=0, max_iter=epochs, solver=solver, power=1, flip=False,
                           alpha=1e-4, box_scale=1,
                           device=device if solver == "minibatch" else "cpu")
        start = time.perf_counter()
        reg.fit(maps, boxes)
        row[f"fit_s_{solver}"] = time.perf_counter() - start
        row[f"corloc_{solver}"] = corloc_score(boxes_test, reg.predict(maps_test))
    row["minibatch_device"] = reg.device_
    row["fit_s"] = row["fit_s_sgd"]
    row["floor_s"] = blas_floor(maps, boxes, max_iter)
    row["minibatch_over_floor"] = row["fit_s_minibatch"] / row["floor_s"]
    if device == "keras":
        # The solver's products ran on Keras' device: its floor is the device's.
        row["device_floor_s"] = device_floor(maps, boxes, max_iter)
        row["minibatch_over_device_floor"] = row["fit_s_minibatch"] / row["device_floor_s"]
    # Per epoch, so that an SGD run with fewer epochs still compares.
    row["sgd_over_minibatch_per_epoch"] = (
        row["fit_s_sgd"] / sgd_max_iter / (row["fit_s_minibatch"] / max_iter)
    )

    start = time.perf_counter()
    ridge = to_valid_boxes(exact_ridge(maps, boxes, maps_test, reg.alpha))
    row["ridge_s"] = time.perf_counter() - start
    row["corloc_ridge"] = corloc_score(boxes_test, ridge)
    if maps.shape[1] <= lstsq_limit:
        start = time.perf_counter()
        lstsq = to_valid_boxes(exact_least_squares(maps, boxes, maps_test))
        row["lstsq_s"] = time.perf_counter() - start
        row["corloc_lstsq"] = corloc_score(boxes_test, lstsq)
    center = CenterBoxBaseline().fit(maps, boxes)
    row["corloc_center"] = corloc_score(boxes_test, center.predict(maps_test))
    row["gap_vs_ridge"] = row["corloc_sgd"] - row["corloc_ridge"]
    row["gap_minibatch_vs_ridge"] = row["corloc_minibatch"] - row["corloc_ridge"]
    if "corloc_lstsq" in row:
        row["gap_vs_lstsq"] = row["corloc_sgd"] - row["corloc_lstsq"]
    # The criterion: each solver at most 1 CorLoc point below the exact solution.
    row["within_1pt"] = "yes" if row["gap_vs_ridge"] >= -1 else "NO"
    row["minibatch_within_1pt"] = "yes" if row["gap_minibatch_vs_ridge"] >= -1 else "NO"
    return row


def default_epochs(pool, maps, boxes, maps_test, boxes_test, repeats=3):
    """The default ``BoxRegressor()`` against the same with 50 epochs, the default until 2026-11-27.

    Both with every other default (square-rooted, mirrored maps), timed
    round-robin in one process; the median of ``repeats`` fits each.
    """
    from sklearn_sensloc import BoxRegressor, corloc_score

    candidates = {"default": {}, "50 epochs": {"max_iter": 50}}
    seconds = {name: [] for name in candidates}
    row = {"pool": pool, "features": maps.shape[1]}
    for _ in range(repeats):
        for name, params in candidates.items():
            reg = BoxRegressor(random_state=0, **params)
            start = time.perf_counter()
            reg.fit(maps, boxes)
            seconds[name].append(time.perf_counter() - start)
            # The same seed every repeat: the same model, so the last CorLoc is every one's.
            row[f"corloc ({name})"] = corloc_score(boxes_test, reg.predict(maps_test))
    for name in candidates:
        row[f"fit_s ({name})"] = float(np.median(seconds[name]))
    row["speed-up"] = row["fit_s (50 epochs)"] / row["fit_s (default)"]
    return row


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--pools", type=int, nargs="+", default=[8, 4, 2, 1])
    parser.add_argument("--max-iter", type=int, default=50, help="epochs (BoxRegressor default 50)")
    parser.add_argument("--full-max-iter", type=int, default=10,
                        help="SGD epochs at pool 1 (224x224 = 50,176 features), kept small for "
                        "time; the mini-batch solver always runs --max-iter")
    parser.add_argument("--lstsq-limit", type=int, default=20000,
                        help="skip np.linalg.lstsq above this many features (SVD time)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "keras"], default="cpu",
                        help="BoxRegressor(device=...) of the mini-batch solver")
    parser.add_argument("--defaults", action="store_true",
                        help="instead: the default BoxRegressor() against 50 epochs (the "
                        "default until 2026-11-27), side by side at each pool")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.pools = 1000, 300, [8, 4]

    print_header()
    rng = np.random.default_rng(args.seed)
    boxes = sample_boxes(args.n_train, rng)
    boxes_test = sample_boxes(args.n_test, rng)
    start = time.perf_counter()
    maps = render_maps(boxes, rng, pools=args.pools)
    maps_test = render_maps(boxes_test, rng, pools=args.pools)
    print(f"rendered {args.n_train}+{args.n_test} maps in {time.perf_counter() - start:.1f} s")
    # Warms the solver up (with device="keras", the backend's device too) before any timing.
    from sklearn_sensloc import BoxRegressor

    BoxRegressor(solver="minibatch", device=args.device).fit(boxes[:8], boxes[:8])
    if args.defaults:
        rows = [default_epochs(pool, maps[pool], boxes, maps_test[pool], boxes_test)
                for pool in args.pools]
        print_table(f"BoxRegressor() on {args.n_train} synthetic maps, {args.n_test} held out",
                    rows, list(rows[0]))
        write_json(args.json, "regressor_defaults", rows)
        return rows
    rows = []
    for pool in args.pools:
        sgd_max_iter = args.full_max_iter if pool == 1 else args.max_iter
        row = run_pool(pool, maps[pool], boxes, maps_test[pool], boxes_test, args.max_iter,
                       sgd_max_iter, args.lstsq_limit, args.device)
        rows.append(row)
        print(row, flush=True)
        del maps[pool], maps_test[pool]
    print_table(
        f"BoxRegressor on {args.n_train} synthetic maps, CorLoc (%) on {args.n_test} held out",
        rows,
        ["pool", "features", "sgd_max_iter", "fit_s_sgd", "max_iter", "fit_s_minibatch",
         "minibatch_device", "floor_s",
         "minibatch_over_floor", "device_floor_s", "minibatch_over_device_floor",
         "sgd_over_minibatch_per_epoch", "corloc_sgd", "corloc_minibatch",
         "corloc_ridge", "corloc_lstsq", "within_1pt", "minibatch_within_1pt", "corloc_center",
         "ridge_s", "lstsq_s"],
    )
    write_json(args.json, "regressor", rows)
    return rows


if __name__ == "__main__":
    main()
