"""Which features there are: the settings that shape them (:class:`FeatureConfig`, the
custom attributes of an import) and the column names a configuration gives.

Output order of ``compute_features``: the categorical firmographics, then every number (the
numeric firmographics, the engagement block), then the custom attributes and counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from crm.vocabulary import CUSTOM_KINDS, EVENT_TYPES
from features.categories import CATEGORY_DTYPES

#: The window of ``distinct_topics_<d>d``, in days.
TOPIC_WINDOW_DAYS: int = 90

EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "web": ("page_view", "blog_read", "pricing_view"),
    "email": ("newsletter_open", "newsletter_click", "email_open", "email_click"),
    "live": ("webinar_registered", "webinar_attended", "trade_fair_visit"),
    "content": ("content_download", "form_submit", "demo_request"),
    "negative": ("unsubscribe", "email_bounce"),
    "advocacy": ("referral",),
}

DEFAULT_HALF_LIVES_DAYS: dict[str, float] = {
    "web": 7.0,
    "email": 30.0,
    "live": 14.0,
    "content": 14.0,
    "negative": 60.0,
    "advocacy": 90.0,
}
#: The event groups, in the order of the decay and recency columns.
EVENT_GROUP_NAMES: tuple[str, ...] = tuple(EVENT_GROUPS)

# Output order: the categorical columns first, then every number (one float64 block).
CATEGORICAL_FEATURES: list[str] = list(CATEGORY_DTYPES)
FIRMOGRAPHIC_NUMBERS: list[str] = [
    "log_employees",
    "log_annual_revenue",
    "free_mail",
    "do_not_email",
    "lead_age_days",
]
FIRMOGRAPHIC_FEATURES: list[str] = [*CATEGORICAL_FEATURES, *FIRMOGRAPHIC_NUMBERS]

MAX_CUSTOM_CATEGORIES = 60


@dataclass(frozen=True)
class CustomAttribute:
    """A lead attribute an import declared (``attr_*`` column) and how it becomes a feature.

    Categorical attributes keep the categories seen in training (the most frequent
    ``MAX_CUSTOM_CATEGORIES``, the rest as "other"), so one row and a million rows encode
    alike; numeric and boolean ones become float64 (missing stays NaN)."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.startswith("attr_"):
            raise ValueError(f"custom attribute {self.name!r} must be an attr_* column")
        if self.kind not in CUSTOM_KINDS:
            raise ValueError(f"custom attribute {self.name!r}: unknown kind {self.kind!r}")


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings that change the feature values; log them with every model.

    ``windows_days``: count windows (sorted, positive days). ``half_lives_days``: interest
    half-life per event group; groups left out keep their default. ``custom_attributes``
    and ``counters``: the extra ``attr_*`` (profile) and ``counter_*`` (pre-aggregated
    engagement) columns of an imported export, used as features like the built-in ones.
    """

    windows_days: tuple[int, ...] = (7, 30, 90)
    half_lives_days: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_HALF_LIVES_DAYS)
    )
    custom_attributes: tuple[CustomAttribute, ...] = ()
    counters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        windows = tuple(sorted({int(w) for w in self.windows_days}))
        if not windows or windows[0] <= 0:
            raise ValueError(f"windows_days must be positive days, got {self.windows_days!r}")
        unknown = set(self.half_lives_days) - set(EVENT_GROUPS)
        if unknown:
            raise ValueError(
                f"half_lives_days has unknown event groups {sorted(unknown)}; "
                f"known groups: {', '.join(EVENT_GROUPS)}"
            )
        half_lives = {
            g: float(self.half_lives_days.get(g, d)) for g, d in DEFAULT_HALF_LIVES_DAYS.items()
        }
        bad = {g: v for g, v in half_lives.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"half-lives must be positive and finite, got {bad}")
        object.__setattr__(self, "windows_days", windows)
        object.__setattr__(self, "half_lives_days", half_lives)
        object.__setattr__(self, "custom_attributes", tuple(self.custom_attributes))
        object.__setattr__(self, "counters", tuple(self.counters))
        bad_counters = [c for c in self.counters if not c.startswith("counter_")]
        if bad_counters:
            raise ValueError(f"counters must be counter_* columns, got {bad_counters}")

    def __hash__(self) -> int:
        return hash(
            (
                self.windows_days,
                tuple(sorted(self.half_lives_days.items())),
                self.custom_attributes,
                self.counters,
            )
        )

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.custom_attributes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for experiment logging (MLflow params, model metadata)."""
        return {
            "windows_days": list(self.windows_days),
            "half_lives_days": dict(self.half_lives_days),
            "custom_attributes": {a.name: a.kind for a in self.custom_attributes},
            "counters": list(self.counters),
        }


def engagement_features(config: FeatureConfig | None = None) -> list[str]:
    """Engagement column names for a config (the default config gives ENGAGEMENT_FEATURES)."""
    config = config or FeatureConfig()
    counts = [f"n_{t}_{w}d" for t in EVENT_TYPES for w in config.windows_days]
    return [
        *counts,
        *(f"decay_{g}" for g in EVENT_GROUP_NAMES),
        "days_since_last_event",
        *(f"days_since_last_{g}" for g in EVENT_GROUP_NAMES),
        "n_events_total",
        f"distinct_topics_{TOPIC_WINDOW_DAYS}d",
        "unsubscribed",
        "bounced",
        *config.counters,
    ]


def fit_features(config: FeatureConfig | None = None) -> list[str]:
    """Profile columns (the fit model's inputs): firmographics plus custom attributes."""
    config = config or FeatureConfig()
    return [*FIRMOGRAPHIC_FEATURES, *config.attribute_names]


def feature_columns(config: FeatureConfig | None = None) -> list[str]:
    """All output columns, in order, for a config."""
    config = config or FeatureConfig()
    base = engagement_features(config)[: len(engagement_features(config)) - len(config.counters)]
    return [*FIRMOGRAPHIC_FEATURES, *base, *config.attribute_names, *config.counters]


def custom_feature_config(
    leads: pd.DataFrame,
    attributes: Mapping[str, str],
    counters: Sequence[str],
    base: FeatureConfig | None = None,
) -> FeatureConfig:
    """A FeatureConfig that adds an import's custom columns, categories learned from
    ``leads`` (the training rows). Returns ``base`` unchanged when there are none."""
    base = base or FeatureConfig()
    custom = []
    for name, kind in attributes.items():
        categories: tuple[str, ...] = ()
        if kind == "categorical":
            values = leads[name].dropna().astype(str) if name in leads else pd.Series([])
            top = values.value_counts().index[:MAX_CUSTOM_CATEGORIES]
            categories = (*sorted({str(v) for v in top} - {"other"}), "other")
        custom.append(CustomAttribute(name, kind, categories))
    return FeatureConfig(
        windows_days=base.windows_days,
        half_lives_days=base.half_lives_days,
        custom_attributes=tuple(custom),
        counters=tuple(counters),
    )


ENGAGEMENT_FEATURES: list[str] = engagement_features()
FEATURE_COLUMNS: list[str] = feature_columns()
