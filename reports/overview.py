"""The overview sections of the funnel report: headline numbers, the data window, the
funnel itself (chart and table) and conversion by segment (persona x lifecycle stage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crm.contract import CrmData
from crm.vocabulary import LIFECYCLE_STAGES
from reports.charts import embedded_img, figure
from reports.conversion import STAGE_LABELS, TRANSITION_LABELS
from reports.html import MIN_N, esc, integer, pct, relative_bg, table, when


def kpis(data: CrmData, funnel: pd.DataFrame) -> str:
    """The cards above the sections: leads, MQL, SAL, customers, lead-to-customer rate."""
    f = funnel.set_index("stage")["leads"]
    lead_to_customer = f["customer"] / f["lead"] if f["lead"] else float("nan")
    cards = [
        (integer(len(data.leads)), "leads in the export"),
        (integer(f["mql"]), "reached MQL"),
        (integer(f["sal"]), "accepted by sales (SAL)"),
        (integer(f["customer"]), "became customers"),
        (pct(lead_to_customer, 2), "lead → customer (all months)"),
    ]
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><b>{v}</b><span>{esc(k)}</span></div>' for v, k in cards)
        + "</div>"
    )


def data_section(data: CrmData, moment: pd.Timestamp, data_dir: str | Path | None) -> str:
    """What the report read: the folder, the moment, the time ranges and table sizes."""
    d = data
    at = d.events["at"]
    entered = d.stage_history["entered_at"]
    created = d.leads["created_at"]
    n_hist = d.stage_history["lead_id"].astype(str).nunique()
    months = pd.period_range(created.min(), moment, freq="M") if len(created) else []
    rows = [
        ("Data folder", f"<code>{esc(data_dir or '-')}</code>"),
        ("Report as of", esc(when(moment))),
        ("Leads created", f"{when(created.min())} – {when(created.max())}"),
        ("Events", f"{when(at.min())} – {when(at.max())}"),
        ("Stage entries", f"{when(entered.min())} – {when(entered.max())}"),
        ("Months covered", integer(len(months))),
        ("Accounts", integer(len(d.accounts))),
        ("Leads", integer(len(d.leads))),
        ("Leads with a stage history", integer(n_hist)),
        ("Events (rows)", integer(len(d.events))),
        ("Stage changes (rows)", integer(len(d.stage_history))),
    ]
    body = "".join(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def funnel_section(funnel: pd.DataFrame) -> str:
    """Leads per stage as a centred bar funnel, and the table behind it."""
    return (
        '<p class="lede">Counts are leads with a recorded entry into the stage. Conversion '
        "from the previous stage: share of the leads that entered the previous stage and "
        "later reached this stage or a later one. “Currently at this stage” is the "
        "furthest stage reached (a lead without any stage record counts as lead).</p>"
        + _funnel_chart(funnel)
        + _funnel_table(funnel)
    )


def _funnel_chart(f: pd.DataFrame) -> str:
    fig = figure(9.5, 3.6)
    ax = fig.add_subplot()
    top = max(int(f["leads"].max()), 1)
    y = np.arange(len(f))[::-1]
    colors = [
        (0.13 + 0.1 * i / len(f), 0.40 + 0.05 * i / len(f), 0.67 - 0.25 * i / len(f))
        for i in range(len(f))
    ]
    ax.barh(y, f["leads"], left=(top - f["leads"]) / 2, color=colors, height=0.72)
    for yi, (_, r) in zip(y, f.iterrows(), strict=True):
        text = f"{int(r['leads']):,}  ({pct(r['share_of_first'])} of {STAGE_LABELS['visit']})"
        ax.text(top * 1.02, yi, text, va="center", fontsize=9.5)
        if r["rate_from_previous"] is not None and not pd.isna(r["rate_from_previous"]):
            ax.text(
                -top * 0.02,
                yi + 0.5,
                f"↓ {pct(r['rate_from_previous'])}",
                va="center",
                ha="right",
                fontsize=8.5,
                color="#5f6b7a",
            )
    ax.set_yticks(y, [STAGE_LABELS[s] for s in f["stage"]], fontsize=10)
    ax.set_xlim(-top * 0.12, top * 1.55)
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title("Leads that entered each funnel stage", fontsize=12, loc="left")
    return embedded_img(fig, "Funnel: leads per stage")


def _funnel_table(f: pd.DataFrame) -> str:
    rows = []
    for _, r in f.iterrows():
        stage = str(r["stage"])
        rows.append(
            [
                esc(STAGE_LABELS[stage]),
                f'<td data-stage="{esc(stage)}" data-count="{int(r["leads"])}">'
                f"{integer(r['leads'])}</td>",
                pct(r["share_of_first"]),
                pct(r["rate_from_previous"]),
                "–"
                if r["median_days_from_previous"] is None or pd.isna(r["median_days_from_previous"])
                else f"{r['median_days_from_previous']:.0f}",
                integer(r["current"]),
            ]
        )
    return table(
        [
            "stage",
            "leads that entered",
            "share of visits",
            "conversion from previous stage",
            "median days from previous stage",
            "currently at this stage",
        ],
        rows,
    )


def segment_section(profile: pd.DataFrame, seg_rates: pd.DataFrame, overall: pd.DataFrame) -> str:
    """Conversion per segment and step, coloured against the step's rate over all leads."""
    return (
        '<p class="lede">Segment = persona × lifecycle stage, assigned as of the report '
        "moment (<code>funnel_profile</code>). Cells: share of the segment's leads that "
        "entered the earlier stage and reached the next (converted / entered). Colour: "
        'against the step\'s rate over all leads, <span style="color:#1a9850">green '
        'above</span>, <span style="color:#d73027">red below</span> (full colour at '
        f"twice or half). Cells with fewer than {MIN_N} entrants are grey.</p>"
        + _segment_table(profile, seg_rates, overall)
        + '<p class="note">The lifecycle stage is known only at the report moment and '
        "depends on the outcome: every stage after prospect starts with a purchase, so "
        "those segments reached customer by definition, and a prospect has not bought, so "
        "its opportunity → customer rate is 0 by definition. Compare the prospect rows "
        "for funnel differences between personas.</p>"
    )


