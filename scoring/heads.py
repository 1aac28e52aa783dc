"""Calibrated heads of every model family the trainer may choose.

A head turns a feature frame into one calibrated probability: an estimator (LightGBM,
logistic regression or naive Bayes behind a ``ColumnSelector``) gives a raw score in
log-odds, and a sigmoid of our own (``p = expit(slope * raw + intercept)``) calibrates it.
Every family also gives per-feature contributions to the raw score plus a ``bias`` column
that sum to it, so the reasons behind a score read the same whichever family won:

- LightGBM: TreeSHAP (``pred_contrib``);
- logistic regression: each feature's share of the linear score, relative to the average
  training row (exact SHAP values of a linear model with independent features);
- naive Bayes: each feature's log-likelihood ratio, relative to its training average.

The sigmoid is fitted on out-of-fold scores (``training.selection``), never on rows the
estimator was fitted on, so the final estimator can be fitted on every row before the
holdout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import CategoricalNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

#: The families a head can be, simplest last.
FAMILIES: tuple[str, ...] = ("lightgbm", "logistic", "naive_bayes")

# Small trees (four leaves): mostly additive, plus the two- and three-way interactions
# that sales rules create (a recent demo request from a company of the right size is
# fast-tracked). On the simulator they beat logistic regression by ~0.01 ROC AUC, where
# stumps only tie it; 15 leaves overfit a few thousand snapshots. The number of trees is
# chosen on the validation folds (``training.selection``), never on the holdout.
DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "num_leaves": 4,
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


#: LightGBM fits on fewer rows than this run on one thread: on a few thousand rows a second
#: thread costs more than it saves, ~9x more when the other core is busy (measured here)
PARALLEL_ROWS = 50_000


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


class ToObject(TransformerMixin, BaseEstimator):
    """Categoricals as plain objects with an explicit 'missing' level."""

    def fit(self, X: pd.DataFrame, y: object = None) -> ToObject:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.astype(object).where(X.notna(), "missing")

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


#: Separates a column from its category in one-hot feature names (never in a column name).
_SEP = "\x1f"


def _one_hot_name(feature: str, category: Any) -> str:
    return f"{feature}{_SEP}{category}"


def _signed_log1p(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.log1p(np.abs(a))


def _plus_one(a: np.ndarray) -> np.ndarray:
    return a + 1


def split_columns(X: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """(categorical, numeric) columns among ``columns``."""
    cats = [c for c in columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    return cats, [c for c in columns if c not in cats]


def lightgbm_pipeline(columns: list[str], params: dict[str, Any], seed: int) -> Pipeline:
    """Column selection + LightGBM."""
    clf = lgb.LGBMClassifier(**{**DEFAULT_LGBM_PARAMS, **params}, random_state=seed, n_jobs=2)
    return Pipeline([("select", ColumnSelector(columns)), ("lgbm", clf)])


def logistic_pipeline(columns: list[str], X: pd.DataFrame) -> Pipeline:
    """Logistic regression on one-hot categoricals and every number twice, as it is and
    log-scaled: either form alone leaves it weaker than it should be on some data
    (log-scaling alone cost 0.012 ROC AUC on X Education, where time on the website works
    linearly; the raw form alone 0.004 on heavy-tailed simulated event counts)."""
    cats, nums = split_columns(X, columns)
    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    ToObject(),
                    OneHotEncoder(
                        handle_unknown="ignore",
                        min_frequency=20,
                        sparse_output=False,
                        feature_name_combiner=_one_hot_name,
                    ),
                ),
                cats,
            ),
            (
                "log",
                make_pipeline(
                    FunctionTransformer(_signed_log1p, feature_names_out="one-to-one"),
                    # an all-missing column (no such field in this CRM) imputes as 0
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                nums,
            ),
            (
                "raw",
                make_pipeline(
                    SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                ),
                nums,
            ),
        ],
        sparse_threshold=0.0,
    )
    return Pipeline(
        [
            ("select", ColumnSelector(columns)),
            ("pre", pre),
            ("clf", LogisticRegression(C=0.1, solver="newton-cholesky", max_iter=200)),
        ]
    )


def naive_bayes_pipeline(columns: list[str], X: pd.DataFrame) -> Pipeline:
    """Naive Bayes over field-value frequencies, like Odoo's predictive lead scoring:
    categorical fields as they are, numbers cut into quantile bins."""
    cats, nums = split_columns(X, columns)
    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(
                    ToObject(),
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=-1,
                        encoded_missing_value=-1,
                    ),
                    FunctionTransformer(_plus_one, feature_names_out="one-to-one"),
                ),
                cats,
            ),
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
                    KBinsDiscretizer(
                        n_bins=5,
                        encode="ordinal",
                        strategy="quantile",
                        quantile_method="averaged_inverted_cdf",
                    ),
                ),
                nums,
            ),
        ]
    )
    return Pipeline(
        [
            ("select", ColumnSelector(columns)),
            ("pre", pre),
            ("clf", CategoricalNB(alpha=1.0, min_categories=64)),
        ]
    )


def make_estimator(
    family: str, columns: list[str], X: pd.DataFrame, params: dict[str, Any], seed: int
) -> Pipeline:
    if family == "lightgbm":
        pipe = lightgbm_pipeline(columns, params, seed)
        if len(X) < PARALLEL_ROWS:
            pipe.named_steps["lgbm"].set_params(n_jobs=1)
        return pipe
    if family == "logistic":
        return logistic_pipeline(columns, X)
    if family == "naive_bayes":
        return naive_bayes_pipeline(columns, X)
    raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")


def fit_estimator(
    est: Pipeline, X: pd.DataFrame, y: np.ndarray, weight: np.ndarray | None = None
) -> Pipeline:
    """Fit with optional sample weights (handed to the last step)."""
    import warnings

    kwargs = {} if weight is None else {f"{est.steps[-1][0]}__sample_weight": weight}
    with warnings.catch_warnings():
        # KBinsDiscretizer (naive Bayes) on sparse event counts: constant columns and
        # duplicate quantile edges are expected and handled by sklearn; not user news.
        warnings.filterwarnings("ignore", r"Feature \d+ is constant", UserWarning)
        warnings.filterwarnings("ignore", r"Bins whose width are too small", UserWarning)
        est.fit(X, y, **kwargs)
    return est


def raw_score(est: Pipeline, X: pd.DataFrame, num_iteration: int | None = None) -> np.ndarray:
    """The estimator's score in log-odds (before calibration)."""
    last = est.steps[-1][1]
    Z = est[:-1].transform(X)
    if isinstance(last, lgb.LGBMClassifier):
        return np.asarray(last.predict(Z, raw_score=True, num_iteration=num_iteration))
    if isinstance(last, CategoricalNB):
        jll = last.predict_joint_log_proba(_nb_codes(last, Z))
        return jll[:, 1] - jll[:, 0]
    return np.asarray(last.decision_function(Z), dtype=float)


