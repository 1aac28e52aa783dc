"""The categories of the firmographic features and the spellings that map onto them.

CRM exports spell an industry or a lead source in many ways ("SaaS", "Software
Development", "Maschinenbau", "PPC"): each value is slugged (lower case, ``_`` between
words), looked up in an alias table, and becomes a known category, "other", or missing
(empty values and placeholders such as "select" or "n/a"). The category lists are fixed, so
a one-row frame and a training frame encode alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from features import geo
from features.jobtitle import DEPARTMENTS, SENIORITIES

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


def category_dtype(values: tuple[str, ...]) -> pd.CategoricalDtype:
    """An unordered categorical dtype over ``values`` (text categories)."""
    return pd.CategoricalDtype(categories=pd.Index(list(values), dtype="str"), ordered=False)


CATEGORY_DTYPES: dict[str, pd.CategoricalDtype] = {
    "industry": category_dtype(INDUSTRIES),
    "size_band": category_dtype(SIZE_BANDS),
    "region": category_dtype(geo.REGIONS),
    "country": category_dtype(geo.COUNTRIES),
    "seniority": category_dtype(SENIORITIES),
    "department": category_dtype(DEPARTMENTS),
    "source": category_dtype(SOURCES),
}
#: Category -> code, per categorical feature.
CATEGORY_CODE: dict[str, dict[str, int]] = {
    name: {c: i for i, c in enumerate(dtype.categories)} for name, dtype in CATEGORY_DTYPES.items()
}


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


#: A CRM industry / lead source text -> a category of INDUSTRIES / SOURCES (or None).
canonical_industry = _canonical(_INDUSTRY_ALIASES, INDUSTRIES)
canonical_source = _canonical(_SOURCE_ALIASES, SOURCES)
