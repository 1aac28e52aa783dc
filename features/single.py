"""Features of the leads of one request, without DataFrames: the per-request evaluator.

``request_features(leads, as_of, config)`` takes the request's lead objects as the API
parsed them (``serving.schemas.Lead`` or anything with the same attributes: ``lead_id``,
``created_at``, ``job_title``, ``source``, ``email``, ``email_domain_kind``,
``do_not_email``, ``company`` (``industry``, ``employees``, ``annual_revenue``,
``country``), ``events`` (``type``, ``at``, ``topic``, ``content_id``), ``attributes``,
``counters``; times naive UTC) and returns the same values
``features.build.compute_features`` gives on the tables ``serving.schemas.leads_to_tables``
builds of them, as one float64 block (categories as their codes, NaN when missing).

Both evaluators read the definitions of ``features.definitions``: the engagement block is
the same NumPy kernel over integer-coded event rows, the firmographics the same scalar
functions per value. tests/features/test_single_features.py checks the two agree bit for bit on
simulated leads.

A handful of leads cost tens of microseconds here, where pandas' fixed costs per call make
the table path cost milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from crm.email import email_domain_kind
from features.categories import CATEGORY_DTYPES, canonical_industry, canonical_source
from features.definitions import (
    BUSINESS,
    FREE,
    TYPE_CODE,
    EventRows,
    category_code,
    country_iso,
    engagement_block,
    flag,
    size_bands,
    title_codes,
    valid_numbers,
)
from features.feature_config import (
    CATEGORICAL_FEATURES,
    FIRMOGRAPHIC_NUMBERS,
    FeatureConfig,
    engagement_features,
    feature_columns,
)
from features.firmographics import numbers
from features.geo import country_category, region_of
from features.pointintime import DAY_NS

_EPOCH = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)


def times_ns(values: Sequence[datetime]) -> np.ndarray:
    """Naive-UTC datetimes as int64 nanoseconds (what ``to_ns`` gives for them): Python
    arithmetic for a few, pandas' converter for many (its fixed cost pays off there)."""
    if len(values) > 2000:  # DatetimeIndex: half the time of to_datetime on a list
        return pd.DatetimeIndex(values).as_unit("ns").asi8
    return np.fromiter(((v - _EPOCH) // _US for v in values), np.int64, len(values)) * 1000


@dataclass
class RequestEvents:
    """Every event of a request's leads, flat, in request order (each lead's events
    together): the one place the per-request path reads events and cuts them in time."""

    lead: np.ndarray  # position of the event's lead (intp)
    offsets: np.ndarray  # events of lead i: offsets[i]:offsets[i + 1]
    at: np.ndarray  # int64 ns
    age: np.ndarray  # as_of of its lead - at, int64 ns
    typ: np.ndarray  # code into EVENT_TYPES (int8)
    topic: list[str | None]
    content: list[str | None]

    @classmethod
    def of(cls, leads: Sequence[Any], as_of: np.ndarray) -> RequestEvents:
        counts = [len(lead.events) for lead in leads]
        events = [e for lead in leads for e in lead.events]
        lead = np.repeat(np.arange(len(leads), dtype=np.intp), counts)
        offsets = np.zeros(len(leads) + 1, dtype=np.intp)
        np.cumsum(counts, out=offsets[1:])
        at = times_ns([e.at for e in events])
        typ = np.fromiter((TYPE_CODE[e.type] for e in events), np.int8, len(events))
        topic = [e.topic for e in events]
        content = [e.content_id for e in events]
        return cls(lead, offsets, at, as_of[lead] - at, typ, topic, content)

    @property
    def before(self) -> np.ndarray:
        """Events strictly before their lead's as_of (``age > 0``; times are never NaT)."""
        return self.age > 0


@dataclass(frozen=True)
class Layout:
    """Where each feature of a config sits in the block (``feature_columns(config)``)."""

    columns: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]  # categorical feature -> its categories
    n_engagement: int  # engagement columns computed from events (counters not included)
    position: dict[str, int]  # feature -> its column
    category_values: dict[str, np.ndarray]  # categorical feature -> its categories, NaN last


@lru_cache(maxsize=16)
def layout(config: FeatureConfig) -> Layout:
    categories = {c: tuple(CATEGORY_DTYPES[c].categories) for c in CATEGORICAL_FEATURES}
    for attr in config.custom_attributes:
        if attr.kind == "categorical":
            categories[attr.name] = tuple(attr.categories)
    n_eng = len(engagement_features(config)) - len(config.counters)
    columns = tuple(feature_columns(config))
    values = {c: np.array([*cats, np.nan], dtype=object) for c, cats in categories.items()}
    return Layout(columns, categories, n_eng, {c: i for i, c in enumerate(columns)}, values)


@dataclass
class FeatureRows:
    """The features of k leads: ``block`` (k, n_features) float64 in ``layout.columns``
    order, categorical features as codes into ``layout.categories`` (NaN = missing)."""

    lead_ids: list[str]
    block: np.ndarray
    layout: Layout
    as_of: np.ndarray  # int64 ns per lead
    events: RequestEvents

    def values(self, feature: str) -> np.ndarray:
        """A feature's values as ``compute_features(...)[feature].to_numpy()`` gives them:
        float64, or for a categorical an object array of categories (NaN = missing)."""
        col = self.block[:, self.layout.position[feature]]
        table = self.layout.category_values.get(feature)
        if table is None:
            return col
        return table[np.where(np.isnan(col), -1, col).astype(np.intp)]

    def frame(self) -> pd.DataFrame:
        """The same frame ``compute_features`` returns (for tests and fallbacks)."""
        data: dict[str, Any] = {}
        for j, c in enumerate(self.layout.columns):
            col = self.block[:, j]
            cats = self.layout.categories.get(c)
            if cats is None:
                data[c] = col
            else:
                codes = np.where(np.isnan(col), -1, col).astype(np.int16)
                dtype = pd.CategoricalDtype(pd.Index(list(cats), dtype="str"), ordered=False)
                data[c] = pd.Categorical.from_codes(codes, dtype=dtype, validate=False)
        return pd.DataFrame(data, index=pd.Index(self.lead_ids, name="lead_id", dtype="str"))


def _as_of_ns(as_of: int | np.ndarray, k: int) -> np.ndarray:
    if isinstance(as_of, np.ndarray):
        return as_of.astype(np.int64, copy=False)
    return np.full(k, int(as_of), dtype=np.int64)


def _event_rows(ev: RequestEvents, unborn: np.ndarray) -> EventRows:
    """The events that count for engagement (strictly before as_of, born leads), coded."""
    if len(ev.at) == 0:
        return EventRows.empty()
    keep = np.flatnonzero(ev.before & ~unborn[ev.lead])
    code: dict[str, int] = {}
    topics = np.fromiter(
        (-1 if t is None else code.setdefault(t, len(code)) for t in ev.topic),
        np.intp,
        len(ev.topic),
    )
    return EventRows(ev.lead[keep], ev.typ[keep], ev.age[keep], topics[keep], len(code))


def _firmographics(leads: Sequence[Any], out: np.ndarray, pos: dict[str, int]) -> None:
    """The categorical codes and the numeric firmographics into ``out`` (per lead)."""
    k = len(leads)
    employees = np.full(k, np.nan)
    revenue = np.full(k, np.nan)
    for i, lead in enumerate(leads):
        c = lead.company
        industry = country = None
        if c is not None:
            industry, country = c.industry, c.country
            if c.employees is not None:
                employees[i] = c.employees
            if c.annual_revenue is not None:
                revenue[i] = c.annual_revenue
        iso = country_iso(country)
        seniority, department = title_codes(lead.job_title)
        codes = (
            ("industry", category_code("industry", canonical_industry, industry)),
            ("region", category_code("region", region_of, iso)),
            ("country", category_code("country", country_category, iso)),
            ("seniority", seniority),
            ("department", department),
            ("source", category_code("source", canonical_source, lead.source)),
        )
        for name, code in codes:
            out[i, pos[name]] = np.nan if code < 0 else code
        kind = lead.email_domain_kind or email_domain_kind(lead.email)
        out[i, pos["free_mail"]] = np.nan if kind is None else flag(kind, FREE, BUSINESS)
        out[i, pos["do_not_email"]] = flag(lead.do_not_email)
    employees = valid_numbers(employees)
    band = size_bands(employees)
    out[:, pos["size_band"]] = np.where(band < 0, np.nan, band)
    out[:, pos["log_employees"]] = np.log1p(employees)
    out[:, pos["log_annual_revenue"]] = np.log1p(valid_numbers(revenue))


_MISSING = object()


def _custom_value(attr: Any, value: Any) -> float:
    """One custom attribute's feature value (a category code for categorical ones)."""
    if value is None or value is _MISSING:
        return np.nan
    if attr.kind == "categorical":
        text = str(value)
        known = text in attr.categories[:-1]
        return float(attr.categories.index(text if known else "other"))
    if attr.kind == "boolean":
        return flag(value)
    if isinstance(value, str):  # a number sent as text: pandas' parser, as the batch path
        return float(numbers(pd.Series([value], dtype=object))[0])
    return float(valid_numbers(np.array([float(value)]))[0])


def _custom(leads: Sequence[Any], config: FeatureConfig, out: np.ndarray, pos: dict) -> None:
    for attr in config.custom_attributes:
        key = attr.name.removeprefix("attr_")
        j = pos[attr.name]
        for i, lead in enumerate(leads):
            out[i, j] = _custom_value(attr, lead.attributes.get(key, _MISSING))
    for name in config.counters:
        key = name.removeprefix("counter_")
        j = pos[name]
        for i, lead in enumerate(leads):
            v = lead.counters.get(key)
            out[i, j] = np.nan if v is None else valid_numbers(np.array([float(v)]))[0]


def request_features(
    leads: Sequence[Any], as_of: int | np.ndarray, config: FeatureConfig = FeatureConfig()
) -> FeatureRows:
    """The features of a request's leads as of ``as_of`` (int64 ns, one moment or one per
    lead), in the order and with the values of ``compute_features`` (module docstring)."""
    lay = layout(config)
    pos = lay.position
    k = len(leads)
    as_of_ns = _as_of_ns(as_of, k)
    created = times_ns([lead.created_at for lead in leads])
    unborn = created >= as_of_ns
    block = np.empty((k, len(lay.columns)))
    _firmographics(leads, block, pos)
    # created after as_of: not born yet, age 0 (AsOf.days_since, then the floor at 0)
    block[:, pos["lead_age_days"]] = np.maximum((as_of_ns - created) / DAY_NS, 0.0)
    first = len(CATEGORICAL_FEATURES) + len(FIRMOGRAPHIC_NUMBERS)
    events = RequestEvents.of(leads, as_of_ns)
    rows = _event_rows(events, unborn)
    block[:, first : first + lay.n_engagement] = engagement_block(rows, k, config)
    if config.custom_attributes or config.counters:
        _custom(leads, config, block, pos)
    return FeatureRows([lead.lead_id for lead in leads], block, lay, as_of_ns, events)
