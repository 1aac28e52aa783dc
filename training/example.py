"""An input example for the MLflow signature that holds no training data.

MLflow stores the input example as ``input_example.json`` next to the model, readable by
everyone who can read the registry. Rows copied from the training set put real leads there
(job titles, countries, counts). :func:`safe_input_example` makes rows with the same columns
and dtypes from summaries instead: what the signature needs, and nothing about any one lead.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

#: The value of every text column of an example: free text is never copied.
PLACEHOLDER = "example"

#: A category value that may be personal data (an e-mail, a long number, a sentence) is not
#: used even when it is the most frequent one.
_PERSONAL = re.compile(r"@|\d{4,}|\s\S+\s")
_MAX_CATEGORY_CHARS = 40


def _category_value(col: pd.Series) -> Any:
    """The most frequent category, unless it could be personal data (then missing)."""
    counts = col.value_counts(dropna=True)
    if counts.empty:
        return np.nan
    value = counts.index[0]
    text = str(value)
    if len(text) > _MAX_CATEGORY_CHARS or _PERSONAL.search(text):
        return np.nan
    return value


def _column(col: pd.Series, n: int) -> pd.Series:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        value = _category_value(col)
        return pd.Series(pd.Categorical([value] * n, dtype=dtype))
    if pd.api.types.is_bool_dtype(dtype):
        mode = col.dropna().mode()
        plain = dtype == np.dtype(bool)  # numpy bool cannot be missing
        value = bool(mode.iloc[0]) if len(mode) else (False if plain else pd.NA)
        return pd.Series([value] * n, dtype=dtype)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        median = col.median(skipna=True) if col.notna().any() else None
        if median is None or pd.isna(median):
            return pd.Series([None] * n, dtype=dtype)
        if pd.api.types.is_integer_dtype(dtype):
            median = int(round(float(median)))
        return pd.Series([median] * n, dtype=dtype)
    # strings, objects and anything else: a placeholder, never a value from the data
    return pd.Series([PLACEHOLDER] * n, dtype=dtype)


def safe_input_example(X: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """``n`` made-up rows with ``X``'s columns (in order) and dtypes, for
    ``mlflow.*.log_model(input_example=...)``:

    * numeric and datetime columns: the column's median (missing if the column is all
      missing; integer columns rounded);
    * boolean columns: the most frequent value;
    * categorical columns: the most frequent category, or missing when that value looks like
      personal data (an ``@``, a run of 4+ digits, several words, over 40 characters);
    * text (``str``/``object``) columns: the placeholder ``"example"``, never a value of
      the data (free text such as job titles or e-mails).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    out = pd.DataFrame({c: _column(X[c], n) for c in X.columns}, index=pd.RangeIndex(n))
    return out[list(X.columns)]


__all__ = ["PLACEHOLDER", "safe_input_example"]
