"""Leakage check at training time.

A column filled in by sales during or after contact (X Education's Tags, Olist's deal
fields) predicts the outcome because it *records* it. Two symptoms give it away:

- the feature alone separates the classes almost perfectly: its single-feature ROC AUC on
  a later time slice is at least ``auc_threshold`` (0.95), over all leads or over the
  leads where the value is filled in;
- its missingness differs sharply between the classes: the value is filled in for one
  outcome and not for the other (a gap of at least ``missing_gap``, 50 points), or it is
  filled in clearly more often for one class (``soft_missing_gap``, 25 points) AND, where
  filled, it rates the lead (single-feature AUC >= ``filled_auc``, 0.75): the signature of
  a field sales fills in for the leads it works. Checked on raw record fields only, not on
  engineered event features whose "no such event yet" is missing by design.

Training stops on such a finding unless the user allows the column by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

N_BINS = 20


@dataclass(frozen=True)
class LeakageFinding:
    feature: str
    source: str
    reason: str
    single_feature_auc: float
    missing_rate_positive: float
    missing_rate_negative: float

    def __str__(self) -> str:
        name = self.feature if self.source == self.feature else f"{self.feature} ({self.source!r})"
        return f"{name}: {self.reason}"


class LeakageError(ValueError):
    """Training stopped: features that look like they record the outcome."""

    def __init__(self, findings: list[LeakageFinding]) -> None:
        self.findings = findings
        names = " ".join(f"--allow-leaky {f.feature}" for f in findings)
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(
            f"{len(findings)} feature(s) look like they leak the outcome:\n{lines}\n"
            "Leave them out of the mapping (declare them under `leaky:`), or, if you are "
            f"sure, allow them by name: {names}"
        )


def _bins(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Quantile-bin keys for a numeric column; -1 = missing."""
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    out = np.searchsorted(edges, arr, side="right").astype(np.int64)
    out[np.isnan(arr)] = -1
    return out


def single_feature_auc(
    x_fit: pd.Series, y_fit: np.ndarray, x_later: pd.Series, y_later: np.ndarray
) -> float:
    """ROC AUC on the later slice of a per-bucket target rate learned on the fit slice."""
    numeric = pd.api.types.is_numeric_dtype(x_fit.dtype) and not isinstance(
        x_fit.dtype, pd.CategoricalDtype
    )
    if numeric:
        finite = x_fit.to_numpy(dtype=float, na_value=np.nan)
        finite = finite[~np.isnan(finite)]
        inner = np.linspace(0, 1, N_BINS + 1)[1:-1]
        edges = np.unique(np.quantile(finite, inner)) if len(finite) else np.array([])
        keys_fit, keys_later = _bins(x_fit, edges), _bins(x_later, edges)
    else:
        text_fit = x_fit.astype("str").where(x_fit.notna(), None)
        text_later = x_later.astype("str").where(x_later.notna(), None)
        cats = pd.Index(pd.unique(text_fit.dropna()))
        keys_fit = cats.get_indexer(text_fit).astype(np.int64)
        keys_later = cats.get_indexer(text_later).astype(np.int64)
        keys_fit[text_fit.isna().to_numpy()] = -2
        keys_later[text_later.isna().to_numpy()] = -2
    prior = float(y_fit.mean())
    rates = pd.DataFrame({"k": keys_fit, "y": y_fit}).groupby("k")["y"].agg(["sum", "count"])
    smoothed = (rates["sum"] + 5 * prior) / (rates["count"] + 5)
    score = pd.Series(keys_later).map(smoothed).fillna(prior).to_numpy()
    if y_later.min() == y_later.max():
        return 0.5
    auc = float(roc_auc_score(y_later, score))
    return max(auc, 1.0 - auc)


def check_leakage(
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_later: pd.DataFrame,
    y_later: np.ndarray,
    record_columns: Iterable[str],
    sources: Mapping[str, str] | None = None,
    auc_threshold: float = 0.95,
    missing_gap: float = 0.5,
    soft_missing_gap: float = 0.25,
    filled_auc: float = 0.75,
) -> list[LeakageFinding]:
    """Every feature that looks like it records the outcome (see the module docstring)."""
    sources = sources or {}
    record = set(record_columns)
    pos, neg = y_fit == 1, y_fit == 0
    findings = []
    for col in X_fit.columns:
        x_fit, x_later = X_fit[col], X_later[col]
        auc = single_feature_auc(x_fit, y_fit, x_later, y_later)
        filled_fit, filled_later = x_fit.notna().to_numpy(), x_later.notna().to_numpy()
        auc_filled = 0.5
        if filled_fit.sum() >= 30 and filled_later.sum() >= 30 and not filled_later.all():
            auc_filled = single_feature_auc(
                x_fit[filled_fit], y_fit[filled_fit], x_later[filled_later], y_later[filled_later]
            )
        miss = ~filled_fit
        m_pos = float(miss[pos].mean()) if pos.any() else 0.0
        m_neg = float(miss[neg].mean()) if neg.any() else 0.0
        gap = abs(m_pos - m_neg)
        reasons = []
        if auc >= auc_threshold:
            reasons.append(f"alone it reaches ROC AUC {auc:.3f} on a later time slice")
        elif auc_filled >= auc_threshold:
            reasons.append(f"where filled in, it alone reaches ROC AUC {auc_filled:.3f}")
        if col in record and gap >= missing_gap:
            reasons.append(f"missing for {m_pos:.0%} of converted vs {m_neg:.0%} of other leads")
        elif col in record and gap >= soft_missing_gap and auc_filled >= filled_auc:
            reasons.append(
                f"missing for {m_pos:.0%} of converted vs {m_neg:.0%} of other leads, and "
                f"where filled in it rates the lead (ROC AUC {auc_filled:.2f})"
            )
        if reasons:
            findings.append(
                LeakageFinding(col, sources.get(col, col), "; ".join(reasons), auc, m_pos, m_neg)
            )
    return findings


def blocking(findings: list[LeakageFinding], allowed: Iterable[str]) -> list[LeakageFinding]:
    """The findings not allowed by feature name or by the export's column name."""
    ok = {a.strip().lower() for a in allowed}
    return [f for f in findings if f.feature.lower() not in ok and f.source.lower() not in ok]
