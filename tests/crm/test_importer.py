"""`leadscore import`'s engine: CRM exports mapped onto the contract by YAML alone.

The two shipped exports are imported for real where ``../shared/data`` exists; the bad
cases run on 3-row CSVs written into tmp_path."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from crm.contract import read_tables
from crm.importer import (
    MAPPINGS_DIR,
    ImportDataError,
    ImportSummary,
    MappingError,
    import_export,
    load_custom_fields,
    load_mapping,
    snake_name,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
X_EDUCATION = SHARED_DATA / "x-education-leads" / "Leads.csv"
OLIST = SHARED_DATA / "olist-marketing-funnel"

needs_x_education = pytest.mark.skipif(
    not X_EDUCATION.exists(), reason=f"X Education export not found at {X_EDUCATION}"
)
needs_olist = pytest.mark.skipif(
    not OLIST.is_dir(), reason=f"Olist marketing funnel export not found at {OLIST}"
)

X_LEAKY = [
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Last Activity",
    "Last Notable Activity",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
]


# --------------------------------------------------------------------------- shipped


def test_shipped_mappings_load():
    x = load_mapping(MAPPINGS_DIR / "x-education.yaml")
    assert x.fields["created_at"].from_order == "Lead Number"
    assert x.label.stage == "customer" and x.label.at.offset == "1d"
    assert x.missing_values == ["Select"]
    # YAML 1.1 would read the keys Yes/No as booleans; the mapping keeps them as text.
    assert x.attributes["Do Not Email"].values == {"Yes": True, "No": False}
    o = load_mapping(MAPPINGS_DIR / "olist.yaml")
    assert [s.name for s in o.sources] == ["mqls", "deals"]
    assert o.sources[1].join is not None and o.sources[1].join.how == "left"
    assert o.sources[1].after_outcome


@pytest.fixture(scope="module")
def x_education(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportSummary, Path]:
    if not X_EDUCATION.exists():
        pytest.skip(f"X Education export not found at {X_EDUCATION}")
    out = tmp_path_factory.mktemp("x-education") / "data"
    return import_export(MAPPINGS_DIR / "x-education.yaml", [X_EDUCATION], out), out


@pytest.fixture(scope="module")
def olist(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportSummary, Path]:
    if not OLIST.is_dir():
        pytest.skip(f"Olist marketing funnel export not found at {OLIST}")
    out = tmp_path_factory.mktemp("olist") / "data"
    return import_export("olist", [OLIST], out), out


@needs_x_education
def test_x_education_rows_label_and_stages(x_education):
    summary, out = x_education
    data = read_tables(out)
    assert summary.leads == len(data.leads) == 9240
    assert summary.positives == 3561 and round(summary.positive_rate, 3) == 0.385
    assert summary.stage_counts == {"lead": 9240, "customer": 3561}
    assert len(data.events) == 0 and list(data.events.columns) == [
        "lead_id",
        "at",
        "type",
        "topic",
        "content_id",
    ]
    assert str(data.events["at"].dtype) == "datetime64[ns]"
    # created_at follows Lead Number, one hour apart; customers enter one day later
    raw = pd.read_csv(X_EDUCATION, usecols=["Prospect ID", "Lead Number", "Converted"])
    leads = data.leads.set_index("lead_id").loc[raw["Prospect ID"]]
    order = raw["Lead Number"].rank().to_numpy() - 1
    expected = pd.Timestamp("2020-01-01") + pd.to_timedelta(order, unit="h")
    assert (leads["created_at"].to_numpy() == expected.to_numpy()).all()
    sh = data.stage_history
    cust = sh[sh["stage"] == "customer"].set_index("lead_id")["entered_at"]
    assert set(cust.index) == set(raw.loc[raw["Converted"] == 1, "Prospect ID"])
    delay = cust - data.leads.set_index("lead_id").loc[cust.index, "created_at"]
    assert (delay == pd.Timedelta("1D")).all()
    # country goes to one account per lead (the export has no company)
    assert len(data.accounts) == 9240
    assert (data.leads["account_id"] == data.leads["lead_id"]).all()
    assert "unknown" not in set(data.accounts["country"].dropna())


@needs_x_education
def test_x_education_select_is_missing_and_custom_columns_survive(x_education):
    summary, out = x_education
    leads = read_tables(out).leads
    raw = pd.read_csv(X_EDUCATION, dtype=str, keep_default_na=False)
    for column in leads.columns[leads.columns.str.startswith("attr_")]:
        assert not (leads[column].astype("string") == "Select").any(), column
    spec = raw["Specialization"]
    assert leads["attr_specialization"].isna().sum() == ((spec == "Select") | (spec == "")).sum()
    assert leads["attr_city"].isna().sum() == raw["City"].isin(["Select", ""]).sum()
    # kinds survive validate + write + read
    assert isinstance(leads["attr_lead_origin"].dtype, pd.StringDtype)
    assert str(leads["attr_do_not_email"].dtype) == "boolean"
    assert int(leads["attr_do_not_email"].sum()) == 734
    assert leads["counter_total_visits"].dtype == "float64"
    assert leads["counter_total_visits"].isna().sum() == 137  # missing stays missing
    assert leads["counter_time_on_website"].max() == 2272
    assert set(leads["attr_lead_source"].dropna()) >= {"Google"}
    assert "google" not in set(leads["attr_lead_source"].dropna())


@needs_x_education
def test_x_education_leaky_columns_left_out(x_education):
    summary, out = x_education
    leads = read_tables(out).leads
    for column in X_LEAKY:
        assert "attr_" + snake_name(column) not in leads.columns
    assert not any("tags" in c or "quality" in c or "asymmetrique" in c for c in leads.columns)
    payload = json.loads((out / "custom_fields.json").read_text())
    assert payload["leaky"] == X_LEAKY
    assert payload["label_stage"] == "customer"
    assert payload["counters"] == [
        "counter_total_visits",
        "counter_time_on_website",
        "counter_page_views_per_visit",
    ]
    assert payload["attributes"]["attr_lead_origin"] == "categorical"
    assert payload["attributes"]["attr_do_not_email"] == "boolean"
    assert payload["attributes"]["attr_occupation"] == "categorical"
    assert payload["sources"]["attr_occupation"] == "What is your current occupation"
    assert set(payload["attributes"]) | set(payload["counters"]) == {
        c for c in leads.columns if c.startswith(("attr_", "counter_"))
    }
    fields = load_custom_fields(out)
    assert fields is not None and fields.label_stage == "customer"
    assert fields.columns == tuple(payload["attributes"]) + tuple(payload["counters"])
    assert fields.exported_at == pd.Timestamp("2022-01-23")
    with pytest.raises(TypeError):
        fields.attributes["attr_x"] = "numeric"  # type: ignore[index]


@needs_x_education
def test_x_education_leaky_columns_mapped_on_purpose(tmp_path):
    out = tmp_path / "leaky"
    summary = import_export("x-education", [X_EDUCATION], out, include_leaky=True)
    fields = load_custom_fields(out)
    assert fields is not None and fields.leaky == ()
    assert {"attr_tags", "attr_lead_quality"} <= set(fields.leaky_included)
    assert fields.attributes["attr_tags"] == "categorical"
    assert fields.attributes["attr_asymmetrique_activity_score"] == "numeric"
    leads = read_tables(out).leads
    assert leads["attr_tags"].notna().sum() == 9240 - 3353
    assert summary.leads == 9240


@needs_olist
def test_olist_join_label_and_stages(olist):
    summary, out = olist
    data = read_tables(out)
    assert summary.leads == 8000 and summary.positives == 842
    assert round(summary.positive_rate, 3) == 0.105
    assert summary.stage_counts == {"lead": 8000, "mql": 8000, "customer": 842}
    mqls = pd.read_csv(OLIST / "olist_marketing_qualified_leads_dataset.csv")
    deals = pd.read_csv(OLIST / "olist_closed_deals_dataset.csv")
    leads = data.leads.set_index("lead_id")
    created = leads.loc[mqls["mql_id"], "created_at"].to_numpy()
    assert (created == pd.to_datetime(mqls["first_contact_date"]).to_numpy()).all()
    sh = data.stage_history
    won = sh[sh["stage"] == "customer"].set_index("lead_id")["entered_at"]
    expected = pd.to_datetime(deals.set_index("mql_id")["won_date"]).loc[won.index]
    moved = won != expected
    # one deal is dated two days before its first contact: moved up to the MQL entry
    assert moved.sum() == 1 and len(summary.warnings) == 1
    assert won[moved].iloc[0] == leads.loc[won[moved].index[0], "created_at"]
    fields = load_custom_fields(out)
    assert fields is not None
    assert dict(fields.attributes) == {
        "attr_origin": "categorical",
        "attr_landing_page_id": "categorical",
    }
    assert fields.counters == ()
    assert set(fields.leaky) == set(deals.columns) - {"mql_id"}
    for column in deals.columns.drop("mql_id"):
        assert column not in data.leads.columns and "attr_" + column not in data.leads.columns
    assert fields.exported_at is None


# --------------------------------------------------------------------------- hand-made


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


MAPPING = """
    version: 1
    name: tiny
    sources:
      - name: leads
        file: "leads*.csv"
        csv: {separator: ";", trailing_empty_column: true}
    missing_values: ["Select"]
    fields:
      lead_id: Id
      created_at: {column: Created, format: "%d.%m.%Y"}
      source: {column: Source, missing_values: ["n/a"]}
      do_not_email: {column: Opt Out, values: {"Yes": true, "No": false}, strict: true}
    label: {column: Won, positive: ["1"], negative: ["0"], stage: customer, at: {offset: 1d}}
    leaky: [Tags]
    attributes:
      Segment: categorical
      Opt Out: {kind: boolean, values: {"Yes": true, "No": false}, strict: true}
      Employees: numeric
    counters: [Visits]
