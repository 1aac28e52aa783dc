"""Choose the model without peeking at the holdout, and calibrate it out of fold.

Everything before the holdout is cut, in time order and with all snapshots of a lead in
one block, into a first block and ``N_FOLDS`` later blocks. Fold *k* fits on every block
before block *k* and scores block *k* (rolling-origin, forward-chaining validation), so
every validation score comes from a model that never saw that block nor anything after it.

On these folds, and only there:

- the **family** (LightGBM, logistic regression, naive Bayes) and the **weighting**
  (uniform, or recent rows weighted up) are chosen by mean validation ROC AUC; LightGBM
  is kept only when it beats the best simpler family by more than ``LGBM_MARGIN``;
  anything closer goes to the simpler one;
- LightGBM's **number of trees** is chosen by mean validation log loss from a grid;
- the **calibration prior** (``long-run``: calibrated probabilities average to the rate of
  everything before the holdout; ``recent``: the plain sigmoid of the latest block, which
  averages to that block's rate) is chosen by log loss on the later folds, each calibrated from the
  folds before it, as the final model will be: ``long-run`` unless another prior beats it
  by more than ``PRIOR_MARGIN``;
- the calibration sigmoid of the final model is fitted on the out-of-fold scores of the
  latest validation block (see ``calibrate``).

The final model is then fitted on every row before the holdout, so the recent past (the
rows nearest to the leads it will score) is in it; the holdout only reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from scoring.heads import (
    FAMILIES,
    CalibratedHead,
    fit_estimator,
    fit_head,
    fit_sigmoid,
    intercept_for_rate,
    make_estimator,
    raw_score,
)

N_FOLDS = 3
#: share of the pre-holdout rows in the first block (fitted on by every fold)
FIRST_BLOCK = 0.4
#: LightGBM's number of trees is chosen from this grid on the validation folds
TREE_GRID: tuple[int, ...] = (50, 100, 200, 300, 450, 600)
#: a fold's LightGBM stops growing once this many trees in a row did not help validation
EARLY_STOPPING_ROUNDS = 50
WEIGHTINGS: tuple[str, ...] = ("uniform", "recent")
#: with ``recent`` weighting, a row's weight halves every third of the fitted time span
RECENCY_HALF_LIFE_SHARE = 1 / 3
PRIORS: tuple[str, ...] = ("long-run", "recent")
#: LightGBM is chosen only when its mean validation ROC AUC leads the best simpler family
#: by more than this: a lead inside fold-to-fold noise is not a reason for a harder model
LGBM_MARGIN = 0.002
#: another calibration prior replaces ``long-run`` only when it lowers the validation log
#: loss by more than this
PRIOR_MARGIN = 0.005

Progress = Callable[[str], None]


def forward_blocks(groups: pd.Index, n_folds: int = N_FOLDS) -> list[np.ndarray]:
    """Positions 0..n-1 (rows in time order) cut into a first block and ``n_folds`` later
    blocks of equal size, never splitting a group (a lead's snapshots)."""
    n = len(groups)
    codes = pd.factorize(np.asarray(groups))[0]
    cuts = [int(round(n * (FIRST_BLOCK + (1 - FIRST_BLOCK) * k / n_folds))) for k in range(n_folds)]
    bounds = [0]
    for cut in cuts:
        while 0 < cut < n and codes[cut] == codes[cut - 1]:  # move to a group boundary
            cut += 1
        bounds.append(max(cut, bounds[-1]))
    bounds.append(n)
    blocks = [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [b for b in blocks if len(b)]


def recency_weights(times: pd.Series) -> np.ndarray:
    """Weights that halve every ``RECENCY_HALF_LIFE_SHARE`` of the time span, newest = 1."""
    t = pd.to_datetime(times).to_numpy().astype("datetime64[s]").astype(np.float64)
    span = float(t.max() - t.min())
    if span <= 0:
        return np.ones(len(t))
    return 0.5 ** ((t.max() - t) / (span * RECENCY_HALF_LIFE_SHARE))


def _weights(weighting: str, times: pd.Series) -> np.ndarray | None:
    return recency_weights(times) if weighting == "recent" else None


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    return float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1]))


