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
one second after the last recorded timestamp, as ``leadscore score`` does). The conversion
tables are ``reports.conversion``'s; each section is drawn by its own module
(``reports.overview``, ``.monthly``, ``.persona_heatmap``, ``.quadrant_mix``) and
``reports.page`` assembles the page.

Charts are PNGs rendered with matplotlib's Agg canvas and embedded as base64; styles are
inline. The page loads nothing from a server or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crm.contract import CrmData, data_end
from crm.vocabulary import STAGES
from features.content import funnel_profile
from reports.conversion import (
    TRANSITION_LABELS,
    conversion_rates,
    funnel_counts,
    lead_transitions,
    monthly_conversion,
    stage_entries,
)
from reports.page import FunnelPage
from reports.quadrant_mix import quadrant_mix


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
    moment = pd.Timestamp(as_of) if as_of is not None else data_end(data) + pd.Timedelta(seconds=1)
    if personas is None and model is not None:
        personas = getattr(model, "personas", None)
    profile = funnel_profile(data.leads, data.events, data.stage_history, moment, personas)
    profile.index = profile.index.astype(str)
    trans = lead_transitions(data.stage_history, moment)
    overall = conversion_rates(trans).set_index("transition")
    monthly = monthly_conversion(trans, moment)
    seg_rates = conversion_rates(trans, profile["segment"])
    persona_rates = conversion_rates(trans, profile["persona"])
    wide = stage_entries(data.stage_history, moment)
    persona_counts = (
        wide.notna().join(profile["persona"], how="inner").groupby("persona").sum().astype(int)
    )
    funnel = funnel_table(funnel_counts(data.stage_history, moment), overall, profile)
    if scored is None and model is not None:
        from scoring.batch import score_batch  # the model's runtime, only when scoring

        scored = score_batch(
            model, data.leads, data.accounts, data.events, moment, stage_history=data.stage_history
        )
    quadrants = None if scored is None else quadrant_mix(scored, profile["funnel_stage"])
    page = FunnelPage(
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


def funnel_table(counts: pd.Series, overall: pd.DataFrame, profile: pd.DataFrame) -> pd.DataFrame:
    """One row per stage: leads that entered it (``funnel_counts``), their share of the
    first stage, the conversion and median days from the previous stage (``overall``:
    ``conversion_rates`` indexed by transition) and the leads currently at the stage."""
    current = profile["funnel_stage"].value_counts().reindex(list(STAGES), fill_value=0)
    funnel = pd.DataFrame({"stage": list(STAGES), "leads": counts.to_numpy()})
    funnel["share_of_first"] = funnel["leads"] / max(int(funnel["leads"].iloc[0]), 1)
    prev = [None, *(overall.reindex([lab])["rate"].iloc[0] for lab in TRANSITION_LABELS)]
    funnel["rate_from_previous"] = prev
    days = [None, *(overall.reindex([lab])["median_days"].iloc[0] for lab in TRANSITION_LABELS)]
    funnel["median_days_from_previous"] = days
    funnel["current"] = current.to_numpy()
    return funnel


def write_report(out: str | Path, data: CrmData, **kwargs: Any) -> Report:
    """``build_report`` and write the page to ``out`` (UTF-8); returns the report."""
    report = build_report(data, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    return report
