"""The simulation as a CRM would export it: the recorded events (nothing after ``end``, no
e-mail after it stopped) with the content each points to, the stage history, the accounts
and leads tables with some values missing, and the ground truth no CRM has (persona, fit,
interest, the true probabilities, the lifecycle stage at ``end``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crm.simulate.draws import EventLog, sigmoid, strings, timestamps
from crm.simulate.engagement import mail_stopped
from crm.simulate.firmographics import COUNTRIES, INDUSTRIES, AccountDraws
from crm.simulate.funnel import MqlDraws, Progression
from crm.simulate.leads import LeadDraws
from crm.simulate.world import (
    CONTENT_IDS,
    DAY,
    EVENT_CODE,
    NEW_CUSTOMER_DAYS,
    TOPIC_CODE,
    TOPIC_CONTENT_COUNT,
    TOPIC_CONTENT_START,
    TOPICS,
)
from crm.vocabulary import EVENT_TYPES, LIFECYCLE_STAGES, SIMULATED_PERSONAS, STAGES


def lead_ids(n: int, offset: int = 0) -> np.ndarray:
    """``L0000001``, ...: the ids of ``n`` leads after the first ``offset`` (earlier chunks)."""
    return np.array([f"L{i + 1:07d}" for i in range(offset, offset + n)], dtype=object)


def account_ids(n: int, offset: int = 0) -> np.ndarray:
    """``A000001``, ...: the ids of ``n`` accounts after the first ``offset``."""
    return np.array([f"A{i + 1:06d}" for i in range(offset, offset + n)], dtype=object)


@dataclass(frozen=True)
class RecordedEvents:
    """The events a CRM recorded, sorted by lead, time and type: lead index, seconds since
    start, event type and topic codes (-1: no topic)."""

    lead: np.ndarray
    at: np.ndarray
    etype: np.ndarray
    topic: np.ndarray


def recorded_events(
    log: EventLog, leads: LeadDraws, mail_stop: np.ndarray, end_s: int
) -> RecordedEvents:
    lead_a, at_a, et_a, tp_a = log.arrays()
    stopped = mail_stopped(lead_a, at_a, et_a, mail_stop, leads)
    keep = ~stopped & (at_a <= end_s)
    lead_a, at_a, et_a, tp_a = lead_a[keep], at_a[keep], et_a[keep], tp_a[keep]
    order = np.lexsort((et_a, at_a, lead_a))
    return RecordedEvents(lead_a[order], at_a[order], et_a[order], tp_a[order])


def events_table(
    rng: np.random.Generator, events: RecordedEvents, ids: np.ndarray, start: pd.Timestamp
) -> pd.DataFrame:
    """The events table; a topical event points to one content item of its topic."""
    tp_a = events.topic
    has_topic = tp_a >= 0
    content = np.full(len(tp_a), -1, dtype=np.int64)
    tpc = tp_a[has_topic]
    content[has_topic] = TOPIC_CONTENT_START[tpc] + (
        rng.random(len(tpc)) * TOPIC_CONTENT_COUNT[tpc]
    ).astype(np.int64)
    return pd.DataFrame(
        {
            "lead_id": strings(events.lead, ids),
            "at": timestamps(start, events.at),
            "type": strings(events.etype, EVENT_TYPES),
            "topic": strings(tp_a, TOPICS),
            "content_id": strings(content, CONTENT_IDS),
        }
    )


def stage_history_table(
    leads: LeadDraws,
    visit: np.ndarray,
    mql: MqlDraws,
    progression: Progression,
    end_s: int,
    ids: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """Every lead's visit and lead entry, then each later stage entered before ``end``."""
    lead_ix = np.arange(len(leads.created))
    prog = progression
    stage_parts = [(lead_ix, visit, 0), (lead_ix, leads.created, 1)]
    for mask, at, code in ((mql.recorded, mql.at, 2), (prog.sal, prog.sal_at, 3),
                           (prog.opp, prog.opp_at, 4), (prog.cust, prog.cust_at, 5)):  # fmt: skip
        rec = mask & (at <= end_s)
        stage_parts.append((np.flatnonzero(rec), at[rec], code))
    sh_lead = np.concatenate([p[0] for p in stage_parts])
    sh_at = np.concatenate([p[1] for p in stage_parts])
    sh_stage = np.concatenate([np.full(len(p[0]), p[2]) for p in stage_parts])
    order = np.lexsort((sh_stage, sh_lead))
    return pd.DataFrame(
        {
            "lead_id": strings(sh_lead[order], ids),
            "stage": strings(sh_stage[order], STAGES),
            "entered_at": timestamps(start, sh_at[order]),
        }
    )


