"""Ours vs xplique's and tf-keras-vis' Saliency: same model, images, target.

Saliency (Simonyan et al. 2013) is the same quantity as a sensitivity map:
the absolute input gradient of a scalar score, reduced over the colour
channels by a max. Every contender here gets the same model, the same float32
images and the same target, and its maps are checked against ours to float
tolerance *before* anything is timed:

* ours: ``SensitivityTransformer(aggregation="max", normalize=None, pool=1,
  cache=False).transform`` -- the full user path, numpy out;
* ``xplique.attributions.Saliency(model, batch_size=B, reducer="max")
  .explain(images, targets)`` with one-hot (class) or all-ones (gestalt)
  targets, converted to numpy;
* ``tf_keras_vis.saliency.Saliency(model, clone=False)(score, images,
  normalize_map=False)`` (default ``gradient_modifier=abs``, ``keepdims=False``:
  max over channels), called batch by batch.

Targets: a class score (a classifier with a Dense head, ``target=<int>`` for
us, the matching one-hot / ``CategoricalScore``-like score for the peers) and
the Gestalt Total (``target="gestalt"`` for us; for the peers, a model whose
output is the mean of the last convolutional layer).

Next to the times, ``kernel_floor_s`` is what TensorFlow's kernels of the
exact forward + backward pass take alone (see ``bench_kernels.py``), batch by
batch, with no overhead around them: ``floor_over_theirs`` is the lowest
``ours_over_theirs`` that any implementation running those kernels could
reach.

xplique and tf-keras-vis are *not* dependencies of the package: run this in
the benchmark environment described in benchmarks/README.md. A peer that
fails to import or to run is reported with its error and skipped.

    python benchmarks/bench_peers.py            # tiny CNN + VGG16 224x224
    python benchmarks/bench_peers.py --quick    # tiny CNN only
"""

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import (  # noqa: E402
    base_parser,
    build_tiny_model,
    build_vgg16,
    interleaved_medians,
    kernel_seconds,
    load_average,
    print_header,
    print_table,
    random_images,
    write_json,
)


def vgg16_classifier(n_classes=10, seed=0):
    """VGG16 backbone + global average pooling + Dense head (random weights)."""
    import keras

    base = build_vgg16(seed)
    x = keras.layers.GlobalAveragePooling2D()(base.output)
    out = keras.layers.Dense(n_classes, name="logits")(x)
    return keras.Model(base.input, out, name="vgg16_classifier")


def gestalt_model(model, layer_name):
    """The same network, output = mean activation of ``layer_name``, shape (n, 1)."""
    import keras

    features = model.get_layer(layer_name).output
    mean = keras.ops.mean(features, axis=(1, 2, 3))[:, None]
    return keras.Model(model.inputs[0], mean, name=model.name + "_gestalt")


def load_peers():
    """Import the peers; returns ({name: module-ish}, {name: error text})."""
    found, failed = {}, {}
    try:
        from xplique.attributions import Saliency as XpliqueSaliency

        found["xplique"] = XpliqueSaliency
    except Exception as error:  # noqa: BLE001 - report whatever it is
        failed["xplique"] = f"import failed: {type(error).__name__}: {error}"
    try:
        from tf_keras_vis.saliency import Saliency as VisSaliency

        found["tf-keras-vis"] = VisSaliency
    except Exception as error:  # noqa: BLE001
        failed["tf-keras-vis"] = f"import failed: {type(error).__name__}: {error}"
    return found, failed


def make_contenders(peers, model, peer_model, target, n_outputs, images, batch_size):
    """Callables returning (n, H, W) float32 maps, ours first."""
    from sklearn_sensloc import SensitivityTransformer

    params = dict(model=model, target=target, aggregation="max", normalize=None, pool=1,
                  batch_size=batch_size)
    if "cache" in SensitivityTransformer().get_params():
        params["cache"] = False
    ours = SensitivityTransformer(**params).fit(None)
    h, w = ours.map_shape_
    contenders = {"ours": lambda: ours.transform(images).reshape(len(images), h, w)}

    if isinstance(target, str):  # gestalt: peer_model outputs the mean, (n, 1)
        onehot = np.ones((len(images), 1), np.float32)
        column = 0
    else:
        onehot = np.zeros((len(images), n_outputs), np.float32)
        onehot[:, target] = 1
        column = target

    if "xplique" in peers:
        explainer = peers["xplique"](peer_model, batch_size=batch_size, reducer="max")
        contenders["xplique"] = lambda: np.asarray(explainer.explain(images, onehot))[..., 0]

    if "tf-keras-vis" in peers:
        saliency = peers["tf-keras-vis"](peer_model, clone=False)

        def score(output):
            return output[:, column]

        def vis():
            return np.concatenate([
                saliency(score, images[i : i + batch_size], normalize_map=False)
                for i in range(0, len(images), batch_size)
            ])

        contenders["tf-keras-vis"] = vis
    return contenders, ours


