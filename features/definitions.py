"""Each feature defined once, for both evaluators: the vectorised batch path
(``features.build.compute_features`` over tables) and the per-request path
(``features.single``, over a request's leads, no DataFrame).

What a definition is here:

- an engagement feature is a rule over a lead's events strictly before ``as_of``:
  ``n_<type>_<w>d`` (events of one type, ``as_of - w days <= at``), ``decay_<group>`` (the
  sum of ``0.5 ** (age / half-life)`` over the group's events), ``days_since_last_*``
  (youngest event, overall and per group; missing without one), ``n_events_total``,
  ``distinct_topics_<d>d`` and the ``unsubscribed``/``bounced`` flags. The windows,
  groups and half-lives come from :class:`~features.feature_config.FeatureConfig`; the
  arithmetic is :func:`engagement_block`, which both evaluators call on integer-coded
  event rows (so the two agree bit for bit: same operations, same order);
- a firmographic feature is a scalar function of one raw value (:func:`category_code`
  with ``features.categories`` / ``features.geo`` / ``features.jobtitle``, :func:`flag`,
  :func:`number`, :func:`size_bands`): the batch path applies it once per distinct value,
  the per-request path once per lead.

tests/features/test_single_features.py checks both evaluators give identical values on simulated
leads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from crm.vocabulary import EVENT_TYPES, NO_WORDS, YES_WORDS
from features import geo
from features.categories import CATEGORY_CODE
from features.feature_config import (
    EVENT_GROUP_NAMES,
    EVENT_GROUPS,
    TOPIC_WINDOW_DAYS,
    FeatureConfig,
)
from features.jobtitle import parse_job_title
from features.pointintime import AsOf, ns_to_days, window_ns

N_TYPES = len(EVENT_TYPES)
N_GROUPS = len(EVENT_GROUP_NAMES)
#: event type -> its code (position in EVENT_TYPES)
TYPE_CODE: dict[str, int] = {t: i for i, t in enumerate(EVENT_TYPES)}
#: event type code -> its group's position in EVENT_GROUP_NAMES
GROUP_OF_TYPE = np.array(
    [next(i for i, g in enumerate(EVENT_GROUP_NAMES) if t in EVENT_GROUPS[g]) for t in EVENT_TYPES],
    dtype=np.int8,
)
#: the flags of the engagement block: feature -> the event type that sets it
ENGAGEMENT_FLAGS: dict[str, str] = {"unsubscribed": "unsubscribe", "bounced": "email_bounce"}

SIZE_EDGES = np.array([10.0, 50.0, 250.0, 1000.0, 5000.0])  # the SIZE_BANDS boundaries
FREE = frozenset({"free"})
BUSINESS = frozenset({"business"})


# ---------------------------------------------------------------- engagement
@dataclass
class EventRows:
    """Per-event arrays of the events that count (known, born lead; strictly before its
    as_of). Each step of :func:`engagement_block` takes what it needs and drops what
    nobody needs after it (sets it to None): on 45.7M events every int64 array is 365 MB."""

    lead: np.ndarray | None  # position of the lead (intp)
    typ: np.ndarray | None  # code into EVENT_TYPES (int8)
    age_ns: np.ndarray | None  # as_of - at (> 0), int64
    topic: np.ndarray | None  # topic code, -1 = none (intp)
    n_topics: int

    @classmethod
    def empty(cls) -> EventRows:
        none = np.empty(0, dtype=np.intp)
        return cls(none, none, np.empty(0, dtype=np.int64), none, 0)


def _distinct_topics(rows: EventRows, n: int) -> np.ndarray:
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


def _window_counts(rows: EventRows, n: int, windows: tuple[int, ...]) -> np.ndarray:
    """(n, n_types, len(windows) + 1) cumulative counts; the last slot counts all events.

    One bincount over "the first window the event is in"; a cumulative sum turns that into
    counts per window."""
    n_win = len(windows)
    first_window = np.zeros(len(rows.age_ns), dtype=np.int8)
    for w in windows:
        first_window += rows.age_ns > window_ns(w)
    key = rows.lead * N_TYPES
    key += rows.typ
    key *= n_win + 1
    key += first_window
    del first_window
    counts = np.bincount(key, minlength=n * N_TYPES * (n_win + 1))
    del key
    counts = counts.reshape(n, N_TYPES, n_win + 1)
    np.cumsum(counts, axis=2, out=counts)
    return counts


def _decay_and_recency(
    rows: EventRows, n: int, half_lives_days: Mapping[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Decayed interest and days since the last event, per (lead, group): two (n, n_groups)
    arrays (recency +inf without events). Consumes ``rows``."""
    age_days = ns_to_days(rows.age_ns)
    rows.age_ns = None
    group = np.take(GROUP_OF_TYPE, rows.typ)
    rows.typ = None
    rate = np.array([-math.log(2.0) / half_lives_days[g] for g in EVENT_GROUP_NAMES])
    lead_group = rows.lead * N_GROUPS
    rows.lead = None
    lead_group += group
    weights = np.take(rate, group)
    del group
    weights *= age_days
    np.exp(weights, out=weights)
    decay = np.bincount(lead_group, weights=weights, minlength=n * N_GROUPS)
    del weights
    recency = np.full(n * N_GROUPS, np.inf)
    np.minimum.at(recency, lead_group, age_days)
    return decay.reshape(n, N_GROUPS), recency.reshape(n, N_GROUPS)


