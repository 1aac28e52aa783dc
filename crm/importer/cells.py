"""Typing the cells of one column: placeholders made missing, value maps applied, then
read as text, numbers (with the file's decimal and thousands marks), yes/no or times;
a cell that does not read is recorded as a problem on its row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from crm.importer.frame import ExportFrame
from crm.importer.mapping_model import CsvOptions, ValueRules
from crm.vocabulary import NO_WORDS, YES_WORDS


def apply_rules(
    frame: ExportFrame, column: str, rules: ValueRules, global_missing: Iterable[str]
) -> pd.Series:
    """The column's values with placeholders turned missing and the value map applied."""
    s = frame.df[column]
    placeholders = set(global_missing) | set(rules.missing_values)
    if placeholders:
        s = s.where(~s.isin(placeholders), None)
    if rules.values:
        if rules.strict:
            bad = (~s.isin(list(rules.values)) & s.notna()).to_numpy()
            allowed = ", ".join(repr(k) for k in rules.values)
            frame.problem(column, bad, f"value not in the strict value map ({allowed})")
            s = s.where(~bad, None)  # reported here; missing from now on, not reported again
        mapped = s.map(lambda v: rules.values.get(v, v) if isinstance(v, str) else v)
        s = mapped.astype(object).where(s.notna(), None)
    return s


def as_text(s: pd.Series) -> pd.Series:
    """Text values (after a value map they may be numbers), None where missing."""
    return pd.Series(
        [None if pd.isna(v) else str(v) for v in s.astype(object)], index=s.index, dtype=object
    )


def as_numbers(frame: ExportFrame, column: str, s: pd.Series, what: str) -> np.ndarray:
    """Floats, NaN where missing; a cell that is not a finite number is a problem (``what``
    names the mapping key in the message)."""
    opts = frame.csv.get(frame.origin.get(column, ""), CsvOptions())
    text = s.astype(object).where(s.notna(), None)

    def norm(v: Any) -> Any:
        if v is None or isinstance(v, (int, float)) and not isinstance(v, bool):
            return v
        t = str(v)
        if opts.thousands:
            t = t.replace(opts.thousands, "")
        if opts.decimal != ".":
            t = t.replace(opts.decimal, ".")
        return t

    num = pd.to_numeric(text.map(norm), errors="coerce").to_numpy(dtype="float64", copy=True)
    bad = np.isnan(num) & text.notna().to_numpy()
    frame.problem(column, bad, f"not a number ({what})")
    frame.problem(column, np.isinf(num), f"not a finite number ({what})")
    num[np.isinf(num)] = np.nan
    return num


def as_booleans(frame: ExportFrame, column: str, s: pd.Series, what: str) -> pd.Series:
    """Nullable booleans from the yes/no words of crm.vocabulary; any other text is a
    problem."""

    def parse(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        t = str(v).strip().lower()
        return True if t in YES_WORDS else False if t in NO_WORDS else None

    parsed = s.map(parse)
    bad = (parsed.isna() & s.notna()).to_numpy()
    frame.problem(column, bad, f"not a yes/no value ({what}); map it with 'values'")
    return parsed.astype("boolean")


def as_times(
    frame: ExportFrame, column: str, s: pd.Series, fmt: str | None, tz: str | None, what: str
) -> pd.Series:
    """Naive UTC times from ``fmt`` (ISO 8601 without one), local to ``tz`` when given."""
    text = s.astype(object).where(s.notna(), None)
    parsed = pd.to_datetime(text, format=fmt or "ISO8601", errors="coerce")
    bad = (parsed.isna() & text.notna()).to_numpy()
    expected = f"date format {fmt!r}" if fmt else "an ISO 8601 date (or set 'format')"
    frame.problem(column, bad, f"not a date matching {expected} ({what})")
    if tz is not None:
        parsed = (
            parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            .dt.tz_convert("UTC")
            .dt.tz_localize(None)
        )
    elif isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def infer_kind(s: pd.Series) -> str:
    """Kind of a column mapped without a declaration (leaky columns under include_leaky)."""
    values = s.dropna().astype(str).str.strip()
    if values.empty:
        return "categorical"
    if pd.to_numeric(values, errors="coerce").notna().all():
        return "numeric"
    if values.str.lower().isin(YES_WORDS | NO_WORDS).all():
        return "boolean"
    return "categorical"
