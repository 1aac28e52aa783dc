"""Late wins on a hand-made CRM: 20 MQLs, 10 reach SAL, 3 of them after the horizon."""

from __future__ import annotations

import json

import pandas as pd

from crm.contract import CrmData
from training.latewins import late_wins

T0 = pd.Timestamp("2025-01-01")
#: days from MQL entry to SAL for the 10 MQLs that convert: 3 beyond 90 days
DELAYS = [3, 10, 14, 20, 30, 45, 60, 100, 120, 150]


def crm(delays: list[int], n_mql: int = 20) -> CrmData:
    """``n_mql`` leads created a day apart, each MQL 5 days after creation; the first
    ``len(delays)`` reach SAL that many days after MQL entry, plus one lead whose SAL entry
    is recorded *before* its MQL entry (not a conversion from MQL)."""
    ids = [f"L{i:02d}" for i in range(n_mql + 1)]
    created = [T0 + pd.Timedelta(days=i) for i in range(n_mql + 1)]
    leads = pd.DataFrame({"lead_id": ids, "created_at": created})
    mql = [(lead, "mql", at + pd.Timedelta(days=5)) for lead, at in zip(ids, created, strict=True)]
    sal = [(ids[i], "sal", mql[i][2] + pd.Timedelta(days=d, hours=1)) for i, d in enumerate(delays)]
    sal.append((ids[-1], "sal", created[-1]))  # SAL before MQL: not counted
    history = pd.DataFrame(mql + sal, columns=["lead_id", "stage", "entered_at"])
    empty_events = pd.DataFrame(
        {"lead_id": pd.Series(dtype=str), "at": pd.Series(dtype="datetime64[ns]")}
    )
    return CrmData(
        accounts=pd.DataFrame({"account_id": pd.Series(dtype=str)}),
        leads=leads,
        events=empty_events.assign(type=pd.Series(dtype=str)),
        stage_history=history,
    )


def test_three_of_ten_conversions_are_late():
    late = late_wins(crm(DELAYS), "sal", horizon_days=90)
    assert (late.from_stage, late.target) == ("mql", "sal")
    assert (late.n_reached, late.n_late) == (10, 3)
    assert late.share_late == 0.3
    # 95 % of 10 delays: the 10th (150 days and an hour) -> 151 days
    assert late.horizon_95_days == 151
    sentence = late.sentence()
    assert sentence.startswith("3 of 10 leads that reached SAL (30.0%) got there more than 90")
    assert "after MQL entry" in sentence and "--horizon-days 151" in sentence
    payload = json.loads(json.dumps(late.to_dict()))
    assert payload["n_late"] == 3 and payload["sentence"] == sentence


def test_a_horizon_that_keeps_every_conversion_says_so_briefly():
    late = late_wins(crm(DELAYS), "sal", horizon_days=200)
    assert late.n_late == 0
    assert late.sentence() == (
        "all 10 leads that reached SAL got there within 200 days of MQL entry: "
        "the horizon misses no conversions"
    )


def test_late_wins_that_the_horizon_already_mostly_keeps():
    """One late win in 40: the 95 % horizon is within the current one."""
    late = late_wins(crm([5] * 39 + [120], n_mql=40), "sal", horizon_days=90)
    assert (late.n_late, late.n_reached) == (1, 40)
    assert "already keeps 95%" in late.sentence()
    assert "--horizon-days" not in late.sentence()


def test_no_conversion_at_all():
    data = crm([])
    history = data.stage_history
    data = CrmData(data.accounts, data.leads, data.events, history[history["stage"] == "mql"])
    late = late_wins(data, "sal", horizon_days=90)
    assert (late.n_reached, late.n_late, late.horizon_95_days) == (0, 0, None)
    assert late.sentence().startswith("no lead reached SAL")
