"""The design card's pipeline on genuine photos with a genuine ImageNet classifier.

The shared VOC 2012 photos (``../shared/data/voc2012-animals``) and MobileNet
v1 0.25 weights (``../shared/data/mobilenet-v1-0.25``) are read where every
developer and CI have them. With package defaults, trained on ``train`` and
scored on ``val`` (500 photos), the learned map and the heuristic must beat
the center box, and by a margin that 500 paired photos support: the lower end
of the 95% interval of the paired difference in hits must be above zero; and
the box score must rank the learned boxes (the issue "Boxes for your photos").
"""

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline

from sklearn_sensloc import (
    BoxRegressor,
    BoxScorer,
    CenterBoxBaseline,
    HeuristicBoxEstimator,
    SensitivityTransformer,
    load_voc,
)
from sklearn_sensloc._metrics._corloc import correct_localizations

SHARED_DATA = Path(os.environ.get("SENSLOC_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))
VOC = SHARED_DATA / "voc2012-animals"
MOBILENET = SHARED_DATA / "mobilenet-v1-0.25" / "mobilenet_v1_0.25_224_imagenet.weights.h5"


def _shared(path):
    if not path.exists():
        pytest.fail(
            f"Genuine test data missing: {path} does not exist. These tests read the shared "
            "data set beside the project (../shared/data); set SENSLOC_SHARED_DATA to its folder."
        )
    return path


@pytest.fixture(scope="module")
def voc():
    root = _shared(VOC)
    return load_voc(root, "train"), load_voc(root, "val")


@pytest.fixture(scope="module")
def mobilenet():
    import keras

    weights = _shared(MOBILENET)
    model = keras.applications.MobileNet(
        input_shape=(224, 224, 3), alpha=0.25, weights=None, classifier_activation="softmax"
    )
    model.load_weights(weights)
    return model


@pytest.fixture(scope="module")
def hits(voc, mobilenet):
    """Per val photo, whether each method's box is correct (IoU > 0.5 with any true box)."""
    train, val = voc
    # The newcomer's model: a softmax classifier, as Keras builds it by default.
    sens = SensitivityTransformer(model=mobilenet, target="class", preprocessing="tf")
    found = {}
    for name, box in [("learned", BoxRegressor(random_state=0)),
                      ("heuristic", HeuristicBoxEstimator())]:
        pipe = Pipeline([("sens", sens), ("box", box)]).fit(train.images, train.boxes)
        found[name] = correct_localizations(val.all_boxes, pipe.predict(val.images), 0.5)
    center = CenterBoxBaseline().fit(train.images, train.boxes)
    found["center"] = correct_localizations(val.all_boxes, center.predict(val.images), 0.5)
    return found


def paired_lower_bound(better, worse):
    """Lower end of the 95% normal interval of the mean paired difference, in points."""
    difference = better.astype(float) - worse.astype(float)
    return 100 * (difference.mean() - 1.96 * difference.std(ddof=1) / np.sqrt(len(difference)))


@pytest.mark.parametrize("method", ["learned", "heuristic"])
def test_defaults_beat_the_center_box_on_genuine_photos(hits, method):
    assert len(hits[method]) == 500
    assert paired_lower_bound(hits[method], hits["center"]) > 0
    # The point estimate itself clears the center box by the margin the
    # "real photos" issue asks for.
    assert 100 * (hits[method].mean() - hits["center"].mean()) >= 10


def test_learned_map_keeps_up_with_the_heuristic(hits):
    # Within the sampling noise of 500 photos: not significantly worse.
    assert paired_lower_bound(hits["learned"], hits["heuristic"]) > -5
    # And, as the "real photos" issue asks, at least the heuristic minus one point.
    assert 100 * (hits["learned"].mean() - hits["heuristic"].mean()) >= -1


def test_the_newcomer_path_gives_the_same_maps(voc, mobilenet):
    # By name with the weights file: its own preprocessing, logits by construction.
    photos = voc[1].images[:8]
    by_name = SensitivityTransformer(model="mobilenet", weights=str(MOBILENET), target="class")
    by_model = SensitivityTransformer(model=mobilenet, target="class", preprocessing="tf")
    np.testing.assert_allclose(
        by_name.fit(None).transform(photos), by_model.fit(None).transform(photos),
        rtol=1e-4, atol=1e-6,
    )
    # Registered classifiers are built without their softmax: their score is the logit.
    assert by_name.target_name_ == "score of the predicted class"
    assert by_model.target_name_ == "logit of the predicted class"


def test_better_scored_half_of_val_is_10_points_better(voc, mobilenet):
    train, val = voc
    # Built as in ``hits``, so each photo's map is made once in a run of this module.
    sens = SensitivityTransformer(model=mobilenet, target="class", preprocessing="tf").fit(None)
    train_maps, val_maps = sens.transform(train.images), sens.transform(val.images)
    regressor = BoxRegressor(random_state=0)
    # Out-of-fold boxes of the training photos teach the score; val is scored as new photos.
    folds = KFold(5, shuffle=True, random_state=0)
    out_of_fold = cross_val_predict(regressor, train_maps, train.boxes, cv=folds)
    scorer = BoxScorer().fit(train_maps, out_of_fold,
                             correct_localizations(train.all_boxes, out_of_fold, 0.5))
    boxes = regressor.fit(train_maps, train.boxes).predict(val_maps)
    hits = correct_localizations(val.all_boxes, boxes, 0.5)
    order = np.argsort(-scorer.score_boxes(val_maps, boxes))
    better, other = hits[order[:250]].mean(), hits[order[250:]].mean()
    # Measured 80.8 vs 48.8 (benchmarks/box_score.py); the issue asks for 10 points.
    assert 100 * (better - other) >= 10
