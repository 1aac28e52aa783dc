"""Train, evaluate on a time holdout, log to MLflow, register and alias as challenger."""

from __future__ import annotations

import tempfile
import warnings
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
    DEFAULT_HALF_LIVES_DAYS,
    FeatureConfig,
    custom_feature_config,
    engagement_features,
    feature_columns,
    fit_features,
)
from features.content import load_content
from features.contract import CrmData, read_tables
from features.importer import CustomFields, load_custom_fields
from features.personas import load_personas
from features.quadrant_policy import load_quadrant_policy
from training import evaluate as ev
from training.baselines import fit_baselines
from training.calibration import apply_prior
from training.dataset import (
    TimeSplit,
    TrainingSet,
    build_training_set,
    snapshot_ages,
    snapshot_groups,
)
from training.decay import learn_half_lives
from training.leakage import LeakageError, LeakageFinding, blocking, check_leakage
from training.model import (
    DEFAULT_LGBM_PARAMS,
    LeadScoringModel,
    LeadScoringPyfunc,
    fit_calibrated,
    fitted_pipeline,
)
from training.tracking import MODEL_NAME, git_commit, quiet_pickle_notice, use_store

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    target: str
    metrics: dict[str, float]
    split: dict[str, Any] = field(default_factory=dict)
    # holdout metrics of LightGBM and every baseline on the same rows (primary target)
    comparison: pd.DataFrame | None = None
    half_lives_days: dict[str, float] = field(default_factory=dict)


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
    """AUC of the simulator's true probabilities on the same holdout, when truth is known.
    The truth is each lead's probability from its entry, so only entry snapshots count."""
    idx = idx[ts.age_days[idx] == 0]
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


def ceiling_metrics(
    data_dir: Path, ts: TrainingSet, idx: np.ndarray, p: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """The simulator's ceiling AUC, and with snapshots at several ages the model's AUC on
    the entry snapshots alone, the rows the ceiling is measured on."""
    out: dict[str, float] = {}
    ceiling = ceiling_auc(data_dir, ts, idx)
    if ceiling is None:
        return out
    out[f"{prefix}ceiling_roc_auc"] = ceiling
    entry = ts.age_days[idx] == 0
    if not entry.all():
        out[f"{prefix}entry_roc_auc"] = float(roc_auc_score(ts.y[idx][entry], p[entry]))
    return out


def import_feature_config(data: CrmData, custom: CustomFields | None) -> FeatureConfig:
    """The feature config, with an import's custom attributes and counters as features.
    Categories are learned from the earliest 80% of leads only (never the holdout)."""
    if custom is None or not custom.columns:
        return FeatureConfig()
    cutoff = data.leads["created_at"].quantile(0.8)
    early = data.leads[data.leads["created_at"] <= cutoff]
    return custom_feature_config(early, dict(custom.attributes), custom.counters)


def leakage_gate(
    ts: TrainingSet,
    split: TimeSplit,
    config: FeatureConfig,
    custom: CustomFields | None,
    allowed: tuple[str, ...],
    progress: Progress,
) -> list[LeakageFinding]:
    """Stop training on features that look like they record the outcome, unless allowed."""
    record = [*fit_features(config), *config.counters]
    findings = check_leakage(
        ts.X.iloc[split.fit],
        ts.y[split.fit],
        ts.X.iloc[split.calibration],
        ts.y[split.calibration],
        record_columns=record,
        sources=dict(custom.sources) if custom else None,
    )
    stop = blocking(findings, allowed)
    if stop:
        raise LeakageError(stop)
    for f in findings:
        progress(f"allowed although it looks leaky: {f}")
    return findings


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
    calibration_prior: str = "long-run",
) -> LeadScoringModel:
    """Fit the conversion, fit and interest heads on the fit slice, calibrate on the next
    (with the base-rate prior of ``training.calibration``)."""
    X, y = ts.X, ts.y
    Xf, yf = X.iloc[split.fit], y[split.fit]
    Xc, yc = X.iloc[split.calibration], y[split.calibration]
    heads = {
        name: fit_calibrated(cols, Xf, yf, Xc, yc, params, seed)
        for name, cols in (
            ("conversion", feature_columns(config)),
            ("fit", fit_features(config)),
            ("interest", engagement_features(config)),
        )
    }
    calibration = {
        name: apply_prior(head, calibration_prior, Xc, yf, yc) for name, head in heads.items()
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
        feature_columns=feature_columns(config),
        conversion=heads["conversion"],
        fit=heads["fit"],
        interest=heads["interest"],
        policy=policy,
        fit_threshold=float(t_fit),
        interest_threshold=float(t_int),
        feature_config=config,
        personas=load_personas(),
        content=load_content(),
        metadata={"calibration": {"prior": calibration_prior, **calibration["conversion"]}},
    )


