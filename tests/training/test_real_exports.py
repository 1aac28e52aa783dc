"""The two public CRM exports, through the shipped mappings: leakage is caught, and honest
models reach the time-holdout quality the README reports. Skips where ../shared/data is
absent (a user's fresh clone); runs in CI, where it is present."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from crm.contract import read_tables
from crm.importer import import_export, load_custom_fields
from features.build import compute_features
from training.config import TrainConfig
from training.dataset import build_training_set
from training.evaluate import binary_metrics
from training.fit import choose_and_fit
from training.leakage import LeakageError
from training.prepare import import_feature_config, leakage_gate

pytestmark = pytest.mark.slow  # trains on the two shared exports

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"

XED = SHARED_DATA / "x-education-leads" / "Leads.csv"
OLIST = SHARED_DATA / "olist-marketing-funnel"
needs_data = pytest.mark.skipif(
    not XED.exists() or not OLIST.exists(), reason=f"real exports not found under {SHARED_DATA}"
)


def prepared(mapping: str, source: Path, out: Path, include_leaky: bool = False):
    import_export(mapping, [source], out, include_leaky=include_leaky)
    data = read_tables(out)
    custom = load_custom_fields(out)
    config = import_feature_config(data, custom)
    ts = build_training_set(
        data, target="customer", config=config, end=custom.exported_at if custom else None
    )
    return ts, ts.split(), config, custom


@needs_data
def test_leakage_check_flags_tags_and_lead_quality(tmp_path):
    ts, split, config, custom = prepared("x-education", XED, tmp_path / "x", include_leaky=True)
    with pytest.raises(LeakageError) as exc:
        leakage_gate(ts, split, config, custom, (), lambda m: None)
    flagged = {f.source for f in exc.value.findings}
    assert flagged == {"Tags", "Lead Quality"}
    assert "--allow-leaky attr_tags" in str(exc.value)
    # allowed by the export's own column names, training goes on
    allowed = leakage_gate(ts, split, config, custom, ("Tags", "lead quality"), lambda m: None)
    assert {f.source for f in allowed} == {"Tags", "Lead Quality"}


@needs_data
def test_honest_mappings_pass_the_leakage_check(tmp_path):
    for name, source in (("x-education", XED), ("olist", OLIST)):
        ts, split, config, custom = prepared(name, source, tmp_path / name)
        assert leakage_gate(ts, split, config, custom, (), lambda m: None) == []


@needs_data
@pytest.mark.parametrize(
    ("mapping", "source", "min_auc"),
    [("x-education", XED, 0.89), ("olist", OLIST, 0.70)],
)
def test_time_holdout_quality_on_real_exports(tmp_path, mapping, source, min_auc):
    """The chosen model reaches the published quality and is not below any baseline
    beyond the paired 95 % interval (all fitted on the same rows before the holdout)."""
    from features.build import feature_columns
    from training.baselines import fit_baselines
    from training.evaluate import auc_intervals

    ts, split, config, _ = prepared(mapping, source, tmp_path / mapping)
    fitted = choose_and_fit(ts, split, config, TrainConfig(seed=7))
    hold, pre = split.holdout, fitted.pre
    p = fitted.model.score(ts.X.iloc[hold])["p_convert"].to_numpy()
    metrics = binary_metrics(ts.y[hold], p)
    assert metrics["roc_auc"] >= min_auc, metrics
    base = fit_baselines(
        feature_columns(config), ts.X.iloc[pre], ts.y[pre], ts.entry_as_of.iloc[pre],
        fitted.blocks, fitted.choice, ts.X.iloc[hold], {}, 7,
    )  # fmt: skip
    iv = auc_intervals(ts.y[hold], {"chosen": p, **base}, "chosen", groups=ts.X.index[hold])
    for name in base:
        assert iv[f"roc_auc_gain_vs_{name}_high"] >= 0, (name, iv, fitted.choice.reason)


@needs_data
def test_logistic_baseline_is_as_strong_as_the_published_reference(tmp_path):
    """A weak baseline flatters the model: on X Education the data folder's reference
    logistic regression reaches ROC AUC 0.894 (trained on 80 %); ours, fitted on the same
    rows before the holdout, must come close (it read numbers log-scaled only until
    2026-11-27: 0.879)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from features.build import feature_columns
    from training.selection import fit_calibrated_head, forward_blocks

    ts, split, config, _ = prepared("x-education", XED, tmp_path / "x")
    pre = np.concatenate([split.fit, split.calibration])
    head = fit_calibrated_head(
        "logistic", "uniform", None, "long-run", feature_columns(config), ts.X.iloc[pre],
        ts.y[pre], ts.entry_as_of.iloc[pre], forward_blocks(ts.X.index[pre]), {}, 7,
    )  # fmt: skip
    p = head.predict_proba(ts.X.iloc[split.holdout])[:, 1]
    assert roc_auc_score(ts.y[split.holdout], p) >= 0.885


@needs_data
def test_score_accepts_the_imports_custom_attributes_and_counters(tmp_path):
    """A model trained on an import lists its custom fields, and a /score lead carrying
    them gets the same answer as the batch path over the imported tables."""
    from scoring.batch import expected_custom_fields, input_flags, score_tables
    from serving.schemas import Lead, leads_to_tables, tables_to_requests

    ts, split, config, _ = prepared("x-education", XED, tmp_path / "x")
    model = choose_and_fit(ts, split, config, TrainConfig(seed=7)).model
    expected = expected_custom_fields(model)
    assert expected["attributes"]["lead_origin"] == "categorical"
    assert "time_on_website" in expected["counters"]

    data = read_tables(tmp_path / "x")
    one = data.leads.iloc[[-1]]
    moment = one["created_at"].iloc[0] + pd.Timedelta(hours=1)
    body = tables_to_requests(one, data.accounts, data.events, moment, data.stage_history)[0]
    assert body["counters"] and body["attributes"]
    body["attributes"]["not_a_field"] = "x"
    lead = Lead.model_validate(body)
    leads_df, accounts_df, events_df, stages_df = leads_to_tables([lead])
    http = score_tables(model, leads_df, accounts_df, events_df, moment, stages_df)
    one = data.leads.iloc[[-1]]
    batch = score_tables(model, one, data.accounts, data.events, moment, data.stage_history)
    for col in ("p_convert", "fit_score", "interest_score", "quadrant", "segment"):
        assert http[col].iloc[0] == batch[col].iloc[0], col
    assert http["p_convert"].iloc[0] == batch["p_convert"].iloc[0]
    X = compute_features(leads_df, accounts_df, events_df, moment, model.feature_config)
    flags = input_flags(leads_df, accounts_df, X).iloc[0]
    assert any("not_a_field" in f for f in flags)
