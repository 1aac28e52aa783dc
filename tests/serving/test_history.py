"""Score history with "changed because" (issue 17), against the real `bentoml serve`: a
lead scored twice gets ``changed_because`` on its second answer and a history of two
entries, on SQLite and on PostgreSQL; the stored rows hold no raw lead id. Also the
prediction log's additive migration and retention on both databases."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from serving_helpers import AUTH, LEAD_KEY_SECRET, crm_sample, read_log, request_leads, start_served

from serving.predlog import PredictionLog, lead_key

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
LEAD_ID = "history-lead-0001"


@contextlib.contextmanager
def temp_database(kind: str, workdir) -> Iterator[str]:
    """The URL of a fresh, private database of that kind (a PostgreSQL one is dropped)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'history-{uuid.uuid4().hex[:6]}.db'}"
        return
    admin = sa.create_engine(
        PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2}
    )
    name = f"leadscore_h_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {e.orig}")
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def history_server(request, trained, workdir):
    from serving.process import stop_server

    with temp_database(request.param, workdir) as url:
        served = start_served(trained, workdir, f"history-{request.param}", db_url=url)
        try:
            yield served
        finally:
            stop_server(served.proc)


@pytest.fixture(scope="module")
def lead(trained):
    """One simulated lead under a test id, its request, and the moment it is scored at."""
    d, picks, moment = crm_sample(trained.data_dir, n=1, seed=23)
    (body,) = request_leads(d, picks, moment)
    return {**body, "lead_id": LEAD_ID}, moment


def score(server, body: dict, as_of: pd.Timestamp) -> httpx.Response:
    return httpx.post(
        f"{server.url}/score",
        json={"leads": [body], "as_of": as_of.isoformat()},
        headers=AUTH,
        timeout=60,
    )


def history(server, lead_id: str, headers=AUTH) -> httpx.Response:
    return httpx.get(f"{server.url}/leads/{lead_id}/history", headers=headers, timeout=30)


def wait_logged(server, n: int) -> pd.DataFrame:
    deadline = time.monotonic() + 15
    while True:
        preds, _ = read_log(server.db_url)
        if len(preds) >= n or time.monotonic() > deadline:
            return preds
        time.sleep(0.1)


def test_a_lead_scored_again_says_what_changed_and_has_a_history(history_server, lead):
    body, moment = lead
    first = score(history_server, body, moment)
    assert first.status_code == 200, first.text
    answer1 = first.json()["scores"][0]
    assert "changed_because" not in answer1  # never scored before: the answer as ever
    assert len(wait_logged(history_server, 1)) == 1

    # 45 days later: a pricing-page visit long ago, an unsubscribe, nothing since
    later = moment + pd.Timedelta(days=45)
    events = [
        *body["events"],
        {"type": "pricing_view", "at": (moment + pd.Timedelta(days=1)).isoformat()},
        {"type": "unsubscribe", "at": (moment + pd.Timedelta(days=2)).isoformat()},
    ]
    second = score(history_server, {**body, "events": events}, later)
    assert second.status_code == 200, second.text
    answer2 = second.json()["scores"][0]
    change = answer2["changed_because"]
    assert change["previous_p_convert"] == pytest.approx(answer1["p_convert"])
    assert datetime.fromisoformat(change["previous_scored_at"]) <= datetime.now(UTC)
    assert answer2["p_convert"] != answer1["p_convert"]
    assert change["reasons"] and all(isinstance(r, str) and r for r in change["reasons"])
    preds = wait_logged(history_server, 2)
    assert len(preds) == 2

    r = history(history_server, LEAD_ID)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["lead_id"] == LEAD_ID
    first_entry, second_entry = got["history"]
    assert first_entry["p_convert"] == pytest.approx(answer1["p_convert"])
    assert second_entry["p_convert"] == pytest.approx(answer2["p_convert"])
    assert first_entry["change"] is None and first_entry["changed_because"] == []
    assert second_entry["changed_because"] == change["reasons"]
    p1, p2 = answer1["p_convert"], answer2["p_convert"]
    assert second_entry["change"] == (
        f"p_convert {p1:.2f} -> {p2:.2f}: {', '.join(change['reasons'])}"
    )
    assert second_entry["quadrant"] == answer2["quadrant"]
    assert second_entry["segment"] == answer2["segment"]
    assert second_entry["model"] == answer2["model"]
    assert first_entry["scored_at"] < second_entry["scored_at"]

    # the rows are keyed by the lead key, never the raw id, and keep the contributions
    assert set(preds["lead_key"]) == {lead_key(LEAD_ID, LEAD_KEY_SECRET.encode())}
    assert not preds.astype(str).apply(lambda c: c.str.contains(LEAD_ID)).any().any()
    assert all(isinstance(c, dict) and c for c in preds["contributions"])


