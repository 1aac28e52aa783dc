"""Leakage check at training time.

A column filled in by sales during or after contact (X Education's Tags, Olist's deal
fields) predicts the outcome because it *records* it. Two symptoms give it away:

- the feature alone separates the classes almost perfectly: its single-feature ROC AUC on
  a later time slice is at least ``auc_threshold`` (0.95), over all leads or over the
  leads where the value is filled in;
- its missingness differs sharply between the classes: the value is filled in for one
  outcome and not for the other (a gap of at least ``missing_gap``, 50 points), or it is
  filled in clearly more often for one class (``soft_missing_gap``, 25 points) AND, where
  filled, it rates the lead (single-feature AUC >= ``filled_auc``, 0.75): the signature of
  a field sales fills in for the leads it works. Checked on raw record fields only, not on
  engineered event features whose "no such event yet" is missing by design.

Two more symptoms catch what is leaky without separating the classes almost perfectly (a
call length, a count of sales touches: recorded for the leads sales worked, which are the
ones that converted, yet noisy):

- it alone beats a model of all the other features: a quick LightGBM fitted on the fit
  slice without it (and without every other feature from the same export column, and
  without the features already found leaky) reaches ROC AUC ``auc_without`` on the later
  slice, and the feature alone reaches at least ``auc_without + beats_margin`` (0.10);
  and it does so backward in time too (both learned on the latest 70 % of the fit slice,
  scored on its earliest 30 %), which a field that merely grows in importance over time
  does not; and the model of the others reaches ``beats_rest_floor`` (0.60) both ways,
  since beating a model that knows nothing proves nothing (an export with one honest
  informative column). A real signal rarely outranks everything else a CRM knows by that
  much in both directions; a record of the outcome does. Only the ``max_candidates`` (3)
  features with the highest single-feature AUC of at least ``beats_floor`` (0.70) are
  tried, so the cost stays at six small fits at most (measured: +0.1 to +0.8 s on X
  Education's 6,000 fit rows and 97 features, on a busy 2-core machine).
  Off with ``beats_model=False``;
- it is empty for nearly all of one class but not the other: missing, zero, false or
  blank for at least ``empty_most`` (90 %) of one class on the fit slice and for at most
  ``empty_few`` (50 %) of the other, with at least ``MIN_CLASS_ROWS`` (30) rows of each
  class. Raw record fields only, like the missingness rule.

On the two public exports (X Education, Olist) and the simulator, no legitimate column
fires any rule (tests/training/test_leakage.py and tests/training/test_real_exports.py check
it); the
closest are Olist's landing page (alone 0.68 against 0.62 without it: under the floor
and the margin), X Education's time on the website (0.74 against 0.81) and occupation
(0.76 against 0.87).

Training stops on such a finding unless the user allows the column by name, or the
mapping declares it filled in after the outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

N_BINS = 20
#: the within-fit comparison fits on this latest share of the fit slice and scores the
#: earliest rest: backwards in time, the other direction from the later slice
WITHIN_FIT_SHARE = 0.7
#: threads for the quick comparison model: one. These fits take 0.1-0.2 s on 6,000 rows;
#: with two OpenMP threads on a busy 2-core machine one fit measured up to 10 s (threads
#: spin-waiting for a core), with one it stayed at 0.2 s.
N_JOBS = 1
#: rows of each class the "empty for one class" rule needs before it speaks
MIN_CLASS_ROWS = 30


@dataclass(frozen=True)
class LeakageFinding:
    """One feature that looks like it records the outcome: why (``reason``, with figures),
    which rules fired (``rules``: "separates", "missingness", "beats_model",
    "empty_for_one_class") and the figures behind them."""

    feature: str
    source: str
    reason: str
    single_feature_auc: float
    missing_rate_positive: float
    missing_rate_negative: float
    rules: tuple[str, ...] = ()
    auc_without: float | None = None  # a model of all other features, when compared
    empty_rate_positive: float | None = None
    empty_rate_negative: float | None = None

    def __str__(self) -> str:
        name = self.feature if self.source == self.feature else f"{self.feature} ({self.source!r})"
        return f"{name}: {self.reason}"


class LeakageError(ValueError):
    """Training stopped: features that look like they record the outcome."""

    def __init__(self, findings: list[LeakageFinding]) -> None:
        self.findings = findings
        names = " ".join(f"--allow-leaky {f.feature}" for f in findings)
        lines = "\n".join(f"  - {f}" for f in findings)
        super().__init__(
            f"{len(findings)} feature(s) look like they leak the outcome:\n{lines}\n"
            "If a column is filled in during or after contact, leave it out: declare it in "
            "the mapping under `known_after_outcome:` (or `leaky:`). If you are sure it is "
            f"known before the outcome, allow it by name: {names}"
        )


def _bins(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Quantile-bin keys for a numeric column; -1 = missing."""
    arr = values.to_numpy(dtype=float, na_value=np.nan)
    out = np.searchsorted(edges, arr, side="right").astype(np.int64)
    out[np.isnan(arr)] = -1
    return out


