"""Was the score right? Realised labels from the outcomes the CRM reported, then
calibration (predicted against observed conversion per score decile and per month, each
with a Wilson interval) and the realised ROC AUC (with a Hanley-McNeil interval).

A scored lead counts as converted when an outcome says it reached the model's target stage
(or a later one) after the moment it was scored as of and within the model's horizon; as
not converted once the horizon has passed without one. Leads still inside their horizon
with no outcome yet are left out (not yet known), as are leads that had reached the target
before they were scored.

A decile raises an alert when its observed rate's interval, widened for the number of
deciles looked at (Bonferroni: 95 % over all of them), excludes the mean prediction, it
holds at least ``MIN_BIN`` leads and the gap is at least ``MIN_GAP`` (absolute): a few
leads converting at random never do. The AUC raises one when its interval lies wholly
below the AUC the model had on its holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from crm.vocabulary import STAGE_RANK

MIN_BIN = 30
MIN_GAP = 0.05
MIN_CLASS = 10  # positives and negatives needed for an AUC
DECILES = 10
LEVEL = 0.95


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return 0.0, 1.0
    z = norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def realised_labels(
    predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    target: str,
    horizon_days: int,
    now: pd.Timestamp,
) -> pd.DataFrame:
    """``predictions`` (``id``, ``lead_key``, ``moment``, ``p``) with ``converted`` (1/0)
    for the leads whose outcome is known, the others dropped."""
    horizon = pd.Timedelta(days=horizon_days)
    rank = STAGE_RANK[target]
    reached = outcomes[outcomes["stage"].map(STAGE_RANK).fillna(-1) >= rank]
    first = reached.groupby("lead_key")["at"].min() if len(reached) else pd.Series(dtype=object)
    out = predictions.copy()
    at = pd.to_datetime(out["lead_key"].map(first))
    moment = pd.to_datetime(out["moment"])
    before = at.notna() & (at <= moment)
    converted = at.notna() & (at > moment) & (at <= moment + horizon)
    known = converted | (moment + horizon <= now)
    out["converted"] = converted.astype(int)
    return out[known & ~before].reset_index(drop=True)


@dataclass(frozen=True)
class Bin:
    """A group of scored leads: how many, the mean prediction, the rate observed."""

    label: str
    rows: int
    predicted: float
    converted: int
    low: float
    high: float
    alarm_low: float
    alarm_high: float

    @property
    def observed(self) -> float:
        return self.converted / self.rows if self.rows else 0.0

    @property
    def flagged(self) -> bool:
        return (
            self.rows >= MIN_BIN
            and not (self.alarm_low <= self.predicted <= self.alarm_high)
            and abs(self.observed - self.predicted) >= MIN_GAP
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "bin": self.label,
            "rows": self.rows,
            "predicted": round(self.predicted, 4),
            "observed": round(self.observed, 4),
            "converted": self.converted,
            "ci_low": round(self.low, 4),
            "ci_high": round(self.high, 4),
            "gap": round(self.observed - self.predicted, 4),
            "flagged": bool(self.flagged),
        }


def _bins(p: np.ndarray, y: np.ndarray, groups: np.ndarray, labels: list[str]) -> list[Bin]:
    out = []
    alarm_level = 1 - (1 - LEVEL) / max(len(labels), 1)
    for g, label in enumerate(labels):
        m = groups == g
        n, k = int(m.sum()), int(y[m].sum())
        if n == 0:
            continue
        out.append(Bin(label, n, float(p[m].mean()), k, *wilson(k, n), *wilson(k, n, alarm_level)))
    return out


def by_decile(p: np.ndarray, y: np.ndarray) -> list[Bin]:
    """Leads in ten equal-count groups of their score (fewer where scores repeat)."""
    if len(p) == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, DECILES + 1)[1:-1]))
    groups = np.searchsorted(edges, p, side="right")
    bounds = [float(p.min()), *edges.tolist(), float(p.max())]
    labels = [f"{bounds[i]:.2f}-{bounds[i + 1]:.2f}" for i in range(len(bounds) - 1)]
    return _bins(p, y, groups, labels)


def by_month(p: np.ndarray, y: np.ndarray, moments: pd.Series) -> list[Bin]:
    months = pd.to_datetime(moments).dt.strftime("%Y-%m").to_numpy()
    labels = sorted(set(months))
    groups = np.array([labels.index(m) for m in months]) if len(months) else np.array([])
    return _bins(p, y, groups, labels)


@dataclass(frozen=True)
class Auc:
    value: float
    low: float
    high: float
    positives: int
    negatives: int
    holdout: float | None

    @property
    def flagged(self) -> bool:
        return self.holdout is not None and self.high < self.holdout

    def to_dict(self) -> dict[str, Any]:
        return {
            "roc_auc": round(self.value, 4),
            "ci_low": round(self.low, 4),
            "ci_high": round(self.high, 4),
            "positives": self.positives,
            "negatives": self.negatives,
            "holdout_roc_auc": None if self.holdout is None else round(self.holdout, 4),
            "flagged": bool(self.flagged),
        }


def realised_auc(p: np.ndarray, y: np.ndarray, holdout: float | None) -> Auc | None:
    """ROC AUC with the Hanley-McNeil 95 % interval; None with fewer than ``MIN_CLASS``
    positives or negatives."""
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    if n1 < MIN_CLASS or n0 < MIN_CLASS:
        return None
    a = float(roc_auc_score(y, p))
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
    half = norm.ppf(0.5 + LEVEL / 2) * float(np.sqrt(max(var, 0.0)))
    return Auc(a, max(a - half, 0.0), min(a + half, 1.0), n1, n0, holdout)


__all__ = [
    "Auc",
    "Bin",
    "by_decile",
    "by_month",
    "realised_auc",
    "realised_labels",
    "wilson",
]
