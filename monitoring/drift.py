"""Drift of the served traffic against the reference statistics, period by period.

The population stability index (PSI) of each feature and each score in each day or week,
over the reference's bins (numbers) or categories (plus an "unknown" bucket for values
never seen in training, and a "missing" bucket either way). The usual reading: below
``PSI_MODERATE`` (0.1) stable, up to ``PSI_SHIFT`` (0.25) a moderate move, above it a
shift. A shift raises an alert only when the period is big enough to say so:

* at least ``MIN_ROWS`` (50) leads in the period, and
* a PSI beyond what chance reaches 1 % of the time between samples of those sizes from one
  distribution (``psi_noise``: PSI is a symmetrised chi-square statistic, so
  ``PSI / (1/n_ref + 1/n_cur)`` is about chi-square with bins-1 degrees of freedom; this
  is the chi-square test of the categories' counts, on the PSI's scale).

A day with 5 leads is shown, never alarmed about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

PSI_MODERATE = 0.1
PSI_SHIFT = 0.25
PSI_EPSILON = 1e-4
MIN_ROWS = 50
#: a PSI must also exceed what chance reaches this rarely (see ``psi_noise``)
NOISE_P = 0.01
#: an unknown-category share above this in a period (of MIN_ROWS or more) is an alert
UNKNOWN_ALERT = 0.05


def period_labels(moments: pd.Series, period: str) -> pd.Series:
    """Each moment's day (``2026-11-30``) or ISO week (``2026-W48``)."""
    t = pd.to_datetime(moments)
    if period == "day":
        return t.dt.strftime("%Y-%m-%d")
    if period == "week":
        iso = t.dt.isocalendar()
        return iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)
    raise ValueError(f"period must be day or week, not {period!r}")


def served_shares(ref: dict[str, Any], values: pd.Series) -> tuple[np.ndarray, np.ndarray, float]:
    """(reference shares, served shares, unknown share) over the same buckets: the
    reference's bins or categories, then "unknown" (categories only), then "missing"."""
    n = len(values)
    if ref["kind"] == "numeric":
        x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        ok = np.isfinite(x)
        counts = np.bincount(
            np.searchsorted(np.asarray(ref["edges"]), x[ok], side="left"),
            minlength=len(ref["shares"]),
        )
        cur = np.append(counts, n - ok.sum()) / max(n, 1)
        return np.append(ref["shares"], ref["missing"]), cur, 0.0
    cats = list(ref["shares"])
    text = values.astype(object).map(lambda v: None if v is None or v != v else str(v))
    missing = text.isna().to_numpy()
    known = pd.Index(cats).get_indexer(text[~missing])
    counts = np.bincount(known[known >= 0], minlength=len(cats))
    unknown = int((known < 0).sum())
    cur = np.concatenate([counts, [unknown, missing.sum()]]) / max(n, 1)
    ref_shares = np.concatenate(
        [list(ref["shares"].values()), [ref.get("other", 0.0), ref["missing"]]]
    )
    return ref_shares, cur, unknown / max(n, 1)


def share_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same buckets (proportions
    floored at ``PSI_EPSILON``); the one PSI formula, also behind ``training.drift.psi``."""
    r = np.maximum(np.asarray(reference, dtype=float), PSI_EPSILON)
    c = np.maximum(np.asarray(current, dtype=float), PSI_EPSILON)
    return float(max(np.sum((c - r) * np.log(c / r)), 0.0))


def psi_noise(n_reference: int, n_current: int, n_bins: int) -> float:
    """The PSI two samples of these sizes from one distribution exceed 1 % of the time
    (here and in training's holdout drift check, ``training.drift``).

    PSI is a symmetrised chi-square: ``PSI / (1/n_ref + 1/n_cur)`` follows roughly a
    chi-square with ``n_bins - 1`` degrees of freedom. On 10 bins that is 0.02 for slices of
    thousands of rows but 0.55 for a 40-row slice, where a "strong shift" is noise."""
    if n_reference == 0 or n_current == 0 or n_bins < 2:
        return 0.0
    return float(chi2.ppf(1 - NOISE_P, n_bins - 1) * (1 / n_reference + 1 / n_current))


@dataclass(frozen=True)
class Drift:
    """One feature (or score) in one period."""

    period: str
    name: str
    kind: str  # "feature" or "score"
    rows: int
    psi: float
    noise: float
    unknown_share: float
    missing_share: float
    reference_missing: float

    @property
    def level(self) -> str:
        if self.psi > PSI_SHIFT:
            return "shift"
        return "moderate" if self.psi > PSI_MODERATE else "stable"

    @property
    def enough_data(self) -> bool:
        return self.rows >= MIN_ROWS

    @property
    def flagged(self) -> bool:
        """A shift, in a period big enough, beyond chance."""
        return self.enough_data and self.psi > PSI_SHIFT and self.psi > self.noise

    @property
    def unknown_flagged(self) -> bool:
        return self.enough_data and self.unknown_share > UNKNOWN_ALERT

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "name": self.name,
            "kind": self.kind,
            "rows": self.rows,
            "psi": round(self.psi, 4),
            "psi_by_chance": round(self.noise, 4),
            "level": self.level,
            "flagged": bool(self.flagged),
            "unknown_share": round(self.unknown_share, 4),
            "missing_share": round(self.missing_share, 4),
            "reference_missing_share": round(self.reference_missing, 4),
        }


def drift_table(
    frame: pd.DataFrame, periods: pd.Series, refs: dict[str, dict[str, Any]], n_ref: int, kind: str
) -> list[Drift]:
    """Every column of ``frame`` that has a reference, in every period (``periods``
    aligned with ``frame``), as :class:`Drift` rows in period order."""
    out = []
    for period, idx in frame.groupby(periods.to_numpy(), sort=True).groups.items():
        rows = frame.loc[idx]
        for name, ref in refs.items():
            if name not in rows.columns:
                continue
            r, c, unknown = served_shares(ref, rows[name])
            out.append(
                Drift(
                    period=str(period),
                    name=name,
                    kind=kind,
                    rows=len(rows),
                    psi=share_psi(r, c),
                    noise=psi_noise(n_ref, len(rows), int(np.count_nonzero(r + c))),
                    unknown_share=unknown,
                    missing_share=float(c[-1]),
                    reference_missing=float(ref["missing"]),
                )
            )
    return out


__all__ = [
    "MIN_ROWS",
    "PSI_MODERATE",
    "PSI_SHIFT",
    "UNKNOWN_ALERT",
    "Drift",
    "drift_table",
    "period_labels",
    "share_psi",
    "psi_noise",
    "served_shares",
]
