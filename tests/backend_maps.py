"""Maps of the same models and images on the running Keras backend, for tests/test_backends.py.

Run as ``KERAS_BACKEND=jax python tests/backend_maps.py DIR``: reads the
models (``.keras`` files, backend-neutral) and ``images.npy`` that the
TensorFlow run wrote to ``DIR`` and writes ``maps_<backend>.npz``, one array
per case of :data:`CASES`.
"""

import os
import sys

import numpy as np

#: (name, model file, transformer parameters): every target and method, a
#: softmax model's logit and output, a nested model, a model of any size.
CASES = [
    *[
        (f"smooth-{method}-{target}", "smooth", dict(method=method, target=target))
        for method in ("gradient", "gradient_x_input", "integrated_gradients", "gradcam")
        for target in ("gestalt", "class", 1, "top_conv")
    ],
    ("smooth-smoothgrad-without-noise", "smooth", dict(method="smoothgrad", noise_level=0.0)),
    ("softmax-logit", "softmax", dict(target="class")),
    ("softmax-output", "softmax", dict(target=0, class_score="output")),
    ("softmax-integrated-class", "softmax", dict(target="class", method="integrated_gradients")),
    ("nested-gestalt", "nested", dict(target="gestalt")),
    ("nested-gradcam", "nested", dict(method="gradcam", target="class")),
    ("any-size", "any_size", dict(image_size=(12, 10))),
    ("caffe-pooled-normalized", "smooth", dict(preprocessing="caffe", pool=2, normalize="max")),
    ("maps-made-on-the-device", "smooth",
     dict(map_device="keras", aggregation="mean", pool=3, normalize="standard")),
    ("gradcam-maps-made-on-the-device", "nested",
     dict(method="gradcam", target="class", map_device="keras", pool=2, normalize="max")),
]


def compute_maps(directory):
    """``{case name: maps}`` on the running backend."""
    import warnings

    import keras

    from sklearn_sensloc import SensitivityTransformer

    images = np.load(os.path.join(directory, "images.npy"))
    models = {}
    maps = {}
    for name, model_name, params in CASES:
        if model_name not in models:
            models[model_name] = keras.saving.load_model(os.path.join(directory, model_name + ".keras"))
        params = {"pool": 1, "normalize": None, "preprocessing": "tf", "n_samples": 4,
                  "batch_size": 4, "cache": False, **params}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # class_score="output" warns
            sens = SensitivityTransformer(model=models[model_name], **params).fit(None)
            maps[name] = sens.transform(images)
    return maps


if __name__ == "__main__":
    import keras

    maps = compute_maps(sys.argv[1])
    np.savez(os.path.join(sys.argv[1], f"maps_{keras.backend.backend()}.npz"), **maps)
