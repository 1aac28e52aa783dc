"""The funnel after the lead: lead -> MQL, the true interest and p_sal at the MQL moment
(with the sales rules on top), then SAL, opportunity and customer, and the events that
follow them (sales e-mails, customers' product activity, ambassadors' referrals)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crm.simulate.draws import EventLog, persona_topics, sample_rows, seconds, sigmoid, type_topics
from crm.simulate.engagement import Engagement, mail_stopped
from crm.simulate.firmographics import AccountDraws
from crm.simulate.leads import LeadDraws
from crm.simulate.world import (
    BOUNCE_PENALTY,
    DAY,
    EVENT_CODE,
    FAST_TRACK_DAYS,
    FAST_TRACK_MIN_EMPLOYEES,
    FAST_TRACK_P,
    INTEREST_GROUPS,
    INTEREST_OFFSET,
    INTEREST_WEIGHTS,
    SAL_FIT_WEIGHT,
    SAL_HORIZON_DAYS,
    SAL_INTERCEPT,
    SAL_NOISE_STD,
    SILENCE_PENALTY,
    SMALL_FREE_MAIL_FACTOR,
    SMALL_MAX_EMPLOYEES,
    TOPIC_CODE,
    UNSUBSCRIBE_PENALTY,
)
from crm.vocabulary import EVENT_TYPES


def interest_logit(
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
            w_type[EVENT_CODE[t]] = w
        w = w_type[et] * np.exp(-math.log(2.0) * age / half_life)
        sums = np.bincount(ld, weights=w, minlength=n)
        out += INTEREST_WEIGHTS[name] * np.log1p(sums)
    unsub = np.bincount(ld, weights=(et == EVENT_CODE["unsubscribe"]), minlength=n) > 0
    bounce = np.bincount(ld, weights=(et == EVENT_CODE["email_bounce"]), minlength=n) > 0
    out += UNSUBSCRIBE_PENALTY * unsub + BOUNCE_PENALTY * bounce
    # silence: days between the last engagement event (not the reference event itself) and ref
    last = np.full(n, -np.inf)
    earlier = age > 0
    np.maximum.at(last, ld[earlier], at[keep][earlier].astype(float))
    last = np.where(np.isfinite(last), last, created.astype(float))
    gap = np.maximum(ref - last, 0) / DAY
    out += SILENCE_PENALTY * np.log1p(np.maximum(gap - 14.0, 0.0) / 14.0)
    return out


@dataclass(frozen=True)
class MqlDraws:
    """One element per lead: the true p_mql, when the lead became an MQL (seconds; drawn
    for every lead), and whether that is recorded (an MQL that happened before ``end``)."""

    p_mql: np.ndarray
    at: np.ndarray
    recorded: np.ndarray


def draw_mql(
    rng: np.random.Generator,
    log: EventLog,
    leads: LeadDraws,
    engagement: Engagement,
    end_s: int,
) -> MqlDraws:
    """lead -> MQL with ``p_mql = sigmoid(a + b * fit_logit + c * z)``; the MQL moment is a
    form fill, download or demo request inside the lead's engagement curve."""
    n = len(leads.created)
    p_mql = sigmoid(-1.74 + 0.7 * leads.fit_logit + 0.85 * engagement.z)
    is_mql = rng.random(n) < p_mql
    mql_off = rng.gamma(1.6, 1.0, n) * engagement.scale + 1.0 / 24
    mql_at = leads.created + seconds(mql_off)
    mql_rec = is_mql & (mql_at <= end_s)
    mi = np.flatnonzero(is_mql)
    met = np.array(
        [EVENT_CODE["form_submit"], EVENT_CODE["content_download"], EVENT_CODE["demo_request"]]
    )[sample_rows(rng, np.array([[0.4, 0.3, 0.3]]), np.zeros(len(mi), int))]
    log.add(mi, mql_at[mi], met, type_topics(rng, met, leads.persona[mi]))
    return MqlDraws(p_mql, mql_at, mql_rec)


