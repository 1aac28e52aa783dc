"""The simulated world's parameters: time units and horizons, the personas' motive
topics and the general ones, the event types that carry a topic or are e-mail, how the
true interest weighs each group of events, the sales rules on p_sal, and the content
catalog every topical event points into."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm.vocabulary import CONTENT_PHASES, EVENT_TYPES, SIMULATED_PERSONAS

#: the ground truth of a simulated export, beside its tables (one row per lead: p_mql, p_sal ...)
TRUTH_FILE = "truth.parquet"
DAY = 86_400  # seconds
SAL_HORIZON_DAYS = 90
NEW_CUSTOMER_DAYS = 90

# The topics each persona reads about (SIMULATED_PERSONAS of crm.vocabulary).
MOTIVE_TOPICS: dict[str, tuple[str, ...]] = {
    "subscriber": ("troubleshooting", "fixes", "maintenance", "updates"),
    "evaluator": ("product_features", "techniques", "software", "integration"),
    "marketer": ("comparisons", "benchmarks", "tests", "reviews"),
}
GENERAL_TOPICS: tuple[str, ...] = ("company_news", "events", "pricing", "community")
CUSTOMER_TOPICS: tuple[str, ...] = ("product_docs",)
TOPICS: tuple[str, ...] = (
    *(t for p in SIMULATED_PERSONAS for t in MOTIVE_TOPICS[p]),
    *GENERAL_TOPICS,
    *CUSTOMER_TOPICS,
)
# Topics and event types travel as integer codes until the tables are written.
TOPIC_CODE = {t: i for i, t in enumerate(TOPICS)}
EVENT_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
EMAIL_TYPES: tuple[str, ...] = ("newsletter_open", "newsletter_click", "email_open", "email_click")
# Event types that carry a topic drawn from the lead's persona.
TOPICAL_TYPES: tuple[str, ...] = (
    "page_view",
    "blog_read",
    "newsletter_click",
    "email_click",
    "webinar_registered",
    "webinar_attended",
    "content_download",
    "form_submit",
)

# Share of a topical event's topic: own motives, each other persona's motives, general.
TOPIC_SHARE_OWN = 0.78
TOPIC_SHARE_OTHER = 0.03  # per other persona
ROLE_MATCH = 0.80

# Groups of event types for the true interest: (types with weights, half-life in days).
INTEREST_GROUPS: dict[str, tuple[dict[str, float], float]] = {
    "web": ({"page_view": 1.0, "blog_read": 1.0, "pricing_view": 3.0}, 7.0),
    "email": (
        {"newsletter_open": 0.5, "newsletter_click": 1.5, "email_open": 0.7, "email_click": 1.5},
        30.0,
    ),
    "events_content": (
        {
            "webinar_registered": 1.0,
            "webinar_attended": 2.0,
            "trade_fair_visit": 2.0,
            "content_download": 1.5,
        },
        14.0,
    ),
    "conversion": ({"form_submit": 1.0, "demo_request": 3.0}, 14.0),
}
INTEREST_WEIGHTS: dict[str, float] = {
    "web": 0.58,
    "email": 0.42,
    "events_content": 0.77,
    "conversion": 0.87,
}
INTEREST_OFFSET = -2.2  # centres the interest logit
UNSUBSCRIBE_PENALTY = -1.5
BOUNCE_PENALTY = -1.8
SILENCE_PENALTY = -0.8  # times log1p(days of silence beyond 14 / 14)
SAL_INTERCEPT = -2.0
SAL_FIT_WEIGHT = 1.82
SAL_NOISE_STD = 0.3
# Sales rules applied to p_sal after the additive logit (``funnel.sal_probability``).
FAST_TRACK_DAYS = 14  # a demo request this recent ...
FAST_TRACK_MIN_EMPLOYEES = 50  # ... from a business address at a company this large ...
FAST_TRACK_P = 0.8  # ... is accepted at least with this probability (1-(1-p)(1-0.8))
SMALL_MAX_EMPLOYEES = 20  # free-mail leads from companies below this size ...
SMALL_FREE_MAIL_FACTOR = 0.35  # ... keep only this share of their p_sal


def _content_catalog() -> pd.DataFrame:
    """About 60 content items, each with one topic and one buying phase."""
    phases = CONTENT_PHASES
    per_topic = {t: 4 for p in SIMULATED_PERSONAS for t in MOTIVE_TOPICS[p]}
    per_topic.update({"company_news": 3, "events": 3, "pricing": 2, "community": 3})
    per_topic["product_docs"] = 3
    rows = []
    for topic in TOPICS:
        for j in range(per_topic[topic]):
            phase = "decision" if topic == "pricing" else phases[j % 3]
            if topic in ("company_news", "community", "events"):
                phase = "awareness"
            rows.append((f"C{len(rows) + 1:03d}", topic, phase))
    return pd.DataFrame(rows, columns=["content_id", "topic", "phase"])


CONTENT_CATALOG: pd.DataFrame = _content_catalog()
# Where each topic's items start in the catalog, and how many it has (topics in order).
CONTENT_IDS = CONTENT_CATALOG["content_id"].to_numpy()
TOPIC_CONTENT_START = np.array(
    [np.flatnonzero(CONTENT_CATALOG["topic"].to_numpy() == t)[0] for t in TOPICS]
)
TOPIC_CONTENT_COUNT = np.array([(CONTENT_CATALOG["topic"] == t).sum() for t in TOPICS])
