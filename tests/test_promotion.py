"""The promotion gate: a worse challenger is refused and the champion stays; rollback
(--to) and --force work and are recorded."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from training.registry import describe_version, gate, promote, version_for
from training.tracking import MODEL_NAME


def test_gate_tolerances():
    champ = {"roc_auc": 0.85, "ece": 0.02}
    assert gate({"challenger": {"roc_auc": 0.845, "ece": 0.025}, "champion": champ})[0]
    assert not gate({"challenger": {"roc_auc": 0.83, "ece": 0.02}, "champion": champ})[0]
    assert not gate({"challenger": {"roc_auc": 0.85, "ece": 0.05}, "champion": champ})[0]
    ok, reason = gate({"challenger": dict(champ), "champion": champ})  # retrained, same
    assert ok and reason.startswith("ROC AUC change +0.0000, ECE change +0.0000")


@pytest.fixture
def crippled(trained):
    """A challenger that cannot split (one leaf): worse by construction. Aliases are
    restored afterwards so the other tests see the session's model."""
    from training.train import train

    before = {a: version_for(a) for a in ("champion", "challenger")}
    result = train(trained.data_dir, target="sal", seed=11, params={"min_child_samples": 100_000})
    yield result
    client = MlflowClient(trained.tracking_uri)
    for alias, v in before.items():
        client.set_registered_model_alias(MODEL_NAME, alias, v)


def test_worse_challenger_is_refused_then_rollback_and_force(trained, crippled):
    champion = version_for("champion")
    p = promote()
    assert not p.accepted
    assert "ROC AUC drops" in p.reason
    assert version_for("champion") == champion
    client = MlflowClient(trained.tracking_uri)
    tags = client.get_model_version(MODEL_NAME, crippled.model_version).tags
    assert tags["promotion_decision"] == "refused"

    forced = promote(force=True)
    assert forced.accepted and forced.kind == "forced"
    assert version_for("champion") == crippled.model_version

    back = promote(to_version=champion)
    assert back.kind == "rollback"
    assert version_for("champion") == champion
    # what promote prints about each version, from the tags train set on it
    said = describe_version(crippled.model_version)
    auc = crippled.metrics["roc_auc"]
    assert f"version {crippled.model_version}: target sal, data {trained.data_dir}" in said
    assert f"ROC AUC {auc:.4f}" in said


def test_challenger_for_another_target_needs_force(trained):
    """A champion answering sal/mql and a challenger predicting opportunity share no holdout: the
    gate says so and names the ways out instead of comparing the wrong probabilities."""
    from training.registry import RegistryError
    from training.train import train

    before = {a: version_for(a) for a in ("champion", "challenger")}
    client = MlflowClient(trained.tracking_uri)
    try:
        other = train(trained.data_dir, target="opportunity", seed=11)
        with pytest.raises(RegistryError, match="cannot be compared.*--force.*--to"):
            promote()
        assert version_for("champion") == before["champion"]
        forced = promote(force=True)
        assert forced.accepted and forced.kind == "forced"
        assert "predicts 'opportunity'" in forced.reason
        assert version_for("champion") == other.model_version
        tags = client.get_model_version(MODEL_NAME, other.model_version).tags
        assert tags["promotion_forced"] == "true"
    finally:
        for alias, v in before.items():
            client.set_registered_model_alias(MODEL_NAME, alias, v)
