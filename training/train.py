"""Train, evaluate on a time holdout, log to MLflow, register and alias as challenger."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from crm.contract import CrmData, read_tables
from crm.importer import CustomFields, load_custom_fields
from features.build import (
    DEFAULT_HALF_LIVES_DAYS,
    FeatureConfig,
    custom_feature_config,
    engagement_features,
    feature_columns,
    fit_features,
)
from features.content import load_content
from features.personas import load_personas
from features.quadrant_policy import load_quadrant_policy
from scoring.heads import FAMILIES, CalibratedHead
from scoring.model import (
    DEFAULT_LGBM_PARAMS,
    LeadScoringModel,
    LeadScoringPyfunc,
)
from training import evaluate as ev
from training.baselines import fit_baselines
from training.config import TrainConfig
from training.dataset import (
    TimeSplit,
    TrainingSet,
    build_training_set,
    snapshot_ages,
    snapshot_groups,
)
from training.decay import learn_half_lives
from training.drift import drift_report, plot_drift
from training.example import safe_input_example
from training.holdout import export_end, holdout_set
from training.latewins import late_wins
from training.leakage import LeakageError, LeakageFinding, blocking, check_leakage
from training.selection import (
    Choice,
    choose,
    cross_fit,
    fit_calibrated_head,
    forward_blocks,
)
from training.skill import skill_verdict
from training.tracking import (
    MODEL_NAME,
    experiment_for,
    git_commit,
    quiet_pickle_notice,
    use_store,
)

Progress = Callable[[str], None]

#: the comparison row of the predictor that says the pre-holdout base rate for everyone
CONSTANT = "constant_base_rate"
#: late wins above this share of all conversions are a warning, below it a note
LATE_WARN_SHARE = 0.05


def model_label(family: str) -> str:
    """The chosen model's row in the comparison (a baseline of the same family may sit
    beside it)."""
    return f"chosen_{family}"


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
    family: str = "lightgbm"  # the model family chosen on the validation folds
    choice: dict[str, Any] = field(default_factory=dict)
    skill: dict[str, Any] = field(default_factory=dict)
    skill_sentence: str = ""
    drift: dict[str, Any] = field(default_factory=dict)
    drift_lines: list[str] = field(default_factory=list)
    late_wins: dict[str, Any] = field(default_factory=dict)
    late_wins_sentence: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What a script needs (``train --json``): every model's ROC AUC with interval,
        log loss and ECE, the constant predictor, the choice, the skill verdict, the
        drift table, late wins and every warning."""
        models = {}
        if self.comparison is not None:
            for name, row in self.comparison.iterrows():
                entry = {k: float(v) for k, v in row.items()}
                for end in ("low", "high"):
                    key = (
                        f"roc_auc_ci_{end}"
                        if name == model_label(self.family)
                        else f"{name}_roc_auc_ci_{end}"
                    )
                    if key in self.metrics:
                        entry[f"roc_auc_ci_{end}"] = self.metrics[key]
                models[str(name)] = entry
        return {
            "model": self.model_name,
            "version": self.model_version,
            "run_id": self.run_id,
            "target": self.target,
            "family": self.family,
            "choice": self.choice,
            "skill": self.skill,
            "models": models,
            "drift": self.drift,
            "late_wins": self.late_wins,
            "warnings": self.warnings,
            **self.metrics,
        }


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


@dataclass
class FittedModel:
    """The chosen, fitted model and what chose it: the validation folds' figures, the
    rows before the holdout they were cut from, and the out-of-fold quadrant scores."""

    model: LeadScoringModel
    choice: Choice
    pre: np.ndarray  # positions of every row before the holdout (time order)
    blocks: list[np.ndarray]  # forward-chaining blocks of ``pre`` (positions into it)


def fit_model(
    ts: TrainingSet,
    split: TimeSplit,
    params: dict[str, Any],
    seed: int,
    config: FeatureConfig,
    calibration_prior: str = "auto",
    progress: Progress = lambda msg: None,
    families: tuple[str, ...] = FAMILIES,
) -> LeadScoringModel:
    """The registered model: chosen and calibrated on forward-chaining validation folds,
    fitted on every row before the holdout (``choose_and_fit``)."""
    return choose_and_fit(
        ts, split, params, seed, config, calibration_prior, progress, families
    ).model


