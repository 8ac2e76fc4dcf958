"""PyTorch classifiers: maps of a timm ResNet50 and ViT-S/16 against the same gradient by hand.

Run under Keras' PyTorch backend (this script sets ``KERAS_BACKEND=torch``
when it is unset) with the ``torch`` extra; the models have random weights
(timing and equality need no trained ones, and nothing is downloaded). Per
model, at 224x224, batch 8, class score (the predicted class's logit):

- equality: the engine's maps against ``torch.autograd.grad`` written by
  hand on the same module, normalization and images: largest difference
  over the map's maximum;
- timing, side by side in one run (round-robin, medians and minima): the
  module's forward pass alone (no gradient), the input gradient written by
  hand with ``torch.autograd.grad`` (the floor: what any implementation must
  run), the engine (``gradient_engine()(images)``), ``transform`` (cache off)
  and, where it is installed, Captum's ``Saliency`` on the same module.

    python benchmarks/bench_torch_modules.py [--repeats 5] [--threads 2]
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    base_parser,
    interleaved_medians,
    print_header,
    print_table,
    random_images,
    write_json,
)

MODELS = {"ResNet50": "resnet50", "ViT-S/16": "vit_small_patch16_224"}


def main():
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: PyTorch's own)")
    args = parser.parse_args()
    import timm
    import torch

    from sklearn_sensloc import SensitivityTransformer

    if args.threads:
        torch.set_num_threads(args.threads)
    print_header()
    try:
        from captum.attr import Saliency
    except ImportError:
        Saliency = None
        print("captum is not installed: its Saliency is left out.")
    rows = []
    for label, name in MODELS.items():
        torch.manual_seed(0)
        module = timm.create_model(name, pretrained=False).eval()
        config = module.pretrained_cfg
        sens = SensitivityTransformer(model=module, target="class", cache=False, pool=1,
                                      batch_size=args.batch).fit(None)
        engine = sens.gradient_engine()
        images = random_images(args.batch, 224, seed=1)
        mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(config["std"]).view(1, 3, 1, 1)

        def by_hand():
            pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().requires_grad_()
            scores = module((pixels / 255.0 - mean) / std)
            (gradient,) = torch.autograd.grad(scores.max(1).values.sum(), pixels)
            return gradient.abs().permute(0, 2, 3, 1).numpy()

        def forward():
            with torch.no_grad():
                pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
                return module((pixels / 255.0 - mean) / std)

        contenders = {"forward (no gradient)": forward, "by hand (floor)": by_hand,
                      "engine": lambda: engine(images), "transform": lambda: sens.transform(images)}
        if Saliency is not None:
            saliency = Saliency(lambda pixels: module((pixels / 255.0 - mean) / std))

            def captum():
                pixels = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
                with torch.no_grad():
                    classes = module((pixels / 255.0 - mean) / std).argmax(1)
                return saliency.attribute(pixels, target=classes, abs=True)

            contenders["captum Saliency"] = captum
        expected = by_hand()
        found = engine(images)
        difference = float(np.abs(found - expected).max() / expected.max())
        times = interleaved_medians(contenders, args.repeats)
        floor = times["by hand (floor)"]
        for contender, (median, minimum) in times.items():
            rows.append({"model": label, "contender": contender, "median s": median,
                         "min s": minimum,
                         "/ forward": median / times["forward (no gradient)"][0],
                         "/ floor": median / floor[0], "min / min floor": minimum / floor[1],
                         "max |maps - by hand| / max": difference})
    print_table("PyTorch modules, 224x224, batch %d, class score" % args.batch, rows,
                ["model", "contender", "median s", "min s", "/ forward", "/ floor",
                 "min / min floor", "max |maps - by hand| / max"])
    write_json(args.json, "torch_modules", rows)


if __name__ == "__main__":
    main()
