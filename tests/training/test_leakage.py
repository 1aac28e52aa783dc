"""The leakage check on hand-made training sets: a column written after the outcome (a call
length: empty or zero for most leads that did not convert, long for those that did) is
caught although it does not separate the classes almost perfectly; legitimate features,
even a strong one and a sparse one, are not. The real exports:
tests/training/test_real_exports.py."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from crm.contract import CrmData
from training.leakage import (
    LeakageError,
    check_leakage,
    empty_for_one_class,
    model_auc,
    single_feature_auc,
)

RECORD = ["source", "log_employees", "call_minutes", "counter_demo_requests"]


def leads(n: int, rng: np.random.Generator, leak: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Snapshots with weak legitimate features and (``leak``) a call length recorded by
    sales: zero or empty for 93 % of the leads that did not convert, long for 70 % of
    those that did."""
    y = (rng.random(n) < 0.2).astype(np.int8)
    X = pd.DataFrame(
        {
            "source": pd.Categorical(
                np.where(rng.random(n) < 0.3 + 0.15 * y, "referral", rng.choice(["web", "fair"], n))
            ),
            "log_employees": rng.normal(4 + 0.35 * y, 1.0),
            "n_page_view_30d": rng.poisson(2 + 0.6 * y).astype(float),
            # sparse but honest: a demo request is rarer among leads that do not convert
            "counter_demo_requests": np.where(rng.random(n) < 0.25 + 0.2 * y, 1.0, 0.0),
        },
        index=pd.Index([f"L{i}" for i in range(n)], name="lead_id"),
    )
    if leak:
        called = rng.random(n) < np.where(y == 1, 0.70, 0.07)
        minutes = np.where(called, rng.gamma(3, np.where(y == 1, 8.0, 3.0)), 0.0)
        minutes[rng.random(n) < 0.1] = np.nan  # not every row was saved
        X["call_minutes"] = minutes
    return X, y


