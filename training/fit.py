"""Choose and fit: the model family, weighting, tree count and calibration prior chosen on
forward-chaining validation folds (``training.selection``), then the conversion, fit and
interest heads of that kind fitted on every row before the holdout, the quadrant cut-offs
set from out-of-fold scores, and one conversion head for each other funnel target. The
holdout is not looked at here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.build import FeatureConfig, engagement_features, feature_columns, fit_features
from features.content import load_content
from features.personas import load_personas
from features.quadrant_policy import QuadrantPolicy, load_quadrant_policy
from scoring.heads import FAMILIES, CalibratedHead
from scoring.model import LeadScoringModel
from training.config import TrainConfig
from training.dataset import TimeSplit, TrainingSet
from training.prepare import Prepared
from training.results import Progress
from training.selection import Choice, choose, cross_fit, fit_calibrated_head, forward_blocks


@dataclass
class FittedModel:
    """The chosen, fitted model and what chose it: the validation folds' figures, the
    rows before the holdout they were cut from, and the out-of-fold quadrant scores."""

    model: LeadScoringModel
    choice: Choice
    pre: np.ndarray  # positions of every row before the holdout (time order)
    blocks: list[np.ndarray]  # forward-chaining blocks of ``pre`` (positions into it)


@dataclass(frozen=True)
class PreHoldout:
    """The rows before the holdout, in time order, cut into forward-chaining blocks."""

    X: pd.DataFrame
    y: np.ndarray
    times: pd.Series  # each row's entry time (what the blocks and weights order by)
    blocks: list[np.ndarray]

    @classmethod
    def of(cls, ts: TrainingSet, pre: np.ndarray) -> PreHoldout:
        """The rows of ``ts`` at positions ``pre``."""
        blocks = forward_blocks(ts.X.index[pre])
        return cls(ts.X.iloc[pre], ts.y[pre], ts.entry_as_of.iloc[pre], blocks)


def choose_and_fit(
    ts: TrainingSet,
    split: TimeSplit,
    features: FeatureConfig,
    config: TrainConfig = TrainConfig(),
    progress: Progress = lambda msg: None,
) -> FittedModel:
    """The registered model, conversion head for ``ts.target``: chosen and calibrated on
    forward-chaining validation folds, fitted on every row before the holdout.
    ``features``: the feature config ``ts`` was computed with; ``config``: the seed,
    LightGBM parameters, calibration prior and persona definitions of the run."""
    pre = np.concatenate([split.fit, split.calibration])
    rows = PreHoldout.of(ts, pre)
    params = config.lightgbm_params
    columns = feature_columns(features)
    choice = choose(
        columns, rows.X, rows.y, rows.times, rows.blocks, params, config.seed, FAMILIES,
        config.calibration_prior, progress,
    )  # fmt: skip
    progress(f"chosen: {choice.reason}; calibration prior {choice.prior}")
    heads, oof = fit_heads(choice, features, rows, params, config.seed)
    policy = load_quadrant_policy()
    t_fit, t_int = quadrant_cutoffs(policy, heads, oof, rows)
    model = LeadScoringModel(
        target=ts.target,
        from_stage=ts.from_stage,
        horizon_days=ts.horizon_days,
        feature_columns=columns,
        conversion=heads["conversion"],
        fit=heads["fit"],
        interest=heads["interest"],
        policy=policy,
        fit_threshold=float(t_fit),
        interest_threshold=float(t_int),
        feature_config=features,
        personas=load_personas(config.personas_path),
        content=load_content(),
        metadata={"choice": choice.to_dict()},
    )
    return FittedModel(model, choice, pre, rows.blocks)


def fit_heads(
    choice: Choice, features: FeatureConfig, rows: PreHoldout, params: dict[str, Any], seed: int
) -> tuple[dict[str, CalibratedHead], dict[str, np.ndarray]]:
    """The conversion, fit and interest heads of the chosen kind, each calibrated on its
    own out-of-fold scores (the conversion head's come from the choice), and those
    out-of-fold scores by head."""
    kind = (choice.family, choice.weighting, choice.n_trees, choice.prior)
    oof_scores: dict[str, np.ndarray] = {}
    heads = {}
    for name, cols in (
        ("conversion", feature_columns(features)),
        ("fit", fit_features(features)),
        ("interest", engagement_features(features)),
    ):
        oof = choice.scores[choice.name].oof if name == "conversion" else None
        if oof is None:
            oof = cross_fit(
                choice.family, choice.weighting, cols, rows.X, rows.y, rows.times, rows.blocks,
                params, seed, n_trees=choice.n_trees,
            ).oof  # fmt: skip
        oof_scores[name] = oof
        heads[name] = fit_calibrated_head(
            *kind, cols, rows.X, rows.y, rows.times, rows.blocks, params, seed, oof=oof
        )
    return heads, oof_scores


def quadrant_cutoffs(
    policy: QuadrantPolicy,
    heads: dict[str, CalibratedHead],
    oof: dict[str, np.ndarray],
    rows: PreHoldout,
) -> tuple[float, float]:
    """The fit and interest score cut-offs of the quadrants, set by ``policy`` from
    out-of-fold scores (the validation blocks), not from the rows the heads were fitted on."""
    valid = np.concatenate(rows.blocks[1:])
    fit_scores = 100.0 * heads["fit"].calibrate(oof["fit"][valid])
    interest_scores = 100.0 * heads["interest"].calibrate(oof["interest"][valid])
    return policy.fit_thresholds(
        fit_scores, interest_scores, rows.times.iloc[valid], base_rate=float(rows.y[valid].mean())
    )


@dataclass(frozen=True)
class OtherTarget:
    """Another funnel step the model answers: its own snapshots and its conversion head."""

    ts: TrainingSet
    head: CalibratedHead


def fit_other_head(
    ts_t: TrainingSet, choice: Choice, features: FeatureConfig, config: TrainConfig
) -> CalibratedHead:
    """The conversion head of another funnel step, of the kind chosen for the primary one,
    on that step's own snapshots and rows before its holdout."""
    sp = ts_t.split()
    rows = PreHoldout.of(ts_t, np.concatenate([sp.fit, sp.calibration]))
    return fit_calibrated_head(
        choice.family, choice.weighting, choice.n_trees, choice.prior, feature_columns(features),
        rows.X, rows.y, rows.times, rows.blocks, config.lightgbm_params, config.seed,
    )  # fmt: skip


def fit_other_targets(
    run: Prepared, choice: Choice, config: TrainConfig, progress: Progress = lambda msg: None
) -> dict[str, OtherTarget]:
    """One conversion head for each target after the primary one (``config.targets``),
    of the chosen kind, each on its own snapshots of the same export."""
    out = {}
    for target in config.targets[1:]:
        progress(f"building point-in-time snapshots for target {target!r}")
        ts_t = run.training_set(target)
        out[target] = OtherTarget(ts_t, fit_other_head(ts_t, choice, run.features, config))
    return out