def test_a_lead_never_scored_is_404_naming_the_field(history_server):
    r = history(history_server, "never-scored-lead")
    assert r.status_code == 404
    assert r.json()["field"] == "lead_id" and "no answers" in r.json()["error"]


def test_history_needs_a_token(history_server):
    r = history(history_server, LEAD_ID, headers={})
    assert r.status_code == 401 and r.json()["field"] == "Authorization"
    assert (
        history(history_server, LEAD_ID, headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )


# ----------------------------------------------- the log: migration and retention


_OLD_TABLE = """CREATE TABLE predictions (id VARCHAR(32) PRIMARY KEY,
    request_id VARCHAR(128) NOT NULL, lead_key VARCHAR(64) NOT NULL,
    model_name VARCHAR(200) NOT NULL, model_version VARCHAR(200) NOT NULL,
    p_convert FLOAT, scores {json} NOT NULL, quadrant VARCHAR(64), segment VARCHAR(64),
    reasons {json}, scored_at TIMESTAMP NOT NULL)"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_older_table_gains_the_column_and_index_and_old_rows_expire(kind, tmp_path):
    secret = b"history-test-secret-0123456789"
    old_key = lead_key("L-old", secret)
    with temp_database(kind, tmp_path) as url:
        engine = sa.create_engine(url)
        json_type = "JSONB" if kind == "postgresql" else "JSON"
        with engine.begin() as conn:  # a table as the first release made it, with two rows
            conn.execute(sa.text(_OLD_TABLE.format(json=json_type)))
            for i, age in enumerate((400, 10)):
                at = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=age)
                conn.execute(
                    sa.text(
                        "INSERT INTO predictions VALUES (:id, 'r', :k, 'm', '1', :p, "
                        "'{}', NULL, NULL, NULL, :at)"
                    ),
                    {"id": f"old{i}", "k": old_key, "p": 0.2 + i / 10, "at": at},
                )
        engine.dispose()
        log = PredictionLog(url, secret=secret, interval=0.02, history_days=365)
        try:
            # rows older than the retention are not returned, even before the purge
            (kept,) = log.history("L-old")
            assert kept["p_convert"] == pytest.approx(0.3) and kept["contributions"] is None
            log.start()  # the writer purges at start
            deadline = time.monotonic() + 10
            while len(log.read_predictions()) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert log.read_predictions()["id"].tolist() == ["old1"]
            contributions = {"unsubscribed": ["1", -0.3]}
            log.log_answers(
                [{"lead_id": "L-old", "p_convert": 0.1, "contributions": contributions}],
                request_id="r2",
                model_name="m",
                model_version="1",
            )
            assert log.flush()
            previous = log.previous_scores(["L-old", "L-new"])
            assert list(previous) == ["L-old"]
            assert previous["L-old"]["contributions"] == contributions
            assert [row["p_convert"] for row in log.history("L-old")] == pytest.approx([0.3, 0.1])
            # the index a request's newest-answer look-up needs was added to the old table
            indexes = sa.inspect(sa.create_engine(url)).get_indexes("predictions")
            assert {"name": "ix_predictions_lead_key_scored_at"} in [
                {"name": i["name"]}
                for i in indexes
                if i["column_names"] == ["lead_key", "scored_at"]
            ]
        finally:
            log.close()


def test_a_row_keeps_contributions_cleaned() -> None:
    from serving.predlog import prediction_row

    answer = {
        "lead_id": "L1",
        "p_convert": 0.2,
        "contributions": {
            "industry": ("software", 0.25),
            "attr_owner": ("jane.doe@example.com", float("nan")),
            "bad@key": ("x", 1.0),
            "not_a_pair": "abc",
        },
    }
    row = prediction_row(
        answer, secret=b"s" * 32, request_id="r", model_name="m", model_version="1"
    )
    assert row["contributions"] == {
        "industry": ["software", 0.25],
        "attr_owner": ["[redacted]", None],
    }
    assert "contributions" not in row["scores"]


def test_a_database_that_is_down_is_not_asked_again_at_once() -> None:
    from serving.predlog import StoreUnavailableError

    log = PredictionLog(
        "postgresql+psycopg://postgres@127.0.0.1:1/test", secret=b"s" * 32, connect_timeout=1
    )
    try:
        with pytest.raises(StoreUnavailableError):
            log.previous_scores(["L1"])
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="paused"):
            log.previous_scores(["L1"])
        assert time.monotonic() - started < 0.1
    finally:
        log.close()
