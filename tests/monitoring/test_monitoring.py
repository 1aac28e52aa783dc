"""The monitor's figures on frames made to order: a shifted feature is flagged and a stable
one is not, a thin period never alarms, unknown categories are counted, realised
calibration and ROC AUC follow the outcomes, and the page renders its charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring import MissingReference, Traffic, monitor, reference_stats
from monitoring.outcomes import realised_labels, wilson
from monitoring.page import render

RNG = np.random.default_rng(5)


def training(n: int = 4000):
    X = pd.DataFrame(
        {
            "employees": RNG.lognormal(4, 1, n),
            "industry": pd.Categorical(RNG.choice(["software", "retail", "health"], n)),
            "visits": RNG.poisson(2, n).astype(float),
        }
    )
    scores = pd.DataFrame({"p_convert": RNG.beta(2, 8, n), "fit_score": RNG.uniform(0, 100, n)})
    return X, scores, RNG.binomial(1, 0.2, n)


def traffic(n: int, start: str, shift: bool, unknown: float = 0.0) -> pd.DataFrame:
    industries = ["software", "retail", "health"]
    industry = RNG.choice(industries, n, p=[0.8, 0.1, 0.1] if shift else None).astype(object)
    industry[RNG.uniform(size=n) < unknown] = "mining"
    return pd.DataFrame(
        {
            "moment": pd.Timestamp(start) + pd.to_timedelta(RNG.uniform(0, 6, n), unit="D"),
            "employees": RNG.lognormal(6 if shift else 4, 1, n),
            "industry": industry,
            "visits": RNG.poisson(2, n).astype(float),
            "p_convert": RNG.beta(2, 8, n),
            "fit_score": RNG.uniform(0, 100, n),
        }
    )


def as_traffic(frame: pd.DataFrame, outcomes: pd.DataFrame | None = None) -> Traffic:
    frame = frame.reset_index(drop=True)
    ids = range(len(frame))
    preds = pd.DataFrame(
        {"id": [f"r{i}" for i in ids], "lead_key": [f"k{i}" for i in ids], "moment": frame.moment}
    )
    empty = pd.DataFrame({"lead_key": [], "stage": [], "at": pd.to_datetime([])})
    return Traffic(
        preds, frame[["employees", "industry", "visits"]], frame[["p_convert", "fit_score"]],
        empty if outcomes is None else outcomes,
    )  # fmt: skip


def run(t: Traffic, ref, **kw):
    kw = {"model_name": "m", "model_version": "1", "target": "sal", "horizon_days": 30, **kw}
    return monitor(t, ref, now=pd.Timestamp("2026-06-01"), **kw)


def test_a_shifted_feature_is_flagged_and_a_stable_one_is_not():
    ref = reference_stats(*training())
    frame = pd.concat(
        [traffic(400, "2026-01-05", False), traffic(400, "2026-01-19", True, unknown=0.2)]
    )
    report = run(as_traffic(frame), ref)
    assert report.flagged() == ["employees", "industry"]
    assert list(report.volume) == ["2026-W02", "2026-W04"]
    week2 = {d.name: d for d in report.drift if d.period == "2026-W02"}
    assert not any(d.flagged for d in week2.values())
    assert any("employees drifted in week 2026-W04: PSI" in a for a in report.alerts)
    assert any(a.startswith("industry: ") and "never saw" in a for a in report.alerts)
    assert report.gauges()["unknown_share"]["industry"] == pytest.approx(0.2, abs=0.06)
    assert "visits" not in report.flagged()


def test_a_thin_period_never_alarms():
    ref = reference_stats(*training())
    report = run(as_traffic(traffic(5, "2026-01-05", True, unknown=0.5)), ref, period="day")
    assert report.alerts == [] and report.flagged() == []
    assert any(d.psi > 0.25 for d in report.drift)  # shown, not alarmed about


def test_calibration_and_auc_follow_the_outcomes():
    ref = reference_stats(*training())
    frame = traffic(2000, "2026-01-05", False)
    # leads convert at 50 % whatever their score: calibration off, ranking lost
    converted = RNG.uniform(size=len(frame)) < 0.5
    keys = [f"k{i}" for i in np.flatnonzero(converted)]
    outcomes = pd.DataFrame(
        {"lead_key": keys, "stage": "sal",
         "at": frame["moment"].to_numpy()[converted] + pd.Timedelta(days=3)}
    )  # fmt: skip
    report = run(as_traffic(frame, outcomes), ref, holdout_auc=0.8)
    assert report.outcomes_known == 2000
    assert any(b.flagged for b in report.deciles)
    assert any(a.startswith("leads scored 0.") and "95 % CI" in a for a in report.alerts)
    assert report.auc is not None and report.auc.flagged
    assert report.auc.low < 0.5 < report.auc.high
    gaps = report.gauges()["calibration_gap"]
    assert len(gaps) == 10 and sum(g > 0.1 for g in gaps.values()) >= 8
    html = render(report)
    assert html.count('<img class="chart"') == 3 and "converted at" in html


def test_well_calibrated_outcomes_raise_no_calibration_alert():
    ref = reference_stats(*training())
    frame = traffic(3000, "2026-01-05", False)
    converted = RNG.uniform(size=len(frame)) < frame["p_convert"].to_numpy()
    keys = [f"k{i}" for i in np.flatnonzero(converted)]
    outcomes = pd.DataFrame(
        {"lead_key": keys, "stage": "customer",
         "at": frame["moment"].to_numpy()[converted] + pd.Timedelta(days=3)}
    )  # fmt: skip
    report = run(as_traffic(frame, outcomes), ref, holdout_auc=0.6)
    assert not any(b.flagged for b in report.deciles) and not report.auc.flagged
    assert report.alerts == []


def test_outcomes_outside_the_horizon_or_not_yet_known():
    preds = pd.DataFrame(
        {"id": ["a", "b", "c", "d"], "lead_key": ["a", "b", "c", "d"], "p": 0.1,
         "moment": pd.to_datetime(["2026-01-01", "2026-01-01", "2026-05-25", "2026-01-10"])}
    )  # fmt: skip
    outcomes = pd.DataFrame(
        {"lead_key": ["a", "b", "d"], "stage": ["sal", "sal", "mql"],
         "at": pd.to_datetime(["2026-01-20", "2026-03-01", "2026-01-12"])}
    )  # fmt: skip
    got = realised_labels(preds, outcomes, "sal", 30, pd.Timestamp("2026-06-01"))
    # a converted in time, b too late (a no), c not yet known, d only reached mql
    assert dict(zip(got["id"], got["converted"], strict=True)) == {"a": 1, "b": 0, "d": 0}


def test_wilson_interval():
    low, high = wilson(8, 100)
    assert low == pytest.approx(0.0411, abs=1e-3) and high == pytest.approx(0.1501, abs=1e-3)


def test_a_model_without_reference_is_asked_to_be_retrained():
    with pytest.raises(MissingReference, match="retrain it to get reference statistics"):
        run(as_traffic(traffic(10, "2026-01-05", False)), None)


def test_no_traffic_gives_an_empty_report_and_page():
    ref = reference_stats(*training())
    none = pd.DataFrame(index=pd.RangeIndex(0))
    empty = Traffic(
        pd.DataFrame({"id": [], "lead_key": [], "moment": pd.to_datetime([])}), none, none,
        pd.DataFrame({"lead_key": [], "stage": [], "at": pd.to_datetime([])}),
    )  # fmt: skip
    report = run(empty, ref)
    assert report.volume == {} and report.alerts == [] and report.gauges()["leads"] == 0
    assert "No leads scored" in render(report)


def test_a_mostly_zero_count_that_rises_is_a_shift():
    from monitoring.drift import served_shares, share_psi

    ref = reference_stats(
        pd.DataFrame({"views": np.where(RNG.uniform(size=2000) < 0.95, 0.0, 1.0)}),
        pd.DataFrame(index=pd.RangeIndex(2000)),
        np.zeros(2000),
    )["features"]["views"]
    assert ref["edges"] == [0.0]  # zero is a bin of its own
    assert share_psi(*served_shares(ref, pd.Series([8.0] * 100))[:2]) > 1.0
    assert share_psi(*served_shares(ref, pd.Series([0.0] * 95 + [1.0] * 5))[:2]) < 0.01