def single_feature_auc(
    x_fit: pd.Series, y_fit: np.ndarray, x_later: pd.Series, y_later: np.ndarray
) -> float:
    """ROC AUC on the later slice of a per-bucket target rate learned on the fit slice."""
    numeric = pd.api.types.is_numeric_dtype(x_fit.dtype) and not isinstance(
        x_fit.dtype, pd.CategoricalDtype
    )
    if numeric:
        finite = x_fit.to_numpy(dtype=float, na_value=np.nan)
        finite = finite[~np.isnan(finite)]
        inner = np.linspace(0, 1, N_BINS + 1)[1:-1]
        edges = np.unique(np.quantile(finite, inner)) if len(finite) else np.array([])
        keys_fit, keys_later = _bins(x_fit, edges), _bins(x_later, edges)
    else:
        text_fit = x_fit.astype("str").where(x_fit.notna(), None)
        text_later = x_later.astype("str").where(x_later.notna(), None)
        cats = pd.Index(pd.unique(text_fit.dropna()))
        keys_fit = cats.get_indexer(text_fit).astype(np.int64)
        keys_later = cats.get_indexer(text_later).astype(np.int64)
        keys_fit[text_fit.isna().to_numpy()] = -2
        keys_later[text_later.isna().to_numpy()] = -2
    prior = float(y_fit.mean())
    rates = pd.DataFrame({"k": keys_fit, "y": y_fit}).groupby("k")["y"].agg(["sum", "count"])
    smoothed = (rates["sum"] + 5 * prior) / (rates["count"] + 5)
    score = pd.Series(keys_later).map(smoothed).fillna(prior).to_numpy()
    if y_later.min() == y_later.max():
        return 0.5
    auc = float(roc_auc_score(y_later, score))
    return max(auc, 1.0 - auc)


