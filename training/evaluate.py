"""Holdout evaluation: metrics, the curves behind the charts, slices.

Everything here works on (labels, probabilities) of one time holdout, so LightGBM and the
baselines are measured on exactly the same rows. The charts and the model card are
rendered by ``reports.model_card`` (PNG files on bare matplotlib figures, no display and
no backend switch); the caller logs the folder to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

# model_card and the charts with nothing to compute here are drawn by reports alone;
# training.train calls them as ev.* (hence the re-exports)
from reports.model_card import (
    model_card,  # noqa: F401
    plot_decay_curves,  # noqa: F401
    plot_gains_curves,
    plot_importance,  # noqa: F401
    plot_lift_curves,
    plot_pr_curves,
    plot_reliability_curves,
    plot_roc_curves,
    plot_shap_beeswarm,  # noqa: F401
)

ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |observed rate - mean probability| over equal-width probability bins,
    weighted by the share of rows in each bin."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    n = np.bincount(idx, minlength=bins)
    hits = np.bincount(idx, weights=y, minlength=bins)
    conf = np.bincount(idx, weights=p, minlength=bins)
    ok = n > 0
    return float(np.sum(np.abs(hits[ok] - conf[ok])) / len(y))


def ece_noise_floor(p: np.ndarray, bins: int = ECE_BINS, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would show on a holdout of this size: the mean
    ECE of labels drawn from ``p`` itself. Below it, a measured ECE is sampling noise (on a
    few hundred rows it is about 0.04, so a small holdout cannot show ECE <= 0.02). Labels
    are drawn independently per row; snapshots of one lead at several ages are not
    independent, so there it is a lower bound."""
    p = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    return float(
        np.mean([expected_calibration_error(rng.random(len(p)) < p, p, bins) for _ in range(draws)])
    )


def ece_best_sigmoid(y: np.ndarray, raw: np.ndarray, bins: int = ECE_BINS) -> float:
    """A diagnostic, never used by the model: the ECE of the best sigmoid of the raw
    scores fitted on the holdout itself. When the served model's ECE is close to it, no
    recalibration of these scores (slope or base rate) could have done better on this
    holdout: what is left comes from the model's scores, not from the calibrator."""
    from sklearn.linear_model import LogisticRegression

    raw = np.asarray(raw, dtype=float).reshape(-1, 1)
    p = LogisticRegression(C=1e6).fit(raw, y).predict_proba(raw)[:, 1]
    return expected_calibration_error(y, p, bins)


def top_share(y: np.ndarray, p: np.ndarray, share: float) -> tuple[float, float]:
    """(lift, recall) when the top ``share`` of rows by probability is worked."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(round(len(y) * share)))
    top = np.argsort(-np.asarray(p), kind="stable")[:k]
    rate = y[top].mean()
    base = y.mean()
    return float(rate / base) if base else float("nan"), float(y[top].sum() / max(y.sum(), 1))


def binary_metrics(y: np.ndarray, p: np.ndarray, prefix: str = "") -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, log loss, ECE, lift at top 10%, recall at top 20%."""
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    lift10, _ = top_share(y, p, 0.10)
    _, recall20 = top_share(y, p, 0.20)
    return {
        f"{prefix}roc_auc": float(roc_auc_score(y, p)),
        f"{prefix}pr_auc": float(average_precision_score(y, p)),
        f"{prefix}brier": float(brier_score_loss(y, p)),
        f"{prefix}log_loss": float(log_loss(y, p, labels=[0, 1])),
        f"{prefix}ece": expected_calibration_error(y, p),
        f"{prefix}lift_top10": lift10,
        f"{prefix}recall_top20": recall20,
    }