@dataclass
class FoldScores:
    """Out-of-fold raw scores of one candidate on every validation block."""

    family: str
    weighting: str
    oof: np.ndarray  # raw score per pre-holdout row (NaN in the first block)
    auc: list[float]
    n_trees: int | None = None
    log_loss: list[float] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.family}/{self.weighting}"

    @property
    def mean_auc(self) -> float:
        return float(np.nanmean(self.auc)) if self.auc else float("nan")


def cross_fit(
    family: str,
    weighting: str,
    columns: list[str],
    X: pd.DataFrame,
    y: np.ndarray,
    times: pd.Series,
    blocks: list[np.ndarray],
    params: dict[str, Any],
    seed: int,
    n_trees: int | None = None,
) -> FoldScores:
    """Forward-chaining out-of-fold raw scores. LightGBM without ``n_trees`` is fitted with
    the largest tree count of the grid once per fold and read at every count of the grid;
    the count with the best mean validation log loss is kept."""
    # tuned parameters (``train --params-from-run``) bring their own tree count
    tuned = params.get("n_estimators")
    grid = (n_trees,) if n_trees else ((int(tuned),) if tuned else TREE_GRID)
    lgbm_params = {**params, "n_estimators": max(grid)} if family == "lightgbm" else params
    per_count: dict[int | None, np.ndarray] = {}
    counts: tuple[int | None, ...] = grid if family == "lightgbm" else (None,)
    for k in counts:
        per_count[k] = np.full(len(y), np.nan)
    for i in range(1, len(blocks)):
        train = np.concatenate(blocks[:i])
        valid = blocks[i]
        Xt, yt = X.iloc[train], y[train]
        if yt.min() == yt.max():
            continue
        est = make_estimator(family, columns, Xt, lgbm_params, seed)
        weight = _weights(weighting, times.iloc[train])
        if family == "lightgbm" and len(counts) > 1:
            _fit_early_stopped(est, Xt, yt, weight, X.iloc[valid], y[valid])
        else:
            fit_estimator(est, Xt, yt, weight)
        for k in counts:
            per_count[k][valid] = raw_score(est, X.iloc[valid], num_iteration=k)
    losses = {k: _fold_losses(per_count[k], y, blocks) for k in counts}
    best = min(counts, key=lambda k: np.mean(losses[k]) if losses[k] else np.inf)
    oof = per_count[best]
    auc = [_auc(y[b], oof[b]) for b in blocks[1:] if not np.isnan(oof[b]).any()]
    return FoldScores(family, weighting, oof, auc, best, losses[best])


def _fit_early_stopped(
    est: Pipeline,
    X: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray | None,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
) -> None:
    """LightGBM on a fold, stopped once the validation block's log loss has not improved
    for ``EARLY_STOPPING_ROUNDS`` trees (the grid beyond that point reads every tree)."""
    select = est[:-1].fit(X)
    est.steps[-1][1].fit(
        select.transform(X),
        y,
        sample_weight=weight,
        eval_X=(select.transform(X_valid),),
        eval_y=(y_valid,),
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )


def _fold_losses(oof: np.ndarray, y: np.ndarray, blocks: list[np.ndarray]) -> list[float]:
    """Log loss of the raw scores read as probabilities, per validation block."""
    out = []
    for b in blocks[1:]:
        if not np.isnan(oof[b]).any():
            out.append(_log_loss(y[b], 1.0 / (1.0 + np.exp(-oof[b]))))
    return out


