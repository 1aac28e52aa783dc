"""Reference statistics: what the model was trained on, kept with it so that served
traffic can be compared against it later without the training data.

For every model feature and every score the model answers (``p_convert``, ``fit_score``,
...), computed on the rows the model was fitted on (training snapshots, before the
holdout):

* a number: the inner quantile edges of ``BINS`` bins (deduplicated, so a count that is
  mostly zero gets a few wide bins), the share of rows in each bin, and the share missing.
  Bins are closed on the right, ``(e_k-1, e_k]``: a count that is 0 for 95 % of training
  rows has the edge 0, so 0 is a bin of its own and any higher count lands above it;
* a category (text, boolean, pandas category): the share of each category seen (at most
  ``MAX_CATEGORIES``, the rarest folded into an "other" share), and the share missing;
  a value never seen in training falls, when served, into the "unknown" bucket, whose
  reference share is 0.

Plus the number of rows and the positive rate. The statistics are plain JSON (lists,
dicts, floats): stored in the model's metadata (``reference_stats``) and as
``reference_stats.json`` in the training run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: bump when the layout changes; a model with another version is asked to be retrained
REFERENCE_VERSION = 1
BINS = 10
MAX_CATEGORIES = 100
OTHER = "(other)"


class MissingReference(LookupError):
    """The model carries no reference statistics (trained before they existed)."""


def is_numeric(s: pd.Series) -> bool:
    """A number (not a boolean, not a category)."""
    return (
        pd.api.types.is_numeric_dtype(s.dtype)
        and not pd.api.types.is_bool_dtype(s.dtype)
        and not isinstance(s.dtype, pd.CategoricalDtype)
    )


def as_text(s: pd.Series) -> pd.Series:
    """Categories as text (missing stays missing): how training and serving compare them."""
    return s.astype(object).map(lambda v: None if v is None or v != v else str(v))


def numeric_reference(values: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Bin edges at the quantiles of the finite values, each bin's share of all rows, and
    the share missing (the shares and ``missing`` sum to 1)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    finite = values[np.isfinite(values)]
    inner = np.linspace(0, 1, bins + 1)[1:-1]
    edges = np.unique(np.quantile(finite, inner)) if len(finite) else np.array([])
    keys = np.searchsorted(edges, finite, side="left")
    counts = np.bincount(keys, minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "shares": [float(c / n) if n else 0.0 for c in counts],
        "missing": float((n - len(finite)) / n) if n else 0.0,
    }


def categorical_reference(s: pd.Series) -> dict[str, Any]:
    """Each category's share of all rows (the rarest beyond ``MAX_CATEGORIES`` as one
    "other" share) and the share missing."""
    text = as_text(s)
    n = len(text)
    counts = text.dropna().value_counts()
    shares = {str(k): float(v / n) for k, v in counts.head(MAX_CATEGORIES).items()}
    rest = float(counts.iloc[MAX_CATEGORIES:].sum() / n) if len(counts) > MAX_CATEGORIES else 0.0
    out: dict[str, Any] = {
        "kind": "categorical",
        "shares": shares,
        "missing": float(text.isna().mean()) if n else 0.0,
    }
    if rest:
        out["other"] = rest
    return out


def column_reference(s: pd.Series, bins: int = BINS) -> dict[str, Any]:
    if is_numeric(s):
        return numeric_reference(s.to_numpy(dtype=float, na_value=np.nan), bins)
    return categorical_reference(s)


def reference_stats(
    X: pd.DataFrame,
    scores: pd.DataFrame,
    y: np.ndarray,
    *,
    as_of: pd.Series | None = None,
    bins: int = BINS,
) -> dict[str, Any]:
    """The reference statistics of the training rows ``X`` (the model's features), the
    model's answers on them ``scores`` (numeric columns only) and their labels ``y``."""
    y = np.asarray(y, dtype=float)
    out: dict[str, Any] = {
        "version": REFERENCE_VERSION,
        "rows": int(len(X)),
        "base_rate": float(y.mean()) if len(y) else None,
        "features": {str(c): column_reference(X[c], bins) for c in X.columns},
        "scores": {
            str(c): numeric_reference(scores[c].to_numpy(dtype=float, na_value=np.nan), bins)
            for c in scores.columns
            if is_numeric(scores[c])
        },
    }
    if as_of is not None and len(as_of):
        times = pd.to_datetime(as_of)
        out["from"], out["to"] = str(times.min()), str(times.max())
    return out


def checked(reference: Any, what: str) -> dict[str, Any]:
    """``reference`` if it is usable, else :class:`MissingReference` naming ``what``."""
    if not isinstance(reference, dict) or not reference.get("features"):
        raise MissingReference(
            f"{what} carries no reference statistics (it was trained before `train` stored "
            "them): retrain it to get reference statistics"
        )
    if reference.get("version") != REFERENCE_VERSION:
        raise MissingReference(
            f"{what} carries reference statistics of another layout (version "
            f"{reference.get('version')}): retrain it to get reference statistics"
        )
    return reference


__all__ = [
    "BINS",
    "MissingReference",
    "REFERENCE_VERSION",
    "checked",
    "column_reference",
    "is_numeric",
    "reference_stats",
]
