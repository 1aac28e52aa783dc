"""The funnel report's page: the sections in order, the navigation, the header and
footer, and the stylesheet, assembled into one self-contained HTML document (inline
styles, charts as embedded images, nothing loaded from a network)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from crm.contract import CrmData
from reports.html import esc, when
from reports.monthly import monthly_section
from reports.overview import data_section, funnel_section, kpis, segment_section
from reports.persona_heatmap import persona_section
from reports.quadrant_mix import no_model_callout, quadrant_section

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
class FunnelPage:
    """Everything the page shows, computed by ``reports.funnel.build_report``."""

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

    def sections(self) -> list[tuple[str, str, Callable[[], str]]]:
        """(anchor, title, renderer) of each section, in page order."""
        return [
            ("data", "Data window", lambda: data_section(self.data, self.moment, self.data_dir)),
            ("funnel", "Funnel", lambda: funnel_section(self.funnel)),
            ("monthly", "Conversion by month", lambda: monthly_section(self.monthly)),
            (
                "segments",
                "Conversion by segment",
                lambda: segment_section(self.profile, self.seg_rates, self.overall),
            ),
            (
                "personas",
                "Persona × funnel stage",
                lambda: persona_section(self.profile, self.persona_rates, self.persona_counts),
            ),
            ("quadrants", "Quadrant mix", self.quadrants_html),
        ]

    def quadrants_html(self) -> str:
        if self.quadrants is None or self.scored is None:
            return no_model_callout(self.model_note)
        return quadrant_section(self.quadrants, self.scored, self.model, self.model_label)

    def render(self) -> str:
        """The whole HTML document."""
        sections = self.sections()
        nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
        body = "".join(
            f'<section id="{sid}"><h2>{esc(title)}</h2>{fn()}</section>'
            for sid, title, fn in sections
        )
        folder = str(Path(self.data_dir).resolve()) if self.data_dir is not None else "-"
        generated = self.generated_at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Lead funnel report – {esc(Path(folder).name)}</title>"
            f"<style>{CSS}</style></head><body><main>"
            "<header><h1>Lead funnel report</h1>"
            f"<p>Data <code>{esc(folder)}</code> as of {esc(when(self.moment))} "
            "(only stage entries and events before this moment count)</p></header>"
            f"{kpis(self.data, self.funnel)}<nav>{nav}</nav>{body}</main>"
            f"<footer>Generated {esc(generated)} by <code>leadscore report</code> from the data "
            f"folder <code>{esc(folder)}</code>, as of {esc(when(self.moment))}. "
            "Self-contained page: charts are embedded images, nothing is loaded from a "
            "network.</footer></body></html>\n"
        )