def engagement_block(rows: EventRows, n: int, config: FeatureConfig) -> np.ndarray:
    """(n, len(engagement_features(config)) - counters) float64 block, in the order of
    ``engagement_features``, from the event rows that count (consumed)."""
    n_win = len(config.windows_days)
    topics = _distinct_topics(rows, n)
    counts = _window_counts(rows, n, config.windows_days)
    totals = counts[:, :, n_win]
    decay, recency = _decay_and_recency(rows, n, config.half_lives_days)

    out = np.empty((n, n_win * N_TYPES + 2 * N_GROUPS + 3 + len(ENGAGEMENT_FLAGS)))
    k = n_win * N_TYPES
    out[:, :k] = counts[:, :, :n_win].reshape(n, k)
    out[:, k : k + N_GROUPS] = decay
    out[:, k + N_GROUPS] = recency.min(axis=1, initial=np.inf)
    out[:, k + N_GROUPS + 1 : k + 2 * N_GROUPS + 1] = recency
    k += 2 * N_GROUPS + 1
    out[:, k] = totals.sum(axis=1)
    out[:, k + 1] = topics
    for j, event_type in enumerate(ENGAGEMENT_FLAGS.values()):
        out[:, k + 2 + j] = totals[:, TYPE_CODE[event_type]] > 0
    out[np.isinf(out)] = np.nan  # no event in a group: recency unknown, not infinite
    return out


# ---------------------------------------------------------------- firmographics
# Bounded caches of pure functions of immutable values (spellings and titles repeat).
@lru_cache(maxsize=8192)
def category_code(name: str, to_category: Callable[[Any], str | None], value: Any) -> int:
    """Code of one raw value in ``CATEGORY_DTYPES[name]`` (-1 = missing)."""
    return CATEGORY_CODE[name].get(to_category(value), -1)  # type: ignore[arg-type]


def country_iso(value: Any) -> str | None:
    """The ISO-2 code behind a raw country value (None when missing or unknown)."""
    return geo.country_code(value) if isinstance(value, str) else None


@lru_cache(maxsize=8192)
def title_codes(title: Any) -> tuple[int, int]:
    """(seniority, department) codes of a job title; a missing title is "unknown"."""
    if not isinstance(title, str):
        return CATEGORY_CODE["seniority"]["unknown"], CATEGORY_CODE["department"]["unknown"]
    seniority, department = parse_job_title(title)
    return category_code("seniority", str, seniority), category_code("department", str, department)


def flag(value: Any, true: frozenset[str] = YES_WORDS, false: frozenset[str] = NO_WORDS) -> float:
    """1.0/0.0 from a boolean, 0/1 or yes/no text; NaN when unreadable."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in true else 0.0 if text in false else np.nan
    return np.nan


def size_bands(employees: np.ndarray) -> np.ndarray:
    """Code of each head count in SIZE_BANDS (-1 when missing)."""
    size_band = np.searchsorted(SIZE_EDGES, employees, side="right").astype(np.int16)
    size_band[np.isnan(employees)] = -1
    return size_band


def valid_numbers(arr: np.ndarray) -> np.ndarray:
    """NaN for negative or infinite values (float64 in, float64 out)."""
    return np.where(np.isfinite(arr) & (arr >= 0), arr, np.nan)