"""

GOOD_CSV = """
    Id;Created;Source;Opt Out;Segment;Employees;Visits;Tags;Won;
    L1;01.02.2024;web;No;SMB;12;3;hot;1;
    L2;02.02.2024;n/a;Yes;Select;;0;;0;
    L3;03.02.2024;fair;No;Enterprise;1500;7;cold;0;
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    mapping = write(tmp_path / "tiny.yaml", MAPPING)
    export = write(tmp_path / "leads.csv", GOOD_CSV)
    return mapping, export


def test_tiny_import_round_trip(tiny, tmp_path):
    mapping, export = tiny
    out = tmp_path / "out"
    summary = import_export(mapping, [export], out)
    assert sorted(p.name for p in out.iterdir()) == [
        "accounts.parquet",
        "custom_fields.json",
        "events.parquet",
        "leads.parquet",
        "stage_history.parquet",
    ]
    data = read_tables(out)
    leads = data.leads.set_index("lead_id")
    assert pd.isna(leads.loc["L2", "source"])  # per-column placeholder
    assert pd.isna(leads.loc["L2", "attr_segment"])  # global placeholder
    assert leads["attr_opt_out"].tolist() == [False, True, False]
    assert leads["attr_employees"].tolist()[::2] == [12.0, 1500.0]
    assert pd.isna(leads.loc["L2", "attr_employees"])
    assert leads["counter_visits"].tolist() == [3.0, 0.0, 7.0]
    assert leads.loc["L3", "created_at"] == pd.Timestamp("2024-02-03")
    assert "attr_tags" not in leads.columns and "Tags" not in leads.columns
    assert summary.positives == 1 and summary.stage_counts == {"lead": 3, "customer": 1}
    assert len(data.accounts) == 0
    fields = load_custom_fields(out)
    assert fields is not None
    assert dict(fields.attributes) == {
        "attr_segment": "categorical",
        "attr_opt_out": "boolean",
        "attr_employees": "numeric",
    }
    assert fields.counters == ("counter_visits",) and fields.leaky == ("Tags",)

    # a second import replaces the folder's content
    write(export, GOOD_CSV.replace("L3;03.02.2024", "L4;03.02.2024"))
    import_export(mapping, [export], out)
    assert set(read_tables(out).leads["lead_id"]) == {"L1", "L2", "L4"}


