"""Ids and text values to integer codes and positions: the look-ups every feature
computation starts with.

Up to ``SMALL`` values, plain Python dict look-ups beat the set-up cost of pandas' hash
tables, whose fixed cost per call dominates a one-lead request: that keeps the HTTP path
fast. Longer columns are factorised (hashing each distinct value once) or looked up by
Arrow. Both paths give the same codes (tests/features checks it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Up to this many values the dict paths are taken (see the module docstring).
SMALL = 64


def is_missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and value != value)
    )


def _pylist(values: pd.Series) -> list[Any]:
    """Python values of a short column; Arrow-backed text converts ~10x faster via pyarrow."""
    array = values.array
    if hasattr(array, "__arrow_array__") and not isinstance(values.dtype, pd.CategoricalDtype):
        return pa.array(array).to_pylist()
    return values.tolist()


def factorize(values: pd.Series) -> tuple[np.ndarray, Sequence[Any]]:
    """Codes (-1 = missing) into the distinct values, which are returned too."""
    if len(values) <= SMALL and not isinstance(values.dtype, pd.CategoricalDtype):
        items = _pylist(values)
        uniques = [v for v in dict.fromkeys(items) if not is_missing(v)]
        where = {v: i for i, v in enumerate(uniques)}
        return np.array([where.get(v, -1) for v in items], dtype=np.intp), uniques
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, uniques


def as_text_index(values: Any, name: str | None = None) -> pd.Index:
    index = pd.Index(values, name=name)
    if index.dtype != "str":
        index = index.astype("str")
    return index


def find_text(index: pd.Index, values: Sequence[Any]) -> np.ndarray:
    """Position of each value (compared as text) in a unique index; -1 when absent."""
    if len(values) <= SMALL and len(index) <= SMALL:
        where = {v: i for i, v in enumerate(index.tolist())}
        return np.array(
            [where.get(v if isinstance(v, str) else str(v), -1) for v in values], dtype=np.intp
        )
    return index.get_indexer(as_text_index(values))


def arrow_positions(values: pd.Series, keys: pd.Index) -> np.ndarray | None:
    """Position of each value in ``keys`` (-1 = absent or missing) by Arrow's hash look-up.

    For long Arrow-backed text columns (pandas' default ``str``) this is ~1.5x faster than
    factorizing first; None for any other column, which takes the generic path.
    """
    dtype = values.dtype
    if len(values) <= SMALL or not (
        isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    ):
        return None
    array = pa.array(values.array)
    found = pc.index_in(array, value_set=pa.array(keys.array).cast(array.type))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)


def id_positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Row of ``index`` (a text index) for each id, compared as text; -1 when absent.
    Distinct ids are looked up once."""
    direct = arrow_positions(ids, index)
    if direct is not None:
        return direct
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes, uniques = ids.array.codes, as_text_index(ids.cat.categories)
        if len(uniques) == len(index) and uniques.equals(index):  # dictionary == the leads
            return codes.astype(np.intp)
    else:
        codes, uniques = factorize(ids)
    return np.take(np.append(find_text(index, uniques), -1), codes)  # code -1: last slot


def unique_text_index(values: pd.Series, what: str) -> pd.Index:
    """Ids as a text index; missing or duplicated ids are errors."""
    codes, uniques = factorize(values)
    if (codes < 0).any():
        raise ValueError(f"{what} has missing values")
    index = as_text_index(values.array, name="lead_id" if what == "leads.lead_id" else None)
    if len(uniques) != len(values):
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"{what} must be unique; duplicated: {dup}")
    return index


def column(df: pd.DataFrame | None, name: str, n: int) -> pd.Series:
    """A column, or an all-missing one when the frame lacks it (optional fields)."""
    if df is not None and name in df.columns:
        return df[name]
    return pd.Series([None] * n, dtype=object)


def lead_index(leads: pd.DataFrame | pd.Index | pd.Series) -> pd.Index:
    """The lead ids as they are (not as text), a unique Index named ``lead_id`` (order kept):
    the index of the funnel-intelligence answers (personas, lifecycle, content)."""
    if isinstance(leads, pd.DataFrame):
        ids = leads["lead_id"] if "lead_id" in leads.columns else leads.index.to_series()
    else:
        ids = leads
    idx = ids.rename("lead_id") if isinstance(ids, pd.Index) else pd.Index(ids, name="lead_id")
    unique = len(set(idx)) == len(idx) if len(idx) <= SMALL else idx.is_unique
    if not unique:
        dup = idx[idx.duplicated()].unique()[:3].tolist()
        raise ValueError(f"lead_id must be unique; duplicated: {dup}")
    return idx


def positions(
    values: pd.Series | np.ndarray, index: pd.Index, lookup: Mapping[Any, int] | None = None
) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent or missing), values compared as
    they are.

    Categoricals map their categories only; long columns are factorised first (hashing
    each distinct value once is ~5x faster than ``get_indexer`` on 5M Arrow strings);
    short ones use a dict (``lookup``, built from ``index`` when not given)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if lookup is not None and len(cats) <= SMALL:
            cat_pos = np.array([*(lookup.get(c, -1) for c in cats), -1], dtype=np.int64)
        else:
            cat_pos = np.append(index.get_indexer(cats), -1)
        return cat_pos[values.cat.codes.to_numpy()]  # code -1 (missing) reads the -1 slot
    if len(values) <= SMALL and (lookup is not None or len(index) <= SMALL):
        if lookup is None:
            lookup = {v: i for i, v in enumerate(index)}
        return np.fromiter((lookup.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(index.get_indexer(uniques), -1)[codes]
