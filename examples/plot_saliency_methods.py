"""
Choosing the saliency method by CorLoc
======================================

A ``GridSearchCV`` over ``sens__method`` picks among the vanilla gradient (the
paper's), SmoothGrad, gradient x input, integrated gradients and Grad-CAM by
cross-validated CorLoc on VOC 2012 ``train`` photos; every method is then
scored on the ``val`` photos, against all of their boxes, with a 95% Wilson
score interval, and its cost is measured as maps per second, the methods one
after the other in the same run.

Each method's gradients are computed once per photo and reused by every fold
and box estimator. The target is the class score (the logit: the MobileNet is
built without its softmax).

This script needs the genuine data of ``../shared/data`` (the VOC photos and
the MobileNet v1 0.25 weights file); set ``SENSLOC_SHARED_DATA`` to read them
elsewhere, and ``N_TRAIN`` / ``N_VAL`` to use fewer photos. With the
defaults it ran for about 7 minutes on two CPU cores (the user guide's
"Saliency methods" page gives the numbers).
"""

# %%
import os
import time
from pathlib import Path

import keras
import numpy as np
from matplotlib.figure import Figure
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    CorLocScorer,
    HeuristicBoxEstimator,
    SensitivityTransformer,
    corloc_interval,
    correct_localizations,
    gradient_cache,
    load_voc,
)

DATA = Path(os.environ.get("SENSLOC_SHARED_DATA", "../shared/data"))
N_TRAIN = int(os.environ.get("N_TRAIN", 400))
N_VAL = int(os.environ.get("N_VAL", 500))
METHODS = ["gradient", "smoothgrad", "gradient_x_input", "integrated_gradients", "gradcam"]

# Every method's gradients of every photo stay in memory (0.6 MB each).
gradient_cache.max_bytes = 4 << 30

model = keras.applications.MobileNet(
    input_shape=(224, 224, 3), alpha=0.25, weights=None, classifier_activation=None
)
model.load_weights(DATA / "mobilenet-v1-0.25" / "mobilenet_v1_0.25_224_imagenet.weights.h5")
train = load_voc(DATA / "voc2012-animals", "train")
val = load_voc(DATA / "voc2012-animals", "val")
X_train, y_train = train.images[:N_TRAIN], train.boxes[:N_TRAIN]
X_val, val_boxes = val.images[:N_VAL], val.all_boxes[:N_VAL]
params = dict(model=model, target="class", preprocessing="tf", pool=4, batch_size=32)

# %%
# Cost: maps per second of each method on the same photos, JPEG decoding
# included, after one batch that traces the compiled function.
timed_photos = X_val[:64]
maps_per_second = {}
for method in METHODS:
    timed = SensitivityTransformer(**params, method=method, cache=False).fit(None)
    timed.transform(X_val[:8])
    start = time.perf_counter()
    timed.transform(timed_photos)
    maps_per_second[method] = len(timed_photos) / (time.perf_counter() - start)

# %%
# The search: every method with the default heuristic (its smoothing and share
# of pixels chosen on the training boxes) and with the learned linear map.
boxes = {
    "heuristic": HeuristicBoxEstimator(),
    "regressor": BoxRegressor(random_state=0),
}
pipe = Pipeline([("sens", SensitivityTransformer(**params)), ("box", boxes["heuristic"])])
search = GridSearchCV(
    pipe,
    {"sens__method": METHODS, "box": list(boxes.values())},
    scoring=CorLocScorer(),
    cv=3,
)
search.fit(X_train, y_train)
print("chosen by cross-validation:", search.best_params_["sens__method"],
      type(search.best_params_["box"]).__name__, f"CorLoc {search.best_score_:.1f}%")


# %%
# Every candidate on the val photos, with a 95% Wilson score interval.
rows = []
for params_, cv_score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    method, box = params_["sens__method"], params_["box"]
    fitted = pipe.set_params(**params_).fit(X_train, y_train)
    hits = correct_localizations(val_boxes, fitted.predict(X_val))
    rows.append((method, type(box).__name__, cv_score, 100 * hits.mean(), *corloc_interval(hits)))

center_hits = correct_localizations(
    val_boxes, CenterBoxBaseline().fit(X_train, y_train).predict(X_val)
)
center = 100 * center_hits.mean()
print(f"{N_TRAIN} train photos (3-fold CV), {len(X_val)} val photos, MobileNet v1 0.25, class logit")
print(f"{'method':<22}{'box':<24}{'CV':>6}{'val CorLoc [95% CI]':>24}{'maps/s':>9}{'rel. cost':>10}")
for method, box, cv_score, score, low, high in rows:
    cost = maps_per_second["gradient"] / maps_per_second[method]
    print(f"{method:<22}{box:<24}{cv_score:6.1f}{score:10.1f} [{low:4.1f}, {high:4.1f}]"
          f"{maps_per_second[method]:9.1f}{cost:9.1f}x")
low, high = corloc_interval(center_hits)
print(f"{'center box':<46}{center:16.1f} [{low:4.1f}, {high:4.1f}]")

# %%
# Val CorLoc per method and box estimator, with the 95% intervals.
fig = Figure(figsize=(7, 3.5), layout="constrained")
ax = fig.subplots()
for offset, (name, colour) in zip((-0.2, 0.2), (("HeuristicBoxEstimator", "#4363d8"),
                                               ("BoxRegressor", "#f58231"))):
    mine = [row for row in rows if row[1] == name]
    centers = np.array([row[3] for row in mine])
    errors = np.array([[row[3] - row[4], row[5] - row[3]] for row in mine]).T
    ax.barh(np.arange(len(mine)) + offset, centers, height=0.4, xerr=errors, color=colour, label=name)
ax.axvline(center, color="grey", linestyle="--", label="center box")
ax.set_yticks(np.arange(len(METHODS)), METHODS)
ax.set_xlabel(f"CorLoc (%) on {len(X_val)} VOC 2012 val photos")
ax.legend(loc="lower right")
fig