def check_agreement(contenders, failed):
    """Max relative difference of each peer's maps to ours; drops failing peers."""
    reference = contenders["ours"]()
    scale = float(np.abs(reference).max()) or 1.0
    agreement = {}
    for name in list(contenders):
        if name == "ours":
            continue
        try:
            got = contenders[name]()
        except Exception as error:  # noqa: BLE001
            failed[name] = f"run failed: {type(error).__name__}: {error}"
            traceback.print_exc()
            del contenders[name]
            continue
        if got.shape != reference.shape:
            failed[name] = f"shape {got.shape} != ours {reference.shape}"
            del contenders[name]
            continue
        diff = float(np.abs(got - reference).max()) / scale
        agreement[name] = (diff, bool(np.allclose(got, reference, rtol=1e-4, atol=1e-5 * scale)))
    return agreement


def bench_case(label, peers, failed, model, peer_model, target, n_outputs, images, batch_size,
               repeats):
    contenders, ours_transformer = make_contenders(
        peers, model, peer_model, target, n_outputs, images, batch_size
    )
    agreement = check_agreement(contenders, failed)
    result = interleaved_medians(contenders, repeats=repeats, warmup=1)
    # What the kernels of the exact forward + backward pass alone take, batch
    # by batch: no implementation that runs them, ours or a peer's, can be
    # faster. floor / theirs is the lowest ours / theirs could ever reach.
    gradients = ours_transformer.gradient_engine()._gradients.tf_function
    floor = sum(
        sum(kernel_seconds(gradients, images[start : start + batch_size]).values())
        for start in range(0, len(images), batch_size)
    )
    ours, ours_min = result["ours"]
    rows = []
    for name, (median, minimum) in result.items():
        diff, ok = agreement.get(name, (0.0, None))
        rows.append({"case": label, "target": str(target), "images": len(images),
                     "batch": batch_size, "contender": name, "median_s": median,
                     "ours_over_theirs": ours / median, "kernel_floor_s": floor,
                     "floor_over_theirs": floor / median, "min_s": minimum,
                     "ours_over_theirs_min": ours_min / minimum, "max_rel_diff": diff,
                     "agree": "-" if ok is None else ("yes" if ok else "NO"),
                     "repeats": repeats})
    for row in rows:
        print(row, flush=True)
    return rows


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats for VGG16")
    parser.add_argument("--tiny-repeats", type=int, default=20)
    parser.add_argument("--vgg-images", type=int, default=8)
    parser.add_argument("--vgg-batch", type=int, default=8)
    parser.add_argument("--tiny-images", type=int, default=64)
    parser.add_argument("--tiny-batch", type=int, default=32)
    args = parser.parse_args(argv)

    print_header()
    peers, failed = load_peers()
    for name, error in failed.items():
        print(f"{name}: {error}")

    rows = []
    tiny = build_tiny_model(size=32, n_classes=10)
    images = random_images(args.tiny_images, 32)
    rows += bench_case("tiny CNN 32x32", peers, failed, tiny, tiny, 3, 10, images,
                       args.tiny_batch, args.tiny_repeats)
    rows += bench_case("tiny CNN 32x32", peers, failed, tiny, gestalt_model(tiny, "last_conv"),
                       "gestalt", 1, images, args.tiny_batch, args.tiny_repeats)
    if not args.quick:
        vgg = vgg16_classifier()
        images = random_images(args.vgg_images, 224)
        rows += bench_case("VGG16+GAP+Dense 224x224", peers, failed, vgg, vgg, 3, 10, images,
                           args.vgg_batch, args.repeats)
        rows += bench_case("VGG16 224x224", peers, failed, vgg, gestalt_model(vgg, "block5_conv3"),
                           "gestalt", 1, images, args.vgg_batch, args.repeats)
    print(load_average())
    print_table(
        "ours vs peers' Saliency (same model, images, target; max over channels of |grad|)",
        rows,
        ["case", "target", "images", "batch", "contender", "median_s", "ours_over_theirs",
         "kernel_floor_s", "floor_over_theirs", "min_s", "ours_over_theirs_min", "max_rel_diff",
         "agree", "repeats"],
    )
    for name, error in failed.items():
        print(f"NOT BENCHMARKED {name}: {error}")
    write_json(args.json, "peers", rows, failed=failed)
    return rows


if __name__ == "__main__":
    main()
