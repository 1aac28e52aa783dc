"""The bootstrap's fast ROC AUC (training.evaluate.RankedScores) against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluate import RankedScores, auc_intervals


@pytest.mark.parametrize("seed", range(12))
def test_ranked_auc_equals_sklearn_with_ties_and_weights(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 3000))
    y = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
    y[:2] = [0, 1]  # both classes
    # coarse scores make many ties; fine ones few
    p = np.round(rng.random(n), int(rng.integers(1, 6)))
    w = rng.integers(0, 4, n).astype(float)
    w[:2] = 1.0
    ranked = RankedScores(y, p)
    assert ranked.auc() == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert ranked.auc(w) == pytest.approx(roc_auc_score(y, p, sample_weight=w), abs=1e-12)


def test_ranked_auc_is_none_for_one_class_and_reversed_ranking_is_one_minus():
    y = np.array([0, 1, 0, 1, 1])
    p = np.array([0.1, 0.9, 0.3, 0.3, 0.7])
    ranked = RankedScores(y, p)
    assert ranked.auc(np.array([1, 0, 1, 0, 0])) is None  # negatives only
    assert RankedScores(y, -p).auc() == pytest.approx(1 - ranked.auc(), abs=1e-12)


def _intervals_with_sklearn(y, probs, reference, draws, seed, groups):
    """auc_intervals as it was written before RankedScores: scikit-learn on every draw."""
    codes = pd.factorize(np.asarray(groups))[0]
    n_groups = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    aucs = {name: [] for name in probs}
    for _ in range(draws):
        weight = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes]
        drawn = weight > 0
        if y[drawn].min() == y[drawn].max():
            continue
        for name, p in probs.items():
            aucs[name].append(roc_auc_score(y[drawn], p[drawn], sample_weight=weight[drawn]))
    ref = np.asarray(aucs[reference])
    other = np.asarray(aucs["other"])
    return {
        "roc_auc_ci_low": np.percentile(ref, 2.5),
        "roc_auc_ci_high": np.percentile(ref, 97.5),
        "roc_auc_gain_vs_other_low": np.percentile(ref - other, 2.5),
        "roc_auc_gain_vs_other_high": np.percentile(ref - other, 97.5),
    }


def test_auc_intervals_are_those_of_sklearn_on_the_same_draws():
    rng = np.random.default_rng(3)
    n = 400
    groups = rng.integers(0, 120, n)  # snapshots of 120 leads
    y = (rng.random(n) < 0.3).astype(int)
    model = np.clip(0.3 + 0.3 * (y - 0.3) + rng.normal(0, 0.2, n), 0, 1).round(3)
    other = rng.random(n).round(2)
    probs = {"model": model, "other": other}
    got = auc_intervals(y, probs, reference="model", draws=150, seed=5, groups=groups)
    want = _intervals_with_sklearn(y, probs, "model", 150, 5, groups)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["roc_auc_ci_low"] < got["roc_auc_ci_high"]
