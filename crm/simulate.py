"""A B2B funnel simulator: a realistic CRM export with a known ground truth.

``simulate`` draws accounts, leads, their engagement events and their path through the
funnel ``visit -> lead -> mql -> sal -> opportunity -> customer`` and returns the four
canonical tables (validated by ``crm.contract.validate``) plus a ground-truth table
with what no real CRM knows: each lead's persona, true fit, true interest and the true
probabilities of the two steps the models predict.

How the world works (all of it vectorised; no Python loop per lead or per event):

- **Fit** is ``sigmoid(fit_logit)``; the logit adds effects of industry, company size
  (a mid-market bump), country/region, the seniority and department behind the job title,
  and free-mail vs business e-mail. Missing values in the export hide some of it.
- **Personas** (subscriber, evaluator, marketer) drive the job title (the role's track
  matches the persona ~80% of the time) and the topics of topical events (~78% from the
  persona's motive topics, ~6% from other personas' motives, the rest general topics).
- **Engagement**: every lead has an intensity (lognormal, ~50 events over its life) and an
  intent that tilts the event-type mix towards pricing views, demo requests, webinars,
  downloads and forms. Event times rise and fade after ``created_at`` (a gamma mixture);
  known-cookie page views precede it by up to 30 days. Newsletters go out every 14 days.
  Bounces stop all e-mail/newsletter events, so do unsubscribes; ``do_not_email`` leads
  (a flag set when the lead was created) get none.
- **lead -> MQL** with ``p_mql = sigmoid(a + b * fit_logit + c * z)``, z the standardised
  log intensity (observable only through the event counts it produces); the MQL
  moment is a form fill, download or demo request inside the lead's engagement curve.
- **MQL -> SAL within 90 days** with ``p_sal = sigmoid(logit)``; the logit is
  ``fit_logit`` plus the *interest logit*: log1p of decayed, type-weighted event sums per
  group, taken over the events at or before the MQL moment (web 7 days half-life,
  e-mail 30, webinars/fairs/downloads 14, forms/demos 14), minus penalties for an earlier
  unsubscribe or bounce and for silence before the MQL, plus N(0, 0.3) unobserved noise.
  ``interest`` in the truth is ``sigmoid`` of that interest logit (at the MQL moment, or at
  ``end`` for leads without a recorded MQL).
  Two sales rules then bend that additive score, as real sales teams do: a demo request in
  the 14 days up to the MQL from a business address at a company with 50+ employees is
  fast-tracked (p_sal >= 0.8), and free-mail leads from companies under 20 employees keep
  only 35 % of theirs. Trees can learn such rules; a logistic regression cannot.
- SAL -> opportunity -> customer depend on fit; each step has a delay, and anything after
  ``end`` is censored (an MQL after ``end`` is not recorded either: its truth row then has
  ``p_sal`` NaN and ``mql_at`` NaT, while ``p_mql`` stays the lead's true probability).
  After SAL, sales e-mails follow (post-MQL, so they leak into any pre-MQL feature that
  ignores the snapshot time).
- **Lifecycle** at ``end`` (derived from the recorded events, as a CRM would): purchase less
  than 90 days before ``end`` -> ``new_customer``; else a ``referral`` event after the
  purchase -> ``ambassador``; else product/community activity (page_view/blog_read with
  topic ``product_docs`` or ``community``) after the purchase -> ``active_customer``; else
  ``new_customer`` (bought but never activated). Everybody who has not bought is a
  ``prospect``.

``end`` is a timestamp: nothing later than it is recorded.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from numpy.typing import ArrayLike

from crm.contract import CrmData, validate, write_tables
from crm.vocabulary import EVENT_TYPES, STAGES

DAY = 86_400  # seconds
#: the ground truth of a simulated export, beside its tables (one row per lead: p_mql, p_sal ...)
TRUTH_FILE = "truth.parquet"
SAL_HORIZON_DAYS = 90
NEW_CUSTOMER_DAYS = 90

PERSONAS: tuple[str, ...] = ("subscriber", "evaluator", "marketer")
LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "new_customer", "active_customer", "ambassador")
MOTIVE_TOPICS: dict[str, tuple[str, ...]] = {
    "subscriber": ("troubleshooting", "fixes", "maintenance", "updates"),
    "evaluator": ("product_features", "techniques", "software", "integration"),
    "marketer": ("comparisons", "benchmarks", "tests", "reviews"),
}
GENERAL_TOPICS: tuple[str, ...] = ("company_news", "events", "pricing", "community")
CUSTOMER_TOPICS: tuple[str, ...] = ("product_docs",)
TOPICS: tuple[str, ...] = (
    *(t for p in PERSONAS for t in MOTIVE_TOPICS[p]),
    *GENERAL_TOPICS,
    *CUSTOMER_TOPICS,
)
_TOPIC = {t: i for i, t in enumerate(TOPICS)}
_ET = {t: i for i, t in enumerate(EVENT_TYPES)}
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
# Sales rules applied to p_sal after the additive logit (see ``simulate``).
FAST_TRACK_DAYS = 14  # a demo request this recent ...
FAST_TRACK_MIN_EMPLOYEES = 50  # ... from a business address at a company this large ...
FAST_TRACK_P = 0.8  # ... is accepted at least with this probability (1-(1-p)(1-0.8))
SMALL_MAX_EMPLOYEES = 20  # free-mail leads from companies below this size ...
SMALL_FREE_MAIL_FACTOR = 0.35  # ... keep only this share of their p_sal

# ---------------------------------------------------------------- firmographics
INDUSTRIES: tuple[str, ...] = (
    "software",
    "manufacturing",
    "retail",
    "finance",
    "healthcare",
    "education",
    "public_sector",
    "logistics",
    "energy",
    "media",
)
_INDUSTRY_P = np.array([0.16, 0.20, 0.10, 0.09, 0.09, 0.06, 0.06, 0.09, 0.07, 0.08])
_INDUSTRY_FIT = np.array([0.8, 0.7, -0.3, 0.0, 0.1, -0.7, -0.5, 0.3, 0.3, -0.4])
_INDUSTRY_REV_PER_EMP = np.array(
    [220e3, 180e3, 150e3, 400e3, 120e3, 60e3, 80e3, 160e3, 500e3, 170e3]
)
# persona mix tilts per industry (multiplies subscriber, evaluator, marketer base weights)
_INDUSTRY_PERSONA = np.array(
    [
        [0.8, 1.4, 1.0],
        [1.3, 1.1, 0.7],
        [0.8, 0.7, 1.7],
        [0.9, 1.0, 1.2],
        [1.2, 1.0, 0.8],
        [1.1, 1.0, 0.9],
        [1.3, 0.9, 0.7],
        [1.2, 1.0, 0.8],
        [1.2, 1.1, 0.7],
        [0.7, 0.8, 1.8],
    ]
)
COUNTRIES: tuple[str, ...] = (
    "DE", "AT", "CH", "US", "GB", "FR", "NL", "ES", "IT", "PL", "SE", "DK", "BE", "IN", "BR", "CA",
)  # fmt: skip
_COUNTRY_P = np.array(
    [0.28, 0.06, 0.06, 0.13, 0.08, 0.06, 0.05, 0.04, 0.05, 0.04, 0.02, 0.02, 0.02, 0.04, 0.03, 0.02]
)
_COUNTRY_FIT = np.array(
    [0.6, 0.6, 0.6, 0.3, 0.3, 0.2, 0.2, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, -0.6, -0.6, 0.1]
)

SOURCES: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "social",
    "referral",
    "trade_fair",
    "webinar",
    "direct",
    "partner",
    "email_campaign",
    "content_syndication",
)
_SOURCE_P = np.array([0.25, 0.14, 0.10, 0.07, 0.08, 0.09, 0.12, 0.06, 0.05, 0.04])
_SOURCE_FIT_TILT = np.array([0.0, -0.3, -0.4, 0.4, 0.3, 0.1, 0.0, 0.5, -0.1, -0.2])

# ---------------------------------------------------------------- job titles
SENIORITY: tuple[str, ...] = (
    "intern", "junior", "professional", "senior", "manager", "head", "vp", "c_level",
)  # fmt: skip
_SENIORITY_P = np.array([0.03, 0.10, 0.33, 0.17, 0.18, 0.10, 0.04, 0.05])
_SENIORITY_FIT = np.array([-1.0, -0.4, 0.0, 0.2, 0.45, 0.7, 0.7, 0.6])
DEPARTMENTS: tuple[str, ...] = (
    "it", "engineering", "support", "marketing", "sales", "operations", "finance",
    "procurement", "hr", "management",
)  # fmt: skip
_DEPARTMENT_FIT = np.array([0.55, 0.45, 0.1, -0.1, -0.2, 0.2, -0.3, 0.3, -0.6, 0.3])

# track: (persona or "", department, department names, individual-contributor roles, C-level)
_TRACKS: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("subscriber", "it", ("IT Operations", "IT", "IT Infrastructure"),
     ("System Administrator", "IT Administrator", "Sysadmin"), ()),
    ("subscriber", "support", ("Technical Support", "Support", "Customer Support"),
     ("Support Engineer", "Technical Support Specialist", "Helpdesk Agent"), ()),
    ("subscriber", "operations", ("Service", "Field Service", "Maintenance"),
     ("Service Technician", "Maintenance Technician", "Field Service Engineer"), ()),
    ("evaluator", "engineering", ("Engineering", "Software Engineering", "R&D"),
     ("Software Engineer", "Developer", "Systems Engineer"),
     ("CTO", "Chief Technology Officer", "CTO & Co-Founder")),
    ("evaluator", "it", ("IT", "Information Technology", "IT & Digital"),
     ("Solutions Architect", "IT Architect", "IT Consultant"),
     ("CIO", "Chief Information Officer", "Chief Digital Officer")),
    ("evaluator", "engineering", ("Process Engineering", "Automation", "Production Engineering"),
     ("Process Engineer", "Automation Engineer", "Product Engineer"), ()),
    ("marketer", "marketing", ("Marketing", "Digital Marketing", "Product Marketing"),
     ("Marketing Specialist", "Content Marketer", "Marketing Associate"),
     ("CMO", "Chief Marketing Officer", "CMO")),
    ("marketer", "sales", ("Sales", "Business Development", "Inside Sales"),
     ("Account Executive", "Sales Representative", "Business Development Rep"),
     ("CSO", "Chief Sales Officer", "Chief Revenue Officer")),
    ("", "finance", ("Finance", "Controlling", "Accounting"),
     ("Accountant", "Financial Analyst", "Controller"), ("CFO", "Chief Financial Officer", "CFO")),
    ("", "procurement", ("Procurement", "Purchasing", "Strategic Sourcing"),
     ("Buyer", "Purchaser", "Procurement Specialist"), ("CPO", "Chief Procurement Officer", "CPO")),
    ("", "hr", ("HR", "Human Resources", "People & Culture"),
     ("HR Generalist", "Recruiter", "HR Specialist"), ("CHRO", "Chief People Officer", "CHRO")),
    ("", "management", ("Operations", "Business Operations", "Strategy"),
     ("Operations Analyst", "Business Analyst", "Consultant"),
     ("CEO", "Managing Director", "Founder & CEO")),
)  # fmt: skip
# templates per seniority level, three variants each; {d} department, {r} role
_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("{r} Intern", "Intern {d}", "Working Student {d}"),
    ("Junior {r}", "Jr. {r}", "Junior {r}"),
    ("{r}", "{r}", "{r}"),
    ("Senior {r}", "Sr. {r}", "Lead {r}"),
    ("{d} Manager", "Manager {d}", "{d} Team Lead"),
    ("Head of {d}", "Director of {d}", "{d} Director"),
    ("VP {d}", "VP of {d}", "Vice President, {d}"),
    ("{c}", "{c}", "{c}"),
)
_TITLE_SUFFIXES: tuple[str, ...] = ("", " (m/w/d)", " EMEA", " DACH", " - Germany")


def _title_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All titles as a [track, seniority, variant] array plus per-track persona/department."""
    n_t, n_s = len(_TRACKS), len(SENIORITY)
    titles = np.empty((n_t, n_s, 3), dtype=object)
    persona = np.full(n_t, -1)
    dept = np.zeros(n_t, dtype=int)
    has_c = np.zeros(n_t, dtype=bool)
    for i, (pers, dep, dnames, roles, chiefs) in enumerate(_TRACKS):
        persona[i] = PERSONAS.index(pers) if pers else -1
        dept[i] = DEPARTMENTS.index(dep)
        has_c[i] = bool(chiefs)
        for s, variants in enumerate(_TEMPLATES):
            for v, tpl in enumerate(variants):
                c = chiefs[v] if chiefs else f"Head of {dnames[v]}"
                titles[i, s, v] = tpl.format(d=dnames[v], r=roles[v], c=c)
    return titles, persona, dept, has_c


