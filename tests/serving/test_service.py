"""The production HTTP contract against a real `bentoml serve`: every field, request ids,
bearer tokens, probes and metrics, GET /model, POST /outcomes, flags, the prediction log
and privacy."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import httpx
import pandas as pd
import pytest
from serving_helpers import AUTH, crm_sample, read_log, request_leads

pytestmark = pytest.mark.slow

ANSWER_FIELDS = {
    "lead_id",
    "p_convert",
    "fit_score",
    "interest_score",
    "p_mql",
    "p_sal",
    "quadrant",
    "persona",
    "persona_confidence",
    "lifecycle_stage",
    "segment",
    "funnel_stage",
    "content_stage",
    "next_content",
    "reasons",
    "flags",
    "model",
}


@pytest.fixture(scope="module")
def sample(trained):
    d, picks, moment = crm_sample(trained.data_dir, n=20, seed=5)
    return d, picks, moment, request_leads(d, picks, moment)


def post(server, path, body, headers=AUTH, timeout=60):
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=timeout)


def test_score_answers_every_field_the_model_and_a_request_id(api_server, sample):
    d, picks, moment, leads = sample
    r = post(api_server, "/score", {"leads": leads, "as_of": moment.isoformat()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["request_id"]) == 32
    assert body["model"] == {"name": "lead-scorer", "version": "1"}
    assert [s["lead_id"] for s in body["scores"]] == picks["lead_id"].tolist()
    for s in body["scores"]:
        assert ANSWER_FIELDS <= set(s), ANSWER_FIELDS - set(s)
        assert s["model"] == body["model"]
        assert s["p_sal"] == s["p_convert"]
        assert isinstance(s["flags"], list)
    again = post(api_server, "/score", {"leads": leads, "as_of": moment.isoformat()}).json()
    assert again["request_id"] != body["request_id"]
    # the same answers; once the first ones are logged, with changed_because (no change)
    assert [_without_change(s) for s in again["scores"]] == [
        _without_change(s) for s in body["scores"]
    ]
    for s in again["scores"]:
        if "changed_because" in s:
            assert s["changed_because"]["reasons"] == []


def _without_change(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "changed_because"}


def test_tokens_guard_the_api_and_probes_stay_open(api_server, sample):
    leads = sample[3][:1]
    assert post(api_server, "/score", {"leads": leads}, headers={}).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-0123456789"}
    r = post(api_server, "/score", {"leads": leads}, headers=wrong)
    assert r.status_code == 401 and r.json()["field"] == "Authorization"
    assert httpx.get(f"{api_server.url}/model").status_code == 401
    for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
        assert httpx.get(f"{api_server.url}{path}").status_code == 200, path


def test_metrics_count_requests_latency_and_quadrants(api_server, sample):
    assert post(api_server, "/score", {"leads": sample[3][:5]}).status_code == 200
    text = httpx.get(f"{api_server.url}/metrics").text
    assert "leadscore_answers_total{quadrant=" in text
    assert "leadscore_scored_leads_total" in text
    assert "leadscore_predlog_written" in text
    assert "request_total{" in text and 'endpoint="/score"' in text
    assert "request_duration_seconds_bucket{" in text


def test_model_card(api_server):
    r = httpx.get(f"{api_server.url}/model", headers=AUTH)
    assert r.status_code == 200
    m = r.json()
    assert m["name"] == "lead-scorer" and m["version"] == "1"
    assert pd.Timestamp(m["trained_at"]) < pd.Timestamp.now(tz="UTC")
    assert 0.5 < m["holdout_metrics"]["roc_auc"] <= 1.0
    assert {"fit_threshold", "interest_threshold"} <= set(m["quadrant_thresholds"])
    # which family won on the validation folds, by how much, and the skill verdict
    assert m["family"] in ("lightgbm", "logistic", "naive_bayes")
    assert m["family"] in m["choice"] and "mean ROC AUC" in m["choice"]
    assert m["skill"] == "ok" and m["skill_sentence"].startswith("Skill")


def test_unknown_categories_and_missing_fields_are_scored_and_flagged(api_server, sample):
    lead = dict(sample[3][0])
    lead["lead_id"] = "flag-me"
    lead["company"] = {"industry": "xyzzy basket weaving", "country": "Atlantis"}
    lead["source"] = "carrier pigeon"
    lead["job_title"] = None
    r = post(api_server, "/score", {"leads": [lead]})
    assert r.status_code == 200, r.text
    flags = r.json()["scores"][0]["flags"]
    assert "unknown industry 'xyzzy basket weaving'" in flags
    assert "unknown source 'carrier pigeon'" in flags
    assert "unknown country 'Atlantis'" in flags
    assert "missing company.employees" in flags and "missing job_title" in flags


def test_outcomes_are_stored_once_and_future_ones_rejected(api_server):
    # ids of this test's own: the shared server also takes outcomes from other tests
    # (schemathesis posts some), whatever order they run in
    me = f"L-out-{uuid.uuid4().hex[:8]}-"
    rows = [
        {"lead_id": f"{me}1", "stage": "sal", "accepted": True, "at": "2025-03-01T10:00:00Z"},
        {"lead_id": f"{me}2", "stage": "customer", "won": False, "at": "2025-03-02T10:00:00"},
    ]
    r = post(api_server, "/outcomes", {"outcomes": rows})
    assert r.status_code == 200 and r.json()["stored"] == 2
    assert r.json()["duplicates"] == 0
    again = post(api_server, "/outcomes", {"outcomes": rows})  # a CRM retry
    assert again.status_code == 200
    assert again.json()["stored"] == 0 and again.json()["duplicates"] == 2
    future = [{"lead_id": f"{me}3", "stage": "sal", "at": "2100-01-01T00:00:00"}]
    r = post(api_server, "/outcomes", {"outcomes": future})
    assert r.status_code == 400 and r.json()["field"] == "outcomes[0].at"
    _, outcomes = read_log(api_server.db_url)
    ours = outcomes.loc[outcomes["lead_id"].str.startswith(me), "lead_id"]
    assert sorted(ours) == [f"{me}1", f"{me}2"]


def test_every_answer_is_logged_and_raw_emails_never_stored(api_server, sample):
    secret_mail = "jane.doe.private@example.com"
    leads = [
        {**lead, "lead_id": f"pii-{i}", "email": secret_mail}
        for i, lead in enumerate(sample[3][:3])
    ]
    r = post(api_server, "/score", {"leads": leads})
    assert r.status_code == 200
    rid = r.json()["request_id"]
    # a bad request carrying the address in a wrongly typed field must not leak it either
    bad = [{**leads[0], "job_title": [secret_mail]}]
    assert post(api_server, "/score", {"leads": bad}).status_code == 400
    bad = [{**leads[0], "email": secret_mail * 20}]
    assert post(api_server, "/score", {"leads": bad}).status_code == 400
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        preds, _ = read_log(api_server.db_url)
        if (preds["request_id"] == rid).sum() == 3:
            break
        time.sleep(0.2)
    mine = preds[preds["request_id"] == rid]
    assert len(mine) == 3
    assert mine["model_version"].eq("1").all() and mine["quadrant"].notna().all()
    assert not mine["lead_key"].str.startswith("pii-").any()
    db_file = api_server.db_url.removeprefix("sqlite:///")
    assert b"jane.doe" not in open(db_file, "rb").read()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(db_file + suffix):
            assert b"jane.doe" not in open(db_file + suffix, "rb").read()
    log_text = api_server.log.read_text(errors="replace")
    assert "POST" in log_text and "jane.doe" not in log_text and "pii-0" not in log_text


def test_service_refuses_to_start_without_tokens(trained):
    from serving.process import bentoml_bin

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADSCORE_API_TOKENS")}
    env.pop("LEADSCORE_INSECURE_DEV", None)
    res = subprocess.run(
        [bentoml_bin(), "serve", "serving.service:LeadScoringService", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0
    assert "no API tokens" in res.stderr