def comparison_table(y: np.ndarray, probs: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """One row per model, the same metrics on the same rows, best ROC AUC first."""
    rows = {name: binary_metrics(y, p) for name, p in probs.items()}
    table = pd.DataFrame(rows).T
    table.index.name = "model"
    return table.sort_values("roc_auc", ascending=False)


class RankedScores:
    """One model's scores on fixed rows, ranked once, for many ROC AUCs under different row
    weights (bootstrap draws as weights): per draw two weighted ``bincount`` and a
    ``cumsum`` instead of sorting again. The AUC is the Mann-Whitney form of the area under
    the ROC curve: the weighted share of (positive, negative) pairs ranked right, ties
    counting half; it equals ``sklearn.metrics.roc_auc_score(y, p, sample_weight=w)``
    (tests/training/test_evaluate.py), about 50x faster on a few thousand rows."""

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.y = np.asarray(y, dtype=float)
        values, self.tie = np.unique(np.asarray(p, dtype=float), return_inverse=True)
        self.n_ties = len(values)

    def auc(self, weight: np.ndarray | None = None) -> float | None:
        """The ROC AUC with row weights ``weight`` (default: 1 each); None when the rows
        with weight hold one class only."""
        w = np.ones(len(self.y)) if weight is None else np.asarray(weight, dtype=float)
        pos = np.bincount(self.tie, weights=w * self.y, minlength=self.n_ties)
        neg = np.bincount(self.tie, weights=w * (1.0 - self.y), minlength=self.n_ties)
        w_pos, w_neg = pos.sum(), neg.sum()
        if w_pos <= 0 or w_neg <= 0:
            return None
        below = np.cumsum(neg) - neg  # negative weight ranked strictly below each value
        return float(pos @ (below + 0.5 * neg) / (w_pos * w_neg))


def auc_intervals(
    y: np.ndarray,
    probs: Mapping[str, np.ndarray],
    reference: str = "lightgbm",
    draws: int = 200,
    seed: int = 0,
    groups: Sequence | None = None,
) -> dict[str, float]:
    """95 % bootstrap intervals on the holdout: the reference model's ROC AUC
    (``roc_auc_ci_low``/``_high``) and, paired (the same resampled rows for both), how far
    it is ahead of every other model (``roc_auc_gain_vs_<name>_low``/``_high``). A gain
    whose interval lies above 0 is not the luck of this holdout.

    ``groups`` (e.g. the lead of each snapshot): rows of one group share their fate (a
    lead's snapshots at several ages have related labels), so whole groups are resampled,
    as row weights, not single rows; resampling rows would make the intervals too narrow."""
    y = np.asarray(y)
    codes = np.arange(len(y)) if groups is None else pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    ranked = {name: RankedScores(y, p) for name, p in probs.items()}
    names = list(ranked)
    aucs: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(draws):
        weight = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]
        for name, scores in ranked.items():
            auc = scores.auc(weight)
            if auc is None:  # the draw holds one class only: no ranking to measure
                break
            aucs[name].append(auc)
    ref = np.asarray(aucs[reference])
    out = {
        "roc_auc_ci_low": float(np.percentile(ref, 2.5)),
        "roc_auc_ci_high": float(np.percentile(ref, 97.5)),
    }
    for name in names:
        if name != reference:
            own = np.asarray(aucs[name])
            out[f"{name}_roc_auc_ci_low"] = float(np.percentile(own, 2.5))
            out[f"{name}_roc_auc_ci_high"] = float(np.percentile(own, 97.5))
            gain = ref - own
            out[f"roc_auc_gain_vs_{name}_low"] = float(np.percentile(gain, 2.5))
            out[f"roc_auc_gain_vs_{name}_high"] = float(np.percentile(gain, 97.5))
    return out