def slices(leak: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    X_fit, y_fit = leads(4000, rng, leak)
    X_later, y_later = leads(1500, rng, leak)
    return X_fit, y_fit, X_later, y_later


def test_call_length_is_caught_although_it_does_not_separate_almost_perfectly():
    X_fit, y_fit, X_later, y_later = slices()
    alone = single_feature_auc(X_fit["call_minutes"], y_fit, X_later["call_minutes"], y_later)
    assert 0.7 < alone < 0.9  # the old "almost perfect" rule (0.95) alone misses it

    findings = check_leakage(X_fit, y_fit, X_later, y_later, record_columns=RECORD)
    assert [f.feature for f in findings] == ["call_minutes"]
    leak = findings[0]
    assert leak.rules == ("empty_for_one_class",)
    assert leak.empty_rate_negative is not None and leak.empty_rate_negative >= 0.9
    assert leak.empty_rate_positive is not None and leak.empty_rate_positive <= 0.5
    # the reason names the rule with its figures
    assert (
        f"empty or zero for {leak.empty_rate_positive:.0%} of converted vs "
        f"{leak.empty_rate_negative:.0%} of other leads (rule: empty for at least 90% of one "
        "class and at most 50% of the other)"
    ) in leak.reason


def test_the_model_comparison_catches_it_where_the_emptiness_rule_does_not_apply():
    """As an engineered column (not a raw record field), or with the emptiness rule
    loosened out of reach, the call length alone still beats a model of all the others."""
    X_fit, y_fit, X_later, y_later = slices()
    for kwargs in ({"record_columns": ["source"]}, {"record_columns": RECORD, "empty_most": 1}):
        findings = check_leakage(X_fit, y_fit, X_later, y_later, **kwargs)
        assert [(f.feature, f.rules) for f in findings] == [("call_minutes", ("beats_model",))]
        leak = findings[0]
        assert leak.auc_without is not None
        assert leak.single_feature_auc >= leak.auc_without + 0.1
        assert re.search(
            rf"alone it reaches ROC AUC {leak.single_feature_auc:.2f} on a later time slice, "
            rf"more than a model of all other features \({leak.auc_without:.2f}\), and backward "
            r"in time within the fit period too \(0\.\d\d against 0\.\d\d; rule: alone at "
            r"least 0\.10 above the rest in both\)",
            leak.reason,
        ), leak.reason
    # switched off, only the cheap rules run
    cheap = check_leakage(
        X_fit, y_fit, X_later, y_later, record_columns=["source"], beats_model=False
    )
    assert cheap == []


def test_legitimate_features_are_not_flagged():
    X_fit, y_fit, X_later, y_later = slices(leak=False)
    assert check_leakage(X_fit, y_fit, X_later, y_later, record_columns=RECORD) == []


def test_a_strong_honest_feature_among_informative_ones_is_not_flagged():
    """A real signal that is the best single feature but does not outrank the rest by the
    margin: the model comparison lets it through."""
    rng = np.random.default_rng(5)
    X_fit, y_fit, X_later, y_later = slices(leak=False, seed=5)
    for X, y in ((X_fit, y_fit), (X_later, y_later)):
        X["decay_web"] = rng.normal(1.2 * y, 1.0)  # alone about 0.8
        X["n_pricing_view_30d"] = rng.poisson(1 + 1.5 * y).astype(float)
    alone = single_feature_auc(X_fit["decay_web"], y_fit, X_later["decay_web"], y_later)
    assert alone > 0.75
    assert check_leakage(X_fit, y_fit, X_later, y_later, record_columns=RECORD) == []


def test_a_signal_that_grows_while_the_others_fade_is_not_flagged():
    """Campaigns change: the field that predicts the outcome moves from ``a`` to ``b``
    over time. On the later slice ``b`` alone beats a model of the others (learned when
    ``a`` mattered), but not backward in time within the fit period (learned on its
    latest rows, scored on its earliest): drift, not leakage."""
    rng = np.random.default_rng(3)
    n = 6000
    t = np.linspace(0.0, 1.0, n)
    a, b, c = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    rate = 0.02 + 0.2 * t
    logit = np.log(rate / (1 - rate)) + 1.4 * (1 - t) * a + 1.8 * t * b + 0.4 * c
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X = pd.DataFrame({"attr_a": a, "attr_b": b, "attr_c": c})
    fit, later = slice(0, 4080), slice(4080, 4980)
    X_fit, X_later = X.iloc[fit], X.iloc[later]
    alone = single_feature_auc(X_fit["attr_b"], y[fit], X_later["attr_b"], y[later])
    without = model_auc(
        X_fit[["attr_a", "attr_c"]], y[fit], X_later[["attr_a", "attr_c"]], y[later]
    )
    assert alone >= without + 0.1  # across time it outranks the rest...
    assert check_leakage(X_fit, y[fit], X_later, y[later], record_columns=list(X)) == []


def test_the_one_informative_column_of_a_small_export_is_not_flagged():
    """An export whose only signal is an honest fit score: it beats the others (which know
    nothing) by far, and beating a model that knows nothing proves nothing."""
    rng = np.random.default_rng(3)
    n = 1500
    fit, segment = rng.normal(size=n), rng.choice(["SMB", "Mid", "Enterprise"], n)
    logit = -1.6 + 1.4 * fit + 0.5 * (segment == "Mid")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    X = pd.DataFrame(
        {
            "attr_fit": fit,
            "attr_segment": pd.Categorical(segment),
            "source": pd.Categorical(rng.choice(["web", "fair", "referral"], n)),
        }
    )
    X_fit, X_later, y_fit, y_later = X.iloc[:975], X.iloc[975:1200], y[:975], y[975:1200]
    assert single_feature_auc(X_fit["attr_fit"], y_fit, X_later["attr_fit"], y_later) > 0.75
    assert check_leakage(X_fit, y_fit, X_later, y_later, record_columns=list(X)) == []


def test_empty_for_one_class_thresholds():
    y = np.array([1] * 40 + [0] * 60)
    zero_for_negatives = pd.Series([5.0] * 30 + [0.0] * 10 + [0.0] * 57 + [2.0] * 3)
    assert empty_for_one_class(zero_for_negatives, y) == (0.25, 0.95)
    # the reverse (empty for the converted) counts too; blank text is empty
    text = pd.Series([""] * 38 + ["x"] * 2 + ["a", "b", "c"] * 20)
    assert empty_for_one_class(text, y) == (0.95, 0.0)
    # 85 % of negatives: under the 90 % bar
    assert empty_for_one_class(pd.Series([5.0] * 40 + [0.0] * 51 + [1.0] * 9), y) is None
    # too few rows of a class to say anything
    assert empty_for_one_class(zero_for_negatives[:50], y[:50]) is None


def test_leakage_error_names_the_ways_out():
    X_fit, y_fit, X_later, y_later = slices()
    findings = check_leakage(X_fit, y_fit, X_later, y_later, record_columns=RECORD)
    with pytest.raises(LeakageError) as exc:
        raise LeakageError(findings)
    message = str(exc.value)
    assert "known_after_outcome:" in message and "--allow-leaky call_minutes" in message


@pytest.fixture(scope="module")
def simulated() -> CrmData:
    from crm.simulate import simulate

    return simulate(n_leads=6000, seed=11)[0]


@pytest.mark.parametrize("target", ["sal", "mql"])
def test_the_simulators_features_pass(simulated, target):
    """The simulator's features, built as ``train`` builds them, fire no rule (the real
    exports: tests/training/test_real_exports.py::test_honest_mappings_pass_the_leakage_check)."""
    from features.build import FeatureConfig, fit_features
    from training.dataset import build_training_set

    data = simulated
    config = FeatureConfig()
    ts = build_training_set(data, target=target, config=config)
    split = ts.split()
    findings = check_leakage(
        ts.X.iloc[split.fit], ts.y[split.fit], ts.X.iloc[split.calibration],
        ts.y[split.calibration], record_columns=[*fit_features(config), *config.counters],
    )  # fmt: skip
    assert findings == []


def test_the_model_comparison_takes_any_column_type():
    """Text, nullable numbers and booleans reach LightGBM as categoricals and floats."""
    X_fit, y_fit, X_later, y_later = slices()
    for X in (X_fit, X_later):
        X["attr_city"] = np.where(np.arange(len(X)) % 3 == 0, "Mumbai", None)
        X["counter_visits"] = pd.array(np.arange(len(X)) % 5, dtype="Int64")
        X["attr_newsletter"] = pd.array(np.arange(len(X)) % 2 == 0, dtype="boolean")
    X_later.loc[X_later.index[:5], "attr_city"] = "Pune"  # a city the fit slice never saw
    findings = check_leakage(X_fit, y_fit, X_later, y_later, record_columns=["source"])
    assert [(f.feature, f.rules) for f in findings] == [("call_minutes", ("beats_model",))]
