"""
Tuning aggregation and learning rate with GridSearchCV
======================================================

A search over the map's channel aggregation and the SGD learning rate, scored
with CorLoc by cross-validation. Map-side parameters (aggregation, pooling,
normalization) do not repeat backward passes: the raw gradients of each image
are computed once and cached, and every candidate reuses them.
"""

# %%
import numpy as np
from matplotlib.figure import Figure
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_sensloc import BoxRegressor, CorLocScorer, SensitivityTransformer, make_sample_scenes

data = make_sample_scenes(60, random_state=1)

pipe = Pipeline(
    [
        ("sens", SensitivityTransformer(model="vgg16-hed", target="gestalt", batch_size=16)),
        ("box", BoxRegressor(random_state=0)),
    ]
)
grid = {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}
search = GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3)
search.fit(data.images, data.boxes)
print("best:", search.best_params_, f"CorLoc {search.best_score_:.1f}%")

# %%
# Mean cross-validated CorLoc of each candidate.
results = search.cv_results_
labels = [f"{p['sens__aggregation']}, eta0={p['box__eta0']}" for p in results["params"]]
fig = Figure(figsize=(6, 3), layout="constrained")
ax = fig.subplots()
positions = np.arange(len(labels))
ax.barh(positions, results["mean_test_score"], xerr=results["std_test_score"], color="#4363d8")
ax.set_yticks(positions, labels)
ax.set_xlabel("CorLoc (%), 3-fold cross-validation")
