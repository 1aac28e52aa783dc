"""The model card and its charts: what ``train`` writes to the run's evaluation folder.

``model_card`` renders the Markdown card from the facts a training run gathered (data
window, features, targets, metrics, model choice, drift, warnings). The ``plot_*``
functions draw the holdout charts as PNG files on bare matplotlib figures (no pyplot, no
backend switch) from numbers already computed: ``training.evaluate`` computes the curves
and metrics and calls these to draw them (reports never import training).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.charts import figure, save_png


def model_card(info: Mapping[str, Any]) -> str:
    """The model card in Markdown: data window, features, target, metrics, limits, use."""
    comparison: pd.DataFrame = info["comparison"]
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
        *_feature_lines(info),
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
        *_KNOWN_LIMITS,
        "",
    ]
    return "\n".join(lines)


#: what every model of this kind cannot do, whatever its metrics
_KNOWN_LIMITS = (
    "- Trained on one CRM's history; the funnel definition (what counts as MQL/SAL) is that CRM's.",
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
)


def _feature_lines(info: Mapping[str, Any]) -> list[str]:
    """The features section: how many, which vary in this data, the most influential."""
    features: list[str] = info["features"]
    informative: list[str] = info.get("informative_features", features)
    top: pd.Series = info.get("top_features", pd.Series(dtype=float))
    absent = len(features) - len(informative)
    return [
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
    ]


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


# ------------------------------------------------------------------------------- charts
# Each chart is a 110-dpi PNG file with a tight layout; the curves come computed (x, y and
# the model's figure for the legend), one per model, all on the same holdout rows.


def plot_roc_curves(curves: Mapping[str, tuple[Any, Any, float]], path: Path) -> Path:
    """``curves``: model -> (false positive rate, true positive rate, ROC AUC)."""
    fig, ax = _chart(5.5, 5)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, time holdout")
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)


def plot_pr_curves(
    curves: Mapping[str, tuple[Any, Any, float]], base_rate: float, path: Path
) -> Path:
    """``curves``: model -> (recall, precision, average precision); ``base_rate``: the
    positive rate (a model without skill)."""
    fig, ax = _chart(5.5, 5)
    for name, (rec, prec, ap) in curves.items():
        ax.plot(rec, prec, label=f"{name} (AP {ap:.3f})")
    ax.axhline(base_rate, color="k", ls=":", lw=1)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, time holdout")
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_reliability_curves(
    curves: Mapping[str, tuple[Any, Any, float, int]],
    path: Path,
    title: str = "Reliability, time holdout",
) -> Path:
    """``curves``: name -> (mean probability per bin, observed rate per bin, ECE, rows)."""
    fig, ax = _chart(5.5, 5)
    for name, (mean_p, rate, ece, n) in curves.items():
        ax.plot(mean_p, rate, "o-", ms=3, label=f"{name} (ECE {ece:.3f}, n={n})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title, xlim=(0, 1),
           ylim=(0, 1))  # fmt: skip
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_gains_curves(curves: Mapping[str, tuple[Any, Any]], path: Path) -> Path:
    """``curves``: model -> (share of leads worked, share of conversions found)."""
    fig, ax = _chart(5.5, 5)
    for name, (share, gain) in curves.items():
        ax.plot(share, gain, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="share of leads worked (best first)", ylabel="share of conversions found",
           title="Cumulative gains, time holdout")  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)


def plot_lift_curves(curves: Mapping[str, tuple[Any, Any]], path: Path) -> Path:
    """``curves``: model -> (share of leads worked, lift over random)."""
    fig, ax = _chart(5.5, 5)
    for name, (share, lift) in curves.items():
        ax.plot(share, lift, label=name)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set(xlabel="share of leads worked (best first)", ylabel="lift over random",
           title="Lift, time holdout", xlim=(0.02, 1))  # fmt: skip
    ax.legend(fontsize=8)
    return save_png(fig, path)


def plot_importance(importance: pd.Series, path: Path, title: str, top: int = 20) -> Path:
    """The ``top`` features by importance as horizontal bars, largest on top."""
    imp = importance.sort_values(ascending=True).tail(top)
    fig, ax = _chart(6.5, 0.28 * len(imp) + 1.2)
    ax.barh(imp.index, imp.to_numpy())
    ax.set(title=title)
    ax.tick_params(axis="y", labelsize=8)
    return save_png(fig, path)


def plot_shap_beeswarm(contrib: pd.DataFrame, X: pd.DataFrame, path: Path, top: int = 15) -> Path:
    """Contribution per lead and feature, coloured by the feature's rank (a SHAP summary)."""
    values = contrib.drop(columns="bias")
    order = values.abs().mean().sort_values(ascending=False).index[:top][::-1]
    fig, ax = _chart(7, 0.35 * len(order) + 1.5)
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
    return save_png(fig, path)


def plot_decay_curves(
    half_lives: Mapping[str, float], defaults: Mapping[str, float], path: Path
) -> Path:
    """The learned interest decay of each event group over 120 days, dotted: the default
    where it differs."""
    days = np.linspace(0, 120, 241)
    fig, ax = _chart(6.5, 4.5)
    for i, (group, h) in enumerate(half_lives.items()):
        colour = f"C{i}"
        ax.plot(days, 0.5 ** (days / h), color=colour, label=f"{group}: {h:g} d (learned)")
        d = defaults.get(group)
        if d is not None and d != h:
            ax.plot(days, 0.5 ** (days / d), color=colour, ls=":", lw=1)
    ax.set(xlabel="days since the event", ylabel="weight",
           title="Interest decay per event group (dotted: default)")  # fmt: skip
    ax.legend(fontsize=8)
    return save_png(fig, path)


def _chart(width: float, height: float) -> tuple[Any, Any]:
    """A figure with one axes, laid out at save time."""
    fig = figure(width, height, layout=None)
    return fig, fig.add_subplot()
