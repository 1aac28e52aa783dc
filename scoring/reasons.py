"""Plain words for feature values: what a sales rep reads as the reason behind a score.

The features know what their columns mean, so the phrasing lives here, beside them:
``phrase("days_since_last_live", 3.0)`` -> "went to a webinar or trade fair 3 days ago".
Unknown columns (custom attributes, counters) get a generic but readable sentence.
"""

from __future__ import annotations

import math
import re
from typing import Any

from features.build import TOPIC_WINDOW_DAYS

_EVENT_WORDS: dict[str, tuple[str, str]] = {
    # type: (singular noun phrase, plural noun phrase)
    "page_view": ("page view", "page views"),
    "blog_read": ("blog article read", "blog articles read"),
    "pricing_view": ("visit to the pricing page", "visits to the pricing page"),
    "newsletter_open": ("newsletter opened", "newsletters opened"),
    "newsletter_click": ("newsletter click", "newsletter clicks"),
    "email_open": ("e-mail opened", "e-mails opened"),
    "email_click": ("e-mail click", "e-mail clicks"),
    "webinar_registered": ("webinar registration", "webinar registrations"),
    "webinar_attended": ("webinar attended", "webinars attended"),
    "trade_fair_visit": ("trade-fair contact", "trade-fair contacts"),
    "content_download": ("content download", "content downloads"),
    "form_submit": ("form filled in", "forms filled in"),
    "demo_request": ("demo request", "demo requests"),
    "unsubscribe": ("unsubscribe", "unsubscribes"),
    "email_bounce": ("bounced e-mail", "bounced e-mails"),
    "referral": ("referral", "referrals"),
}

_GROUP_WORDS: dict[str, str] = {
    "web": "visited the website",
    "email": "engaged with e-mails or newsletters",
    "live": "went to a webinar or trade fair",
    "content": "downloaded content, filled in a form or asked for a demo",
    "negative": "unsubscribed or had an e-mail bounce",
    "advocacy": "referred someone",
}

_GROUP_NOUN: dict[str, str] = {
    "web": "website activity",
    "email": "e-mail activity",
    "live": "webinar and trade-fair activity",
    "content": "downloads, forms and demo requests",
    "negative": "unsubscribes and bounces",
    "advocacy": "referrals",
}

_CATEGORY_WORDS: dict[str, str] = {
    "industry": "industry",
    "region": "region",
    "country": "country",
    "source": "lead source",
}

_DEPARTMENT_WORDS: dict[str, str] = {"it": "IT", "hr": "HR", "executive": "the executive team"}

_COUNT = re.compile(r"^n_(?P<type>[a-z_]+)_(?P<days>\d+)d$")


def _days(value: float) -> str:
    d = int(round(value))
    if d <= 0:
        return "today"
    if d == 1:
        return "1 day ago"
    if d < 60:
        return f"{d} days ago"
    return f"about {round(d / 30)} months ago"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def phrase(feature: str, value: Any) -> str:
    """One short sentence about a lead's value of one feature."""
    if feature == "size_band":
        return "company size unknown" if _missing(value) else f"company with {value} employees"
    if feature == "log_employees":
        if _missing(value):
            return "company size unknown"
        return f"company with about {_number(math.expm1(float(value)))} employees"
    if feature == "log_annual_revenue":
        if _missing(value):
            return "company revenue unknown"
        return f"company revenue about {_number(math.expm1(float(value)))}"
    if feature == "seniority":
        if _missing(value) or value == "unknown":
            return "seniority unknown from the job title"
        return f"seniority: {str(value).replace('_', ' ')}"
    if feature == "department":
        if _missing(value) or value == "unknown":
            return "department unknown from the job title"
        name = str(value).replace("_", " ")
        return f"works in {_DEPARTMENT_WORDS.get(name, name)}"
    if feature in _CATEGORY_WORDS:
        word = _CATEGORY_WORDS[feature]
        if _missing(value):
            return f"{word} unknown"
        return f"{word}: {str(value).replace('_', ' ')}"
    if feature == "free_mail":
        if _missing(value):
            return "e-mail address type unknown"
        return "uses a free-mail address" if float(value) else "uses a business e-mail address"
    if feature == "do_not_email":
        return "asked not to be e-mailed" if value and not _missing(value) else "can be e-mailed"
    if feature == "lead_age_days":
        return "lead age unknown" if _missing(value) else f"lead created {_days(float(value))}"
    if feature == "days_since_last_event":
        if _missing(value):
            return "no recorded activity"
        return f"last activity {_days(float(value))}"
    if feature.startswith("days_since_last_"):
        group = feature.removeprefix("days_since_last_")
        if _missing(value):
            return f"no {_GROUP_NOUN.get(group, group)} so far"
        return f"{_GROUP_WORDS.get(group, group)} {_days(float(value))}"
    if feature.startswith("decay_"):
        group = feature.removeprefix("decay_")
        noun = _GROUP_NOUN.get(group, group)
        v = 0.0 if _missing(value) else float(value)
        if v < 0.05:
            return f"no recent {noun}"
        level = "strong" if v >= 3 else "some" if v >= 1 else "little"
        return f"{level} recent {noun} (weighted {v:.1f})"
    if feature == "n_events_total":
        return f"{_number(float(value or 0))} activities in total"
    if feature == f"distinct_topics_{TOPIC_WINDOW_DAYS}d":
        n = int(value or 0)
        return f"read about {n} different topic{'s' if n != 1 else ''} in the last 90 days"
    if feature == "unsubscribed":
        return "unsubscribed from e-mails" if value else "still subscribed to e-mails"
    if feature == "bounced":
        return "e-mail address bounced" if value else "e-mail address works"
    m = _COUNT.match(feature)
    if m and m["type"] in _EVENT_WORDS:
        one, many = _EVENT_WORDS[m["type"]]
        n = 0 if _missing(value) else int(round(float(value)))
        when = f"in the last {m['days']} days"
        if n == 0:
            return f"no {one} {when}"
        return f"{n} {one if n == 1 else many} {when}"
    name = feature.removeprefix("attr_").removeprefix("counter_").replace("_", " ")
    if _missing(value):
        return f"{name} unknown"
    if isinstance(value, float):
        return f"{name}: {_number(value)}"
    return f"{name}: {value}"


def value_text(value: Any) -> str | None:
    """The raw value as short text for the API (None when missing)."""
    if _missing(value):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
