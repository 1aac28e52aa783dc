"""`leadscore tune`: one parent run, a nested run per trial, and the command it prints
trains a model with the best parameters, for the target that was tuned."""

from __future__ import annotations

import re
import shlex

import mlflow
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from training.tune import params_from_run


def test_tune_logs_nested_trials_and_its_command_trains_with_the_best_params(
    small_sim_dir, own_mlflow_store
):
    flags = ["--data", str(small_sim_dir), "--trials", "3", "--target", "mql", "--seed", "3"]
    res = CliRunner().invoke(app, ["tune", *flags])
    assert res.exit_code == 0, res.output
    # one line, however long (rich would wrap it at 160 columns off a terminal)
    found = re.search(
        r"^train with them: (leadscore train .* --params-from-run \S+)$", res.output, re.M
    )
    assert found, res.output
    command = found.group(1)
    args = shlex.split(command)
    assert args[:2] == ["leadscore", "train"]
    assert "--target mql" in command and "--seed 3" in command  # what was tuned, not defaults
    parent_id = args[args.index("--params-from-run") + 1]

    client = MlflowClient()
    parent = client.get_run(parent_id)
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
    )
    assert len(children) == 3
    losses = children["metrics.calibration_log_loss"].tolist()
    assert float(parent.data.metrics["best_calibration_log_loss"]) == min(losses)
    best = params_from_run(parent_id)
    assert parent.data.params["best_num_leaves"] == str(best["num_leaves"])

    res = CliRunner().invoke(app, [*args[1:], "--json"])
    assert res.exit_code == 0, res.output
    run = client.search_runs(
        [parent.info.experiment_id], "params.target = 'mql'", max_results=1,
        order_by=["attributes.start_time DESC"],
    )[0]  # fmt: skip
    assert run.data.params["target"] == "mql"
    assert run.data.params["lgbm_num_leaves"] == str(best["num_leaves"])
    assert run.data.params["lgbm_learning_rate"] == str(best["learning_rate"])
