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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.pipeline import Pipeline

from features.build import FeatureConfig
from features.content import ContentLibrary
from features.personas import PersonaConfig
from features.quadrant_policy import QuadrantPolicy, assign_quadrants
from scoring.heads import (  # noqa: F401 (ColumnSelector: where pickles look for it)
    DEFAULT_LGBM_PARAMS,
    CalibratedHead,
    ColumnSelector,
    lightgbm_pipeline,
)
from scoring.reasons import reasons_from_array
from scoring.trees import MAX_NUMPY_DEPTH, Decided, TreeEnsemble, transposed


def make_pipeline(columns: list[str], params: dict[str, Any], seed: int) -> Pipeline:
    """Column selection + LightGBM (tuning and half-life search fit these directly)."""
    return lightgbm_pipeline(columns, params, seed)


def fitted_pipeline(head: CalibratedHead) -> Pipeline:
    """The fitted estimator pipeline inside a head."""
    return head.estimator


def single_thread(head: CalibratedHead) -> None:
    """Online scoring answers few rows: OpenMP start-up costs more than the trees."""
    head.single_thread()


def contributions(head: CalibratedHead, X: pd.DataFrame) -> pd.DataFrame:
    """Per-feature contributions to the head's raw score (log-odds, before calibration)
    plus a ``bias`` column; each row sums to the raw score."""
    return head.contributions(X)


def raw_score(head: CalibratedHead, X: pd.DataFrame) -> np.ndarray:
    """The head's raw score (log-odds before calibration)."""
    return head.raw(X)


class FastHead:
    """A LightGBM head evaluated on a NumPy block: the booster on category codes and
    floats, then the head's sigmoid, exactly as ``predict_proba`` computes them, without
    the per-call pandas conversions of the Pipeline (the online path answers
    one lead at a time, where those conversions cost more than the trees)."""

    def __init__(self, head: CalibratedHead) -> None:
        pipe = head.estimator
        self.columns: list[str] = list(pipe.named_steps["select"].columns_)
        self.categories: dict[str, pd.CategoricalDtype] = dict(
            pipe.named_steps["select"].categories_
        )
        self.booster = pipe.named_steps["lgbm"].booster_
        self.lgbm = pipe.named_steps["lgbm"]
        self.slope = head.slope
        self.intercept = head.intercept
        self.raw = True  # the sigmoid reads the raw score (log-odds)

    def matrix(self, X: pd.DataFrame) -> np.ndarray:
        """The head's columns as one float64 block; categories as their training codes."""
        out = np.empty((len(X), len(self.columns)))
        numeric = [i for i, c in enumerate(self.columns) if c not in self.categories]
        if numeric:
            names = [self.columns[i] for i in numeric]
            out[:, numeric] = X[names].to_numpy(dtype=np.float64, na_value=np.nan)
        for i, c in enumerate(self.columns):
            if c in self.categories:
                s = X[c]
                if s.dtype != self.categories[c]:
                    s = s.astype(self.categories[c])
                codes = s.cat.codes.to_numpy().astype(np.float64)
                codes[codes < 0] = np.nan
                out[:, i] = codes
        return out

    @property
    def trees(self) -> TreeEnsemble | None:
        """The booster's trees as :class:`TreeEnsemble` (built on first use; None where
        LightGBM's own ``predict`` is used: unsupported models, or trees deeper than
        :data:`~scoring.trees.MAX_NUMPY_DEPTH`)."""
        ens = self.__dict__.get("_trees", False)
        if ens is False:
            ens = TreeEnsemble(self.booster)
            if not (ens.supported and self.raw and ens.depth <= MAX_NUMPY_DEPTH):
                ens = None
            self.__dict__["_trees"] = ens
        return ens

    def decide(
        self, M: np.ndarray, cols: np.ndarray | None = None, MT: np.ndarray | None = None
    ) -> Decided | None:
        """The trees' evaluation of the block (shared by :meth:`proba` and
        :meth:`contributions`), or None where the booster is used. ``M`` may hold more
        columns than the head: ``cols`` are the head's columns in it; ``MT``: the block
        transposed, shared by the heads (``scoring.trees.transposed``)."""
        trees = self.trees
        return None if trees is None else trees.decide(M, cols, MT)

    def proba(
        self,
        M: np.ndarray,
        decided: Decided | None = None,
        cols: np.ndarray | None = None,
        MT: np.ndarray | None = None,
    ) -> np.ndarray:
        trees = self.trees
        if trees is not None:
            response = (trees.decide(M, cols, MT) if decided is None else decided).raw
        else:
            block = M if cols is None else M[:, cols]
            response = self.booster.predict(block, raw_score=self.raw, num_threads=self.threads())
        return expit(self.slope * response + self.intercept)

    def contributions(self, M: np.ndarray, decided: Decided | None = None) -> np.ndarray:
        trees = self.trees
        if trees is not None:
            return trees.contributions(M, decided, threads=self.threads())
        return self.booster.predict(M, pred_contrib=True, num_threads=self.threads())

    def threads(self) -> int:
        """Read at every call: ``for_serving`` (or a forked batch worker) sets 1."""
        return int(getattr(self.lgbm, "n_jobs", None) or 1)


