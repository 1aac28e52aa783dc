"""One registered model per data set: `--model-name` keeps two exports' challengers,
champions and experiments apart, and the gate compares only within one name."""

from __future__ import annotations

import json

import pytest
from exports import DRIFT_KINDS, drifting_frame, imported
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def test_two_exports_under_two_names_do_not_touch_each_other(tmp_path, own_mlflow_store):
    from leadscore.cli import app

    runner = CliRunner()
    dirs = {
        name: imported(tmp_path / name, name, drifting_frame(n=3000, seed=seed), DRIFT_KINDS)
        for name, seed in (("crm-a", 1), ("crm-b", 2))
    }
    for name, data_dir in dirs.items():
        res = runner.invoke(
            app,
            ["train", "--data", str(data_dir), "--target", "customer", "--json",
             "--model-name", name],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["model"] == name and out["version"] == "1"

    client = MlflowClient(own_mlflow_store)
    for name in dirs:
        assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
        assert client.get_experiment_by_name(name) is not None  # the experiment follows
    res = runner.invoke(app, ["promote", "--model-name", "crm-a"])
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias("crm-a", "champion").version) == "1"
    with pytest.raises(Exception, match="champion"):
        client.get_model_version_by_alias("crm-b", "champion")
    # crm-b gets its own champion; a new crm-a version and its promotion leave it alone
    assert runner.invoke(app, ["promote", "--model-name", "crm-b"]).exit_code == 0
    res = runner.invoke(
        app,
        ["train", "--data", str(dirs["crm-a"]), "--target", "customer", "--json",
         "--model-name", "crm-a"],
    )  # fmt: skip
    assert res.exit_code == 0 and json.loads(res.stdout)["version"] == "2", res.output
    res = runner.invoke(app, ["promote", "--model-name", "crm-a"])
    assert res.exit_code == 0, res.output
    assert str(client.get_model_version_by_alias("crm-a", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("crm-b", "champion").version) == "1"
    assert not [m for m in client.search_registered_models() if m.name == "lead-scorer"]

    res = runner.invoke(app, ["promote", "--model-name", "no such name!"])
    assert res.exit_code == 2 and "--model-name" in res.output
