"""Drift report: PSI on hand-made shifts, the positive-rate warning, silence on stable data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.drift import PSI_THRESHOLD, drift_report, plot_drift, psi


def frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    """A stable number, a number that moves by ``shift``, a stable category, and a
    category whose mix moves with ``shift``."""
    mix = np.clip(0.2 + shift / 4, 0, 1)
    return pd.DataFrame(
        {
            "n_web_visits": rng.poisson(3, n).astype(float),
            "days_since_last_event": rng.normal(30 + 20 * shift, 10, n),
            "source": pd.Categorical(rng.choice(["web", "fair", "referral"], n)),
            "channel": pd.Categorical(
                rng.choice(["paid", "organic"], n, p=[mix, 1 - mix]), categories=["paid", "organic"]
            ),
        }
    )


def sliced(parts: list[pd.DataFrame], rates: list[float], rng: np.random.Generator):
    X = pd.concat(parts, ignore_index=True)
    y = np.concatenate(
        [(rng.random(len(p)) < r).astype(int) for p, r in zip(parts, rates, strict=True)]
    )
    bounds = np.cumsum([0, *(len(p) for p in parts)])
    names = ["fit", "validation", "holdout"][: len(parts)]
    slices = {n: np.arange(a, b) for n, a, b in zip(names, bounds[:-1], bounds[1:], strict=True)}
    return X, y, slices


def test_psi_of_shifted_and_stable_columns():
    rng = np.random.default_rng(0)
    ref, same, moved = frame(3000, rng), frame(3000, rng), frame(3000, rng, shift=2.0)
    assert psi(ref["days_since_last_event"], moved["days_since_last_event"]) > PSI_THRESHOLD
    assert psi(ref["days_since_last_event"], same["days_since_last_event"]) < 0.1
    assert psi(ref["channel"], moved["channel"]) > PSI_THRESHOLD
    assert psi(ref["source"], same["source"]) < 0.1
    assert psi(ref["n_web_visits"], same["n_web_visits"]) < 0.1


def test_psi_edge_cases():
    constant = pd.Series([5.0] * 100)
    assert psi(constant, constant) == 0.0
    assert psi(pd.Series([np.nan] * 50), pd.Series([np.nan] * 50)) == 0.0
    # a field that stops being filled in is a shift: missing values are a bin of their own
    filled = pd.Series(np.arange(200, dtype=float))
    mostly_empty = pd.Series([np.nan] * 180 + list(range(20)), dtype=float)
    assert psi(filled, mostly_empty) > 1.0
    # an empty bin on one side stays finite (floored proportions)
    flags = pd.Series([True] * 100)
    assert np.isfinite(psi(flags, pd.Series([True] * 50 + [False] * 50)))
    assert psi(pd.Series([], dtype=float), filled) == 0.0


def test_rising_positive_rate_and_shifted_feature_are_warned_about():
    rng = np.random.default_rng(1)
    parts = [frame(2000, rng), frame(1000, rng, 1.0), frame(1000, rng, 2.0)]
    X, y, slices = sliced(parts, [0.05, 0.15, 0.30], rng)
    as_of = pd.Series(pd.date_range("2025-01-01", periods=len(X), freq="h"))
    report = drift_report(X, y, slices, as_of=as_of)

    rate = [w for w in report.warnings if w.startswith("positive rate")]
    assert len(rate) == 1
    assert "(fit) to" in rate[0] and "(holdout)" in rate[0]
    named = {w.split()[1] for w in report.warnings if w.startswith("feature ")}
    assert named == {"days_since_last_event", "channel"}
    assert report.features[0].feature in named
    assert report.features[-1].max_psi < 0.1

    table = report.table()
    assert list(table.index) == ["fit", "validation", "holdout"]
    assert table.loc["fit", "rows"] == 2000
    assert table.loc["fit", "date_from"] == "2025-01-01"
    features = report.features_table()
    assert list(features.columns) == ["psi_validation", "psi_holdout", "max_psi"]
    assert features["max_psi"].is_monotonic_decreasing
    assert json.loads(json.dumps(report.to_dict()))["slices"][2]["name"] == "holdout"
    lines = report.lines()
    assert lines[1].startswith("fit") and any("<- shifts" in line for line in lines)


def test_stable_data_gives_no_warnings(tmp_path):
    rng = np.random.default_rng(2)
    X, y, slices = sliced([frame(2000, rng), frame(1000, rng), frame(1000, rng)], [0.2] * 3, rng)
    report = drift_report(X, y, slices)
    assert report.warnings == []
    assert report.table()["date_from"].isna().all()
    png = plot_drift(report, tmp_path / "drift.png")
    assert png.stat().st_size > 1000


def test_a_small_slice_with_a_higher_rate_by_chance_is_not_a_warning():
    """Two more positives than expected in a 40-row holdout is noise, not a move."""
    rng = np.random.default_rng(3)
    X, y, slices = sliced([frame(2000, rng), frame(40, rng)], [0.1, 0.1], rng)
    y[slices["fit"]] = np.arange(2000) % 10 == 0  # exactly 10 %
    y[slices["validation"]] = np.arange(40) % 40 < 6  # 15 %: 1.5x, but 6 of 40
    assert drift_report(X, y, slices).warnings == []


def test_unknown_reference_slice_is_refused():
    rng = np.random.default_rng(4)
    X, y, slices = sliced([frame(100, rng), frame(100, rng)], [0.2, 0.2], rng)
    with pytest.raises(ValueError, match="reference slice"):
        drift_report(X, y, slices, reference="train")
