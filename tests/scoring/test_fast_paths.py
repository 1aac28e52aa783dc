"""Speed-ups of the request path give the same tables and answers as the straightforward
row-by-row versions they replaced (kept here as references)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from crm.email import email_domain_kind
from crm.vocabulary import EVENT_TYPES, STAGES
from serving.schemas import Company, Lead, leads_to_tables


# The row-by-row leads_to_tables of commit b7c01b0, verbatim: the reference.
def reference_leads_to_tables(
    leads: list[Lead],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The request in the canonical table shapes, so the batch feature code path applies."""
    lead_rows = []
    account_rows = []
    event_rows: dict[str, list] = {
        "lead_id": [],
        "at": [],
        "type": [],
        "topic": [],
        "content_id": [],
    }
    stage_rows: dict[str, list] = {"lead_id": [], "stage": [], "entered_at": []}
    for lead in leads:
        account_id = f"acct:{lead.lead_id}"
        kind = lead.email_domain_kind or email_domain_kind(lead.email)
        lead_rows.append(
            {
                "lead_id": lead.lead_id,
                "account_id": account_id,
                "created_at": lead.created_at,
                "job_title": lead.job_title,
                "source": lead.source,
                "email_domain_kind": kind,
                "do_not_email": lead.do_not_email,
                **{f"attr_{k}": v for k, v in lead.attributes.items()},
                **{f"counter_{k}": v for k, v in lead.counters.items()},
            }
        )
        c = lead.company or Company()
        account_rows.append(
            {
                "account_id": account_id,
                "industry": c.industry,
                "employees": np.nan if c.employees is None else c.employees,
                "annual_revenue": np.nan if c.annual_revenue is None else c.annual_revenue,
                "country": c.country,
            }
        )
        for e in lead.events:
            event_rows["lead_id"].append(lead.lead_id)
            event_rows["at"].append(e.at)
            event_rows["type"].append(e.type)
            event_rows["topic"].append(e.topic)
            event_rows["content_id"].append(e.content_id)
        for st in lead.stages:
            stage_rows["lead_id"].append(lead.lead_id)
            stage_rows["stage"].append(st.stage)
            stage_rows["entered_at"].append(st.entered_at)
    leads_df = pd.DataFrame(lead_rows)
    leads_df["created_at"] = pd.to_datetime(leads_df["created_at"]).astype("datetime64[ns]")
    accounts_df = pd.DataFrame(account_rows)
    events_df = pd.DataFrame(event_rows)
    events_df["at"] = pd.to_datetime(events_df["at"]).astype("datetime64[ns]")
    events_df["type"] = pd.Categorical(events_df["type"], categories=list(EVENT_TYPES))
    stages_df = pd.DataFrame(stage_rows)
    stages_df["entered_at"] = pd.to_datetime(stages_df["entered_at"]).astype("datetime64[ns]")
    stages_df["stage"] = pd.Categorical(stages_df["stage"], categories=list(STAGES))
    return leads_df, accounts_df, events_df, stages_df


def _random_lead(rng: random.Random, i: int, custom: bool) -> dict:
    def maybe(value):
        return value if rng.random() < 0.7 else None

    lead = {
        "lead_id": f"L-{i}",
        "created_at": f"2025-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:00:00Z",
        "job_title": maybe(rng.choice(["Head of IT", "CFO", "Marketing Manager", "x"])),
        "source": maybe(rng.choice(["webinar", "organic_search", "weird"])),
        "email": maybe(rng.choice(["a@gmail.com", "b@acme.com", "c@x.de"])),
        "email_domain_kind": rng.choice([None, None, "business", "free"]),
        "do_not_email": rng.random() < 0.2,
        "events": [
            {
                "type": rng.choice(EVENT_TYPES),
                "at": f"2025-1{rng.randint(0, 2)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:00:00",
                "topic": maybe(rng.choice(["pricing", "software", "community"])),
                "content_id": maybe(f"C0{rng.randint(10, 40)}"),
            }
            for _ in range(rng.choice([0, 0, 1, 3, 20]))
        ],
        "stages": [
            {"stage": rng.choice(STAGES), "entered_at": "2025-06-01T00:00:00+02:00"}
            for _ in range(rng.choice([0, 1, 2]))
        ],
    }
    if rng.random() < 0.8:
        lead["company"] = {
            "industry": maybe(rng.choice(["software", "zzz"])),
            "employees": maybe(rng.choice([0.0, 12.0, 1200.0])),
            "annual_revenue": maybe(2.4e8),
            "country": maybe(rng.choice(["DE", "XX"])),
        }
    if custom and rng.random() < 0.6:
        lead["attributes"] = {
            k: rng.choice([1.0, "q", True, None])
            for k in rng.sample(["origin", "budget", "flag"], rng.randint(0, 3))
        }
        lead["counters"] = {k: 2.0 for k in rng.sample(["visits", "views"], rng.randint(0, 2))}
    return lead


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("n", [1, 2, 7, 60])
def test_leads_to_tables_equals_the_row_by_row_reference(seed, n):
    rng = random.Random(seed * 1000 + n)
    leads = [Lead.model_validate(_random_lead(rng, i, custom=seed % 3 == 0)) for i in range(n)]
    new_tables = list(leads_to_tables(leads))
    ref_tables = reference_leads_to_tables(leads)
    # one deliberate difference: the events' lead_id is a categorical over the request's
    # lead ids (the same values; every consumer maps ids to lead positions)
    owners = new_tables[2]["lead_id"]
    assert isinstance(owners.dtype, pd.CategoricalDtype)
    assert owners.astype(object).tolist() == ref_tables[2]["lead_id"].astype(object).tolist()
    new_tables[2] = new_tables[2].assign(lead_id=ref_tables[2]["lead_id"])
    for new, ref in zip(new_tables, ref_tables, strict=True):
        pd.testing.assert_frame_equal(new, ref, check_exact=True)
        assert list(new.dtypes.astype(str)) == list(ref.dtypes.astype(str))
        for c in new.columns:  # None stays None, NaN stays NaN
            assert [type(v) for v in new[c].tolist()] == [type(v) for v in ref[c].tolist()], c


