"""Record a training run in MLflow and register its model: the run's tags, parameters,
datasets, holdout metrics and documents, the evaluation artifacts, one nested run per
baseline, then the model itself, registered under the config's name with the alias
``challenger`` (``leadscore promote`` decides whether it becomes the champion)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

from features.build import feature_columns
from monitoring.reference import reference_stats
from scoring.model import DEFAULT_LGBM_PARAMS, LeadScoringModel, LeadScoringPyfunc
from training.artifacts import write_evaluation
from training.config import TrainConfig
from training.dataset import TrainingSet
from training.example import safe_input_example
from training.fit import FittedModel, OtherTarget
from training.measure import Evaluation
from training.prepare import Prepared
from training.results import Progress
from training.tracking import experiment_for, git_commit, quiet_pickle_notice, use_store


def model_metadata(
    run: Prepared, fitted: FittedModel, evaluation: Evaluation, config: TrainConfig
) -> dict[str, Any]:
    """What the registered model carries about the run that made it (``config``
    resolved): its holdout, split, snapshot ages, features, choice and skill."""
    model, choice, ts = fitted.model, fitted.choice, run.ts
    verdict = evaluation.verdict
    return {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "holdout_metrics": evaluation.metrics,
        "quadrant_thresholds": model.quadrant_thresholds,
        "split": run.split.describe(ts.entry_as_of),
        "snapshot_ages_days": list(ts.ages),  # the promotion gate rebuilds the same holdout
        "targets": list(config.targets),
        "feature_config": run.features.to_dict(),
        "choice": choice.to_dict(),
        "calibration": {
            "prior": choice.prior,
            "slope": model.conversion.slope,
            "intercept": model.conversion.intercept,
        },  # fmt: skip
        "skill": {**verdict.to_dict(), "sentence": verdict.sentence()},
        "data_end": None if run.end is None else str(run.end),
    }


def reference_for(run: Prepared, fitted: FittedModel, evaluation: Evaluation) -> dict[str, Any]:
    """The statistics served traffic is monitored against (``leadscore monitor``): the
    model's features on the rows it was fitted on (every snapshot before the holdout) and
    its scores on the holdout (out of sample, as served answers are: scores on the rows a
    model was fitted on are more spread than any it will serve)."""
    ts, pre = run.ts, fitted.pre
    stats = reference_stats(
        ts.X.iloc[pre][fitted.model.feature_columns],
        evaluation.scored.drop(columns=["reasons"], errors="ignore"),
        ts.y[pre],
        as_of=ts.as_of.iloc[pre],
    )
    stats["scores_from"] = "holdout"
    return stats


def register(
    run: Prepared,
    fitted: FittedModel,
    others: dict[str, OtherTarget],
    evaluation: Evaluation,
    config: TrainConfig,
    warnings_: list[str],
    progress: Progress = lambda msg: None,
) -> tuple[str, str]:
    """Log the run and register its model (``fitted.model``, its metadata set); returns
    the MLflow run id and the registered version."""
    use_store(experiment_for(config.model_name))
    progress("logging to MLflow")
    run_name = f"{fitted.choice.family}-{'+'.join(config.targets)}"
    with mlflow.start_run(run_name=run_name) as mlflow_run:
        mlflow.set_tags(run_tags(run, fitted, evaluation, config))
        log_datasets(run, others)
        mlflow.log_params(run_params(run, fitted, others, config))
        log_holdout_metrics(evaluation)
        log_documents(run, fitted, evaluation, config, warnings_)
        progress("writing evaluation artifacts")
        with tempfile.TemporaryDirectory() as tmp:
            write_evaluation(Path(tmp), run, fitted.model, evaluation, others, config, warnings_)
            mlflow.log_artifacts(tmp, "evaluation")
        log_baseline_runs(evaluation, config)
        version = log_and_register_model(run, fitted, config)
        client = MlflowClient()
        for k, v in version_tags(run, fitted, evaluation, config).items():
            client.set_model_version_tag(config.model_name, version, k, v)
    return mlflow_run.info.run_id, version


def run_tags(
    run: Prepared, fitted: FittedModel, evaluation: Evaluation, config: TrainConfig
) -> dict[str, Any]:
    return {
        "git_commit": git_commit(),
        "target": config.target,
        "targets": ",".join(config.targets),
        "data_dir": str(run.data_dir),
        "model_kind": fitted.choice.family,
        "model_family": fitted.choice.family,
        "skill": evaluation.verdict.to_dict()["skill"],
    }


def log_datasets(run: Prepared, others: dict[str, OtherTarget]) -> None:
    """Every target's snapshot table as an MLflow input, and their digests as tags."""
    digests = {"dataset_digest": log_dataset(run.ts, run.data_dir, "training")}
    for t, other in others.items():
        digests[f"dataset_digest_{t}"] = log_dataset(other.ts, run.data_dir, "training")
    mlflow.set_tags(digests)