def _segment_table(profile: pd.DataFrame, r: pd.DataFrame, overall: pd.DataFrame) -> str:
    size = profile["segment"].value_counts()
    personas = profile["persona"].value_counts().index.tolist()
    order = [f"{p}/{s}" for p in personas for s in LIFECYCLE_STAGES if f"{p}/{s}" in size.index]
    order += [s for s in size.index if s not in order]
    labels = [lab for lab in TRANSITION_LABELS if lab in set(r["transition"].astype(str))]
    base = overall["rate"]
    cells = {(rec["group"], str(rec["transition"])): rec for rec in r.to_dict("records")}
    rows = []
    for s in order:
        persona, _, stage = s.partition("/")
        row = [
            f'<td class="l">{esc(persona)}</td>',
            f'<td class="l">{esc(stage.replace("_", " "))}</td>',
            integer(size[s]),
        ]
        for lab in labels:
            h = cells.get((s, lab))
            if h is None:
                row.append('<td class="few">–</td>')
                continue
            small = f"<small>{integer(h['converted'])} / {integer(h['entered'])}</small>"
            if h["entered"] < MIN_N:
                row.append(f'<td class="few">{pct(h["rate"])}{small}</td>')
            else:
                bg = relative_bg(h["rate"], base.get(lab, np.nan))
                row.append(f'<td style="{bg}">{pct(h["rate"])}{small}</td>')
        rows.append(row)
    head = ['<th class="l">persona</th>', '<th class="l">lifecycle stage</th>', "leads"]
    return table([*head, *(esc(x) for x in labels)], rows)
