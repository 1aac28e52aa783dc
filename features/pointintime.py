"""The moment features are computed as of, and the rules every as-of computation shares.

A feature, a persona, a lifecycle stage or a content phase "as of" a moment uses only what
was recorded strictly before it: an event at ``as_of`` or later is in the future. Every
such computation in ``features/`` goes through :class:`AsOf` and the helpers here, so the
cut is made one way everywhere (train/serve skew starts where two copies of a cut differ):

- moments are naive UTC (a time-zone-aware moment is converted to UTC, then made naive),
  held as int64 nanoseconds; a missing time (NaT) is ``NAT_NS`` (int64 min) and never counts;
- ``as_of`` is one moment for every lead or one per lead (a Series indexed by lead_id);
- a row is *before* the snapshot when its lead is known, its time is not missing and
  ``age = as_of - at > 0``;
- a window of ``d`` days is ``window_ns(d)`` nanoseconds (whole seconds); the count windows
  of the engagement features include their start (``as_of - d <= at``), the "in the last
  d days" rules of the lifecycle and the content phase exclude it (``as_of - d < at``):
  :meth:`AsOf.in_window` names which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.encoding import as_text_index, find_text, positions

#: One day in nanoseconds.
DAY_NS: int = 86_400 * 10**9
#: A missing time (NaT) as int64 nanoseconds.
NAT_NS: int = int(np.iinfo(np.int64).min)

#: What callers may pass as ``as_of``: one moment, or one per lead (indexed by lead_id).
Moment = pd.Timestamp | pd.Series


def window_ns(days: float) -> int:
    """A window of ``days`` days in nanoseconds, rounded to whole seconds."""
    return int(round(days * 86_400)) * 10**9


def naive_utc(value: Any) -> pd.Timestamp:
    """A moment as a naive-UTC Timestamp (aware ones converted to UTC); NaT is an error."""
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError("as_of is missing (NaT)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def to_ns(values: pd.Series, what: str) -> np.ndarray:
    """Naive-UTC nanoseconds as int64, NaT as ``NAT_NS``; unparseable text -> ValueError."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise ValueError(f"{what}: not a timestamp: {values[bad].iloc[:3].tolist()}")
        values = parsed.dt.tz_localize(None)
    return np.asarray(values.array).astype("datetime64[ns]", copy=False).view(np.int64)


def ns_to_days(age_ns: np.ndarray) -> np.ndarray:
    """Ages of many rows in days (float64): one multiplication, cheaper than a division on
    tens of millions of events."""
    return age_ns * (1.0 / DAY_NS)


def _per_lead_ns(as_of: pd.Series, leads: pd.Index) -> np.ndarray:
    """One moment per lead from a Series indexed by lead_id (ids compared as text)."""
    index = as_text_index(as_of.index)
    if not index.is_unique:
        raise ValueError("as_of must have one time per lead_id (its index has duplicates)")
    pos = find_text(index, leads)
    if (pos < 0).any():
        missing = leads[pos < 0][:5].tolist()
        raise ValueError(f"as_of has no timestamp for {(pos < 0).sum()} lead(s), e.g. {missing}")
    ns = to_ns(as_of, "as_of")[pos]
    if (ns == NAT_NS).any():
        raise ValueError(f"as_of is missing (NaT) for {(ns == NAT_NS).sum()} lead(s)")
    return ns


