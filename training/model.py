"""The object that MLflow logs and BentoML serves.

``LeadScoringModel`` bundles, for one funnel target, a calibrated conversion model over all
features, a calibrated fit model (firmographics only) and a calibrated interest model
(engagement only), plus the quadrant policy learned on training data. Its ``score`` method
turns a feature frame (from ``features.build.compute_features``) into the answer columns;
training, batch scoring and the HTTP service all call it, so there is one scoring path.

Serving never imports this module by name: it receives the unpickled object from the
model store and calls ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from features.build import FeatureConfig
from features.content import ContentLibrary
from features.personas import PersonaConfig
from features.quadrant_policy import QuadrantPolicy, assign_quadrants


class ColumnSelector(TransformerMixin, BaseEstimator):
    """Keeps the named columns in a fixed order, so the model never depends on input order."""

    def __init__(self, columns: list[str] | None = None) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> ColumnSelector:
        self.columns_ = list(self.columns if self.columns is not None else X.columns)
        self.categories_ = {
            c: X[c].dtype for c in self.columns_ if isinstance(X[c].dtype, pd.CategoricalDtype)
        }
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise KeyError(f"feature columns missing from input: {missing}")
        out = X[self.columns_]
        # Inputs that arrive as strings (MLflow schema enforcement, JSON) get the exact
        # categories seen in training; unseen values become missing, as LightGBM would.
        recast = {c: d for c, d in self.categories_.items() if out[c].dtype != d}
        if recast:
            out = out.astype(recast)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.columns_, dtype=object)


# Boosted stumps (two leaves): an additive model over the features, which is what a few
# thousand snapshots support; chosen on validation log loss (calibration slice), never on
# the holdout. Deeper trees (15 leaves) lost ~0.005 ROC AUC to logistic regression here.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 500,
    "learning_rate": 0.05,
    "num_leaves": 2,
    "min_child_samples": 30,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.7,
    "reg_lambda": 1.0,
    "cat_smooth": 20,
    "verbose": -1,
    # the same data and seed give the same trees (and so identical metrics) on any run
    "deterministic": True,
    "force_row_wise": True,
}

N_REASONS = 3  # reasons per direction: the top 3 pushing the score up and the top 3 down


def make_pipeline(columns: list[str], params: dict[str, Any], seed: int) -> Pipeline:
    """Column selection + LightGBM: the estimator behind every calibrated head."""
    clf = lgb.LGBMClassifier(**{**DEFAULT_LGBM_PARAMS, **params}, random_state=seed, n_jobs=2)
    return Pipeline([("select", ColumnSelector(columns)), ("lgbm", clf)])


def fit_calibrated(
    columns: list[str],
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_cal: pd.DataFrame,
    y_cal: np.ndarray,
    params: dict[str, Any],
    seed: int,
    method: str = "sigmoid",
) -> CalibratedClassifierCV:
    """Fit LightGBM on the earlier slice and calibrate it, frozen, on the later slice."""
    pipe = make_pipeline(columns, params, seed)
    pipe.fit(X_fit, y_fit)
    cal = CalibratedClassifierCV(FrozenEstimator(pipe), method=method)
    cal.fit(X_cal, y_cal)
    return cal


def fitted_pipeline(cal: CalibratedClassifierCV) -> Pipeline:
    """The (frozen) LightGBM pipeline inside a calibrated head."""
    est = cal.calibrated_classifiers_[0].estimator
    return est.estimator if isinstance(est, FrozenEstimator) else est


def single_thread(cal: CalibratedClassifierCV) -> None:
    """Online scoring answers few rows: OpenMP start-up costs more than the trees."""
    for c in cal.calibrated_classifiers_:
        est = c.estimator
        pipe = est.estimator if isinstance(est, FrozenEstimator) else est
        pipe.named_steps["lgbm"].set_params(n_jobs=1)


def contributions(cal: CalibratedClassifierCV, X: pd.DataFrame) -> pd.DataFrame:
    """Per-feature contributions to the head's raw LightGBM score (log-odds, before
    calibration) plus a ``bias`` column; each row sums to the raw score."""
    pipe = fitted_pipeline(cal)
    Xs = pipe.named_steps["select"].transform(X)
    lgbm = pipe.named_steps["lgbm"]
    contrib = lgbm.predict(Xs, pred_contrib=True, num_threads=lgbm.get_params()["n_jobs"])
    return pd.DataFrame(contrib, index=X.index, columns=[*Xs.columns, "bias"])


def raw_score(cal: CalibratedClassifierCV, X: pd.DataFrame) -> np.ndarray:
    """The head's raw LightGBM score (log-odds before calibration)."""
    pipe = fitted_pipeline(cal)
    Xs = pipe.named_steps["select"].transform(X)
    return pipe.named_steps["lgbm"].predict(Xs, raw_score=True)


