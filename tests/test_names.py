"""One name, one meaning: renamed public names keep working, with a FutureWarning, for two releases.

The names ``/work/shared/design.md`` fixes (the transformer's and the
regressor's parameters, ``sensloc demo`` and ``evaluate``) must keep working
without any warning.
"""

import warnings

import numpy as np
import pytest

import sklearn_sensloc._cli as cli
import sklearn_sensloc._classifiers._models as models
from sklearn_sensloc import BoxRegressor, MapStore, SensitivityTransformer
from sklearn_sensloc._utils._validation import DEPRECATED, renamed_parameter

RENAMED = r"was renamed {} in 0\.2 and will be removed in 0\.4"


def test_a_renamed_parameter_takes_the_new_name_silently_and_the_old_one_with_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_parameter("f", "old", DEPRECATED, "new", 3, None) == 3
        assert renamed_parameter("f", "old", DEPRECATED, "new", None, None) is None
    with pytest.warns(FutureWarning, match="f's old " + RENAMED.format("new")):
        assert renamed_parameter("f", "old", 5, "new", None, None) == 5
    with pytest.raises(TypeError, match="f got both old and new; pass only new"):
        renamed_parameter("f", "old", 5, "new", 4, None)


@pytest.fixture(scope="module")
def store_inputs(tiny_model, scenes):
    return SensitivityTransformer(model=tiny_model, pool=4, cache=False), scenes[0][:5]


def test_map_store_images_per_file_is_its_old_batch_size(store_inputs, tmp_path):
    sens, images = store_inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = MapStore.create(tmp_path / "new", sens, images, images_per_file=2).compute()
        assert (new.images_per_file, new.n_batches) == (2, 3)
    with pytest.warns(FutureWarning, match="MapStore.create's batch_size " +
                      RENAMED.format("images_per_file")) as record:
        old = MapStore.create(tmp_path / "old", sens, images, batch_size=2).compute()
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert (old.images_per_file, old.n_batches) == (2, 3)
    np.testing.assert_array_equal(old.to_numpy(), new.to_numpy())
    with pytest.warns(FutureWarning, match="MapStore.batch_size " +
                      RENAMED.format("images_per_file")) as record:
        assert old.batch_size == 2
    assert record[0].filename == __file__
    with pytest.raises(TypeError, match="got both batch_size and images_per_file"):
        MapStore.create(tmp_path / "both", sens, images, images_per_file=2, batch_size=2)


@pytest.fixture
def evaluation_seed(monkeypatch):
    """The random_state the demo hands the evaluation (which is not run)."""
    import sklearn_sensloc.evaluation as evaluation

    seen = {}

    def stop(*args, random_state, **kwargs):
        seen["random_state"] = random_state
        raise StopIteration

    monkeypatch.setattr(evaluation, "evaluate_localization", stop)
    return seen


def test_run_demo_seed_is_random_state(evaluation_seed, tiny_model, tmp_path):
    demo = dict(model=tiny_model, n_images=6, output=tmp_path, image_size=32, stream=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(StopIteration):
            cli.run_demo(random_state=3, **demo)
    assert evaluation_seed["random_state"] == 3
    with pytest.warns(FutureWarning, match="run_demo's seed " + RENAMED.format("random_state")):
        with pytest.raises(StopIteration):
            cli.run_demo(seed=4, **demo)
    assert evaluation_seed["random_state"] == 4


def test_run_fit_seed_is_random_state(monkeypatch):
    class Stop(Exception):
        pass

    def stop(model, weights):
        raise Stop

    monkeypatch.setattr(cli, "default_target", stop)
    with pytest.warns(FutureWarning, match="run_fit's seed " + RENAMED.format("random_state")):
        with pytest.raises(Stop):
            cli.run_fit(None, "x.sensloc", model="m", seed=1)
    with pytest.raises(TypeError, match="run_fit got both seed and random_state"):
        cli.run_fit(None, "x.sensloc", model="m", seed=1, random_state=2)


@pytest.mark.parametrize("command, runner, extra", [
    ("demo", "run_demo", []),
    ("evaluate", "run_evaluate", ["--voc", "."]),
])
def test_seed_is_the_random_state_of_each_command(command, runner, extra, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, runner, lambda *args, **kwargs: seen.update(kwargs))
    monkeypatch.setattr(cli, "default_target", lambda model, weights: "gestalt")
    monkeypatch.setattr(models, "check_model", lambda model, weights: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert cli.main([command, *extra, "--model", "m.keras", "--seed", "7"]) == 0
    assert seen["random_state"] == 7


def test_seed_has_one_help_text():
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if action.dest == "command").choices
    helps = {name: next(action.help for action in commands[name]._actions if action.dest == "seed")
             for name in ("demo", "fit", "evaluate")}
    assert len(set(helps.values())) == 1


def test_the_design_names_warn_nothing(tiny_model, scenes):
    images, boxes = scenes[0][:8], scenes[1][:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        maps = SensitivityTransformer(model=tiny_model, batch_size=4, image_size=None,
                                      random_state=0).fit_transform(images)
        BoxRegressor(batch_size=4, random_state=None, max_iter=1).fit(maps, boxes)
