"""Evaluate a fitted model on the time holdout: its metrics (and each other target's), the
simulator's ceiling when the truth is known, the baselines fitted on the same rows, and
the trust checks (skill against the constant rate, drift between the slices, conversions
after the horizon). Figures only; ``training.evaluate`` computes each of them,
``training.register`` records them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from crm.simulate import TRUTH_FILE, truth_auc
from features.build import feature_columns
from training import evaluate as ev
from training.baselines import fit_baselines
from training.config import TrainConfig
from training.dataset import TrainingSet
from training.drift import DriftReport, drift_report
from training.fit import FittedModel, OtherTarget
from training.latewins import LateWins, late_wins
from training.prepare import Prepared
from training.results import CONSTANT, Progress, RunWarnings, model_label
from training.skill import SkillVerdict, skill_verdict

#: late wins above this share of all conversions are a warning, below it a note
LATE_WARN_SHARE = 0.05


def simulator_ceiling(data_dir: Path, ts: TrainingSet, idx: np.ndarray) -> float | None:
    """The ceiling AUC (``crm.simulate.truth_auc``) on the rows ``idx`` of ``ts``, looked up
    in the truth a simulated export carries; None for an export without that truth (every
    real one) or too few rows. The truth is each lead's probability from its entry, so
    only entry snapshots count."""
    idx = idx[ts.age_days[idx] == 0]
    path = data_dir / TRUTH_FILE
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
    return truth_auc(y, p_true[ok])


def ceiling_metrics(
    data_dir: Path, ts: TrainingSet, idx: np.ndarray, p: np.ndarray, prefix: str = ""
) -> dict[str, float]:
    """The simulator's ceiling AUC, and with snapshots at several ages the model's AUC on
    the entry snapshots alone, the rows the ceiling is measured on."""
    out: dict[str, float] = {}
    ceiling = simulator_ceiling(data_dir, ts, idx)
    if ceiling is None:
        return out
    out[f"{prefix}ceiling_roc_auc"] = ceiling
    entry = ts.age_days[idx] == 0
    if not entry.all():
        out[f"{prefix}entry_roc_auc"] = float(roc_auc_score(ts.y[idx][entry], p[entry]))
    return out


@dataclass
class Evaluation:
    """The holdout figures of one run (primary target unless a key says another)."""

    scored: pd.DataFrame  # the model's answers on the holdout rows
    probs: dict[str, np.ndarray]  # the chosen model's and each baseline's probabilities
    baselines: tuple[str, ...]  # the baselines' names (their rows of ``comparison``)
    comparison: pd.DataFrame  # one row per model, the constant predictor included
    metrics: dict[str, float]
    verdict: SkillVerdict
    drift: DriftReport
    late: LateWins


def measure(
    run: Prepared,
    fitted: FittedModel,
    others: dict[str, OtherTarget],
    config: TrainConfig,
    warning: RunWarnings,
    progress: Progress = lambda msg: None,
) -> Evaluation:
    """Every holdout figure of the run; what should make a reader doubt the model goes to
    ``warning``. ``others``: the other targets' heads, measured on their own holdouts."""
    scored, metrics = primary_metrics(run, fitted)
    for target, other in others.items():
        metrics.update(other_target_metrics(run.data_dir, target, other))
    progress("fitting baselines on the same rows")
    baseline_p = baselines_on_holdout(run, fitted, config)
    y_hold, hold = run.ts.y[run.split.holdout], run.split.holdout
    reference = model_label(fitted.choice.family)
    probs = {reference: scored["p_convert"].to_numpy(), **baseline_p}
    # the rate the model was calibrated to, said for every lead: what "no skill" means
    base_rate = run.holdout.rate_for_prior(fitted.choice.prior)
    comparison = ev.comparison_table(y_hold, {**probs, CONSTANT: np.full(len(hold), base_rate)})
    groups = run.ts.X.index[hold]
    metrics.update(ev.auc_intervals(y_hold, probs, reference=reference, groups=groups))
    verdict = skill_verdict(y_hold, probs[reference], base_rate, groups=groups)
    if not verdict.has_skill:
        warning(verdict.sentence())
    for message in beaten_by_baselines(metrics, comparison, tuple(baseline_p), fitted):
        warning(message)
    drift = holdout_drift(run, fitted)
    for message in drift.warnings:
        warning(message)
    late = late_wins(run.data, config.target, config.horizon_days)
    if late.n_late:
        (warning if late.share_late > LATE_WARN_SHARE else progress)(late.sentence())
    return Evaluation(scored, probs, tuple(baseline_p), comparison, metrics, verdict, drift, late)


