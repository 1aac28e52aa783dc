"""The canonical contract: every bad row reported at once, nothing dropped, typed output."""

from __future__ import annotations

import pandas as pd
import pytest

from crm.contract import DataContractError, read_tables, validate, write_tables


def tables() -> dict[str, pd.DataFrame]:
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "industry": ["software", None],
            "employees": [120, None],
            "annual_revenue": [1.5e7, None],
            "country": ["DE", "US"],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "account_id": ["A1", "A2", None],
            "created_at": ["2025-01-02T10:00:00Z", "2025-01-03", "2025-02-01 08:00"],
            "job_title": ["CTO", "Marketing Manager", None],
            "source": ["webinar", "organic_search", None],
            "email_domain_kind": ["business", "free", None],
            "do_not_email": [False, "yes", None],
        }
    )
    events = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L2"],
            "at": ["2025-01-05", "2025-01-06", "2025-01-07"],
            "type": ["webinar_attended", "pricing_view", "newsletter_open"],
            "topic": ["software", "pricing", None],
            "content_id": ["C1", None, None],
        }
    )
    stages = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L2"],
            "stage": ["lead", "mql", "lead"],
            "entered_at": ["2025-01-02", "2025-01-06", "2025-01-03"],
        }
    )
    return {"accounts": accounts, "leads": leads, "events": events, "stage_history": stages}


def test_valid_tables_are_typed_and_complete():
    d = validate(**tables())
    assert len(d.leads) == 3 and len(d.events) == 3 and len(d.stage_history) == 3
    assert str(d.leads["created_at"].dtype) == "datetime64[ns]"
    assert d.leads["created_at"].iloc[0] == pd.Timestamp("2025-01-02 10:00:00")
    assert isinstance(d.events["type"].dtype, pd.CategoricalDtype)
    assert d.leads["do_not_email"].tolist() == [False, True, False]
    assert d.accounts["employees"].dtype == "float64"


def test_every_problem_is_reported_at_once_with_table_row_column_reason():
    t = tables()
    t["events"].loc[1, "type"] = "phone_call"
    t["events"].loc[2, "at"] = "not a date"
    t["leads"].loc[0, "email_domain_kind"] = "corporate"
    t["accounts"].loc[1, "employees"] = -5
    t["stage_history"].loc[0, "stage"] = "won"
    with pytest.raises(DataContractError) as exc:
        validate(**t)
    problems = {(p.table, p.column) for p in exc.value.problems}
    assert problems == {
        ("events", "type"),
        ("events", "at"),
        ("leads", "email_domain_kind"),
        ("accounts", "employees"),
        ("stage_history", "stage"),
    }
    text = str(exc.value)
    assert "phone_call" in text and "allowed:" in text
    assert "lead_id=L1" in text
    assert "must not be negative" in text


def test_missing_required_column_and_duplicate_ids():
    t = tables()
    t["leads"] = t["leads"].drop(columns=["created_at"])
    t["accounts"].loc[1, "account_id"] = "A1"
    with pytest.raises(DataContractError) as exc:
        validate(**t)
    reasons = [str(p) for p in exc.value.problems]
    assert any("created_at" in r and "required column is missing" in r for r in reasons)
    assert sum("duplicate id" in r for r in reasons) == 2


def test_unknown_references_are_reported():
    t = tables()
    t["events"].loc[0, "lead_id"] = "L999"
    t["leads"].loc[1, "account_id"] = "A999"
    with pytest.raises(DataContractError) as exc:
        validate(**t)
    text = str(exc.value)
    assert "unknown lead_id" in text and "L999" in text
    assert "unknown account_id" in text and "A999" in text


def test_round_trip_through_parquet(tmp_path):
    d = validate(**tables())
    write_tables(d, tmp_path)
    back = read_tables(tmp_path)
    pd.testing.assert_frame_equal(back.events, d.events)
    pd.testing.assert_frame_equal(back.leads, d.leads)


def test_missing_folder_and_file_are_clear(tmp_path):
    with pytest.raises(DataContractError, match="does not exist"):
        read_tables(tmp_path / "nope")
    with pytest.raises(DataContractError, match="events.parquet is missing"):
        read_tables(tmp_path)


def test_categorical_and_string_inputs_type_the_same_and_inputs_stay_untouched():
    """Big exports arrive with dictionary-encoded (categorical) event types: they are
    recoded without turning every row into a string, with the same result, and the
    caller's frames are not changed (validation works on a shallow copy)."""
    t = tables()
    as_str = {k: v.copy() for k, v in t.items()}
    as_str["events"]["type"] = as_str["events"]["type"].astype(str)
    as_cat = {k: v.copy() for k, v in t.items()}
    as_cat["events"]["type"] = as_cat["events"]["type"].astype(str).astype("category")
    before = {k: v.copy() for k, v in as_cat.items()}
    a, b = validate(**as_str), validate(**as_cat)
    pd.testing.assert_frame_equal(a.events, b.events)
    for k, v in before.items():
        pd.testing.assert_frame_equal(as_cat[k], v)
    # an unknown category is still reported by row, with its value
    bad = {k: v.copy() for k, v in as_cat.items()}
    bad["events"]["type"] = bad["events"]["type"].cat.add_categories(["fax"])
    bad["events"].loc[bad["events"].index[0], "type"] = "fax"
    with pytest.raises(DataContractError, match=r"events\[row 0.*\]\.type: unknown value 'fax'"):
        validate(**bad)


def test_dictionary_ids_read_the_same_values_as_categoricals_and_are_still_checked(tmp_path):
    """``read_tables(..., dictionary_ids=True)`` (what `leadscore score` reads): the
    events' and stage history's ids, topics and content ids as categoricals of text with
    the values of the plain read; an unknown or missing lead id is still reported by row."""
    d = validate(**tables())
    write_tables(d, tmp_path)
    plain, coded = read_tables(tmp_path), read_tables(tmp_path, dictionary_ids=True)
    for table, columns in (("events", ("lead_id", "topic", "content_id")),
                           ("stage_history", ("lead_id",))):  # fmt: skip
        for column in columns:
            got = coded.table(table)[column]
            assert isinstance(got.dtype, pd.CategoricalDtype), (table, column)
            assert got.cat.categories.dtype == "str"
            want = plain.table(table)[column]
            assert (
                got.astype(object).where(got.notna(), None).tolist()
                == want.astype(object).where(want.notna(), None).tolist()
            )
    pd.testing.assert_frame_equal(coded.leads, plain.leads)
    pd.testing.assert_frame_equal(coded.accounts, plain.accounts)

    for row, value, message in ((0, "L999", "unknown lead_id 'L999'"),
                                (1, None, "lead_id: required value is missing")):  # fmt: skip
        events = plain.events.copy()
        events["lead_id"] = events["lead_id"].astype(object)
        events.loc[row, "lead_id"] = value
        events.to_parquet(tmp_path / "events.parquet", index=False)
        with pytest.raises(DataContractError) as exc:
            read_tables(tmp_path, dictionary_ids=True)
        assert f"events[row {row}" in str(exc.value) and message in str(exc.value)
