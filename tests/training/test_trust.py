"""Trust on exports nobody tuned for: a drifting export gets a model at least as good as
the best baseline and a drift warning; an export with nothing to learn is called so."""

from __future__ import annotations

import json

import pytest
from exports import (
    DRIFT_KINDS,
    NO_SIGNAL_KINDS,
    drifting_frame,
    imported,
    no_signal_frame,
)
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _train_json(data_dir) -> tuple[dict, str]:
    from leadscore.cli import app

    res = CliRunner().invoke(
        app, ["train", "--data", str(data_dir), "--target", "customer", "--json"]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), res.stderr


def test_drifting_export_gets_a_model_no_worse_than_the_best_baseline(tmp_path, own_mlflow_store):
    data_dir = imported(tmp_path, "drift", drifting_frame(), DRIFT_KINDS)
    out, stderr = _train_json(data_dir)
    chosen = out["models"][f"chosen_{out['family']}"]
    baselines = {k: v for k, v in out["models"].items() if not k.startswith("chosen_")}
    best = max(
        (k for k in baselines if k != "constant_base_rate"), key=lambda k: baselines[k]["roc_auc"]
    )
    print(json.dumps({k: round(v["roc_auc"], 4) for k, v in out["models"].items()}))
    print(out["choice"]["reason"])
    # at or above the best baseline, or below it only within the paired 95 % interval
    assert chosen["roc_auc"] >= baselines[best]["roc_auc"] or (
        out[f"roc_auc_gain_vs_{best}_high"] >= 0
    ), (chosen, baselines)
    # ...and better calibrated than the pre-holdout base rate: the prior followed the drift
    assert chosen["log_loss"] < baselines["constant_base_rate"]["log_loss"]
    assert out["skill"]["skill"] == "ok"
    rates = [s["positive_rate"] for s in out["drift"]["slices"]]
    assert rates[0] < 0.12 and rates[-1] > 0.25, rates
    assert any("positive rate" in w for w in out["warnings"]), out["warnings"]
    # progress and warnings go to stderr with --json, so a script can log them
    assert "WARNING" in stderr and "positive rate" in stderr
    assert {"roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "log_loss", "ece"} <= set(chosen)


def test_no_signal_export_is_called_so(tmp_path, own_mlflow_store):
    data_dir = imported(tmp_path, "nosig", no_signal_frame(), NO_SIGNAL_KINDS)
    out, stderr = _train_json(data_dir)
    assert out["skill"]["skill"] == "none", out["skill"]
    assert any(w.startswith("No skill") for w in out["warnings"]), out["warnings"]
    assert "No skill" in stderr
