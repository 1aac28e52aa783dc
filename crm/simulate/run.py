"""``simulate``: the simulator's stages in the order they draw from one random generator
(the order is part of the output: the same seed gives the same export, bit for bit), run
once per chunk of leads (``simulate_chunks``; one chunk up to ``CHUNK_LEADS`` leads), and
``write_simulation``, which writes the result chunk by chunk."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from crm.contract import TABLES, CrmData, validate
from crm.simulate.draws import EventLog
from crm.simulate.engagement import draw_engagement, first_touches, mail_stops, main_stream
from crm.simulate.firmographics import draw_accounts
from crm.simulate.funnel import after_sal_events, draw_mql, draw_progression, sal_probability
from crm.simulate.leads import draw_leads
from crm.simulate.tables import (
    account_ids,
    accounts_table,
    events_table,
    lead_ids,
    leads_table,
    lifecycle_at_end,
    recorded_events,
    stage_history_table,
    truth_table,
)
from crm.simulate.world import TRUTH_FILE

# Leads drawn in one pass. A run of at most this many leads draws exactly as the simulator
# always has (one generator seeded with ``seed``), so every test, the demo and the golden
# answers see the same tables; a bigger run is drawn and written in chunks of about this
# size (about 1.1 GiB peak whatever the number of chunks), each chunk with its own
# generator derived from (seed, chunk).
CHUNK_LEADS = 100_000


def chunk_bounds(n_leads: int, chunk_leads: int = CHUNK_LEADS) -> list[tuple[int, int]]:
    """(first lead, end) of each chunk: as few chunks as fit, sizes differing by at most 1."""
    if n_leads < 1:
        raise ValueError("n_leads must be at least 1")
    if chunk_leads < 1:
        raise ValueError("chunk_leads must be at least 1")
    n_chunks = -(-n_leads // chunk_leads)
    edges = [n_leads * i // n_chunks for i in range(n_chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def simulate(
    n_leads: int = 20_000,
    seed: int = 7,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    chunk_leads: int = CHUNK_LEADS,
) -> tuple[CrmData, pd.DataFrame]:
    """Simulate a CRM export; returns the validated four tables and a ground-truth table.

    The truth has one row per lead: lead_id, persona, fit, interest, p_mql, p_sal
    (NaN without a recorded MQL), mql_at (NaT without one) and lifecycle_stage at ``end``.
    Above ``chunk_leads`` the chunks of ``simulate_chunks`` are concatenated: the same rows
    ``write_simulation`` writes chunk by chunk.
    """
    parts = list(simulate_chunks(n_leads, seed, start, end, chunk_leads))
    if len(parts) == 1:
        return parts[0]
    tables = {
        name: pd.concat([p[0].table(name) for p in parts], ignore_index=True) for name in TABLES
    }
    truth = pd.concat([p[1] for p in parts], ignore_index=True)
    return CrmData(**tables), truth


def simulate_chunks(
    n_leads: int = 20_000,
    seed: int = 7,
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    chunk_leads: int = CHUNK_LEADS,
) -> Iterator[tuple[CrmData, pd.DataFrame]]:
    """The simulation chunk by chunk (``chunk_bounds``): each chunk's leads with their own
    accounts (a third as many), events and stages, validated, and its truth rows. Ids
    continue across chunks, so the chunks concatenated are one export sorted as one run's.
    One chunk draws from ``default_rng(seed)``; chunk i of several from a generator seeded
    with ``SeedSequence(seed, spawn_key=(i,))``."""
    bounds = chunk_bounds(n_leads, chunk_leads)
    t0 = pd.Timestamp(start)
    end_s = int((pd.Timestamp(end) - t0).total_seconds())  # times are seconds since start
    if end_s <= 0:
        raise ValueError(f"end {end} must be after start {start}")
    n_accounts = 0
    for i, (lo, hi) in enumerate(bounds):
        # SeedSequence(seed) with no spawn key is what default_rng(seed) uses
        key = (i,) if len(bounds) > 1 else ()
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
        yield _simulate_part(rng, hi - lo, t0, end_s, lo, n_accounts)  # held by the caller only
        n_accounts += _accounts_for(hi - lo)


def _accounts_for(n_leads: int) -> int:
    return max(1, n_leads // 3)


def _simulate_part(
    rng: np.random.Generator,
    n_leads: int,
    t0: pd.Timestamp,
    end_s: int,
    lead_offset: int,
    account_offset: int,
) -> tuple[CrmData, pd.DataFrame]:
    """One chunk's tables and truth; the stages draw from ``rng`` in this order."""
    accounts = draw_accounts(rng, _accounts_for(n_leads))
    leads = draw_leads(rng, accounts, n_leads, end_s)
    engagement = draw_engagement(rng, leads)
    log = EventLog()
    visit = first_touches(rng, log, leads, engagement)
    main_stream(rng, log, leads, engagement, t0)
    mail_stop = mail_stops(rng, log, leads, engagement)
    mql = draw_mql(rng, log, leads, engagement, end_s)
    interest, p_sal = sal_probability(rng, log, accounts, leads, mql, mail_stop, end_s)
    progression = draw_progression(rng, leads, mql, p_sal)
    after_sal_events(rng, log, leads, progression)

    recorded = recorded_events(log, leads, mail_stop, end_s)
    del log
    ids = lead_ids(n_leads, lead_offset)
    acc_ids = account_ids(len(accounts.employees), account_offset)
    events = events_table(rng, recorded, ids, t0)
    stage_history = stage_history_table(leads, visit, mql, progression, end_s, ids, t0)
    accounts_df = accounts_table(rng, accounts, acc_ids)
    leads_df = leads_table(rng, leads, ids, acc_ids, t0)
    data = validate(accounts_df, leads_df, events, stage_history)
    lifecycle = lifecycle_at_end(recorded, progression, end_s)
    truth = truth_table(leads, mql, interest, p_sal, lifecycle, ids, t0)
    return data, truth


def write_simulation(
    out_dir: str | Path, n_leads: int = 20_000, seed: int = 7, chunk_leads: int = CHUNK_LEADS
) -> None:
    """Simulate and write the four contract tables plus ``truth.parquet`` to ``out_dir``.

    Chunk by chunk: each chunk's rows are appended to the five files (one row group per
    chunk and table) and dropped before the next is drawn, so memory stays that of one
    chunk whatever ``n_leads``. The files read back as ``simulate`` returns them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.parquet" for name in (*TABLES, "truth")}
    paths["truth"] = out / TRUTH_FILE
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for data, truth in simulate_chunks(n_leads, seed, chunk_leads=chunk_leads):
            frames = {name: data.table(name) for name in TABLES} | {"truth": truth}
            del data, truth
            for name, frame in frames.items():
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(paths[name], table.schema)
                writers[name].write_table(table)
            del frames, table
    finally:
        for writer in writers.values():
            writer.close()


def main() -> None:
    """``python -m crm.simulate OUT_DIR [--leads N] [--seed S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m crm.simulate",
        description="A B2B funnel simulator: a realistic CRM export with a known ground truth.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--chunk-leads",
        type=int,
        default=CHUNK_LEADS,
        help="leads drawn and written per chunk (memory grows with it)",
    )
    args = parser.parse_args()
    write_simulation(args.out_dir, args.leads, args.seed, args.chunk_leads)
