"""Each saliency method of ours against the peer library that offers it.

Same model (a small tanh CNN with random weights, 16 x 16 RGB inputs that the
model rescales itself, so ``preprocessing="none"``), same images, same class
target. Ours are absolute per-channel attributions (``GradientEngine``
output, before aggregation); the peers' are made absolute the same way.

* gradient, gradient x input, integrated gradients: xplique's
  ``GradientInput`` / ``IntegratedGradients`` (``reducer=None``); 400 path
  points each (xplique puts them at ``linspace(0, 1)``, we at midpoints).
* SmoothGrad: tf-keras-vis' ``Saliency(smooth_samples=800, smooth_noise=0.2,
  normalize_map=False)``: the noise differs, so the maps agree to Monte-Carlo
  error only.
* Grad-CAM: xplique's ``GradCAM``, which upsamples bicubically where we do
  bilinearly; the same Grad-CAM before upsampling, resized bicubically,
  must equal xplique's.

Prints, per pair, the largest difference relative to the largest value, and
the correlation. Not a test: xplique and tf-keras-vis are not dependencies;
run it in the benchmark environment (benchmarks/README.md).
"""

import numpy as np
import keras
import tensorflow as tf
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.utils.scores import CategoricalScore
from xplique.attributions import GradCAM, GradientInput, IntegratedGradients

from sklearn_sensloc import SensitivityTransformer

CLASS = 2


def ours(model, images, method, **params):
    sens = SensitivityTransformer(
        model=model, method=method, target=CLASS, preprocessing="none", cache=False, **params
    )
    return sens.fit(None).gradient_engine()(images)


def report(name, mine, theirs):
    mine, theirs = np.ravel(mine).astype(np.float64), np.ravel(theirs).astype(np.float64)
    difference = np.abs(mine - theirs).max() / np.abs(theirs).max()
    print(f"{name:<42} max rel diff {difference:.1e}  corr {np.corrcoef(mine, theirs)[0, 1]:.6f}")


def main():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(6, 3, padding="same", activation="tanh"),
            keras.layers.Conv2D(5, 3, activation="tanh", name="top_conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    images = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[[CLASS] * len(images)]

    times_input = GradientInput(model, reducer=None).explain(images, targets)
    report("gradient vs xplique (GxI / x)", ours(model, images, "gradient"), np.abs(times_input / images))
    report("gradient_x_input vs xplique", ours(model, images, "gradient_x_input"), np.abs(times_input))
    integrated = IntegratedGradients(model, reducer=None, steps=400, baseline_value=0.0)
    report(
        "integrated_gradients vs xplique",
        ours(model, images, "integrated_gradients", n_samples=400, batch_size=256),
        np.abs(integrated.explain(images, targets)),
    )
    smooth = Saliency(model, clone=True)(
        CategoricalScore([CLASS] * len(images)), images,
        smooth_samples=800, smooth_noise=0.2, keepdims=True, normalize_map=False,
    )
    report("smoothgrad vs tf-keras-vis", ours(model, images, "smoothgrad", n_samples=800, batch_size=256), smooth)

    theirs = np.asarray(GradCAM(model, conv_layer="top_conv").explain(images, targets))
    mine = ours(model, images, "gradcam")[..., :1]
    report("gradcam vs xplique (after max scaling)", mine / mine.max(), theirs / theirs.max())
    features = keras.Model(model.inputs, [model.get_layer("top_conv").output, model.layers[-1].output])
    with tf.GradientTape() as tape:
        activations, scores = features(tf.convert_to_tensor(images))
        total = tf.reduce_sum(scores[:, CLASS])
    weights = tf.reduce_mean(tape.gradient(total, activations), axis=(1, 2), keepdims=True)
    small = tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1, keepdims=True))
    report("gradcam, bicubic upsampling, vs xplique", tf.image.resize(small, (16, 16), "bicubic"), theirs)


if __name__ == "__main__":
    main()
