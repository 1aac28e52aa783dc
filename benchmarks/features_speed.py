"""How fast is ``compute_features``? Batch throughput and one-lead latency on synthetic data.

Run: ``.venv/bin/python benchmarks/features_speed.py [--leads 200000 --events 10000000]``.
Targets (STACK-NOTES): >= 2M events/s in batch, <= ~1-2 ms for one lead with 30 events.
Wall time and this process's CPU time are both printed: on a shared machine the wall time
includes waiting for a core, the CPU time does not.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from crm.vocabulary import EVENT_TYPES
from features.build import FEATURE_COLUMNS, compute_features

AS_OF = pd.Timestamp("2025-01-01")
TITLES = ["CTO", "Sr. Software Engineer", "VP Sales", "Leiter IT", "Mktg Manager", None]
INDUSTRIES = ["software", "manufacturing", "Banking", "retail", None]
COUNTRIES = ["DE", "AT", "US", "France", "BR", None]
SOURCES = ["organic_search", "paid_search", "webinar", "Direct Traffic", None]


def synthetic(
    n_leads: int, n_events: int, seed: int = 0, categorical: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leads, accounts and events shaped like the contract; ids categorical or plain str."""
    rng = np.random.default_rng(seed)
    n_accounts = max(1, n_leads // 4)
    lead_ids = np.char.add("L", np.arange(n_leads).astype(str))
    account_ids = np.char.add("A", np.arange(n_accounts).astype(str))
    day = np.timedelta64(1, "D").astype("timedelta64[ns]")
    leads = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "account_id": account_ids[rng.integers(0, n_accounts, n_leads)],
            "created_at": AS_OF.to_datetime64() - rng.integers(0, 720, n_leads) * day,
            "job_title": pd.Series(TITLES, dtype=object).iloc[rng.integers(0, 6, n_leads)].values,
            "source": pd.Series(SOURCES, dtype=object).iloc[rng.integers(0, 5, n_leads)].values,
            "email_domain_kind": np.where(rng.random(n_leads) < 0.3, "free", "business"),
            "do_not_email": rng.random(n_leads) < 0.05,
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": account_ids,
            "industry": pd.Series(INDUSTRIES, dtype=object)
            .iloc[rng.integers(0, 5, n_accounts)]
            .values,
            "employees": np.where(
                rng.random(n_accounts) < 0.1, np.nan, rng.lognormal(4, 2, n_accounts)
            ),
            "annual_revenue": rng.lognormal(15, 2, n_accounts),
            "country": pd.Series(COUNTRIES, dtype=object)
            .iloc[rng.integers(0, 6, n_accounts)]
            .values,
        }
    )
    ev_lead = rng.integers(0, n_leads, n_events)
    ev_type = rng.integers(0, len(EVENT_TYPES), n_events)
    # events spread over a year around as_of: about 1/4 are after as_of and must be ignored
    at = AS_OF.to_datetime64() - (rng.random(n_events) * 365 * 86400e9).astype("timedelta64[ns]")
    at = at + np.timedelta64(90, "D")
    topics = np.array([f"topic_{i}" for i in range(40)])
    topic_code = np.where(rng.random(n_events) < 0.3, -1, rng.integers(0, 40, n_events))
    if categorical:
        lead_col = pd.Categorical.from_codes(ev_lead, categories=lead_ids)
        type_col = pd.Categorical.from_codes(ev_type, categories=list(EVENT_TYPES))
        topic_col = pd.Categorical.from_codes(topic_code, categories=topics)
    else:
        lead_col = pd.Series(lead_ids[ev_lead], dtype="str")
        type_col = pd.Series(np.array(EVENT_TYPES)[ev_type], dtype="str")
        topic_col = pd.Series(topics[topic_code], dtype="str").where(topic_code >= 0)
    events = pd.DataFrame({"lead_id": lead_col, "at": at, "type": type_col, "topic": topic_col})
    return leads, accounts, events


def batch(
    n_leads: int, n_events: int, categorical: bool, per_lead_as_of: bool
) -> tuple[float, float]:
    """(wall, cpu) seconds of one compute_features call over the whole batch."""
    leads, accounts, events = synthetic(n_leads, n_events, categorical=categorical)
    as_of: pd.Timestamp | pd.Series = AS_OF
    if per_lead_as_of:
        as_of = pd.Series(
            leads["created_at"].to_numpy() + np.timedelta64(30, "D"), index=leads["lead_id"]
        )
    start, cpu = time.perf_counter(), time.process_time()
    out = compute_features(leads, accounts, events, as_of)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert list(out.columns) == FEATURE_COLUMNS and len(out) == n_leads
    return wall, cpu


def one_lead(n_events: int = 30, repeats: int = 2000) -> dict[str, float]:
    """Wall median/p99 and CPU median ms for one lead, frames built from Python values."""
    rng = np.random.default_rng(1)
    leads = pd.DataFrame(
        {
            "lead_id": ["L1"],
            "account_id": ["A1"],
            "created_at": pd.to_datetime(["2024-06-01"]).astype("datetime64[ns]"),
            "job_title": ["Sr. Software Engineer"],
            "source": ["webinar"],
            "email_domain_kind": ["business"],
            "do_not_email": [False],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1"],
            "industry": ["software"],
            "employees": [250.0],
            "annual_revenue": [5e7],
            "country": ["DE"],
        }
    )
    # shaped like serving.schemas.leads_to_tables builds them: categorical type, ns times
    events = pd.DataFrame(
        {
            "lead_id": ["L1"] * n_events,
            "at": (AS_OF - pd.to_timedelta(rng.integers(1, 200, n_events), unit="D")).astype(
                "datetime64[ns]"
            ),
            "type": pd.Categorical(
                [EVENT_TYPES[i] for i in rng.integers(0, len(EVENT_TYPES), n_events)],
                categories=list(EVENT_TYPES),
            ),
            "topic": [f"topic_{i}" for i in rng.integers(0, 5, n_events)],
        }
    )
    for _ in range(50):  # warm-up: regex caches, pandas code paths
        compute_features(leads, accounts, events, AS_OF)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        compute_features(leads, accounts, events, AS_OF)
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    wall.sort()
    # process_time ticks coarsely on some systems: the CPU figure is the mean over all calls
    return {
        "median": statistics.median(wall),
        "p99": wall[int(0.99 * len(wall))],
        "cpu": statistics.fmean(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    args = parser.parse_args()

    ms = one_lead()
    print(
        f"one lead, 30 events (frames shaped as the service builds them): "
        f"wall median {ms['median']:.2f} ms, "
        f"p99 {ms['p99']:.2f} ms; CPU {ms['cpu']:.2f} ms per call"
    )
    for categorical, per_lead, label in (
        (True, False, "categorical ids, one as_of"),
        (True, True, "categorical ids, per-lead as_of"),
        (False, False, "str ids, one as_of"),
    ):
        wall, cpu = batch(args.leads, args.events, categorical, per_lead)
        print(
            f"batch {args.leads:,} leads, {args.events:,} events ({label}): "
            f"wall {wall:.2f} s = {args.events / wall / 1e6:.1f}M events/s; "
            f"CPU {cpu:.2f} s = {args.events / cpu / 1e6:.1f}M events/s"
        )


if __name__ == "__main__":
    main()
