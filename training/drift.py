"""How much the time slices of a training set differ: rows, positive rate, and the features
whose distribution moves most between the fitted slice and the later ones.

A model learns the world of its fit slice. When the later slices (validation, holdout)
look different, its holdout figures and its answers in production can disappoint for
reasons no hyperparameter fixes; ``train`` prints this report and logs it so a user sees
the move before blaming the model. Two measures, each with a stated threshold:

- the positive rate per slice: a warning when the rate of one slice is at least
  ``RATE_RATIO_WARN`` (1.5x) that of another AND the gap is beyond chance (a two-sided
  two-proportion z-test at ``RATE_Z``, 2.58, i.e. 1 %), so a 40-row holdout with two more
  positives than expected says nothing;
- the population stability index (PSI) of every feature, each later slice against the
  reference (the fit slice). The usual reading: below 0.1 stable, 0.1 to 0.25 a moderate
  move, above 0.25 (``PSI_THRESHOLD``) a strong shift, which is a warning when it is
  also beyond what chance gives at those slice sizes (``psi_noise``: on a 40-row slice
  a PSI of 0.5 is noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.drift import psi_noise, share_psi
from reports.charts import figure, save_png

#: PSI above this is a strong shift (the conventional cut; 0.1 to 0.25 is "moderate")
PSI_THRESHOLD = 0.25
#: positive-rate ratio between two slices from which the move is a warning
RATE_RATIO_WARN = 1.5
#: ... when the two-proportion z statistic is at least this (two-sided 1 %)
RATE_Z = 2.58
#: features named one by one in the warnings; the rest are counted
MAX_NAMED = 5


def _is_numeric(s: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(s.dtype)
        and not pd.api.types.is_bool_dtype(s.dtype)
        and not isinstance(s.dtype, pd.CategoricalDtype)
    )


def _as_float(s: pd.Series) -> np.ndarray:
    """Numbers (times as seconds) with missing values as NaN."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        seconds = (s - pd.Timestamp("1970-01-01", tz=getattr(s.dt, "tz", None))).dt.total_seconds()
        return seconds.to_numpy(dtype=float, na_value=np.nan)
    return s.to_numpy(dtype=float, na_value=np.nan)


def _bin_keys(reference: pd.Series, current: pd.Series, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer bin keys for both sides, learned from the reference; -1 = missing."""
    if _is_numeric(reference) or pd.api.types.is_datetime64_any_dtype(reference.dtype):
        ref, cur = _as_float(reference), _as_float(current)
        finite = ref[np.isfinite(ref)]
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        edges = np.unique(np.quantile(finite, inner)) if len(finite) else np.array([])
        keys = []
        for arr in (ref, cur):
            k = np.searchsorted(edges, arr, side="right").astype(np.int64)
            k[np.isnan(arr)] = -1
            keys.append(k)
        return keys[0], keys[1]
    # categories, text and booleans: one bin per category seen in the reference, one
    # shared bin for categories it never saw, one for missing
    text_ref = reference.astype("str").where(reference.notna(), None)
    text_cur = current.astype("str").where(current.notna(), None)
    cats = pd.Index(pd.unique(text_ref.dropna()))
    keys = []
    for text in (text_ref, text_cur):
        k = cats.get_indexer(text).astype(np.int64)
        k[k < 0] = len(cats)  # unseen
        k[text.isna().to_numpy()] = -1
        keys.append(k)
    return keys[0], keys[1]


def _psi_bins(reference: pd.Series, current: pd.Series, bins: int) -> tuple[float, int]:
    """The PSI and the number of bins it was summed over."""
    if len(reference) == 0 or len(current) == 0:
        return 0.0, 1
    k_ref, k_cur = _bin_keys(reference, current, bins)
    keys = np.union1d(k_ref, k_cur)
    p_ref = pd.Series(k_ref).value_counts(normalize=True).reindex(keys, fill_value=0.0)
    p_cur = pd.Series(k_cur).value_counts(normalize=True).reindex(keys, fill_value=0.0)
    return share_psi(p_ref.to_numpy(), p_cur.to_numpy()), len(keys)


def psi(reference: pd.Series, current: pd.Series, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Numbers: bins at the reference's quantiles (deduplicated, so a count that is mostly
    zero gets a few wide bins rather than ten empty ones); categories, text and booleans:
    one bin per category seen in the reference plus one for unseen ones. Missing values are
    a bin of their own either way: a field that stops being filled in is a shift too.
    Proportions are floored at ``PSI_EPSILON``. A column with one value (or none) on both
    sides gives 0; an empty side gives 0 (nothing to compare)."""
    return _psi_bins(reference, current, bins)[0]


@dataclass(frozen=True)
class SliceSummary:
    """One time slice: its size, positive rate and (when known) its date range."""

    name: str
    rows: int
    positives: int
    date_from: str | None = None
    date_to: str | None = None

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "positives": self.positives,
            "positive_rate": self.positive_rate,
            "date_from": self.date_from,
            "date_to": self.date_to,
        }


