"""Reliability on loopback, bounded in time: steady load at ~80% of measured capacity
(60 s, the one long test), overload at 3x the admitted concurrency (fast 429s, nothing
hangs, recovery), SIGTERM during load (every answered request is in the prediction log),
and PostgreSQL down at start and in the middle of a run (answers continue, rows are
written when it returns)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import AUTH, crm_sample, read_log, request_leads, start_served

from serving.loadgen import run_load
from serving.process import stop_server
from serving.settings import load_settings

pytestmark = pytest.mark.slow

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def sample_leads(trained):
    d, picks, moment = crm_sample(trained.data_dir, n=200, seed=9)
    return request_leads(d, picks, moment), moment.isoformat()


@pytest.fixture(scope="module")
def one_lead_bodies(sample_leads):
    leads, as_of = sample_leads
    return lambda i: {"leads": [leads[i % len(leads)]], "as_of": as_of}


#: leads per request in the overload flood: enough that an answer costs the worker's scoring
#: thread far more than the event loop's lag, so that a request waiting for a slot could not
#: pass for a refusal, and small enough (well under serving.limits.HEAVY_BODY_BYTES) that the
#: prediction log's writer does not wait for it
FLOOD_LEADS = 20
FLOOD_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def flood_bodies(sample_leads):
    leads, as_of = sample_leads
    n = len(leads)
    return lambda i: {
        "leads": [leads[(i * FLOOD_LEADS + k) % n] for k in range(FLOOD_LEADS)],
        "as_of": as_of,
    }


@pytest.fixture(scope="module")
def server(trained, workdir):
    served = start_served(trained, workdir, "reliability")
    yield served
    stop_server(served.proc)


@pytest.fixture(scope="module")
def capacity(server, one_lead_bodies) -> float:
    run_load(f"{server.url}/score", one_lead_bodies, 2, connections=8, headers=AUTH)  # warm
    res = run_load(f"{server.url}/score", one_lead_bodies, 5, connections=8, headers=AUTH)
    assert res.errors == 0, res.summary()
    print(f"capacity: {res.summary()}")
    return res.rps


def test_steady_load_at_80_percent_of_capacity_has_no_errors(server, one_lead_bodies, capacity):
    res = run_load(
        f"{server.url}/score",
        one_lead_bodies,
        30,
        connections=16,
        rate=0.8 * capacity,
        headers=AUTH,
    )
    print(f"load at {0.8 * capacity:.0f} req/s: {res.summary()}")
    assert res.errors == 0, res.summary()
    # a sanity check that the load was really offered and served, not a latency goal: the
    # capacity probe is 5 s long and noisy on a 2-core machine
    assert res.rps >= 0.5 * capacity, res.summary()
    assert res.pct(99) < 5000  # latency goals are the benchmark's job; this is about errors


@dataclass(frozen=True)
class Durations:
    total_s: float
    count: int

    @property
    def mean_ms(self) -> float:
        return 1000.0 * self.total_s / self.count if self.count else float("nan")


def server_durations(url: str) -> dict[str, Durations]:
    """POST /score time as the server measured it, per HTTP status (sum and count of
    BentoML's request_duration_seconds histogram)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        if not family.name.endswith("request_duration_seconds"):
            continue
        for sample in family.samples:
            if sample.labels.get("endpoint") != "/score":
                continue
            code = sample.labels.get("http_response_code", "")
            if sample.name.endswith("_sum"):
                sums[code] = sums.get(code, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                counts[code] = counts.get(code, 0) + int(sample.value)
    return {code: Durations(sums.get(code, 0.0), counts.get(code, 0)) for code in counts}


def delta(after: dict[str, Durations], before: dict[str, Durations], code: str) -> Durations:
    a, b = after.get(code, Durations(0.0, 0)), before.get(code, Durations(0.0, 0))
    return Durations(a.total_s - b.total_s, a.count - b.count)


def test_overload_is_refused_fast_and_the_service_recovers(server, one_lead_bodies, flood_bodies):
    before_flood = server_durations(server.url)
    # Overload by construction: 96 connections, each sending its next request as soon as
    # the last one is answered, keep 96 requests in flight against a service that admits
    # MAX_CONCURRENCY (32) at once, however fast or slow the machine is. (An open-loop rate
    # of 2x a capacity measured a minute earlier drew no refusal on a slow run in which
    # that capacity had been measured low.)
    assert load_settings().max_concurrency * 2 < 96
    # a client timeout of 20 s: requests queue in the kernel and the load generator before
    # the server reads them (client-side p99 ~5 s here), and a timeout is a hang
    res = run_load(
        f"{server.url}/score",
        flood_bodies,
        6,
        connections=96,
        headers=AUTH,
        timeout=FLOOD_TIMEOUT_S,
    )
    print(f"overload, 96 connections of {FLOOD_LEADS} leads in a closed loop: {res.summary()}")
    # every request gets an answer: 200, or a fast 429/503 refusal; no timeout and no 5xx.
    # A connection the server closes under this flood (ReadError) is not a hang, but it is
    # not an answer either: tolerated for at most 1 % of the requests.
    closed = sum(n for k, n in res.statuses.items() if k in ("ReadError", "RemoteProtocolError"))
    answered = {k for k in res.statuses if k not in ("ReadError", "RemoteProtocolError")}
    assert answered <= {200, 429, 503}, res.statuses
    assert closed <= 0.01 * sum(res.statuses.values()), res.statuses
    assert res.ok > 0
    # Refused, not queued: the server spends far less time on a refusal than on an answer.
    # Timed by the server itself (BentoML's request_duration_seconds histogram, whose
    # middleware wraps the concurrency limit), so neither the load generator's own lag on
    # the two shared cores nor other load on the machine enters the comparison. Client-side
    # latencies are printed for the record.
    after_flood = server_durations(server.url)
    refused = delta(after_flood, before_flood, "429")
    answered_d = delta(after_flood, before_flood, "200")
    print(
        f"refusals: p50 {res.rejection_pct(50):.0f} ms, p90 {res.rejection_pct(90):.0f} ms, "
        f"slowest {res.slowest_rejection * 1000:.0f} ms; answers p50 {res.pct(50):.0f} ms "
        f"(client side); server side: refusal mean {refused.mean_ms:.1f} ms over "
        f"{refused.count}, answer mean {answered_d.mean_ms:.1f} ms over {answered_d.count}"
    )
    assert res.rejections, "96 requests in flight drew no refusal"
    assert refused.count == res.statuses.get(429, 0), (refused, res.statuses)
    # A queued refusal would take at least as long as an answer; half is the bound. A refusal
    # still waits for the event loop, which shares the interpreter with the scoring thread
    # (5 ms switch interval) under a 96-connection flood on two shared cores: with one-lead
    # requests, whose answers cost ~2 ms, that lag was no longer small beside an answer (seen
    # in CI: refusal mean 31 ms, answer mean 48 ms). Requests of FLOOD_LEADS leads keep the
    # answers' own cost, and so their wait for a slot, well above it.
    assert refused.mean_ms < 0.5 * answered_d.mean_ms, (refused, answered_d)
    assert res.slowest_rejection < FLOOD_TIMEOUT_S  # nothing hung
    time.sleep(1)
    after = run_load(f"{server.url}/score", one_lead_bodies, 3, connections=4, headers=AUTH)
    assert after.errors == 0 and after.pct(99) < 3000, after.summary()


def test_sigterm_during_load_loses_no_answered_request(trained, workdir, one_lead_bodies):
    served = start_served(trained, workdir, "sigterm")
    answered: list = []

    def load():
        res = run_load(
            f"{served.url}/score",
            one_lead_bodies,
            6,
            connections=16,
            headers=AUTH,
            timeout=15,
            keep=lambda b: b["request_id"],
        )
        answered.append(res)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(3)
    os.killpg(served.proc.pid, signal.SIGTERM)
    served.proc.wait(60)
    t.join(30)
    res = answered[0]
    assert res.ok > 10, res.summary()
    preds, _ = read_log(served.db_url)
    logged = set(preds["request_id"])
    missing = set(res.answers) - logged
    assert not missing, f"{len(missing)} answered request(s) not in the log"


def _pg():
    import sqlalchemy as sa

    return sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")


def _pg_exec(sql: str) -> None:
    import sqlalchemy as sa

    eng = _pg()
    with eng.connect() as c:
        c.execute(sa.text(sql))
    eng.dispose()


def test_database_down_at_start_and_midway_answers_continue_and_rows_arrive(
    trained, workdir, one_lead_bodies
):
    db = f"ls_rel_{uuid.uuid4().hex[:10]}"
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    # the database does not exist yet: down at start
    served = start_served(trained, workdir, "pgdown", db_url=url, env={"LEADSCORE_WORKERS": "1"})
    try:
        score = f"{served.url}/score"
        first = run_load(score, one_lead_bodies, 2, 4, headers=AUTH, keep=lambda b: b["request_id"])
        assert first.errors == 0 and first.ok > 0
        assert httpx.get(f"{served.url}/readyz").status_code == 200
        _pg_exec(f"CREATE DATABASE {db}")  # it comes up
        second = run_load(
            score, one_lead_bodies, 2, 4, headers=AUTH, keep=lambda b: b["request_id"]
        )
        _wait_rows(url, set(first.answers) | set(second.answers))
        # down in the middle: refuse new connections and cut the live ones
        _pg_exec(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
        _pg_exec(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        third = run_load(score, one_lead_bodies, 3, 4, headers=AUTH, keep=lambda b: b["request_id"])
        assert third.errors == 0 and third.ok > 0, third.summary()
        metrics = httpx.get(f"{served.url}/metrics").text
        assert "leadscore_predlog_pending" in metrics
        _pg_exec(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        _wait_rows(url, set(first.answers) | set(second.answers) | set(third.answers))
    finally:
        stop_server(served.proc)
        _pg_exec(f"ALTER DATABASE {db} ALLOW_CONNECTIONS true")
        _pg_exec(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
        _pg_exec(f"DROP DATABASE IF EXISTS {db}")


def _wait_rows(url: str, request_ids: set, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    missing = request_ids
    while time.monotonic() < deadline:
        try:
            preds, _ = read_log(url)
            missing = request_ids - set(preds["request_id"])
            if not missing:
                return
        except Exception:  # noqa: BLE001 - the database may still be refusing
            pass
        time.sleep(0.5)
    raise AssertionError(f"{len(missing)} answered request(s) never reached the database")
