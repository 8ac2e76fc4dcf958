"""Clones of a SensitivityTransformer share its model and compiled engine."""

import pickle

import keras
import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from conftest import build_tiny_model, make_scenes
from sklearn_sensloc import BoxRegressor, CorLocScorer, SensitivityTransformer
from sklearn_sensloc._engine import GradientEngine


def test_clone_shares_the_model_and_clones_the_rest(tiny_model):
    sens = SensitivityTransformer(model=tiny_model, image_size=[32, 32], pool=2).set_output(
        transform="pandas"
    )
    cloned = clone(sens)
    assert cloned.model is tiny_model
    assert cloned.get_params() == sens.get_params()
    assert cloned.image_size is not sens.image_size, "other parameters are cloned"
    assert cloned._sklearn_output_config == {"transform": "pandas"}
    assert clone(SensitivityTransformer(model="vgg16-hed")).model == "vgg16-hed"


def test_clones_share_one_engine_and_retraining_changes_the_gradient_key(scenes):
    images = scenes[0][:4]
    model = build_tiny_model(seed=5)
    first = SensitivityTransformer(model=model).fit(None)
    second = clone(first).set_params(aggregation="mean", pool=2).fit(None)
    assert second.gradient_engine() is first.gradient_engine()
    assert second.gradient_key_ == first.gradient_key_
    other_target = clone(first).set_params(target="class").fit(None)
    assert other_target.gradient_engine() is not first.gradient_engine()
    assert other_target.gradient_key_ != first.gradient_key_

    before = first.transform(images)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    refitted = clone(first).fit(None)
    assert refitted.gradient_engine() is first.gradient_engine()
    assert refitted.gradient_key_ != first.gradient_key_
    assert not np.allclose(refitted.transform(images), before)


def test_a_shallow_copy_shares_the_engine_and_keeps_its_own_parameters(scenes):
    import copy

    images = scenes[0][:4]
    sens = SensitivityTransformer(model=build_tiny_model(seed=8)).fit(None)
    maps = sens.transform(images)
    copied = copy.copy(sens)
    copied.cache = False
    assert copied.gradient_engine() is sens.gradient_engine()
    np.testing.assert_array_equal(copied.transform(images), maps)
    assert sens.cache is True


def test_pickled_transformer_carries_its_own_model(scenes):
    images = scenes[0][:3]
    model = build_tiny_model(seed=6)
    # Not a hash of the pickled model: Keras' pickle records the second it was made.
    attributes, weights = set(vars(model)), [w.copy() for w in model.get_weights()]
    sens = SensitivityTransformer(model=model, pool=4).fit(None)
    maps = sens.transform(images)
    # Engines are kept by the transformers that share them, never on the user's model.
    assert set(vars(model)) == attributes
    for before, after in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(after, before)
    restored = pickle.loads(pickle.dumps(clone(sens).fit(None)))
    assert restored.model is not model
    np.testing.assert_array_equal(restored.transform(images), maps)


def test_engines_go_with_the_last_clone(scenes):
    import gc
    import weakref

    sens = SensitivityTransformer(model=build_tiny_model(seed=7)).fit(None)
    cloned = clone(sens).set_params(pool=2).fit(None)
    engine = weakref.ref(sens.gradient_engine())
    assert cloned.gradient_engine() is engine()
    del sens
    gc.collect()
    assert engine() is not None, "a clone still uses it"
    del cloned
    gc.collect()
    assert engine() is None


def test_grid_search_copies_no_model_and_builds_one_engine(monkeypatch):
    X, boxes, _ = make_scenes(60, seed=2)
    model = build_tiny_model(seed=3)
    copies, engines = [], []
    original_reduce = keras.Model.__reduce__
    original_init = GradientEngine.__init__

    def counting_reduce(self):
        copies.append(self.name)
        return original_reduce(self)

    def counting_init(self, *args, **kwargs):
        engines.append(args)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "__reduce__", counting_reduce)
    monkeypatch.setattr(GradientEngine, "__init__", counting_init)
    # The counter sees what a deep copy of the model does.
    clone(build_tiny_model(seed=4), safe=False)
    assert len(copies) == 1
    copies.clear()

    pipe = Pipeline([("sens", SensitivityTransformer(model=model)), ("box", BoxRegressor())])
    grid = {"sens__aggregation": ["max", "mean"], "box__eta0": [0.01, 0.1]}
    GridSearchCV(pipe, grid, scoring=CorLocScorer(), cv=3).fit(X, boxes)
    assert copies == []
    assert len(engines) == 1
