"""The shadow process's scoring step (serving/shadow.py) with a real model and a real
SQLite prediction log: the requests waiting in its queue are scored together, each lead at
its own request's moment, and each request's answers are logged under its own request id
and as_of with the values that request gets scored alone; a request whose leads cannot be
read fails alone and is counted; the leads travel as MessagePack bytes and come back equal."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from serving_helpers import LEAD_KEY_SECRET, crm_sample, request_leads

from serving import shadow
from serving.fast_body import decode_score_body
from serving.predlog import PredictionLog, lead_key

pytestmark = pytest.mark.slow

REF = {"name": "lead-scorer", "version": "7"}


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def inc(self, k: int = 1) -> None:
        self.n += k


@pytest.fixture(scope="module")
def model(trained):
    import mlflow

    from scoring.registry import scoring_model
    from training.tracking import MODEL_NAME

    return scoring_model(mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")).for_serving()


def _fast_leads(raw: list[dict], moment) -> list:
    body = json.dumps({"leads": raw, "as_of": moment.isoformat()}, default=str).encode()
    decoded = decode_score_body(body)
    assert decoded is not None  # the fast decoder's structs, as the service hands them over
    return decoded[0]


def test_queued_requests_are_scored_together_as_each_would_be_alone(trained, model, tmp_path):
    from scoring.single import score_request

    d, picks, moment = crm_sample(trained.data_dir, n=12, seed=41)
    raw = request_leads(d, picks, moment)
    moments = [moment, moment - pd.Timedelta(days=60), moment - pd.Timedelta(minutes=3)]
    parts = [raw[:1], raw[1:5], raw[5:12]]
    jobs = []
    for i, (part, m) in enumerate(zip(parts, moments, strict=True)):
        leads = _fast_leads(part, m)
        packed = shadow.pack_leads(leads)
        assert isinstance(packed, bytes) and shadow.unpack_leads(packed) == leads
        jobs.append((f"req{i}", m.to_pydatetime(), packed, len(leads)))
    jobs.insert(1, ("broken", moment.to_pydatetime(), b"\x93not msgpack leads", 2))

    log = PredictionLog(
        f"sqlite:///{tmp_path / 'log.db'}", secret=LEAD_KEY_SECRET.encode(), shadow=True
    )
    failures = shadow._Failures(_Counter())
    try:
        logged = shadow._score_and_log(model, REF, log.start(), jobs, failures)
        assert log.flush(30)
        rows = log.read_shadow_predictions()
    finally:
        log.close()
    assert logged == 12 and len(rows) == 12
    assert failures.counter.n == 1  # the unreadable request alone
    for i, (part, m) in enumerate(zip(parts, moments, strict=True)):
        alone = score_request(model, _fast_leads(part, m), m.to_pydatetime(), REF)
        got = rows[rows["request_id"] == f"req{i}"].set_index("lead_key")
        assert len(got) == len(alone)
        for rec in alone:
            row = got.loc[lead_key(rec["lead_id"], LEAD_KEY_SECRET.encode())]
            assert row["p_convert"] == rec["p_convert"]
            assert row["quadrant"] == rec["quadrant"]
            assert pd.Timestamp(row["as_of"]) == m


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_cpu_budget_keeps_the_process_within_its_share():
    budget = shadow.CpuBudget(0.25)
    cpu0, wall0 = time.process_time(), time.monotonic()
    for _ in range(8):
        _burn(0.02)
        budget.pause()
    used, passed = time.process_time() - cpu0, time.monotonic() - wall0
    assert used / passed <= 0.25 * 1.1, (used, passed)
    # waiting for work earns room for a burst of the same share: no pause after it
    time.sleep(0.2)
    _burn(0.02)
    assert budget.pause() == 0.0
    assert shadow.CpuBudget(1.0).pause() == 0.0