def test_export_saved_under_another_name_is_taken(tiny, tmp_path):
    mapping, export = tiny
    renamed = export.rename(tmp_path / "crm dump.csv")
    assert import_export(mapping, [renamed], tmp_path / "out").leads == 3


def test_no_custom_fields_file_means_none(tmp_path):
    assert load_custom_fields(tmp_path) is None


def expect_failure(mapping: Path, export: Path, tmp_path: Path, exc: type[Exception]) -> str:
    """Run an import that must fail and prove nothing was written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous content")
    before = sorted(tmp_path.iterdir())
    with pytest.raises(exc) as info:
        import_export(mapping, [export], out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(tmp_path.iterdir()) == before  # no temporary folder left behind
    return str(info.value)


def test_missing_column_is_named(tiny, tmp_path):
    mapping, export = tiny
    write(export, GOOD_CSV.replace("Segment", "Segmnt"))
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "'Segment'" in msg and "column not found (used by attributes.Segment)" in msg
    assert "did you mean 'Segmnt'" in msg


def test_unparseable_date_names_column_row_and_value(tiny, tmp_path):
    mapping, export = tiny
    write(export, GOOD_CSV.replace("02.02.2024", "2024-02-30"))
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "leads.csv, column 'Created'" in msg
    assert "row 2 ('2024-02-30')" in msg and "'%d.%m.%Y'" in msg


def test_negative_counter_names_column_and_row(tiny, tmp_path):
    mapping, export = tiny
    write(export, GOOD_CSV.replace("fair;No;Enterprise;1500;7", "fair;No;Enterprise;1500;-7"))
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "column 'Visits'" in msg and "must not be negative" in msg and "row 3 ('-7')" in msg


def test_non_numeric_counter_and_strict_value_map(tiny, tmp_path):
    mapping, export = tiny
    text = GOOD_CSV.replace("web;No;SMB;12;3", "web;Maybe;SMB;12;three")
    write(export, text)
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "column 'Visits'" in msg and "not a number" in msg and "row 1 ('three')" in msg
    assert "column 'Opt Out'" in msg and "strict value map" in msg and "row 1 ('Maybe')" in msg


def test_duplicate_id(tiny, tmp_path):
    mapping, export = tiny
    write(export, GOOD_CSV.replace("L2;", "L1;"))
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "duplicate lead id" in msg and "row 1 ('L1'), row 2 ('L1')" in msg


def test_unknown_label_value_is_left_out_and_reported(tiny, tmp_path):
    """With positive and negative given, a row holding another label value is left out
    (issue 14: an export may hold open deals) and the warning counts and quotes it."""
    mapping, export = tiny
    write(export, GOOD_CSV.replace("cold;0;", "cold;yes;"))
    summary = import_export(mapping, [export], tmp_path / "out")
    assert summary.leads == 2 and summary.left_out == 1
    assert set(read_tables(tmp_path / "out").leads["lead_id"]) == {"L1", "L2"}
    (warning,) = summary.warnings
    assert "left out 1 row(s) of leads.csv whose 'Won'" in warning
    assert "'yes' (1: row 3)" in warning


def test_leaky_column_mapped_by_accident_is_refused(tiny, tmp_path):
    mapping, export = tiny
    text = textwrap.dedent(MAPPING)
    text = text.replace("  Segment: categorical", "  Segment: categorical\n  Tags: categorical")
    mapping.write_text(text)
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "'Tags'" in msg and "include_leaky" in msg
    out = tmp_path / "on-purpose"
    import_export(mapping, [export], out, include_leaky=True)
    fields = load_custom_fields(out)
    assert fields is not None and fields.leaky_included == ("attr_tags",) and fields.leaky == ()


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (("stage: customer", "stage: client"), "label.stage"),
        (("counters: [Visits]", "counters: [Visits]\nweights: 3"), "weights"),
        (("lead_id: Id", "lead_key: Id"), "fields.lead_key"),
        (('format: "%d.%m.%Y"', "from_order: Id"), "fields.created_at"),
        (("Segment: categorical", "Segment: text"), "attributes.Segment.kind"),
        (("name: tiny", "name: tiny\nname: again"), "duplicate key 'name'"),
    ],
)
def test_bad_mapping_names_the_key(tiny, tmp_path, edit, key):
    mapping, export = tiny
    text = textwrap.dedent(MAPPING).replace(*edit)
    mapping.write_text(text)
    msg = expect_failure(mapping, export, tmp_path, MappingError)
    assert key in msg


TWO_FILES = """
    version: 1
    name: joined
    sources:
      - {name: mqls, file: "mqls.csv"}
      - {name: deals, file: "deals.csv", join: {on: mql_id}, after_outcome: true}
    fields:
      lead_id: mql_id
      created_at: {column: first_contact_date, format: "%Y-%m-%d"}
    stages:
      - {stage: mql, at: {column: first_contact_date, format: "%Y-%m-%d"}}
    label: {column: won_date, stage: customer, at: {column: won_date}}
    attributes: {origin: categorical}
