"""Where a map's time goes: TensorFlow's kernel times, op by op, and the floor they set.

``bench_map_vs_forward.py`` times a map against a forward pass from outside.
This script looks inside both calls: each compiled function (the model's
forward pass, and the gradient engine's forward + backward pass) runs with
TensorFlow's full tracing, which records how long every kernel ran, and the
kernel times are added up by kind:

* ``conv fwd``: the forward convolutions (``Conv2D``, bias and ReLU fused);
* ``conv bwd``: the input-gradient convolutions (``Conv2DBackpropInput``),
  one per convolution layer, which any exact input gradient needs;
* ``other bwd``: the rest of the backward pass (``ReluGrad``,
  ``MaxPoolGrad``, ...);
* ``kernels``: everything the call ran, next to its wall time.

``map kernels / fwd kernels`` is the map/forward ratio that an implementation
running exactly these kernels, with no overhead at all, would measure: the
floor for exact float32 gradients with this TensorFlow on this machine.
``conv bwd / conv fwd`` says how the input-gradient convolutions compare with
the forward ones, which sets it. Tracing costs a little per kernel: the sums
are a floor for models with long kernels such as VGG16, not for the tiny CNN,
whose kernels last microseconds (reported for reference).

    python benchmarks/bench_kernels.py            # tiny CNN + VGG16 224x224
    python benchmarks/bench_kernels.py --quick    # tiny CNN only
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
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


def measure(label, model, images, repeats):
    import tensorflow as tf

    from sklearn_sensloc import SensitivityTransformer

    sens = SensitivityTransformer(model=model, target="gestalt", preprocessing="none", cache=False)
    engine = sens.fit(None).gradient_engine()
    spec = tf.TensorSpec([None, *engine.input_size, 3], tf.float32)

    @tf.function(input_signature=[spec])
    def forward(x):
        return model(x, training=False)

    walls = interleaved_medians(
        {
            "forward": lambda: forward(tf.convert_to_tensor(images)).numpy(),
            "map": lambda: engine(images),
        },
        repeats=repeats,
        warmup=2,
    )
    fwd = kernel_seconds(forward, images, repeats=repeats)
    grad = kernel_seconds(engine._gradients.tf_function, images, repeats=repeats)
    backward = {kind: s for kind, s in grad.items() if "Grad" in kind or "Backprop" in kind}
    conv_fwd = sum(s for kind, s in grad.items() if kind.startswith(("Conv2D", "FusedConv2D"))
                   and kind not in backward)
    conv_bwd = backward.get("Conv2DBackpropInput", 0.0)
    fwd_kernels, map_kernels = sum(fwd.values()), sum(grad.values())
    top = sorted(grad.items(), key=lambda item: -item[1])[:6]
    print(f"{label}: map kernels by kind: "
          + ", ".join(f"{kind} {seconds * 1e3:.1f} ms" for kind, seconds in top), flush=True)
    return {
        "model": label,
        "batch": len(images),
        "fwd_wall_s": walls["forward"][0],
        "fwd_kernels_s": fwd_kernels,
        "map_wall_s": walls["map"][0],
        "map_kernels_s": map_kernels,
        "conv_fwd_s": conv_fwd,
        "conv_bwd_s": conv_bwd,
        "other_bwd_s": sum(backward.values()) - conv_bwd,
        "wall_ratio": walls["map"][0] / walls["forward"][0],
        "kernel_floor": map_kernels / fwd_kernels,
        "conv_bwd_over_fwd": conv_bwd / conv_fwd if conv_fwd else float("nan"),
        "map_overhead": walls["map"][0] / map_kernels - 1.0,
        "repeats": repeats,
    }


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vgg-batch", type=int, default=8)
    parser.add_argument("--tiny-batch", type=int, default=32)
    args = parser.parse_args(argv)

    print_header()
    rows = [
        measure("tiny CNN 32x32", build_tiny_model(size=32), random_images(args.tiny_batch, 32),
                args.repeats * 4),
        measure("tiny CNN 224x224", build_tiny_model(size=224),
                random_images(args.vgg_batch, 224), args.repeats * 2),
    ]
    if not args.quick:
        rows.append(measure("VGG16 conv 224x224", build_vgg16(),
                            random_images(args.vgg_batch, 224), args.repeats))
    print(load_average())
    print_table(
        "kernel times of a forward pass and of a map (gestalt target; seconds, medians)",
        rows,
        ["model", "batch", "fwd_wall_s", "fwd_kernels_s", "map_wall_s", "map_kernels_s",
         "conv_fwd_s", "conv_bwd_s", "other_bwd_s", "wall_ratio", "kernel_floor",
         "conv_bwd_over_fwd", "map_overhead"],
    )
    write_json(args.json, "kernels", rows)
    return rows


if __name__ == "__main__":
    main()