@dataclass(frozen=True, eq=False)
class AsOf:
    """The snapshot of a set of leads: each lead's as-of moment as naive-UTC int64 ns.

    Build it once with :meth:`resolve` and hand it to every as-of computation of the same
    leads (``funnel_profile`` does): the moment is parsed, checked and aligned once."""

    leads: pd.Index
    ns: np.ndarray  # int64, one per lead, in ``leads`` order
    moment: int | None  # the one moment every lead shares (None when they differ)
    # rows_before's answers for this snapshot: (id(table), time column) -> (table, rows)
    _cuts: dict[tuple[int, str], tuple[pd.DataFrame, EventsBefore]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def resolve(cls, as_of: Moment | AsOf, leads: pd.Index) -> AsOf:
        """``as_of`` (a moment, a Series of moments indexed by lead_id, or an AsOf of the
        same leads) for ``leads``; a lead without a moment is an error."""
        if isinstance(as_of, AsOf):
            if as_of.leads is leads or as_of.leads.equals(leads):
                return as_of
            raise ValueError("as_of was resolved for other leads")
        if not isinstance(as_of, pd.Series):
            one = int(naive_utc(as_of).as_unit("ns").value)
            return cls(leads, np.full(len(leads), one, dtype=np.int64), one)
        ns = _per_lead_ns(as_of, leads)
        shared = len(ns) > 0 and ns.min() == ns.max()
        return cls(leads, ns, int(ns[0]) if shared else None)

    def of_rows(self, lead_pos: np.ndarray) -> np.ndarray | int:
        """The as-of moment of each row's lead (rows of unknown leads, -1, read garbage:
        mask them with :meth:`before`)."""
        if self.moment is not None:
            return self.moment
        if len(self.ns) == 0:
            return np.zeros(len(lead_pos), dtype=np.int64)
        return np.take(self.ns, lead_pos)

    def ages(self, lead_pos: np.ndarray, at_ns: np.ndarray) -> np.ndarray:
        """``as_of - at`` in ns per row (garbage where the lead is unknown or at is NaT)."""
        return self.of_rows(lead_pos) - at_ns

    @staticmethod
    def before(lead_pos: np.ndarray, at_ns: np.ndarray, age_ns: np.ndarray) -> np.ndarray:
        """Rows of known leads recorded strictly before their as_of (``age > 0``)."""
        return (lead_pos >= 0) & (at_ns != NAT_NS) & (age_ns > 0)

    @staticmethod
    def in_window(age_ns: np.ndarray, days: float, *, include_start: bool) -> np.ndarray:
        """Rows of age at most (``include_start``) or less than ``days`` days."""
        cut = window_ns(days)
        return age_ns <= cut if include_start else age_ns < cut

    def days_since(self, ns: np.ndarray) -> np.ndarray:
        """Days from a per-lead time to each lead's as_of; NaN where the time is missing."""
        return np.where(ns == NAT_NS, np.nan, (self.ns - ns) / DAY_NS)


class EventsBefore(NamedTuple):
    """Rows of a table (events, stage changes, ...) of known leads strictly before their
    as_of."""

    rows: np.ndarray  # row positions in the table
    lead_pos: np.ndarray  # position of each row's lead in the lead index
    at: np.ndarray  # int64 ns of each row
    age: np.ndarray  # as_of - at, int64 ns (> 0)


def rows_before(
    table: pd.DataFrame, as_of: AsOf, time_column: str = "at", lead_pos: np.ndarray | None = None
) -> EventsBefore:
    """The rows of ``table`` whose lead is one of ``as_of.leads`` and whose ``time_column``
    is strictly before that lead's as_of: the one place funnel-intelligence functions cut
    a table in time. The snapshot keeps the answer for the table it was given (the
    persona, lifecycle and content steps of ``funnel_profile`` cut the same events with
    the same snapshot): callers only read the arrays, and a table is not changed while a
    snapshot of it is in use."""
    cacheable = lead_pos is None  # a caller's own lead positions are not kept
    key = (id(table), time_column)
    if cacheable:
        cached = as_of._cuts.get(key)
        if cached is not None and cached[0] is table:
            return cached[1]
        lead_pos = positions(table["lead_id"], as_of.leads)
    at = to_ns(table[time_column], f"{time_column}")
    age = as_of.ages(lead_pos, at)
    rows = np.flatnonzero(AsOf.before(lead_pos, at, age))
    cut = EventsBefore(rows, lead_pos[rows], at[rows], age[rows])
    if cacheable:
        as_of._cuts[key] = (table, cut)  # the table is kept, so its id is not reused
    return cut


def events_before(events: pd.DataFrame, leads: pd.Index, as_of: Moment | AsOf) -> EventsBefore:
    """The events of ``leads`` strictly before ``as_of`` (rows, lead positions, times, ages)."""
    return rows_before(events, AsOf.resolve(as_of, leads))
