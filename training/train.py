"""Train, evaluate on a time holdout, log to MLflow, register and alias as challenger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from features.build import (
    ENGAGEMENT_FEATURES,
    FEATURE_COLUMNS,
    FIRMOGRAPHIC_FEATURES,
    FeatureConfig,
)
from features.content import load_content
from features.contract import read_tables
from features.personas import load_personas
from features.quadrant_policy import load_quadrant_policy
from training.dataset import TimeSplit, TrainingSet, build_training_set, time_split
from training.model import LeadScoringModel, LeadScoringPyfunc, fit_calibrated
from training.tracking import MODEL_NAME, git_commit, use_store

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    target: str
    metrics: dict[str, float]
    split: dict[str, Any] = field(default_factory=dict)


def holdout_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score and log loss of probabilities against labels."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return {
        f"{prefix}roc_auc": float(roc_auc_score(y, p)),
        f"{prefix}pr_auc": float(average_precision_score(y, p)),
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def ceiling_auc(data_dir: Path, ts: TrainingSet, idx: np.ndarray) -> float | None:
    """AUC of the simulator's true probabilities on the same holdout, when truth is known."""
    path = data_dir / "truth.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path).set_index("lead_id")
    col = f"p_{ts.target}"
    if col not in truth.columns:
        return None
    p_true = truth[col].reindex(ts.X.index[idx]).to_numpy(dtype=float)
    ok = ~np.isnan(p_true)
    y = ts.y[idx][ok]
    if ok.sum() < 10 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, p_true[ok]))


def signature_frame(X: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain strings: what a JSON client sends and MLflow can describe."""
    out = X.reset_index(drop=True).copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def model_signature(example: pd.DataFrame, answers: pd.DataFrame) -> ModelSignature:
    """Every input column optional (missing values are information), outputs as scored."""
    inputs = Schema(
        [
            ColSpec("string" if example[c].dtype == object else "double", c, required=False)
            for c in example.columns
        ]
    )
    return ModelSignature(inputs=inputs, outputs=infer_signature(example, answers).outputs)


def fit_model(
    ts: TrainingSet,
    split: TimeSplit,
    params: dict[str, Any],
    seed: int,
    config: FeatureConfig,
) -> LeadScoringModel:
    """Fit the conversion, fit and interest heads on the fit slice, calibrate on the next."""
    X, y = ts.X, ts.y
    Xf, yf = X.iloc[split.fit], y[split.fit]
    Xc, yc = X.iloc[split.calibration], y[split.calibration]
    heads = {
        name: fit_calibrated(cols, Xf, yf, Xc, yc, params, seed)
        for name, cols in (
            ("conversion", FEATURE_COLUMNS),
            ("fit", FIRMOGRAPHIC_FEATURES),
            ("interest", ENGAGEMENT_FEATURES),
        )
    }
    policy = load_quadrant_policy()
    # Cut-offs from out-of-sample scores (the calibration slice), not the fitted rows.
    fit_scores = 100.0 * heads["fit"].predict_proba(Xc)[:, 1]
    interest_scores = 100.0 * heads["interest"].predict_proba(Xc)[:, 1]
    t_fit, t_int = policy.fit_thresholds(
        fit_scores, interest_scores, ts.as_of.iloc[split.calibration], base_rate=float(yc.mean())
    )
    return LeadScoringModel(
        target=ts.target,
        from_stage=ts.from_stage,
        horizon_days=ts.horizon_days,
        feature_columns=list(FEATURE_COLUMNS),
        conversion=heads["conversion"],
        fit=heads["fit"],
        interest=heads["interest"],
        policy=policy,
        fit_threshold=float(t_fit),
        interest_threshold=float(t_int),
        feature_config=config,
        personas=load_personas(),
        content=load_content(),
    )


def train(
    data_dir: str | Path,
    target: str = "sal",
    horizon_days: int = 90,
    seed: int = 7,
    params: dict[str, Any] | None = None,
    progress: Progress = lambda msg: None,
) -> TrainResult:
    """The whole training job; returns the holdout metrics and the registered version."""
    data_dir = Path(data_dir)
    params = dict(params or {})
    config = FeatureConfig()
    progress(f"reading {data_dir}")
    data = read_tables(data_dir)
    progress(f"building point-in-time snapshots for target {target!r}")
    ts = build_training_set(data, target=target, horizon_days=horizon_days, config=config)
    split = time_split(len(ts.y))
    progress(
        f"{len(ts.y)} snapshots ({ts.censored} censored), positives {ts.y.mean():.1%}; "
        f"fit {len(split.fit)} / calibrate {len(split.calibration)} / holdout {len(split.holdout)}"
    )
    model = fit_model(ts, split, params, seed, config)
    hold = split.holdout
    scored = model.score(ts.X.iloc[hold])
    metrics = holdout_metrics(ts.y[hold], scored["p_convert"].to_numpy())
    ceiling = ceiling_auc(data_dir, ts, hold)
    if ceiling is not None:
        metrics["ceiling_roc_auc"] = ceiling
    metrics["holdout_positive_rate"] = float(ts.y[hold].mean())
    metrics["n_holdout"] = float(len(hold))
    model.metadata = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "holdout_metrics": metrics,
        "quadrant_thresholds": model.quadrant_thresholds,
        "split": split.describe(ts.as_of),
    }

    use_store()
    progress("logging to MLflow")
    with mlflow.start_run(run_name=f"lightgbm-{target}") as run:
        mlflow.set_tags({"git_commit": git_commit(), "target": target, "data_dir": str(data_dir)})
        mlflow.log_params(
            {
                "target": target,
                "from_stage": ts.from_stage,
                "horizon_days": horizon_days,
                "seed": seed,
                "n_snapshots": len(ts.y),
                "n_features": len(FEATURE_COLUMNS),
                **{f"lgbm_{k}": v for k, v in params.items()},
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_dict(model.metadata, "model_metadata.json")
        example = signature_frame(ts.X.iloc[hold[:5]])
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScoringPyfunc(model),
            input_example=example,
            signature=model_signature(example, model.score(ts.X.iloc[hold[:5]])),
        )
        version = mlflow.register_model(info.model_uri, MODEL_NAME)
        client = MlflowClient()
        client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
        for k, v in metrics.items():
            client.set_model_version_tag(MODEL_NAME, version.version, f"holdout_{k}", f"{v:.4f}")
        client.set_model_version_tag(MODEL_NAME, version.version, "target", target)
    return TrainResult(
        run_id=run.info.run_id,
        model_name=MODEL_NAME,
        model_version=str(version.version),
        target=target,
        metrics=metrics,
        split=split.describe(ts.as_of),
    )
