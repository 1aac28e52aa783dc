"""The evaluation artifacts of one training run, written to a folder that is logged under
``evaluation/`` of the run: the comparison table and its curves, metrics by slice,
feature importances and explanations, the drift chart and the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm.contract import CrmData
from features.build import DEFAULT_HALF_LIVES_DAYS
from scoring.model import LeadScoringModel
from training import evaluate as ev
from training.config import TrainConfig
from training.dataset import TrainingSet, snapshot_groups
from training.drift import plot_drift
from training.fit import OtherTarget
from training.measure import Evaluation
from training.prepare import Prepared

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


def write_evaluation(
    out: Path,
    run: Prepared,
    model: LeadScoringModel,
    evaluation: Evaluation,
    others: dict[str, OtherTarget],
    config: TrainConfig,
    warnings: list[str],
) -> None:
    """Charts, tables, explanations and the model card of one training run, into ``out``
    (``config`` resolved; ``warnings``: the run's, for the card)."""
    y = run.ts.y[run.split.holdout]
    write_comparison(out, y, evaluation)
    write_slices(out, run, model, evaluation.scored)
    shap_mean = write_importance(out, model, run.ts.X.iloc[run.split.holdout])
    ev.plot_decay_curves(
        run.features.half_lives_days, DEFAULT_HALF_LIVES_DAYS, out / "decay_curves.png"
    )
    plot_drift(evaluation.drift, out / "drift.png")
    info = card_info(run, model, evaluation, others, config, warnings)
    (out / "model_card.md").write_text(ev.model_card({**info, "top_features": shap_mean}))


def write_comparison(out: Path, y: np.ndarray, evaluation: Evaluation) -> None:
    """The chosen model against the baselines on the holdout: table and curves."""
    probs = evaluation.probs
    evaluation.comparison.round(5).to_csv(out / "comparison.csv")
    ev.plot_roc(y, probs, out / "roc.png")
    ev.plot_pr(y, probs, out / "pr.png")
    ev.plot_reliability(y, probs, out / "reliability.png")
    ev.plot_gains(y, probs, out / "cumulative_gains.png")
    ev.plot_lift(y, probs, out / "lift.png")


def write_slices(out: Path, run: Prepared, model: LeadScoringModel, scored: pd.DataFrame) -> None:
    """Holdout metrics by quadrant, by snapshot age and by segment (``metrics_by_slice``);
    ``scored``: the model's answers on the holdout rows."""
    ts, hold = run.ts, run.split.holdout
    y = ts.y[hold]
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
        seg = segment_labels(run.data, ts, hold, model)
        slices.append(ev.slice_metrics(y, p, pd.Series(seg)).assign(by="segment"))
    except (KeyError, ValueError) as exc:  # a segment failure must not stop training
        (out / "segments_error.txt").write_text(str(exc))
    pd.concat(slices).to_csv(out / "metrics_by_slice.csv", index=False)


def write_importance(out: Path, model: LeadScoringModel, X_hold: pd.DataFrame) -> pd.Series:
    """Mean absolute contributions on the holdout (and LightGBM's gain importance when the
    conversion head is LightGBM), as tables and charts; returns the contributions, largest
    first, for the card's top features."""
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
    return shap_mean.head(10).rename_axis("feature")


def target_words(run: Prepared, others: dict[str, OtherTarget], targets: tuple[str, ...]):
    """Each target in words for the card: from which stage, within which horizon, and how
    its snapshots were taken."""
    ts = run.ts
    ages = {ts.target: ts.ages, **{t: o.ts.ages for t, o in others.items()}}
    return {
        t: f"{FROM_WORDS.get(t, ts.from_stage if t == ts.target else 'previous stage')} -> "
        f"{t.upper()} within {ts.horizon_days} days, {snapshot_words(ages[t], t)}"
        for t in targets
    }


def card_info(
    run: Prepared,
    model: LeadScoringModel,
    evaluation: Evaluation,
    others: dict[str, OtherTarget],
    config: TrainConfig,
    warnings: list[str],
) -> dict[str, Any]:
    """What the model card says (``training.evaluate.model_card``), but the top features."""
    targets, metrics, comparison = config.targets, evaluation.metrics, evaluation.comparison
    return {
        "model_name": config.model_name,
        "run_name": "+".join(targets),
        "choice": model.metadata.get("choice", {}),
        "skill_sentence": evaluation.verdict.sentence(),
        "drift_lines": evaluation.drift.lines(),
        "late_wins": evaluation.late.sentence(),
        "warnings": warnings,
        "targets": target_words(run, others, targets),
        "primary": targets[0],
        "data_dir": str(run.data_dir),
        "split": model.metadata["split"],  # as train described it
        "features": list(model.feature_columns),
        "informative_features": [
            c for c in model.feature_columns if run.ts.X[c].iloc[run.split.fit].nunique() > 1
        ],
        "interval_words": ev.interval_words(metrics, comparison),
        "half_lives": dict(run.features.half_lives_days),
        "comparison": comparison,
        "extra_metrics": {
            k: round(v, 4)
            for k, v in metrics.items()
            # the bootstrap intervals are in the interval sentence
            if ("ceiling" in k or k.startswith(("mql_", "ece_", "entry_")))
        },
    }
