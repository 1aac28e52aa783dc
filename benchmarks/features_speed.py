"""How fast is ``compute_features``? Batch throughput and one-lead latency on synthetic data,
side by side with plain pandas group-bys computing the same engagement numbers.

Run: ``.venv/bin/python benchmarks/features_speed.py [--leads 200000 --events 10000000]
[--json figures.json] [--profile] [--data EXPORT_FOLDER]``.
Targets: >= 5M events/s in batch with dictionary-encoded (categorical) ids (issue 16),
<= ~1-2 ms for one lead with 30 events.
Wall time and this process's CPU time are both printed: on a shared machine the wall time
includes waiting for a core, the CPU time does not.

The comparator (``pandas_groupby``): the window counts per event type, the decayed sums and
the days since the last event per event group, as one would write them with pandas
(``groupby(...).size()/.sum()/.min()`` and ``unstack``), on the same events; checked equal
to ``compute_features``' columns before it is timed. ``compute_features`` also computes the
firmographics and the distinct topics, so the ratio flatters the comparator slightly.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import pstats
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crm.vocabulary import EVENT_TYPES
from features.build import FEATURE_COLUMNS, compute_features
from features.feature_config import EVENT_GROUP_NAMES, EVENT_GROUPS, FeatureConfig

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


def pandas_groupby(
    leads: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, config: FeatureConfig
) -> pd.DataFrame:
    """The comparator: window counts, decayed sums and recency with plain pandas group-bys
    (one as_of; the columns named as compute_features names them)."""
    ids = pd.Index(leads["lead_id"].astype(str))
    age_ns = as_of.value - events["at"].to_numpy().view(np.int64)
    unborn = ids[(leads["created_at"] >= as_of).to_numpy()]  # no engagement yet
    keep = (age_ns > 0) & ~events["lead_id"].isin(unborn).to_numpy()
    group_of = {t: g for g, types in EVENT_GROUPS.items() for t in types}
    ev = pd.DataFrame(
        {
            "lead_id": events["lead_id"][keep],
            "type": events["type"][keep],
            "age_ns": age_ns[keep],
        }
    )
    ev["group"] = ev["type"].map(group_of)
    ev["age_days"] = ev["age_ns"] / 86_400e9
    parts = []
    for w in config.windows_days:
        counts = (
            ev[ev["age_ns"] <= w * 86_400 * 10**9]
            .groupby(["lead_id", "type"], observed=True)
            .size()
            .unstack(fill_value=0)
        )
        counts.columns = [f"n_{t}_{w}d" for t in counts.columns]
        parts.append(counts)
    rate = {g: -math.log(2.0) / config.half_lives_days[g] for g in EVENT_GROUP_NAMES}
    ev["weight"] = np.exp(ev["group"].map(rate).astype(float) * ev["age_days"])
    by_group = ev.groupby(["lead_id", "group"], observed=True)
    decay = by_group["weight"].sum().unstack()
    decay.columns = [f"decay_{g}" for g in decay.columns]
    recency = by_group["age_days"].min().unstack()
    recency.columns = [f"days_since_last_{g}" for g in recency.columns]
    last = ev.groupby("lead_id", observed=True)["age_days"].min().rename("days_since_last_event")
    out = pd.concat([*parts, decay, recency, last], axis=1)
    out.index = out.index.astype(str)
    out = out.reindex(ids)
    counted = [c for c in out.columns if c.startswith(("n_", "decay_"))]
    out[counted] = out[counted].fillna(0)
    return out


def check_same(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """The comparator computes the same numbers, or the comparison means nothing."""
    for c in theirs.columns:
        a, b = ours[c].to_numpy(dtype=float), theirs[c].to_numpy(dtype=float)
        if not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
            raise SystemExit(f"pandas comparator differs from compute_features in {c}")


def timed(fn: object) -> tuple[object, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()  # type: ignore[operator]
    return out, time.perf_counter() - start, time.process_time() - cpu


def side_by_side(n_leads: int, n_events: int, categorical: bool) -> dict[str, float]:
    """compute_features and the pandas comparator on the same synthetic events."""
    leads, accounts, events = synthetic(n_leads, n_events, categorical=categorical)
    ours, wall, cpu = timed(lambda: compute_features(leads, accounts, events, AS_OF))
    theirs, p_wall, p_cpu = timed(lambda: pandas_groupby(leads, events, AS_OF, FeatureConfig()))
    check_same(ours, theirs)  # type: ignore[arg-type]
    return {
        "events": n_events,
        "leads": n_leads,
        "wall_s": wall,
        "cpu_s": cpu,
        "events_per_s": n_events / wall,
        "events_per_cpu_s": n_events / cpu,
        "pandas_wall_s": p_wall,
        "pandas_cpu_s": p_cpu,
        "pandas_events_per_s": n_events / p_wall,
        "pandas_events_per_cpu_s": n_events / p_cpu,
    }


def on_export(folder: Path) -> dict[str, dict[str, float]]:
    """compute_features on a simulated export as ``read_tables`` returns it (``str`` ids and
    topics) and with ``lead_id`` and ``topic`` dictionary-encoded (the conversion untimed);
    the better of two calls each."""
    from crm.contract import data_end, read_tables

    d = read_tables(folder)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    n = len(d.events)
    coded = d.events.assign(
        lead_id=d.events["lead_id"].astype("category"), topic=d.events["topic"].astype("category")
    )
    out = {}
    for key, events in (("export_str", d.events), ("export_categorical", coded)):
        runs = [  # the better of two: the first call also pays one-off set-up
            timed(lambda ev=events: compute_features(d.leads, d.accounts, ev, moment))[1:]
            for _ in range(2)
        ]
        wall, cpu = min(runs)
        out[key] = {
            "events": n,
            "leads": len(d.leads),
            "wall_s": wall,
            "cpu_s": cpu,
            "events_per_s": n / wall,
            "events_per_cpu_s": n / cpu,
        }
    return out


def profile(n_leads: int, n_events: int, top: int = 25) -> str:
    """cProfile of one compute_features call with categorical ids: where the time goes."""
    leads, accounts, events = synthetic(n_leads, n_events, categorical=True)
    prof = cProfile.Profile()
    prof.enable()
    compute_features(leads, accounts, events, AS_OF)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--profile", action="store_true", help="print a cProfile by tottime")
    parser.add_argument("--skip-one-lead", action="store_true")
    parser.add_argument(
        "--data", type=Path, default=None, help="also time a simulated export (folder)"
    )
    args = parser.parse_args()

    figures: dict[str, object] = {}
    if not args.skip_one_lead:
        ms = one_lead()
        figures["one_lead_ms"] = ms
        print(
            f"one lead, 30 events (frames shaped as the service builds them): "
            f"wall median {ms['median']:.2f} ms, "
            f"p99 {ms['p99']:.2f} ms; CPU {ms['cpu']:.2f} ms per call"
        )
    for categorical, label in ((True, "categorical ids"), (False, "str ids")):
        r = side_by_side(args.leads, args.events, categorical)
        figures["categorical" if categorical else "str"] = r
        print(
            f"batch {args.leads:,} leads, {args.events:,} events ({label}, one as_of): "
            f"compute_features {r['events_per_s'] / 1e6:.2f}M events/s wall, "
            f"{r['events_per_cpu_s'] / 1e6:.2f}M/CPU s; pandas group-bys "
            f"{r['pandas_events_per_s'] / 1e6:.2f}M events/s wall, "
            f"{r['pandas_events_per_cpu_s'] / 1e6:.2f}M/CPU s; ratio (CPU) "
            f"{r['pandas_cpu_s'] / r['cpu_s']:.1f}x"
        )
    wall, cpu = batch(args.leads, args.events, True, True)
    figures["categorical_per_lead_as_of"] = {"wall_s": wall, "cpu_s": cpu}
    print(
        f"batch {args.leads:,} leads, {args.events:,} events (categorical ids, per-lead as_of): "
        f"wall {wall:.2f} s = {args.events / wall / 1e6:.2f}M events/s; "
        f"CPU {cpu:.2f} s = {args.events / cpu / 1e6:.2f}M events/s"
    )
    if args.data:
        for key, r in on_export(args.data).items():
            figures[key] = r
            print(
                f"export {args.data} ({r['leads']:,} leads, {r['events']:,} events, "
                f"{key.split('_')[1]} lead_id/topic): {r['events_per_s'] / 1e6:.2f}M events/s "
                f"wall, {r['events_per_cpu_s'] / 1e6:.2f}M/CPU s"
            )
    if args.profile:
        print(profile(args.leads, args.events))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
