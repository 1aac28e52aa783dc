"""Holdout evaluation: metrics, charts, slices, explanations and the model card.

Everything here works on (labels, probabilities) of one time holdout, so LightGBM and the
baselines are measured on exactly the same rows. Charts are PNG files drawn with
matplotlib's Agg backend (no display needed); the caller logs the folder to MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
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
    probs = {name: np.asarray(p) for name, p in probs.items()}
    names = list(probs)
    aucs: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(draws):
        weight = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]
        drawn = weight > 0
        if y[drawn].min() == y[drawn].max():
            continue
        for name, p in probs.items():
            aucs[name].append(roc_auc_score(y[drawn], p[drawn], sample_weight=weight[drawn]))
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


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in probs.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, time holdout")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_pr(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in probs.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=f"{name} (AP {average_precision_score(y, p):.3f})")
    ax.axhline(np.mean(y), color="k", ls=":", lw=1)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, time holdout")
    ax.legend(fontsize=8)
    return _save(fig, path)


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
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, (y, p) in curves.items():
        pts = reliability_points(y, p)
        ece = expected_calibration_error(y, p)
        ax.plot(pts["mean_p"], pts["rate"], "o-", ms=3, label=f"{name} (ECE {ece:.3f}, n={len(y)})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, 1),
           ylim=(0, 1))  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def _gains(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-np.asarray(p), kind="stable")
    hits = np.cumsum(np.asarray(y)[order])
    share = np.arange(1, len(y) + 1) / len(y)
    return share, hits / max(hits[-1], 1)


def plot_gains(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in probs.items():
        share, gain = _gains(y, p)
        ax.plot(share, gain, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="share of leads worked (best first)", ylabel="share of conversions found",
           title="Cumulative gains, time holdout")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_lift(y: np.ndarray, probs: Mapping[str, np.ndarray], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, p in probs.items():
        share, gain = _gains(y, p)
        ax.plot(share, gain / share, label=name)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xlabel="share of leads worked (best first)", ylabel="lift over random",
           title="Lift, time holdout", xlim=(0.02, 1))  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_importance(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    imp = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(imp) + 1.2))
    ax.barh(imp.index, imp.to_numpy())
    ax.set(title=title)
    ax.tick_params(axis="y", labelsize=8)
    return _save(fig, path)


def plot_shap_beeswarm(contrib: pd.DataFrame, X: pd.DataFrame, path: Path, top: int = 15) -> Path:
    """Contribution per lead and feature, coloured by the feature's rank (a SHAP summary)."""
    values = contrib.drop(columns="bias")
    order = values.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.5))
    rng = np.random.default_rng(0)
    for k, col in enumerate(order):
        x = values[col].to_numpy()
        raw = X[col]
        if isinstance(raw.dtype, pd.CategoricalDtype):
            colour = raw.cat.codes.to_numpy(dtype=float)
        else:
            colour = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        colour = pd.Series(colour).rank(pct=True).fillna(0.5).to_numpy()
        ax.scatter(x, k + rng.uniform(-0.3, 0.3, len(x)), c=colour, cmap="coolwarm", s=4)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.set(xlabel="contribution to log-odds (red = high feature value)",
           title="SHAP summary (LightGBM pred_contrib), time holdout")  # fmt: skip
    return _save(fig, path)


def plot_decay_curves(
    half_lives: Mapping[str, float], defaults: Mapping[str, float], path: Path
) -> Path:
    days = np.linspace(0, 120, 241)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (group, h) in enumerate(half_lives.items()):
        colour = f"C{i}"
        ax.plot(days, 0.5 ** (days / h), color=colour, label=f"{group}: {h:g} d (learned)")
        d = defaults.get(group)
        if d is not None and d != h:
            ax.plot(days, 0.5 ** (days / d), color=colour, ls=":", lw=1)
    ax.set(xlabel="days since the event", ylabel="weight",
           title="Interest decay per event group (dotted: default)")  # fmt: skip
    ax.legend(fontsize=8)
    return _save(fig, path)


# --------------------------------------------------------------------------- model card