def default_targets(target: str) -> tuple[str, ...]:
    """The primary target first; with ``sal`` the model also answers ``mql`` (p_mql)."""
    return (target, "mql") if target == "sal" else (target,)


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


FROM_WORDS = {"mql": "lead", "sal": "MQL"}
ENTRY_WORDS = {"mql": "lead creation", "sal": "MQL entry"}


def snapshot_words(ages: tuple[int, ...], target: str) -> str:
    """How a target's training snapshots were taken, for the model card."""
    entry = ENTRY_WORDS.get(target, "entry into the stage before it")
    later = "/".join(str(a) for a in ages if a)
    if not later:
        return f"snapshot at {entry}"
    return f"snapshots at {entry} and {later} days later while not yet at the target"


def segment_labels(data: CrmData, ts: TrainingSet, idx: np.ndarray, model: LeadScoringModel):
    """Segment (persona/lifecycle stage) of each holdout snapshot as of its time (one
    snapshot age at a time: a lead may have several)."""
    from features.content import funnel_profile

    out = np.empty(len(idx), dtype=object)
    for at, as_of, leads, events in snapshot_groups(data, ts.as_of.iloc[idx], ts.age_days[idx]):
        history = data.stage_history[data.stage_history["lead_id"].isin(as_of.index)]
        profile = funnel_profile(leads, events, history, as_of, model.personas, model.content)
        out[at] = profile["segment"].reindex(as_of.index).to_numpy()
    return out


