"""Baselines the chosen model must beat, fitted on the same rows (everything before the
holdout), calibrated the same way (a sigmoid on forward-chaining out-of-fold scores, with
the calibration prior the validation folds chose) and scored on the same time holdout.

- ``points``: hand-set points with decay, like HubSpot's and Mautic's defaults: points per
  event type (a demo request is worth more than a page view), full points for the last
  7 days, half for 8-30 days, a quarter for 31-90 days, minus points for unsubscribes and
  bounces, plus fit points for seniority, company size and a business e-mail address.
- ``naive_bayes``: naive Bayes over field-value frequencies, like Odoo's predictive lead
  scoring: categorical fields as they are, numbers cut into quantile bins.
- ``logistic``: logistic regression on one-hot categoricals and every number twice, as it
  is and log-scaled (``scoring.heads.logistic_pipeline``; a weak baseline flatters the
  model it is compared with).

Naive Bayes and logistic regression are also model families the trainer may choose
(``training.selection``): when one of them wins on validation, it is the served model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from training.selection import Choice, calibrate, fit_calibrated_head

EVENT_POINTS: dict[str, float] = {
    "demo_request": 25,
    "pricing_view": 10,
    "webinar_attended": 15,
    "form_submit": 10,
    "trade_fair_visit": 10,
    "content_download": 8,
    "webinar_registered": 5,
    "newsletter_click": 3,
    "email_click": 3,
    "blog_read": 2,
    "page_view": 1,
    "newsletter_open": 1,
    "email_open": 1,
    "referral": 5,
}
WINDOW_WEIGHT = {7: 1.0, 30: 0.5, 90: 0.25}  # points decay by age band
SENIORITY_POINTS = {"c_level": 15, "vp": 15, "head": 12, "manager": 8, "senior": 4}
SIZE_POINTS = {"50-249": 5, "250-999": 10, "1000-4999": 10, "5000+": 5}


def points_score(X: pd.DataFrame) -> np.ndarray:
    """Hand-set points with decay over the feature frame (no learning)."""
    score = np.zeros(len(X))
    for etype, pts in EVENT_POINTS.items():
        previous = np.zeros(len(X))
        for w, weight in WINDOW_WEIGHT.items():
            col = f"n_{etype}_{w}d"
            if col not in X:
                continue
            n = X[col].to_numpy(dtype=float)
            score += pts * weight * (n - previous)  # events in this age band only
            previous = n
    score -= 20 * X["unsubscribed"].to_numpy(dtype=float)
    score -= 15 * X["bounced"].to_numpy(dtype=float)
    score += X["seniority"].astype(object).map(SENIORITY_POINTS).fillna(0).to_numpy(dtype=float)
    score += X["size_band"].astype(object).map(SIZE_POINTS).fillna(0).to_numpy(dtype=float)
    score += 5 * (X["free_mail"].to_numpy(dtype=float) == 0)
    return score


def points_raw(X: pd.DataFrame) -> np.ndarray:
    """The rule score as the raw input of a sigmoid (what a calibrated rule score is)."""
    return np.log1p(np.maximum(points_score(X), 0))


#: the learned baselines are model families; points_decay is a fixed rule
LEARNED_BASELINES: tuple[str, ...] = ("naive_bayes", "logistic")


def fit_baselines(
    columns: list[str],
    X_pre: pd.DataFrame,
    y_pre: np.ndarray,
    times: pd.Series,
    blocks: list[np.ndarray],
    choice: Choice,
    X_hold: pd.DataFrame,
    params: dict[str, Any],
    seed: int,
) -> dict[str, np.ndarray]:
    """Holdout probabilities of every baseline (and of LightGBM when a simpler family was
    chosen), each fitted on every row before the holdout with uniform weights (LightGBM
    with its best weighting and tree count) and calibrated like the chosen model."""
    out: dict[str, np.ndarray] = {}
    if choice.family != "lightgbm":
        lgbm = max(
            (choice.scores[f"lightgbm/{w}"] for w in ("uniform", "recent")
             if f"lightgbm/{w}" in choice.scores),
            key=lambda s: np.nan_to_num(s.mean_auc, nan=-1),
        )  # fmt: skip
        head = fit_calibrated_head(
            "lightgbm", lgbm.weighting, lgbm.n_trees, choice.prior, columns, X_pre, y_pre,
            times, blocks, params, seed, oof=lgbm.oof,
        )  # fmt: skip
        out["lightgbm"] = head.predict_proba(X_hold)[:, 1]
    raw = points_raw(X_pre)
    oof = raw.copy()
    oof[blocks[0]] = np.nan
    slope, intercept = calibrate(oof, y_pre, blocks, choice.prior)
    out["points_decay"] = 1.0 / (1.0 + np.exp(-(slope * points_raw(X_hold) + intercept)))
    for family in LEARNED_BASELINES:
        scores = choice.scores.get(f"{family}/uniform")
        head = fit_calibrated_head(
            family, "uniform", None, choice.prior, columns, X_pre, y_pre, times, blocks,
            params, seed, oof=None if scores is None else scores.oof,
        )  # fmt: skip
        out[family] = head.predict_proba(X_hold)[:, 1]
    return out
