"""The monitoring page: one self-contained HTML document (inline styles, charts as
embedded PNG images, nothing loaded from a network) of a :class:`MonitorReport`."""

from __future__ import annotations

import numpy as np

from monitoring.drift import MIN_ROWS, PSI_MODERATE, PSI_SHIFT
from monitoring.report import MonitorReport, ci_text, pct
from reports.charts import embedded_img, figure, style_axes
from reports.html import esc, integer, table, when

MAX_ROWS_SHOWN = 24  # features and scores in the drift chart (the most drifted)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1100px;color:#222;padding:0 16px}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:0}.alerts{background:#fdecea;border-left:4px solid #c44e52;
padding:8px 16px}.alerts li{margin:4px 0}.ok{background:#eaf6ec;border-left:4px solid #55a868;
padding:8px 16px}img.chart{max-width:100%;height:auto;display:block;margin:8px 0}
table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto}.flag{background:#f8d7d5}.note{color:#555;font-size:0.9em}
"""


def _volume_chart(report: MonitorReport) -> str:
    fig = figure(9, 2.6)
    ax = fig.add_subplot()
    labels = list(report.volume)
    counts = [report.volume[k] for k in labels]
    colors = ["#4c72b0" if c >= MIN_ROWS else "#b0b0b0" for c in counts]
    ax.bar(labels, counts, color=colors)
    ax.axhline(MIN_ROWS, color="k", ls=":", lw=1, label=f"{MIN_ROWS} leads: enough to alert")
    ax.set(ylabel="leads scored", title=f"Volume per {report.period}")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=45)
    style_axes(ax)
    return embedded_img(fig, f"leads scored per {report.period}")


def _drift_chart(report: MonitorReport) -> str:
    periods = list(report.volume)
    names: dict[str, float] = {}
    for d in report.drift:
        key = d.name if d.kind == "feature" else f"score: {d.name}"
        names[key] = max(names.get(key, 0.0), d.psi)
    shown = sorted(names, key=names.__getitem__, reverse=True)[:MAX_ROWS_SHOWN]
    grid = np.full((len(shown), len(periods)), np.nan)
    flags = np.zeros_like(grid, dtype=bool)
    for d in report.drift:
        key = d.name if d.kind == "feature" else f"score: {d.name}"
        if key in shown and d.period in periods:
            i, j = shown.index(key), periods.index(d.period)
            grid[i, j], flags[i, j] = d.psi, d.flagged
    fig = figure(min(4 + 1.1 * len(periods), 11), 1.2 + 0.32 * len(shown))
    ax = fig.add_subplot()
    im = ax.imshow(np.nan_to_num(grid), cmap="Reds", vmin=0, vmax=2 * PSI_SHIFT, aspect="auto")
    for i in range(len(shown)):
        for j in range(len(periods)):
            if np.isfinite(grid[i, j]):
                text = f"{grid[i, j]:.2f}" + (" !" if flags[i, j] else "")
                color = "white" if grid[i, j] > 1.4 * PSI_SHIFT else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(periods)), periods, fontsize=8)
    ax.set_yticks(range(len(shown)), shown, fontsize=8)
    ax.set_title(f"PSI against the training data (! = drift alert; > {PSI_SHIFT:g} is a shift)")
    fig.colorbar(im, ax=ax, shrink=0.8, label="PSI")
    return embedded_img(fig, "PSI per feature and period")


def _calibration_chart(report: MonitorReport) -> str:
    fig = figure(10, 3.8)
    ax, ax_m = fig.subplots(1, 2)
    for axis, bins, title in (
        (ax, report.deciles, "By score decile"),
        (ax_m, report.months, "By month scored"),
    ):
        x = np.arange(len(bins)) if axis is ax_m else np.array([b.predicted for b in bins])
        obs = np.array([b.observed for b in bins])
        err = np.array([[b.observed - b.low for b in bins], [b.high - b.observed for b in bins]])
        colors = ["#c44e52" if b.flagged else "#4c72b0" for b in bins]
        if axis is ax:
            top = max([b.high for b in bins] + [b.predicted for b in bins] + [0.05])
            axis.plot([0, top], [0, top], color="#999", ls="--", lw=1, label="perfect")
            axis.set(xlabel="mean predicted p_convert", ylabel="observed conversion")
        else:
            axis.plot(x, [b.predicted for b in bins], "s--", color="#999", label="predicted")
            axis.set_xticks(x, [b.label for b in bins], fontsize=8)
            axis.set(ylabel="conversion")
        axis.errorbar(x, obs, yerr=err, fmt="none", ecolor="#555", capsize=3, lw=1)
        axis.scatter(x, obs, c=colors, zorder=3, label="observed (95 % CI)")
        axis.set_title(title)
        axis.legend(fontsize=8)
        style_axes(axis)
    return embedded_img(fig, "realised calibration")


def _alerts_html(report: MonitorReport) -> str:
    if not report.alerts:
        return '<div class="ok">No alert: nothing crossed a threshold.</div>'
    items = "".join(f"<li>{esc(a)}</li>" for a in report.alerts)
    return f'<div class="alerts" id="alerts"><ul>{items}</ul></div>'


def _drift_rows(report: MonitorReport) -> list[list[str]]:
    rows = []
    for d in sorted(report.drift, key=lambda d: (-d.psi, d.period))[: MAX_ROWS_SHOWN * 2]:
        cls = ' class="flag"' if d.flagged else ""
        rows.append(
            [
                f"<td{cls}>{esc(d.name)}</td>",
                esc(d.kind),
                esc(d.period),
                integer(d.rows),
                f"{d.psi:.3f}",
                f"{d.noise:.3f}",
                esc(d.level + ("" if d.enough_data else " (too few leads)")),
                pct(d.unknown_share),
                f"{pct(d.missing_share)} ({pct(d.reference_missing)})",
            ]
        )
    return rows


def _bin_rows(bins: list) -> list[list[str]]:
    out = []
    for b in bins:
        cls = ' class="flag"' if b.flagged else ""
        out.append(
            [
                esc(b.label),
                integer(b.rows),
                pct(b.predicted),
                f"<td{cls}>{pct(b.observed)}</td>",
                ci_text(b.low, b.high),
            ]
        )
    return out


def _outcomes_html(report: MonitorReport) -> str:
    if not report.outcomes_known:
        return (
            '<p class="note">No outcome known yet for the leads in this range: calibration '
            "and ROC AUC need outcomes posted to /outcomes and the horizon to pass.</p>"
        )
    auc = report.auc
    auc_text = (
        "too few converted and unconverted leads for a ROC AUC"
        if auc is None
        else f"realised ROC AUC {auc.value:.3f} (95 % CI {auc.low:.3f}-{auc.high:.3f}; "
        f"{auc.positives:,} converted, {auc.negatives:,} not)"
        + ("" if auc.holdout is None else f"; {auc.holdout:.3f} on the training holdout")
    )
    header = ["score range", "leads", "predicted", "observed", "95 % CI"]
    return (
        f"<p>{integer(report.outcomes_known)} scored leads with a known outcome; "
        f"{esc(auc_text)}.</p>"
        + _calibration_chart(report)
        + "<h3>By score decile</h3>"
        + table(header, _bin_rows(report.deciles))
        + "<h3>By month scored</h3>"
        + table(["month", *header[1:]], _bin_rows(report.months))
    )


def render(report: MonitorReport) -> str:
    """The whole page."""
    ref = report.reference
    base = ref.get("base_rate")
    drift_header = [
        "name", "kind", report.period, "leads", "PSI", "PSI by chance (1 %)", "level",
        "unknown", "missing (training)",
    ]  # fmt: skip
    body = [
        f"<h1>Is the model still right? {esc(report.model_name)} version "
        f"{esc(report.model_version)}</h1>",
        f'<p class="sub">Leads scored as of {esc(when(report.date_from))} to '
        f"{esc(when(report.date_to))} (UTC), by {esc(report.period)}; compared with "
        f"{integer(ref.get('rows') or 0)} training rows"
        + ("" if base is None else f" (positive rate {pct(base)})")
        + ".</p>",
        "<h2>Alerts</h2>",
        _alerts_html(report),
        "<h2>Volume</h2>",
        _volume_chart(report) if report.volume else "<p>No leads scored.</p>",
        "<h2>Drift of features and scores</h2>",
        f'<p class="note">Population stability index per {esc(report.period)} against the '
        f"training data: below {PSI_MODERATE:g} stable, {PSI_MODERATE:g}-{PSI_SHIFT:g} "
        f"moderate, above {PSI_SHIFT:g} a shift. An alert needs {MIN_ROWS} leads in the "
        "period and a PSI beyond what chance gives at that size.</p>",
        _drift_chart(report) if report.drift else "<p>No drift figures.</p>",
        table(drift_header, _drift_rows(report)),
        "<h2>Realised calibration and ROC AUC</h2>",
        _outcomes_html(report),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>leadscore monitor: {esc(report.model_name)} v{esc(report.model_version)}"
        f"</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


__all__ = ["render"]