def train(
    data_dir: str | Path,
    target: str = "sal",
    horizon_days: int = 90,
    seed: int = 7,
    params: dict[str, Any] | None = None,
    progress: Progress = lambda msg: None,
    allow_leaky: tuple[str, ...] = (),
    targets: tuple[str, ...] | None = None,
    learn_decay: bool = False,
    calibration_prior: str = "long-run",
) -> TrainResult:
    """The whole training job; returns the holdout metrics and the registered version.

    ``targets``: funnel targets the one model answers, primary first (default: ``target``
    plus ``mql`` when ``target`` is ``sal``). ``learn_decay``: choose the half-life per event
    group on the calibration slice (never the holdout) before the final fit.
    ``calibration_prior``: "long-run" (default) or "slice", see ``training.calibration``."""
    data_dir = Path(data_dir)
    params = dict(params or {})
    targets = tuple(dict.fromkeys(targets or default_targets(target)))
    target = targets[0]
    progress(f"reading {data_dir}")
    data = read_tables(data_dir)
    custom = load_custom_fields(data_dir)
    config = import_feature_config(data, custom)
    end = custom.exported_at if custom else None
    progress(f"building point-in-time snapshots for target {target!r}")
    ts = build_training_set(data, target=target, horizon_days=horizon_days, config=config, end=end)
    split = ts.split()
    progress(
        f"{len(ts.y)} snapshots ({ts.censored} censored), positives {ts.y.mean():.1%}; "
        f"fit {len(split.fit)} / calibrate {len(split.calibration)} / holdout {len(split.holdout)}"
    )
    decay_trace: dict[str, Any] = {}
    if learn_decay:
        progress("learning interest half-lives on the calibration slice")
        config, decay_trace = learn_half_lives(
            data, ts, split.fit, split.calibration, config, seed, progress=progress
        )
        ts = build_training_set(
            data, target=target, horizon_days=horizon_days, config=config, end=end
        )
    leakage_findings = leakage_gate(ts, split, config, custom, allow_leaky, progress)
    model = fit_model(ts, split, params, seed, config, calibration_prior)
    calibration = model.metadata["calibration"]
    hold = split.holdout
    y_hold = ts.y[hold]
    X_hold = ts.X.iloc[hold]
    scored = model.score(X_hold)
    p_hold = scored["p_convert"].to_numpy()
    metrics = ev.binary_metrics(y_hold, p_hold)
    metrics["ece_noise_floor"] = ev.ece_noise_floor(p_hold)
    metrics["ece_best_sigmoid"] = ev.ece_best_sigmoid(y_hold, model.raw_score(X_hold))
    metrics.update(ceiling_metrics(data_dir, ts, hold, p_hold))
    metrics["holdout_positive_rate"] = float(y_hold.mean())
    metrics["n_holdout"] = float(len(hold))

    # the other funnel steps: one calibrated conversion head each, own snapshots and split
    other_sets: dict[str, TrainingSet] = {}
    for t in targets[1:]:
        progress(f"building point-in-time snapshots for target {t!r}")
        ts_t = build_training_set(data, target=t, horizon_days=horizon_days, config=config, end=end)
        sp_t = ts_t.split()
        head = fit_calibrated(
            feature_columns(config),
            ts_t.X.iloc[sp_t.fit],
            ts_t.y[sp_t.fit],
            ts_t.X.iloc[sp_t.calibration],
            ts_t.y[sp_t.calibration],
            params,
            seed,
        )
        apply_prior(head, calibration_prior, ts_t.X.iloc[sp_t.calibration], ts_t.y[sp_t.fit],
                    ts_t.y[sp_t.calibration])  # fmt: skip
        model.heads[t] = head
        p_t = head.predict_proba(ts_t.X.iloc[sp_t.holdout])[:, 1]
        metrics.update(ev.binary_metrics(ts_t.y[sp_t.holdout], p_t, prefix=f"{t}_"))
        metrics.update(ceiling_metrics(data_dir, ts_t, sp_t.holdout, p_t, prefix=f"{t}_"))
        other_sets[t] = ts_t

    progress("fitting baselines on the same slices")
    baseline_p = fit_baselines(
        ts.X.iloc[split.fit],
        ts.y[split.fit],
        ts.X.iloc[split.calibration],
        ts.y[split.calibration],
        X_hold,
        calibration_prior,
    )
    probs = {"lightgbm": p_hold, **baseline_p}
    comparison = ev.comparison_table(y_hold, probs)
    metrics.update(ev.auc_intervals(y_hold, probs, groups=ts.X.index[hold]))
    model.metadata = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "holdout_metrics": metrics,
        "quadrant_thresholds": model.quadrant_thresholds,
        "split": split.describe(ts.entry_as_of),
        "targets": list(targets),
        "feature_config": config.to_dict(),
        "calibration": calibration,
    }

    use_store()
    progress("logging to MLflow")
    run_name = f"lightgbm-{'+'.join(targets)}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(
            {
                "git_commit": git_commit(),
                "target": target,
                "targets": ",".join(targets),
                "data_dir": str(data_dir),
                "model_kind": "lightgbm",
            }
        )
        digests = {"dataset_digest": log_dataset(ts, data_dir, "training")}
        for t, ts_t in other_sets.items():
            digests[f"dataset_digest_{t}"] = log_dataset(ts_t, data_dir, "training")
        mlflow.set_tags(digests)
        mlflow.log_params(
            {
                "target": target,
                "targets": ",".join(targets),
                "from_stage": ts.from_stage,
                "horizon_days": horizon_days,
                "seed": seed,
                "n_snapshots": len(ts.y),
                "snapshot_ages_days": ",".join(map(str, ts.ages)),
                **{
                    f"{t}_snapshot_ages_days": ",".join(map(str, o.ages))
                    for t, o in other_sets.items()
                },
                "n_features": len(feature_columns(config)),
                "learn_decay": learn_decay,
                "calibration_prior": calibration_prior,
                "calibration_slice_rate": round(calibration["slice_rate"], 4),
                "calibration_target_rate": round(calibration["target_rate"], 4),
                "calibration_shift": round(calibration["shift"], 4),
                **{f"half_life_{g}": h for g, h in config.half_lives_days.items()},
                **{f"lgbm_{k}": v for k, v in params.items()},
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        for name, row in comparison.iterrows():
            mlflow.log_metrics({f"holdout_{name}_{k}": float(v) for k, v in row.items()})
        mlflow.log_dict(model.metadata, "model_metadata.json")
        mlflow.log_dict(
            {
                "feature_config": config.to_dict(),
                "lgbm_params": {**DEFAULT_LGBM_PARAMS, **params},
                "targets": list(targets),
                "horizon_days": horizon_days,
                "seed": seed,
                "decay_trace": {k: v for k, v in decay_trace.items()},
            },
            "config.json",
        )
        if leakage_findings:
            mlflow.log_dict({f.feature: str(f) for f in leakage_findings}, "leakage_allowed.json")
        progress("writing evaluation artifacts")
        with tempfile.TemporaryDirectory() as tmp:
            write_evaluation(
                Path(tmp), data, ts, split, model, scored, probs, comparison, metrics,
                data_dir, targets, config,
            )  # fmt: skip
            mlflow.log_artifacts(tmp, "evaluation")
        for name in baseline_p:
            with mlflow.start_run(run_name=f"baseline-{name}", nested=True):
                mlflow.set_tags({"model_kind": "baseline", "baseline": name, "target": target})
                mlflow.log_metrics(
                    {f"holdout_{k}": float(v) for k, v in comparison.loc[name].items()}
                )
        example = signature_frame(ts.X.iloc[hold[:5]])
        answers = model.score(ts.X.iloc[hold[:5]]).drop(columns="reasons")
        with quiet_pickle_notice():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=LeadScoringPyfunc(model),
                input_example=example,
                signature=model_signature(example, answers),
            )
        version = mlflow.register_model(info.model_uri, MODEL_NAME)
        client = MlflowClient()
        client.set_registered_model_alias(MODEL_NAME, "challenger", version.version)
        for k, v in metrics.items():
            client.set_model_version_tag(MODEL_NAME, version.version, f"holdout_{k}", f"{v:.4f}")
        client.set_model_version_tag(MODEL_NAME, version.version, "target", target)
        client.set_model_version_tag(MODEL_NAME, version.version, "data_dir", str(data_dir))
        client.set_model_version_tag(MODEL_NAME, version.version, "horizon_days", horizon_days)
    return TrainResult(
        run_id=run.info.run_id,
        model_name=MODEL_NAME,
        model_version=str(version.version),
        target=target,
        metrics=metrics,
        split=model.metadata["split"],
        comparison=comparison,
        half_lives_days=dict(config.half_lives_days),
    )


def write_evaluation(
    out: Path,
    data: CrmData,
    ts: TrainingSet,
    split: TimeSplit,
    model: LeadScoringModel,
    scored: pd.DataFrame,
    probs: dict[str, np.ndarray],
    comparison: pd.DataFrame,
    metrics: dict[str, float],
    data_dir: Path,
    targets: tuple[str, ...],
    config: FeatureConfig,
) -> None:
    """Charts, tables, explanations and the model card of one training run, into ``out``;
    ``scored``: the model's answers on the holdout rows, as ``train`` computed them."""
    hold = split.holdout
    y = ts.y[hold]
    X_hold = ts.X.iloc[hold]
    comparison.round(5).to_csv(out / "comparison.csv")
    ev.plot_roc(y, probs, out / "roc.png")
    ev.plot_pr(y, probs, out / "pr.png")
    ev.plot_reliability(y, probs, out / "reliability.png")
    ev.plot_gains(y, probs, out / "cumulative_gains.png")
    ev.plot_lift(y, probs, out / "lift.png")
    p = scored["p_convert"].to_numpy()
    slices = [ev.slice_metrics(y, p, scored["quadrant"]).assign(by="quadrant")]
    if len(ts.ages) > 1:  # calibrated at every age the CRM asks about, not only at entry
        age = pd.Series(ts.age_days[hold], index=scored.index)
        slices.append(ev.slice_metrics(y, p, age).assign(by="snapshot_age_days"))
        ev.plot_reliability_by(
            y, p, ts.age_days[hold], "{} days after entry", "Reliability by snapshot age",
            out / "reliability_by_age.png",
        )  # fmt: skip
    try:
        seg = segment_labels(data, ts, hold, model)
        slices.append(ev.slice_metrics(y, p, pd.Series(seg)).assign(by="segment"))
    except (KeyError, ValueError) as exc:  # a segment failure must not stop training
        (out / "segments_error.txt").write_text(str(exc))
    pd.concat(slices).to_csv(out / "metrics_by_slice.csv", index=False)
    contrib = model.contributions(X_hold)
    shap_mean = contrib.drop(columns="bias").abs().mean().sort_values(ascending=False)
    shap_mean.rename("mean_abs_contribution").to_csv(out / "shap_importance.csv")
    ev.plot_importance(shap_mean, out / "shap_bar.png", "mean |contribution| (log-odds)")
    ev.plot_shap_beeswarm(contrib, X_hold, out / "shap_beeswarm.png")
    pipe = fitted_pipeline(model.conversion)
    gain = pd.Series(
        pipe.named_steps["lgbm"].booster_.feature_importance(importance_type="gain"),
        index=pipe.named_steps["select"].columns_,
    ).sort_values(ascending=False)
    gain.rename("gain").to_csv(out / "feature_importance.csv")
    ev.plot_importance(gain, out / "feature_importance.png", "LightGBM gain importance")
    ev.plot_decay_curves(config.half_lives_days, DEFAULT_HALF_LIVES_DAYS, out / "decay_curves.png")
    descriptions = {
        t: f"{FROM_WORDS.get(t, ts.from_stage if t == ts.target else 'previous stage')} -> "
        f"{t.upper()} within {ts.horizon_days} "
        f"days, {snapshot_words(snapshot_ages(t), t)}"
        for t in targets
    }
    card = ev.model_card(
        {
            "model_name": MODEL_NAME,
            "run_name": "+".join(targets),
            "targets": {t: descriptions.get(t, f"reach {t} within the horizon") for t in targets},
            "primary": targets[0],
            "data_dir": str(data_dir),
            "split": model.metadata["split"],  # as train described it
            "features": list(model.feature_columns),
            "informative_features": [
                c for c in model.feature_columns if ts.X[c].iloc[split.fit].nunique() > 1
            ],
            "top_features": shap_mean.head(10).rename_axis("feature"),
            "interval_words": ev.interval_words(metrics, comparison),
            "half_lives": dict(config.half_lives_days),
            "comparison": comparison,
            "extra_metrics": {
                k: round(v, 4)
                for k, v in metrics.items()
                # the bootstrap intervals are in the interval sentence
                if ("ceiling" in k or k.startswith(("mql_", "ece_", "entry_")))
            },
        }
    )
    (out / "model_card.md").write_text(card)
