"""Training quality: baselines on the same holdout, calibration and evaluation artifacts,
both funnel targets, lineage, and reproducibility."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

from training.evaluate import binary_metrics, expected_calibration_error


def test_chosen_model_beats_every_baseline_on_the_same_holdout(trained):
    result = trained.result
    cmp = result.comparison
    chosen = f"chosen_{result.family}"
    expected = {chosen, "points_decay", "naive_bayes", "logistic", "constant_base_rate"}
    assert expected <= set(cmp.index) <= expected | {"lightgbm"}
    for name in ("points_decay", "naive_bayes", "constant_base_rate"):
        assert cmp.loc[chosen, "roc_auc"] > cmp.loc[name, "roc_auc"], name
        assert cmp.loc[chosen, "log_loss"] < cmp.loc[name, "log_loss"], name
    # logistic regression is a strong baseline on a small simulated funnel: not far behind
    assert cmp.loc[chosen, "roc_auc"] > cmp.loc["logistic", "roc_auc"] - 0.02
    assert result.skill["skill"] == "ok" and result.family == result.choice["family"]


def test_metrics_cover_both_targets_and_calibration(trained):
    m = trained.result.metrics
    for k in ("roc_auc", "ece", "brier", "log_loss", "lift_top10", "recall_top20"):
        assert k in m
    assert m["ece"] < 0.12  # ~200 holdout rows on the 6,000-lead simulation: noisy
    assert 0.6 < m["mql_roc_auc"] <= 1.0
    assert m["lift_top10"] > 1.0
    assert m["roc_auc_ci_low"] < m["roc_auc"] < m["roc_auc_ci_high"]
    for name in ("logistic", "naive_bayes", "points_decay"):
        assert m[f"roc_auc_gain_vs_{name}_low"] < m[f"roc_auc_gain_vs_{name}_high"]


def test_run_has_evaluation_artifacts_inputs_and_lineage(trained):
    client = MlflowClient(trained.tracking_uri)
    run = client.get_run(trained.result.run_id)
    names = {a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "evaluation")}
    for f in (
        "roc.png",
        "pr.png",
        "reliability.png",
        "cumulative_gains.png",
        "lift.png",
        "shap_beeswarm.png",
        "shap_bar.png",
        "decay_curves.png",
        "drift.png",
        "model_card.md",
        "comparison.csv",
        "metrics_by_slice.csv",
        "reliability_by_age.png",
    ):
        assert f in names, f
    local = client.download_artifacts(run.info.run_id, "evaluation/metrics_by_slice.csv")
    slices = pd.read_csv(local)
    assert {"quadrant", "segment", "snapshot_age_days"} <= set(slices["by"])
    ages = slices[slices["by"] == "snapshot_age_days"]
    assert set(ages["slice"].astype(int)) <= {0, 7, 30} and (ages["n"] > 0).all()
    card = Path(client.download_artifacts(run.info.run_id, "evaluation/model_card.md")).read_text()
    chosen = f"| chosen_{trained.result.family} |"
    row = next(line for line in card.splitlines() if line.startswith(chosen))
    assert f"{run.data.metrics['holdout_roc_auc']:.4f}".rstrip("0") in row  # a Markdown table
    assert "## Model choice" in card and "Skill verdict" in card
    assert "95 % bootstrap interval" in card and "ahead of logistic by" in card
    assert "MQL -> SAL within 90 days" in card and "mean |contribution|" in card
    assert run.data.tags["git_commit"]
    assert run.data.tags["dataset_digest"]
    assert run.inputs.dataset_inputs
    children = client.search_runs(
        [run.info.experiment_id],
        f"tags.mlflow.parentRunId = '{run.info.run_id}' and tags.model_kind = 'baseline'",
    )
    # the baselines, and LightGBM itself when a simpler family was chosen
    assert len(children) == (3 if trained.result.family == "lightgbm" else 4)


def test_same_data_and_config_give_identical_metrics(trained):
    from crm.contract import read_tables
    from training.config import TrainConfig
    from training.dataset import build_training_set
    from training.fit import choose_and_fit

    data = read_tables(trained.data_dir)
    ts = build_training_set(data, "sal", 90)
    split = ts.split()
    runs = []
    for _ in range(2):
        model = choose_and_fit(ts, split, ts_config(ts), TrainConfig(seed=11)).model
        p = model.score(ts.X.iloc[split.holdout])["p_convert"].to_numpy()
        runs.append(binary_metrics(ts.y[split.holdout], p))
    assert runs[0] == runs[1]


def ts_config(ts):
    from features.build import FeatureConfig

    return FeatureConfig()


def test_ece_is_zero_for_perfect_calibration_and_large_when_off():
    y = np.array([0, 0, 1, 1] * 50)
    p = np.array([0.05, 0.05, 0.95, 0.95] * 50)
    assert expected_calibration_error(y, p) < 0.06
    assert expected_calibration_error(y, 1 - p) > 0.8


def test_learned_decay_picks_from_the_grid_on_a_validation_slice(trained):
    from crm.contract import read_tables
    from features.build import FeatureConfig
    from training.dataset import build_training_set
    from training.decay import learn_half_lives

    data = read_tables(trained.data_dir)
    ts = build_training_set(data, "sal", 90)
    split = ts.split()
    config, trace = learn_half_lives(
        data, ts, split.fit, split.calibration, FeatureConfig(), 11,
        grid=(7.0, 30.0), groups=("web",),
    )  # fmt: skip
    assert config.half_lives_days["web"] in (7.0, 30.0)
    assert trace["end"] <= trace["start"] + 1e-12


@pytest.mark.parametrize("target", ["mql", "sal"])
def test_heads_stay_calibrated_for_leads_scored_weeks_after_entry(trained, target):
    """The CRM asks for p_mql and p_sal of leads of every age. A head trained on entry
    snapshots only overestimates leads that have waited 7-30 days without converting (the
    early converters' engagement was already visible at entry); snapshots at later ages
    (training.dataset.SNAPSHOT_AGES_DAYS) fix that."""
    from crm.contract import read_tables
    from features.build import FeatureConfig, feature_columns
    from training.dataset import SNAPSHOT_AGES_DAYS, build_training_set
    from training.selection import fit_calibrated_head, forward_blocks

    data = read_tables(trained.data_dir)
    ts = build_training_set(data, target, 90)
    assert ts.ages == SNAPSHOT_AGES_DAYS[target] and len(ts.y) > len(set(ts.X.index))
    split = ts.split()
    slices = [set(ts.X.index[i]) for i in (split.fit, split.calibration, split.holdout)]
    assert not (slices[0] & slices[1] or slices[1] & slices[2] or slices[0] & slices[2])
    old = split.holdout[ts.age_days[split.holdout] > 0]
    assert len(old) >= 100

    def gap(ages: tuple[int, ...]) -> float:
        pre = np.concatenate([split.fit, split.calibration])
        pre = pre[np.isin(ts.age_days[pre], ages)]
        cols = feature_columns(FeatureConfig())
        head = fit_calibrated_head(
            "lightgbm", "uniform", 300, "long-run", cols, ts.X.iloc[pre], ts.y[pre],
            ts.entry_as_of.iloc[pre], forward_blocks(ts.X.index[pre]), {}, 7,
        )  # fmt: skip
        return float(head.predict_proba(ts.X.iloc[old])[:, 1].mean() - ts.y[old].mean())

    periodic, creation_only = gap(ts.ages), gap((0,))
    print(f"{target}, snapshots after entry ({len(old)}): mean p - rate: periodic {periodic:+.3f}, "
          f"creation only {creation_only:+.3f}")  # fmt: skip
    assert abs(periodic) < 0.05
    assert creation_only > periodic + 0.04


def test_best_sigmoid_diagnostic_separates_calibrator_from_scores():
    from training.evaluate import ece_best_sigmoid

    rng = np.random.default_rng(3)
    raw = rng.normal(size=20_000)
    y = (rng.random(raw.size) < 1 / (1 + np.exp(-(3 * raw + 1)))).astype(int)
    # the plain sigmoid of the raw score has the wrong slope and base rate ...
    assert expected_calibration_error(y, 1 / (1 + np.exp(-raw))) > 0.05
    # ... which the best sigmoid fitted on these rows repairs: the scores are not the problem
    assert ece_best_sigmoid(y, raw) < 0.02


def test_auc_intervals_tell_a_real_gain_from_holdout_luck():
    from training.evaluate import auc_intervals

    rng = np.random.default_rng(5)
    signal = rng.normal(size=3_000)
    y = (rng.random(signal.size) < 1 / (1 + np.exp(-2 * signal))).astype(int)
    good = signal + rng.normal(scale=0.5, size=signal.size)
    probs = {"lightgbm": good, "noise": rng.random(signal.size), "same": good.copy()}
    out = auc_intervals(y, probs)
    auc = roc_auc_score(y, good)
    assert out["roc_auc_ci_low"] < auc < out["roc_auc_ci_high"]
    assert out["roc_auc_ci_high"] - out["roc_auc_ci_low"] < 0.05
    assert out["roc_auc_gain_vs_noise_low"] > 0.2  # far better than chance, every draw
    assert out["roc_auc_gain_vs_same_low"] == out["roc_auc_gain_vs_same_high"] == 0.0


def test_auc_intervals_resample_whole_leads_when_rows_repeat_them():
    from training.evaluate import auc_intervals

    rng = np.random.default_rng(8)
    leads = 600
    signal = rng.normal(size=leads)
    y_lead = (rng.random(leads) < 1 / (1 + np.exp(-2 * signal))).astype(int)
    score = signal + rng.normal(scale=0.7, size=leads)
    # five snapshots of every lead, nearly the same row five times
    rows = np.repeat(np.arange(leads), 5)
    y, p = y_lead[rows], score[rows] + rng.normal(scale=0.05, size=rows.size)
    by_row = auc_intervals(y, {"lightgbm": p})
    by_lead = auc_intervals(y, {"lightgbm": p}, groups=rows)
    width = {k: v["roc_auc_ci_high"] - v["roc_auc_ci_low"] for k, v in
             {"row": by_row, "lead": by_lead}.items()}  # fmt: skip
    # the rows carry the information of 600 leads, not of 3,000 rows
    assert width["lead"] > 1.8 * width["row"]


def test_the_registered_signature_names_every_answer_field(trained):
    """The MLflow signature is drawn from the model's own answers after every head is on it:
    a SAL model also answers p_mql, so its signature says so."""
    import mlflow

    info = mlflow.models.get_model_info(f"models:/lead-scorer/{trained.result.model_version}")
    outputs = set(info.signature.outputs.input_names())
    assert {"p_convert", "p_sal", "p_mql", "fit_score", "interest_score", "quadrant"} <= outputs


def test_the_registered_model_pins_what_it_needs_to_load(trained):
    """The model's requirements are given (MODEL_PACKAGES at their installed versions),
    not inferred by MLflow in a subprocess: leadscore itself and the libraries its pickled
    objects are made of."""
    from importlib.metadata import version

    import mlflow

    from training.tracking import MODEL_NAME

    path = mlflow.pyfunc.get_model_dependencies(f"models:/{MODEL_NAME}@champion")
    pins = Path(path).read_text().split()
    for name in ("leadscore", "lightgbm", "mlflow", "cloudpickle", "pandas", "scikit-learn"):
        assert f"{name}=={version(name)}" in pins, (name, pins)
