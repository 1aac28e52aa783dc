"""Calibration that survives drift in the base rate.

Every head is calibrated with a sigmoid on the calibration slice (a later time slice than
the one it was fitted on; ``training.model.fit_calibrated``). The slope of that sigmoid is
a property of the model (how spread out its raw scores should be) and the slice estimates
it well. Its intercept, though, also carries the slice's *base rate*, and in real funnels
that swings from month to month with campaigns and seasons: on the X Education export
the calibration slice converts at 44 % while the weeks after it convert at 37 %, on
Olist 14 % against 8 %. A model calibrated to the last slice's rate carries that swing
into every probability it serves.

``prior="long-run"`` (the default) keeps the slice's slope and moves the intercept so that
the mean probability on the calibration slice equals the conversion rate over the whole
pre-holdout window (fit + calibration slices): the expected future rate is the long-run
rate, not last month's. ``prior="slice"`` keeps the plain sigmoid. Neither ever looks at
the holdout. The shift is one number per head, logged with the run.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from sklearn.calibration import CalibratedClassifierCV

CalibrationPrior = Literal["long-run", "slice"]
CALIBRATION_PRIORS: tuple[str, ...] = ("long-run", "slice")


def _response(estimator: Any, X: pd.DataFrame) -> np.ndarray:
    """What the calibrator was fitted on, as scikit-learn picks it: the decision function
    (raw log-odds) when the estimator has one, else the positive-class probability."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float)
    return np.asarray(estimator.predict_proba(X)[:, 1], dtype=float)


def shift_to_rate(cal: CalibratedClassifierCV, X_cal: pd.DataFrame, rate: float) -> float:
    """Move the intercept of every sigmoid calibrator of ``cal`` (in place) so that the
    mean calibrated probability on ``X_cal`` is ``rate``; returns the shift in log-odds
    (positive = probabilities raised). Only sigmoid calibration has an intercept."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"base rate must be strictly between 0 and 1, got {rate}")
    shifts = []
    for cc in cal.calibrated_classifiers_:
        calibrator = cc.calibrators[0]
        if not hasattr(calibrator, "b_"):
            raise TypeError("the long-run prior needs sigmoid calibration (method='sigmoid')")
        t = _response(cc.estimator, X_cal)
        a, b = float(calibrator.a_), float(calibrator.b_)

        # _SigmoidCalibration: p = 1 / (1 + exp(a * t + b)); a shift d gives b - d
        def gap(d: float, a: float = a, b: float = b, t: np.ndarray = t) -> float:
            return float(np.mean(1.0 / (1.0 + np.exp(a * t + b - d)))) - rate

        d = brentq(gap, -30.0, 30.0)
        calibrator.b_ = b - d
        shifts.append(d)
    return float(np.mean(shifts))


def apply_prior(
    cal: CalibratedClassifierCV,
    prior: str,
    X_cal: pd.DataFrame,
    y_fit: np.ndarray,
    y_cal: np.ndarray,
) -> dict[str, float]:
    """Apply the calibration prior to a head fitted on the calibration slice; returns what
    was done (the slice rate, the target rate and the shift) for the run's record."""
    if prior not in CALIBRATION_PRIORS:
        raise ValueError(f"calibration prior must be one of {CALIBRATION_PRIORS}, got {prior!r}")
    slice_rate = float(np.mean(y_cal))
    if prior == "slice":
        return {"slice_rate": slice_rate, "target_rate": slice_rate, "shift": 0.0}
    target = float(np.mean(np.concatenate([np.asarray(y_fit), np.asarray(y_cal)])))
    shift = shift_to_rate(cal, X_cal, target)
    return {"slice_rate": slice_rate, "target_rate": target, "shift": shift}
