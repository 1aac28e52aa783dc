"""A training run, step by step: prepare the export's snapshots (``training.prepare``),
choose and fit the model on folds before the time holdout (``training.fit``), evaluate it
on the holdout (``training.measure``), then log it to MLflow, register it and alias it
``challenger`` (``training.register``). ``train`` is the one entry point."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from training.config import TrainConfig
from training.fit import FittedModel, choose_and_fit, fit_other_targets
from training.measure import Evaluation, measure
from training.prepare import prepare
from training.register import model_metadata, reference_for, register
from training.results import Progress, RunWarnings, TrainResult


def train(
    data_dir: str | Path,
    config: TrainConfig | None = None,
    *,
    progress: Progress = lambda msg: None,
    warn: Progress | None = None,
    **overrides: Any,
) -> TrainResult:
    """The whole training job for the export in ``data_dir``, as ``config`` asks (fields of
    :class:`TrainConfig` may also be given as keywords, over ``config``); returns the
    holdout metrics and the registered version. ``warn``: where warnings go as they arise
    (default: ``progress``); they are also in the result."""
    config = replace(config or TrainConfig(), **overrides).resolved()
    warning = RunWarnings(warn or progress)
    run = prepare(Path(data_dir).resolve(), config, progress)
    fitted = choose_and_fit(run.ts, run.split, run.features, config, progress)
    others = fit_other_targets(run, fitted.choice, config, progress)
    evaluation = measure(run, fitted, others, config, warning, progress)
    # The other targets' heads join the model once the holdout is scored: the primary
    # target's answers (``evaluation.scored``) are measured as the model was fitted.
    fitted.model.add_heads({t: other.head for t, other in others.items()})
    fitted.model.metadata = model_metadata(run, fitted, evaluation, config)
    fitted.model.metadata["reference_stats"] = reference_for(run, fitted, evaluation)
    run_id, version = register(run, fitted, others, evaluation, config, warning.messages, progress)
    return train_result(run_id, version, fitted, evaluation, config, warning.messages)


def train_result(
    run_id: str,
    version: str,
    fitted: FittedModel,
    evaluation: Evaluation,
    config: TrainConfig,
    warnings: list[str],
) -> TrainResult:
    """The result of a registered run (``config`` resolved)."""
    verdict, drift, late = evaluation.verdict, evaluation.drift, evaluation.late
    return TrainResult(
        run_id=run_id,
        model_name=config.model_name,
        model_version=version,
        target=config.target,
        metrics=evaluation.metrics,
        split=fitted.model.metadata["split"],
        comparison=evaluation.comparison,
        half_lives_days=dict(fitted.model.feature_config.half_lives_days),
        family=fitted.choice.family,
        choice=fitted.choice.to_dict(),
        skill=verdict.to_dict(),
        skill_sentence=verdict.sentence(),
        drift=drift.to_dict(),
        drift_lines=drift.lines(),
        late_wins=late.to_dict(),
        late_wins_sentence=late.sentence(),
        warnings=list(warnings),
    )