def _nb_codes(nb: CategoricalNB, Z: np.ndarray) -> np.ndarray:
    """Category codes as naive Bayes reads them; codes it never saw read as the unknown 0."""
    codes = np.asarray(Z, dtype=np.int64)
    limit = np.asarray(nb.n_categories_) - 1
    return np.where((codes < 0) | (codes > limit), 0, codes)


def contributions(est: Pipeline, X: pd.DataFrame, means: np.ndarray | None) -> pd.DataFrame:
    """Per-feature contributions to :func:`raw_score` plus ``bias``; rows sum to it.
    ``means``: each linear term's average on the training rows (logistic, naive Bayes)."""
    select = est.named_steps["select"]
    columns = list(select.columns_)
    last = est.steps[-1][1]
    Z = est[:-1].transform(X)
    if isinstance(last, lgb.LGBMClassifier):
        threads = last.get_params()["n_jobs"]
        out = last.predict(Z, pred_contrib=True, num_threads=threads)
        return pd.DataFrame(out, index=X.index, columns=[*columns, "bias"])
    terms, bias = linear_terms(est, Z)
    if means is None:
        means = np.zeros(terms.shape[1])
    group = term_groups(est)
    contrib = (terms - means) @ group
    out = np.column_stack([contrib, np.full(len(Z), bias + float(means.sum()))])
    return pd.DataFrame(out, index=X.index, columns=[*columns, "bias"])