_TITLES, _TRACK_PERSONA, _TRACK_DEPT, _TRACK_HAS_C = _title_table()


def _content_catalog() -> pd.DataFrame:
    """About 60 content items, each with one topic and one buying phase."""
    phases = ("awareness", "consideration", "decision")
    per_topic = {t: 4 for p in PERSONAS for t in MOTIVE_TOPICS[p]}
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
_CONTENT_IDS = CONTENT_CATALOG["content_id"].to_numpy()
_TOPIC_CONTENT_START = np.array(
    [np.flatnonzero(CONTENT_CATALOG["topic"].to_numpy() == t)[0] for t in TOPICS]
)
_TOPIC_CONTENT_COUNT = np.array([(CONTENT_CATALOG["topic"] == t).sum() for t in TOPICS])

# Event types drawn from the per-lead mix (children and special events come separately).
_MIX_TYPES: tuple[str, ...] = (
    "page_view",
    "blog_read",
    "newsletter_open",
    "email_open",
    "webinar_registered",
    "content_download",
    "form_submit",
    "pricing_view",
    "demo_request",
    "trade_fair_visit",
    "referral",
)
_MIX_BASE = np.array([2.6, 1.6, 1.5, 0.9, -1.4, -1.1, -1.9, -1.3, -3.6, -3.3, -5.5])
_MIX_INTENT = np.array([0.0, -0.2, -0.2, 0.0, 0.5, 0.6, 0.6, 0.9, 1.2, 0.3, 0.0])
_MIX_PERSONA = np.array(
    [
        [0.0, 0.3, 0.4, 0.0, -0.2, -0.1, 0.0, -0.3, -0.2, -0.2, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.4, 0.3, 0.0, 0.0, 0.2, 0.0, 0.0],
        [0.0, 0.3, 0.0, 0.0, 0.0, 0.2, 0.0, 0.1, 0.0, 0.4, 0.0],
    ]
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _sample_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One category per element of ``rows``, drawn from ``probs[rows]`` (rows sum to 1).

    Vectorised inverse-CDF over a flat, strictly increasing array ``row + cumsum``."""
    k = probs.shape[1]
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(len(probs))[:, None]).ravel()
    u = rng.random(len(rows))
    pos = np.searchsorted(flat, rows + u, side="right") - rows * k
    return np.minimum(pos, k - 1)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default ``str`` dtype


def _strings(codes: np.ndarray, categories: Iterable[object]) -> pd.Series:
    """Decode integer codes (-1 = missing) to a pandas ``str`` column through Arrow.

    Several times faster than a Categorical for millions of rows, and already the dtype
    ``contract.validate`` converts id and string columns to, so validation stays cheap."""
    codes = np.asarray(codes, dtype=np.int32)
    dictionary = pa.array([str(c) for c in categories], type=pa.large_string())
    arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), dictionary)
    return pd.Series(arr.dictionary_decode().to_pandas(types_mapper=lambda _: _STR))


def _sec(days: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(days, dtype=float) * DAY).astype(np.int64)


class _Events:
    """Event batches in integer seconds since ``start``; concatenated once at the end."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, lead: np.ndarray, at: np.ndarray, etype: np.ndarray, topic: np.ndarray) -> None:
        n = len(lead)
        self.parts.append(
            (
                np.asarray(lead, dtype=np.int64),
                np.asarray(at, dtype=np.int64),
                np.broadcast_to(np.asarray(etype, dtype=np.int16), (n,)).copy(),
                np.broadcast_to(np.asarray(topic, dtype=np.int16), (n,)).copy(),
            )
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lead, at, etype, topic = (np.concatenate([p[i] for p in self.parts]) for i in range(4))
        return lead, at, etype, topic


def _persona_topics(rng: np.random.Generator, persona: np.ndarray) -> np.ndarray:
    """Topic codes for topical events of leads with the given personas."""
    probs = np.zeros((len(PERSONAS), len(TOPICS)))
    general = [_TOPIC[t] for t in GENERAL_TOPICS if t != "pricing"]
    for i, p in enumerate(PERSONAS):
        for q in PERSONAS:
            share = TOPIC_SHARE_OWN if q == p else TOPIC_SHARE_OTHER
            for t in MOTIVE_TOPICS[q]:
                probs[i, _TOPIC[t]] = share / len(MOTIVE_TOPICS[q])
        rest = 1.0 - TOPIC_SHARE_OWN - TOPIC_SHARE_OTHER * (len(PERSONAS) - 1)
        probs[i, general] = rest / len(general)
    return _sample_rows(rng, probs, persona).astype(np.int16)


def _type_topics(rng: np.random.Generator, etype: np.ndarray, persona: np.ndarray) -> np.ndarray:
    """Topic per event: persona topics for topical types, ``pricing`` for pricing views."""
    topic = np.full(len(etype), -1, dtype=np.int16)
    topical = np.isin(etype, [_ET[t] for t in TOPICAL_TYPES])
    topic[topical] = _persona_topics(rng, persona[topical])
    topic[etype == _ET["pricing_view"]] = _TOPIC["pricing"]
    return topic


def _interest_logit(
    lead: np.ndarray,
    at: np.ndarray,
    etype: np.ndarray,
    ref: np.ndarray,
    created: np.ndarray,
) -> np.ndarray:
    """The true interest logit of each lead at ``ref`` (seconds since start).

    Events at or before ``ref`` count, so the event that makes a lead an MQL counts too."""
    n = len(ref)
    keep = at <= ref[lead]
    ld, age = lead[keep], (ref[lead[keep]] - at[keep]) / DAY
    et = etype[keep]
    out = np.full(n, INTEREST_OFFSET)
    for name, (types, half_life) in INTEREST_GROUPS.items():
        w_type = np.zeros(len(EVENT_TYPES))
        for t, w in types.items():
            w_type[_ET[t]] = w
        w = w_type[et] * np.exp(-math.log(2.0) * age / half_life)
        sums = np.bincount(ld, weights=w, minlength=n)
        out += INTEREST_WEIGHTS[name] * np.log1p(sums)
    unsub = np.bincount(ld, weights=(et == _ET["unsubscribe"]), minlength=n) > 0
    bounce = np.bincount(ld, weights=(et == _ET["email_bounce"]), minlength=n) > 0
    out += UNSUBSCRIBE_PENALTY * unsub + BOUNCE_PENALTY * bounce
    # silence: days between the last engagement event (not the reference event itself) and ref
    last = np.full(n, -np.inf)
    earlier = age > 0
    np.maximum.at(last, ld[earlier], at[keep][earlier].astype(float))
    last = np.where(np.isfinite(last), last, created.astype(float))
    gap = np.maximum(ref - last, 0) / DAY
    out += SILENCE_PENALTY * np.log1p(np.maximum(gap - 14.0, 0.0) / 14.0)
    return out


def simulate(
    n_leads: int = 20_000,
    seed: int = 7,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
) -> tuple[CrmData, pd.DataFrame]:
    """Simulate a CRM export; returns the validated four tables and a ground-truth table.

    The truth has one row per lead: lead_id, persona, fit, interest, p_mql, p_sal
    (NaN without a recorded MQL), mql_at (NaT without one) and lifecycle_stage at ``end``.
    """
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    end_s = int((pd.Timestamp(end) - t0).total_seconds())
    if end_s <= 0:
        raise ValueError(f"end {end} must be after start {start}")
    n = n_leads

    # ---------------------------------------------------------------- accounts
    n_acc = max(1, n // 3)
    industry = rng.choice(len(INDUSTRIES), n_acc, p=_INDUSTRY_P / _INDUSTRY_P.sum())
    employees = np.clip(np.round(np.exp(rng.normal(math.log(150), 1.9, n_acc))), 1, 100_000)
    revenue = np.round(
        employees * _INDUSTRY_REV_PER_EMP[industry] * np.exp(rng.normal(0, 0.5, n_acc)), -3
    )
    country = rng.choice(len(COUNTRIES), n_acc, p=_COUNTRY_P / _COUNTRY_P.sum())
    log_emp = np.log10(employees)
    size_fit = np.clip(0.9 - 0.4 * (log_emp - 2.8) ** 2, -1.2, 0.9)
    acc_fit = _INDUSTRY_FIT[industry] + size_fit + _COUNTRY_FIT[country]

    # ---------------------------------------------------------------- leads
    acc_w = employees**0.35 * np.exp(rng.normal(0, 0.8, n_acc))
    acc = rng.choice(n_acc, n, p=acc_w / acc_w.sum())
    created = rng.integers(0, end_s + 1, n).astype(np.int64)
    p_persona = np.array([0.40, 0.35, 0.25]) * _INDUSTRY_PERSONA[industry[acc]]
    p_persona[:, 2] *= np.where(log_emp[acc] > 3.5, 1.2, 1.0)  # big firms: more marketers
    persona = _sample_rows(rng, p_persona, np.arange(n))

    # job title: a track (matching the persona with probability ROLE_MATCH), a seniority level
    n_tracks = len(_TRACKS)
    p_track = np.zeros((len(PERSONAS), n_tracks))
    for i in range(len(PERSONAS)):
        own = _TRACK_PERSONA == i
        p_track[i, own] = ROLE_MATCH / own.sum()
        p_track[i, ~own] = (1 - ROLE_MATCH) / (~own).sum()
    track = _sample_rows(rng, p_track, persona)
    p_sen = np.tile(_SENIORITY_P, (n_tracks, 1))
    p_sen[~_TRACK_HAS_C, 7] = 0.0
    p_sen[_TRACK_PERSONA == 0, 6] = 0.0  # no "VP Field Service"
    seniority = _sample_rows(rng, p_sen, track)
    variant = rng.integers(0, 3, n)
    title = pd.Series(_TITLES[track, seniority, variant], dtype="str")
    sfx = _sample_rows(rng, np.array([[0.92, 0.03, 0.02, 0.02, 0.01]]), np.zeros(n, int))
    title = title + pd.Series(np.array(_TITLE_SUFFIXES, dtype=object)[sfx], dtype="str")
    casing = rng.random(n)
    title = title.where(casing >= 0.12, title.str.lower())
    title = title.where((casing < 0.12) | (casing >= 0.15), title.str.upper())
    department = _TRACK_DEPT[track]

    free_mail = rng.random(n) < _sigmoid(-1.3 - 0.5 * (log_emp[acc] - 2.0))
    do_not_email = rng.random(n) < 0.02
    fit_logit = (
        -1.35
        + acc_fit[acc]
        + _SENIORITY_FIT[seniority]
        + _DEPARTMENT_FIT[department]
        - 0.8 * free_mail
    )
    fit = _sigmoid(fit_logit)
    fit_z = (fit_logit - fit_logit.mean()) / (fit_logit.std() + 1e-9)
    p_src = _SOURCE_P * np.exp(np.outer(fit_z, _SOURCE_FIT_TILT))
    source = _sample_rows(rng, p_src, np.arange(n))

    # engagement: intensity (events over the lead's life), intent, time scale
    z_int = 0.25 * fit_z + math.sqrt(1 - 0.25**2) * rng.normal(size=n)
    intensity = np.exp(math.log(40.0) - 0.5 * 0.95**2 + 0.95 * z_int) + 4.0
    intent = 0.45 * fit_z + 0.3 * z_int + math.sqrt(1 - 0.45**2 - 0.3**2) * rng.normal(size=n)
    scale = np.exp(rng.normal(math.log(30.0), 0.6, n))  # days

    ev = _Events()
    # visit: first known page view, 0..30 days before created_at
    same_session = rng.random(n) < 0.35
    lead_gap = np.where(same_session, rng.uniform(60, 1800, n), rng.uniform(0.02, 30, n) * DAY)
    visit = created - np.round(lead_gap).astype(np.int64)
    lead_ix = np.arange(n)
    ev.add(lead_ix, visit, _ET["page_view"], _persona_topics(rng, persona))
    # known-cookie page views between visit and created_at
    n_pre = rng.poisson(0.06 * intensity * ~same_session)
    li = np.repeat(lead_ix, n_pre)
    at = visit[li] + (rng.random(len(li)) * (created - visit)[li]).astype(np.int64)
    et = np.where(rng.random(len(li)) < 0.8, _ET["page_view"], _ET["blog_read"])
    ev.add(li, at, et, _persona_topics(rng, persona[li]))
    # the event that created the lead
    src_name = np.array(SOURCES)[source]
    et = np.full(n, _ET["form_submit"])
    et[src_name == "trade_fair"] = _ET["trade_fair_visit"]
    et[src_name == "webinar"] = _ET["webinar_registered"]
    et[src_name == "content_syndication"] = _ET["content_download"]
    ev.add(lead_ix, created, et, _type_topics(rng, et, persona))

    # the main stream: rise-and-fade after created_at
    n_main = rng.poisson(intensity)
    li = np.repeat(lead_ix, n_main)
    m = len(li)
    tail = rng.random(m) < 0.2
    off_days = np.where(
        tail, rng.gamma(1.0, 1.0, m) * 5.0 * scale[li], rng.gamma(1.6, 1.0, m) * scale[li]
    )
    at = created[li] + _sec(off_days) + 60
    logits = _MIX_BASE + np.outer(intent, _MIX_INTENT) + _MIX_PERSONA[persona]
    logits[src_name == "trade_fair", _MIX_TYPES.index("trade_fair_visit")] += 1.0
    logits[src_name == "webinar", _MIX_TYPES.index("webinar_registered")] += 0.7
    mix_p = np.exp(logits)
    email_cols = [i for i, t in enumerate(_MIX_TYPES) if t in EMAIL_TYPES]
    mix_p[np.ix_(do_not_email, email_cols)] = 0.0
    mix_codes = np.array([_ET[t] for t in _MIX_TYPES])
    et = mix_codes[_sample_rows(rng, mix_p, li)]
    # newsletters go out every 14 days (Tuesdays 9:00 UTC in the first week): opens follow
    nl = et == _ET["newsletter_open"]
    anchor = (1 - t0.day_of_week) % 7 * DAY + 9 * 3600
    sends = anchor + np.ceil((at[nl] - anchor) / (14 * DAY)).astype(np.int64) * 14 * DAY
    at[nl] = sends + _sec(rng.exponential(0.8, nl.sum())) + 120
    ev.add(li, at, et, _type_topics(rng, et, persona[li]))
    # children: clicks after opens, attendance after registration
    for parent, child, base, delay in (
        ("newsletter_open", "newsletter_click", -1.5, (30, 1800)),
        ("email_open", "email_click", -1.1, (30, 1800)),
        ("webinar_registered", "webinar_attended", -0.1, (DAY, 21 * DAY)),
    ):
        par = et == _ET[parent]
        pl = li[par]
        hit = rng.random(len(pl)) < _sigmoid(base + 0.5 * intent[pl])
        cl = pl[hit]
        cat = at[par][hit] + rng.integers(delay[0], delay[1], len(cl))
        cet = np.full(len(cl), _ET[child])
        ev.add(cl, cat, cet, _type_topics(rng, cet, persona[cl]))

    # bounces (mostly free-mail, some people leave their company) and unsubscribes
    bounce_at = np.full(n, np.iinfo(np.int64).max)
    bounced = rng.random(n) < np.where(free_mail, 0.045, 0.02)
    bounce_at[bounced] = created[bounced] + _sec(rng.exponential(120.0, bounced.sum()) + 1.0)
    lead_a, at_a, et_a, _ = ev.arrays()
    opens = (et_a == _ET["newsletter_open"]) & (at_a < bounce_at[lead_a])
    p_unsub = _sigmoid(-2.3 - 0.4 * intent)
    wants = rng.random(n) < p_unsub
    cand = np.flatnonzero(opens & wants[lead_a])
    cand = cand[np.lexsort((rng.random(len(cand)), lead_a[cand]))]
    first = cand[np.unique(lead_a[cand], return_index=True)[1]]
    unsub_at = np.full(n, np.iinfo(np.int64).max)
    unsub_at[lead_a[first]] = at_a[first] + rng.integers(20, 600, len(first))
    has_unsub = unsub_at < np.iinfo(np.int64).max
    ev.add(np.flatnonzero(has_unsub), unsub_at[has_unsub], _ET["unsubscribe"], -1)
    ev.add(np.flatnonzero(bounced), bounce_at[bounced], _ET["email_bounce"], -1)

    # ---------------------------------------------------------------- lead -> MQL
    p_mql = _sigmoid(-1.74 + 0.7 * fit_logit + 0.85 * z_int)
    is_mql = rng.random(n) < p_mql
    mql_off = rng.gamma(1.6, 1.0, n) * scale + 1.0 / 24
    mql_at = created + _sec(mql_off)
    mql_rec = is_mql & (mql_at <= end_s)
    mi = np.flatnonzero(is_mql)
    met = np.array([_ET["form_submit"], _ET["content_download"], _ET["demo_request"]])[
        _sample_rows(rng, np.array([[0.4, 0.3, 0.3]]), np.zeros(len(mi), int))
    ]
    ev.add(mi, mql_at[mi], met, _type_topics(rng, met, persona[mi]))

    # the true interest and p_sal at the MQL moment (events so far, after the e-mail stops)
    lead_a, at_a, et_a, _ = ev.arrays()
    email_codes = [_ET[t] for t in EMAIL_TYPES]
    stopped = np.isin(et_a, email_codes) & (
        (at_a >= np.minimum(unsub_at, bounce_at)[lead_a]) | do_not_email[lead_a]
    )
    ref = np.where(mql_rec, mql_at, end_s)
    ok = ~stopped & (at_a <= end_s)
    interest_logit = _interest_logit(lead_a[ok], at_a[ok], et_a[ok], ref, created)
    sal_noise = rng.normal(0.0, SAL_NOISE_STD, n)
    p_sal_all = _sigmoid(SAL_INTERCEPT + SAL_FIT_WEIGHT * fit_logit + interest_logit + sal_noise)
    # Sales rules on top of the additive score (not additive in log-odds, as in real
    # funnels): a recent demo request from an ideal-profile company is fast-tracked, and
    # small companies reached through a free-mail address are mostly turned away.
    demo = ok & (et_a == _ET["demo_request"]) & (at_a <= ref[lead_a])
    demo &= at_a >= ref[lead_a] - FAST_TRACK_DAYS * DAY
    recent_demo = np.bincount(lead_a[demo], minlength=n) > 0
    icp = ~free_mail & (employees[acc] >= FAST_TRACK_MIN_EMPLOYEES)
    fast = recent_demo & icp
    p_sal_all = np.where(fast, 1.0 - (1.0 - p_sal_all) * (1.0 - FAST_TRACK_P), p_sal_all)
    p_sal_all = np.where(
        free_mail & (employees[acc] < SMALL_MAX_EMPLOYEES),
        p_sal_all * SMALL_FREE_MAIL_FACTOR,
        p_sal_all,
    )

    # ---------------------------------------------------------------- MQL -> SAL -> opp -> customer
    sal = mql_rec & (rng.random(n) < p_sal_all)
    sal_delay = np.where(
        sal,
        _sec(np.maximum(rng.beta(1.3, 5.0, n) * SAL_HORIZON_DAYS, 1.0 / 24)),
        _sec(rng.uniform(SAL_HORIZON_DAYS + 1, 240, n)),
    )
    late_sal = mql_rec & ~sal & (rng.random(n) < 0.06)
    sal = sal | late_sal
    sal_at = mql_at + sal_delay
    p_opp = _sigmoid(-0.88 + 0.6 * fit_logit + rng.normal(0, 0.3, n))
    opp = sal & (rng.random(n) < p_opp)
    opp_at = sal_at + _sec(rng.gamma(2.0, 12.0, n) + 1.0)
    p_cust = _sigmoid(-1.35 + 0.55 * fit_logit + rng.normal(0, 0.3, n))
    cust = opp & (rng.random(n) < p_cust)
    cust_at = opp_at + _sec(rng.gamma(2.0, 28.0, n) + 3.0)

    # sales e-mails after SAL
    si = np.flatnonzero(sal)
    n_se = rng.poisson(3.0, len(si))
    li = np.repeat(si, n_se)
    at = sal_at[li] + _sec(rng.gamma(1.5, 10.0, len(li)))
    ev.add(li, at, _ET["email_open"], -1)
    click = rng.random(len(li)) < 0.3
    ev.add(li[click], at[click] + rng.integers(30, 3600, click.sum()), _ET["email_click"],
           _persona_topics(rng, persona[li[click]]))  # fmt: skip
    # customers: product/community activity, and referrals by would-be ambassadors
    ci = np.flatnonzero(cust)
    n_act = 1 + rng.poisson(8.0, len(ci))
    li = np.repeat(ci, n_act)
    off = rng.gamma(1.2, 60.0, len(li))
    first_act = np.r_[0, np.cumsum(n_act)[:-1]]
    off[first_act] = rng.uniform(1.0, 45.0, len(ci))
    at = cust_at[li] + _sec(off)
    et = np.where(rng.random(len(li)) < 0.6, _ET["page_view"], _ET["blog_read"])
    tp = np.where(rng.random(len(li)) < 0.6, _TOPIC["product_docs"], _TOPIC["community"])
    ev.add(li, at, et, tp)
    ambassador = rng.random(len(ci)) < _sigmoid(-1.32 + 0.3 * fit_logit[ci])
    ai = ci[ambassador]
    n_ref = 1 + rng.poisson(1.0, len(ai))
    li = np.repeat(ai, n_ref)
    at = cust_at[li] + _sec(30.0 + rng.gamma(2.0, 45.0, len(li)))
    ev.add(li, at, _ET["referral"], -1)

    # ---------------------------------------------------------------- assemble events
    lead_a, at_a, et_a, tp_a = ev.arrays()
    stopped = np.isin(et_a, email_codes) & (
        (at_a >= np.minimum(unsub_at, bounce_at)[lead_a]) | do_not_email[lead_a]
    )
    keep = ~stopped & (at_a <= end_s)
    lead_a, at_a, et_a, tp_a = lead_a[keep], at_a[keep], et_a[keep], tp_a[keep]
    order = np.lexsort((et_a, at_a, lead_a))
    lead_a, at_a, et_a, tp_a = lead_a[order], at_a[order], et_a[order], tp_a[order]
    has_topic = tp_a >= 0
    content = np.full(len(tp_a), -1, dtype=np.int64)
    tpc = tp_a[has_topic]
    content[has_topic] = _TOPIC_CONTENT_START[tpc] + (
        rng.random(len(tpc)) * _TOPIC_CONTENT_COUNT[tpc]
    ).astype(np.int64)

    lead_ids = np.array([f"L{i + 1:07d}" for i in range(n)], dtype=object)
    acc_ids = np.array([f"A{i + 1:06d}" for i in range(n_acc)], dtype=object)

    def ns(sec: np.ndarray) -> np.ndarray:
        return (t0.value + sec * 1_000_000_000).astype("datetime64[ns]")

    events = pd.DataFrame(
        {
            "lead_id": _strings(lead_a, lead_ids),
            "at": ns(at_a),
            "type": _strings(et_a, EVENT_TYPES),
            "topic": _strings(tp_a, TOPICS),
            "content_id": _strings(content, _CONTENT_IDS),
        }
    )

    # ---------------------------------------------------------------- stage history
    stage_parts = [(lead_ix, visit, 0), (lead_ix, created, 1)]
    for mask, at, code in ((mql_rec, mql_at, 2), (sal, sal_at, 3), (opp, opp_at, 4),
                           (cust, cust_at, 5)):  # fmt: skip
        rec = mask & (at <= end_s)
        stage_parts.append((np.flatnonzero(rec), at[rec], code))
    sh_lead = np.concatenate([p[0] for p in stage_parts])
    sh_at = np.concatenate([p[1] for p in stage_parts])
    sh_stage = np.concatenate([np.full(len(p[0]), p[2]) for p in stage_parts])
    order = np.lexsort((sh_stage, sh_lead))
    stage_history = pd.DataFrame(
        {
            "lead_id": _strings(sh_lead[order], lead_ids),
            "stage": _strings(sh_stage[order], STAGES),
            "entered_at": ns(sh_at[order]),
        }
    )

    # ---------------------------------------------------------------- accounts and leads tables
    def holes(values: np.ndarray, share: float) -> np.ndarray:
        out = values.astype(object) if values.dtype.kind in "OU" else values.astype(float)
        gone = rng.random(len(values)) < share
        out[gone] = None if out.dtype == object else np.nan
        return out

    accounts = pd.DataFrame(
        {
            "account_id": acc_ids,
            "industry": holes(np.array(INDUSTRIES, dtype=object)[industry], 0.03),
            "employees": holes(employees, 0.04),
            "annual_revenue": holes(revenue, 0.07),
            "country": holes(np.array(COUNTRIES, dtype=object)[country], 0.02),
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": holes(acc_ids[acc], 0.03),
            "created_at": ns(created),
            "job_title": holes(title.to_numpy(dtype=object), 0.04),
            "source": holes(src_name.astype(object), 0.03),
            "email_domain_kind": holes(
                np.where(free_mail, "free", "business").astype(object), 0.01
            ),
            "do_not_email": do_not_email,
        }
    )
    data = validate(accounts, leads, events, stage_history)

    # ---------------------------------------------------------------- truth
    is_cust = cust & (cust_at <= end_s)
    after = is_cust[lead_a] & (at_a > cust_at[lead_a])
    referred = np.bincount(lead_a[after & (et_a == _ET["referral"])], minlength=n) > 0
    activity = (
        after
        & np.isin(et_a, [_ET["page_view"], _ET["blog_read"]])
        & np.isin(tp_a, [_TOPIC["product_docs"], _TOPIC["community"]])
    )
    active = np.bincount(lead_a[activity], minlength=n) > 0
    recent = cust_at > end_s - NEW_CUSTOMER_DAYS * DAY
    lifecycle = np.select([~is_cust, recent, referred, active], [0, 1, 3, 2], default=1)
    truth = pd.DataFrame(
        {
            "lead_id": lead_ids.astype(str),
            "persona": pd.Categorical.from_codes(persona, categories=PERSONAS),
            "fit": fit,
            "interest": _sigmoid(interest_logit),
            "p_mql": p_mql,
            "p_sal": np.where(mql_rec, p_sal_all, np.nan),
            "mql_at": pd.Series(ns(mql_at)).where(mql_rec),
            "lifecycle_stage": pd.Categorical.from_codes(lifecycle, categories=LIFECYCLE_STAGES),
        }
    )
    return data, truth


def write_simulation(out_dir: str | Path, n_leads: int = 20_000, seed: int = 7) -> None:
    """Simulate and write the four contract tables plus ``truth.parquet`` to ``out_dir``."""
    data, truth = simulate(n_leads=n_leads, seed=seed)
    out = Path(out_dir)
    write_tables(data, out)
    truth.to_parquet(out / TRUTH_FILE, index=False)


# ---------------------------------------------------------------- checks on a simulation
def stage_counts(data: CrmData) -> pd.Series:
    """How many leads entered each funnel stage."""
    sh = data.stage_history
    counts = sh.groupby(sh["stage"].astype(str))["lead_id"].nunique()
    return counts.reindex(list(STAGES), fill_value=0)


def stage_rates(data: CrmData) -> dict[str, float]:
    """Stage-to-stage conversion rates as recorded (later stages are censored at the end)."""
    c = stage_counts(data)
    return {f"{a}->{b}": float(c[b] / c[a]) if c[a] else float("nan")
            for a, b in zip(STAGES[1:-1], STAGES[2:], strict=True)}  # fmt: skip


def sal_holdout(
    data: CrmData,
    truth: pd.DataFrame,
    end: str | pd.Timestamp = "2025-12-31",
    horizon_days: int = SAL_HORIZON_DAYS,
    holdout_share: float = 0.2,
) -> pd.DataFrame:
    """The latest ``holdout_share`` of uncensored MQLs with label and true ``p_sal``.

    Uncensored: ``mql_at + horizon <= end``; label: SAL entered within the horizon."""
    sh = data.stage_history
    stage = sh["stage"].astype(str)
    mql = sh[stage == "mql"].groupby("lead_id")["entered_at"].min().rename("mql_at")
    sal = sh[stage == "sal"].groupby("lead_id")["entered_at"].min().rename("sal_at")
    horizon = pd.Timedelta(days=horizon_days)
    df = mql.to_frame().join(sal)
    df = df[df["mql_at"] + horizon <= pd.Timestamp(end)]
    df["label"] = (df["sal_at"] <= df["mql_at"] + horizon).astype(int)
    df = df.join(truth.set_index("lead_id")["p_sal"])
    df = df.reset_index().sort_values(["mql_at", "lead_id"], kind="stable")
    n_hold = int(round(len(df) * holdout_share))
    return df.iloc[len(df) - n_hold :]


def truth_auc(labels: ArrayLike, p_true: ArrayLike) -> float:
    """ROC AUC of the simulator's true probabilities against the realised labels: the
    ceiling no model of the simulated data can beat on those rows, but by luck."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, p_true))


def ceiling_auc(
    data: CrmData, truth: pd.DataFrame, end: str | pd.Timestamp = "2025-12-31"
) -> float:
    """ROC AUC of the true ``p_sal`` against the realised label on the time holdout."""
    hold = sal_holdout(data, truth, end)
    return truth_auc(hold["label"], hold["p_sal"])


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_simulation(args.out_dir, n_leads=args.leads, seed=args.seed)


if __name__ == "__main__":
    _main()
