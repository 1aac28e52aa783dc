"""The one as-of snapshot (features.pointintime): moments in naive UTC, strictly-before
cuts, windows, and one resolution shared by every as-of computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.pointintime import DAY_NS, NAT_NS, AsOf, events_before, window_ns

LEADS = pd.Index(["L0", "L1", "L2"], name="lead_id")
AS_OF = pd.Timestamp("2025-06-01 12:00")


def test_a_zone_aware_moment_is_the_same_instant_in_naive_utc():
    berlin = pd.Timestamp("2025-06-01 14:00", tz="Europe/Berlin")
    assert AsOf.resolve(berlin, LEADS).moment == AsOf.resolve(AS_OF, LEADS).moment


def test_one_moment_per_lead_is_aligned_on_lead_id_and_shared_moments_are_noticed():
    per_lead = pd.Series([AS_OF, AS_OF - pd.Timedelta(days=1), AS_OF], index=["L2", "L1", "L0"])
    snap = AsOf.resolve(per_lead, LEADS)
    assert snap.moment is None
    assert snap.ns[1] == snap.ns[0] - DAY_NS
    same = AsOf.resolve(pd.Series(AS_OF, index=LEADS), LEADS)
    assert same.moment == int(AS_OF.value)


def test_missing_moments_are_errors():
    with pytest.raises(ValueError, match="no timestamp for 1 lead"):
        AsOf.resolve(pd.Series([AS_OF, AS_OF], index=["L0", "L1"]), LEADS)
    with pytest.raises(ValueError, match="missing"):
        AsOf.resolve(pd.NaT, LEADS)
    with pytest.raises(ValueError, match="other leads"):
        AsOf.resolve(AsOf.resolve(AS_OF, LEADS), LEADS[:2])


def test_a_resolved_snapshot_is_reused_as_is():
    snap = AsOf.resolve(AS_OF, LEADS)
    assert AsOf.resolve(snap, pd.Index(list(LEADS), name="lead_id")) is snap


def test_only_rows_strictly_before_as_of_of_known_leads_count():
    second, day = pd.Timedelta(seconds=1), pd.Timedelta(days=1)
    events = pd.DataFrame(
        {
            "lead_id": ["L0", "L0", "L1", "L9", "L2"],
            "at": [AS_OF - second, AS_OF, AS_OF + day, AS_OF - day, pd.NaT],
        }
    )
    rows, lead_pos, at, age = events_before(events, LEADS, AS_OF)
    assert rows.tolist() == [0]
    assert lead_pos.tolist() == [0]
    assert age.tolist() == [10**9]
    assert at[0] != NAT_NS


def test_windows_name_whether_their_start_counts():
    age = np.array([30 * DAY_NS - 1, 30 * DAY_NS, 30 * DAY_NS + 1])
    assert AsOf.in_window(age, 30, include_start=True).tolist() == [True, True, False]
    assert AsOf.in_window(age, 30, include_start=False).tolist() == [True, False, False]
    assert window_ns(0.5) == DAY_NS // 2


def test_days_since_is_missing_for_missing_times():
    snap = AsOf.resolve(AS_OF, LEADS)
    created = np.array([AS_OF.value - 2 * DAY_NS, NAT_NS, AS_OF.value + DAY_NS])
    days = snap.days_since(created)
    assert days[0] == 2.0 and np.isnan(days[1]) and days[2] == -1.0


def test_a_snapshot_cuts_each_table_once_and_never_answers_for_another():
    """``rows_before`` keeps its answer on the snapshot (funnel_profile's steps cut the
    same events with it): asked again for the same table it is the same answer; another
    table, even one with the same rows, or another time column, is cut on its own."""
    from features.pointintime import AsOf, rows_before

    leads = pd.Index(["a", "b"], name="lead_id")
    snap = AsOf.resolve(pd.Timestamp("2025-03-01"), leads)
    events = pd.DataFrame(
        {
            "lead_id": ["a", "b", "a", "c"],
            "at": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-04-01", "2025-01-01"]),
            "entered_at": pd.to_datetime(["2025-03-02", "2025-01-01", "2025-01-01", "2025-01-01"]),
        }
    )
    first = rows_before(events, snap)
    assert first.rows.tolist() == [0, 1]
    assert rows_before(events, snap) is first
    other = events.copy()
    other.loc[0, "at"] = pd.Timestamp("2025-05-01")
    assert rows_before(other, snap).rows.tolist() == [1]
    assert rows_before(events, snap, "entered_at").rows.tolist() == [1, 2]
    fresh = AsOf.resolve(pd.Timestamp("2025-01-15"), leads)
    assert rows_before(events, fresh).rows.tolist() == [0]