@dataclass
class LeadScoringModel:
    """Calibrated conversion, fit and interest models for one target, the quadrant cut-offs
    learned on training data, and the marketing configuration (personas, content) that
    was in force when it was trained: all versioned together."""

    target: str
    from_stage: str
    horizon_days: int
    feature_columns: list[str]
    conversion: CalibratedHead
    fit: CalibratedHead
    interest: CalibratedHead
    policy: QuadrantPolicy
    fit_threshold: float
    interest_threshold: float
    feature_config: FeatureConfig
    personas: PersonaConfig
    content: ContentLibrary
    metadata: dict[str, Any] = field(default_factory=dict)
    # calibrated conversion heads for the other funnel steps (e.g. {"mql": ...}): one
    # served model answers p_mql and p_sal; ``target`` is the primary one (p_convert)
    heads: dict[str, CalibratedHead] = field(default_factory=dict)

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
        for head in self.all_heads():
            single_thread(head)
        return self

    def all_heads(self) -> list[CalibratedHead]:
        return [self.conversion, self.fit, self.interest, *self.heads.values()]

    @property
    def family(self) -> str:
        """The model family of the conversion head (lightgbm, logistic, naive_bayes)."""
        return self.conversion.family

    @property
    def targets(self) -> list[str]:
        """Every funnel target answered, the primary one first."""
        return [self.target, *(t for t in self.heads if t != self.target)]

    def contributions(self, X: pd.DataFrame) -> pd.DataFrame:
        """Conversion-head contributions (log-odds) per feature plus ``bias``."""
        return contributions(self.conversion, X)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        return raw_score(self.conversion, X)

    def fast_heads(self) -> dict[str, FastHead]:
        """NumPy views of every head, built once per loaded model (not pickled)."""
        cached = self.__dict__.get("_fast")
        if cached is None:
            cached = {
                "conversion": FastHead(self.conversion),
                "fit": FastHead(self.fit),
                "interest": FastHead(self.interest),
                **{
                    f"p_{t}": FastHead(h)
                    for t, h in getattr(self, "heads", {}).items()
                    if t != self.target
                },
            }
            conv = cached["conversion"].columns
            position = {c: i for i, c in enumerate(conv)}
            # where each head's columns sit in the conversion head's block (None: all of it)
            self.__dict__["_cols"] = {
                name: None
                if h.columns == conv
                else np.array([position[c] for c in h.columns], dtype=np.intp)
                for name, h in cached.items()
            }
            self.__dict__["_fast"] = cached
        return cached

    def add_heads(self, heads: dict[str, CalibratedHead]) -> None:
        """Heads for more targets (``p_<target>``); the NumPy views are rebuilt on next use,
        so answers (and the MLflow signature drawn from one) carry the new fields."""
        self.heads.update(heads)
        self.__dict__.pop("_fast", None)
        self.__dict__.pop("_cols", None)
        self.__dict__.pop("_single", None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_fast", None)
        state.pop("_cols", None)
        state.pop("_single", None)  # scoring.single's block reader
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state.get("conversion"), CalibratedHead):
            raise TypeError(
                "this model was trained by an older leadscore (heads without a model "
                "family); retrain it with `leadscore train`"
            )
        self.__dict__.update(state)

    def score(
        self, X: pd.DataFrame, reasons: bool = True, *, arrow_reasons: bool = False
    ) -> pd.DataFrame:
        """Feature frame -> answer frame (index = lead_id), the one scoring path.
        ``reasons=False`` leaves the ``reasons`` column (and the contributions it is
        made from) out; every other column is the same. ``arrow_reasons``: the same
        reasons as an Arrow-backed ``list<struct>`` column instead of lists of dicts (batch
        runs writing Parquet skip a Python dict per reason)."""
        return self.score_with_contributions(X, reasons, arrow_reasons=arrow_reasons)[0]

    def score_with_contributions(
        self, X: pd.DataFrame, reasons: bool = True, *, arrow_reasons: bool = False
    ) -> tuple[pd.DataFrame, np.ndarray | None]:
        """:meth:`score` and the conversion head's contributions it gave reasons from
        (one row per lead, one column per feature of ``self.conversion.columns``, the last
        the bias): the prediction log keeps them to explain a later change of score.
        Without ``reasons`` neither is computed (the contributions are None)."""
        if any(h.family != "lightgbm" for h in self.all_heads()):
            return self._score_frames(X, reasons, arrow_reasons)
        M = self.fast_heads()["conversion"].matrix(X)
        p, fit_score, interest_score, extra, contributions = self.score_block(M)
        return self._answers(
            X, p, fit_score, interest_score, extra, contributions if reasons else None,
            arrow_reasons,
        )  # fmt: skip

    def score_block(
        self, M: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], Callable[[], np.ndarray]]:
        """The answer numbers of LightGBM heads from the conversion head's block ``M``
        (:meth:`FastHead.matrix`): p (rounded to 6 places), fit and interest scores (0-100,
        one place), the other targets' ``p_<t>``, and a function giving the conversion
        head's contributions. :meth:`score_with_contributions` and the per-request path
        (``scoring.single``) both score through it."""
        heads = self.fast_heads()
        conv = heads["conversion"]
        cols = self.__dict__["_cols"]  # set by fast_heads with the heads
        MT = transposed(M)  # every head reads the one block, column by column
        decided = conv.decide(M, None, MT)  # raw scores and, for the contributions, patterns
        p = np.round(conv.proba(M, decided), 6)
        fit_score = np.round(100.0 * heads["fit"].proba(M, None, cols["fit"], MT), 1)
        interest = heads["interest"].proba(M, None, cols["interest"], MT)
        interest_score = np.round(100.0 * interest, 1)
        extra = {
            name: np.round(h.proba(M, None, cols[name], MT), 6)
            for name, h in heads.items()
            if name.startswith("p_")
        }
        return p, fit_score, interest_score, extra, lambda: conv.contributions(M, decided)

    def _score_frames(
        self, X: pd.DataFrame, reasons: bool = True, arrow_reasons: bool = False
    ) -> tuple[pd.DataFrame, np.ndarray | None]:
        """``score`` for heads of any family, through the heads' own frame methods (the
        NumPy fast path above is LightGBM's); same answer fields, same reasons."""
        p = np.round(self.conversion.predict_proba(X)[:, 1], 6)
        fit_score = np.round(100.0 * self.fit.predict_proba(X)[:, 1], 1)
        interest_score = np.round(100.0 * self.interest.predict_proba(X)[:, 1], 1)
        extra = {
            f"p_{t}": np.round(h.predict_proba(X)[:, 1], 6)
            for t, h in self.heads.items()
            if t != self.target
        }
        contrib = (lambda: self.conversion.contributions(X).to_numpy()) if reasons else None
        return self._answers(X, p, fit_score, interest_score, extra, contrib, arrow_reasons)

    def _answers(
        self,
        X: pd.DataFrame,
        p: np.ndarray,
        fit_score: np.ndarray,
        interest_score: np.ndarray,
        extra: dict[str, np.ndarray],
        contributions: Callable[[], np.ndarray] | None,
        arrow_reasons: bool = False,
    ) -> tuple[pd.DataFrame, np.ndarray | None]:
        """The answer frame both scoring paths return, with the contributions (conversion
        head, last column the bias; called only when there are leads to give reasons for;
        None: no reasons asked for, no ``reasons`` column)."""
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
        columns = self.conversion.columns
        if contributions is None:
            return out, None
        contrib = contributions() if len(X) else np.zeros((0, len(columns) + 1))
        said = reasons_from_array(contrib, columns, X, arrow=arrow_reasons)
        if arrow_reasons:
            said = pd.Series(pd.arrays.ArrowExtensionArray(said), index=out.index)
        out["reasons"] = said
        return out, contrib


class LeadScoringPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: input = feature frame, output = answer frame."""

    def __init__(self, model: LeadScoringModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.model.score(model_input).reset_index(drop=True)
