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
dictionary columns) skip string hashing entirely. The arithmetic after the cut in time is
``features.definitions.engagement_block``, which the per-request path shares.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm.vocabulary import EVENT_TYPES
from features.definitions import TYPE_CODE, EventRows, engagement_block
from features.encoding import SMALL, arrow_positions, factorize, id_positions
from features.feature_config import FeatureConfig
from features.pointintime import AsOf, to_ns

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
    lookup = np.array([*(TYPE_CODE.get(u, -1) for u in uniques), -1], dtype=np.intp)
    out = np.take(lookup, codes)
    if (out < 0).any():
        bad = [None if c < 0 else uniques[c] for c in np.unique(codes[out < 0])[:5]]
        raise ValueError(
            f"events.type has unknown or missing values {bad}; allowed: {', '.join(EVENT_TYPES)}"
        )
    return out


def _events_before(
    events: pd.DataFrame, lead_ids: pd.Index, as_of: AsOf, unborn: np.ndarray
) -> EventRows:
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
    return EventRows(lead, typ, age_ns, topic, n_topics)


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
    if events is None or len(events) == 0 or n == 0:
        rows = EventRows.empty()
    else:
        rows = _events_before(events, lead_ids, as_of, unborn)
    return engagement_block(rows, n, config)
