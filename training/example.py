"""The input example logged with a registered model, made without copying training rows.

MLflow stores the input example in plain JSON beside the model; a real training row would
put a lead's fields (an export may map an e-mail or a name as an attribute) into every
copy of the registry. The example is synthetic: per column a typical value (the median of
a number, the most frequent category), never a row that exists, and no category that
fewer than ``MIN_SHARED`` rows share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: a category is shown only when at least this many training rows share it
MIN_SHARED = 5


def safe_input_example(X: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    """``n`` identical synthetic rows with the columns and dtypes of ``X``."""
    out = {}
    for c in X.columns:
        s = X[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            counts = s.value_counts()
            # a value shared by at least MIN_SHARED rows is a category, not one lead's data
            value = counts.index[0] if len(counts) and counts.iloc[0] >= MIN_SHARED else np.nan
            out[c] = pd.Categorical([value] * n, categories=s.cat.categories)
        elif pd.api.types.is_bool_dtype(s.dtype):
            out[c] = pd.Series([bool(s.mode().iloc[0]) if s.notna().any() else False] * n)
        elif pd.api.types.is_numeric_dtype(s.dtype):
            med = float(s.median()) if s.notna().any() else np.nan
            out[c] = pd.Series([med] * n, dtype="float64")
        else:
            out[c] = pd.Series(["example"] * n, dtype=object)
    frame = pd.DataFrame(out)
    frame.index = pd.Index([f"example-{i}" for i in range(n)], name=X.index.name)
    return frame
