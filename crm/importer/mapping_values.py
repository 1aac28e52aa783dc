"""The scalar values a mapping holds, read the way the importer reads them: cell texts
(YAML ``1`` is the text ``"1"``), dates inside the range pandas can hold, durations
(``1h``, ``2 days``), strftime formats, time zones, month names and column names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

import pandas as pd
from pydantic import BeforeValidator, WithJsonSchema


def cell_text(value: Any) -> str:
    """A YAML scalar as the text it stands for in a CSV cell (``1`` -> ``"1"``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def cell_texts(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, (str, int, float, bool)):
        value = [value]
    if isinstance(value, list):
        return [cell_text(v) for v in value]
    return value


_SCALAR_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
}
# A list of cell values; YAML numbers and booleans are read as the text they stand for, and
# one value may stand alone (``positive: 1`` is ``positive: ["1"]``).
Texts = Annotated[
    list[str],
    BeforeValidator(cell_texts),
    WithJsonSchema({"anyOf": [_SCALAR_SCHEMA, {"type": "array", "items": _SCALAR_SCHEMA}]}),
]

# Dates a mapping may name: pandas holds nanoseconds from 1677 to 2262; a lead-scoring
# export lives well inside this window, and staying inside it keeps arithmetic safe.
EARLIEST, LATEST = pd.Timestamp("1900-01-01"), pd.Timestamp("2200-01-01")
MAX_OFFSET = pd.Timedelta(days=3650)


def parse_date(value: Any, key: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(str(value))
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"'{key}' is not a date: {value!r}") from exc
    if pd.isna(ts) or not EARLIEST <= ts.tz_localize(None) < LATEST:
        raise ValueError(f"'{key}' must be a date between 1900 and 2200: {value!r}")
    return ts


def parse_duration(value: str) -> pd.Timedelta:
    """``1h``, ``30min``, ``1d`` / ``2 days`` (pandas deprecates the lower-case ``d``)."""
    text = re.sub(r"(?<=[\d\s])d(?:ays?)?$", "D", str(value).strip())
    try:
        td = pd.Timedelta(text)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"not a duration like '1h' or '1d': {value!r}") from exc
    if pd.isna(td):
        raise ValueError(f"not a duration like '1h' or '1d': {value!r}")
    return td


def check_date_format(value: str | None) -> str | None:
    """A strftime date format pandas can parse with (``%Q`` is refused here, not mid-import)."""
    if value is not None:
        try:
            pd.to_datetime(pd.Series(["2020-01-01"]), format=value, errors="coerce")
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a date format: {exc}") from None
    return value


def check_timezone(value: str | None) -> str | None:
    if value is not None:
        try:
            pd.Timestamp("2020-01-01").tz_localize(value)
        except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo raise several types
            raise ValueError(f"unknown time zone {value!r}") from exc
    return value


_MONTH_NAMES = (
    "jan feb mar apr may jun jul aug sep oct nov dec".split(),
    "january february march april may june july august september october november december".split(),
)
MONTHS: Mapping[str, int] = MappingProxyType(
    {name: i for names in _MONTH_NAMES for i, name in enumerate(names, start=1)}
    | {str(i): i for i in range(1, 13)}
    | {f"{i:02d}": i for i in range(1, 10)}
)


def snake_name(column: str) -> str:
    """``"Total Time Spent on Website"`` -> ``total_time_spent_on_website``,
    ``"TotalVisits"`` -> ``total_visits``."""
    text = unicodedata.normalize("NFKD", column).encode("ascii", "ignore").decode()
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        raise ValueError(f"cannot derive a column name from {column!r}; give it a 'name'")
    return text