def interval_words(metrics: Mapping[str, float], comparison: pd.DataFrame) -> str | None:
    """``auc_intervals`` in one sentence, as ``train`` prints it and the model card says it;
    None when the run has no intervals."""
    if "roc_auc_ci_low" not in metrics:
        return None
    gains = [
        f"{name} by {metrics['roc_auc'] - comparison.loc[name, 'roc_auc']:+.3f} "
        f"({metrics[f'roc_auc_gain_vs_{name}_low']:+.3f} to "
        f"{metrics[f'roc_auc_gain_vs_{name}_high']:+.3f})"
        for name in comparison.index
        if f"roc_auc_gain_vs_{name}_low" in metrics
    ]
    return (
        f"ROC AUC {metrics['roc_auc']:.3f}, 95 % bootstrap interval "
        f"{metrics['roc_auc_ci_low']:.3f} to {metrics['roc_auc_ci_high']:.3f}; ahead of "
        + ", ".join(gains)
        + " (paired intervals)"
    )


def slice_metrics(
    y: np.ndarray, p: np.ndarray, groups: pd.Series, min_rows: int = 30
) -> pd.DataFrame:
    """Rows, positive rate, mean probability, ECE and ROC AUC per slice (AUC where both
    classes occur and the slice has ``min_rows`` rows)."""
    df = pd.DataFrame({"y": np.asarray(y), "p": np.asarray(p), "g": np.asarray(groups)})
    rows = []
    for g, part in df.groupby("g", observed=True, sort=True):
        both = part["y"].nunique() == 2 and len(part) >= min_rows
        rows.append(
            {
                "slice": g,
                "n": len(part),
                "positive_rate": part["y"].mean(),
                "mean_p": part["p"].mean(),
                "ece": expected_calibration_error(part["y"].to_numpy(), part["p"].to_numpy()),
                "roc_auc": roc_auc_score(part["y"], part["p"]) if both else np.nan,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- charts
# The curves are computed here and drawn by reports.model_card (PNG files for the run).


def plot_roc(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    curves = {}
    for name, p in probs.items():
        fpr, tpr, _ = roc_curve(y, p)
        curves[name] = (fpr, tpr, roc_auc_score(y, p))
    return plot_roc_curves(curves, path)


def plot_pr(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    curves = {}
    for name, p in probs.items():
        prec, rec, _ = precision_recall_curve(y, p)
        curves[name] = (rec, prec, average_precision_score(y, p))
    return plot_pr_curves(curves, np.mean(y), path)


def reliability_points(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    idx = np.minimum((np.asarray(p) * bins).astype(int), bins - 1)
    df = pd.DataFrame({"bin": idx, "y": y, "p": p})
    return df.groupby("bin").agg(mean_p=("p", "mean"), rate=("y", "mean"), n=("y", "size"))


def plot_reliability(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    """One reliability curve per model, all on the same holdout rows."""
    return _plot_reliability({name: (y, p) for name, p in probs.items()}, path)


def plot_reliability_by(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, label: str, title: str, path: Path
) -> Path:
    """One model's reliability curve per group of rows (e.g. per snapshot age); ``label``
    names a curve from its group value (``"{} days after entry"``)."""
    groups = np.asarray(groups)
    curves = {label.format(g): (y[groups == g], p[groups == g]) for g in np.unique(groups)}
    return _plot_reliability(curves, path, title)


def _plot_reliability(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: Path,
    title: str = "Reliability, time holdout",
) -> Path:
    points = {}
    for name, (y, p) in curves.items():
        pts = reliability_points(y, p)
        points[name] = (pts["mean_p"], pts["rate"], expected_calibration_error(y, p), len(y))
    return plot_reliability_curves(points, path, title)


def _gains(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.asarray(p), kind="stable")
    hits = np.cumsum(np.asarray(y)[order])
    share = np.arange(1, len(y) + 1) / len(y)
    return share, hits / max(hits[-1], 1)


def plot_gains(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    return plot_gains_curves({name: _gains(y, p) for name, p in probs.items()}, path)


def plot_lift(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    curves = {}
    for name, p in probs.items():
        share, gain = _gains(y, p)
        curves[name] = (share, gain / share)
    return plot_lift_curves(curves, path)
