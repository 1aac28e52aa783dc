"""The per-request scoring path (``scoring.single.score_request``) gives the records the
table path gives (``answer_records(score_tables(...))`` on ``leads_to_tables`` of the
same leads): every field, in the same order, with the same values, reasons, logged
contributions, profile and flags; for requests of 1 to 400 leads, messy fields, custom
fields the model does not use, and events after as_of."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from serving_helpers import crm_sample, request_leads

from scoring.batch import answer_records, score_tables
from scoring.registry import scoring_model
from scoring.single import LoggedMapping, score_request
from serving.schemas import Lead, leads_to_tables

pytestmark = pytest.mark.slow

REF = {"name": "m", "version": "1"}


@pytest.fixture(scope="module")
def model(trained):
    import mlflow

    from training.tracking import MODEL_NAME

    return scoring_model(mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion"))


@pytest.fixture(scope="module")
def requests(trained):
    d, picks, moment = crm_sample(trained.data_dir, n=400, seed=5)
    return request_leads(d, picks, moment), moment


def _table_path(model, leads: list[Lead], moment) -> list[dict]:
    leads_df, accounts_df, events_df, stages_df = leads_to_tables(leads)
    answers = score_tables(
        model, leads_df, accounts_df, events_df, pd.Timestamp(moment), stages_df,
        with_contributions=True,
    )  # fmt: skip
    return answer_records(answers, REF)


def _same(want: list[dict], got: list[dict]) -> None:
    assert len(want) == len(got)
    for a, b in zip(want, got, strict=True):
        assert list(a) == list(b), a["lead_id"]
        for key in a:
            want_value, value = _plain(key, a[key]), _plain(key, b[key])
            if key in ("contributions", "features"):  # value by value: types too
                for feature, v in want_value.items():
                    assert type(v) is type(value[feature]), (key, feature, v, value[feature])
            assert want_value == value, (a["lead_id"], key, want_value, value)
            assert type(want_value) is type(value), (key, type(want_value), type(value))


def _plain(key: str, value):
    """Contributions and feature values of the per-request path are built when first read."""
    if isinstance(value, LoggedMapping):
        assert key in ("contributions", "features"), key
        return value.resolved()
    return value


def _messy(raw: list[dict], rng: np.random.Generator) -> list[dict]:
    out = []
    for r in raw:
        r = {**r, "company": dict(r["company"]) if r["company"] else None}
        pick = rng.random()
        if pick < 0.1:
            r["source"] = "carrier pigeon"
        elif pick < 0.2 and r["company"]:
            r["company"]["industry"] = "Quantum Widgets"
            r["company"]["country"] = "Atlantis"
        elif pick < 0.3:
            r["company"] = None
        elif pick < 0.4:
            r["job_title"] = None
            r["email_domain_kind"] = None
            r["email"] = "someone@gmail.com" if rng.random() < 0.5 else None
        elif pick < 0.5:
            r["attributes"] = {"origin": "API", "member": True}
            r["counters"] = {"visits": 3.0}
        out.append(r)
    return out


@pytest.mark.parametrize("size", [1, 3, 40, 400])
def test_records_equal_the_table_path(model, requests, size):
    raw, moment = requests
    rng = np.random.default_rng(size)
    leads = [Lead.model_validate(r) for r in _messy(raw[:size], rng)]
    for as_of in (moment, moment - pd.Timedelta(days=200)):
        _same(_table_path(model, leads, as_of), score_request(model, leads, as_of, REF))


def test_every_lead_alone_equals_the_table_path(model, requests):
    raw, moment = requests
    leads = [Lead.model_validate(r) for r in _messy(raw[:120], np.random.default_rng(3))]
    for lead in leads:
        _same(_table_path(model, [lead], moment), score_request(model, [lead], moment, REF))


def test_leads_of_several_requests_scored_together_get_their_own_records(model, requests):
    """One moment per lead (how the shadow scores the requests waiting in its queue): each
    lead gets the record it gets when its request is scored alone at its moment."""
    raw, moment = requests
    leads = [Lead.model_validate(r) for r in raw[:30]]
    parts = [leads[:1], leads[1:8], leads[8:9], leads[9:30]]
    moments = [moment, moment - pd.Timedelta(days=90), moment - pd.Timedelta(seconds=7), moment]
    alone = [
        rec for p, m in zip(parts, moments, strict=True) for rec in score_request(model, p, m, REF)
    ]
    per_lead = [m for p, m in zip(parts, moments, strict=True) for _ in p]
    together = score_request(model, [lead for p in parts for lead in p], per_lead, REF)
    _same(alone, together)
    assert alone[1]["p_convert"] != score_request(model, leads[1:2], moment, REF)[0]["p_convert"]
    with pytest.raises(ValueError, match="2 moments for 30 leads"):
        score_request(model, leads, moments[:2], REF)


class _TablePathOnly:
    """The session's model with its per-request capability hidden (``all_heads``), as a
    model of another family has none: ``score_leads`` then takes the table path."""

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name: str):
        if name == "all_heads":
            raise AttributeError(name)
        return getattr(self._model, name)


def test_score_leads_with_a_moment_per_lead_on_the_table_path(model, requests):
    """``serving.answers.score_leads`` with one moment per lead (the shadow's batches) on
    the table path: the leads are grouped by moment and each gets its request's records,
    in order, the same the per-request path gives."""
    from serving.answers import score_leads

    raw, moment = requests
    leads = [Lead.model_validate(r) for r in raw[:20]]
    parts = [leads[:5], leads[5:6], leads[6:14], leads[14:20]]
    moments = [moment, moment - pd.Timedelta(days=30), moment, moment - pd.Timedelta(hours=5)]
    per_lead = [m.to_pydatetime() for p, m in zip(parts, moments, strict=True) for _ in p]
    table_only = _TablePathOnly(model)
    assert score_request(table_only, leads, per_lead, REF) is None
    alone = [
        rec
        for p, m in zip(parts, moments, strict=True)
        for rec in score_leads(table_only, p, m.to_pydatetime(), REF)
    ]
    together = score_leads(table_only, leads, per_lead, REF)
    _same(alone, together)
    _same(score_request(model, leads, per_lead, REF), together)
    with pytest.raises(ValueError, match="3 moments for 20 leads"):
        score_leads(table_only, leads, per_lead[:3], REF)


def test_the_logged_values_are_built_off_the_request_path(model, requests):
    """Each answer's contributions and feature values are built when first read (by the
    log's writer, after the answer went out), for the request's leads at once, and read as
    the dicts they stand for."""
    raw, moment = requests
    got = score_request(model, [Lead.model_validate(r) for r in raw[:50]], moment, REF)
    source = got[0]["contributions"]._source
    assert source._built is None  # nothing built while answering
    first = got[7]["features"]
    assert isinstance(first, LoggedMapping) and len(first) > 0
    assert source._built is not None  # one build, on the first read...
    assert all(r["contributions"]._source is source for r in got)  # ...for every lead
    plain = first.resolved()
    assert type(plain) is dict and first == plain and plain == first and dict(first) == plain
    assert list(first) == list(plain) and len(first) == len(plain)
    assert first.keys() == plain.keys() and list(first.items()) == list(plain.items())
    column = next(iter(plain))
    assert first[column] == plain[column] and first.get("no such column", 1) == 1
