"""Engagement features: what a lead did before ``as_of``, from its events.

Per lead: counts per event type and window (``n_<type>_<w>d`` counts ``as_of - w days <=
at < as_of``), interest decayed per event group (``decay_<group>``: the sum of
``0.5 ** (age / half-life)``), recency (days since the last event, overall and per group),
the total, the distinct topics of the last ``TOPIC_WINDOW_DAYS`` days, and whether the lead
unsubscribed or bounced. Counts and decayed sums are true zeros without events; recency
stays missing (NaN).

Speed: everything after the id look-up runs on integer codes with NumPy (one
``np.bincount`` over ``lead * n_types + type``, ``np.minimum.at`` for recency), so a batch
runs at millions of events per second; categorical ``lead_id``/``type`` columns (Parquet
dictionary columns) skip string hashing entirely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.vocabulary import EVENT_TYPES
from features.encoding import SMALL, arrow_positions, factorize, id_positions
from features.feature_config import (
    EVENT_GROUP_NAMES,
    EVENT_GROUPS,
    TOPIC_WINDOW_DAYS,
    FeatureConfig,
)
from features.pointintime import AsOf, ns_to_days, to_ns, window_ns

_N_TYPES = len(EVENT_TYPES)
_N_GROUPS = len(EVENT_GROUP_NAMES)
_GROUP_OF_TYPE = np.array(
    [next(i for i, g in enumerate(EVENT_GROUP_NAMES) if t in EVENT_GROUPS[g]) for t in EVENT_TYPES],
    dtype=np.int8,
)
_TYPE_CODE: dict[str, int] = {t: i for i, t in enumerate(EVENT_TYPES)}
_TYPE_INDEX = pd.Index(list(EVENT_TYPES))


def _type_codes(types: pd.Series) -> np.ndarray:
    """Position of each event type in EVENT_TYPES; unknown or missing types raise."""
    direct = arrow_positions(types, _TYPE_INDEX)
    if direct is not None:
        if not (direct < 0).any():
            return direct
        codes, uniques = factorize(types)  # only to name the bad values
    elif isinstance(types.dtype, pd.CategoricalDtype):
        codes, uniques = types.array.codes, types.cat.categories
        if tuple(uniques) == EVENT_TYPES and not (codes < 0).any():  # contract-typed frames
            return codes.astype(np.intp)
    else:
        codes, uniques = factorize(types)
    lookup = np.array([*(_TYPE_CODE.get(u, -1) for u in uniques), -1], dtype=np.intp)
    out = np.take(lookup, codes)
    if (out < 0).any():
        bad = [None if c < 0 else uniques[c] for c in np.unique(codes[out < 0])[:5]]
        raise ValueError(
            f"events.type has unknown or missing values {bad}; allowed: {', '.join(EVENT_TYPES)}"
        )
    return out


@dataclass
class _EventRows:
    """Per-event arrays of the events that count (known, born lead; strictly before its
    as_of). Each step below takes what it needs and drops what nobody needs after it (sets
    it to None): on 45.7M events every int64 array is 365 MB."""

    lead: np.ndarray | None  # position of the lead
    typ: np.ndarray | None  # code into EVENT_TYPES (int8)
    age_ns: np.ndarray | None  # as_of - at (> 0)
    topic: np.ndarray | None  # topic code, -1 = none
    n_topics: int

    @classmethod
    def empty(cls) -> _EventRows:
        none = np.empty(0, dtype=np.intp)
        return cls(none, none, np.empty(0, dtype=np.int64), none, 0)


def _events_before(
    events: pd.DataFrame, lead_ids: pd.Index, as_of: AsOf, unborn: np.ndarray
) -> _EventRows:
    """The events that count, cut in time by ``as_of`` (temporaries freed as they go)."""
    lead = id_positions(events["lead_id"], lead_ids)
    typ = _type_codes(events["type"]).astype(np.int8)
    at = to_ns(events["at"], "events.at")
    # lead -1 and NaT give garbage here, masked next (NaT is int64 min: it would overflow)
    age_ns = as_of.ages(lead, at)
    known = AsOf.before(lead, at, age_ns)
    del at
    if unborn.any():
        known &= ~np.take(unborn, lead)
    keep = np.flatnonzero(known)
    del known
    lead = np.take(lead, keep)
    typ = np.take(typ, keep)
    age_ns = np.take(age_ns, keep)
    topic, n_topics = _topic_codes(events, keep)
    return _EventRows(lead, typ, age_ns, topic, n_topics)


def _topic_codes(events: pd.DataFrame, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Topic code per kept event (-1 = none) and the number of distinct topics."""
    if "topic" not in events.columns:
        return np.full(len(keep), -1, dtype=np.intp), 0
    topic = events["topic"]
    if isinstance(topic.dtype, pd.CategoricalDtype):
        return np.take(topic.array.codes, keep), len(topic.cat.categories)
    if len(topic) > SMALL:  # only the kept events need hashing
        topic = topic.iloc[keep]
        keep = np.arange(len(keep))
    codes, uniques = factorize(topic)
    return codes[keep], len(uniques)