@dataclass(frozen=True)
class FeatureDrift:
    """A feature's PSI in every later slice against the reference slice, and the PSI that
    chance alone reaches 1 % of the time at those slice sizes (``psi_noise``)."""

    feature: str
    psi: dict[str, float]
    noise: dict[str, float]

    @property
    def max_psi(self) -> float:
        return max(self.psi.values(), default=0.0)

    @property
    def worst_slice(self) -> str | None:
        return max(self.psi, key=self.psi.__getitem__) if self.psi else None

    def shifts(self, threshold: float) -> bool:
        """Above the threshold, and beyond chance, in some later slice."""
        return any(v > threshold and v > self.noise.get(n, 0.0) for n, v in self.psi.items())


@dataclass(frozen=True)
class DriftReport:
    """Slices in time order, features by their largest PSI (all of them), and warnings in
    plain words. ``top`` is how many features ``lines`` and the plot show."""

    reference: str
    slices: list[SliceSummary]
    features: list[FeatureDrift]
    warnings: list[str]
    threshold: float = PSI_THRESHOLD
    rate_ratio_threshold: float = RATE_RATIO_WARN
    top: int = 8

    @property
    def later(self) -> list[str]:
        """The slices compared against the reference."""
        return [s.name for s in self.slices if s.name != self.reference and s.rows]

    def shifted(self) -> list[FeatureDrift]:
        """Features whose PSI in some later slice is above the threshold (and chance)."""
        return [f for f in self.features if f.shifts(self.threshold)]

    def table(self) -> pd.DataFrame:
        """One row per slice: rows, positives, positive rate and dates."""
        frame = pd.DataFrame([s.to_dict() for s in self.slices])
        return frame.set_index("name")

    def features_table(self) -> pd.DataFrame:
        """One row per feature, largest shift first: PSI per later slice and the largest."""
        cols = [f"psi_{name}" for name in self.later]
        rows = {f.feature: [f.psi.get(name, 0.0) for name in self.later] for f in self.features}
        frame = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
        frame["max_psi"] = frame.max(axis=1) if cols else 0.0
        frame.index.name = "feature"
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "psi_threshold": self.threshold,
            "rate_ratio_threshold": self.rate_ratio_threshold,
            "slices": [s.to_dict() for s in self.slices],
            "features": [
                {
                    "feature": f.feature,
                    "max_psi": f.max_psi,
                    "shifts": f.shifts(self.threshold),
                    "psi": dict(f.psi),
                    "psi_by_chance": dict(f.noise),
                }
                for f in self.features
            ],
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        """A console printout: the slices, then the ``top`` features that move most."""
        out = ["slice          rows  positive rate  entered"]
        for s in self.slices:
            rate = "-" if s.positive_rate is None else f"{s.positive_rate:.1%}"
            dates = f"{s.date_from} to {s.date_to}" if s.date_from else ""
            out.append(f"{s.name:<11}{s.rows:>8,}  {rate:>13}  {dates}".rstrip())
        if not self.features:
            return out
        shown = self.features[: self.top]
        width = max(len(f.feature) for f in shown)
        out.append(
            f"features that move most (PSI against {self.reference}; above "
            f"{self.threshold:g} = strong shift):"
        )
        for f in shown:
            figures = "  ".join(f"{name} {f.psi.get(name, 0.0):.3f}" for name in self.later)
            flag = "  <- shifts" if f.shifts(self.threshold) else ""
            out.append(f"  {f.feature:<{width}}  {figures}{flag}")
        return out


def _slice_summary(name: str, idx: np.ndarray, y: np.ndarray, as_of: pd.Series | None):
    dates: tuple[str | None, str | None] = (None, None)
    if as_of is not None and len(idx):
        times = pd.to_datetime(as_of.iloc[idx])
        if times.notna().any():
            dates = (str(times.min().date()), str(times.max().date()))
    return SliceSummary(name, int(len(idx)), int(np.sum(y[idx])), *dates)


def _rate_warning(slices: list[SliceSummary], ratio_warn: float) -> str | None:
    """The largest significant positive-rate move between two slices, in words."""
    best: tuple[float, SliceSummary, SliceSummary] | None = None
    for i, a in enumerate(slices):
        for b in slices[i + 1 :]:
            if not a.rows or not b.rows:
                continue
            ra, rb = a.positives / a.rows, b.positives / b.rows
            pooled = (a.positives + b.positives) / (a.rows + b.rows)
            se = np.sqrt(pooled * (1 - pooled) * (1 / a.rows + 1 / b.rows))
            if se == 0 or abs(ra - rb) / se < RATE_Z:
                continue
            ratio = max(ra, rb) / min(ra, rb) if min(ra, rb) > 0 else np.inf
            if ratio >= ratio_warn and (best is None or ratio > best[0]):
                best = (ratio, a, b)
    if best is None:
        return None
    ratio, a, b = best
    ra, rb = a.positive_rate or 0.0, b.positive_rate or 0.0
    times = "no positives at all on one side" if np.isinf(ratio) else f"{ratio:.1f}x"
    direction = "low" if rb > ra else "high"
    return (
        f"positive rate moves from {ra:.1%} ({a.name}) to {rb:.1%} ({b.name}): {times}; "
        f"a model fitted on the old rate answers at the old level, so its probabilities run "
        f"{direction} on newer leads even where its ranking holds: read the holdout's "
        "calibration, not only its ROC AUC"
    )


