"""`leadscore mapping init`: a drafted mapping that a new user can import with at once (or
after the one edit the draft asks for), and that validates on the real X Education export."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from crm.contract import read_tables
from crm.importer import MappingLoader, import_export, load_custom_fields, load_mapping
from crm.mapping_schema import mapping_json_schema
from leadscore.cli import app

X_EDUCATION = Path(__file__).resolve().parents[3] / "shared" / "data" / "x-education-leads"


def init(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["mapping", "init", *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, res.output


def crm_export(path: Path, rows: int = 300) -> Path:
    rng = np.random.default_rng(3)
    converted = rng.random(rows) < 0.3
    df = pd.DataFrame(
        {
            "Lead Id": [f"L{i:04d}" for i in range(rows)],
            "Created On": [
                (pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(d))).strftime("%d.%m.%Y")
                for d in rng.integers(0, 300, rows)
            ],
            "Lead Source": rng.choice(["Google", "Referral", "Webinar", "Select"], rows),
            "Country": rng.choice(["DE", "FR", "US"], rows),
            "Email": [f"person{i}@{rng.choice(['gmail.com', 'acme.io'])}" for i in range(rows)],
            "Full Name": [f"Person Number {i}" for i in range(rows)],
            "Do Not Email": rng.choice(["Yes", "No"], rows),
            "Employees": rng.integers(1, 5000, rows),
            "Page Visits": rng.integers(0, 40, rows),
            "Lead Quality": np.where(converted, "High", rng.choice(["Low", "Medium"], rows)),
            "Close Reason": np.where(converted, "signed", ""),
            "Newsletter": "No",
            "Converted": converted.astype(int),
        }
    )
    df.to_csv(path, index=False, sep=";")
    return path


def test_drafted_mapping_imports_as_drafted(tmp_path):
    export = crm_export(tmp_path / "crm.csv")
    drafted = tmp_path / "crm.yaml"
    code, out = init(str(export), "--out", str(drafted))
    assert code == 0, out
    text = drafted.read_text()
    raw = yaml.safe_load(text)
    assert raw["sources"][0]["csv"] == {"separator": ";"}
    assert raw["missing_values"] == ["Select"]
    assert raw["fields"]["lead_id"] == "Lead Id"
    assert raw["fields"]["created_at"] == {"column": "Created On", "format": "%d.%m.%Y"}
    assert raw["fields"]["source"] == "Lead Source"
    assert raw["fields"]["email_domain_kind"] == {"column": "Email", "from_email": True}
    assert raw["label"]["column"] == "Converted"
    assert (raw["label"]["positive"], raw["label"]["negative"]) == (["1"], ["0"])
    assert raw["leaky"] == ["Lead Quality"]
    assert raw["known_after_outcome"] == ["Close Reason"]
    assert raw["counters"] == {"Page Visits": {}}
    assert raw["attributes"]["Employees"] == "numeric"
    assert raw["attributes"]["Do Not Email"] == "boolean"
    assert "Full Name" not in raw["attributes"] and "Newsletter" not in raw["attributes"]
    # every choice is explained in a comment
    assert "# 'Created On': dates like" in text and "Full Name (free text: 300 distinct" in text
    assert "Newsletter (holds 'No' in every row)" in text

    summary = import_export(drafted, [export], tmp_path / "out")
    assert summary.leads == 300 and summary.positives == int(
        pd.read_csv(export, sep=";")["Converted"].sum()
    )
    leads = read_tables(tmp_path / "out").leads
    assert "attr_lead_quality" not in leads.columns and "attr_close_reason" not in leads.columns
    assert set(leads["email_domain_kind"].dropna()) <= {"free", "business"}
    custom = load_custom_fields(tmp_path / "out")
    assert custom is not None and custom.leaky == ("Lead Quality",)


def test_opportunities_without_a_date_need_one_edit(tmp_path):
    """No date column, open deals beside won and lost: the draft spreads the rows between
    two placeholder dates (marked EDIT) and leaves the open deals out."""
    export = tmp_path / "opportunities.csv"
    stages = ["Won", "Lost", "Engaging", "Prospecting", "Won", "Lost"] * 10
    pd.DataFrame(
        {"opportunity": [f"o{i}" for i in range(60)], "account": "acme", "deal_stage": stages}
    ).to_csv(export, index=False)
    code, text = init(str(export))
    assert code == 0
    raw = yaml.safe_load(text)
    assert raw["label"]["drop"] == ["Engaging", "Prospecting"]
    assert "row_order" in raw["fields"]["created_at"] and "EDIT start and end" in text
    edited = tmp_path / "opportunities.yaml"
    edited.write_text(
        text.replace('"2020-01-01", end: "2020-12-31"', '"2022-03-01", end: "2022-09-30"')
    )
    summary = import_export(edited, [export], tmp_path / "out")
    assert summary.leads == 40 and summary.left_out == 20 and summary.positives == 20
    created = read_tables(tmp_path / "out").leads["created_at"]
    assert created.min() == pd.Timestamp("2022-03-01")
    assert created.max() == pd.Timestamp("2022-09-30")


def test_init_refuses_what_it_cannot_use(tmp_path):
    header_only = tmp_path / "empty.csv"
    header_only.write_text("id,won\n")
    code, out = init(str(header_only))
    assert code == 2 and "empty.csv: 0 rows" in out
    code, out = init(str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv: not a file" in out
    export = crm_export(tmp_path / "crm.csv", rows=20)
    existing = tmp_path / "mapping.yaml"
    existing.write_text("keep me")
    code, out = init(str(export), "--out", str(existing))
    assert code == 2 and "exists; pass --force" in out and existing.read_text() == "keep me"


@pytest.mark.skipif(not X_EDUCATION.is_dir(), reason=f"X Education not found at {X_EDUCATION}")
def test_x_education_draft_validates_and_imports(tmp_path):
    drafted = tmp_path / "x.yaml"
    code, out = init(str(X_EDUCATION / "Leads.csv"), "--out", str(drafted))
    assert code == 0, out
    mapping = load_mapping(drafted)
    schema = mapping_json_schema()
    raw = yaml.load(drafted.read_text(encoding="utf-8"), Loader=MappingLoader)  # noqa: S506
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(raw)) == []
    assert mapping.fields["lead_id"].column == "Prospect ID"
    assert mapping.fields["created_at"].from_order == "Lead Number"
    assert mapping.sources[0].csv.trailing_empty_column and mapping.missing_values == ["Select"]
    assert {"Tags", "Lead Quality"} <= set(mapping.leaky)
    summary = import_export(drafted, [X_EDUCATION / "Leads.csv"], tmp_path / "out")
    assert summary.leads == 9240 and summary.positives == 3561


OLIST = X_EDUCATION.parent / "olist-marketing-funnel"


@pytest.mark.slow
@pytest.mark.skipif(not OLIST.exists(), reason=f"shared exports not found under {OLIST.parent}")
@pytest.mark.parametrize(
    ("files", "min_auc"),
    [
        ([X_EDUCATION / "Leads.csv"], 0.85),
        (
            [
                OLIST / "olist_marketing_qualified_leads_dataset.csv",
                OLIST / "olist_closed_deals_dataset.csv",
            ],
            0.55,
        ),
    ],
    ids=["x-education", "olist"],
)
def test_a_drafted_mapping_of_each_shared_export_trains_a_model(
    tmp_path, own_mlflow_store, files, min_auc
):
    """mapping init -> import -> train with the draft as written and only the target on
    the command line: what a new user does with an export nobody mapped for them."""
    import json

    drafted = tmp_path / "draft.yaml"
    code, out = init(*map(str, files), "--out", str(drafted))
    assert code == 0, out
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["import", "--mapping", str(drafted), "--out", str(tmp_path / "data"),
         *map(str, files)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["train", "--data", str(tmp_path / "data"), "--target", "customer", "--json"]
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["skill"]["skill"] == "ok" and result["roc_auc"] >= min_auc, result["roc_auc"]