"""


def test_left_join_keeps_every_lead(tmp_path):
    mapping = write(tmp_path / "joined.yaml", TWO_FILES)
    mqls = write(
        tmp_path / "mqls.csv",
        """
        mql_id,first_contact_date,origin
        m1,2018-01-02,social
        m2,2018-01-03,unknown
        m3,2018-01-04,
        """,
    )
    deals = write(
        tmp_path / "deals.csv",
        """
        mql_id,won_date,seller_id
        m2,2018-02-01 10:00:00,s9
        m7,2018-02-03 10:00:00,s8
        """,
    )
    out = tmp_path / "out"
    summary = import_export(mapping, [deals, mqls], out)
    assert summary.leads == 3 and summary.positives == 1
    assert summary.stage_counts == {"lead": 3, "mql": 3, "customer": 1}
    assert any("1 row(s)" in w for w in summary.warnings)  # m7 has no MQL
    fields = load_custom_fields(out)
    assert fields is not None and fields.leaky == ("won_date", "seller_id")
    sh = read_tables(out).stage_history
    assert sh.loc[sh["stage"] == "customer", "entered_at"].tolist() == [
        pd.Timestamp("2018-02-01 10:00")
    ]


def test_duplicate_join_key_is_an_error(tmp_path):
    mapping = write(tmp_path / "joined.yaml", TWO_FILES)
    mqls = write(tmp_path / "mqls.csv", "mql_id,first_contact_date,origin\nm1,2018-01-02,x\n")
    deals = write(
        tmp_path / "deals.csv",
        "mql_id,won_date,seller_id\nm1,2018-02-01 10:00:00,a\nm1,2018-02-02 10:00:00,b\n",
    )
    msg = expect_failure(mapping, mqls, tmp_path, ImportDataError)  # deals.csv not given
    assert "no input file matches source 'deals'" in msg
    out = tmp_path / "out"
    with pytest.raises(ImportDataError, match=r"deals.csv, column 'mql_id': duplicate join key"):
        import_export(mapping, [mqls, deals], out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_created_at_from_order(tmp_path):
    mapping = write(
        tmp_path / "ordered.yaml",
        """
        name: ordered
        sources: [{name: leads}]
        fields:
          lead_id: id
          created_at: {from_order: number, start: "2020-01-01", step: 1h}
        label: {column: won, positive: [1], stage: customer, at: {offset: 1d}}
        exported_at: "2019-12-31"
        """,
    )
    export = write(tmp_path / "x.csv", "id,number,won\na,30,1\nb,10,0\nc,20,0\n")
    msg = expect_failure(mapping, export, tmp_path, ImportDataError)
    assert "exported_at" in msg and "before the latest date" in msg
    mapping.write_text(mapping.read_text().replace("2019-12-31", "2020-06-01"))
    out = tmp_path / "ok"
    import_export(mapping, [export], out)
    leads = read_tables(out).leads.set_index("lead_id")
    assert leads["created_at"].to_dict() == {
        "a": pd.Timestamp("2020-01-01 02:00"),
        "b": pd.Timestamp("2020-01-01 00:00"),
        "c": pd.Timestamp("2020-01-01 01:00"),
    }


def test_mapping_field_names_are_the_contract_columns() -> None:
    """The mapping schema spells the canonical fields out for pydantic; they must stay the
    contract's lead and account columns."""
    from typing import get_args

    from crm.contract import SCHEMAS
    from crm.importer import CanonicalField

    assert set(get_args(CanonicalField)) == {*SCHEMAS["leads"], *SCHEMAS["accounts"]}