def log_dataset(ts: TrainingSet, data_dir: Path, context: str) -> str:
    """Log the snapshot table (features + label + as_of) as an MLflow input; its digest."""
    frame = ts.X.reset_index().assign(
        as_of=ts.as_of.to_numpy(), snapshot_age_days=ts.age_days, label=ts.y
    )
    for c in frame.columns:
        if isinstance(frame[c].dtype, pd.CategoricalDtype):
            frame[c] = frame[c].astype(object)
    with warnings.catch_warnings():
        # MLflow's schema hints for integer count columns and the local-path source kind:
        # the dataset is logged for lineage only, never enforced; not user news.
        warnings.filterwarnings("ignore", r"Hint: Inferred schema contains integer", UserWarning)
        warnings.filterwarnings("ignore", r"The specified dataset source can be", UserWarning)
        ds = mlflow.data.from_pandas(
            frame, source=str(data_dir), name=f"{ts.target}-snapshots", targets="label"
        )
        mlflow.log_input(ds, context=context)  # the schema is inferred here
    return ds.digest


def run_params(
    run: Prepared, fitted: FittedModel, others: dict[str, OtherTarget], config: TrainConfig
) -> dict[str, Any]:
    """The run's parameters: what was asked, what the folds chose, the half-lives and the
    LightGBM parameters given."""
    ts, choice, features = run.ts, fitted.choice, run.features
    return {
        "target": config.target,
        "targets": ",".join(config.targets),
        "from_stage": ts.from_stage,
        "horizon_days": config.horizon_days,
        "seed": config.seed,
        "n_snapshots": len(ts.y),
        "snapshot_ages_days": ",".join(map(str, ts.ages)),
        **{f"{t}_snapshot_ages_days": ",".join(map(str, o.ts.ages)) for t, o in others.items()},
        "n_features": len(feature_columns(features)),
        "learn_decay": config.learn_decay,
        "model_family": choice.family,
        "weighting": choice.weighting,
        "n_trees": choice.n_trees or "-",
        "calibration_prior": choice.prior,
        "calibration_prior_asked": config.calibration_prior,
        **{f"half_life_{g}": h for g, h in features.half_lives_days.items()},
        **{f"lgbm_{k}": v for k, v in config.lightgbm_params.items()},
    }


def log_holdout_metrics(evaluation: Evaluation) -> None:
    mlflow.log_metrics({f"holdout_{k}": v for k, v in evaluation.metrics.items()})
    mlflow.log_metrics({"holdout_constant_log_loss": evaluation.verdict.constant_log_loss})
    for name, row in evaluation.comparison.iterrows():
        mlflow.log_metrics({f"holdout_{name}_{k}": float(v) for k, v in row.items()})


