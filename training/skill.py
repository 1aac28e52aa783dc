"""Does a model know anything? The minimum-skill verdict on a time holdout.

A model trained on labels that carry no signal still produces probabilities, a ROC AUC
near 0.5 and a model card; an 8,800-opportunity CRM export with AUC 0.49 to 0.52 was
registered and promoted that way. The verdict says "no skill" when either

- the 95 % bootstrap interval of the holdout ROC AUC includes 0.5 (or lies below it): the
  ranking is not distinguishable from chance on this holdout, or
- the log loss is not better than predicting the base rate known before the holdout for
  every row: the probabilities are worse than knowing nothing about the lead.

``train`` states the verdict and the promotion gate refuses a challenger without skill
(unless forced).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from training.evaluate import auc_intervals

#: probabilities are clipped as ``binary_metrics`` clips them, so one confident miss
#: cannot make the log loss infinite
_EPS = 1e-6


@dataclass(frozen=True)
class SkillVerdict:
    has_skill: bool
    roc_auc: float
    ci_low: float  # 95 % bootstrap interval of ROC AUC (grouped by lead when groups given)
    ci_high: float
    log_loss: float
    constant_log_loss: float  # log loss of predicting base_rate for every row
    base_rate: float  # the rate known before the holdout (pre-holdout positive rate)
    reasons: tuple[str, ...]  # why no skill, empty when has_skill

    def sentence(self) -> str:
        """The verdict in one plain sentence."""
        if not self.has_skill:
            return "No skill: " + ", and ".join(self.reasons) + "."
        return (
            f"Skill: ROC AUC {self.roc_auc:.2f} ({self.ci_low:.2f} to {self.ci_high:.2f}), "
            f"log loss {self.log_loss:.3f} against {self.constant_log_loss:.3f} for the "
            f"base rate {100 * self.base_rate:.1f} %."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (a figure that could not be measured is None, not NaN)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "skill": "ok" if self.has_skill else "none",
            "roc_auc": num(self.roc_auc),
            "roc_auc_ci_low": num(self.ci_low),
            "roc_auc_ci_high": num(self.ci_high),
            "log_loss": num(self.log_loss),
            "constant_log_loss": num(self.constant_log_loss),
            "base_rate": num(self.base_rate),
            "reasons": list(self.reasons),
            "sentence": self.sentence(),
        }


def skill_verdict(
    y: np.ndarray,
    p: np.ndarray,
    base_rate: float,
    groups: Sequence | None = None,
    draws: int = 200,
    seed: int = 0,
) -> SkillVerdict:
    """The verdict on holdout labels ``y`` and probabilities ``p``. ``base_rate``: the
    positive rate known before the holdout (of the rows the model was trained on), the
    constant predictor's answer. ``groups``: the lead of each row, so the bootstrap
    resamples whole leads (see ``training.evaluate.auc_intervals``)."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    rate = float(np.clip(base_rate, _EPS, 1 - _EPS))
    if len(y) == 0:
        nan = float("nan")
        return SkillVerdict(False, nan, nan, nan, nan, nan, float(base_rate),
                            ("the holdout has no rows",))  # fmt: skip
    loss = float(log_loss(y, p, labels=[0, 1]))
    constant = float(log_loss(y, np.full(len(y), rate), labels=[0, 1]))
    reasons = []
    if y.min() == y.max():
        auc = low = high = float("nan")
        reasons.append(
            f"the holdout's {len(y)} rows are all {'positive' if y[0] else 'negative'}, "
            "so no ranking can be measured"
        )
    else:
        auc = float(roc_auc_score(y, p))
        ci = auc_intervals(y, {"model": p}, reference="model", draws=draws, seed=seed,
                           groups=groups)  # fmt: skip
        low, high = ci["roc_auc_ci_low"], ci["roc_auc_ci_high"]
        if low <= 0.5:
            where = "includes 0.5" if high >= 0.5 else "lies below 0.5"
            reasons.append(
                f"the holdout ROC AUC {auc:.2f} (95 % interval {low:.2f} to {high:.2f}) {where}"
            )
    if loss >= constant:
        subject = "its log loss" if reasons else "the holdout log loss"
        reasons.append(
            f"{subject} {loss:.3f} is not better than predicting the base rate "
            f"{100 * base_rate:.1f} % for everyone ({constant:.3f})"
        )
    return SkillVerdict(
        has_skill=not reasons,
        roc_auc=auc,
        ci_low=low,
        ci_high=high,
        log_loss=loss,
        constant_log_loss=constant,
        base_rate=float(base_rate),
        reasons=tuple(reasons),
    )
