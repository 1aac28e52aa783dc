"""Lifecycle stage of a buyer (prospect, new customer, active customer, ambassador), the
current funnel stage, and the segment = persona x lifecycle stage.

Rules for ``lifecycle_stages`` (DOMAIN.md: prospect -> new customer -> active customer ->
ambassador), all point-in-time: only stage entries and events strictly before ``as_of``
count. The purchase is the first entry into the funnel stage ``customer``.

1. no purchase before ``as_of``                                   -> ``prospect``
2. purchase less than ``new_customer_days`` (90) before ``as_of``     -> ``new_customer``
   (testing, implementing, learning the product: too early to call it anything else)
3. a ``referral`` event after the purchase                        -> ``ambassador``
4. product or community activity after the purchase               -> ``active_customer``
   (activity = an event of ``activity_types`` (page_view, blog_read) whose topic is one of
   ``activity_topics`` (product_docs, community): reading the documentation, taking part
   in the community)
5. otherwise (bought long ago, never seen using the product)       -> ``new_customer``

The order of 2 and 3 is the simulator's (``crm.simulate``) and therefore the
project's definition: a referral in the first 90 days still counts as onboarding; the
ambassador stage starts once the customer is past it. Rule 5 keeps a customer who never
activated in the onboarding segment, where the content map sends onboarding material.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from crm.vocabulary import LIFECYCLE_STAGES, STAGE_RANK, STAGES
from features.encoding import SMALL, lead_index, positions
from features.pointintime import NAT_NS, AsOf, Moment, rows_before

ACTIVITY_TYPES: tuple[str, ...] = ("page_view", "blog_read")
ACTIVITY_TOPICS: tuple[str, ...] = ("product_docs", "community")

_STAGE_INDEX = pd.Index(STAGES)
_STAGE_LOOKUP = {s: i for i, s in enumerate(STAGES)}


def _stage_entries(
    stage_history: pd.DataFrame, as_of: AsOf
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lead position, stage rank, entered_at as int64 ns) of entries strictly before as_of."""
    rows, pos, entered, _ = rows_before(stage_history, as_of, "entered_at")
    rank = positions(stage_history["stage"], _STAGE_INDEX, _STAGE_LOOKUP)[rows]
    return pos, rank, entered


def _first_purchase(stage_history: pd.DataFrame, as_of: AsOf) -> np.ndarray:
    """int64 ns per lead: first ``customer`` entry before as_of, NAT_NS if none."""
    pos, rank, entered = _stage_entries(stage_history, as_of)
    no_time = np.iinfo(np.int64).max
    first = np.full(len(as_of.leads), no_time, dtype=np.int64)
    is_cust = rank == STAGE_RANK["customer"]
    np.minimum.at(first, pos[is_cust], entered[is_cust])
    first[first == no_time] = NAT_NS
    return first


def purchase_times(
    leads: pd.DataFrame | pd.Index, stage_history: pd.DataFrame, as_of: Moment | AsOf
) -> pd.Series:
    """First entry into ``customer`` strictly before ``as_of`` per lead (NaT if none)."""
    ids = lead_index(leads)
    out = _first_purchase(stage_history, AsOf.resolve(as_of, ids)).view("datetime64[ns]")
    return pd.Series(out, index=ids, name="purchased_at")


def _after_purchase(
    events: pd.DataFrame,
    as_of: AsOf,
    purchased: np.ndarray,
    referral_types: tuple[str, ...],
    activity_types: tuple[str, ...],
    activity_topics: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """(referred, active) per lead: a referral, or product or community activity, after the
    purchase and before as_of."""
    n = len(as_of.leads)
    referred = np.zeros(n, dtype=bool)
    active = np.zeros(n, dtype=bool)
    if not len(events):
        return referred, active
    is_cust = purchased != NAT_NS
    rows, pos, at, _ = rows_before(events, as_of)
    after = is_cust[pos]
    after[after] = at[after] > purchased[pos[after]]
    rows, pos = rows[after], pos[after]
    sub = events.iloc[rows]
    etype = sub["type"].astype(object).to_numpy()
    ref = np.isin(etype, list(referral_types))
    referred[pos[ref]] = True
    if "topic" in sub.columns:
        topic = sub["topic"].astype(object).to_numpy()
        act = np.isin(etype, list(activity_types)) & np.isin(topic, list(activity_topics))
        active[pos[act]] = True
    return referred, active


def lifecycle_stages(
    leads: pd.DataFrame,
    stage_history: pd.DataFrame,
    events: pd.DataFrame,
    as_of: Moment | AsOf,
    new_customer_days: float = 90.0,
    referral_types: tuple[str, ...] = ("referral",),
    activity_types: tuple[str, ...] = ACTIVITY_TYPES,
    activity_topics: tuple[str, ...] = ACTIVITY_TOPICS,
) -> pd.Series:
    """Lifecycle stage per lead (index lead_id, leads order); rules in the module docstring."""
    ids = lead_index(leads)
    snapshot = AsOf.resolve(as_of, ids)
    purchased = _first_purchase(stage_history, snapshot)
    is_cust = purchased != NAT_NS
    code = np.zeros(len(ids), dtype=np.int8)  # prospect
    if is_cust.any():
        since = snapshot.ns - np.where(is_cust, purchased, snapshot.ns)
        recent = is_cust & AsOf.in_window(since, new_customer_days, include_start=False)
        referred, active = _after_purchase(
            events, snapshot, purchased, referral_types, activity_types, activity_topics
        )
        code = np.select([~is_cust, recent, referred, active], [0, 1, 3, 2], default=1)
    names = np.array(LIFECYCLE_STAGES, dtype=object)[code]
    return pd.Series(names, index=ids, name="lifecycle_stage")


def funnel_stages(
    leads: pd.DataFrame, stage_history: pd.DataFrame, as_of: Moment | AsOf
) -> pd.Series:
    """The furthest funnel stage (visit .. customer) entered strictly before ``as_of``;
    ``lead`` for a lead with no recorded stage yet (it is in the leads table)."""
    ids = lead_index(leads)
    pos, rank, _ = _stage_entries(stage_history, AsOf.resolve(as_of, ids))
    best = np.full(len(ids), STAGE_RANK["lead"], dtype=np.int64)
    ok = rank >= 0
    np.maximum.at(best, pos[ok], rank[ok])
    return pd.Series(np.array(STAGES, dtype=object)[best], index=ids, name="funnel_stage")


def segments(personas: pd.Series | pd.DataFrame, stages: pd.Series) -> pd.Series:
    """``persona/lifecycle_stage`` per lead, e.g. ``evaluator/prospect`` (aligned on lead_id).

    ``personas`` may be the frame from ``assign_personas`` (its ``persona`` column)."""
    if isinstance(personas, pd.DataFrame):
        personas = personas["persona"]
    stages = stages.reindex(personas.index)
    if stages.isna().any():
        missing = personas.index[stages.isna().to_numpy()][:3].tolist()
        raise ValueError(f"segments: no lifecycle stage for lead(s) {missing}")
    if len(personas) <= SMALL:  # Arrow string kernels cost more than a loop on a few rows
        values = [f"{p}/{s}" for p, s in zip(personas, stages, strict=True)]
        return pd.Series(values, index=personas.index, name="segment", dtype="str")
    out = personas.astype("str") + "/" + stages.astype("str")
    return out.rename("segment")