def empty_mask(x: pd.Series) -> np.ndarray:
    """Rows where a record field holds nothing: missing, zero, false or blank text."""
    empty = x.isna().to_numpy()
    if isinstance(x.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(x.dtype):
        text = x.astype("str").str.strip()
        return empty | (text == "").to_numpy()
    values = x.to_numpy(dtype=float, na_value=np.nan)
    return empty | (values == 0)


def empty_for_one_class(
    x: pd.Series, y: np.ndarray, most: float = 0.9, few: float = 0.5
) -> tuple[float, float] | None:
    """(empty rate of positives, of negatives) when the field is empty for at least
    ``most`` of one class and at most ``few`` of the other; None otherwise or when a class
    has fewer than ``MIN_CLASS_ROWS`` rows."""
    pos, neg = y == 1, y == 0
    if pos.sum() < MIN_CLASS_ROWS or neg.sum() < MIN_CLASS_ROWS:
        return None
    empty = empty_mask(x)
    e_pos, e_neg = float(empty[pos].mean()), float(empty[neg].mean())
    if (e_neg >= most and e_pos <= few) or (e_pos >= most and e_neg <= few):
        return e_pos, e_neg
    return None


def _model_frames(X_fit: pd.DataFrame, X_later: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both slices as LightGBM takes them: numbers (nullable ones and booleans too) as
    floats with NaN, everything else as categoricals over the categories of both slices."""
    fit, later = {}, {}
    for col in X_fit.columns:
        a, b = X_fit[col], X_later[col]
        numeric = pd.api.types.is_numeric_dtype(a.dtype) or pd.api.types.is_bool_dtype(a.dtype)
        if numeric and not isinstance(a.dtype, pd.CategoricalDtype):
            fit[col] = a.to_numpy(dtype=float, na_value=np.nan)
            later[col] = b.to_numpy(dtype=float, na_value=np.nan)
            continue
        text_a = a.astype("str").where(a.notna(), None)
        text_b = b.astype("str").where(b.notna(), None)
        cats = pd.unique(pd.concat([text_a, text_b]).dropna())
        fit[col] = pd.Categorical(text_a, categories=cats)
        later[col] = pd.Categorical(text_b, categories=cats)
    return pd.DataFrame(fit, index=X_fit.index), pd.DataFrame(later, index=X_later.index)


def model_auc(
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_later: pd.DataFrame,
    y_later: np.ndarray,
    seed: int = 0,
) -> float:
    """ROC AUC on the later slice of a quick, deterministic LightGBM fitted on the fit
    slice (100 trees of 7 leaves, one thread: ``N_JOBS``): what the features together know."""
    import lightgbm as lgb

    if y_later.min() == y_later.max() or y_fit.min() == y_fit.max() or X_fit.shape[1] == 0:
        return 0.5
    fit, later = _model_frames(X_fit, X_later)
    model = lgb.LGBMClassifier(
        n_estimators=100,
        num_leaves=7,
        learning_rate=0.1,
        min_child_samples=20,
        deterministic=True,
        force_row_wise=True,
        random_state=seed,
        n_jobs=N_JOBS,
        verbose=-1,
    )
    model.fit(fit, y_fit)
    return float(roc_auc_score(y_later, model.predict_proba(later)[:, 1]))


@dataclass(frozen=True)
class Outranked:
    """A feature alone against a model of all other features: on the later slice (the
    feature's figure there is its single-feature AUC) and within the fit period, learned
    on its latest ``WITHIN_FIT_SHARE`` and scored on its earliest rows."""

    auc_without: float
    alone_within_fit: float
    without_within_fit: float


def _within_fit_cut(index: pd.Index, share: float) -> int:
    """Where the fit period splits in time (after ``share`` of its rows) for the within-fit
    comparison, moved forward to a lead's first snapshot so no lead is on both sides."""
    keys = np.asarray(index)
    cut = int(len(keys) * share)
    while 0 < cut < len(keys) and keys[cut] == keys[cut - 1]:
        cut += 1
    return cut


def beats_the_rest(
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_later: pd.DataFrame,
    y_later: np.ndarray,
    aucs: Mapping[str, float],
    sources: Mapping[str, str],
    exclude: Iterable[str] = (),
    floor: float = 0.7,
    margin: float = 0.1,
    max_candidates: int = 3,
    seed: int = 0,
    rest_floor: float = 0.6,
) -> dict[str, Outranked]:
    """Features whose single-feature AUC (``aucs``, on the later slice) reaches that of a
    model of all other features plus ``margin``, forward in time (fitted on the fit slice,
    scored on the later one) AND backward within the fit period (fitted on its latest
    ``WITHIN_FIT_SHARE``, scored on its earliest rows).

    Both directions, because a real signal that grows while the others fade (a campaign
    change, a new sales team) outranks the rest forward in time and falls behind them
    backward; a record of the outcome outranks them either way. On such a drifting export
    (tests/training/test_leakage.py) the growing field reaches 0.79 alone against 0.58 forward, but
    0.57 against 0.76 backward; a call length 0.83 against 0.67 and 0.80 against 0.66.
    The others must know something (ROC AUC at least ``rest_floor``, 0.6, both ways):
    in an export with one informative column and a few empty ones, that column beats the
    rest whatever it is (an honest "Fit" score alone 0.76, the others 0.51).
    Candidates: the ``max_candidates`` highest single-feature
    AUCs of at least ``floor``, not in ``exclude`` (features already found leaky, which
    the comparison models leave out too). A feature's siblings from the same export column
    are left out with it."""
    excluded = set(exclude)
    ranked = sorted((a, c) for c, a in aucs.items() if a >= floor and c not in excluded)
    candidates = [c for _, c in reversed(ranked)][:max_candidates]
    cut = _within_fit_cut(X_fit.index, 1 - WITHIN_FIT_SHARE)
    early, late = slice(0, cut), slice(cut, len(X_fit))
    out = {}
    for col in candidates:
        origin = sources.get(col, col)
        drop = {c for c in X_fit.columns if sources.get(c, c) == origin} | excluded | {col}
        keep = [c for c in X_fit.columns if c not in drop]
        without = model_auc(X_fit[keep], y_fit, X_later[keep], y_later, seed)
        if without < rest_floor or aucs[col] < without + margin:
            continue
        x = X_fit[col]
        alone_fit = single_feature_auc(x.iloc[late], y_fit[late], x.iloc[early], y_fit[early])
        rest = X_fit[keep]
        without_fit = model_auc(rest.iloc[late], y_fit[late], rest.iloc[early], y_fit[early], seed)
        if without_fit >= rest_floor and alone_fit >= without_fit + margin:
            out[col] = Outranked(without, alone_fit, without_fit)
    return out


@dataclass
class _Evidence:
    """What the rules found about one feature, gathered before it becomes a finding."""

    auc: float
    missing_positive: float
    missing_negative: float
    rules: list[str]
    reasons: list[str]
    empty: tuple[float, float] | None = None
    auc_without: float | None = None


def _record_rules(
    x_fit: pd.Series,
    y_fit: np.ndarray,
    x_later: pd.Series,
    y_later: np.ndarray,
    is_record: bool,
    auc_threshold: float,
    missing_gap: float,
    soft_missing_gap: float,
    filled_auc: float,
    empty_most: float,
    empty_few: float,
) -> _Evidence:
    """The rules that need one feature only: separates, missingness, empty for one class."""
    pos, neg = y_fit == 1, y_fit == 0
    auc = single_feature_auc(x_fit, y_fit, x_later, y_later)
    filled_fit, filled_later = x_fit.notna().to_numpy(), x_later.notna().to_numpy()
    auc_filled = 0.5
    if filled_fit.sum() >= 30 and filled_later.sum() >= 30 and not filled_later.all():
        auc_filled = single_feature_auc(
            x_fit[filled_fit], y_fit[filled_fit], x_later[filled_later], y_later[filled_later]
        )
    miss = ~filled_fit
    m_pos = float(miss[pos].mean()) if pos.any() else 0.0
    m_neg = float(miss[neg].mean()) if neg.any() else 0.0
    gap = abs(m_pos - m_neg)
    ev = _Evidence(auc, m_pos, m_neg, [], [])
    if auc >= auc_threshold:
        ev.rules.append("separates")
        ev.reasons.append(f"alone it reaches ROC AUC {auc:.3f} on a later time slice")
    elif auc_filled >= auc_threshold:
        ev.rules.append("separates")
        ev.reasons.append(f"where filled in, it alone reaches ROC AUC {auc_filled:.3f}")
    if is_record and gap >= missing_gap:
        ev.rules.append("missingness")
        ev.reasons.append(f"missing for {m_pos:.0%} of converted vs {m_neg:.0%} of other leads")
    elif is_record and gap >= soft_missing_gap and auc_filled >= filled_auc:
        ev.rules.append("missingness")
        ev.reasons.append(
            f"missing for {m_pos:.0%} of converted vs {m_neg:.0%} of other leads, and "
            f"where filled in it rates the lead (ROC AUC {auc_filled:.2f})"
        )
    # a field missing for one class is already said; "empty" adds zeros and blanks
    if is_record and "missingness" not in ev.rules:
        ev.empty = empty_for_one_class(x_fit, y_fit, empty_most, empty_few)
    if ev.empty is not None:
        e_pos, e_neg = ev.empty
        ev.rules.append("empty_for_one_class")
        ev.reasons.append(
            f"empty or zero for {e_pos:.0%} of converted vs {e_neg:.0%} of other leads "
            f"(rule: empty for at least {empty_most:.0%} of one class and at most "
            f"{empty_few:.0%} of the other)"
        )
    return ev


def check_leakage(
    X_fit: pd.DataFrame,
    y_fit: np.ndarray,
    X_later: pd.DataFrame,
    y_later: np.ndarray,
    record_columns: Iterable[str],
    sources: Mapping[str, str] | None = None,
    auc_threshold: float = 0.95,
    missing_gap: float = 0.5,
    soft_missing_gap: float = 0.25,
    filled_auc: float = 0.75,
    beats_model: bool = True,
    beats_floor: float = 0.7,
    beats_margin: float = 0.1,
    beats_rest_floor: float = 0.6,
    max_candidates: int = 3,
    empty_most: float = 0.9,
    empty_few: float = 0.5,
    seed: int = 0,
) -> list[LeakageFinding]:
    """Every feature that looks like it records the outcome (see the module docstring),
    in column order. ``beats_model=False`` skips the one rule that fits models."""
    sources = dict(sources or {})
    record = set(record_columns)
    evidence = {
        col: _record_rules(
            X_fit[col],
            y_fit,
            X_later[col],
            y_later,
            col in record,
            auc_threshold,
            missing_gap,
            soft_missing_gap,
            filled_auc,
            empty_most,
            empty_few,
        )  # fmt: skip
        for col in X_fit.columns
    }
    if beats_model:
        beaten = beats_the_rest(
            X_fit, y_fit, X_later, y_later, {c: ev.auc for c, ev in evidence.items()}, sources,
            exclude=[c for c, ev in evidence.items() if ev.rules], floor=beats_floor,
            margin=beats_margin, max_candidates=max_candidates, seed=seed,
            rest_floor=beats_rest_floor,
        )  # fmt: skip
        for col, beat in beaten.items():
            ev = evidence[col]
            ev.auc_without = beat.auc_without
            ev.rules.append("beats_model")
            ev.reasons.append(
                f"alone it reaches ROC AUC {ev.auc:.2f} on a later time slice, more than a "
                f"model of all other features ({beat.auc_without:.2f}), and backward in time "
                f"within the fit period too ({beat.alone_within_fit:.2f} against "
                f"{beat.without_within_fit:.2f}; rule: alone at least {beats_margin:.2f} "
                "above the rest in both)"
            )
    return [
        LeakageFinding(
            feature=col,
            source=sources.get(col, col),
            reason="; ".join(ev.reasons),
            single_feature_auc=ev.auc,
            missing_rate_positive=ev.missing_positive,
            missing_rate_negative=ev.missing_negative,
            rules=tuple(ev.rules),
            auc_without=ev.auc_without,
            empty_rate_positive=ev.empty[0] if ev.empty else None,
            empty_rate_negative=ev.empty[1] if ev.empty else None,
        )
        for col, ev in evidence.items()
        if ev.rules
    ]


def blocking(findings: list[LeakageFinding], allowed: Iterable[str]) -> list[LeakageFinding]:
    """The findings not allowed by feature name or by the export's column name."""
    ok = {a.strip().lower() for a in allowed}
    return [f for f in findings if f.feature.lower() not in ok and f.source.lower() not in ok]