def choose_and_fit(
    ts: TrainingSet,
    split: TimeSplit,
    params: dict[str, Any],
    seed: int,
    config: FeatureConfig,
    calibration_prior: str = "auto",
    progress: Progress = lambda msg: None,
    families: tuple[str, ...] = FAMILIES,
    personas_path: Path | None = None,
) -> FittedModel:
    """Choose family, weighting, tree count and calibration prior on the validation folds
    (``training.selection``), then fit the conversion, fit and interest heads of that
    kind on every row before the holdout; the holdout is not looked at."""
    pre = np.concatenate([split.fit, split.calibration])
    X, y = ts.X.iloc[pre], ts.y[pre]
    times = ts.entry_as_of.iloc[pre]
    blocks = forward_blocks(ts.X.index[pre])
    columns = feature_columns(config)
    choice = choose(
        columns, X, y, times, blocks, params, seed, families, calibration_prior, progress
    )
    progress(f"chosen: {choice.reason}; calibration prior {choice.prior}")
    kind = (choice.family, choice.weighting, choice.n_trees, choice.prior)
    oof_scores: dict[str, np.ndarray] = {}
    heads = {}
    for name, cols in (
        ("conversion", columns),
        ("fit", fit_features(config)),
        ("interest", engagement_features(config)),
    ):
        oof = choice.scores[choice.name].oof if name == "conversion" else None
        if oof is None:
            oof = cross_fit(
                choice.family, choice.weighting, cols, X, y, times, blocks, params, seed,
                n_trees=choice.n_trees,
            ).oof  # fmt: skip
        oof_scores[name] = oof
        heads[name] = fit_calibrated_head(*kind, cols, X, y, times, blocks, params, seed, oof=oof)
    policy = load_quadrant_policy()
    # Cut-offs from out-of-fold scores (the validation blocks), not the fitted rows.
    valid = np.concatenate(blocks[1:])
    fit_scores = 100.0 * heads["fit"].calibrate(oof_scores["fit"][valid])
    interest_scores = 100.0 * heads["interest"].calibrate(oof_scores["interest"][valid])
    t_fit, t_int = policy.fit_thresholds(
        fit_scores, interest_scores, times.iloc[valid], base_rate=float(y[valid].mean())
    )
    model = LeadScoringModel(
        target=ts.target,
        from_stage=ts.from_stage,
        horizon_days=ts.horizon_days,
        feature_columns=columns,
        conversion=heads["conversion"],
        fit=heads["fit"],
        interest=heads["interest"],
        policy=policy,
        fit_threshold=float(t_fit),
        interest_threshold=float(t_int),
        feature_config=config,
        personas=load_personas(personas_path),
        content=load_content(),
        metadata={"choice": choice.to_dict()},
    )
    return FittedModel(model, choice, pre, blocks)


def fit_other_head(
    ts_t: TrainingSet, choice: Choice, config: FeatureConfig, params: dict[str, Any], seed: int
) -> CalibratedHead:
    """The conversion head of another funnel step, of the kind chosen for the primary one,
    on that step's own snapshots and rows before its holdout."""
    sp = ts_t.split()
    pre = np.concatenate([sp.fit, sp.calibration])
    blocks = forward_blocks(ts_t.X.index[pre])
    return fit_calibrated_head(
        choice.family, choice.weighting, choice.n_trees, choice.prior, feature_columns(config),
        ts_t.X.iloc[pre], ts_t.y[pre], ts_t.entry_as_of.iloc[pre], blocks, params, seed,
    )  # fmt: skip


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
    config: TrainConfig | None = None,
    *,
    progress: Progress = lambda msg: None,
    warn: Progress | None = None,
    **overrides: Any,
) -> TrainResult:
    """The whole training job for the export in ``data_dir``, as ``config`` asks (fields of
    :class:`TrainConfig` may also be given as keywords, over ``config``); returns the
    holdout metrics and the registered version. ``warn``: where warnings go as they arise
    (default: ``progress``); they are also in the result."""
    cfg = replace(config or TrainConfig(), **overrides)
    return _train(
        data_dir,
        target=cfg.target,
        horizon_days=cfg.horizon_days,
        seed=cfg.seed,
        params=cfg.lightgbm_params,
        progress=progress,
        allow_leaky=cfg.allow_leaky,
        targets=cfg.targets,
        learn_decay=cfg.learn_decay,
        calibration_prior=cfg.calibration_prior,
        warn=warn,
        model_name=cfg.model_name,
        personas_path=cfg.personas_path,
    )


