"""Learned interest decay: one half-life per event group, chosen from the data.

Coordinate descent over a small grid per group: for each group in turn, try every
half-life in the grid with the others fixed, keep the one with the lowest log loss of a
quick LightGBM fitted on the fit slice and scored on the calibration slice (never the
final holdout). Only the ``decay_<group>`` columns depend on the half-lives, so each try
recomputes features for the snapshots with that config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.metrics import log_loss

from crm.contract import CrmData
from features.build import FeatureConfig
from training.dataset import TrainingSet, snapshot_features

HALF_LIFE_GRID: tuple[float, ...] = (3.0, 7.0, 14.0, 30.0, 60.0, 120.0)
# groups with enough events to learn from; the rare ones keep their defaults
LEARNED_GROUPS: tuple[str, ...] = ("web", "email", "live", "content")
_QUICK = {
    "n_estimators": 150,
    "learning_rate": 0.15,
    "num_leaves": 2,
    "min_child_samples": 30,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


def learn_half_lives(
    data: CrmData,
    ts: TrainingSet,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    config: FeatureConfig,
    seed: int = 7,
    grid: tuple[float, ...] = HALF_LIFE_GRID,
    groups: tuple[str, ...] = LEARNED_GROUPS,
    progress: Callable[[str], None] = lambda m: None,
) -> tuple[FeatureConfig, dict[str, Any]]:
    """The config with learned half-lives, and a trace {group: {half_life: log_loss}}.
    Features are recomputed for the snapshots of ``ts`` (every snapshot age)."""
    y = ts.y
    cache: dict[tuple, float] = {}

    def loss(half_lives: dict[str, float]) -> float:
        key = tuple(sorted(half_lives.items()))
        if key not in cache:
            cfg = dataclasses.replace(config, half_lives_days=half_lives)
            X = snapshot_features(data, ts.as_of, ts.age_days, cfg)
            m = lgb.LGBMClassifier(**_QUICK, random_state=seed, n_jobs=2)
            m.fit(X.iloc[fit_idx], y[fit_idx])
            p = m.predict_proba(X.iloc[val_idx])[:, 1]
            cache[key] = float(log_loss(y[val_idx], p, labels=[0, 1]))
        return cache[key]

    current = dict(config.half_lives_days)
    trace: dict[str, Any] = {"start": loss(current)}
    for group in groups:
        tried = {h: loss({**current, group: h}) for h in sorted({*grid, current[group]})}
        best = min(tried, key=lambda h: (tried[h], abs(np.log(h / current[group]))))
        current[group] = best
        trace[group] = tried
        progress(f"decay {group}: half-life {best:g} days (val log loss {tried[best]:.4f})")
    trace["end"] = loss(current)
    return dataclasses.replace(config, half_lives_days=current), trace
