"""The "quadrant mix" section of the funnel report: every lead's fit x interest as scored
by a model, how many leads fall in each quadrant, and where they are in the funnel now."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from crm.vocabulary import QUADRANTS, STAGES
from reports.charts import embedded_img, figure, style_axes
from reports.conversion import STAGE_LABELS
from reports.html import esc, integer, pct, table


class QuadrantStyle(NamedTuple):
    """How the page shows a quadrant: its name in words, what to do with its leads, its
    colour, and where its name sits on the fit x interest map (x, y, ha, va)."""

    label: str
    todo: str
    colour: str
    corner: tuple[float, float, str, str] | None = None


#: one entry per quadrant of crm.vocabulary.QUADRANTS (tests/reports check that)
QUADRANT_STYLES: dict[str, QuadrantStyle] = {
    "qualified": QuadrantStyle(
        "qualified (high fit, high interest)", "hand to sales", "#2e7d32", (99, 99, "right", "top")
    ),
    "qualified_low_interest": QuadrantStyle(
        "qualified, little interest", "nurture", "#1565c0", (99, 1, "right", "bottom")
    ),
    "low_fit_interested": QuadrantStyle(
        "low fit, very interested", "engage, re-check fit", "#ef6c00", (1, 99, "left", "top")
    ),
    "drop": QuadrantStyle(
        "low fit, little interest",
        "drop from active campaigns",
        "#9e9e9e",
        (1, 1, "left", "bottom"),
    ),
}


def quadrant_style(quadrant: str) -> QuadrantStyle:
    """The style of a quadrant; a name the vocabulary does not know is shown as it is."""
    return QUADRANT_STYLES.get(quadrant) or QuadrantStyle(quadrant, "", "#607d8b")


def quadrant_mix(scored: pd.DataFrame, funnel_stage: pd.Series) -> pd.DataFrame:
    """Leads per quadrant (rows: the vocabulary's order, then unknown names) and current
    funnel stage (columns, funnel order); ``scored`` has a ``quadrant`` column and
    ``funnel_stage`` is each lead's furthest stage, both indexed by lead_id."""
    q = scored["quadrant"].astype(str)
    q.index = q.index.astype(str)
    stage_now = funnel_stage.reindex(q.index)
    seen = set(q)
    return pd.crosstab(q, stage_now).reindex(
        index=[k for k in QUADRANTS if k in seen] + sorted(seen - set(QUADRANTS)),
        columns=[s for s in STAGES if s in set(stage_now.dropna())],
        fill_value=0,
    )


def no_model_callout(model_note: str | None) -> str:
    """What the section says without scores: quadrants need a trained model."""
    why = f"<p>{esc(model_note)}</p>" if model_note else ""
    return (
        '<div class="callout"><b>Quadrants need a trained model.</b> The quadrant '
        "(fit × interest) of a lead comes from the fit and interest models. Train and "
        "promote one (<code>leadscore train --data DIR</code>, "
        "<code>leadscore promote</code>), then run "
        "<code>leadscore report --model champion</code>."
        f"{why}</div>"
    )


def quadrant_section(
    q: pd.DataFrame, scored: pd.DataFrame, model: Any, model_label: str | None
) -> str:
    """``q``: ``quadrant_mix`` of ``scored``; ``model`` (may be None) gives the cut-offs."""
    total = int(q.to_numpy().sum())
    per_q = q.sum(axis=1)
    ft = getattr(model, "fit_threshold", None)
    it = getattr(model, "interest_threshold", None)
    cutoffs = (ft, it) if ft is not None and it is not None else None
    fig = figure(10.5, 3.6)
    if {"fit_score", "interest_score"} <= set(scored.columns):
        ax_map, ax_bar = fig.subplots(1, 2, width_ratios=[1, 1.25])
        _score_map(fig, ax_map, scored, cutoffs)
    else:
        ax_bar = fig.add_subplot()
    _mix_bars(ax_bar, per_q, total)
    chart = embedded_img(fig, "Quadrant mix")
    thresholds = ""
    if cutoffs:
        thresholds = (
            f" Cut-offs stored with the model: fit ≥ {ft:.1f}, interest ≥ {it:.1f} (red lines)."
        )
    return (
        f'<p class="lede">All {integer(total)} leads scored as of the report moment with '
        f"{esc(model_label or 'the given scores')} (<code>scoring.batch.score_batch</code>, "
        f"the path of <code>leadscore score</code>).{thresholds} The columns on the right "
        "split each quadrant by the lead's current funnel stage (share of that stage's "
        "leads).</p>" + chart + _quadrant_table(q, per_q, total)
    )


def _score_map(
    fig: Any, ax: Any, scored: pd.DataFrame, cutoffs: tuple[float, float] | None
) -> None:
    """Every lead on fit x interest (log-density hexbins), the model's cut-offs in red and
    the quadrants named in their corners."""
    fit = scored["fit_score"].to_numpy(dtype=float)
    interest = scored["interest_score"].to_numpy(dtype=float)
    hb = ax.hexbin(
        fit, interest, gridsize=28, bins="log", cmap="Greys", mincnt=1, extent=(0, 100, 0, 100)
    )
    fig.colorbar(hb, ax=ax, label="leads (log)", shrink=0.85)
    if cutoffs:
        ax.axvline(cutoffs[0], color="#c62828", lw=1)
        ax.axhline(cutoffs[1], color="#c62828", lw=1)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("fit score (0-100)", fontsize=9)
    ax.set_ylabel("interest score (0-100)", fontsize=9)
    ax.set_title("Fit × interest of every lead", fontsize=11, loc="left")
    if cutoffs:
        box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}
        for key, style in QUADRANT_STYLES.items():
            cx, cy, ha, va = style.corner
            name = key.replace("_", " ")
            ax.text(cx, cy, name, ha=ha, va=va, fontsize=8, color=style.colour, bbox=box)
    style_axes(ax)


