"""What a training run hands back: the registered version, the holdout figures and the
trust checks (``TrainResult``, and its JSON for ``leadscore train --json``), and the
warnings it collected on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

Progress = Callable[[str], None]

#: the comparison row of the predictor that says the pre-holdout base rate for everyone
CONSTANT = "constant_base_rate"


def model_label(family: str) -> str:
    """The chosen model's row in the comparison (a baseline of the same family may sit
    beside it)."""
    return f"chosen_{family}"


@dataclass
class RunWarnings:
    """The warnings of one run, in the order they arose: each is said as it arises
    (``say``, prefixed ``WARNING:``) and kept for the result, the model card and the
    run's ``warnings.json``."""

    say: Progress
    messages: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self.say(f"WARNING: {message}")


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    target: str
    metrics: dict[str, float]
    split: dict[str, Any] = field(default_factory=dict)
    # holdout metrics of LightGBM and every baseline on the same rows (primary target)
    comparison: pd.DataFrame | None = None
    half_lives_days: dict[str, float] = field(default_factory=dict)
    family: str = "lightgbm"  # the model family chosen on the validation folds
    choice: dict[str, Any] = field(default_factory=dict)
    skill: dict[str, Any] = field(default_factory=dict)
    skill_sentence: str = ""
    drift: dict[str, Any] = field(default_factory=dict)
    drift_lines: list[str] = field(default_factory=list)
    late_wins: dict[str, Any] = field(default_factory=dict)
    late_wins_sentence: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What a script needs (``train --json``): every model's ROC AUC with interval,
        log loss and ECE, the constant predictor, the choice, the skill verdict, the
        drift table, late wins and every warning."""
        return {
            "model": self.model_name,
            "version": self.model_version,
            "run_id": self.run_id,
            "target": self.target,
            "family": self.family,
            "choice": self.choice,
            "skill": self.skill,
            "models": self.models_json(),
            "drift": self.drift,
            "late_wins": self.late_wins,
            "warnings": self.warnings,
            **self.metrics,
        }

    def models_json(self) -> dict[str, dict[str, float]]:
        """Each row of the comparison with its ROC AUC interval, by model name."""
        models = {}
        if self.comparison is not None:
            for name, row in self.comparison.iterrows():
                entry = {k: float(v) for k, v in row.items()}
                for end in ("low", "high"):
                    key = (
                        f"roc_auc_ci_{end}"
                        if name == model_label(self.family)
                        else f"{name}_roc_auc_ci_{end}"
                    )
                    if key in self.metrics:
                        entry[f"roc_auc_ci_{end}"] = self.metrics[key]
                models[str(name)] = entry
        return models
