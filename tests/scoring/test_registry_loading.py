"""Loading a model pickled by the layout before scoring/ existed: a clear "retrain" error
(one the CLI reports as a message), not a traceback about a missing module."""

from __future__ import annotations

import pickle

import pytest

from scoring.registry import NotALeadScoringModel, load_scoring_model

# A pickle that names the old home of the model class, as a model registered before the
# move does (protocol 0: "c<module>\n<name>\n" pushes a global).
OLD_PICKLE = b"ctraining.model\nLeadScoringModel\n."


def test_a_model_of_the_old_layout_is_refused_with_retrain():
    with pytest.raises(NotALeadScoringModel, match="retrain") as info:
        load_scoring_model(lambda: pickle.loads(OLD_PICKLE), "models:/lead-scorer/1")
    assert "models:/lead-scorer/1" in str(info.value) and "training.model" in str(info.value)


def test_another_missing_module_is_not_hidden():
    with pytest.raises(ModuleNotFoundError):
        load_scoring_model(lambda: pickle.loads(b"cno_such_module\nThing\n."), "m")