def model_card(info: Mapping[str, Any]) -> str:
    """The model card in Markdown: data window, features, target, metrics, limits, use."""
    comparison: pd.DataFrame = info["comparison"]
    features: list[str] = info["features"]
    informative: list[str] = info.get("informative_features", features)
    top: pd.Series = info.get("top_features", pd.Series(dtype=float))
    absent = len(features) - len(informative)
    lines = [
        f"# Model card: {info['model_name']} ({info['run_name']})",
        "",
        "## Intended use",
        "Rank and prioritise leads and give marketing and sales calibrated probabilities "
        "of the funnel steps below, with per-lead reasons. "
        "Not for decisions about individuals beyond sales prioritisation; not for other "
        "companies' funnels without retraining.",
        "",
        "## Targets",
        *(f"- `{t}`: {d}" for t, d in info["targets"].items()),
        f"- primary target (`p_convert`): `{info['primary']}`",
        "",
        "## Data",
        f"- source: `{info['data_dir']}` (digest in the run's dataset inputs)",
        "- time split by entry into the stage before the primary target (a lead's later "
        "snapshots stay in its slice):",
        *(f"  - {k}: {v}" for k, v in info["split"].items()),
        "",
        "## Features",
        f"{len(features)} point-in-time features (firmographics, job title, source, "
        "event counts per window, decayed interest per event group, recency"
        + (
            ", and the export's own attributes and counters)"
            if any(f.startswith(("attr_", "counter_")) for f in features)
            else ")"
        )
        + (
            f"; {len(informative)} of them vary in this data, the other {absent} are "
            "constant or empty here (this export does not record them)"
            if absent
            else ""
        )
        + ".",
        "",
        "Varying features: " + ", ".join(f"`{f}`" for f in informative),
        "",
        *(
            [
                "Most influential on the holdout (mean |contribution| to the log-odds):",
                "",
                _markdown_table(top.round(4).rename("mean_abs_contribution").to_frame()),
                "",
            ]
            if len(top)
            else []
        ),
        f"Interest half-lives (days): {info['half_lives']}",
        "",
        *_choice_lines(info.get("choice") or {}),
        "## Metrics on the time holdout (primary target)",
        _markdown_table(comparison.round(4)),
        "",
        *([f"**Skill verdict.** {s}", ""] if (s := info.get("skill_sentence")) else []),
        *([f"{w}.", ""] if (w := info.get("interval_words")) else []),
        *(f"- {k}: {v}" for k, v in info.get("extra_metrics", {}).items()),
        "",
        *_trust_lines(info),
        "## Known limits",
        "- Trained on one CRM's history; the funnel definition (what counts as MQL/SAL) is "
        "that CRM's.",
        "- Snapshots whose label window runs past the end of the data are censored, so the "
        "most recent leads are not in training.",
        "- Reasons are the model's per-feature contributions to the uncalibrated log-odds "
        "(TreeSHAP for LightGBM, linear terms for logistic regression and naive Bayes); "
        "correlated features share credit.",
        "- Unseen categories are scored as missing.",
        "- Snapshots are taken at fixed ages (see Targets); a lead older than the oldest "
        "snapshot age is scored like one of that age. All snapshots of a lead fall in one "
        "slice of the time split, by entry time; the labels of the latest fit snapshots "
        "resolve inside the calibration and holdout periods (no purge gap).",
        "- Calibrated on out-of-fold scores of the validation folds with the prior they "
        "chose; when the conversion rate moves after training, probabilities lag until the "
        "next retraining.",
        "",
    ]
    return "\n".join(lines)


def _choice_lines(choice: Mapping[str, Any]) -> list[str]:
    """The model-choice section: which family won on the validation folds and by how much."""
    if not choice:
        return []
    table = pd.DataFrame(choice.get("validation", {})).T
    return [
        "## Model choice (validation folds before the holdout)",
        f"Served family: **{choice['family']}** ({choice['weighting']} weights"
        + (f", {choice['n_trees']} trees" if choice.get("n_trees") else "")
        + f", calibration prior {choice['calibration_prior']}). {choice['reason']}.",
        "",
        *([_markdown_table(table.round(4)), ""] if len(table) else []),
    ]


def _trust_lines(info: Mapping[str, Any]) -> list[str]:
    """Drift, late wins and the run's warnings, for the model card."""
    lines: list[str] = []
    if info.get("drift_lines"):
        lines += ["## Drift between the slices", "", *info["drift_lines"], ""]
    if info.get("late_wins"):
        lines += ["## Conversions after the horizon", "", info["late_wins"], ""]
    if info.get("warnings"):
        lines += ["## Warnings", "", *(f"- {w}" for w in info["warnings"]), ""]
    return lines


def _markdown_table(frame: pd.DataFrame) -> str:
    """A frame as a GitHub Markdown table (index first), without extra dependencies."""
    head = [str(frame.index.name or ""), *map(str, frame.columns)]
    rows = [[str(i), *map(str, row)] for i, row in zip(frame.index, frame.to_numpy(), strict=True)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
