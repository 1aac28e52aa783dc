"""Funnel conversion as tables: who entered which stage when, and how many moved on.

Everything is point-in-time: only stage entries strictly before ``as_of`` count.

Conversion from stage a to stage b: among leads with an entry into a, the share with an entry
into b *or any later stage* at or after their first entry into a (a CRM that skips SAL still
moved the lead past it). An entry into b before the entry into a does not count.

Conversion by month: cohort = month of the *first* entry into the earlier stage; a month is
right-censored while its latest entrants have had less time than the 90th percentile
(``CENSOR_QUANTILE``) of the time that converted leads needed for that step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crm.vocabulary import STAGES

#: how the page names each funnel stage
STAGE_LABELS: dict[str, str] = {
    "visit": "visit",
    "lead": "lead",
    "mql": "MQL",
    "sal": "SAL",
    "opportunity": "opportunity",
    "customer": "customer",
}
TRANSITIONS: tuple[tuple[str, str], ...] = tuple(zip(STAGES[:-1], STAGES[1:], strict=True))
CENSOR_QUANTILE = 0.9


def transition_label(a: str, b: str) -> str:
    return f"{STAGE_LABELS.get(a, a)} → {STAGE_LABELS.get(b, b)}"


TRANSITION_LABELS: tuple[str, ...] = tuple(transition_label(a, b) for a, b in TRANSITIONS)


def stage_entries(stage_history: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """First entry per lead and stage strictly before ``as_of`` (all entries if None):
    a frame indexed by lead_id with one datetime column per stage of STAGES (NaT = never)."""
    at = pd.to_datetime(stage_history["entered_at"])
    keep = at.notna() & stage_history["stage"].notna()
    if as_of is not None:
        keep &= at < pd.Timestamp(as_of)
    sub = pd.DataFrame(
        {
            "lead_id": stage_history.loc[keep, "lead_id"].astype(str).to_numpy(),
            "stage": stage_history.loc[keep, "stage"].astype(str).to_numpy(),
            "entered_at": at[keep].to_numpy(dtype="datetime64[ns]"),
        }
    )
    sub = sub[sub["stage"].isin(STAGES)]
    first = sub.groupby(["lead_id", "stage"], sort=True)["entered_at"].min()
    wide = first.unstack("stage") if len(first) else pd.DataFrame(index=pd.Index([], dtype=str))
    wide = wide.reindex(columns=list(STAGES)).astype("datetime64[ns]")
    wide.index.name = "lead_id"
    wide.columns.name = "stage"
    return wide


def funnel_counts(stage_history: pd.DataFrame, as_of: Any = None) -> pd.Series:
    """Leads with at least one recorded entry into each stage (before ``as_of``)."""
    wide = stage_entries(stage_history, as_of)
    return wide.notna().sum().astype(int).rename("leads")


def lead_transitions(stage_history: pd.DataFrame, as_of: Any = None) -> pd.DataFrame:
    """One row per lead and stage-to-stage step it could take (it entered the earlier stage):
    lead_id, from_stage, to_stage, transition, entered_at (first entry into from_stage),
    converted_at (first entry into to_stage or a later stage at or after entered_at; NaT if
    none before ``as_of``), converted, days (to conversion)."""
    wide = stage_entries(stage_history, as_of)
    nat = np.iinfo(np.int64).min
    never = np.iinfo(np.int64).max
    t = wide.to_numpy(dtype="datetime64[ns]").view(np.int64)
    frames = []
    for i, (a, b) in enumerate(TRANSITIONS):
        start = t[:, i]
        later = t[:, i + 1 :]
        ok = (later != nat) & (later >= start[:, None])
        first = np.where(ok, later, never).min(axis=1)
        rows = np.flatnonzero(start != nat)
        conv = np.where(first[rows] != never, first[rows], nat)
        frames.append(
            pd.DataFrame(
                {
                    "lead_id": wide.index[rows].to_numpy(dtype=object),
                    "from_stage": a,
                    "to_stage": b,
                    "transition": TRANSITION_LABELS[i],
                    "entered_at": start[rows].view("datetime64[ns]"),
                    "converted_at": conv.view("datetime64[ns]"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["transition"] = pd.Categorical(out["transition"], categories=list(TRANSITION_LABELS))
    out["converted"] = out["converted_at"].notna()
    out["days"] = (out["converted_at"] - out["entered_at"]).dt.total_seconds() / 86400.0
    return out


def _rates(t: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = t.groupby(keys, observed=True, sort=True)
    out = g.agg(entered=("converted", "size"), converted=("converted", "sum"))
    out["converted"] = out["converted"].astype(int)
    out["rate"] = out["converted"] / out["entered"]
    days = t[t["converted"]].groupby(keys, observed=True)["days"].median()
    out["median_days"] = days.reindex(out.index)
    return out.reset_index()


def conversion_rates(transitions: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """entered, converted, rate and median days to convert per transition; with ``by`` (a
    Series lead_id -> group label) per group and transition (leads without a label are
    left out). Rows in funnel order."""
    if by is None:
        return _rates(transitions, ["transition"])
    labels = pd.Series(by.to_numpy(), index=by.index.astype(str))
    group = transitions["lead_id"].astype(str).map(labels)
    t = transitions.assign(group=group.to_numpy()).dropna(subset=["group"])
    return _rates(t, ["group", "transition"])


def monthly_conversion(
    transitions: pd.DataFrame, as_of: Any, quantile: float = CENSOR_QUANTILE
) -> pd.DataFrame:
    """Conversion per transition and cohort month (month of the first entry into the earlier
    stage). ``lag_days`` is the ``quantile`` of days-to-convert of that transition; a month
    is ``censored`` when the time from its end to ``as_of`` is shorter than that lag (its
    latest entrants may still convert), and always when it ends after ``as_of``."""
    t = transitions.assign(month=transitions["entered_at"].dt.to_period("M"))
    out = _rates(t, ["transition", "month"])
    conv = t[t["converted"]]
    lag = conv.groupby("transition", observed=True)["days"].quantile(quantile)
    out["lag_days"] = out["transition"].map(lag).astype(float).fillna(0.0)
    month_end = out["month"].dt.end_time
    waited = (pd.Timestamp(as_of) - month_end).dt.total_seconds() / 86400.0
    out["censored"] = waited < out["lag_days"]
    return out
