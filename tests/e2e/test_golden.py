"""Golden answers, recorded before the architecture renovation (issue 15) and kept since:
the same fixed sample leads scored over HTTP and in batch, and the training metrics of the
session's fixed-seed model, must come out as they were recorded. A change here means
behaviour changed; record again (``pytest tests/... --record-golden``) only on purpose and
say why in the commit."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_helpers import AUTH, crm_sample, request_leads, start_served

from scoring.registry import scoring_model

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).resolve().parent / "golden"
# Fields of the training result that depend on the run (ids, clocks), not on behaviour.
RUN_FIELDS = {"run_id", "version", "model"}


def canonical(value: Any) -> Any:
    """JSON-ready with floats rounded to 10 significant digits: enough to catch any change of
    behaviour, not so many that the last bit of a sum decides."""
    if isinstance(value, float):
        return value if not math.isfinite(value) else float(f"{value:.10g}")
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return canonical(value.item())
    return value


def check(name: str, actual: Any, record: bool) -> None:
    path = GOLDEN / f"{name}.json"
    got = canonical(json.loads(json.dumps(actual, default=str)))
    if record:
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        return
    assert path.exists(), f"{path} missing: record it with --record-golden"
    want = json.loads(path.read_text())
    assert got == want, f"{name} differs from the golden record"


@pytest.fixture(scope="module")
def sample(trained):
    d, picks, moment = crm_sample(trained.data_dir, n=40, seed=17)
    return d, picks, moment


@pytest.fixture(scope="module")
def fresh_server(trained, workdir):
    """A server with a prediction log of its own: the golden leads were never scored in
    it, so no answer carries ``changed_because`` (the session's shared server may have
    scored some of them in another test)."""
    from serving.process import stop_server

    served = start_served(trained, workdir, "golden")
    try:
        yield served
    finally:
        stop_server(served.proc)


def test_http_answers_match_the_golden_record(fresh_server, sample, record_golden):
    d, picks, moment = sample
    body = {"leads": request_leads(d, picks, moment), "as_of": moment.isoformat()}
    r = httpx.post(f"{fresh_server.url}/score", json=body, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    check("http_answers", r.json()["scores"], record_golden)


def test_batch_answers_match_the_golden_record(trained, sample, record_golden):
    import mlflow

    from scoring.batch import answer_records, score_tables
    from training.tracking import MODEL_NAME

    d, picks, moment = sample
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    model = scoring_model(pyfunc)
    answers = score_tables(model, picks, d.accounts, d.events, moment, d.stage_history)
    check("batch_answers", answer_records(answers, {"name": MODEL_NAME}), record_golden)


def test_training_metrics_match_the_golden_record(trained, record_golden):
    result = {k: v for k, v in trained.result.to_json().items() if k not in RUN_FIELDS}
    check("training", result, record_golden)
