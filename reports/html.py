"""The small pieces of HTML every report section writes: escaped text, numbers and
moments as the page shows them, tables, and the colour of a rate against a base rate."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

MIN_N = 20  # cells with fewer entrants are shown but not coloured


def esc(x: Any) -> str:
    """``x`` as text, escaped for HTML (quotes included: safe in attribute values)."""
    return html.escape(str(x), quote=True)


def pct(x: Any, digits: int = 1) -> str:
    """A share as a percentage; a dash where there is none."""
    return "–" if x is None or pd.isna(x) else f"{100 * float(x):.{digits}f}%"


def integer(x: Any) -> str:
    """A count with thousands separators."""
    return f"{int(x):,}"


def when(ts: Any) -> str:
    """A moment to the minute; a dash where there is none."""
    return "–" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M")


def relative_bg(rate: float, base: float) -> str:
    """Background for a rate against a base rate: green above, red below; full colour at
    twice or half the base, white when equal."""
    if pd.isna(rate) or pd.isna(base) or base <= 0:
        return ""
    x = float(np.clip(np.log2(max(rate, 1e-9) / base), -1.0, 1.0))
    rgb: Sequence[int] = (26, 152, 80) if x > 0 else (215, 48, 39)
    r, g, b = (round(255 - (255 - c) * 0.45 * abs(x)) for c in rgb)
    return f"background:rgb({r},{g},{b})"


def table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A scrollable table; a header or cell that is already a ``<th``/``<td`` element (with
    its own attributes) is used as it is, any other text is wrapped."""
    head = "".join(h if h.startswith("<th") else f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )
