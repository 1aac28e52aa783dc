"""Point-in-time lead features: one function for training, batch scoring and the endpoint.

``compute_features(leads, accounts, events, as_of)`` returns one row per lead with a fixed
set of columns and fixed dtypes, so a one-row frame built from an HTTP request and a
million-row training frame are interchangeable (no train/serve skew).

Point in time: only events with ``at < as_of`` are used (``as_of`` is one timestamp or one
per lead). Windows are half-open: ``n_<type>_<w>d`` counts ``as_of - w days <= at < as_of``.

Speed: everything after the id look-up runs on integer codes with NumPy (``np.bincount`` over
``lead * n_types + type``, ``np.minimum.at`` for recency): a batch runs at millions of events
per second, and categorical ``lead_id``/``type`` columns (Parquet dictionary columns) skip
string hashing entirely. Short frames (the HTTP path) encode text with plain dicts instead
of pandas hash tables; a test checks both encodings give identical rows.
``benchmarks/features_speed.py`` measures both scales.

Missing values stay missing (NaN) where LightGBM can use "missing" as information
(firmographics, recency); counts and decayed sums are true zeros when there are no events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.vocabulary import CUSTOM_KINDS, EVENT_TYPES
from features import geo
from features.jobtitle import DEPARTMENTS, SENIORITIES, parse_job_title

DAY_NS: int = 86_400 * 10**9
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

INDUSTRIES: tuple[str, ...] = (
    "software",
    "it_services",
    "telecommunications",
    "manufacturing",
    "automotive",
    "machinery",
    "chemicals",
    "pharma",
    "healthcare",
    "financial_services",
    "insurance",
    "retail",
    "ecommerce",
    "wholesale",
    "logistics",
    "energy",
    "construction",
    "real_estate",
    "media",
    "education",
    "government",
    "professional_services",
    "hospitality",
    "food_beverage",
    "agriculture",
    "nonprofit",
    "other",
)

SOURCES: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "direct_traffic",
    "social",
    "email",
    "referral",
    "display",
    "webinar",
    "trade_fair",
    "event",
    "partner",
    "content",
    "chat",
    "outbound",
    "inbound_call",
    "import",
    "other",
)

SIZE_BANDS: tuple[str, ...] = ("1-9", "10-49", "50-249", "250-999", "1000-4999", "5000+")
_SIZE_EDGES = np.array([10.0, 50.0, 250.0, 1000.0, 5000.0])

# Spellings seen in CRM exports -> canonical value; keys are normalised by _slug.
_INDUSTRY_ALIASES: dict[str, str] = {
    "saas": "software",
    "software_development": "software",
    "computer_software": "software",
    "technology": "software",
    "tech": "software",
    "internet": "software",
    "it": "it_services",
    "information_technology": "it_services",
    "information_technology_and_services": "it_services",
    "it_consulting": "it_services",
    "managed_services": "it_services",
    "telecom": "telecommunications",
    "telco": "telecommunications",
    "telecommunication": "telecommunications",
    "industrial": "manufacturing",
    "industrials": "manufacturing",
    "industrial_manufacturing": "manufacturing",
    "electronics": "manufacturing",
    "industrie": "manufacturing",
    "automobile": "automotive",
    "auto": "automotive",
    "mechanical_engineering": "machinery",
    "maschinenbau": "machinery",
    "industrial_machinery": "machinery",
    "chemical": "chemicals",
    "chemie": "chemicals",
    "pharmaceutical": "pharma",
    "pharmaceuticals": "pharma",
    "life_sciences": "pharma",
    "biotech": "pharma",
    "biotechnology": "pharma",
    "health": "healthcare",
    "health_care": "healthcare",
    "hospital": "healthcare",
    "hospital_and_health_care": "healthcare",
    "medical": "healthcare",
    "medical_devices": "healthcare",
    "gesundheitswesen": "healthcare",
    "finance": "financial_services",
    "financial": "financial_services",
    "banking": "financial_services",
    "bank": "financial_services",
    "fintech": "financial_services",
    "investment_management": "financial_services",
    "capital_markets": "financial_services",
    "versicherung": "insurance",
    "consumer_goods": "retail",
    "einzelhandel": "retail",
    "e_commerce": "ecommerce",
    "online_retail": "ecommerce",
    "wholesale_trade": "wholesale",
    "distribution": "wholesale",
    "grosshandel": "wholesale",
    "transportation": "logistics",
    "transport": "logistics",
    "transportation_and_logistics": "logistics",
    "shipping": "logistics",
    "utilities": "energy",
    "oil_and_gas": "energy",
    "renewables": "energy",
    "renewable_energy": "energy",
    "energie": "energy",
    "building": "construction",
    "bau": "construction",
    "property": "real_estate",
    "immobilien": "real_estate",
    "publishing": "media",
    "entertainment": "media",
    "media_and_entertainment": "media",
    "advertising": "media",
    "marketing_and_advertising": "media",
    "higher_education": "education",
    "e_learning": "education",
    "elearning": "education",
    "edtech": "education",
    "public_sector": "government",
    "public_administration": "government",
    "government_administration": "government",
    "defense": "government",
    "consulting": "professional_services",
    "management_consulting": "professional_services",
    "legal": "professional_services",
    "law": "professional_services",
    "business_services": "professional_services",
    "hotel": "hospitality",
    "hotels": "hospitality",
    "travel": "hospitality",
    "tourism": "hospitality",
    "leisure": "hospitality",
    "travel_and_tourism": "hospitality",
    "food": "food_beverage",
    "beverage": "food_beverage",
    "beverages": "food_beverage",
    "food_and_beverage": "food_beverage",
    "food_and_beverages": "food_beverage",
    "wine": "food_beverage",
    "winery": "food_beverage",
    "farming": "agriculture",
    "agribusiness": "agriculture",
    "non_profit": "nonprofit",
    "ngo": "nonprofit",
    "charity": "nonprofit",
}

_SOURCE_ALIASES: dict[str, str] = {
    "organic": "organic_search",
    "seo": "organic_search",
    "search": "organic_search",
    "ppc": "paid_search",
    "sem": "paid_search",
    "cpc": "paid_search",
    "adwords": "paid_search",
    "google_ads": "paid_search",
    "pay_per_click_ads": "paid_search",
    "paid": "paid_search",
    "direct": "direct_traffic",
    "social_media": "social",
    "facebook": "social",
    "linkedin": "social",
    "twitter": "social",
    "instagram": "social",
    "youtube": "social",
    "newsletter": "email",
    "e_mail": "email",
    "email_campaign": "email",
    "mailing": "email",
    "reference": "referral",
    "referral_sites": "referral",
    "word_of_mouth": "referral",
    "recommendation": "referral",
    "display_ads": "display",
    "banner": "display",
    "webinars": "webinar",
    "trade_show": "trade_fair",
    "tradeshow": "trade_fair",
    "fair": "trade_fair",
    "messe": "trade_fair",
    "exhibition": "trade_fair",
    "events": "event",
    "conference": "event",
    "partners": "partner",
    "reseller": "partner",
    "channel": "partner",
    "whitepaper": "content",
    "content_syndication": "content",
    "blog": "content",
    "content_download": "content",
    "live_chat": "chat",
    "olark_chat": "chat",
    "chatbot": "chat",
    "cold_call": "outbound",
    "cold_email": "outbound",
    "outbound_sales": "outbound",
    "phone": "inbound_call",
    "call": "inbound_call",
    "click2call": "inbound_call",
    "lead_import": "import",
    "list_import": "import",
    "purchased_list": "import",
}

_PLACEHOLDERS = frozenset({"", "select", "unknown", "n_a", "na", "none", "null", "nan"})


def _category(values: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(categories=pd.Index(list(values), dtype="str"), ordered=False)


CATEGORY_DTYPES: dict[str, pd.CategoricalDtype] = {
    "industry": _category(INDUSTRIES),
    "size_band": _category(SIZE_BANDS),
    "region": _category(geo.REGIONS),
    "country": _category(geo.COUNTRIES),
    "seniority": _category(SENIORITIES),
    "department": _category(DEPARTMENTS),
    "source": _category(SOURCES),
}

# Output order: the categorical columns first, then every number (one float64 block).
CATEGORICAL_FEATURES: list[str] = list(CATEGORY_DTYPES)
_FIRMOGRAPHIC_NUMBERS: list[str] = [
    "log_employees",
    "log_annual_revenue",
    "free_mail",
    "do_not_email",
    "lead_age_days",
]
FIRMOGRAPHIC_FEATURES: list[str] = [*CATEGORICAL_FEATURES, *_FIRMOGRAPHIC_NUMBERS]

_N_TYPES = len(EVENT_TYPES)
_GROUPS: tuple[str, ...] = tuple(EVENT_GROUPS)
_GROUP_OF_TYPE = np.array(
    [next(i for i, g in enumerate(_GROUPS) if t in EVENT_GROUPS[g]) for t in EVENT_TYPES],
    dtype=np.int8,
)


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
        *(f"decay_{g}" for g in _GROUPS),
        "days_since_last_event",
        *(f"days_since_last_{g}" for g in _GROUPS),
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


def _custom_columns(leads: pd.DataFrame, config: FeatureConfig, index: pd.Index) -> pd.DataFrame:
    """The custom attribute and counter features, in config order."""
    n = len(leads)
    out: dict[str, Any] = {}
    for attr in config.custom_attributes:
        col = _column(leads, attr.name, n)
        if attr.kind == "categorical":
            dtype = _category(attr.categories)
            text = col.astype("str")
            known = text.isin(attr.categories[:-1]).to_numpy()
            values = np.where(col.isna().to_numpy(), None, np.where(known, text, "other"))
            out[attr.name] = pd.Categorical(values, dtype=dtype)
        elif attr.kind == "boolean":
            out[attr.name] = _flags(col, _YES, _NO)
        else:
            out[attr.name] = _numbers(col)
    for name in config.counters:
        out[name] = _numbers(_column(leads, name, n))
    return pd.DataFrame(out, index=index)


ENGAGEMENT_FEATURES: list[str] = engagement_features()
FEATURE_COLUMNS: list[str] = feature_columns()


# --------------------------------------------------------------------------- public entry


def compute_features(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp | pd.Series,
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
    lead_ids = _lead_index(leads)
    asof_ns = _as_of_ns(as_of, lead_ids)
    created_ns = _to_ns(_column(leads, "created_at", len(leads)), "leads.created_at")
    unborn = created_ns >= asof_ns  # NaT (int64 min) counts as existing
    categories, firm_numbers = _firmographics(leads, accounts, asof_ns, created_ns)
    engagement = _engagement(events, lead_ids, asof_ns, unborn, config)
    numbers = np.hstack([firm_numbers, engagement])
    parts = [
        pd.DataFrame(categories, index=lead_ids),
        pd.DataFrame(numbers, index=lead_ids, columns=_number_columns(config.windows_days)),
    ]
    if config.custom_attributes or config.counters:
        parts.append(_custom_columns(leads, config, lead_ids))
    return pd.concat(parts, axis=1)


@lru_cache(maxsize=16)
def _number_columns(windows_days: tuple[int, ...]) -> pd.Index:
    """Names of the numeric block (an immutable Index, cached: building it costs ~0.1 ms)."""
    config = FeatureConfig(windows_days=windows_days)
    return pd.Index([*_FIRMOGRAPHIC_NUMBERS, *engagement_features(config)])


# --------------------------------------------------------------------------- encoding

# Up to this many rows, plain dict look-ups beat the set-up cost of pandas' hash tables:
# that keeps the one-lead HTTP path fast. Both paths give the same codes (tested).
_SMALL = 64
_NAT = np.iinfo(np.int64).min


def _is_missing(value: Any) -> bool:
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


def _factorize(values: pd.Series) -> tuple[np.ndarray, Sequence[Any]]:
    """Codes (-1 = missing) into the distinct values, which are returned too."""
    if len(values) <= _SMALL and not isinstance(values.dtype, pd.CategoricalDtype):
        items = _pylist(values)
        uniques = [v for v in dict.fromkeys(items) if not _is_missing(v)]
        where = {v: i for i, v in enumerate(uniques)}
        return np.array([where.get(v, -1) for v in items], dtype=np.intp), uniques
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes, uniques


def _as_str_index(values: Any, name: str | None = None) -> pd.Index:
    index = pd.Index(values, name=name)
    if index.dtype != "str":
        index = index.astype("str")
    return index


def _find(index: pd.Index, values: Sequence[Any]) -> np.ndarray:
    """Position of each value (compared as text) in a unique index; -1 when absent."""
    if len(values) <= _SMALL and len(index) <= _SMALL:
        where = {v: i for i, v in enumerate(index.tolist())}
        return np.array(
            [where.get(v if isinstance(v, str) else str(v), -1) for v in values], dtype=np.intp
        )
    return index.get_indexer(_as_str_index(values))


def _arrow_positions(values: pd.Series, keys: pd.Index) -> np.ndarray | None:
    """Position of each value in ``keys`` (-1 = absent or missing) by Arrow's hash look-up.

    For long Arrow-backed text columns (pandas' default ``str``) this is ~1.5x faster than
    factorizing first; None for any other column, which takes the generic path.
    """
    dtype = values.dtype
    if len(values) <= _SMALL or not (
        isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    ):
        return None
    array = pa.array(values.array)
    found = pc.index_in(array, value_set=pa.array(keys.array).cast(array.type))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)


def _positions(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Row of ``index`` for each id, -1 when absent. Distinct ids are looked up once."""
    direct = _arrow_positions(ids, index)
    if direct is not None:
        return direct
    if isinstance(ids.dtype, pd.CategoricalDtype):
        codes, uniques = ids.array.codes, _as_str_index(ids.cat.categories)
        if len(uniques) == len(index) and uniques.equals(index):  # dictionary == the leads
            return codes.astype(np.intp)
    else:
        codes, uniques = _factorize(ids)
    return np.take(np.append(_find(index, uniques), -1), codes)  # code -1 reads the last slot


def _unique_index(values: pd.Series, what: str) -> pd.Index:
    """Ids as a text index; missing or duplicated ids are errors."""
    codes, uniques = _factorize(values)
    if (codes < 0).any():
        raise ValueError(f"{what} has missing values")
    index = _as_str_index(values.array, name="lead_id" if what == "leads.lead_id" else None)
    if len(uniques) != len(values):
        dup = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"{what} must be unique; duplicated: {dup}")
    return index


def _lead_index(leads: pd.DataFrame) -> pd.Index:
    if "lead_id" not in leads.columns:
        raise ValueError("leads has no lead_id column")
    return _unique_index(leads["lead_id"], "leads.lead_id")


def _column(df: pd.DataFrame | None, name: str, n: int) -> pd.Series:
    """A column, or an all-missing one when the frame lacks it (optional fields)."""
    if df is not None and name in df.columns:
        return df[name]
    return pd.Series([None] * n, dtype=object)


# --------------------------------------------------------------------------- times


def _to_ns(values: pd.Series, what: str) -> np.ndarray:
    """Naive-UTC nanoseconds as int64, NaT as int64 min; unparseable text -> ValueError."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna() & values.notna()
        if bad.any():
            raise ValueError(f"{what}: not a timestamp: {values[bad].iloc[:3].tolist()}")
        values = parsed.dt.tz_localize(None)
    return np.asarray(values.array).astype("datetime64[ns]", copy=False).view(np.int64)


def _scalar_ns(value: Any) -> int:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError("as_of is missing (NaT)")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.as_unit("ns").value)


def _as_of_ns(as_of: Any, lead_ids: pd.Index) -> np.ndarray:
    """One snapshot time per lead (int64 ns), in ``lead_ids`` order."""
    if not isinstance(as_of, pd.Series):
        return np.full(len(lead_ids), _scalar_ns(as_of), dtype=np.int64)
    index = _as_str_index(as_of.index)
    if not index.is_unique:
        raise ValueError("as_of must have one time per lead_id (its index has duplicates)")
    pos = _find(index, lead_ids)
    if (pos < 0).any():
        missing = lead_ids[pos < 0][:5].tolist()
        raise ValueError(f"as_of has no time for {(pos < 0).sum()} lead(s), e.g. {missing}")
    ns = _to_ns(as_of, "as_of")[pos]
    if (ns == _NAT).any():
        raise ValueError(f"as_of is missing (NaT) for {(ns == _NAT).sum()} lead(s)")
    return ns


# --------------------------------------------------------------------------- firmographics


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower().replace("&", " and ")).strip("_")


def _canonical(aliases: Mapping[str, str], known: tuple[str, ...]) -> Callable[[Any], str | None]:
    """Value -> a known category, "other", or None for missing and placeholders."""
    known_set = frozenset(known)

    def canonical(value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        key = _slug(value)
        if key in _PLACEHOLDERS:
            return None
        key = aliases.get(key, key)
        return key if key in known_set else "other"

    return canonical


_industry = _canonical(_INDUSTRY_ALIASES, INDUSTRIES)
_source = _canonical(_SOURCE_ALIASES, SOURCES)
_CATEGORY_CODE: dict[str, dict[str, int]] = {
    name: {c: i for i, c in enumerate(dtype.categories)} for name, dtype in CATEGORY_DTYPES.items()
}


def _category_codes(
    codes: np.ndarray, uniques: Sequence[Any], to_category: Callable[[Any], str | None], name: str
) -> np.ndarray:
    """Codes into ``CATEGORY_DTYPES[name]`` (-1 = missing); one mapping per distinct value."""
    where = _CATEGORY_CODE[name]
    lookup = [where.get(to_category(u), -1) for u in uniques]  # type: ignore[arg-type]
    return np.array([*lookup, -1], dtype=np.int16)[codes]


def _categorical(codes: np.ndarray, name: str) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=CATEGORY_DTYPES[name], validate=False)


def _numbers(values: pd.Series) -> np.ndarray:
    """float64; NaN for missing, unparseable, negative or infinite values."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        arr = values.to_numpy().astype(np.float64, copy=False)
    else:
        arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isfinite(arr) & (arr >= 0), arr, np.nan)


_YES = frozenset({"true", "yes", "y", "1"})
_NO = frozenset({"false", "no", "n", "0"})


def _flag(value: Any, true: frozenset[str], false: frozenset[str]) -> float:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return 1.0 if text in true else 0.0 if text in false else np.nan
    return np.nan


def _flags(values: pd.Series, true: frozenset[str], false: frozenset[str]) -> np.ndarray:
    """1.0/0.0 from booleans or yes/no text; NaN when missing or unreadable."""
    if values.dtype == np.bool_:
        return values.to_numpy().astype(np.float64)
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, uniques = _factorize(values)
    return np.array([*(_flag(u, true, false) for u in uniques), np.nan])[codes]


def _firmographics(
    leads: pd.DataFrame,
    accounts: pd.DataFrame | None,
    asof_ns: np.ndarray,
    created_ns: np.ndarray,
) -> tuple[dict[str, pd.Categorical], np.ndarray]:
    """Categorical columns, and the numeric ones as an (n, 5) block."""
    n = len(leads)
    m = 0 if accounts is None else len(accounts)
    if m and "account_id" in accounts.columns:
        acc_index = _unique_index(accounts["account_id"], "accounts.account_id")
        acc_pos = _positions(_column(leads, "account_id", n), acc_index)
    else:
        acc_pos = np.full(n, -1, dtype=np.intp)

    def account_numbers(column: str) -> np.ndarray:
        return np.append(_numbers(_column(accounts, column, m)), np.nan)[acc_pos]

    def account_codes(column: str, to_category: Callable[[Any], str | None], name: str):
        codes, uniques = _factorize(_column(accounts, column, m))
        return np.append(_category_codes(codes, uniques, to_category, name), -1)[acc_pos]

    employees = account_numbers("employees")
    size_band = np.searchsorted(_SIZE_EDGES, employees, side="right").astype(np.int16)
    size_band[np.isnan(employees)] = -1

    country_codes, country_values = _factorize(_column(accounts, "country", m))
    iso = [geo.country_code(v) if isinstance(v, str) else None for v in country_values]
    country = _category_codes(country_codes, iso, geo.country_category, "country")
    region = _category_codes(country_codes, iso, geo.region_of, "region")

    title_codes, titles = _factorize(_column(leads, "job_title", n))
    parsed = [parse_job_title(t if isinstance(t, str) else None) for t in titles]
    seniority = _category_codes(title_codes, [s for s, _ in parsed], str, "seniority")
    department = _category_codes(title_codes, [d for _, d in parsed], str, "department")
    seniority[title_codes < 0] = _CATEGORY_CODE["seniority"]["unknown"]
    department[title_codes < 0] = _CATEGORY_CODE["department"]["unknown"]

    source_codes, sources = _factorize(_column(leads, "source", n))
    age_days = np.where(created_ns == _NAT, np.nan, (asof_ns - created_ns) / DAY_NS)

    categories = {
        "industry": _categorical(account_codes("industry", _industry, "industry"), "industry"),
        "size_band": _categorical(size_band, "size_band"),
        "region": _categorical(np.append(region, -1)[acc_pos], "region"),
        "country": _categorical(np.append(country, -1)[acc_pos], "country"),
        "seniority": _categorical(seniority, "seniority"),
        "department": _categorical(department, "department"),
        "source": _categorical(_category_codes(source_codes, sources, _source, "source"), "source"),
    }
    numbers = np.empty((n, len(_FIRMOGRAPHIC_NUMBERS)), dtype=np.float64)
    numbers[:, 0] = np.log1p(employees)
    numbers[:, 1] = np.log1p(account_numbers("annual_revenue"))
    numbers[:, 2] = _flags(_column(leads, "email_domain_kind", n), _FREE, _BUSINESS)
    numbers[:, 3] = _flags(_column(leads, "do_not_email", n), _YES, _NO)
    numbers[:, 4] = np.maximum(age_days, 0.0)  # created after as_of: not born yet, age 0
    return categories, numbers


_FREE = frozenset({"free"})
_BUSINESS = frozenset({"business"})


# --------------------------------------------------------------------------- engagement

_TYPE_CODE: dict[str, int] = {t: i for i, t in enumerate(EVENT_TYPES)}
_TYPE_INDEX = pd.Index(list(EVENT_TYPES))


def _type_codes(types: pd.Series) -> np.ndarray:
    """Position of each event type in EVENT_TYPES; unknown or missing types raise."""
    direct = _arrow_positions(types, _TYPE_INDEX)
    if direct is not None:
        if not (direct < 0).any():
            return direct
        codes, uniques = _factorize(types)  # only to name the bad values
    elif isinstance(types.dtype, pd.CategoricalDtype):
        codes, uniques = types.array.codes, types.cat.categories
        if tuple(uniques) == EVENT_TYPES and not (codes < 0).any():  # contract-typed frames
            return codes.astype(np.intp)
    else:
        codes, uniques = _factorize(types)
    lookup = np.array([*(_TYPE_CODE.get(u, -1) for u in uniques), -1], dtype=np.intp)
    out = np.take(lookup, codes)
    if (out < 0).any():
        bad = [None if c < 0 else uniques[c] for c in np.unique(codes[out < 0])[:5]]
        raise ValueError(
            f"events.type has unknown or missing values {bad}; allowed: {', '.join(EVENT_TYPES)}"
        )
    return out


