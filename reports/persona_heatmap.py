"""The "persona x funnel stage" section of the funnel report: two heat maps side by side,
leads per persona and stage (log scale) and conversion per persona and step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm

from crm.vocabulary import STAGES
from reports.charts import embedded_img, figure
from reports.conversion import STAGE_LABELS, TRANSITION_LABELS
from reports.html import MIN_N, esc, integer, pct, table


def persona_section(
    profile: pd.DataFrame, persona_rates: pd.DataFrame, persona_counts: pd.DataFrame
) -> str:
    """``persona_rates``: ``conversion_rates`` by persona; ``persona_counts``: leads that
    entered each stage, per persona; personas ordered by their number of leads."""
    if persona_rates.empty:
        return '<p class="note">No stage entries before the report moment.</p>'
    order = profile["persona"].value_counts().index.tolist()
    c = persona_counts.reindex(order).fillna(0).astype(int)
    r = persona_rates
    labels = [lab for lab in TRANSITION_LABELS if lab in set(r["transition"].astype(str))]
    rate = (
        r.pivot(index="group", columns="transition", values="rate")
        .reindex(index=order, columns=labels)
        .astype(float)
    )
    n = (
        r.pivot(index="group", columns="transition", values="entered")
        .reindex(index=order, columns=labels)
        .astype(float)
    )
    fig = figure(11, 0.55 * len(order) + 2.4)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[len(STAGES), max(len(labels), 1)])
    _count_map(ax1, c, order)
    _rate_map(ax2, rate, n, labels, order)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=9, length=0)
        for side in ax.spines.values():
            side.set_visible(False)
    chart = embedded_img(fig, "Persona by funnel stage: counts and conversion")
    table_rows = []
    for p in order:
        row = [f'<td class="l">{esc(p)}</td>']
        row += [integer(c.loc[p, s]) for s in STAGES]
        row += [pct(rate.loc[p, lab]) for lab in labels]
        table_rows.append(row)
    html_table = table(
        ["persona", *(esc(STAGE_LABELS[s]) for s in STAGES), *(esc(x) for x in labels)],
        table_rows,
    )
    return (
        '<p class="lede">Persona as of the report moment (role, firmographics and topics '
        "read, <code>assign_personas</code>). Left: leads that entered each funnel stage "
        "(log colour scale). Right: conversion from each stage to the next; cells with "
        f"fewer than {MIN_N} entrants are not coloured.</p>" + chart + html_table
    )


def _count_map(ax: Any, c: pd.DataFrame, order: list[str]) -> None:
    """Leads that entered each stage per persona, on a log colour scale."""
    vals = c.to_numpy().astype(float)
    positive = np.where(vals > 0, vals, np.nan)
    vmax_c = float(np.nanmax(positive)) if (vals > 0).any() else 1.0
    vmin_c = float(np.nanmin(positive)) if (vals > 0).any() else 1.0
    norm = LogNorm(vmin=vmin_c, vmax=max(vmax_c, vmin_c * 2))
    ax.imshow(positive, cmap="Blues", norm=norm, aspect="auto")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            dark = vals[i, j] > 0 and np.log1p(vals[i, j]) > 0.6 * np.log1p(vmax_c)
            ax.text(
                j,
                i,
                f"{int(vals[i, j]):,}",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else "#1d2733",
            )
    ax.set_xticks(range(len(STAGES)), [STAGE_LABELS[s] for s in STAGES], rotation=30, ha="right")
    ax.set_yticks(range(len(order)), order)
    ax.set_title("Leads that entered the stage", fontsize=11, loc="left")
    ax.set_xlabel("funnel stage", fontsize=9)
    ax.set_ylabel("persona", fontsize=9)


def _rate_map(
    ax: Any, rate: pd.DataFrame, n: pd.DataFrame, labels: list[str], order: list[str]
) -> None:
    """Conversion per persona and step; cells with fewer than MIN_N entrants uncoloured."""
    rv = rate.to_numpy()
    nv = n.to_numpy()
    shown = np.where(nv >= MIN_N, rv, np.nan)
    ax.imshow(100 * shown, cmap="Greens", vmin=0, vmax=100, aspect="auto")
    for i in range(rv.shape[0]):
        for j in range(rv.shape[1]):
            if np.isnan(rv[i, j]):
                continue
            few = nv[i, j] < MIN_N
            dark = not few and rv[i, j] > 0.6
            ax.text(
                j,
                i,
                f"{100 * rv[i, j]:.1f}%",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if dark else ("#9aa3ad" if few else "#1d2733"),
            )
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(order)), [""] * len(order))
    ax.set_title("Conversion to the next stage", fontsize=11, loc="left")
    ax.set_xlabel("step", fontsize=9)
