"""The promotion gate: a worse challenger is refused and the champion stays; a challenger
without skill is refused, on the first promotion too; the gate scores the challenger's own
holdout (the export's end included); rollback (--to) and --force work and are recorded."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.registry import RegistryError, describe_version, gate, promote, version_for
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


# ------------------------------------------------------------ minimum skill, right holdout


def _relabel_without_signal(src: Path, out: Path, share: float = 0.5, seed: int = 5) -> Path:
    """A random ``share`` of the simulated export's leads with their MQL -> SAL outcome
    replaced by chance: every MQL reaches SAL after an exponential delay (the same for
    everyone, and memoryless, so even a snapshot's age says nothing), later stages
    dropped. Features keep all their variety; the labels carry no signal."""
    from crm.contract import CrmData, read_tables, write_tables
    from crm.vocabulary import STAGE_RANK

    data = read_tables(src)
    rng = np.random.default_rng(seed)
    leads = data.leads[rng.random(len(data.leads)) < share]
    sh = data.stage_history[data.stage_history["lead_id"].isin(leads["lead_id"])]
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    end = sh["entered_at"].max()
    rank = sh["stage"].astype(str).map(STAGE_RANK)
    mql = sh[sh["stage"].astype(str) == "mql"].groupby("lead_id", observed=True)["entered_at"]
    mql_at = mql.min()
    sal_at = mql_at + pd.to_timedelta(rng.exponential(500.0, len(mql_at)), unit="D")
    sal_at = sal_at[sal_at <= end]
    sal = pd.DataFrame({"lead_id": sal_at.index, "stage": "sal", "entered_at": sal_at.values})
    kept = sh[rank < STAGE_RANK["sal"]]
    sal = sal.astype({"lead_id": kept["lead_id"].dtype, "stage": kept["stage"].dtype})
    history = pd.concat([kept, sal], ignore_index=True)
    write_tables(CrmData(data.accounts, leads, events, history), out)
    return out


def test_no_signal_export_is_refused_on_first_promotion_unless_forced(
    sim_dir, tmp_path, own_mlflow_store
):
    """Issue 13: labels without signal trained, registered and promoted to champion, and a
    second no-skill model passed the gate. The first promotion (no champion to compare
    with) needs skill too, --force overrides, and a challenger without skill is refused
    even when the champion is no better."""
    from typer.testing import CliRunner

    from leadscore.cli import app
    from training.train import train

    data_dir = _relabel_without_signal(sim_dir, tmp_path / "no-signal")
    result = train(data_dir, target="sal", seed=11)
    client = MlflowClient(own_mlflow_store)

    res = CliRunner().invoke(app, ["promote"])
    assert res.exit_code == 1, res.output
    said = " ".join(res.output.split())  # rich wraps long lines
    assert "first: the challenger shows no skill on its own holdout. No skill: " in said
    assert "--force" in said
    with pytest.raises(RegistryError):
        version_for("champion")  # refused: still no champion
    tags = client.get_model_version(MODEL_NAME, result.model_version).tags
    assert tags["promotion_decision"] == "refused" and tags["promotion_skill"] == "none"
    assert tags["promotion_skill_sentence"].startswith("No skill: ")

    forced = promote(force=True)
    assert forced.accepted and forced.forced and forced.kind == "forced"
    assert forced.reason.startswith("FORCED although: the challenger shows no skill")
    assert not forced.skill.has_skill
    assert version_for("champion") == result.model_version
    tags = client.get_model_version(MODEL_NAME, result.model_version).tags
    assert tags["promotion_forced"] == "true" and tags["promotion_skill"] == "none"

    # a second no-skill model against the no-skill champion: within the tolerances of
    # the comparison, perhaps, but refused for want of skill
    second = train(data_dir, target="sal", seed=12)
    p = promote()
    assert not p.accepted and p.kind == "promotion"
    assert set(p.comparison) == {"challenger", "champion"}
    assert "the challenger shows no skill on its own holdout. No skill: " in p.reason
    assert version_for("champion") == result.model_version != second.model_version
    runs = mlflow.search_runs(filter_string="tags.model_kind = 'promotion'")
    assert set(runs["tags.skill"]) == {"none"}
    assert sorted(runs["tags.decision"]) == ["accepted", "refused", "refused"]


IMPORT_MAPPING = """
    version: 1
    name: gate-holdout
    sources: [{name: leads, file: "leads.csv"}]
    fields:
      lead_id: Id
      created_at: {column: Created, format: "%Y-%m-%d %H:%M"}
      source: Source
    label: {column: Won, positive: ["1"], negative: ["0"], stage: customer, at: {offset: 1d}}
    attributes:
      Segment: categorical
      Fit: numeric
    exported_at: "2024-12-31"
"""


def _imported_export(tmp_path: Path, n: int = 1500, seed: int = 3) -> Path:
    """A generated CSV export (one row per lead, a won flag informed by its columns), imported
    with a mapping whose ``exported_at`` lies half a year after the last lead."""
    import textwrap

    from crm.importer import import_export

    rng = np.random.default_rng(seed)
    fit = rng.normal(size=n)
    segment = rng.choice(["SMB", "Mid", "Enterprise"], n)
    source = rng.choice(["web", "fair", "referral"], n)
    # signal spread over three columns, so none of them looks like a leak on its own
    logit = -1.8 + 0.8 * fit + 1.0 * (segment == "Enterprise") + 1.0 * (source == "referral")
    won = rng.random(n) < 1 / (1 + np.exp(-logit))
    hours = np.sort(rng.choice(546 * 24, n, replace=False))  # distinct: no ties at a cut
    created = pd.Timestamp("2023-01-01") + pd.to_timedelta(hours, "h")
    pd.DataFrame(
        {
            "Id": [f"C{i:05d}" for i in range(n)],
            "Created": created.strftime("%Y-%m-%d %H:%M"),
            "Source": source,
            "Segment": segment,
            "Fit": fit.round(3),
            "Won": won.astype(int),
        }
    ).to_csv(tmp_path / "leads.csv", index=False)
    mapping = tmp_path / "gate.yaml"
    mapping.write_text(textwrap.dedent(IMPORT_MAPPING).lstrip(), encoding="utf-8")
    out = tmp_path / "imported"
    import_export(mapping, [tmp_path / "leads.csv"], out)
    return out


@pytest.mark.slow  # imports an export and trains two models
def test_gate_scores_the_challengers_own_holdout_on_an_import(tmp_path, own_mlflow_store):
    """On an import with ``exported_at``, the gate rebuilds the holdout with that end: the
    same rows as train's holdout, all after the rows it was fitted and calibrated on. (Built
    without the end, as the gate used to, the holdout starts among the training rows.)"""
    import json

    from crm.contract import read_tables
    from training.dataset import build_training_set
    from training.registry import gate_holdout, load_version
    from training.train import train

    data_dir = _imported_export(tmp_path)
    result = train(data_dir, target="customer", horizon_days=30, seed=11)
    p = promote()
    assert p.kind == "first" and p.accepted and p.skill.has_skill, p.reason
    assert p.comparison["challenger"]["n_holdout"] == result.metrics["n_holdout"]

    challenger = load_version(MODEL_NAME, result.model_version)
    tags = MlflowClient(own_mlflow_store).get_model_version(MODEL_NAME, result.model_version).tags
    hs = gate_holdout(challenger, data_dir, tags)
    entry = hs.ts.entry_as_of.iloc[hs.holdout]
    split = challenger.metadata["split"]
    assert len(entry) == result.metrics["n_holdout"]
    assert entry.min() > pd.Timestamp(split["calibration_to"]) > pd.Timestamp(split["fit_to"])
    assert entry.min() == pd.Timestamp(split["holdout_from"])

    # the old construction (no export end) really would have scored training rows
    old = build_training_set(read_tables(data_dir), "customer", 30, challenger.feature_config)
    assert old.entry_as_of.iloc[old.split().holdout].min() <= pd.Timestamp(split["calibration_to"])

    # the same folder without its export date: the rebuilt holdout moves into the
    # challenger's training rows, and the gate says the data changed instead of scoring
    fields = json.loads((data_dir / "custom_fields.json").read_text())
    fields["exported_at"] = None
    (data_dir / "custom_fields.json").write_text(json.dumps(fields))
    with pytest.raises(RegistryError, match="data changed since version .* was trained"):
        gate_holdout(challenger, data_dir, tags, version=result.model_version)


def test_missing_data_folder_is_named_with_the_way_out(tmp_path):
    from training.registry import data_source

    gone = tmp_path / "moved-away"
    with pytest.raises(RegistryError, match=f"trained on {gone}, which is not there.*--data DIR"):
        data_source("7", {"data_dir": str(gone)})
    with pytest.raises(RegistryError, match="does not record its data; pass --data DIR"):
        data_source("7", {})
    here, same = data_source("7", {"data_dir": str(tmp_path)}, data_dir=tmp_path)
    assert here == tmp_path.resolve() and same
