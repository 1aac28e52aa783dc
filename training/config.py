"""What a training run is asked to do, as one typed, frozen object: built once (by the CLI
from its flags, by a script, by a test) and passed to ``training.train.train``. Nothing in
training reads the environment or a YAML file on its own behalf."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from training.dataset import check_horizon
from training.tracking import MODEL_NAME

CalibrationPrior = Literal["auto", "long-run", "recent"]
CALIBRATION_PRIORS: tuple[str, ...] = ("auto", "long-run", "recent")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    ``target``: the funnel stage to predict; ``targets``: every target the one model
    answers, primary first (default: ``target`` plus ``mql`` when ``target`` is ``sal``).
    ``horizon_days``: how long after the snapshot a conversion still counts.
    ``snapshot_ages_days``: days after entry at which a lead is snapshotted (0 = at entry,
    later ages while it has not converted), for every target the run trains (None: each
    target's own default, ``training.dataset.snapshot_ages(target)``).
    ``calibration_prior``: "auto" (chosen on the validation folds), "long-run" or "recent"
    (``training.selection``). ``learn_decay``: choose each event group's half-life on the
    validation data. ``params``: LightGBM parameters that override the defaults.
    ``allow_leaky``: columns the leakage check may let through. ``personas_path``: the
    persona definitions the model ships with (default: the shipped features/personas.yaml).
    ``model_name``: the registered model (and MLflow experiment) the run goes to."""

    target: str = "sal"
    targets: tuple[str, ...] | None = None
    horizon_days: int = 90
    snapshot_ages_days: tuple[int, ...] | None = None
    seed: int = 7
    calibration_prior: CalibrationPrior = "auto"
    learn_decay: bool = False
    params: tuple[tuple[str, Any], ...] = field(default=())
    allow_leaky: tuple[str, ...] = ()
    personas_path: Path | None = None
    model_name: str = MODEL_NAME

    def __post_init__(self) -> None:
        check_horizon(self.horizon_days)  # a TrainingDataError: the CLI names it
        if self.calibration_prior not in CALIBRATION_PRIORS:
            raise ValueError(
                f"calibration_prior must be one of {', '.join(CALIBRATION_PRIORS)}, "
                f"got {self.calibration_prior!r}"
            )
        if isinstance(self.params, dict):  # accept a mapping, keep it hashable and frozen
            object.__setattr__(self, "params", tuple(sorted(self.params.items())))
        # None (a caller's "not given") is no parameters / nothing allowed
        object.__setattr__(self, "params", tuple(self.params or ()))
        object.__setattr__(self, "allow_leaky", tuple(self.allow_leaky or ()))
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
        if self.snapshot_ages_days is not None:
            object.__setattr__(self, "snapshot_ages_days", tuple(self.snapshot_ages_days))
        if self.personas_path is not None:
            object.__setattr__(self, "personas_path", Path(self.personas_path))

    @property
    def lightgbm_params(self) -> dict[str, Any]:
        return dict(self.params)

    def resolved(self) -> TrainConfig:
        """This config with ``targets`` spelled out (primary first, each once) and
        ``target`` the primary one: what a run actually trains."""
        targets = tuple(dict.fromkeys(self.targets or default_targets(self.target)))
        return replace(self, target=targets[0], targets=targets)


def default_targets(target: str) -> tuple[str, ...]:
    """The primary target first; with ``sal`` the model also answers ``mql`` (p_mql)."""
    return (target, "mql") if target == "sal" else (target,)
