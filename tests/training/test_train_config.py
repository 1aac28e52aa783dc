"""What a TrainConfig asks for is what the registered model is made of: another persona
file ships that persona set, and the snapshot ages asked for are the ones trained on and
recorded (so the promotion gate rebuilds the same holdout)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import TrainConfig, default_targets


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from crm.simulate import write_simulation

    out = tmp_path_factory.mktemp("config") / "sim"
    write_simulation(out, n_leads=1500, seed=4)
    return out


def renamed_personas(out: Path) -> tuple[Path, tuple[str, ...]]:
    """The shipped personas with every name changed: a persona set no default has."""
    from features.personas import DEFAULT_PERSONAS_PATH

    doc = yaml.safe_load(DEFAULT_PERSONAS_PATH.read_text())
    for persona in doc["personas"]:
        persona["name"] = f"our_{persona['name']}"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out, tuple(p["name"] for p in doc["personas"])


@pytest.mark.slow
def test_the_model_ships_the_configured_personas_and_snapshot_ages(
    small_export, tmp_path, own_mlflow_store
):
    from mlflow.tracking import MlflowClient

    from features.personas import load_personas
    from scoring.registry import load_registered
    from training.train import train

    path, names = renamed_personas(tmp_path / "personas.yaml")
    assert load_personas().names != names
    config = TrainConfig(target="mql", personas_path=path, model_name="config-test")
    result = train(small_export, config, snapshot_ages_days=(0,), seed=3)

    model = load_registered("config-test", result.model_version)
    assert model.personas.names == names
    assert model.metadata["snapshot_ages_days"] == [0]
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["snapshot_ages_days"] == "0"
    assert run.data.params["seed"] == "3"  # the keyword over the config


def test_a_config_resolves_its_targets_primary_first():
    assert default_targets("sal") == ("sal", "mql")
    assert TrainConfig().resolved().targets == ("sal", "mql")
    cfg = TrainConfig(target="sal", targets=("opportunity", "sal", "opportunity")).resolved()
    assert (cfg.target, cfg.targets) == ("opportunity", ("opportunity", "sal"))
    assert TrainConfig(params=None, allow_leaky=None).lightgbm_params == {}
    assert TrainConfig(params={"num_leaves": 7}).lightgbm_params == {"num_leaves": 7}


def test_a_horizon_under_a_day_is_a_training_data_error():
    """The CLI names a TrainingDataError instead of printing a traceback."""
    from training.dataset import TrainingDataError

    with pytest.raises(TrainingDataError, match="horizon must be at least 1 day"):
        TrainConfig(horizon_days=0)
