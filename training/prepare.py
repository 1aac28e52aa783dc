"""The first step of a training run: read the export, decide its features, take the
point-in-time snapshots of the primary target and their time split (``holdout_set``, the
same holdout the promotion gate rebuilds), learn interest half-lives when asked, and stop
on features that look like they record the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from crm.contract import CrmData, read_tables
from crm.importer import CustomFields, load_custom_fields
from features.build import FeatureConfig, custom_feature_config, fit_features
from training.config import TrainConfig
from training.dataset import TimeSplit, TrainingSet, build_training_set
from training.decay import learn_half_lives
from training.holdout import HoldoutSet, export_end, holdout_set
from training.leakage import LeakageError, LeakageFinding, blocking, check_leakage
from training.results import Progress


def import_feature_config(data: CrmData, custom: CustomFields | None) -> FeatureConfig:
    """The feature config, with an import's custom attributes and counters as features.
    Categories are learned from the earliest 80% of leads only (never the holdout)."""
    if custom is None or not custom.columns:
        return FeatureConfig()
    cutoff = data.leads["created_at"].quantile(0.8)
    early = data.leads[data.leads["created_at"] <= cutoff]
    return custom_feature_config(early, dict(custom.attributes), custom.counters)


def leakage_gate(
    ts: TrainingSet,
    split: TimeSplit,
    config: FeatureConfig,
    custom: CustomFields | None,
    allowed: tuple[str, ...],
    progress: Progress,
) -> list[LeakageFinding]:
    """Stop training on features that look like they record the outcome, unless allowed."""
    record = [*fit_features(config), *config.counters]
    findings = check_leakage(
        ts.X.iloc[split.fit],
        ts.y[split.fit],
        ts.X.iloc[split.calibration],
        ts.y[split.calibration],
        record_columns=record,
        sources=dict(custom.sources) if custom else None,
    )
    stop = blocking(findings, allowed)
    if stop:
        raise LeakageError(stop)
    for f in findings:
        progress(f"allowed although it looks leaky: {f}")
    return findings


@dataclass(frozen=True)
class Prepared:
    """What the later steps work on: the export, the primary target's snapshots and split
    (``holdout``; its features computed with the final feature config), when the export
    was taken, how half-lives were learned, and the leaky-looking features let through."""

    data_dir: Path
    holdout: HoldoutSet
    end: pd.Timestamp | None  # when the export was taken, if its import says so
    custom: CustomFields | None
    snapshot_ages_days: tuple[int, ...] | None = None  # as asked (None: each target's own)
    decay_trace: dict[str, Any] = field(default_factory=dict)
    leakage_allowed: list[LeakageFinding] = field(default_factory=list)

    @property
    def data(self) -> CrmData:
        return self.holdout.data

    @property
    def ts(self) -> TrainingSet:
        return self.holdout.ts

    @property
    def split(self) -> TimeSplit:
        return self.holdout.split

    @property
    def features(self) -> FeatureConfig:
        return self.holdout.config

    def training_set(self, target: str, features: FeatureConfig | None = None) -> TrainingSet:
        """Snapshots of another ``target`` of the same export, alike in horizon, ages and
        end (``features``: default the run's feature config)."""
        config = self.holdout.config if features is None else features
        return build_training_set(
            self.data, target=target, horizon_days=self.ts.horizon_days, config=config,
            end=self.end, ages_days=self.snapshot_ages_days,
        )  # fmt: skip


def primary_snapshots(
    data_dir: Path, config: TrainConfig, progress: Progress = lambda msg: None
) -> tuple[HoldoutSet, CustomFields | None]:
    """The export's snapshots of the primary target (``config.target``) with their split,
    features as its import defines them; and the import's custom fields, if any."""
    progress(f"reading {data_dir}")
    data = read_tables(data_dir)
    custom = load_custom_fields(data_dir)
    features = import_feature_config(data, custom)
    progress(f"building point-in-time snapshots for target {config.target!r}")
    hs = holdout_set(
        data_dir, config.target, config.horizon_days, features, data=data,
        ages_days=config.snapshot_ages_days,
    )  # fmt: skip
    return hs, custom


def prepare(data_dir: Path, config: TrainConfig, progress: Progress) -> Prepared:
    """Read ``data_dir`` and build what ``config`` asks to train on (``config`` resolved:
    ``config.target`` is the primary target)."""
    hs, custom = primary_snapshots(data_dir, config, progress)
    ts, split = hs.ts, hs.split
    progress(
        f"{len(ts.y)} snapshots ({ts.censored} censored), positives {ts.y.mean():.1%}; "
        f"{len(split.fit) + len(split.calibration)} before the holdout (fitted and validated "
        f"on forward-chaining time folds) / holdout {len(split.holdout)}"
    )
    run = Prepared(data_dir, hs, export_end(data_dir), custom, config.snapshot_ages_days)
    if config.learn_decay:
        run = learn_decay(run, config, progress)
    allowed = leakage_gate(run.ts, split, run.features, custom, config.allow_leaky, progress)
    return replace(run, leakage_allowed=allowed)


def learn_decay(run: Prepared, config: TrainConfig, progress: Progress) -> Prepared:
    """Each event group's half-life chosen on the calibration slice (never the holdout),
    and the snapshots' features computed again with them: same rows, same split."""
    progress("learning interest half-lives on the calibration slice")
    ts, split = run.ts, run.split
    features, trace = learn_half_lives(
        run.data, ts, split.fit, split.calibration, run.features, config.seed, progress=progress
    )
    ts = run.training_set(ts.target, features)
    return replace(run, holdout=replace(run.holdout, ts=ts, config=features), decay_trace=trace)
