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

from crm.vocabulary import STAGE_RANK, STAGES
from features.personas import (
    SMALL,
    AsOf,
    events_before,
    lead_index,
    positions,
    resolve_as_of,
)

LIFECYCLE_STAGES: tuple[str, ...] = ("prospect", "new_customer", "active_customer", "ambassador")
ACTIVITY_TYPES: tuple[str, ...] = ("page_view", "blog_read")
ACTIVITY_TOPICS: tuple[str, ...] = ("product_docs", "community")

_NO_TIME = np.iinfo(np.int64).max
_STAGE_INDEX = pd.Index(STAGES)
_STAGE_LOOKUP = {s: i for i, s in enumerate(STAGES)}


def _stage_entries(
    stage_history: pd.DataFrame, ids: pd.Index, as_of: np.datetime64 | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lead position, stage rank, entered_at as int64 ns) of entries strictly before as_of."""
    pos = positions(stage_history["lead_id"], ids)
    entered = stage_history["entered_at"].to_numpy(dtype="datetime64[ns]")
    known = pos >= 0
    cut = as_of[np.where(known, pos, 0)] if isinstance(as_of, np.ndarray) else as_of
    keep = known & (entered < cut)
    rank = positions(stage_history["stage"], _STAGE_INDEX, _STAGE_LOOKUP)
    return pos[keep], rank[keep], entered[keep].view(np.int64)


def _first_purchase(
    stage_history: pd.DataFrame, ids: pd.Index, cut: np.datetime64 | np.ndarray
) -> np.ndarray:
    """datetime64[ns] per lead: first ``customer`` entry before the cut, NaT if none."""
    pos, rank, entered = _stage_entries(stage_history, ids, cut)
    first = np.full(len(ids), _NO_TIME, dtype=np.int64)
    is_cust = rank == STAGE_RANK["customer"]
    np.minimum.at(first, pos[is_cust], entered[is_cust])
    out = first.view("datetime64[ns]").copy()
    out[first == _NO_TIME] = np.datetime64("NaT")
    return out


def purchase_times(
    leads: pd.DataFrame | pd.Index, stage_history: pd.DataFrame, as_of: AsOf
) -> pd.Series:
    """First entry into ``customer`` strictly before ``as_of`` per lead (NaT if none)."""
    ids = lead_index(leads)
    out = _first_purchase(stage_history, ids, resolve_as_of(as_of, ids))
    return pd.Series(out, index=ids, name="purchased_at")


def lifecycle_stages(
    leads: pd.DataFrame,
    stage_history: pd.DataFrame,
    events: pd.DataFrame,
    as_of: AsOf,
    new_customer_days: float = 90.0,
    referral_types: tuple[str, ...] = ("referral",),
    activity_types: tuple[str, ...] = ACTIVITY_TYPES,
    activity_topics: tuple[str, ...] = ACTIVITY_TOPICS,
) -> pd.Series:
    """Lifecycle stage per lead (index lead_id, leads order); rules in the module docstring."""
    ids = lead_index(leads)
    n = len(ids)
    cut = resolve_as_of(as_of, ids)
    purchased = _first_purchase(stage_history, ids, cut)
    is_cust = ~np.isnat(purchased)
    code = np.zeros(n, dtype=np.int8)  # prospect
    if is_cust.any():
        cut_arr = cut if isinstance(cut, np.ndarray) else np.full(n, cut)
        window = np.timedelta64(int(round(new_customer_days * 86400)), "s")
        recent = is_cust & (cut_arr - purchased < window)
        referred = np.zeros(n, dtype=bool)
        active = np.zeros(n, dtype=bool)
        if len(events):
            rows, pos, at = events_before(events, ids, cut)
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
        code = np.select([~is_cust, recent, referred, active], [0, 1, 3, 2], default=1)
    names = np.array(LIFECYCLE_STAGES, dtype=object)[code]
    return pd.Series(names, index=ids, name="lifecycle_stage")


def funnel_stages(leads: pd.DataFrame, stage_history: pd.DataFrame, as_of: AsOf) -> pd.Series:
    """The furthest funnel stage (visit .. customer) entered strictly before ``as_of``;
    ``lead`` for a lead with no recorded stage yet (it is in the leads table)."""
    ids = lead_index(leads)
    cut = resolve_as_of(as_of, ids)
    pos, rank, _ = _stage_entries(stage_history, ids, cut)
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