def sal_probability(
    rng: np.random.Generator,
    log: EventLog,
    accounts: AccountDraws,
    leads: LeadDraws,
    mql: MqlDraws,
    mail_stop: np.ndarray,
    end_s: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The true interest logit and p_sal of each lead at its MQL moment (at ``end`` without
    a recorded MQL), from the events so far that arrived (no e-mail after it stopped)."""
    n = len(leads.created)
    lead_a, at_a, et_a, _ = log.arrays()
    stopped = mail_stopped(lead_a, at_a, et_a, mail_stop, leads)
    ref = np.where(mql.recorded, mql.at, end_s)
    ok = ~stopped & (at_a <= end_s)
    interest = interest_logit(lead_a[ok], at_a[ok], et_a[ok], ref, leads.created)
    sal_noise = rng.normal(0.0, SAL_NOISE_STD, n)
    p_sal = sigmoid(SAL_INTERCEPT + SAL_FIT_WEIGHT * leads.fit_logit + interest + sal_noise)
    # Sales rules on top of the additive score (not additive in log-odds, as in real
    # funnels): a recent demo request from an ideal-profile company is fast-tracked, and
    # small companies reached through a free-mail address are mostly turned away.
    demo = ok & (et_a == EVENT_CODE["demo_request"]) & (at_a <= ref[lead_a])
    demo &= at_a >= ref[lead_a] - FAST_TRACK_DAYS * DAY
    recent_demo = np.bincount(lead_a[demo], minlength=n) > 0
    employees = accounts.employees[leads.account]
    icp = ~leads.free_mail & (employees >= FAST_TRACK_MIN_EMPLOYEES)
    fast = recent_demo & icp
    p_sal = np.where(fast, 1.0 - (1.0 - p_sal) * (1.0 - FAST_TRACK_P), p_sal)
    p_sal = np.where(
        leads.free_mail & (employees < SMALL_MAX_EMPLOYEES),
        p_sal * SMALL_FREE_MAIL_FACTOR,
        p_sal,
    )
    return interest, p_sal


@dataclass(frozen=True)
class Progression:
    """One element per lead: whether and when (seconds) it reached SAL, opportunity and
    customer; times after ``end`` are not recorded later on."""

    sal: np.ndarray
    sal_at: np.ndarray
    opp: np.ndarray
    opp_at: np.ndarray
    cust: np.ndarray
    cust_at: np.ndarray


def draw_progression(
    rng: np.random.Generator, leads: LeadDraws, mql: MqlDraws, p_sal: np.ndarray
) -> Progression:
    """MQL -> SAL within the horizon with p_sal (and a few late ones after it), then
    opportunity and customer depending on fit, each after a delay."""
    n = len(leads.created)
    fit_logit = leads.fit_logit
    sal = mql.recorded & (rng.random(n) < p_sal)
    sal_delay = np.where(
        sal,
        seconds(np.maximum(rng.beta(1.3, 5.0, n) * SAL_HORIZON_DAYS, 1.0 / 24)),
        seconds(rng.uniform(SAL_HORIZON_DAYS + 1, 240, n)),
    )
    late_sal = mql.recorded & ~sal & (rng.random(n) < 0.06)
    sal = sal | late_sal
    sal_at = mql.at + sal_delay
    p_opp = sigmoid(-0.88 + 0.6 * fit_logit + rng.normal(0, 0.3, n))
    opp = sal & (rng.random(n) < p_opp)
    opp_at = sal_at + seconds(rng.gamma(2.0, 12.0, n) + 1.0)
    p_cust = sigmoid(-1.35 + 0.55 * fit_logit + rng.normal(0, 0.3, n))
    cust = opp & (rng.random(n) < p_cust)
    cust_at = opp_at + seconds(rng.gamma(2.0, 28.0, n) + 3.0)
    return Progression(sal, sal_at, opp, opp_at, cust, cust_at)


def after_sal_events(
    rng: np.random.Generator, log: EventLog, leads: LeadDraws, progression: Progression
) -> None:
    """Sales e-mails after SAL (after the MQL, so they leak into any pre-MQL feature that
    ignores the snapshot time); customers' product and community activity, and referrals
    by those who become ambassadors."""
    si = np.flatnonzero(progression.sal)
    li = np.repeat(si, rng.poisson(3.0, len(si)))
    at = progression.sal_at[li] + seconds(rng.gamma(1.5, 10.0, len(li)))
    log.add(li, at, EVENT_CODE["email_open"], -1)
    click = rng.random(len(li)) < 0.3
    log.add(
        li[click],
        at[click] + rng.integers(30, 3600, click.sum()),
        EVENT_CODE["email_click"],
        persona_topics(rng, leads.persona[li[click]]),
    )
    cust_at = progression.cust_at
    ci = np.flatnonzero(progression.cust)
    n_act = 1 + rng.poisson(8.0, len(ci))
    li = np.repeat(ci, n_act)
    off = rng.gamma(1.2, 60.0, len(li))
    first_act = np.cumsum(n_act) - n_act  # where each customer's activity starts
    off[first_act] = rng.uniform(1.0, 45.0, len(ci))
    at = cust_at[li] + seconds(off)
    et = np.where(rng.random(len(li)) < 0.6, EVENT_CODE["page_view"], EVENT_CODE["blog_read"])
    tp = np.where(rng.random(len(li)) < 0.6, TOPIC_CODE["product_docs"], TOPIC_CODE["community"])
    log.add(li, at, et, tp)
    ambassador = rng.random(len(ci)) < sigmoid(-1.32 + 0.3 * leads.fit_logit[ci])
    ai = ci[ambassador]
    li = np.repeat(ai, 1 + rng.poisson(1.0, len(ai)))
    at = cust_at[li] + seconds(30.0 + rng.gamma(2.0, 45.0, len(li)))
    log.add(li, at, EVENT_CODE["referral"], -1)
