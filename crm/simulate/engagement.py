"""Engagement: each lead's intensity, intent and time scale, and the events they
produce before the funnel moves: the first visit and known-cookie page views, the event
that created the lead, the main rise-and-fade stream with newsletter opens and their
children, and the bounces and unsubscribes that stop all e-mail."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.simulate.draws import EventLog, persona_topics, sample_rows, seconds, sigmoid, type_topics
from crm.simulate.leads import LeadDraws
from crm.simulate.world import DAY, EMAIL_TYPES, EVENT_CODE

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
_NO_TIME = np.iinfo(np.int64).max  # "never" for a time in seconds


@dataclass(frozen=True)
class Engagement:
    """One element per lead: ``z`` the standardised log intensity, ``intensity`` the
    expected events over its life (~50), ``intent`` the tilt towards pricing views, demo
    requests, webinars, downloads and forms, ``scale`` its engagement curve in days."""

    z: np.ndarray
    intensity: np.ndarray
    intent: np.ndarray
    scale: np.ndarray


def draw_engagement(rng: np.random.Generator, leads: LeadDraws) -> Engagement:
    n = len(leads.created)
    fit_z = leads.fit_z
    z_int = 0.25 * fit_z + math.sqrt(1 - 0.25**2) * rng.normal(size=n)
    intensity = np.exp(math.log(40.0) - 0.5 * 0.95**2 + 0.95 * z_int) + 4.0
    intent = 0.45 * fit_z + 0.3 * z_int + math.sqrt(1 - 0.45**2 - 0.3**2) * rng.normal(size=n)
    scale = np.exp(rng.normal(math.log(30.0), 0.6, n))  # days
    return Engagement(z_int, intensity, intent, scale)


def first_touches(
    rng: np.random.Generator, log: EventLog, leads: LeadDraws, engagement: Engagement
) -> np.ndarray:
    """The first known page view (the visit, 0..30 days before created_at), known-cookie
    page views between it and created_at, and the event that created the lead. Returns
    the visit times."""
    n = len(leads.created)
    created, persona = leads.created, leads.persona
    same_session = rng.random(n) < 0.35
    lead_gap = np.where(same_session, rng.uniform(60, 1800, n), rng.uniform(0.02, 30, n) * DAY)
    visit = created - np.round(lead_gap).astype(np.int64)
    lead_ix = np.arange(n)
    log.add(lead_ix, visit, EVENT_CODE["page_view"], persona_topics(rng, persona))
    # known-cookie page views between visit and created_at
    n_pre = rng.poisson(0.06 * engagement.intensity * ~same_session)
    li = np.repeat(lead_ix, n_pre)
    at = visit[li] + (rng.random(len(li)) * (created - visit)[li]).astype(np.int64)
    et = np.where(rng.random(len(li)) < 0.8, EVENT_CODE["page_view"], EVENT_CODE["blog_read"])
    log.add(li, at, et, persona_topics(rng, persona[li]))
    # the event that created the lead
    src_name = leads.source_name
    et = np.full(n, EVENT_CODE["form_submit"])
    et[src_name == "trade_fair"] = EVENT_CODE["trade_fair_visit"]
    et[src_name == "webinar"] = EVENT_CODE["webinar_registered"]
    et[src_name == "content_syndication"] = EVENT_CODE["content_download"]
    log.add(lead_ix, created, et, type_topics(rng, et, persona))
    return visit


def main_stream(
    rng: np.random.Generator,
    log: EventLog,
    leads: LeadDraws,
    engagement: Engagement,
    start: pd.Timestamp,
) -> None:
    """The events after created_at, rising and fading (a gamma mixture), their types from
    the lead's mix; newsletter opens follow the sends every 14 days; clicks follow opens
    and attendance follows registration."""
    persona, intent = leads.persona, engagement.intent
    li = np.repeat(np.arange(len(leads.created)), rng.poisson(engagement.intensity))
    m = len(li)
    tail = rng.random(m) < 0.2
    scale = engagement.scale[li]
    off_days = np.where(tail, rng.gamma(1.0, 1.0, m) * 5.0 * scale, rng.gamma(1.6, 1.0, m) * scale)
    at = leads.created[li] + seconds(off_days) + 60
    et = _mix_codes()[sample_rows(rng, _mix_probabilities(leads, intent), li)]
    # newsletters go out every 14 days (Tuesdays 9:00 UTC in the first week): opens follow
    nl = et == EVENT_CODE["newsletter_open"]
    anchor = (1 - start.day_of_week) % 7 * DAY + 9 * 3600
    sends = anchor + np.ceil((at[nl] - anchor) / (14 * DAY)).astype(np.int64) * 14 * DAY
    at[nl] = sends + seconds(rng.exponential(0.8, nl.sum())) + 120
    log.add(li, at, et, type_topics(rng, et, persona[li]))
    # children: clicks after opens, attendance after registration
    for parent, child, base, delay in (
        ("newsletter_open", "newsletter_click", -1.5, (30, 1800)),
        ("email_open", "email_click", -1.1, (30, 1800)),
        ("webinar_registered", "webinar_attended", -0.1, (DAY, 21 * DAY)),
    ):
        par = et == EVENT_CODE[parent]
        pl = li[par]
        hit = rng.random(len(pl)) < sigmoid(base + 0.5 * intent[pl])
        cl = pl[hit]
        cat = at[par][hit] + rng.integers(delay[0], delay[1], len(cl))
        cet = np.full(len(cl), EVENT_CODE[child])
        log.add(cl, cat, cet, type_topics(rng, cet, persona[cl]))


def _mix_codes() -> np.ndarray:
    return np.array([EVENT_CODE[t] for t in _MIX_TYPES])


def _mix_probabilities(leads: LeadDraws, intent: np.ndarray) -> np.ndarray:
    """Each lead's event-type mix: base, tilted by intent, persona and source; no e-mail
    for do-not-email leads."""
    src_name = leads.source_name
    logits = _MIX_BASE + np.outer(intent, _MIX_INTENT) + _MIX_PERSONA[leads.persona]
    logits[src_name == "trade_fair", _MIX_TYPES.index("trade_fair_visit")] += 1.0
    logits[src_name == "webinar", _MIX_TYPES.index("webinar_registered")] += 0.7
    mix_p = np.exp(logits)
    email_cols = [i for i, t in enumerate(_MIX_TYPES) if t in EMAIL_TYPES]
    mix_p[np.ix_(leads.do_not_email, email_cols)] = 0.0
    return mix_p


def mail_stops(
    rng: np.random.Generator, log: EventLog, leads: LeadDraws, engagement: Engagement
) -> np.ndarray:
    """Bounces (mostly free-mail; some people leave their company) and unsubscribes (after
    a newsletter open). Returns when e-mail stops for each lead (``_NO_TIME``: never)."""
    n = len(leads.created)
    bounce_at = np.full(n, _NO_TIME)
    bounced = rng.random(n) < np.where(leads.free_mail, 0.045, 0.02)
    bounce_at[bounced] = leads.created[bounced] + seconds(
        rng.exponential(120.0, bounced.sum()) + 1.0
    )
    lead_a, at_a, et_a, _ = log.arrays()
    opens = (et_a == EVENT_CODE["newsletter_open"]) & (at_a < bounce_at[lead_a])
    p_unsub = sigmoid(-2.3 - 0.4 * engagement.intent)
    wants = rng.random(n) < p_unsub
    cand = np.flatnonzero(opens & wants[lead_a])
    cand = cand[np.lexsort((rng.random(len(cand)), lead_a[cand]))]
    first = cand[np.unique(lead_a[cand], return_index=True)[1]]
    unsub_at = np.full(n, _NO_TIME)
    unsub_at[lead_a[first]] = at_a[first] + rng.integers(20, 600, len(first))
    has_unsub = unsub_at < _NO_TIME
    log.add(np.flatnonzero(has_unsub), unsub_at[has_unsub], EVENT_CODE["unsubscribe"], -1)
    log.add(np.flatnonzero(bounced), bounce_at[bounced], EVENT_CODE["email_bounce"], -1)
    return np.minimum(unsub_at, bounce_at)


def mail_stopped(
    lead: np.ndarray, at: np.ndarray, etype: np.ndarray, stop: np.ndarray, leads: LeadDraws
) -> np.ndarray:
    """Which of these events are e-mail that never arrived: at or after the lead's
    bounce or unsubscribe (``stop``), or to a do-not-email lead."""
    email_codes = [EVENT_CODE[t] for t in EMAIL_TYPES]
    return np.isin(etype, email_codes) & ((at >= stop[lead]) | leads.do_not_email[lead])