def calibrate(
    oof: np.ndarray, y: np.ndarray, blocks: list[np.ndarray], prior: str, upto: int | None = None
) -> tuple[float, float]:
    """(slope, intercept) from the out-of-fold scores of the latest validation block before
    ``upto`` (default: the latest of all), with a prior whose rate comes from the blocks
    before ``upto`` only.

    The latest block's scores come from the fold model that saw the most rows, the one
    nearest to the final model: earlier, weaker fold models spread their scores less, and
    a slope fitted on all blocks left the final model under-confident (holdout ECE on 20k
    simulated leads, Olist and X Education: 0.042 / 0.035 / 0.034 from all blocks, 0.027 /
    0.022 / 0.024 from the latest)."""
    upto = len(blocks) if upto is None else upto
    rows = blocks[upto - 1]
    rows = rows[~np.isnan(oof[rows])]
    slope, intercept = fit_sigmoid(oof[rows], y[rows])
    if prior == "recent":  # the plain sigmoid: its mean is the latest block's rate
        return slope, intercept
    if prior != "long-run":
        raise ValueError(f"calibration prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    rate = float(y[np.concatenate(blocks[:upto])].mean())
    if not 0.0 < rate < 1.0:
        return slope, intercept
    return slope, intercept_for_rate(slope, intercept, oof[rows], rate)


def prior_rate(y: np.ndarray, blocks: list[np.ndarray], prior: str) -> float:
    """The conversion rate a head calibrated with ``prior`` averages to: what "no skill"
    means for it (the same rate said for every lead)."""
    if prior == "recent":
        return float(y[blocks[-1]].mean())
    return float(y[np.concatenate(blocks)].mean())


def prior_losses(oof: np.ndarray, y: np.ndarray, blocks: list[np.ndarray]) -> dict[str, float]:
    """Each prior's log loss on the later validation blocks, each calibrated only from the
    blocks before it (as the final model is calibrated from every block before the
    holdout)."""
    out = {}
    for prior in PRIORS:
        losses = []
        for k in range(2, len(blocks)):
            slope, intercept = calibrate(oof, y, blocks, prior, upto=k)
            p = 1.0 / (1.0 + np.exp(-(slope * oof[blocks[k]] + intercept)))
            losses.append(_log_loss(y[blocks[k]], p))
        out[prior] = float(np.mean(losses)) if losses else float("nan")
    return out


def pick_prior(losses: dict[str, float]) -> str:
    """``long-run`` unless another prior beats it on the validation folds by more than
    ``PRIOR_MARGIN``: conversion rates swing with campaigns and mostly swing back (X
    Education's and Olist's holdouts convert below their last pre-holdout months), so the
    recent rate is followed only when the folds show it clearly pays."""
    base = losses.get("long-run", float("nan"))
    finite = {k: v for k, v in losses.items() if np.isfinite(v)}
    if not finite:
        return "long-run"
    best = min(finite, key=finite.get)
    if not np.isfinite(base) or finite[best] < base - PRIOR_MARGIN:
        return best
    return "long-run"


@dataclass
class Choice:
    """What the validation folds chose, and the figures that chose it."""

    family: str
    weighting: str
    n_trees: int | None
    prior: str
    candidates: pd.DataFrame  # one row per family/weighting: mean and per-fold AUC
    prior_log_loss: dict[str, float]
    scores: dict[str, FoldScores]  # by candidate name
    reason: str

    @property
    def name(self) -> str:
        return f"{self.family}/{self.weighting}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "weighting": self.weighting,
            "n_trees": self.n_trees,
            "calibration_prior": self.prior,
            "reason": self.reason,
            "validation": {
                name: {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
                for name, row in self.candidates.iterrows()
            },
            "prior_log_loss": self.prior_log_loss,
        }


def choose(
    columns: list[str],
    X: pd.DataFrame,
    y: np.ndarray,
    times: pd.Series,
    blocks: list[np.ndarray],
    params: dict[str, Any],
    seed: int,
    families: tuple[str, ...] = FAMILIES,
    prior: str = "auto",
    progress: Progress = lambda msg: None,
) -> Choice:
    """Score every family and weighting on the forward-chaining folds and choose."""
    scores: dict[str, FoldScores] = {}
    for family in families:
        for weighting in WEIGHTINGS:
            progress(f"validating {family} ({weighting} weights) on {len(blocks) - 1} time folds")
            s = cross_fit(family, weighting, columns, X, y, times, blocks, params, seed)
            scores[s.name] = s
    chosen, reason = pick_family(scores, families)
    losses = prior_losses(chosen.oof, y, blocks)
    prior_chosen = pick_prior(losses) if prior == "auto" else prior
    return Choice(
        chosen.family,
        chosen.weighting,
        chosen.n_trees,
        prior_chosen,
        candidate_table(scores),
        losses,
        scores,
        reason,
    )


def candidate_table(scores: dict[str, FoldScores]) -> pd.DataFrame:
    """One row per family/weighting: mean and per-fold validation ROC AUC, mean log loss
    and LightGBM's tree count."""
    rows = {
        name: {
            "mean_roc_auc": s.mean_auc,
            **{f"fold{i + 1}_roc_auc": a for i, a in enumerate(s.auc)},
            "mean_log_loss": float(np.mean(s.log_loss)) if s.log_loss else float("nan"),
            "n_trees": float(s.n_trees) if s.n_trees else float("nan"),
        }
        for name, s in scores.items()
    }
    return pd.DataFrame(rows).T


def _best_weighting(scores: dict[str, FoldScores], family: str) -> FoldScores:
    """A family's better weighting: recent weighting is kept only when it wins."""
    options = [scores[f"{family}/{w}"] for w in WEIGHTINGS]
    return max(
        options,
        key=lambda s: (np.nan_to_num(s.mean_auc, nan=-1), -WEIGHTINGS.index(s.weighting)),
    )


def pick_family(scores: dict[str, FoldScores], families: tuple[str, ...]) -> tuple[FoldScores, str]:
    """The chosen candidate and why: LightGBM when it leads the best simpler family by more
    than ``LGBM_MARGIN`` in mean validation ROC AUC, else that simpler family."""
    per_family = {f: _best_weighting(scores, f) for f in families}
    simple = [per_family[f] for f in families if f != "lightgbm"]
    best_simple = max(simple, key=lambda s: np.nan_to_num(s.mean_auc, nan=-1)) if simple else None
    lgbm = per_family.get("lightgbm")
    if lgbm is not None and (
        best_simple is None or lgbm.mean_auc > best_simple.mean_auc + LGBM_MARGIN
    ):
        return lgbm, (
            f"lightgbm ({lgbm.weighting} weights, {lgbm.n_trees} trees) leads on the validation "
            f"folds: mean ROC AUC {lgbm.mean_auc:.3f}"
            + (
                f" against {best_simple.mean_auc:.3f} for {best_simple.family} "
                f"({lgbm.mean_auc - best_simple.mean_auc:+.3f})"
                if best_simple
                else ""
            )
        )
    assert best_simple is not None
    return best_simple, (
        f"{best_simple.family} ({best_simple.weighting} weights) is as good as LightGBM "
        f"on the validation folds (LightGBM must lead by more than {LGBM_MARGIN}): "
        f"mean ROC AUC {best_simple.mean_auc:.3f}"
        + (
            f" against {lgbm.mean_auc:.3f} for lightgbm "
            f"({best_simple.mean_auc - lgbm.mean_auc:+.3f}), so the simpler model is used"
            if lgbm
            else ""
        )
    )


def fit_calibrated_head(
    family: str,
    weighting: str,
    n_trees: int | None,
    prior: str,
    columns: list[str],
    X: pd.DataFrame,
    y: np.ndarray,
    times: pd.Series,
    blocks: list[np.ndarray],
    params: dict[str, Any],
    seed: int,
    oof: np.ndarray | None = None,
) -> CalibratedHead:
    """A head of the chosen kind: sigmoid from out-of-fold scores (computed here unless
    given), estimator fitted on every row of ``X`` (all of them before the holdout)."""
    if oof is None:
        oof = cross_fit(
            family, weighting, columns, X, y, times, blocks, params, seed, n_trees=n_trees
        ).oof
    slope, intercept = calibrate(oof, y, blocks, prior)
    final_params = {**params, "n_estimators": n_trees} if n_trees else params
    return fit_head(
        family,
        columns,
        X,
        y,
        _weights(weighting, times),
        slope,
        intercept,
        final_params,
        seed,
        weighting,
    )
