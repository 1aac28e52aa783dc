"""Point-in-time training sets: one snapshot per lead, features as of the snapshot,
label from a window after it, and time-based splits.

Targets are funnel stages. For ``sal`` a lead is snapshotted when it enters MQL and the
label says whether it reached SAL within the horizon. For any other target stage the
snapshot is the entry into the stage before it that the data actually records (for an
import that only knows ``lead`` and ``customer``, that is lead creation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import FeatureConfig, compute_features
from features.contract import STAGE_RANK, STAGES, CrmData


class TrainingDataError(ValueError):
    """The data cannot give a usable training set (too few snapshots or no positives)."""


@dataclass(frozen=True)
class TrainingSet:
    """Features, labels and snapshot times, sorted by snapshot time."""

    X: pd.DataFrame
    y: np.ndarray
    as_of: pd.Series
    target: str
    from_stage: str
    horizon_days: int
    data_end: pd.Timestamp
    censored: int


@dataclass(frozen=True)
class TimeSplit:
    """Index arrays into a TrainingSet: fit < calibration < holdout in time."""

    fit: np.ndarray
    calibration: np.ndarray
    holdout: np.ndarray

    def describe(self, as_of: pd.Series) -> dict[str, str]:
        out = {}
        for name in ("fit", "calibration", "holdout"):
            idx = getattr(self, name)
            if len(idx):
                out[f"{name}_from"] = str(as_of.iloc[idx].min())
                out[f"{name}_to"] = str(as_of.iloc[idx].max())
        return out


def data_end(data: CrmData) -> pd.Timestamp:
    """The moment the export was taken: the latest recorded timestamp anywhere."""
    candidates = [
        data.events["at"].max() if len(data.events) else pd.NaT,
        data.stage_history["entered_at"].max() if len(data.stage_history) else pd.NaT,
        data.leads["created_at"].max(),
    ]
    return max(c for c in candidates if pd.notna(c))


def previous_stage(data: CrmData, target: str) -> str:
    """The stage whose entry is the snapshot for predicting ``target``."""
    if target not in STAGE_RANK or STAGE_RANK[target] <= STAGE_RANK["lead"]:
        allowed = ", ".join(STAGES[2:])
        raise TrainingDataError(
            f"target {target!r} is not a funnel stage to predict; use one of {allowed}"
        )
    recorded = set(data.stage_history["stage"].dropna().astype(str))
    for stage in reversed(STAGES[: STAGE_RANK[target]]):
        if stage == "lead" or stage in recorded:
            return stage
    return "lead"


def stage_entries(data: CrmData, stage: str) -> pd.Series:
    """First entry time into ``stage`` per lead_id (lead entry = created_at)."""
    if stage == "lead":
        return data.leads.set_index("lead_id")["created_at"]
    sh = data.stage_history
    rows = sh[sh["stage"].astype(str) == stage]
    return rows.groupby("lead_id", observed=True)["entered_at"].min()


def build_training_set(
    data: CrmData,
    target: str = "sal",
    horizon_days: int = 90,
    config: FeatureConfig | None = None,
    min_rows: int = 50,
    end: pd.Timestamp | None = None,
) -> TrainingSet:
    """Snapshot each lead at entry into the stage before ``target``; label = target reached
    within ``horizon_days`` after the snapshot. Snapshots whose horizon runs past the end
    of the data are censored (left out), so no label is guessed."""
    from_stage = previous_stage(data, target)
    start = stage_entries(data, from_stage)
    reached = stage_entries(data, target)
    # ``end``: when the export was taken, if the export says so (a later moment than its
    # last recorded timestamp, e.g. for exports without dates); else its last timestamp.
    end = max(data_end(data), end) if end is not None else data_end(data)
    horizon = pd.Timedelta(days=horizon_days)
    # A snapshot at entry must come strictly after the entry event itself is known;
    # one second later keeps the entry-moment events (e.g. the form fill) visible.
    snap = (start + pd.Timedelta(seconds=1)).rename("as_of")
    # Censored snapshots are left out whatever happened to them: keeping the ones that
    # already converted would add positives only and bias the latest (holdout) slice.
    label_known = snap + horizon <= end
    snap = snap[label_known]
    hit = reached.reindex(snap.index)
    y = (hit.notna() & (hit >= start.reindex(snap.index)) & (hit <= snap + horizon)).to_numpy()
    order = np.argsort(snap.to_numpy(), kind="stable")
    snap = snap.iloc[order]
    y = y[order].astype(np.int8)
    if len(snap) < min_rows:
        raise TrainingDataError(
            f"only {len(snap)} leads entered {from_stage!r} early enough to know whether they "
            f"reached {target!r} within {horizon_days} days; need at least {min_rows}"
        )
    if y.sum() == 0 or y.sum() == len(y):
        raise TrainingDataError(f"label {target!r} has only one class in {len(y)} snapshots")
    leads = data.leads.set_index("lead_id").loc[snap.index].reset_index()
    ev = data.events[data.events["lead_id"].isin(snap.index)]
    X = compute_features(leads, data.accounts, ev, snap, config or FeatureConfig())
    return TrainingSet(
        X=X,
        y=y,
        as_of=snap,
        target=target,
        from_stage=from_stage,
        horizon_days=horizon_days,
        data_end=end,
        censored=int((~label_known).sum()),
    )


def time_split(n: int, holdout: float = 0.2, calibration: float = 0.15) -> TimeSplit:
    """Split rows already sorted by time: the latest ``holdout`` share is the holdout,
    the ``calibration`` share just before it calibrates, the rest fits."""
    n_hold = int(round(n * holdout))
    n_cal = int(round(n * calibration))
    n_fit = n - n_hold - n_cal
    if n_fit < 20 or n_cal < 10 or n_hold < 10:
        raise TrainingDataError(f"{n} snapshots are too few for a fit/calibration/holdout split")
    idx = np.arange(n)
    return TimeSplit(
        fit=idx[:n_fit], calibration=idx[n_fit : n_fit + n_cal], holdout=idx[n_fit + n_cal :]
    )