def _distinct_topics(rows: _EventRows, n: int) -> np.ndarray:
    """Distinct topics per lead in the topic window (drops ``rows.topic``)."""
    lead, topic, age_ns = rows.lead, rows.topic, rows.age_ns
    window = np.flatnonzero(
        AsOf.in_window(age_ns, TOPIC_WINDOW_DAYS, include_start=True) & (topic >= 0)
    )
    rows.topic = None
    return _distinct_per_lead(lead[window], topic[window], n, rows.n_topics)


def _distinct_per_lead(lead: np.ndarray, code: np.ndarray, n: int, n_codes: int) -> np.ndarray:
    """Number of distinct codes per lead: a presence table when small, else unique pairs."""
    if len(lead) == 0 or n_codes == 0:
        return np.zeros(n)
    pairs = lead.astype(np.int64) * n_codes + code
    if n * n_codes <= 1 << 26:
        seen = np.zeros(n * n_codes, dtype=bool)
        seen[pairs] = True
        return seen.reshape(n, n_codes).sum(axis=1).astype(np.float64)
    return np.bincount(np.unique(pairs) // n_codes, minlength=n).astype(np.float64)


def _window_counts(rows: _EventRows, n: int, windows: tuple[int, ...]) -> np.ndarray:
    """(n, n_types, len(windows) + 1) cumulative counts; the last slot counts all events.

    One bincount over "the first window the event is in"; a cumulative sum turns that into
    counts per window."""
    n_win = len(windows)
    first_window = np.zeros(len(rows.age_ns), dtype=np.int8)
    for w in windows:
        first_window += rows.age_ns > window_ns(w)
    key = rows.lead * _N_TYPES
    key += rows.typ
    key *= n_win + 1
    key += first_window
    del first_window
    counts = np.bincount(key, minlength=n * _N_TYPES * (n_win + 1))
    del key
    counts = counts.reshape(n, _N_TYPES, n_win + 1)
    np.cumsum(counts, axis=2, out=counts)
    return counts


def _decay_and_recency(
    rows: _EventRows, n: int, half_lives_days: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Decayed interest and days since the last event, per (lead, group): two (n, n_groups)
    arrays (recency +inf without events). Consumes ``rows``."""
    age_days = ns_to_days(rows.age_ns)
    rows.age_ns = None
    group = np.take(_GROUP_OF_TYPE, rows.typ)
    rows.typ = None
    rate = np.array([-math.log(2.0) / half_lives_days[g] for g in EVENT_GROUP_NAMES])
    lead_group = rows.lead * _N_GROUPS
    rows.lead = None
    lead_group += group
    weights = np.take(rate, group)
    del group
    weights *= age_days
    np.exp(weights, out=weights)
    decay = np.bincount(lead_group, weights=weights, minlength=n * _N_GROUPS)
    del weights
    recency = np.full(n * _N_GROUPS, np.inf)
    np.minimum.at(recency, lead_group, age_days)
    return decay.reshape(n, _N_GROUPS), recency.reshape(n, _N_GROUPS)


def engagement(
    events: pd.DataFrame | None,
    lead_ids: pd.Index,
    as_of: AsOf,
    unborn: np.ndarray,
    config: FeatureConfig,
) -> np.ndarray:
    """(n_leads, len(engagement_features(config)) - counters) float64 block, in the order
    of ``engagement_features``; ``unborn`` leads (created at or after as_of) get none."""
    n = len(lead_ids)
    n_win = len(config.windows_days)
    if events is None or len(events) == 0 or n == 0:
        rows = _EventRows.empty()
    else:
        rows = _events_before(events, lead_ids, as_of, unborn)
    topics = _distinct_topics(rows, n)
    counts = _window_counts(rows, n, config.windows_days)
    totals = counts[:, :, n_win]
    decay, recency = _decay_and_recency(rows, n, config.half_lives_days)

    out = np.empty((n, n_win * _N_TYPES + 2 * _N_GROUPS + 5), dtype=np.float64)
    k = n_win * _N_TYPES
    out[:, :k] = counts[:, :, :n_win].reshape(n, k)
    out[:, k : k + _N_GROUPS] = decay
    out[:, k + _N_GROUPS] = recency.min(axis=1, initial=np.inf)
    out[:, k + _N_GROUPS + 1 : k + 2 * _N_GROUPS + 1] = recency
    k += 2 * _N_GROUPS + 1
    out[:, k] = totals.sum(axis=1)
    out[:, k + 1] = topics
    out[:, k + 2] = totals[:, _TYPE_CODE["unsubscribe"]] > 0
    out[:, k + 3] = totals[:, _TYPE_CODE["email_bounce"]] > 0
    out[np.isinf(out)] = np.nan  # no event in a group: recency unknown, not infinite
    return out
