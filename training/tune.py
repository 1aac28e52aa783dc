"""Hyper-parameter search with Optuna, every trial a nested MLflow run.

Trials fit LightGBM on the fit slice and are scored by log loss on the calibration slice,
the same slices training uses; the final holdout is never looked at while tuning. The
parent run keeps the best parameters as ``best_params.json``, which
``leadscore train --params-from-run RUN_ID`` reads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from sklearn.metrics import log_loss, roc_auc_score

from scoring.model import make_pipeline
from training.config import TrainConfig
from training.prepare import primary_snapshots
from training.tracking import git_commit, tracking_uri, use_store

BEST_PARAMS_ARTIFACT = "best_params.json"


@dataclass(frozen=True)
class TuneResult:
    parent_run_id: str
    best_params: dict[str, Any]
    best_log_loss: float
    best_roc_auc: float
    trials: int


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """The search space: from stumps to mid-sized trees, with regularisation, and how
    categorical fields are split (imports carry many: lead source, specialization ...)."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 2, 31, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, step=50),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
        "min_data_per_group": trial.suggest_int("min_data_per_group", 10, 200, log=True),
        "max_cat_to_onehot": trial.suggest_int("max_cat_to_onehot", 4, 32, log=True),
    }


def tune(
    data_dir: str | Path,
    trials: int = 30,
    target: str = "sal",
    horizon_days: int = 90,
    seed: int = 7,
    progress: Callable[[str], None] = lambda msg: None,
    *,
    snapshot_ages_days: Sequence[int] | None = None,
) -> TuneResult:
    """``trials`` Optuna trials on the export in ``data_dir``; ``target``, ``horizon_days``,
    ``seed`` and ``snapshot_ages_days`` are those of the training run (``TrainConfig``),
    so the trials see its snapshots and split."""
    config = TrainConfig(
        target=target, horizon_days=horizon_days, seed=seed, snapshot_ages_days=snapshot_ages_days
    )
    hs, _ = primary_snapshots(Path(data_dir), config)
    ts, split = hs.ts, hs.split
    Xf, yf = ts.X.iloc[split.fit], ts.y[split.fit]
    Xc, yc = ts.X.iloc[split.calibration], ts.y[split.calibration]
    columns = list(ts.X.columns)

    use_store()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with mlflow.start_run(run_name=f"tune-{target}") as parent:
        mlflow.set_tags({"git_commit": git_commit(), "target": target, "model_kind": "tuning"})
        mlflow.log_params(
            {"trials": trials, "target": target, "horizon_days": horizon_days, "seed": seed}
        )

        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial)
            pipe = make_pipeline(columns, params, seed)
            pipe.fit(Xf, yf)
            p = np.clip(pipe.predict_proba(Xc)[:, 1], 1e-6, 1 - 1e-6)
            loss = float(log_loss(yc, p, labels=[0, 1]))
            auc = float(roc_auc_score(yc, p))
            trial.set_user_attr("roc_auc", auc)
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                mlflow.set_tag("model_kind", "tuning_trial")
                mlflow.log_params(params)
                mlflow.log_metrics({"calibration_log_loss": loss, "calibration_roc_auc": auc})
            progress(f"trial {trial.number + 1}/{trials}: log loss {loss:.4f}, AUC {auc:.4f}")
            return loss

        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed)
        )
        study.optimize(objective, n_trials=trials)
        best = dict(study.best_params)
        mlflow.log_params({f"best_{k}": v for k, v in best.items()})
        mlflow.log_metrics(
            {
                "best_calibration_log_loss": study.best_value,
                "best_calibration_roc_auc": study.best_trial.user_attrs["roc_auc"],
            }
        )
        mlflow.log_dict(best, BEST_PARAMS_ARTIFACT)
    return TuneResult(
        parent_run_id=parent.info.run_id,
        best_params=best,
        best_log_loss=float(study.best_value),
        best_roc_auc=float(study.best_trial.user_attrs["roc_auc"]),
        trials=trials,
    )


def params_from_run(run_id: str) -> dict[str, Any]:
    """The best parameters a `leadscore tune` run found."""
    from mlflow.exceptions import MlflowException

    from training.registry import RegistryError

    use_store()
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/{BEST_PARAMS_ARTIFACT}"))
    except (MlflowException, OSError) as exc:
        raise RegistryError(
            f"run {run_id!r} has no tuned parameters in this store ({tracking_uri()}): pass "
            "the parent run id `leadscore tune` printed"
        ) from exc
