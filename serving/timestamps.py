"""Timestamps the service receives and stores: checked, then naive UTC by the one rule of
:func:`features.pointintime.naive_utc`.

An aware timestamp is converted to UTC and loses its zone; a naive one is taken as UTC
already (as everywhere in :mod:`crm.contract`). Every timestamp must lie between
:data:`MIN_TIME` and :data:`MAX_TIME`: outside that range it is a typo or a sentinel
(0001-01-01), never a real event, and some databases cannot store it. The request schemas
(:mod:`serving.schemas`), ``as_of`` and the prediction log (:mod:`serving.predlog`) all use
:func:`checked_moment`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from features.pointintime import naive_utc

MIN_TIME = datetime(1970, 1, 1)
MAX_TIME = datetime(2200, 1, 1)


def checked_moment(value: Any, field: str | None = None) -> datetime:
    """``value`` (a datetime, a pandas Timestamp or ISO-8601 text) in naive UTC.

    Raises ``ValueError`` (its message starts with ``field``, when given) for text that is
    not ISO 8601, anything that is not a timestamp, and a moment outside
    :data:`MIN_TIME`..:data:`MAX_TIME`."""
    if type(value) is datetime:  # the common cases, without pandas
        if value.tzinfo is None:
            if MIN_TIME <= value <= MAX_TIME:
                return value  # naive is UTC already (the rule of naive_utc)
        elif value.tzinfo is UTC:  # "...Z", "+00:00"
            utc = value.replace(tzinfo=None)
            if MIN_TIME <= utc <= MAX_TIME:
                return utc
        else:  # another offset ("+02:00"): minus it, as tz_convert("UTC") does
            local = value.replace(tzinfo=None)
            offset = value.utcoffset()
            if offset is not None and MIN_TIME <= local <= MAX_TIME:  # no overflow there
                utc = local - offset
                if MIN_TIME <= utc <= MAX_TIME:
                    return utc
    # what is left (text, pandas, other types, and moments out of range) takes the one rule
    where = f"{field}: " if field else ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f"{where}not an ISO-8601 timestamp") from e
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValueError(f"{where}expected a timestamp, got {type(value).__name__}")
    out_of_range = f"{where}timestamp out of range ({MIN_TIME.year} to {MAX_TIME.year})"
    # An offset moves a moment by less than a day: a moment further out than that stays out
    # of range in UTC (and would overflow on the way there).
    naive = value.replace(tzinfo=None)
    if not MIN_TIME - timedelta(days=1) <= naive <= MAX_TIME + timedelta(days=1):
        raise ValueError(out_of_range)
    value = naive_utc(value).to_pydatetime()  # the one UTC rule: features.pointintime
    if not MIN_TIME <= value <= MAX_TIME:
        raise ValueError(out_of_range)
    return value


def utc_now() -> datetime:
    """Now, in naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


__all__ = ["MAX_TIME", "MIN_TIME", "checked_moment", "utc_now"]
