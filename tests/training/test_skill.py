"""The minimum-skill verdict: chance-level ranking or probabilities worse than the base rate
mean no skill; an informative, calibrated model has skill."""

from __future__ import annotations

import json

import numpy as np

from training.skill import skill_verdict


def _informative(n: int = 3000, rate: float = 0.1, seed: int = 0):
    """Labels drawn from calibrated probabilities that spread widely around ``rate``."""
    rng = np.random.default_rng(seed)
    logit = np.log(rate / (1 - rate)) + 1.5 * rng.standard_normal(n)
    p = 1 / (1 + np.exp(-logit))
    return (rng.random(n) < p).astype(int), p


def test_random_labels_have_no_skill():
    rng = np.random.default_rng(1)
    n = 3000
    y = (rng.random(n) < 0.12).astype(int)
    p = np.clip(0.12 + 0.05 * rng.standard_normal(n), 0.01, 0.99)  # scores unrelated to y
    v = skill_verdict(y, p, base_rate=0.12)
    assert not v.has_skill
    assert v.ci_low <= 0.5 <= v.ci_high
    assert v.log_loss >= v.constant_log_loss  # noise around the rate costs log loss too
    said = v.sentence()
    assert said.startswith("No skill: the holdout ROC AUC ")
    assert "includes 0.5" in said and "base rate 12.0 % for everyone" in said
    assert "\n" not in said
    assert v.to_dict()["skill"] == "none"


def test_informative_scores_have_skill():
    y, p = _informative()
    v = skill_verdict(y, p, base_rate=float(y.mean()))
    assert v.has_skill, v.sentence()
    assert v.reasons == ()
    assert 0.5 < v.ci_low < v.roc_auc < v.ci_high
    assert v.log_loss < v.constant_log_loss
    assert v.sentence().startswith(f"Skill: ROC AUC {v.roc_auc:.2f} ")
    d = v.to_dict()
    assert d["skill"] == "ok" and d["reasons"] == []
    json.dumps(d)  # JSON-able


def test_good_ranking_with_absurd_calibration_has_no_skill():
    """The ranking is informative, but every probability is near 0.99 for a 10 % rate:
    worse than predicting 10 % for everyone, so no skill (by log loss alone)."""
    y, p = _informative(rate=0.1)
    absurd = 0.985 + 0.01 * (np.argsort(np.argsort(p)) / len(p))  # same order, near 0.99
    v = skill_verdict(y, absurd, base_rate=0.1)
    assert not v.has_skill
    assert v.ci_low > 0.5  # the ranking itself is fine
    assert len(v.reasons) == 1
    assert v.sentence().startswith("No skill: the holdout log loss ")
    assert "not better than predicting the base rate 10.0 % for everyone" in v.sentence()


def test_groups_resample_whole_leads_and_one_class_holdout():
    y, p = _informative(n=1000)
    leads = np.repeat(np.arange(500), 2)  # two snapshots per lead
    grouped = skill_verdict(y, p, float(y.mean()), groups=leads)
    assert grouped.ci_low < grouped.roc_auc < grouped.ci_high

    none = skill_verdict(np.zeros(50, dtype=int), np.full(50, 0.1), base_rate=0.1)
    assert not none.has_skill and "all negative" in none.sentence()
    json.dumps(none.to_dict())  # NaN figures become None