def log_documents(
    run: Prepared,
    fitted: FittedModel,
    evaluation: Evaluation,
    config: TrainConfig,
    warnings_: list[str],
) -> None:
    """The run's JSON documents: model metadata, selection, drift, late wins, warnings,
    config, and the leaky-looking features that were allowed."""
    metadata = dict(fitted.model.metadata)
    reference = metadata.pop("reference_stats", None)
    mlflow.log_dict(metadata, "model_metadata.json")
    if reference is not None:
        mlflow.log_dict(reference, "reference_stats.json")
    mlflow.log_dict(fitted.choice.to_dict(), "selection.json")
    mlflow.log_dict(evaluation.drift.to_dict(), "drift.json")
    mlflow.log_dict(evaluation.late.to_dict(), "late_wins.json")
    if warnings_:
        mlflow.log_dict({"warnings": warnings_}, "warnings.json")
    mlflow.log_dict(
        {
            "feature_config": run.features.to_dict(),
            "lgbm_params": {**DEFAULT_LGBM_PARAMS, **config.lightgbm_params},
            "targets": list(config.targets),
            "horizon_days": config.horizon_days,
            "seed": config.seed,
            "decay_trace": dict(run.decay_trace),
        },
        "config.json",
    )
    if run.leakage_allowed:
        allowed = {f.feature: str(f) for f in run.leakage_allowed}
        mlflow.log_dict(allowed, "leakage_allowed.json")


def log_baseline_runs(evaluation: Evaluation, config: TrainConfig) -> None:
    """One nested run per baseline with its holdout metrics."""
    for name in evaluation.baselines:
        with mlflow.start_run(run_name=f"baseline-{name}", nested=True):
            mlflow.set_tags({"model_kind": "baseline", "baseline": name, "target": config.target})
            mlflow.log_metrics(
                {f"holdout_{k}": float(v) for k, v in evaluation.comparison.loc[name].items()}
            )


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


#: What a logged model needs to load: leadscore (whose own pins bring LightGBM and the rest)
#: and the libraries its pickled objects are made of. Given, not inferred: MLflow infers
#: them by loading the model in a subprocess, seconds of every training run, and found this
#: same list.
MODEL_PACKAGES = (
    "mlflow",
    "cloudpickle",
    "leadscore",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "lightgbm",
)


def model_requirements() -> list[str]:
    """``name==version`` of :data:`MODEL_PACKAGES` as installed here (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in MODEL_PACKAGES:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def log_and_register_model(run: Prepared, fitted: FittedModel, config: TrainConfig) -> str:
    """Log the model with an input example and signature, register it under
    ``config.model_name`` and alias it ``challenger``; returns the version."""
    model: LeadScoringModel = fitted.model
    example = safe_input_example(run.ts.X.iloc[fitted.pre])
    answers = model.score(example).drop(columns="reasons")
    with quiet_pickle_notice():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScoringPyfunc(model),
            input_example=signature_frame(example),
            signature=model_signature(signature_frame(example), answers),
            pip_requirements=model_requirements(),
        )
    version = mlflow.register_model(info.model_uri, config.model_name)
    MlflowClient().set_registered_model_alias(config.model_name, "challenger", version.version)
    return str(version.version)


def version_tags(
    run: Prepared, fitted: FittedModel, evaluation: Evaluation, config: TrainConfig
) -> dict[str, Any]:
    """The registered version's tags: its holdout metrics (4 decimals), what it predicts
    from which data, and where its holdout starts (the promotion gate checks it)."""
    tags: dict[str, Any] = {f"holdout_{k}": f"{v:.4f}" for k, v in evaluation.metrics.items()}
    tags.update(
        {
            "target": config.target,
            "data_dir": str(run.data_dir),
            "horizon_days": config.horizon_days,
            "model_family": fitted.choice.family,
            "skill": evaluation.verdict.to_dict()["skill"],
            "holdout_from": str(run.holdout.holdout_from),
            "data_end": "" if run.end is None else str(run.end),
        }
    )
    return tags
