"""The monitoring report: drift per feature and per score by period, volume, unknown
categories, realised calibration and ROC AUC, and the alerts in plain words; its JSON form
(:meth:`MonitorReport.to_dict`) and the figures the Prometheus gauges carry
(:meth:`MonitorReport.gauges`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from monitoring.drift import (
    MIN_ROWS,
    PSI_MODERATE,
    PSI_SHIFT,
    UNKNOWN_ALERT,
    Drift,
    drift_table,
    period_labels,
)
from monitoring.outcomes import (
    MIN_BIN,
    MIN_GAP,
    Auc,
    Bin,
    by_decile,
    by_month,
    realised_auc,
    realised_labels,
)
from monitoring.reference import checked

#: the score calibration is read on
PROBABILITY = "p_convert"


@dataclass(frozen=True)
class Traffic:
    """What the prediction log says about one model's answers, rows aligned:
    ``predictions`` (``id``, ``lead_key``, ``moment``: the moment scored as of),
    ``features`` (one column per feature; empty for rows logged without them),
    ``scores`` (``p_convert``, ``fit_score``, ...) and the ``outcomes`` reported
    (``lead_key``, ``stage``, ``at``)."""

    predictions: pd.DataFrame
    features: pd.DataFrame
    scores: pd.DataFrame
    outcomes: pd.DataFrame


def pct(x: float) -> str:
    """A rate as the alerts say it: ``8 %``, ``0.4 %``."""
    v = 100 * x
    return f"{v:.1f} %" if 0 < v < 10 else f"{v:.0f} %"


def ci_text(low: float, high: float) -> str:
    """An interval of rates as the alerts say it: ``5-12 %``, ``0.4-2.1 %``."""
    digits = 1 if high < 0.1 else 0
    return f"{100 * low:.{digits}f}-{100 * high:.{digits}f} %"


@dataclass
class MonitorReport:
    model_name: str
    model_version: str
    period: str
    date_from: str | None
    date_to: str | None
    volume: dict[str, int]
    drift: list[Drift]
    outcomes_known: int
    deciles: list[Bin]
    months: list[Bin]
    auc: Auc | None
    reference: dict[str, Any]
    alerts: list[str] = field(default_factory=list)

    def period_word(self, label: str) -> str:
        return f"{self.period} {label}"

    def latest_period(self) -> str | None:
        return max(self.volume) if self.volume else None

    def gauges(self) -> dict[str, Any]:
        """The latest period's PSI per feature and per score, the unknown-category share
        per feature, the calibration gap (observed - predicted) per decile, the realised
        ROC AUC and the number of alerts."""
        latest = self.latest_period()
        now = [d for d in self.drift if d.period == latest]
        return {
            "feature_psi": {d.name: d.psi for d in now if d.kind == "feature"},
            "score_psi": {d.name: d.psi for d in now if d.kind == "score"},
            "unknown_share": {
                d.name: d.unknown_share
                for d in now
                if d.kind == "feature" and self.reference["features"][d.name]["kind"] != "numeric"
            },
            "calibration_gap": {
                str(i + 1): b.observed - b.predicted for i, b in enumerate(self.deciles)
            },
            "realised_auc": None if self.auc is None else self.auc.value,
            "alerts": len(self.alerts),
            "leads": sum(self.volume.values()),
        }

    def flagged(self, kind: str = "feature") -> list[str]:
        """The names drifted (flagged) in some period."""
        return sorted({d.name for d in self.drift if d.kind == kind and d.flagged})

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": {"name": self.model_name, "version": self.model_version},
            "period": self.period,
            "from": self.date_from,
            "to": self.date_to,
            "thresholds": {
                "psi_moderate": PSI_MODERATE,
                "psi_shift": PSI_SHIFT,
                "min_rows_per_period": MIN_ROWS,
                "unknown_share": UNKNOWN_ALERT,
                "min_leads_per_decile": MIN_BIN,
                "min_calibration_gap": MIN_GAP,
            },
            "alerts": list(self.alerts),
            "volume": dict(self.volume),
            "reference": {
                "rows": self.reference.get("rows"),
                "base_rate": self.reference.get("base_rate"),
                "from": self.reference.get("from"),
                "to": self.reference.get("to"),
            },
            "flagged_features": self.flagged("feature"),
            "flagged_scores": self.flagged("score"),
            "drift": [d.to_dict() for d in self.drift],
            "outcomes_known": self.outcomes_known,
            "calibration_by_decile": [b.to_dict() for b in self.deciles],
            "calibration_by_month": [b.to_dict() for b in self.months],
            "realised_auc": None if self.auc is None else self.auc.to_dict(),
        }


def _alerts(report: MonitorReport) -> list[str]:
    out = []
    for d in sorted(report.drift, key=lambda d: (d.period, d.kind, -d.psi)):
        what = d.name if d.kind == "feature" else f"score {d.name}"
        if d.flagged:
            out.append(
                f"{what} drifted in {report.period_word(d.period)}: PSI {d.psi:.2f} > "
                f"{PSI_SHIFT:g} ({d.rows:,} leads)"
            )
        if d.unknown_flagged:
            out.append(
                f"{d.name}: {pct(d.unknown_share)} of the leads in "
                f"{report.period_word(d.period)} have a value the model never saw in training"
            )
    for b in report.deciles:
        if b.flagged:
            out.append(
                f"leads scored {b.label} converted at {pct(b.observed)} (95 % CI "
                f"{ci_text(b.low, b.high)}, {b.rows:,} leads), not {pct(b.predicted)}"
            )
    for b in report.months:
        if b.flagged:
            out.append(
                f"leads scored in {b.label} converted at {pct(b.observed)} (95 % CI "
                f"{ci_text(b.low, b.high)}, {b.rows:,} leads), predicted {pct(b.predicted)}"
            )
    a = report.auc
    if a is not None and a.flagged and a.holdout is not None:
        out.append(
            f"realised ROC AUC {a.value:.2f} (95 % CI {a.low:.2f}-{a.high:.2f}) is below the "
            f"{a.holdout:.2f} the model had on its holdout"
        )
    return out


def monitor(
    traffic: Traffic,
    reference: Any,
    *,
    model_name: str,
    model_version: str,
    target: str,
    horizon_days: int,
    period: str = "week",
    now: pd.Timestamp | None = None,
    holdout_auc: float | None = None,
) -> MonitorReport:
    """The report of ``traffic`` against ``reference`` (the model's reference
    statistics; :class:`~monitoring.reference.MissingReference` if it has none)."""
    ref = checked(reference, f"model {model_name} version {model_version}")
    preds = traffic.predictions
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)
    periods = period_labels(preds["moment"], period) if len(preds) else pd.Series(dtype=str)
    volume = {str(k): int(v) for k, v in periods.value_counts().sort_index().items()}
    n_ref = int(ref.get("rows") or 0)
    has_features = traffic.features.notna().any(axis=1) if len(traffic.features.columns) else None
    drift: list[Drift] = []
    if has_features is not None and has_features.any():
        drift += drift_table(
            traffic.features[has_features], periods[has_features.to_numpy()],
            ref["features"], n_ref, "feature",
        )  # fmt: skip
    drift += drift_table(traffic.scores, periods, ref["scores"], n_ref, "score")
    deciles: list[Bin] = []
    months: list[Bin] = []
    auc = None
    known = 0
    if PROBABILITY in traffic.scores.columns and len(preds):
        frame = preds[["id", "lead_key", "moment"]].assign(
            p=traffic.scores[PROBABILITY].to_numpy(dtype=float)
        )
        labelled = realised_labels(
            frame.dropna(subset=["p"]), traffic.outcomes, target, horizon_days, now
        )
        known = len(labelled)
        p, y = labelled["p"].to_numpy(), labelled["converted"].to_numpy()
        deciles, months = by_decile(p, y), by_month(p, y, labelled["moment"])
        auc = realised_auc(p, y, holdout_auc)
    moments = pd.to_datetime(preds["moment"]) if len(preds) else None
    report = MonitorReport(
        model_name=model_name,
        model_version=str(model_version),
        period=period,
        date_from=None if moments is None else str(moments.min()),
        date_to=None if moments is None else str(moments.max()),
        volume=volume,
        drift=drift,
        outcomes_known=known,
        deciles=deciles,
        months=months,
        auc=auc,
        reference=ref,
    )
    report.alerts = _alerts(report)
    return report


def monitor_model(
    model: Any,
    traffic: Traffic,
    *,
    model_name: str,
    model_version: str,
    period: str = "week",
    now: pd.Timestamp | None = None,
) -> MonitorReport:
    """:func:`monitor` for a served ``LeadScoringModel``: its reference statistics, target,
    horizon and holdout ROC AUC from the model itself."""
    meta = getattr(model, "metadata", None) or {}
    holdout = (meta.get("holdout_metrics") or {}).get("roc_auc")
    return monitor(
        traffic,
        meta.get("reference_stats"),
        model_name=model_name,
        model_version=model_version,
        target=model.target,
        horizon_days=int(model.horizon_days),
        period=period,
        now=now,
        holdout_auc=None if holdout is None else float(holdout),
    )


__all__ = ["PROBABILITY", "ci_text", "monitor_model", "MonitorReport", "Traffic", "monitor", "pct"]