def reasons(contrib: pd.DataFrame, X: pd.DataFrame, n: int = N_REASONS) -> list[list[dict]]:
    """Per row: the ``n`` features pushing the score up most and the ``n`` pushing it down
    most, each as {feature, value, contribution, text}, strongest first."""
    from features.explain import phrase, value_text

    values = contrib.drop(columns="bias")
    names = values.columns.to_numpy()
    c = values.to_numpy()
    order = np.argsort(-c, axis=1, kind="stable")
    out: list[list[dict]] = []
    for i in range(len(c)):
        row = X.iloc[i]
        picked = [j for j in order[i, :n] if c[i, j] > 0]
        picked += [j for j in order[i, ::-1][:n] if c[i, j] < 0]
        out.append(
            [
                {
                    "feature": str(names[j]),
                    "value": value_text(row[names[j]]),
                    "contribution": round(float(c[i, j]), 4),
                    "text": phrase(str(names[j]), row[names[j]]),
                }
                for j in picked
            ]
        )
    return out


@dataclass
class LeadScoringModel:
    """Calibrated conversion, fit and interest models for one target, the quadrant cut-offs
    learned on training data, and the marketing configuration (personas, content) that
    was in force when it was trained: all versioned together."""

    target: str
    from_stage: str
    horizon_days: int
    feature_columns: list[str]
    conversion: CalibratedClassifierCV
    fit: CalibratedClassifierCV
    interest: CalibratedClassifierCV
    policy: QuadrantPolicy
    fit_threshold: float
    interest_threshold: float
    feature_config: FeatureConfig
    personas: PersonaConfig
    content: ContentLibrary
    metadata: dict[str, Any] = field(default_factory=dict)
    # calibrated conversion heads for the other funnel steps (e.g. {"mql": ...}): one
    # served model answers p_mql and p_sal; ``target`` is the primary one (p_convert)
    heads: dict[str, CalibratedClassifierCV] = field(default_factory=dict)

    @property
    def quadrant_thresholds(self) -> dict[str, Any]:
        return {
            "fit_threshold": round(self.fit_threshold, 2),
            "interest_threshold": round(self.interest_threshold, 2),
            "method": self.policy.method,
            "capacity_per_week": self.policy.capacity_per_week,
        }

    @property
    def probability_field(self) -> str:
        return f"p_{self.target}"

    def for_serving(self) -> LeadScoringModel:
        for cal in (self.conversion, self.fit, self.interest, *self.heads.values()):
            single_thread(cal)
        return self

    @property
    def targets(self) -> list[str]:
        """Every funnel target answered, the primary one first."""
        return [self.target, *(t for t in self.heads if t != self.target)]

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Conversion-head contributions (log-odds) per feature plus ``bias``."""
        return contributions(self.conversion, X)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return raw_score(self.conversion, X)

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        """Feature frame -> answer frame (index = lead_id), the one scoring path."""
        p = np.round(self.conversion.predict_proba(X)[:, 1], 6)
        fit_score = np.round(100.0 * self.fit.predict_proba(X)[:, 1], 1)
        interest_score = np.round(100.0 * self.interest.predict_proba(X)[:, 1], 1)
        extra = {
            f"p_{t}": np.round(head.predict_proba(X)[:, 1], 6)
            for t, head in getattr(self, "heads", {}).items()
            if t != self.target
        }
        out = pd.DataFrame(
            {
                "p_convert": p,
                self.probability_field: p,
                **extra,
                "fit_score": fit_score,
                "interest_score": interest_score,
                "quadrant": assign_quadrants(
                    fit_score, interest_score, self.fit_threshold, self.interest_threshold
                ),
            },
            index=X.index,
        )
        out["reasons"] = reasons(self.contributions(X), X) if len(X) else []
        return out


class LeadScoringPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: input = feature frame, output = answer frame."""

    def __init__(self, model: LeadScoringModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.model.score(model_input).reset_index(drop=True)
