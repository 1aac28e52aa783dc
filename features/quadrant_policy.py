"""How the fit x interest quadrant cut-offs are chosen (DOMAIN.md: four quadrants).

``QuadrantPolicy`` is a frozen configuration read from ``quadrant_policy.yaml``
(``load_quadrant_policy``). At training time ``fit_thresholds`` turns it into two numbers on
the 0-100 score scale, which are stored with the model version:

- ``capacity`` (default): the top quadrant (fit >= t_fit and interest >= t_int) should hold
  about ``capacity_per_week`` rows per week of the training period, weeks = span of the
  snapshot times / 7 days (at least 1). A training set holds one snapshot per lead (its
  entry into the stage before the target), so rows per week = leads handed to sales per
  week. Both cut-offs sit at the *same quantile* q of their own axis, so neither axis
  dominates; the top-quadrant count is non-increasing in q, and a bisection over the
  order-statistic index finds the q whose count is closest to the target. When the target
  exceeds the number of rows, everybody is in the top quadrant.
- ``base_rate``: each axis at its base rate in percent; with calibrated scores the mean
  score is that base rate, or pass ``base_rate`` (a share, 0-1) from the labels.
- ``fixed``: ``fit_threshold`` and ``interest_threshold`` from the file.

Negative signals (unsubscribes, bounces, long silence) are inputs of the interest model and
so already lower ``interest_score``; the policy only cuts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm.vocabulary import QUADRANTS
from features.config import read_yaml_config

DEFAULT_QUADRANT_POLICY_PATH = Path(__file__).with_name("quadrant_policy.yaml")
_WEEK = pd.Timedelta(days=7)


class QuadrantPolicy(BaseModel):
    """How the fit and interest cut-offs are chosen (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["capacity", "base_rate", "fixed"] = "capacity"
    capacity_per_week: int = Field(10, ge=1)
    fit_threshold: float | None = Field(None, ge=0, le=100)
    interest_threshold: float | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _fixed_needs_both(self) -> QuadrantPolicy:
        if self.method == "fixed":
            missing = [
                k for k in ("fit_threshold", "interest_threshold") if getattr(self, k) is None
            ]
            if missing:
                raise ValueError(f"{' and '.join(missing)} required when method is 'fixed'")
        return self

    def fit_thresholds(
        self,
        fit_scores: np.ndarray | pd.Series,
        interest_scores: np.ndarray | pd.Series,
        snapshot_times: np.ndarray | pd.Series | None = None,
        base_rate: float | None = None,
    ) -> tuple[float, float]:
        """(fit_threshold, interest_threshold) on the training rows' scores (0-100)."""
        if self.method == "fixed":
            return float(self.fit_threshold), float(self.interest_threshold)  # type: ignore[arg-type]
        fit = np.asarray(fit_scores, dtype=float)
        interest = np.asarray(interest_scores, dtype=float)
        if fit.shape != interest.shape or fit.ndim != 1:
            raise ValueError("fit_scores and interest_scores must be 1-d and of equal length")
        ok = np.isfinite(fit) & np.isfinite(interest)
        if not ok.any():
            raise ValueError("no finite fit/interest scores to choose thresholds from")
        fit, interest = fit[ok], interest[ok]
        if self.method == "base_rate":
            if base_rate is not None:
                return 100.0 * base_rate, 100.0 * base_rate
            return float(fit.mean()), float(interest.mean())
        if snapshot_times is None:
            raise ValueError("method 'capacity' needs snapshot_times to count weeks")
        times = pd.to_datetime(pd.Series(np.asarray(snapshot_times)))
        span = times.max() - times.min()
        weeks = max(span / _WEEK, 1.0) if pd.notna(span) else 1.0
        return capacity_thresholds(fit, interest, self.capacity_per_week * weeks)


def capacity_thresholds(
    fit: np.ndarray, interest: np.ndarray, target: float
) -> tuple[float, float]:
    """Cut-offs at the same quantile of both axes, with the top-quadrant count closest to
    ``target`` (bisection over the order-statistic index; the count falls as it rises)."""
    n = len(fit)
    fs, is_ = np.sort(fit), np.sort(interest)
    if target >= n:
        return float(fs[0]), float(is_[0])

    def count(k: int) -> int:
        return int(np.count_nonzero((fit >= fs[k]) & (interest >= is_[k])))

    lo, hi = 0, n - 1  # count(lo) > target >= ... ; find smallest k with count(k) <= target
    if count(hi) > target:
        return float(fs[hi]), float(is_[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(mid) <= target:
            hi = mid
        else:
            lo = mid
    k = hi if abs(count(hi) - target) <= abs(count(lo) - target) else lo
    return float(fs[k]), float(is_[k])


def assign_quadrants(
    fit_scores: np.ndarray | pd.Series,
    interest_scores: np.ndarray | pd.Series,
    fit_threshold: float,
    interest_threshold: float,
) -> np.ndarray:
    """Quadrant name per lead: qualified, qualified_low_interest, low_fit_interested, drop."""
    hi_fit = np.asarray(fit_scores, dtype=float) >= fit_threshold
    hi_int = np.asarray(interest_scores, dtype=float) >= interest_threshold
    code = np.where(hi_fit, np.where(hi_int, 0, 1), np.where(hi_int, 2, 3))
    return np.array(QUADRANTS, dtype=object)[code]


def load_quadrant_policy(path: str | Path | None = None) -> QuadrantPolicy:
    """The policy from a YAML file; ``None`` = the shipped ``quadrant_policy.yaml``."""
    p = Path(path) if path is not None else DEFAULT_QUADRANT_POLICY_PATH
    return read_yaml_config(QuadrantPolicy, p)