def _mix_bars(ax: Any, per_q: pd.Series, total: int) -> None:
    """Leads per quadrant as bars in the quadrants' colours."""
    keys = list(per_q.index)
    y = np.arange(len(keys))[::-1]
    ax.barh(y, per_q.to_numpy(), color=[quadrant_style(k).colour for k in keys])
    for yi, v in zip(y, per_q.to_numpy(), strict=True):
        ax.text(v, yi, f"  {int(v):,} ({pct(v / max(total, 1))})", va="center", fontsize=9)
    ax.set_yticks(y, [quadrant_style(k).label for k in keys])
    ax.set_xlim(0, per_q.max() * 1.35 if total else 1)
    ax.set_xlabel("leads", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_title("Quadrant mix", fontsize=11, loc="left")
    style_axes(ax)


def _quadrant_table(q: pd.DataFrame, per_q: pd.Series, total: int) -> str:
    stages = list(q.columns)
    rows = []
    for k in per_q.index:
        label, todo, colour, _ = quadrant_style(k)
        rows.append(
            [
                f'<td class="l"><span class="swatch" style="background:{colour}"></span>'
                f"{esc(label)}</td>",
                f'<td class="l">{esc(todo)}</td>',
                f'<td data-quadrant="{esc(k)}" data-count="{int(per_q[k])}">'
                f"{integer(per_q[k])}</td>",
                pct(per_q[k] / max(total, 1)),
                *(
                    f"{integer(q.loc[k, s])}<small>{pct(q.loc[k, s] / max(q[s].sum(), 1))}</small>"
                    for s in stages
                ),
            ]
        )
    return table(
        [
            "quadrant",
            '<th class="l">what to do</th>',
            "leads",
            "share",
            *(f"now {esc(STAGE_LABELS.get(s, s))}" for s in stages),
        ],
        rows,
    )
