"""The funnel report: one self-contained HTML page on how leads move through the funnel.

DOMAIN.md: "the product reports funnel counts and conversion rates by stage, segment and
period". ``build_report`` turns the canonical tables into a page with

- the data window and table sizes;
- funnel counts per stage (leads with a recorded entry into the stage) and the conversion
  from each stage to the next;
- conversion by month: cohort = month of the *first* entry into the earlier stage; a month
  is right-censored (greyed, marked with a dagger) while its latest entrants have had less
  time than the 90th percentile of the time that converted leads needed for that step;
- conversion by segment (persona x lifecycle stage from ``features.content.funnel_profile``
  as of the report moment);
- a persona x funnel stage heat map (counts and conversion);
- the quadrant mix, when a trained model is given (scored with ``scoring.batch.score_batch``).

Everything is point-in-time: only stage entries strictly before ``as_of`` count (default:
one second after the last recorded timestamp, as ``leadscore score`` does).

Conversion from stage a to stage b: among leads with an entry into a, the share with an entry
into b *or any later stage* at or after their first entry into a (a CRM that skips SAL still
moved the lead past it). An entry into b before the entry into a does not count.

Charts are PNGs rendered with matplotlib's Agg canvas and embedded as base64; styles are
inline. The page loads nothing from a server or the network.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm.contract import CrmData
from crm.vocabulary import STAGES

STAGE_LABELS: dict[str, str] = {
    "visit": "visit",
    "lead": "lead",
    "mql": "MQL",
    "sal": "SAL",
    "opportunity": "opportunity",
    "customer": "customer",
}
TRANSITIONS: tuple[tuple[str, str], ...] = tuple(zip(STAGES[:-1], STAGES[1:], strict=True))
QUADRANT_LABELS: dict[str, tuple[str, str, str]] = {  # label, what to do, colour
    "qualified": ("qualified (high fit, high interest)", "hand to sales", "#2e7d32"),
    "qualified_low_interest": ("qualified, little interest", "nurture", "#1565c0"),
    "low_fit_interested": ("low fit, very interested", "engage, re-check fit", "#ef6c00"),
    "drop": ("low fit, little interest", "drop from active campaigns", "#9e9e9e"),
}
CENSOR_QUANTILE = 0.9
MIN_N = 20  # cells with fewer entrants are shown but not coloured


def transition_label(a: str, b: str) -> str:
    return f"{STAGE_LABELS.get(a, a)} → {STAGE_LABELS.get(b, b)}"


TRANSITION_LABELS: tuple[str, ...] = tuple(transition_label(a, b) for a, b in TRANSITIONS)


# ---------------------------------------------------------------- computations
def stage_entries(stage_history: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """First entry per lead and stage strictly before ``as_of`` (all entries if None):
    a frame indexed by lead_id with one datetime column per stage of STAGES (NaT = never)."""
    at = pd.to_datetime(stage_history["entered_at"])
    keep = at.notna() & stage_history["stage"].notna()
    if as_of is not None:
        keep &= at < pd.Timestamp(as_of)
    sub = pd.DataFrame(
        {
            "lead_id": stage_history.loc[keep, "lead_id"].astype(str).to_numpy(),
            "stage": stage_history.loc[keep, "stage"].astype(str).to_numpy(),
            "entered_at": at[keep].to_numpy(dtype="datetime64[ns]"),
        }
    )
    sub = sub[sub["stage"].isin(STAGES)]
    first = sub.groupby(["lead_id", "stage"], sort=True)["entered_at"].min()
    wide = first.unstack("stage") if len(first) else pd.DataFrame(index=pd.Index([], dtype=str))
    wide = wide.reindex(columns=list(STAGES)).astype("datetime64[ns]")
    wide.index.name = "lead_id"
    wide.columns.name = "stage"
    return wide


def funnel_counts(stage_history: pd.DataFrame, as_of: Any = None) -> pd.Series:
    """Leads with at least one recorded entry into each stage (before ``as_of``)."""
    wide = stage_entries(stage_history, as_of)
    return wide.notna().sum().astype(int).rename("leads")


def lead_transitions(stage_history: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """One row per lead and stage-to-stage step it could take (it entered the earlier stage):
    lead_id, from_stage, to_stage, transition, entered_at (first entry into from_stage),
    converted_at (first entry into to_stage or a later stage at or after entered_at; NaT if
    none before ``as_of``), converted, days (to conversion)."""
    wide = stage_entries(stage_history, as_of)
    nat = np.iinfo(np.int64).min
    never = np.iinfo(np.int64).max
    t = wide.to_numpy(dtype="datetime64[ns]").view(np.int64)
    frames = []
    for i, (a, b) in enumerate(TRANSITIONS):
        start = t[:, i]
        later = t[:, i + 1 :]
        ok = (later != nat) & (later >= start[:, None])
        first = np.where(ok, later, never).min(axis=1)
        rows = np.flatnonzero(start != nat)
        conv = np.where(first[rows] != never, first[rows], nat)
        frames.append(
            pd.DataFrame(
                {
                    "lead_id": wide.index[rows].to_numpy(dtype=object),
                    "from_stage": a,
                    "to_stage": b,
                    "transition": TRANSITION_LABELS[i],
                    "entered_at": start[rows].view("datetime64[ns]"),
                    "converted_at": conv.view("datetime64[ns]"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["transition"] = pd.Categorical(out["transition"], categories=list(TRANSITION_LABELS))
    out["converted"] = out["converted_at"].notna()
    out["days"] = (out["converted_at"] - out["entered_at"]).dt.total_seconds() / 86400.0
    return out


def _rates(t: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = t.groupby(keys, observed=True, sort=True)
    out = g.agg(entered=("converted", "size"), converted=("converted", "sum"))
    out["converted"] = out["converted"].astype(int)
    out["rate"] = out["converted"] / out["entered"]
    days = t[t["converted"]].groupby(keys, observed=True)["days"].median()
    out["median_days"] = days.reindex(out.index)
    return out.reset_index()


def conversion_rates(transitions: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """entered, converted, rate and median days to convert per transition; with ``by`` (a
    Series lead_id -> group label) per group and transition (leads without a label are
    left out). Rows in funnel order."""
    if by is None:
        return _rates(transitions, ["transition"])
    labels = pd.Series(by.to_numpy(), index=by.index.astype(str))
    group = transitions["lead_id"].astype(str).map(labels)
    t = transitions.assign(group=group.to_numpy()).dropna(subset=["group"])
    return _rates(t, ["group", "transition"])


def monthly_conversion(
    transitions: pd.DataFrame, as_of: Any, quantile: float = CENSOR_QUANTILE
) -> pd.DataFrame:
    """Conversion per transition and cohort month (month of the first entry into the earlier
    stage). ``lag_days`` is the ``quantile`` of days-to-convert of that transition; a month
    is ``censored`` when the time from its end to ``as_of`` is shorter than that lag (its
    latest entrants may still convert), and always when it ends after ``as_of``."""
    t = transitions.assign(month=transitions["entered_at"].dt.to_period("M"))
    out = _rates(t, ["transition", "month"])
    conv = t[t["converted"]]
    lag = conv.groupby("transition", observed=True)["days"].quantile(quantile)
    out["lag_days"] = out["transition"].map(lag).astype(float).fillna(0.0)
    month_end = out["month"].dt.end_time
    waited = (pd.Timestamp(as_of) - month_end).dt.total_seconds() / 86400.0
    out["censored"] = waited < out["lag_days"]
    return out


# ---------------------------------------------------------------- the report
@dataclass(frozen=True)
class Report:
    """The page and the tables it shows."""

    html: str
    funnel: pd.DataFrame  # stage, leads, current, rate_from_previous, ...
    monthly: pd.DataFrame
    segments: pd.DataFrame
    quadrants: pd.DataFrame | None


def build_report(
    data: CrmData,
    as_of: Any = None,
    data_dir: str | Path | None = None,
    model: Any = None,
    model_label: str | None = None,
    model_note: str | None = None,
    personas: Any = None,
    scored: pd.DataFrame | None = None,
    generated_at: datetime | None = None,
) -> Report:
    """Compute everything and render the HTML page.

    ``model``: a ``LeadScoringModel`` (as ``leadscore score`` loads the champion) to score
    every lead with ``scoring.batch.score_batch`` for the quadrant mix; ``scored`` instead
    gives ready answers (a frame indexed by lead_id with a ``quadrant`` column). Without
    either the page says that quadrants need a trained model (``model_note`` adds why).
    ``personas``: a ``PersonaConfig`` for the segments (default: the model's, else the
    shipped one)."""
    from crm.contract import data_end
    from features.content import funnel_profile

    moment = pd.Timestamp(as_of) if as_of is not None else data_end(data) + pd.Timedelta(seconds=1)
    if personas is None and model is not None:
        personas = getattr(model, "personas", None)
    profile = funnel_profile(data.leads, data.events, data.stage_history, moment, personas)
    profile.index = profile.index.astype(str)
    trans = lead_transitions(data.stage_history, moment)
    counts = funnel_counts(data.stage_history, moment)
    overall = conversion_rates(trans).set_index("transition")
    monthly = monthly_conversion(trans, moment)
    seg_rates = conversion_rates(trans, profile["segment"])
    persona_rates = conversion_rates(trans, profile["persona"])
    wide = stage_entries(data.stage_history, moment)
    persona_counts = (
        wide.notna().join(profile["persona"], how="inner").groupby("persona").sum().astype(int)
    )

    current = profile["funnel_stage"].value_counts().reindex(list(STAGES), fill_value=0)
    funnel = pd.DataFrame({"stage": list(STAGES), "leads": counts.to_numpy()})
    funnel["share_of_first"] = funnel["leads"] / max(int(funnel["leads"].iloc[0]), 1)
    prev = [None, *(overall.reindex([lab])["rate"].iloc[0] for lab in TRANSITION_LABELS)]
    funnel["rate_from_previous"] = prev
    days = [None, *(overall.reindex([lab])["median_days"].iloc[0] for lab in TRANSITION_LABELS)]
    funnel["median_days_from_previous"] = days
    funnel["current"] = current.to_numpy()

    if scored is None and model is not None:
        from scoring.batch import score_batch

        scored = score_batch(
            model, data.leads, data.accounts, data.events, moment, stage_history=data.stage_history
        )
    quadrants = None
    if scored is not None:
        q = scored["quadrant"].astype(str)
        q.index = q.index.astype(str)
        stage_now = profile["funnel_stage"].reindex(q.index)
        seen = set(q)
        quadrants = pd.crosstab(q, stage_now).reindex(
            index=[k for k in QUADRANT_LABELS if k in seen] + sorted(seen - set(QUADRANT_LABELS)),
            columns=[s for s in STAGES if s in set(stage_now.dropna())],
            fill_value=0,
        )

    page = _Page(
        data=data,
        moment=moment,
        data_dir=data_dir,
        profile=profile,
        funnel=funnel,
        overall=overall,
        monthly=monthly,
        seg_rates=seg_rates,
        persona_rates=persona_rates,
        persona_counts=persona_counts,
        scored=scored,
        quadrants=quadrants,
        model=model,
        model_label=model_label,
        model_note=model_note,
        generated_at=generated_at or datetime.now(UTC),
    )
    return Report(page.render(), funnel, monthly, seg_rates, quadrants)


def write_report(out: str | Path, data: CrmData, **kwargs: Any) -> Report:
    """``build_report`` and write the page to ``out`` (UTF-8); returns the report."""
    report = build_report(data, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    return report


# ---------------------------------------------------------------- rendering helpers
def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(x: Any, digits: int = 1) -> str:
    return "–" if x is None or pd.isna(x) else f"{100 * float(x):.{digits}f}%"


def _int(x: Any) -> str:
    return f"{int(x):,}"


def _when(ts: Any) -> str:
    return "–" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="chart" src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _style_axes(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _relative_bg(rate: float, base: float) -> str:
    """Background for a rate against a base rate: green above, red below; full colour at
    twice or half the base, white when equal."""
    if pd.isna(rate) or pd.isna(base) or base <= 0:
        return ""
    x = float(np.clip(np.log2(max(rate, 1e-9) / base), -1.0, 1.0))
    rgb: Sequence[int] = (26, 152, 80) if x > 0 else (215, 48, 39)
    r, g, b = (round(255 - (255 - c) * 0.45 * abs(x)) for c in rgb)
    return f"background:rgb({r},{g},{b})"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    head = "".join(h if h.startswith("<th") else f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


CSS = """
:root { --ink:#1d2733; --muted:#5f6b7a; --line:#e3e7ec; --accent:#2166ac; --bg:#f6f8fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 28px 8px; }
header h1 { margin: 0 0 4px; font-size: 28px; }
header p { margin: 0; color: var(--muted); }
nav { margin: 14px 0 6px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px 20px; margin: 18px 0; }
h2 { margin: 0 0 6px; font-size: 20px; }
h3 { margin: 18px 0 6px; font-size: 16px; }
p.lede, p.note { color: var(--muted); margin: 4px 0 12px; font-size: 14px; }
.kpis { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 4px; }
.kpi { flex: 1 1 150px; background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 12px 16px; }
.kpi b { display: block; font-size: 24px; font-variant-numeric: tabular-nums; }
.kpi span { color: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; margin: 8px 0;
  font-variant-numeric: tabular-nums; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right; }
th { background: #eef2f6; font-weight: 600; vertical-align: bottom; }
.scroll { overflow-x: auto; }
th:first-child, td:first-child { text-align: left; }
td.l, th.l { text-align: left; }
tbody tr:hover td { filter: brightness(0.97); }
table.kv { width: auto; min-width: 60%; }
table.kv td:first-child { color: var(--muted); padding-right: 24px; }
td small { color: var(--muted); display: block; font-size: 11px; }
td.cens { color: #9aa3ad; background: repeating-linear-gradient(135deg, #fafbfc 0 6px,
  #f0f2f5 6px 12px); }
td.few { color: #9aa3ad; }
img.chart { max-width: 100%; height: auto; display: block; margin: 8px auto; }
.callout { border-left: 4px solid #ef6c00; background: #fff6ed; padding: 10px 14px;
  border-radius: 4px; margin: 8px 0; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin-right: 6px; vertical-align: -1px; }
code { background: #eef2f6; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
footer { max-width: 1120px; margin: 0 auto; padding: 8px 28px 28px; color: var(--muted);
  font-size: 12.5px; }
"""


@dataclass
class _Page:
    data: CrmData
    moment: pd.Timestamp
    data_dir: str | Path | None
    profile: pd.DataFrame
    funnel: pd.DataFrame
    overall: pd.DataFrame
    monthly: pd.DataFrame
    seg_rates: pd.DataFrame
    persona_rates: pd.DataFrame
    persona_counts: pd.DataFrame
    scored: pd.DataFrame | None
    quadrants: pd.DataFrame | None
    model: Any
    model_label: str | None
    model_note: str | None
    generated_at: datetime

    def render(self) -> str:
        sections: list[tuple[str, str, Callable[[], str]]] = [
            ("data", "Data window", self.data_section),
            ("funnel", "Funnel", self.funnel_section),
            ("monthly", "Conversion by month", self.monthly_section),
            ("segments", "Conversion by segment", self.segment_section),
            ("personas", "Persona × funnel stage", self.persona_section),
            ("quadrants", "Quadrant mix", self.quadrant_section),
        ]
        nav = "".join(f'<a href="#{sid}">{_e(title)}</a>' for sid, title, _ in sections)
        body = "".join(
            f'<section id="{sid}"><h2>{_e(title)}</h2>{fn()}</section>'
            for sid, title, fn in sections
        )
        folder = str(Path(self.data_dir).resolve()) if self.data_dir is not None else "-"
        generated = self.generated_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Lead funnel report – {_e(Path(folder).name)}</title>"
            f"<style>{CSS}</style></head><body><main>"
            "<header><h1>Lead funnel report</h1>"
            f"<p>Data <code>{_e(folder)}</code> as of {_e(_when(self.moment))} "
            "(only stage entries and events before this moment count)</p></header>"
            f"{self.kpis()}<nav>{nav}</nav>{body}</main>"
            f"<footer>Generated {_e(generated)} by <code>leadscore report</code> from the data "
            f"folder <code>{_e(folder)}</code>, as of {_e(_when(self.moment))}. "
            "Self-contained page: charts are embedded images, nothing is loaded from a "
            "network.</footer></body></html>\n"
        )

    # -------------------------------------------------------------- sections
    def kpis(self) -> str:
        f = self.funnel.set_index("stage")["leads"]
        lead_to_customer = f["customer"] / f["lead"] if f["lead"] else float("nan")
        cards = [
            (_int(len(self.data.leads)), "leads in the export"),
            (_int(f["mql"]), "reached MQL"),
            (_int(f["sal"]), "accepted by sales (SAL)"),
            (_int(f["customer"]), "became customers"),
            (_pct(lead_to_customer, 2), "lead → customer (all months)"),
        ]
        return (
            '<div class="kpis">'
            + "".join(f'<div class="kpi"><b>{v}</b><span>{_e(k)}</span></div>' for v, k in cards)
            + "</div>"
        )

    def data_section(self) -> str:
        d = self.data
        at = d.events["at"]
        entered = d.stage_history["entered_at"]
        created = d.leads["created_at"]
        n_hist = d.stage_history["lead_id"].astype(str).nunique()
        months = pd.period_range(created.min(), self.moment, freq="M") if len(created) else []
        rows = [
            ("Data folder", f"<code>{_e(self.data_dir or '-')}</code>"),
            ("Report as of", _e(_when(self.moment))),
            ("Leads created", f"{_when(created.min())} – {_when(created.max())}"),
            ("Events", f"{_when(at.min())} – {_when(at.max())}"),
            ("Stage entries", f"{_when(entered.min())} – {_when(entered.max())}"),
            ("Months covered", _int(len(months))),
            ("Accounts", _int(len(d.accounts))),
            ("Leads", _int(len(d.leads))),
            ("Leads with a stage history", _int(n_hist)),
            ("Events (rows)", _int(len(d.events))),
            ("Stage changes (rows)", _int(len(d.stage_history))),
        ]
        body = "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
        return f'<table class="kv"><tbody>{body}</tbody></table>'

    def funnel_section(self) -> str:
        f = self.funnel
        fig = _figure(9.5, 3.6)
        ax = fig.add_subplot()
        top = max(int(f["leads"].max()), 1)
        y = np.arange(len(f))[::-1]
        colors = [
            (0.13 + 0.1 * i / len(f), 0.40 + 0.05 * i / len(f), 0.67 - 0.25 * i / len(f))
            for i in range(len(f))
        ]
        ax.barh(y, f["leads"], left=(top - f["leads"]) / 2, color=colors, height=0.72)
        for yi, (_, r) in zip(y, f.iterrows(), strict=True):
            text = f"{int(r['leads']):,}  ({_pct(r['share_of_first'])} of {STAGE_LABELS['visit']})"
            ax.text(top * 1.02, yi, text, va="center", fontsize=9.5)
            if r["rate_from_previous"] is not None and not pd.isna(r["rate_from_previous"]):
                ax.text(
                    -top * 0.02,
                    yi + 0.5,
                    f"↓ {_pct(r['rate_from_previous'])}",
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
        rows = []
        for _, r in f.iterrows():
            stage = str(r["stage"])
            rows.append(
                [
                    _e(STAGE_LABELS[stage]),
                    f'<td data-stage="{_e(stage)}" data-count="{int(r["leads"])}">'
                    f"{_int(r['leads'])}</td>",
                    _pct(r["share_of_first"]),
                    _pct(r["rate_from_previous"]),
                    "–"
                    if r["median_days_from_previous"] is None
                    or pd.isna(r["median_days_from_previous"])
                    else f"{r['median_days_from_previous']:.0f}",
                    _int(r["current"]),
                ]
            )
        table = _table(
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
        return (
            '<p class="lede">Counts are leads with a recorded entry into the stage. Conversion '
            "from the previous stage: share of the leads that entered the previous stage and "
            "later reached this stage or a later one. “Currently at this stage” is the "
            "furthest stage reached (a lead without any stage record counts as lead).</p>"
            + _img(fig, "Funnel: leads per stage")
            + table
        )

    def monthly_section(self) -> str:
        m = self.monthly
        if m.empty:
            return '<p class="note">No stage entries before the report moment.</p>'
        labels = [lab for lab in TRANSITION_LABELS if lab in set(m["transition"].astype(str))]
        months = pd.period_range(m["month"].min(), m["month"].max(), freq="M")
        x = np.arange(len(months))
        pos = {p: i for i, p in enumerate(months)}
        ncol = 2
        nrow = (len(labels) + ncol - 1) // ncol
        fig = _figure(10.5, 2.5 * nrow + 0.4)
        axes = fig.subplots(nrow, ncol, sharex=True, squeeze=False).ravel()
        step = max(1, len(months) // 8)
        for ax, lab in zip(axes, labels, strict=False):
            sub = m[m["transition"].astype(str) == lab]
            xi = np.array([pos[p] for p in sub["month"]])
            rate = 100 * sub["rate"].to_numpy()
            cens = sub["censored"].to_numpy()
            ok = ~cens
            ax.plot(xi[ok], rate[ok], "-o", color="#2166ac", ms=3.5, lw=1.6, label="mature")
            if cens.any():
                first = xi[cens].min()
                ax.axvspan(first - 0.5, len(months) - 0.5, color="#e9ecef", zorder=0)
                joined = np.concatenate([xi[ok][-1:], xi[cens]]) if ok.any() else xi[cens]
                joined_rate = (
                    np.concatenate([rate[ok][-1:], rate[cens]]) if ok.any() else rate[cens]
                )
                ax.plot(joined, joined_rate, "--", color="#9aa3ad", lw=1.2)
                ax.plot(
                    xi[cens],
                    rate[cens],
                    "o",
                    mfc="white",
                    mec="#9aa3ad",
                    ms=4,
                    label="right-censored",
                )
            sel = sub[ok]
            if len(sel):
                mature = 100 * sel["converted"].sum() / max(sel["entered"].sum(), 1)
                ax.axhline(mature, color="#2166ac", lw=0.8, ls=":", alpha=0.8)
            ax.set_title(lab, fontsize=10.5, loc="left")
            ax.set_ylabel("converted, %", fontsize=9)
            ax.set_ylim(bottom=0)
            _style_axes(ax)
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

        lag = m.groupby("transition", observed=True)["lag_days"].first()
        lag_text = "; ".join(f"{_e(k)} {v:.0f} days" for k, v in lag.items() if k in labels)
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
                    f"<td{cls}>{_pct(r['rate'])}{mark}"
                    f"<small>{_int(r['converted'])} / {_int(r['entered'])}</small></td>"
                )
            rows.append(row)
        table = _table(["cohort month", *(_e(lab) for lab in labels)], rows)
        return (
            '<p class="lede">Each cohort is the leads whose first entry into the earlier stage '
            "fell in that month; the rate is the share that reached the next stage (or a "
            "later one) by the report moment. Dotted line: rate over all mature months.</p>"
            + _img(fig, "Conversion by cohort month")
            + '<p class="note">† / grey: <b>right-censored</b>. Recent cohorts have not had '
            "the time to convert yet, so their rates are too low. A month is censored when "
            f"less time has passed since its end than {int(CENSOR_QUANTILE * 100)}% of "
            f"converted leads needed for that step ({lag_text}).</p>" + table
        )

    def segment_section(self) -> str:
        r = self.seg_rates
        seg = self.profile["segment"]
        size = seg.value_counts()
        personas = self.profile["persona"].value_counts().index.tolist()
        from crm.vocabulary import LIFECYCLE_STAGES

        order = [f"{p}/{s}" for p in personas for s in LIFECYCLE_STAGES if f"{p}/{s}" in size.index]
        order += [s for s in size.index if s not in order]
        labels = [lab for lab in TRANSITION_LABELS if lab in set(r["transition"].astype(str))]
        base = self.overall["rate"]
        cells = {(rec["group"], str(rec["transition"])): rec for rec in r.to_dict("records")}
        rows = []
        for s in order:
            persona, _, stage = s.partition("/")
            row = [
                f'<td class="l">{_e(persona)}</td>',
                f'<td class="l">{_e(stage.replace("_", " "))}</td>',
                _int(size[s]),
            ]
            for lab in labels:
                h = cells.get((s, lab))
                if h is None:
                    row.append('<td class="few">–</td>')
                    continue
                small = f"<small>{_int(h['converted'])} / {_int(h['entered'])}</small>"
                if h["entered"] < MIN_N:
                    row.append(f'<td class="few">{_pct(h["rate"])}{small}</td>')
                else:
                    bg = _relative_bg(h["rate"], base.get(lab, np.nan))
                    row.append(f'<td style="{bg}">{_pct(h["rate"])}{small}</td>')
            rows.append(row)
        head = ['<th class="l">persona</th>', '<th class="l">lifecycle stage</th>', "leads"]
        table = _table([*head, *(_e(x) for x in labels)], rows)
        return (
            '<p class="lede">Segment = persona × lifecycle stage, assigned as of the report '
            "moment (<code>funnel_profile</code>). Cells: share of the segment's leads that "
            "entered the earlier stage and reached the next (converted / entered). Colour: "
            'against the step\'s rate over all leads, <span style="color:#1a9850">green '
            'above</span>, <span style="color:#d73027">red below</span> (full colour at '
            f"twice or half). Cells with fewer than {MIN_N} entrants are grey.</p>"
            + table
            + '<p class="note">The lifecycle stage is known only at the report moment and '
            "depends on the outcome: every stage after prospect starts with a purchase, so "
            "those segments reached customer by definition, and a prospect has not bought, so "
            "its opportunity → customer rate is 0 by definition. Compare the prospect rows "
            "for funnel differences between personas.</p>"
        )

    def persona_section(self) -> str:
        from matplotlib.colors import LogNorm

        if self.persona_rates.empty:
            return '<p class="note">No stage entries before the report moment.</p>'
        c = self.persona_counts
        order = self.profile["persona"].value_counts().index.tolist()
        c = c.reindex(order).fillna(0).astype(int)
        r = self.persona_rates
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
        fig = _figure(11, 0.55 * len(order) + 2.4)
        ax1, ax2 = fig.subplots(1, 2, width_ratios=[len(STAGES), max(len(labels), 1)])
        vals = c.to_numpy().astype(float)
        positive = np.where(vals > 0, vals, np.nan)
        vmax_c = float(np.nanmax(positive)) if (vals > 0).any() else 1.0
        vmin_c = float(np.nanmin(positive)) if (vals > 0).any() else 1.0
        norm = LogNorm(vmin=vmin_c, vmax=max(vmax_c, vmin_c * 2))
        ax1.imshow(positive, cmap="Blues", norm=norm, aspect="auto")
        for i in range(vals.shape[0]):
            for j in range(vals.shape[1]):
                dark = vals[i, j] > 0 and np.log1p(vals[i, j]) > 0.6 * np.log1p(vmax_c)
                ax1.text(
                    j,
                    i,
                    f"{int(vals[i, j]):,}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "#1d2733",
                )
        ax1.set_xticks(
            range(len(STAGES)), [STAGE_LABELS[s] for s in STAGES], rotation=30, ha="right"
        )
        ax1.set_yticks(range(len(order)), order)
        ax1.set_title("Leads that entered the stage", fontsize=11, loc="left")
        ax1.set_xlabel("funnel stage", fontsize=9)
        ax1.set_ylabel("persona", fontsize=9)
        rv = rate.to_numpy()
        nv = n.to_numpy()
        shown = np.where(nv >= MIN_N, rv, np.nan)
        ax2.imshow(100 * shown, cmap="Greens", vmin=0, vmax=100, aspect="auto")
        for i in range(rv.shape[0]):
            for j in range(rv.shape[1]):
                if np.isnan(rv[i, j]):
                    continue
                few = nv[i, j] < MIN_N
                dark = not few and rv[i, j] > 0.6
                ax2.text(
                    j,
                    i,
                    f"{100 * rv[i, j]:.1f}%",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else ("#9aa3ad" if few else "#1d2733"),
                )
        ax2.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax2.set_yticks(range(len(order)), [""] * len(order))
        ax2.set_title("Conversion to the next stage", fontsize=11, loc="left")
        ax2.set_xlabel("step", fontsize=9)
        for ax in (ax1, ax2):
            ax.tick_params(labelsize=9, length=0)
            for side in ax.spines.values():
                side.set_visible(False)
        table_rows = []
        for p in order:
            row = [f'<td class="l">{_e(p)}</td>']
            row += [_int(c.loc[p, s]) for s in STAGES]
            row += [_pct(rate.loc[p, lab]) for lab in labels]
            table_rows.append(row)
        table = _table(
            ["persona", *(_e(STAGE_LABELS[s]) for s in STAGES), *(_e(x) for x in labels)],
            table_rows,
        )
        return (
            '<p class="lede">Persona as of the report moment (role, firmographics and topics '
            "read, <code>assign_personas</code>). Left: leads that entered each funnel stage "
            "(log colour scale). Right: conversion from each stage to the next; cells with "
            f"fewer than {MIN_N} entrants are not coloured.</p>"
            + _img(fig, "Persona by funnel stage: counts and conversion")
            + table
        )

    def quadrant_section(self) -> str:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        q = self.quadrants
        if q is None or self.scored is None:
            why = f"<p>{_e(self.model_note)}</p>" if self.model_note else ""
            return (
                '<div class="callout"><b>Quadrants need a trained model.</b> The quadrant '
                "(fit × interest) of a lead comes from the fit and interest models. Train and "
                "promote one (<code>leadscore train --data DIR</code>, "
                "<code>leadscore promote</code>), then run "
                "<code>leadscore report --model champion</code>."
                f"{why}</div>"
            )
        total = int(q.to_numpy().sum())
        per_q = q.sum(axis=1)
        fig = _figure(10.5, 3.6)
        has_scores = {"fit_score", "interest_score"} <= set(self.scored.columns)
        if has_scores:
            ax_map, ax_bar = fig.subplots(1, 2, width_ratios=[1, 1.25])
            fit = self.scored["fit_score"].to_numpy(dtype=float)
            interest = self.scored["interest_score"].to_numpy(dtype=float)
            hb = ax_map.hexbin(
                fit,
                interest,
                gridsize=28,
                bins="log",
                cmap="Greys",
                mincnt=1,
                extent=(0, 100, 0, 100),
            )
            fig.colorbar(hb, ax=ax_map, label="leads (log)", shrink=0.85)
            ft = getattr(self.model, "fit_threshold", None)
            it = getattr(self.model, "interest_threshold", None)
            if ft is not None and it is not None:
                ax_map.axvline(ft, color="#c62828", lw=1)
                ax_map.axhline(it, color="#c62828", lw=1)
            ax_map.set_xlim(0, 100)
            ax_map.set_ylim(0, 100)
            ax_map.set_xlabel("fit score (0-100)", fontsize=9)
            ax_map.set_ylabel("interest score (0-100)", fontsize=9)
            ax_map.set_title("Fit × interest of every lead", fontsize=11, loc="left")
            if ft is not None and it is not None:
                corners = {
                    "qualified": (99, 99, "right", "top"),
                    "qualified_low_interest": (99, 1, "right", "bottom"),
                    "low_fit_interested": (1, 99, "left", "top"),
                    "drop": (1, 1, "left", "bottom"),
                }
                box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.85}
                for key, (cx, cy, ha, va) in corners.items():
                    colour = QUADRANT_LABELS[key][2]
                    name = key.replace("_", " ")
                    ax_map.text(cx, cy, name, ha=ha, va=va, fontsize=8, color=colour, bbox=box)
            _style_axes(ax_map)
        else:
            ax_bar = fig.add_subplot()
        keys = list(per_q.index)
        y = np.arange(len(keys))[::-1]
        colors = [QUADRANT_LABELS.get(k, (k, "", "#607d8b"))[2] for k in keys]
        ax_bar.barh(y, per_q.to_numpy(), color=colors)
        for yi, v in zip(y, per_q.to_numpy(), strict=True):
            ax_bar.text(v, yi, f"  {int(v):,} ({_pct(v / max(total, 1))})", va="center", fontsize=9)
        ax_bar.set_yticks(y, [QUADRANT_LABELS.get(k, (k,))[0] for k in keys])
        ax_bar.set_xlim(0, per_q.max() * 1.35 if total else 1)
        ax_bar.set_xlabel("leads", fontsize=9)
        ax_bar.xaxis.set_major_locator(MaxNLocator(4, integer=True))
        ax_bar.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax_bar.set_title("Quadrant mix", fontsize=11, loc="left")
        _style_axes(ax_bar)
        stages = list(q.columns)
        rows = []
        for k in keys:
            label, todo, colour = QUADRANT_LABELS.get(k, (k, "", "#607d8b"))
            rows.append(
                [
                    f'<td class="l"><span class="swatch" style="background:{colour}"></span>'
                    f"{_e(label)}</td>",
                    f'<td class="l">{_e(todo)}</td>',
                    f'<td data-quadrant="{_e(k)}" data-count="{int(per_q[k])}">'
                    f"{_int(per_q[k])}</td>",
                    _pct(per_q[k] / max(total, 1)),
                    *(
                        f"{_int(q.loc[k, s])}<small>{_pct(q.loc[k, s] / max(q[s].sum(), 1))}"
                        "</small>"
                        for s in stages
                    ),
                ]
            )
        table = _table(
            [
                "quadrant",
                '<th class="l">what to do</th>',
                "leads",
                "share",
                *(f"now {_e(STAGE_LABELS.get(s, s))}" for s in stages),
            ],
            rows,
        )
        model = _e(self.model_label or "the given scores")
        thresholds = ""
        ft = getattr(self.model, "fit_threshold", None)
        it = getattr(self.model, "interest_threshold", None)
        if ft is not None and it is not None:
            thresholds = (
                f" Cut-offs stored with the model: fit ≥ {ft:.1f}, interest ≥ {it:.1f} (red lines)."
            )
        return (
            f'<p class="lede">All {_int(total)} leads scored as of the report moment with '
            f"{model} (<code>scoring.batch.score_batch</code>, the path of "
            f"<code>leadscore score</code>).{thresholds} The columns on the right split each "
            "quadrant by the lead's current funnel stage (share of that stage's leads).</p>"
            + _img(fig, "Quadrant mix")
            + table
        )