def _holes(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """The values with about ``share`` of them missing, as in any real export."""
    out = values.astype(object) if values.dtype.kind in "OU" else values.astype(float)
    gone = rng.random(len(values)) < share
    out[gone] = None if out.dtype == object else np.nan
    return out


def accounts_table(
    rng: np.random.Generator, accounts: AccountDraws, acc_ids: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": acc_ids,
            "industry": _holes(rng, np.array(INDUSTRIES, dtype=object)[accounts.industry], 0.03),
            "employees": _holes(rng, accounts.employees, 0.04),
            "annual_revenue": _holes(rng, accounts.revenue, 0.07),
            "country": _holes(rng, np.array(COUNTRIES, dtype=object)[accounts.country], 0.02),
        }
    )


def leads_table(
    rng: np.random.Generator,
    leads: LeadDraws,
    ids: np.ndarray,
    acc_ids: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    email_kind = np.where(leads.free_mail, "free", "business").astype(object)
    return pd.DataFrame(
        {
            "lead_id": ids,
            "account_id": _holes(rng, acc_ids[leads.account], 0.03),
            "created_at": timestamps(start, leads.created),
            "job_title": _holes(rng, leads.title.to_numpy(dtype=object), 0.04),
            "source": _holes(rng, leads.source_name.astype(object), 0.03),
            "email_domain_kind": _holes(rng, email_kind, 0.01),
            "do_not_email": leads.do_not_email,
        }
    )


def lifecycle_at_end(events: RecordedEvents, progression: Progression, end_s: int) -> np.ndarray:
    """Lifecycle stage codes at ``end``, derived from the recorded events as a CRM would:
    a purchase less than 90 days ago -> new_customer; else a referral after it ->
    ambassador; else product/community activity after it -> active_customer; else
    new_customer (bought, never activated). Nobody who has not bought: prospect."""
    n = len(progression.cust)
    lead_a, at_a, et_a, tp_a = events.lead, events.at, events.etype, events.topic
    cust_at = progression.cust_at
    is_cust = progression.cust & (cust_at <= end_s)
    after = is_cust[lead_a] & (at_a > cust_at[lead_a])
    referred = np.bincount(lead_a[after & (et_a == EVENT_CODE["referral"])], minlength=n) > 0
    activity = (
        after
        & np.isin(et_a, [EVENT_CODE["page_view"], EVENT_CODE["blog_read"]])
        & np.isin(tp_a, [TOPIC_CODE["product_docs"], TOPIC_CODE["community"]])
    )
    active = np.bincount(lead_a[activity], minlength=n) > 0
    recent = cust_at > end_s - NEW_CUSTOMER_DAYS * DAY
    return np.select([~is_cust, recent, referred, active], [0, 1, 3, 2], default=1)


def truth_table(
    leads: LeadDraws,
    mql: MqlDraws,
    interest: np.ndarray,
    p_sal: np.ndarray,
    lifecycle: np.ndarray,
    ids: np.ndarray,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """One row per lead: persona, fit, interest, p_mql, p_sal (NaN without a recorded MQL),
    mql_at (NaT without one) and lifecycle_stage at ``end``."""
    return pd.DataFrame(
        {
            "lead_id": ids.astype(str),
            "persona": pd.Categorical.from_codes(leads.persona, categories=SIMULATED_PERSONAS),
            "fit": leads.fit,
            "interest": sigmoid(interest),
            "p_mql": mql.p_mql,
            "p_sal": np.where(mql.recorded, p_sal, np.nan),
            "mql_at": pd.Series(timestamps(start, mql.at)).where(mql.recorded),
            "lifecycle_stage": pd.Categorical.from_codes(lifecycle, categories=LIFECYCLE_STAGES),
        }
    )
