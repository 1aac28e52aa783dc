"""The two public CRM exports, through the shipped mappings: leakage is caught, and honest
models reach the time-holdout quality the README reports. Skips where ../shared/data is
absent (a user's fresh clone); runs in CI, where it is present."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.contract import read_tables
from features.importer import import_export, load_custom_fields
from training.dataset import build_training_set, time_split
from training.leakage import LeakageError
from training.train import fit_model, holdout_metrics, import_feature_config, leakage_gate

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

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
    return ts, time_split(len(ts.y)), config, custom


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
    ts, split, config, _ = prepared(mapping, source, tmp_path / mapping)
    model = fit_model(ts, split, {}, 7, config)
    hold = split.holdout
    p = model.score(ts.X.iloc[hold])["p_convert"].to_numpy()
    metrics = holdout_metrics(ts.y[hold], p)
    assert metrics["roc_auc"] >= min_auc, metrics