def linear_terms(est: Pipeline, Z: np.ndarray) -> tuple[np.ndarray, float]:
    """The additive terms of a logistic or naive-Bayes score and its constant: one column
    per transformed feature (logistic) or per input feature (naive Bayes)."""
    last = est.steps[-1][1]
    if isinstance(last, CategoricalNB):
        codes = _nb_codes(last, Z)
        terms = np.empty(codes.shape, dtype=float)
        for j, table in enumerate(last.feature_log_prob_):
            llr = table[1] - table[0]
            terms[:, j] = llr[codes[:, j]]
        prior = last.class_log_prior_
        return terms, float(prior[1] - prior[0])
    Z = np.asarray(Z, dtype=float)
    return Z * last.coef_[0], float(last.intercept_[0])


def term_groups(est: Pipeline) -> np.ndarray:
    """(terms x input columns) 0/1 matrix: which input column each linear term belongs to."""
    columns = list(est.named_steps["select"].columns_)
    position = {c: i for i, c in enumerate(columns)}
    names = est.named_steps["pre"].get_feature_names_out()
    group = np.zeros((len(names), len(columns)))
    for k, name in enumerate(names):
        base = str(name).split("__", 1)[1]
        base = base.split(_SEP, 1)[0].removeprefix("missingindicator_")
        group[k, position[base]] = 1.0
    return group


def fit_sigmoid(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of ``p = expit(slope * raw + intercept)`` by maximum likelihood
    (Platt scaling), our own few lines instead of scikit-learn's private calibrator."""
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=float)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] * raw + w[1]
        p = expit(z)
        # log(1 + e^z) - y z, stable for large |z|
        value = float(np.sum(np.logaddexp(0.0, z) - y * z))
        g = p - y
        return value, np.array([float(g @ raw), float(g.sum())])

    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    start = np.array([1.0, float(np.log(rate / (1 - rate)))])
    res = minimize(loss, start, jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def intercept_for_rate(slope: float, intercept: float, raw: np.ndarray, rate: float) -> float:
    """The intercept that makes the mean calibrated probability over ``raw`` equal
    ``rate`` (the slope is kept: how spread out the scores should be is the model's)."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"base rate must be strictly between 0 and 1, got {rate}")

    def gap(b: float) -> float:
        return float(np.mean(expit(slope * raw + b))) - rate

    return float(brentq(gap, intercept - 30.0, intercept + 30.0))


@dataclass
class CalibratedHead:
    """One calibrated probability: a fitted estimator of some family and the sigmoid that
    turns its raw score into a probability."""

    family: str
    estimator: Pipeline
    slope: float
    intercept: float
    weighting: str = "uniform"
    # average of each linear term on the training rows (contributions are relative to it)
    term_means: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.estimator.named_steps["select"].columns_)

    @property
    def lgbm(self) -> lgb.LGBMClassifier | None:
        last = self.estimator.steps[-1][1]
        return last if isinstance(last, lgb.LGBMClassifier) else None

    def raw(self, X: pd.DataFrame) -> np.ndarray:
        return raw_score(self.estimator, X)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return expit(self.slope * raw + self.intercept)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.calibrate(self.raw(X))
        return np.column_stack([1.0 - p, p])

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        return contributions(self.estimator, X, self.term_means)

    def single_thread(self) -> None:
        """Online scoring answers few rows: OpenMP start-up costs more than the trees."""
        if self.lgbm is not None:
            self.lgbm.set_params(n_jobs=1)


def fit_head(
    family: str,
    columns: list[str],
    X: pd.DataFrame,
    y: np.ndarray,
    weight: np.ndarray | None,
    slope: float,
    intercept: float,
    params: dict[str, Any],
    seed: int,
    weighting: str = "uniform",
) -> CalibratedHead:
    """The final head: the estimator fitted on ``X`` (every row before the holdout), with a
    sigmoid already fitted out of fold."""
    est = fit_estimator(make_estimator(family, columns, X, params, seed), X, y, weight)
    means = None
    if family != "lightgbm":
        terms, _ = linear_terms(est, est[:-1].transform(X))
        means = terms.mean(axis=0)
    return CalibratedHead(family, est, slope, intercept, weighting, means)