def _train(
    data_dir: str | Path,
    target: str = "sal",
    horizon_days: int = 90,
    seed: int = 7,
    params: dict[str, Any] | None = None,
    progress: Progress = lambda msg: None,
    allow_leaky: tuple[str, ...] = (),
    targets: tuple[str, ...] | None = None,
    learn_decay: bool = False,
    calibration_prior: str = "auto",
    warn: Progress | None = None,
    model_name: str = MODEL_NAME,
    personas_path: Path | None = None,
) -> TrainResult:
    """The whole training job; returns the holdout metrics and the registered version.

    ``targets``: funnel targets the one model answers, primary first (default: ``target``
    plus ``mql`` when ``target`` is ``sal``). ``learn_decay``: choose the half-life per event
    group on the calibration slice (never the holdout) before the final fit.
    ``calibration_prior``: "auto" (chosen on the validation folds), "long-run" or "recent"
    see ``training.selection``. ``warn``: where warnings go as they arise
    (default: ``progress``); they are also in the result."""
    data_dir = Path(data_dir).resolve()
    params = dict(params or {})
    targets = tuple(dict.fromkeys(targets or default_targets(target)))
    target = targets[0]
    warnings_: list[str] = []

    def warning(msg: str) -> None:
        warnings_.append(msg)
        (warn or progress)(f"WARNING: {msg}")

    progress(f"reading {data_dir}")
    data = read_tables(data_dir)
    custom = load_custom_fields(data_dir)
    config = import_feature_config(data, custom)
    end = export_end(data_dir)
    progress(f"building point-in-time snapshots for target {target!r}")
    hs = holdout_set(data_dir, target, horizon_days, config, data=data)
    ts, split = hs.ts, hs.split
    progress(
        f"{len(ts.y)} snapshots ({ts.censored} censored), positives {ts.y.mean():.1%}; "
        f"{len(split.fit) + len(split.calibration)} before the holdout (fitted and validated "
        f"on forward-chaining time folds) / holdout {len(split.holdout)}"
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
    fitted = choose_and_fit(
        ts, split, params, seed, config, calibration_prior, progress, personas_path=personas_path
    )
    model, choice = fitted.model, fitted.choice
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
        head = fit_other_head(ts_t, choice, config, params, seed)
        model.heads[t] = head
        sp_t = ts_t.split()
        p_t = head.predict_proba(ts_t.X.iloc[sp_t.holdout])[:, 1]
        metrics.update(ev.binary_metrics(ts_t.y[sp_t.holdout], p_t, prefix=f"{t}_"))
        metrics.update(ceiling_metrics(data_dir, ts_t, sp_t.holdout, p_t, prefix=f"{t}_"))
        other_sets[t] = ts_t

    progress("fitting baselines on the same rows")
    pre = fitted.pre
    baseline_p = fit_baselines(
        feature_columns(config), ts.X.iloc[pre], ts.y[pre], ts.entry_as_of.iloc[pre],
        fitted.blocks, choice, X_hold, params, seed,
    )  # fmt: skip
    reference = model_label(choice.family)
    probs = {reference: p_hold, **baseline_p}
    # the rate the model was calibrated to, said for every lead: what "no skill" means
    base_rate = hs.rate_for_prior(choice.prior)
    comparison = ev.comparison_table(y_hold, {**probs, CONSTANT: np.full(len(hold), base_rate)})
    metrics.update(ev.auc_intervals(y_hold, probs, reference=reference, groups=ts.X.index[hold]))
    verdict = skill_verdict(y_hold, p_hold, base_rate, groups=ts.X.index[hold])
    if not verdict.has_skill:
        warning(verdict.sentence())
    for name in baseline_p:
        high = metrics.get(f"roc_auc_gain_vs_{name}_high")
        if high is not None and high < 0:
            warning(
                f"the {name} model beats the chosen {choice.family} model on the holdout "
                f"beyond the paired interval (ROC AUC {comparison.loc[name, 'roc_auc']:.3f} "
                f"against {metrics['roc_auc']:.3f}; gain interval "
                f"{metrics[f'roc_auc_gain_vs_{name}_low']:+.3f} to {high:+.3f}): the data "
                "may have changed between the validation folds and the holdout"
            )
    slices = {
        "fit": pre[fitted.blocks[0]],
        "validation": pre[np.concatenate(fitted.blocks[1:])],
        "holdout": hold,
    }
    drift = drift_report(ts.X, ts.y, slices, as_of=ts.entry_as_of)
    for msg in drift.warnings:
        warning(msg)
    late = late_wins(data, target, horizon_days)
    if late.n_late:
        (warning if late.share_late > LATE_WARN_SHARE else progress)(late.sentence())
    model.metadata = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
        "holdout_metrics": metrics,
        "quadrant_thresholds": model.quadrant_thresholds,
        "split": split.describe(ts.entry_as_of),
        "targets": list(targets),
        "feature_config": config.to_dict(),
        "choice": choice.to_dict(),
        "calibration": {
            "prior": choice.prior,
            "slope": model.conversion.slope,
            "intercept": model.conversion.intercept,
        },  # fmt: skip
        "skill": {**verdict.to_dict(), "sentence": verdict.sentence()},
        "data_end": None if end is None else str(end),
    }

    use_store(experiment_for(model_name))
    progress("logging to MLflow")
    run_name = f"{choice.family}-{'+'.join(targets)}"
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags(
            {
                "git_commit": git_commit(),
                "target": target,
                "targets": ",".join(targets),
                "data_dir": str(data_dir),
                "model_kind": choice.family,
                "model_family": choice.family,
                "skill": verdict.to_dict()["skill"],
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
                "model_family": choice.family,
                "weighting": choice.weighting,
                "n_trees": choice.n_trees or "-",
                "calibration_prior": choice.prior,
                "calibration_prior_asked": calibration_prior,
                **{f"half_life_{g}": h for g, h in config.half_lives_days.items()},
                **{f"lgbm_{k}": v for k, v in params.items()},
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
        mlflow.log_metrics({"holdout_constant_log_loss": verdict.constant_log_loss})
        for name, row in comparison.iterrows():
            mlflow.log_metrics({f"holdout_{name}_{k}": float(v) for k, v in row.items()})
        mlflow.log_dict(model.metadata, "model_metadata.json")
        mlflow.log_dict(choice.to_dict(), "selection.json")
        mlflow.log_dict(drift.to_dict(), "drift.json")
        mlflow.log_dict(late.to_dict(), "late_wins.json")
        if warnings_:
            mlflow.log_dict({"warnings": warnings_}, "warnings.json")
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
                {"verdict": verdict, "drift": drift, "late": late, "warnings": warnings_,
                 "model_name": model_name},
            )  # fmt: skip
            plot_drift(drift, Path(tmp) / "drift.png")
            mlflow.log_artifacts(tmp, "evaluation")
        for name in baseline_p:
            with mlflow.start_run(run_name=f"baseline-{name}", nested=True):
                mlflow.set_tags({"model_kind": "baseline", "baseline": name, "target": target})
                mlflow.log_metrics(
                    {f"holdout_{k}": float(v) for k, v in comparison.loc[name].items()}
                )
        example = safe_input_example(ts.X.iloc[pre])
        answers = model.score(example).drop(columns="reasons")
        with quiet_pickle_notice():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=LeadScoringPyfunc(model),
                input_example=signature_frame(example),
                signature=model_signature(signature_frame(example), answers),
            )
        version = mlflow.register_model(info.model_uri, model_name)
        client = MlflowClient()
        client.set_registered_model_alias(model_name, "challenger", version.version)
        tags: dict[str, Any] = {f"holdout_{k}": f"{v:.4f}" for k, v in metrics.items()}
        tags.update(
            {
                "target": target,
                "data_dir": str(data_dir),
                "horizon_days": horizon_days,
                "model_family": choice.family,
                "skill": verdict.to_dict()["skill"],
                "holdout_from": str(hs.holdout_from),
                "data_end": "" if end is None else str(end),
            }
        )
        for k, v in tags.items():
            client.set_model_version_tag(model_name, version.version, k, v)
    return TrainResult(
        run_id=run.info.run_id,
        model_name=model_name,
        model_version=str(version.version),
        target=target,
        metrics=metrics,
        split=model.metadata["split"],
        comparison=comparison,
        half_lives_days=dict(config.half_lives_days),
        family=choice.family,
        choice=choice.to_dict(),
        skill=verdict.to_dict(),
        skill_sentence=verdict.sentence(),
        drift=drift.to_dict(),
        drift_lines=drift.lines(),
        late_wins=late.to_dict(),
        late_wins_sentence=late.sentence(),
        warnings=list(warnings_),
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
    trust: dict[str, Any] | None = None,
) -> None:
    """Charts, tables, explanations and the model card of one training run, into ``out``;
    ``scored``: the model's answers on the holdout rows, as ``train`` computed them;
    ``trust``: the skill verdict, drift report, late wins and warnings, for the card."""
    trust = trust or {}
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
    lgbm = model.conversion.lgbm
    if lgbm is not None:
        gain = pd.Series(
            lgbm.booster_.feature_importance(importance_type="gain"),
            index=model.conversion.columns,
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
            "model_name": trust.get("model_name", MODEL_NAME),
            "run_name": "+".join(targets),
            "choice": model.metadata.get("choice", {}),
            "skill_sentence": trust["verdict"].sentence() if "verdict" in trust else None,
            "drift_lines": trust["drift"].lines() if "drift" in trust else [],
            "late_wins": trust["late"].sentence() if "late" in trust else None,
            "warnings": trust.get("warnings", []),
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