def _reference_answer_records(answers: pd.DataFrame, model_ref: dict) -> list[dict]:
    """answer_records as it was: DataFrame.to_dict("records")."""
    return [
        {"lead_id": str(lead_id), **row, "model": model_ref}
        for lead_id, row in zip(answers.index, answers.to_dict("records"), strict=True)
    ]


def _same_values(a, b) -> bool:
    """Equal with the same Python types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_values(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return a == b


@pytest.fixture(scope="module")
def scored(trained):
    from crm.contract import data_end, read_tables
    from scoring.batch import score_tables
    from serving.schemas import tables_to_requests
    from training.registry import load_version
    from training.tracking import MODEL_NAME

    model = load_version(MODEL_NAME, trained.result.model_version).for_serving()
    d = read_tables(trained.data_dir)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    picks = d.leads.sample(n=60, random_state=5)
    bodies = tables_to_requests(picks, d.accounts, d.events, moment, d.stage_history)
    rng = random.Random(1)
    bodies += [_random_lead(rng, i, custom=False) for i in range(20)]  # unknowns, gaps
    leads = [Lead.model_validate(b) for b in bodies]
    tables = leads_to_tables(leads)
    return score_tables(model, *tables[:3], moment, tables[3])


def test_answer_records_equal_to_dict_records(scored):
    from scoring.batch import answer_records

    ref = {"name": "lead-scorer", "version": "3"}
    new, old = answer_records(scored, ref), _reference_answer_records(scored, ref)
    assert _same_values(new, old)


def test_score_response_json_equals_pydantic_serialisation(scored):
    import json

    from scoring.batch import answer_records
    from serving.schemas import ScoreResponse, score_response_json

    ref = {"name": "lead-scorer", "version": "3"}
    records = answer_records(scored, ref)
    # plus answers with what our path could one day produce: NaN, extra and missing fields
    odd = dict(records[0], lead_id="odd", p_convert=float("nan"), p_customer=0.3)
    odd.pop("p_mql", None)
    odd.pop("flags", None)
    tiny = dict(records[2], lead_id="tiny", p_convert=1e-05, fit_score=1e-06, interest_score=0.0)
    records = [*records, odd, dict(records[1], lead_id="no-reasons", reasons=None), tiny]
    fast = score_response_json("req-1", ref, records)
    slow = ScoreResponse.model_validate(
        {"request_id": "req-1", "model": ref, "scores": records}
    ).model_dump_json()
    assert fast == slow.encode()  # byte for byte, small floats included (0.00001, 1e-6)
    assert json.loads(fast) == json.loads(slow)
    assert list(json.loads(fast)["scores"][0]) == list(json.loads(slow)["scores"][0])


def test_score_response_json_writes_any_float_as_pydantic_does(scored):
    """Random floats of every magnitude in the float fields and the contributions, big ones
    (1e16 and up, which msgspec alone writes without the exponent's sign) included."""
    from scoring.batch import answer_records
    from serving.schemas import ScoreResponse, score_response_json

    ref = {"name": "lead-scorer", "version": "3"}
    base = answer_records(scored, ref)[0]
    rng = np.random.default_rng(5)
    for i in range(300):
        mag = 10.0 ** rng.uniform(-320, 308)
        values = (rng.choice([-1.0, 1.0], 4) * mag * rng.uniform(0.1, 1.0, 4)).tolist()
        rec = dict(base, lead_id=f"r{i}", p_convert=values[0], fit_score=values[1])
        rec["interest_score"] = values[2]
        if rec.get("reasons"):
            rec["reasons"] = [dict(rec["reasons"][0], contribution=values[3])]
        fast = score_response_json("req", ref, [rec])
        slow = ScoreResponse.model_validate({"request_id": "req", "model": ref, "scores": [rec]})
        assert fast == slow.model_dump_json().encode(), values


def _reference_account_values(accounts: pd.DataFrame, leads: pd.DataFrame, column: str):
    """input_flags' account look-up as it was: drop_duplicates + set_index + get_indexer."""
    acc = accounts.drop_duplicates("account_id").set_index("account_id")
    pos = acc.index.get_indexer(leads["account_id"])
    return np.append(acc[column].to_numpy(dtype=object), None)[pos]


@pytest.mark.parametrize("n_leads", [1, 5, 300])
@pytest.mark.parametrize("n_accounts", [0, 1, 4, 300])
def test_account_rows_equal_the_drop_duplicates_lookup(n_leads, n_accounts):
    from scoring.batch import _account_rows

    rng = np.random.default_rng(n_leads * 1000 + n_accounts)
    pool = [f"A{i}" for i in range(max(n_accounts, 1) + 3)]
    accounts = pd.DataFrame(
        {
            "account_id": pd.array(rng.choice(pool, n_accounts).tolist(), dtype="str"),
            "industry": rng.choice(["software", "retail", None], n_accounts),
        }
    )
    ids = rng.choice([*pool, None], n_leads).tolist()
    leads = pd.DataFrame({"account_id": pd.array(ids, dtype="str")})
    rows = _account_rows(accounts, leads)
    got = np.append(accounts["industry"].to_numpy(dtype=object), None)[rows]
    want = _reference_account_values(accounts, leads, "industry")
    assert [type(v) for v in got] == [type(v) for v in want]
    assert [None if v is None else v for v in got] == [None if v is None else v for v in want]
