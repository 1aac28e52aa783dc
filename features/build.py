"""Point-in-time lead features: one function for training, batch scoring and the endpoint.

``compute_features(leads, accounts, events, as_of)`` returns one row per lead with a fixed
set of columns and fixed dtypes, so a one-row frame built from an HTTP request and a
million-row training frame are interchangeable (no train/serve skew).

Point in time: only events with ``at < as_of`` are used (``as_of`` is one timestamp or one
per lead; ``features.pointintime`` makes the cut). Windows are half-open: ``n_<type>_<w>d``
counts ``as_of - w days <= at < as_of``.

The work is split by concern: ``features.feature_config`` (the settings and the column
names), ``features.firmographics`` (who the lead is), ``features.engagement`` (what it did),
``features.encoding`` (ids and text to integer codes; short frames, the HTTP path, use plain
dicts instead of pandas hash tables, and a test checks both encodings give identical rows).
``benchmarks/features_speed.py`` measures both scales.

Missing values stay missing (NaN) where LightGBM can use "missing" as information
(firmographics, recency); counts and decayed sums are true zeros when there are no events.

The names other packages use (``FeatureConfig``, the feature-name lists, ...) are
re-exported here, so ``from features.build import ...`` keeps working.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from features.categories import CATEGORY_DTYPES, INDUSTRIES, SIZE_BANDS, SOURCES
from features.encoding import column, unique_text_index
from features.engagement import engagement
from features.feature_config import (
    CATEGORICAL_FEATURES,
    DEFAULT_HALF_LIVES_DAYS,
    ENGAGEMENT_FEATURES,
    EVENT_GROUPS,
    FEATURE_COLUMNS,
    FIRMOGRAPHIC_FEATURES,
    FIRMOGRAPHIC_NUMBERS,
    MAX_CUSTOM_CATEGORIES,
    TOPIC_WINDOW_DAYS,
    CustomAttribute,
    FeatureConfig,
    custom_feature_config,
    engagement_features,
    feature_columns,
    fit_features,
)
from features.firmographics import custom_columns, firmographics
from features.pointintime import AsOf, Moment, to_ns

__all__ = [
    "CATEGORICAL_FEATURES",
    "CATEGORY_DTYPES",
    "DEFAULT_HALF_LIVES_DAYS",
    "ENGAGEMENT_FEATURES",
    "EVENT_GROUPS",
    "FEATURE_COLUMNS",
    "FIRMOGRAPHIC_FEATURES",
    "INDUSTRIES",
    "MAX_CUSTOM_CATEGORIES",
    "SIZE_BANDS",
    "SOURCES",
    "TOPIC_WINDOW_DAYS",
    "CustomAttribute",
    "FeatureConfig",
    "compute_features",
    "custom_feature_config",
    "engagement_features",
    "feature_columns",
    "fit_features",
]


def _lead_ids(leads: pd.DataFrame) -> pd.Index:
    """The lead ids as a text index; missing or duplicated ids are errors."""
    if "lead_id" not in leads.columns:
        raise ValueError("leads has no lead_id column")
    return unique_text_index(leads["lead_id"], "leads.lead_id")


def compute_features(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: Moment | AsOf,
    config: FeatureConfig = FeatureConfig(),
) -> pd.DataFrame:
    """Features of every lead in ``leads`` as known just before ``as_of``.

    ``as_of`` is one timestamp for all leads or a Series indexed by lead_id (each lead's own
    snapshot time). Events of leads not in ``leads`` are ignored; an unknown event type is
    an error (a silent drop would be train/serve skew).

    Events before ``created_at`` (anonymous visits merged into the lead when it was created)
    count once the lead exists. A lead created at or after ``as_of`` did not exist yet: it
    still gets a row, with its firmographics, ``lead_age_days`` 0 and no engagement, because
    the link between those early visits and the lead was not known at ``as_of``.
    """
    lead_ids = _lead_ids(leads)
    snapshot = AsOf.resolve(as_of, lead_ids)
    created_ns = to_ns(column(leads, "created_at", len(leads)), "leads.created_at")
    unborn = created_ns >= snapshot.ns  # NaT (int64 min) counts as existing
    categories, firm_numbers = firmographics(leads, accounts, snapshot, created_ns)
    activity = engagement(events, lead_ids, snapshot, unborn, config)
    numbers = np.hstack([firm_numbers, activity])
    parts = [
        pd.DataFrame(categories, index=lead_ids),
        pd.DataFrame(numbers, index=lead_ids, columns=_number_columns(config.windows_days)),
    ]
    if config.custom_attributes or config.counters:
        parts.append(custom_columns(leads, config, lead_ids))
    return pd.concat(parts, axis=1)


# A bounded cache of a pure function of an immutable tuple; it returns an immutable Index.
@lru_cache(maxsize=16)
def _number_columns(windows_days: tuple[int, ...]) -> pd.Index:
    """Names of the numeric block (building the Index costs ~0.1 ms: cached)."""
    config = FeatureConfig(windows_days=windows_days)
    return pd.Index([*FIRMOGRAPHIC_NUMBERS, *engagement_features(config)])
