"""Profile features: who the lead and its account are (firmographics), and the custom
attributes an import declared.

Every text column is factorised first, so each distinct industry, country, job title or
source is mapped once (``features.categories``, ``features.geo``, ``features.jobtitle``)
however many leads share it, by the scalar definitions of ``features.definitions`` that the
per-request path (``features.single``) applies lead by lead. Missing values stay missing
(NaN, or no category) where LightGBM can use "missing" as information.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from crm.vocabulary import NO_WORDS, YES_WORDS
from features import geo
from features.categories import (
    CATEGORY_CODE,
    CATEGORY_DTYPES,
    canonical_industry,
    canonical_source,
    category_dtype,
)
from features.definitions import (
    BUSINESS,
    FREE,
    country_iso,
    flag,
    size_bands,
    valid_numbers,
)
from features.encoding import column, factorize, id_positions, unique_text_index
from features.feature_config import FIRMOGRAPHIC_NUMBERS, FeatureConfig
from features.jobtitle import parse_job_title
from features.pointintime import AsOf


def _category_codes(
    codes: np.ndarray, uniques: Sequence[Any], to_category: Callable[[Any], str | None], name: str
) -> np.ndarray:
    """Codes into ``CATEGORY_DTYPES[name]`` (-1 = missing); one mapping per distinct value."""
    where = CATEGORY_CODE[name]
    lookup = [where.get(to_category(u), -1) for u in uniques]  # type: ignore[arg-type]
    return np.array([*lookup, -1], dtype=np.int16)[codes]


def _categorical(codes: np.ndarray, name: str) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=CATEGORY_DTYPES[name], validate=False)


def numbers(values: pd.Series) -> np.ndarray:
    """float64; NaN for missing, unparseable, negative or infinite values."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "iuf":
        arr = values.to_numpy().astype(np.float64, copy=False)
    else:
        arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return valid_numbers(arr)


def flags(
    values: pd.Series, true: frozenset[str] = YES_WORDS, false: frozenset[str] = NO_WORDS
) -> np.ndarray:
    """1.0/0.0 from booleans or yes/no text; NaN when missing or unreadable."""
    if values.dtype == np.bool_:
        return values.to_numpy().astype(np.float64)
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, uniques = factorize(values)
    return np.array([*(flag(u, true, false) for u in uniques), np.nan])[codes]


def _account_positions(leads: pd.DataFrame, accounts: pd.DataFrame | None) -> np.ndarray:
    """Row of each lead's account in ``accounts`` (-1: none or unknown)."""
    n = len(leads)
    if accounts is not None and len(accounts) and "account_id" in accounts.columns:
        acc_index = unique_text_index(accounts["account_id"], "accounts.account_id")
        return id_positions(column(leads, "account_id", n), acc_index)
    return np.full(n, -1, dtype=np.intp)


def _job_title_codes(leads: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Seniority and department codes per lead from its job title (each title parsed once)."""
    title_codes, titles = factorize(column(leads, "job_title", len(leads)))
    parsed = [parse_job_title(t if isinstance(t, str) else None) for t in titles]
    seniority = _category_codes(title_codes, [s for s, _ in parsed], str, "seniority")
    department = _category_codes(title_codes, [d for _, d in parsed], str, "department")
    seniority[title_codes < 0] = CATEGORY_CODE["seniority"]["unknown"]
    department[title_codes < 0] = CATEGORY_CODE["department"]["unknown"]
    return seniority, department


def firmographics(
    leads: pd.DataFrame, accounts: pd.DataFrame | None, as_of: AsOf, created_ns: np.ndarray
) -> tuple[dict[str, pd.Categorical], np.ndarray]:
    """Categorical columns, and the numeric ones (FIRMOGRAPHIC_NUMBERS) as an (n, 5) block."""
    n = len(leads)
    m = 0 if accounts is None else len(accounts)
    acc_pos = _account_positions(leads, accounts)

    def account_numbers(name: str) -> np.ndarray:
        return np.append(numbers(column(accounts, name, m)), np.nan)[acc_pos]

    def account_codes(name: str, to_category: Callable[[Any], str | None]) -> np.ndarray:
        codes, uniques = factorize(column(accounts, name, m))
        return np.append(_category_codes(codes, uniques, to_category, name), -1)[acc_pos]

    employees = account_numbers("employees")
    size_band = size_bands(employees)

    country_codes, country_values = factorize(column(accounts, "country", m))
    iso = [country_iso(v) for v in country_values]
    country = _category_codes(country_codes, iso, geo.country_category, "country")
    region = _category_codes(country_codes, iso, geo.region_of, "region")
    seniority, department = _job_title_codes(leads)
    source_codes, sources = factorize(column(leads, "source", n))
    source = _category_codes(source_codes, sources, canonical_source, "source")

    categories = {
        "industry": _categorical(account_codes("industry", canonical_industry), "industry"),
        "size_band": _categorical(size_band, "size_band"),
        "region": _categorical(np.append(region, -1)[acc_pos], "region"),
        "country": _categorical(np.append(country, -1)[acc_pos], "country"),
        "seniority": _categorical(seniority, "seniority"),
        "department": _categorical(department, "department"),
        "source": _categorical(source, "source"),
    }
    out = np.empty((n, len(FIRMOGRAPHIC_NUMBERS)), dtype=np.float64)
    out[:, 0] = np.log1p(employees)
    out[:, 1] = np.log1p(account_numbers("annual_revenue"))
    out[:, 2] = flags(column(leads, "email_domain_kind", n), FREE, BUSINESS)
    out[:, 3] = flags(column(leads, "do_not_email", n))
    # created after as_of: not born yet, age 0
    out[:, 4] = np.maximum(as_of.days_since(created_ns), 0.0)
    return categories, out


def custom_columns(leads: pd.DataFrame, config: FeatureConfig, index: pd.Index) -> pd.DataFrame:
    """The custom attribute and counter features, in config order."""
    n = len(leads)
    out: dict[str, Any] = {}
    for attr in config.custom_attributes:
        col = column(leads, attr.name, n)
        if attr.kind == "categorical":
            dtype = category_dtype(attr.categories)
            text = col.astype("str")
            known = text.isin(attr.categories[:-1]).to_numpy()
            values = np.where(col.isna().to_numpy(), None, np.where(known, text, "other"))
            out[attr.name] = pd.Categorical(values, dtype=dtype)
        elif attr.kind == "boolean":
            out[attr.name] = flags(col)
        else:
            out[attr.name] = numbers(col)
    for name in config.counters:
        out[name] = numbers(column(leads, name, n))
    return pd.DataFrame(out, index=index)
