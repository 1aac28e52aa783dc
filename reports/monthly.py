"""The "conversion by month" section of the funnel report: each stage-to-stage step per
cohort month, with the recent, right-censored months greyed (their leads have not had the
time to convert yet)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.charts import embedded_img, figure, style_axes
from reports.conversion import CENSOR_QUANTILE, TRANSITION_LABELS
from reports.html import esc, integer, pct, table

_MATURE = "#2166ac"
_CENSORED = "#9aa3ad"


def monthly_section(m: pd.DataFrame) -> str:
    """``m``: ``monthly_conversion`` (rates per transition and cohort month)."""
    if m.empty:
        return '<p class="note">No stage entries before the report moment.</p>'
    labels = [lab for lab in TRANSITION_LABELS if lab in set(m["transition"].astype(str))]
    months = pd.period_range(m["month"].min(), m["month"].max(), freq="M")
    lag = m.groupby("transition", observed=True)["lag_days"].first()
    lag_text = "; ".join(f"{esc(k)} {v:.0f} days" for k, v in lag.items() if k in labels)
    return (
        '<p class="lede">Each cohort is the leads whose first entry into the earlier stage '
        "fell in that month; the rate is the share that reached the next stage (or a "
        "later one) by the report moment. Dotted line: rate over all mature months.</p>"
        + _monthly_chart(m, labels, months)
        + '<p class="note">† / grey: <b>right-censored</b>. Recent cohorts have not had '
        "the time to convert yet, so their rates are too low. A month is censored when "
        f"less time has passed since its end than {int(CENSOR_QUANTILE * 100)}% of "
        f"converted leads needed for that step ({lag_text}).</p>"
        + _monthly_table(m, labels, months)
    )


def _monthly_chart(m: pd.DataFrame, labels: list[str], months: pd.PeriodIndex) -> str:
    """One panel per step, two columns: mature months as a line, censored ones greyed."""
    x = np.arange(len(months))
    pos = {p: i for i, p in enumerate(months)}
    ncol = 2
    nrow = (len(labels) + ncol - 1) // ncol
    fig = figure(10.5, 2.5 * nrow + 0.4)
    axes = fig.subplots(nrow, ncol, sharex=True, squeeze=False).ravel()
    step = max(1, len(months) // 8)
    for ax, lab in zip(axes, labels, strict=False):
        sub = m[m["transition"].astype(str) == lab]
        _cohort_panel(ax, sub, np.array([pos[p] for p in sub["month"]]), len(months))
        ax.set_title(lab, fontsize=10.5, loc="left")
        ax.set_ylabel("converted, %", fontsize=9)
        ax.set_ylim(bottom=0)
        style_axes(ax)
    for ax in axes[len(labels) :]:
        ax.set_visible(False)
    ticks = x[::step]
    for i, ax in enumerate(axes[: len(labels)]):
        ax.set_xticks(ticks, [str(months[k]) for k in ticks], rotation=45, ha="right")
        if i + ncol >= len(labels):  # lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel("cohort month (entry into the earlier stage)", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside upper right", fontsize=9, frameon=False, ncol=2)
    fig.suptitle("Stage-to-stage conversion by cohort month", fontsize=12, x=0.02, ha="left")
    return embedded_img(fig, "Conversion by cohort month")


def _cohort_panel(ax: Any, sub: pd.DataFrame, xi: np.ndarray, n_months: int) -> None:
    """One step's rate per cohort month (``xi``: the months' positions on the axis)."""
    rate = 100 * sub["rate"].to_numpy()
    cens = sub["censored"].to_numpy()
    ok = ~cens
    ax.plot(xi[ok], rate[ok], "-o", color=_MATURE, ms=3.5, lw=1.6, label="mature")
    if cens.any():
        first = xi[cens].min()
        ax.axvspan(first - 0.5, n_months - 0.5, color="#e9ecef", zorder=0)
        joined = np.concatenate([xi[ok][-1:], xi[cens]]) if ok.any() else xi[cens]
        joined_rate = np.concatenate([rate[ok][-1:], rate[cens]]) if ok.any() else rate[cens]
        ax.plot(joined, joined_rate, "--", color=_CENSORED, lw=1.2)
        ax.plot(xi[cens], rate[cens], "o", mfc="white", mec=_CENSORED, ms=4, label="right-censored")
    sel = sub[ok]
    if len(sel):
        mature = 100 * sel["converted"].sum() / max(sel["entered"].sum(), 1)
        ax.axhline(mature, color=_MATURE, lw=0.8, ls=":", alpha=0.8)


def _monthly_table(m: pd.DataFrame, labels: list[str], months: pd.PeriodIndex) -> str:
    cells = {(rec["month"], str(rec["transition"])): rec for rec in m.to_dict("records")}
    rows = []
    for p in months:
        row = [str(p)]
        for lab in labels:
            r = cells.get((p, lab))
            if r is None:
                row.append("–")
                continue
            mark = " †" if r["censored"] else ""
            cls = ' class="cens"' if r["censored"] else ""
            row.append(
                f"<td{cls}>{pct(r['rate'])}{mark}"
                f"<small>{integer(r['converted'])} / {integer(r['entered'])}</small></td>"
            )
        rows.append(row)
    return table(["cohort month", *(esc(lab) for lab in labels)], rows)
