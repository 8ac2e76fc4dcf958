"""
The learned pipeline on the embedded sample
===========================================

Sensitivity maps of the offline VGG16 (Gestalt Total target) turned into boxes
by a linear map learned with SGD, scored with CorLoc against the center-box
baseline. This is what ``sensloc demo`` does, written out as a scikit-learn
``Pipeline``.

The embedded sample is real object crops pasted on real backgrounds: a data
set to run things offline, not a benchmark (see the user guide).
"""

# %%
# Data: 80 scenes, 60 to train on and 20 to test on.
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from sklearn_sensloc import (
    BoxRegressor,
    CenterBoxBaseline,
    SensitivityTransformer,
    make_sample_scenes,
    plot_boxes,
    plot_maps,
)

data = make_sample_scenes(80, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    data.images, data.boxes, test_size=0.25, random_state=0
)

# %%
# The pipeline: maps (224x224, pooled by 4 into 56x56 features), then the
# linear map. Fitting runs one backward pass per batch of images.
pipe = Pipeline(
    [
        ("sens", SensitivityTransformer(model="vgg16-hed", target="gestalt", batch_size=16)),
        ("box", BoxRegressor(random_state=0)),
    ]
)
pipe.fit(X_train, y_train)

learned = pipe.score(X_test, y_test)
center_box = CenterBoxBaseline().fit(X_train, y_train)
center = center_box.score(X_test, y_test)
print(f"CorLoc on {len(X_test)} test scenes: learned {learned:.1f}%, center box {center:.1f}%")

# %%
# The maps of a few test images (the paper's Fig. 1). The raw gradients are
# cached, so these maps are not recomputed.
sens = pipe.named_steps["sens"]
maps = sens.transform(X_test[:4])
fig_maps = plot_maps(X_test[:4], maps, sens.map_shape_, ncols=2)

# %%
# Predicted (red) and true (green) boxes (the paper's Fig. 2), with the center
# box (dotted grey) for comparison.
fig_boxes = plot_boxes(X_test[:8], y_test[:8], {"learned": pipe.predict(X_test[:8])},
                       center_box=center_box.predict(X_test[:8]))