def _engagement(
    events: pd.DataFrame | None,
    lead_ids: pd.Index,
    asof_ns: np.ndarray,
    unborn: np.ndarray,
    config: FeatureConfig,
) -> np.ndarray:
    """(n_leads, len(engagement_features(config))) float64 block; ``unborn`` leads get none."""
    n = len(lead_ids)
    windows = config.windows_days
    n_win = len(windows)
    n_groups = len(_GROUPS)
    if events is None or len(events) == 0 or n == 0:
        lead = typ = topic = np.empty(0, dtype=np.intp)
        age_ns = np.empty(0, dtype=np.int64)
        n_topics = 0
    else:
        # per-event arrays are freed as soon as they are used and built in place where
        # possible: on 45.7M events every int64 array is 365 MB
        lead = _positions(events["lead_id"], lead_ids)
        typ = _type_codes(events["type"]).astype(np.int8)
        at = _to_ns(events["at"], "events.at")
        one_as_of = asof_ns.min() == asof_ns.max()
        # lead -1 and NaT give garbage here, masked next (NaT is int64 min: it would overflow)
        age_ns = asof_ns[0] - at if one_as_of else np.take(asof_ns, lead) - at
        known = (lead >= 0) & (at != _NAT) & (age_ns > 0)  # strictly before as_of
        del at
        if unborn.any():
            known &= ~np.take(unborn, lead)
        keep = np.flatnonzero(known)
        del known
        lead = np.take(lead, keep)
        typ = np.take(typ, keep)
        age_ns = np.take(age_ns, keep)
        topic, n_topics = _topic_codes(events, keep)
        del keep

    in_topic_window = np.flatnonzero((age_ns <= TOPIC_WINDOW_DAYS * DAY_NS) & (topic >= 0))
    topics = _distinct_per_lead(lead[in_topic_window], topic[in_topic_window], n, n_topics)
    del in_topic_window, topic

    # counts per (lead, type, window): one bincount over "first window the event is in"
    first_window = np.zeros(len(age_ns), dtype=np.int8)
    for w in windows:
        first_window += age_ns > w * DAY_NS
    key = lead * _N_TYPES
    key += typ
    key *= n_win + 1
    key += first_window
    del first_window
    counts = np.bincount(key, minlength=n * _N_TYPES * (n_win + 1))
    del key
    counts = counts.reshape(n, _N_TYPES, n_win + 1)
    np.cumsum(counts, axis=2, out=counts)
    totals = counts[:, :, n_win]

    # decayed interest and recency per (lead, group)
    age_days = age_ns * (1.0 / DAY_NS)
    del age_ns
    group = np.take(_GROUP_OF_TYPE, typ)
    del typ
    rate = np.array([-math.log(2.0) / config.half_lives_days[g] for g in _GROUPS])
    lead_group = lead * n_groups
    del lead
    lead_group += group
    weights = np.take(rate, group)
    del group
    weights *= age_days
    np.exp(weights, out=weights)
    decay = np.bincount(lead_group, weights=weights, minlength=n * n_groups)
    del weights
    recency = np.full(n * n_groups, np.inf)
    np.minimum.at(recency, lead_group, age_days)
    del lead_group, age_days
    recency = recency.reshape(n, n_groups)

    out = np.empty((n, n_win * _N_TYPES + 2 * n_groups + 5), dtype=np.float64)
    k = n_win * _N_TYPES
    out[:, :k] = counts[:, :, :n_win].reshape(n, k)
    out[:, k : k + n_groups] = decay.reshape(n, n_groups)
    out[:, k + n_groups] = recency.min(axis=1, initial=np.inf)
    out[:, k + n_groups + 1 : k + 2 * n_groups + 1] = recency
    k += 2 * n_groups + 1
    out[:, k] = totals.sum(axis=1)
    out[:, k + 1] = topics
    out[:, k + 2] = totals[:, _TYPE_CODE["unsubscribe"]] > 0
    out[:, k + 3] = totals[:, _TYPE_CODE["email_bounce"]] > 0
    out[np.isinf(out)] = np.nan  # no event in a group: recency unknown, not infinite
    return out


def _topic_codes(events: pd.DataFrame, keep: np.ndarray) -> tuple[np.ndarray, int]:
    """Topic code per kept event (-1 = none) and the number of distinct topics."""
    if "topic" not in events.columns:
        return np.full(len(keep), -1, dtype=np.intp), 0
    topic = events["topic"]
    if isinstance(topic.dtype, pd.CategoricalDtype):
        return np.take(topic.array.codes, keep), len(topic.cat.categories)
    if len(topic) > _SMALL:  # only the kept events need hashing
        topic = topic.iloc[keep]
        keep = np.arange(len(keep))
    codes, uniques = _factorize(topic)
    return codes[keep], len(uniques)


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
