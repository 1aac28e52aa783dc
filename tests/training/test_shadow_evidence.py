"""The shadow's live evidence rule (training/shadow_evidence.py) and how it combines with the
promotion gate's decision (training/registry.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.registry import Promotion, _with_evidence
from training.shadow_evidence import MIN_LEADS, paired_evidence


def _leads(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.6, n)
    y = (rng.uniform(size=n) < truth).astype(int)
    noise = rng.normal(0, 1.5, n)
    logit = np.log(truth / (1 - truth))
    vague = 1 / (1 + np.exp(-(logit + noise)))  # ranks and calibrates worse
    return y, truth, vague


def test_too_few_leads_is_a_clear_refusal():
    y, good, _ = _leads(12)
    ev = paired_evidence(y, good, good)
    assert not ev.ok and not ev.difference
    assert ev.reason.startswith("only 12 leads with outcomes scored by both models")
    assert f"need at least {MIN_LEADS}" in ev.reason


def test_too_few_of_one_class_is_refused_too():
    y = np.zeros(500, dtype=int)
    y[:5] = 1
    ev = paired_evidence(y, np.full(500, 0.1), np.full(500, 0.1))
    assert not ev.ok and "5 converted" in ev.reason


def test_a_better_shadow_is_recommended_and_a_worse_one_refused():
    y, good, vague = _leads(3000)
    better = paired_evidence(y, vague, good, draws=300)
    assert better.ok and better.recommended and "recommended" in better.reason
    d, low, high = better.difference["log_loss"]
    assert low <= d <= high < 0
    assert better.difference["roc_auc"][0] > 0
    worse = paired_evidence(y, good, vague, draws=300)
    assert not worse.ok and not worse.recommended
    assert "not shown to be as good" in worse.reason


def test_the_same_model_passes_but_is_not_recommended():
    y, good, _ = _leads(1000)
    same = paired_evidence(y, good, good, draws=100)
    assert same.ok and not same.recommended
    assert same.difference["roc_auc"] == pytest.approx((0.0, 0.0, 0.0))


def _promotion(accepted: bool, reason: str, forced: bool = False) -> Promotion:
    return Promotion("m", "1", "2", forced, accepted, reason, kind="promotion")


def test_evidence_and_gate_must_both_agree():
    ok_gate = _promotion(True, "ROC AUC change +0.0010")
    assert _with_evidence(ok_gate, (True, "fine")).accepted
    refused = _with_evidence(ok_gate, (False, "worse live"))
    assert not refused.accepted and refused.reason == "ROC AUC change +0.0010, but worse live"
    both = _with_evidence(_promotion(False, "ROC AUC drops"), (False, "worse live"))
    assert not both.accepted and both.reason == "ROC AUC drops; worse live"
    forced = _with_evidence(_promotion(True, "ok", forced=True), (False, "worse live"))
    assert forced.accepted and forced.kind == "forced"
    assert forced.reason == "FORCED although: worse live"
