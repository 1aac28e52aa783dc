"""`leadscore tune`: one parent run, a nested run per trial, best parameters train a model."""

from __future__ import annotations

import mlflow
from mlflow.tracking import MlflowClient

from training.tune import params_from_run, tune


def test_tune_logs_nested_trials_and_best_params(sim_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'tune.db'}")
    result = tune(sim_dir, trials=3, seed=3)
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert len(children) == 3
    losses = children["metrics.calibration_log_loss"].tolist()
    assert min(losses) == result.best_log_loss
    assert parent.data.params["best_num_leaves"] == str(result.best_params["num_leaves"])
    assert params_from_run(result.parent_run_id) == result.best_params
    assert 0.5 < result.best_roc_auc <= 1.0