def _feature_warnings(features: list[FeatureDrift], reference: str, threshold: float) -> list[str]:
    over = [f for f in features if f.shifts(threshold)]
    out = [
        f"feature {f.feature} shifts strongly between {reference} and {f.worst_slice} "
        f"(PSI {f.max_psi:.2f} > {threshold:g}): what the model learned about it may not "
        "hold for newer leads"
        for f in over[:MAX_NAMED]
    ]
    if len(over) > MAX_NAMED:
        rest = len(over) - MAX_NAMED
        out.append(
            f"{rest} more feature(s) shift strongly (PSI > {threshold:g}) between {reference} "
            "and a later slice; see the drift table"
        )
    return out


def drift_report(
    X: pd.DataFrame,
    y: np.ndarray,
    slices: Mapping[str, np.ndarray],
    reference: str = "fit",
    top: int = 8,
    threshold: float = PSI_THRESHOLD,
    as_of: pd.Series | None = None,
    bins: int = 10,
    rate_ratio_warn: float = RATE_RATIO_WARN,
) -> DriftReport:
    """Rows, positive rate and date range per slice (``slices``: name -> row positions into
    ``X``, in time order; ``as_of`` aligned with ``X`` by position), every feature's PSI in
    each later slice against ``reference``, and the warnings (see the module docstring)."""
    if reference not in slices:
        raise ValueError(f"reference slice {reference!r} is not among {list(slices)}")
    y = np.asarray(y)
    positions = {name: np.asarray(idx, dtype=np.int64) for name, idx in slices.items()}
    summaries = [_slice_summary(name, idx, y, as_of) for name, idx in positions.items()]
    ref_rows = X.iloc[positions[reference]]
    later = [n for n, idx in positions.items() if n != reference and len(idx)]
    features = []
    for col in X.columns:
        ref = ref_rows[col]
        moved, noise = {}, {}
        for n in later:
            moved[n], n_bins = _psi_bins(ref, X[col].iloc[positions[n]], bins)
            noise[n] = psi_noise(len(ref), len(positions[n]), n_bins)
        features.append(FeatureDrift(str(col), moved, noise))
    features.sort(key=lambda f: f.max_psi, reverse=True)
    warnings = []
    rate = _rate_warning(summaries, rate_ratio_warn)
    if rate:
        warnings.append(rate)
    warnings.extend(_feature_warnings(features, reference, threshold))
    return DriftReport(
        reference=reference,
        slices=summaries,
        features=features,
        warnings=warnings,
        threshold=threshold,
        rate_ratio_threshold=rate_ratio_warn,
        top=top,
    )


def plot_drift(report: DriftReport, path: Path) -> Path:
    """A PNG: the positive rate per slice beside the ``top`` features' largest PSI, with the
    threshold drawn, on a bare matplotlib figure (``reports.charts``: no pyplot, no backend
    switch)."""
    fig = figure(10, 4.5, layout=None)
    ax_rate, ax_psi = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    names = [s.name for s in report.slices]
    rates = [100 * (s.positive_rate or 0.0) for s in report.slices]
    bars = ax_rate.bar(names, rates, color="#4c72b0")
    for bar, rate, s in zip(bars, rates, report.slices, strict=True):
        ax_rate.annotate(
            f"{rate:.1f} %\n{s.rows:,} rows",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center", va="bottom", fontsize=8,
        )  # fmt: skip
    ax_rate.set(ylabel="positive rate (%)", title="Positive rate per slice")
    ax_rate.set_ylim(0, max(rates + [1.0]) * 1.3)
    shown = report.features[: report.top][::-1]
    values = [f.max_psi for f in shown]
    colors = ["#c44e52" if f.shifts(report.threshold) else "#8c8c8c" for f in shown]
    ax_psi.barh([f.feature for f in shown], values, color=colors)
    ax_psi.axvline(report.threshold, color="k", ls=":", lw=1, label=f"{report.threshold:g}")
    ax_psi.set(
        xlabel=f"largest PSI against {report.reference}",
        title="Features that move most",
    )
    ax_psi.legend(fontsize=8, loc="lower right")
    return save_png(fig, path)
