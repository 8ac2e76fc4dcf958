"""
Heuristic against learned boxes
===============================

The heuristic (smooth the map, keep its strongest pixels, enclose them)
against the learned linear map, on the same maps, computed once at full
resolution. The heuristic's smoothing and share of pixels are picked on the
training scenes, which ``HeuristicBoxEstimator()`` does by default.
"""

# %%
from sklearn.base import clone
from sklearn.model_selection import train_test_split

from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    HeuristicBoxEstimator,
    SensitivityTransformer,
    corloc_score,
    make_sample_scenes,
    plot_boxes,
)

data = make_sample_scenes(80, random_state=2)
X_train, X_test, y_train, y_test = train_test_split(
    data.images, data.boxes, test_size=0.25, random_state=0
)

# %%
# Full-resolution maps (``pool=1``), once for both methods.
sens = SensitivityTransformer(model="vgg16-hed", target="gestalt", pool=1, batch_size=16)
sens.fit(None)
maps_train, maps_test = sens.transform(X_train), sens.transform(X_test)

# %%
# The heuristic: sigma (in pixels of the 224x224 maps) and the share of pixels
# kept, chosen by CorLoc on the training scenes.
heuristic = HeuristicBoxEstimator().fit(maps_train, y_train)

# %%
# The learned map, on the maps pooled by 4. The raw gradients are cached, so
# the transformer with ``pool=4`` pools them again without a backward pass.
pooled = clone(sens).set_params(pool=4).fit(None)
features_train, features_test = pooled.transform(X_train), pooled.transform(X_test)
learned = BoxRegressor(random_state=0).fit(features_train, y_train)

predictions = {
    "learned": learned.predict(features_test),
    f"heuristic (sigma={heuristic.sigma_:g}, top {heuristic.fraction_:g})": (
        heuristic.predict(maps_test)
    ),
}
center_box = CenterBoxBaseline().fit(X_train, y_train).predict(X_test)
for name, boxes in {**predictions, "center box": center_box}.items():
    print(f"{name:>22}: CorLoc {corloc_score(y_test, boxes):5.1f}%")

# %%
# Both on the same test scenes, the center box dotted in grey; titles give each
# box's IoU with the truth.
fig = plot_boxes(X_test, y_test, predictions, center_box=center_box, max_images=8, ncols=4)