def primary_metrics(run: Prepared, fitted: FittedModel) -> tuple[pd.DataFrame, dict[str, float]]:
    """The model's answers on the primary target's holdout rows, and their metrics:
    discrimination, calibration (with the noise floor and the best sigmoid as yardsticks)
    and the simulator's ceiling when known."""
    ts, hold, model = run.ts, run.split.holdout, fitted.model
    y_hold = ts.y[hold]
    X_hold = ts.X.iloc[hold]
    scored = model.score(X_hold)
    p_hold = scored["p_convert"].to_numpy()
    metrics = ev.binary_metrics(y_hold, p_hold)
    metrics["ece_noise_floor"] = ev.ece_noise_floor(p_hold)
    metrics["ece_best_sigmoid"] = ev.ece_best_sigmoid(y_hold, model.raw_score(X_hold))
    metrics.update(ceiling_metrics(run.data_dir, ts, hold, p_hold))
    metrics["holdout_positive_rate"] = float(y_hold.mean())
    metrics["n_holdout"] = float(len(hold))
    return scored, metrics


def other_target_metrics(data_dir: Path, target: str, other: OtherTarget) -> dict[str, float]:
    """Another target's head on that target's own holdout, keys prefixed ``<target>_``."""
    ts_t = other.ts
    hold = ts_t.split().holdout
    p_t = other.head.predict_proba(ts_t.X.iloc[hold])[:, 1]
    return {
        **ev.binary_metrics(ts_t.y[hold], p_t, prefix=f"{target}_"),
        **ceiling_metrics(data_dir, ts_t, hold, p_t, prefix=f"{target}_"),
    }


def baselines_on_holdout(
    run: Prepared, fitted: FittedModel, config: TrainConfig
) -> dict[str, np.ndarray]:
    """Each baseline's holdout probabilities, fitted and calibrated on the same rows and
    folds as the chosen model."""
    ts, pre = run.ts, fitted.pre
    return fit_baselines(
        feature_columns(run.features), ts.X.iloc[pre], ts.y[pre], ts.entry_as_of.iloc[pre],
        fitted.blocks, fitted.choice, ts.X.iloc[run.split.holdout], config.lightgbm_params,
        config.seed,
    )  # fmt: skip


def beaten_by_baselines(
    metrics: dict[str, float],
    comparison: pd.DataFrame,
    baselines: tuple[str, ...],
    fitted: FittedModel,
) -> list[str]:
    """A warning for each baseline that beats the chosen model on the holdout beyond the
    paired interval."""
    out = []
    family = fitted.choice.family
    for name in baselines:
        high = metrics.get(f"roc_auc_gain_vs_{name}_high")
        if high is not None and high < 0:
            out.append(
                f"the {name} model beats the chosen {family} model on the holdout "
                f"beyond the paired interval (ROC AUC {comparison.loc[name, 'roc_auc']:.3f} "
                f"against {metrics['roc_auc']:.3f}; gain interval "
                f"{metrics[f'roc_auc_gain_vs_{name}_low']:+.3f} to {high:+.3f}): the data "
                "may have changed between the validation folds and the holdout"
            )
    return out


def holdout_drift(run: Prepared, fitted: FittedModel) -> DriftReport:
    """How the first fitted block, the validation blocks and the holdout differ in
    positive rate and feature distributions."""
    pre = fitted.pre
    slices = {
        "fit": pre[fitted.blocks[0]],
        "validation": pre[np.concatenate(fitted.blocks[1:])],
        "holdout": run.split.holdout,
    }
    return drift_report(run.ts.X, run.ts.y, slices, as_of=run.ts.entry_as_of)
