"""Country normalisation and sales regions for the fit features.

CRM exports spell countries as ISO-2 codes ("DE"), ISO-3 codes ("DEU") or names in English
or German ("Germany", "Deutschland"). Everything is reduced to ISO-2 first, then to one of a
fixed list of regions, so a model trained on one spelling scores leads in another the same.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

REGIONS: tuple[str, ...] = (
    "DACH",
    "western_europe",
    "southern_europe",
    "eastern_europe",
    "nordics",
    "north_america",
    "latin_america",
    "asia_pacific",
    "middle_east_africa",
    "other",
)

# ISO-2 codes per region. Codes not listed here map to region "other".
_REGION_MEMBERS: dict[str, str] = {
    "DACH": "DE AT CH LI",
    "western_europe": "GB IE FR BE NL LU MC",
    "southern_europe": "IT ES PT GR MT CY SM VA AD GI",
    "eastern_europe": ("PL CZ SK HU RO BG HR SI RS BA ME MK AL XK EE LV LT UA BY MD RU GE AM AZ"),
    "nordics": "SE NO DK FI IS FO GL AX",
    "north_america": "US CA PR BM",
    "latin_america": (
        "MX GT BZ SV HN NI CR PA CU DO HT JM TT BS BB AR BO BR CL CO EC GY PY PE SR UY VE"
    ),
    "asia_pacific": (
        "CN JP KR KP TW HK MO MN IN PK BD LK NP BT MV SG MY ID TH VN PH KH LA MM BN TL "
        "AU NZ PG FJ KZ UZ KG TJ TM AF"
    ),
    "middle_east_africa": (
        "TR IL PS JO LB SY IQ IR SA AE QA BH KW OM YE EG LY TN DZ MA ZA NG KE GH ET TZ UG "
        "RW SN CI CM AO MZ ZM ZW BW NA MU MG SD SS SO DJ ER ML NE BF TD GA CG CD BJ TG "
        "GN SL LR GM GW CV MR MW LS SZ BI CF GQ ST SC KM"
    ),
}

REGION_OF_COUNTRY: dict[str, str] = {
    code: region for region, codes in _REGION_MEMBERS.items() for code in codes.split()
}

# Countries common enough in B2B data to be their own category; the rest are "other".
COUNTRIES: tuple[str, ...] = (
    "DE",
    "AT",
    "CH",
    "GB",
    "IE",
    "FR",
    "BE",
    "NL",
    "LU",
    "IT",
    "ES",
    "PT",
    "SE",
    "NO",
    "DK",
    "FI",
    "PL",
    "CZ",
    "HU",
    "RO",
    "US",
    "CA",
    "MX",
    "BR",
    "AR",
    "IN",
    "CN",
    "JP",
    "AU",
    "SG",
    "AE",
    "ZA",
    "other",
)

# Names, ISO-3 codes and common non-standard codes -> ISO-2. Keys are normalised by
# ``_key`` (lower case, ASCII, single spaces).
_ALIASES: dict[str, str] = {
    # non-standard two-letter codes
    "uk": "GB",
    "el": "GR",
    # ISO-3
    "deu": "DE",
    "aut": "AT",
    "che": "CH",
    "gbr": "GB",
    "irl": "IE",
    "fra": "FR",
    "bel": "BE",
    "nld": "NL",
    "lux": "LU",
    "ita": "IT",
    "esp": "ES",
    "prt": "PT",
    "swe": "SE",
    "nor": "NO",
    "dnk": "DK",
    "fin": "FI",
    "pol": "PL",
    "cze": "CZ",
    "hun": "HU",
    "rou": "RO",
    "usa": "US",
    "can": "CA",
    "mex": "MX",
    "bra": "BR",
    "arg": "AR",
    "ind": "IN",
    "chn": "CN",
    "jpn": "JP",
    "aus": "AU",
    "sgp": "SG",
    "are": "AE",
    "zaf": "ZA",
    # English and German names
    "germany": "DE",
    "deutschland": "DE",
    "austria": "AT",
    "oesterreich": "AT",
    "osterreich": "AT",
    "switzerland": "CH",
    "schweiz": "CH",
    "suisse": "CH",
    "liechtenstein": "LI",
    "united kingdom": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "grossbritannien": "GB",
    "vereinigtes koenigreich": "GB",
    "ireland": "IE",
    "irland": "IE",
    "france": "FR",
    "frankreich": "FR",
    "belgium": "BE",
    "belgien": "BE",
    "netherlands": "NL",
    "the netherlands": "NL",
    "holland": "NL",
    "niederlande": "NL",
    "luxembourg": "LU",
    "luxemburg": "LU",
    "italy": "IT",
    "italien": "IT",
    "spain": "ES",
    "spanien": "ES",
    "portugal": "PT",
    "greece": "GR",
    "griechenland": "GR",
    "sweden": "SE",
    "schweden": "SE",
    "norway": "NO",
    "norwegen": "NO",
    "denmark": "DK",
    "daenemark": "DK",
    "finland": "FI",
    "finnland": "FI",
    "iceland": "IS",
    "poland": "PL",
    "polen": "PL",
    "czech republic": "CZ",
    "czechia": "CZ",
    "tschechien": "CZ",
    "slovakia": "SK",
    "hungary": "HU",
    "ungarn": "HU",
    "romania": "RO",
    "rumaenien": "RO",
    "bulgaria": "BG",
    "croatia": "HR",
    "slovenia": "SI",
    "serbia": "RS",
    "ukraine": "UA",
    "russia": "RU",
    "russian federation": "RU",
    "russland": "RU",
    "estonia": "EE",
    "latvia": "LV",
    "lithuania": "LT",
    "turkey": "TR",
    "turkiye": "TR",
    "tuerkei": "TR",
    "united states": "US",
    "united states of america": "US",
    "america": "US",
    "vereinigte staaten": "US",
    "canada": "CA",
    "kanada": "CA",
    "mexico": "MX",
    "mexiko": "MX",
    "brazil": "BR",
    "brasil": "BR",
    "brasilien": "BR",
    "argentina": "AR",
    "argentinien": "AR",
    "chile": "CL",
    "colombia": "CO",
    "peru": "PE",
    "india": "IN",
    "indien": "IN",
    "china": "CN",
    "japan": "JP",
    "south korea": "KR",
    "korea": "KR",
    "suedkorea": "KR",
    "taiwan": "TW",
    "hong kong": "HK",
    "singapore": "SG",
    "singapur": "SG",
    "malaysia": "MY",
    "indonesia": "ID",
    "indonesien": "ID",
    "thailand": "TH",
    "vietnam": "VN",
    "philippines": "PH",
    "philippinen": "PH",
    "bangladesh": "BD",
    "pakistan": "PK",
    "sri lanka": "LK",
    "australia": "AU",
    "australien": "AU",
    "new zealand": "NZ",
    "neuseeland": "NZ",
    "israel": "IL",
    "saudi arabia": "SA",
    "saudi arabien": "SA",
    "united arab emirates": "AE",
    "uae": "AE",
    "vereinigte arabische emirate": "AE",
    "qatar": "QA",
    "katar": "QA",
    "bahrain": "BH",
    "kuwait": "KW",
    "oman": "OM",
    "egypt": "EG",
    "aegypten": "EG",
    "morocco": "MA",
    "south africa": "ZA",
    "suedafrika": "ZA",
    "nigeria": "NG",
    "kenya": "KE",
    "ghana": "GH",
}


def _key(value: str) -> str:
    """Lower-case ASCII form with German umlauts spelt out, for alias look-up."""
    text = value.strip().lower()
    for umlaut, spelt in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, spelt)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.replace(".", " ").replace("-", " ").replace("_", " ").split())


_MISSING = frozenset({"", "select", "unknown", "n a", "na", "none", "null", "nan", "xx"})


# A bounded cache of a pure function of an immutable str (country spellings repeat).
@lru_cache(maxsize=4096)
def country_code(value: str | None) -> str | None:
    """ISO-2 code for a country code or name; None when missing, "??" when unrecognised.

    Two-letter input is taken as an ISO-2 code when it is one we know; unknown names are
    returned as "??" so they become country "other" and region "other" downstream.
    """
    if value is None or not isinstance(value, str):
        return None
    key = _key(value)
    if key in _MISSING:
        return None
    if len(key) == 2 and key.upper() in REGION_OF_COUNTRY:
        return key.upper()
    return _ALIASES.get(key, "??")


def country_category(code: str | None) -> str | None:
    """Country feature value: the ISO-2 code if common, else "other"; None when missing."""
    if code is None:
        return None
    return code if code in _COUNTRY_SET else "other"


def region_of(code: str | None) -> str | None:
    """Region of an ISO-2 code; "other" for codes without a region, None when missing."""
    if code is None:
        return None
    return REGION_OF_COUNTRY.get(code, "other")


_COUNTRY_SET = frozenset(COUNTRIES)
