"""``simulate``: the simulator's stages in the order they draw from one random generator
(the order is part of the output: the same seed gives the same export, bit for bit), and
``write_simulation``, which writes the result."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from crm.contract import CrmData, validate, write_tables
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
    end_s = int((pd.Timestamp(end) - t0).total_seconds())  # times are seconds since start
    if end_s <= 0:
        raise ValueError(f"end {end} must be after start {start}")

    accounts = draw_accounts(rng, max(1, n_leads // 3))
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
    ids, acc_ids = lead_ids(n_leads), account_ids(len(accounts.employees))
    events = events_table(rng, recorded, ids, t0)
    stage_history = stage_history_table(leads, visit, mql, progression, end_s, ids, t0)
    accounts_df = accounts_table(rng, accounts, acc_ids)
    leads_df = leads_table(rng, leads, ids, acc_ids, t0)
    data = validate(accounts_df, leads_df, events, stage_history)
    lifecycle = lifecycle_at_end(recorded, progression, end_s)
    truth = truth_table(leads, mql, interest, p_sal, lifecycle, ids, t0)
    return data, truth


def write_simulation(out_dir: str | Path, n_leads: int = 20_000, seed: int = 7) -> None:
    """Simulate and write the four contract tables plus ``truth.parquet`` to ``out_dir``."""
    data, truth = simulate(n_leads=n_leads, seed=seed)
    out = Path(out_dir)
    write_tables(data, out)
    truth.to_parquet(out / TRUTH_FILE, index=False)


def main() -> None:
    """``python -m crm.simulate OUT_DIR [--leads N] [--seed S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m crm.simulate",
        description="A B2B funnel simulator: a realistic CRM export with a known ground truth.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_simulation(args.out_dir, n_leads=args.leads, seed=args.seed)
