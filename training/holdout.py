"""The time holdout of an export, defined once: ``train`` measures a model on it and the
promotion gate scores challenger and champion on it.

Two things make the holdout: the end of the export (an import's ``exported_at`` when its
mapping says when the export was taken, else the export's latest timestamp) and the
snapshots of ``build_training_set``. The gate once rebuilt the snapshots without the
export's end: on an imported folder the censoring moved, the split moved with it, and the
"holdout" the gate scored (926 rows) was made of rows the challenger had been fitted and
calibrated on. Both now come from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from crm.contract import CrmData, read_tables
from crm.importer import load_custom_fields
from features.build import FeatureConfig
from training.dataset import TimeSplit, TrainingSet, build_training_set


def export_end(data_dir: str | Path) -> pd.Timestamp | None:
    """When the export in ``data_dir`` was taken, if its import recorded it (the mapping's
    ``exported_at``); None means: the export's own latest timestamp."""
    custom = load_custom_fields(Path(data_dir))
    return custom.exported_at if custom else None


@dataclass(frozen=True)
class HoldoutSet:
    """A training set of an export and its time split, as ``train`` defines them."""

    data: CrmData
    ts: TrainingSet
    split: TimeSplit
    config: FeatureConfig  # what ``ts.X`` was computed with

    @property
    def holdout(self) -> np.ndarray:
        """Positions of the holdout rows in ``ts``."""
        return self.split.holdout

    @property
    def pre(self) -> np.ndarray:
        """Positions of every row before the holdout (fit, then calibration)."""
        return np.concatenate([self.split.fit, self.split.calibration])

    @property
    def base_rate(self) -> float:
        """The positive rate known before the holdout: what a model without skill says."""
        return float(self.ts.y[self.pre].mean())

    def rate_for_prior(self, prior: str) -> float:
        """The rate a model calibrated with ``prior`` (``training.selection``) on these
        rows averages to: the constant its skill is measured against."""
        from training.selection import forward_blocks, prior_rate

        pre = self.pre
        return prior_rate(self.ts.y[pre], forward_blocks(self.ts.X.index[pre]), prior)

    @property
    def holdout_from(self) -> pd.Timestamp:
        """The earliest entry time of a holdout row (recorded as the version tag
        ``holdout_from``; every later row is one no fit or calibration saw)."""
        return self.ts.entry_as_of.iloc[self.holdout].min()


def holdout_set(
    data_dir: str | Path,
    target: str,
    horizon_days: int,
    config: FeatureConfig | None = None,
    data: CrmData | None = None,
    ages_days: Sequence[int] | None = None,
) -> HoldoutSet:
    """The training set of ``data_dir`` for ``target`` (snapshots censored at the export's
    end) and its time split. ``data``: the tables of ``data_dir`` when already read;
    ``ages_days``: the snapshot ages (default ``training.dataset.snapshot_ages(target)``)."""
    data = read_tables(Path(data_dir)) if data is None else data
    config = config or FeatureConfig()
    ts = build_training_set(
        data, target=target, horizon_days=horizon_days, config=config,
        end=export_end(data_dir), ages_days=ages_days,
    )  # fmt: skip
    return HoldoutSet(data, ts, ts.split(), config)
