"""The prediction log against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from serving import metrics
from serving.predlog import (
    OutcomeValidationError,
    PredictionLog,
    StoreUnavailableError,
    build_metadata,
    lead_key,
    prediction_row,
    secret_from_env,
)
from serving.predlog.writer import MAX_DEFER_S

PG_URL = os.environ.get(
    "LEADSCORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CLOSED_PORT_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"
SECRET = b"test-secret-0123456789abcdef"
EMAIL = "jane.doe.unique-7f3a@example.com"
NAME = "Janeway Doeberg"
FAST = {"interval": 0.02, "max_retry_delay": 0.1, "connect_timeout": 2}


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def answer(i: int, **extra: object) -> dict:
    return {
        "lead_id": f"L{i}",
        "p_convert": 0.1 + i / 100,
        "p_accept": np.float64(0.5),
        "score": np.int64(70 + i),
        "quadrant": "hot" if i % 2 else "nurture",
        "segment": None,
        "label": "A",
        "is_test": False,
        "probabilities": {"accept": 0.5, "note": "text is ignored"},
        "email": EMAIL,
        "name": NAME,
        "job_title": "CTO",
        "reasons": [{"feature": "pricing_view_7d", "contribution": 0.4, "text": "saw pricing"}],
        **extra,
    }


# ------------------------------------------------------------------------- fixtures


@pytest.fixture
def make_log() -> Iterator[Callable[..., PredictionLog]]:
    logs: list[PredictionLog] = []

    def make(db_url: str | None = None, **kwargs: object) -> PredictionLog:
        kwargs = {"secret": SECRET, **FAST, **kwargs}
        pl = PredictionLog(db_url, **kwargs).start()  # type: ignore[arg-type]
        logs.append(pl)
        return pl

    yield make
    for pl in logs:
        pl.close(timeout=1.0)


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            pass
    except sa_exc.OperationalError as e:
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {str(e.orig).strip()}")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """PredictionLog keyword arguments for a fresh, private store of each kind."""
    if request.param == "sqlite":
        yield {"db_url": f"sqlite:///{tmp_path / 'predictions.db'}"}
        return
    engine = request.getfixturevalue("pg_engine")
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield {"db_url": PG_URL, "table_prefix": prefix}
    build_metadata(prefix)[0].drop_all(engine)


@contextlib.contextmanager
def temp_pg_database(engine: sa.Engine, create: bool = True) -> Iterator[tuple[str, str]]:
    """A throw-away PostgreSQL database (name, url), dropped (forcefully) at the end."""
    name = f"leadscore_t_{uuid.uuid4().hex[:12]}"
    admin = engine.execution_options(isolation_level="AUTOCOMMIT")
    if create:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_admin(engine: sa.Engine, sql: str) -> None:
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text(sql))


def count_rows(url: str, table: str = "predictions") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


# --------------------------------------------------------------------- lead keys


def test_lead_key_is_a_keyed_hash() -> None:
    k = lead_key("L1", SECRET)
    assert len(k) == 64 and int(k, 16) >= 0
    assert k == lead_key("L1", SECRET)
    assert k != lead_key("L2", SECRET)
    assert k != lead_key("L1", SECRET + b"x")
    with pytest.raises(ValueError):
        lead_key("L1", b"short")
    with pytest.raises(ValueError):
        lead_key("", SECRET)


def test_secret_from_env_order_and_key_file(tmp_path: Path) -> None:
    assert secret_from_env({"LEADSCORE_LEAD_KEY_SECRET": " s" * 10}) == (" s" * 10).strip().encode()
    with pytest.raises(ValueError, match="shorter"):
        secret_from_env({"LEADSCORE_LEAD_KEY_SECRET": "short"})
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("from-a-file-0123456789\n")
    assert secret_from_env({"LEADSCORE_LEAD_KEY_SECRET_FILE": str(secret_file)}) == (
        b"from-a-file-0123456789"
    )
    with pytest.raises(ValueError, match="cannot read"):
        secret_from_env({"LEADSCORE_LEAD_KEY_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(ValueError, match="no lead-key secret"):
        secret_from_env({})

    key_file = tmp_path / "db.sqlite.key"
    first = secret_from_env({}, key_file=key_file)
    assert len(first) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert secret_from_env({}, key_file=key_file) == first  # reused, not regenerated
    assert list(tmp_path.glob(".*.tmp")) == []
    # the environment wins over the key file
    assert secret_from_env({"LEADSCORE_LEAD_KEY_SECRET": "e" * 20}, key_file=key_file) == b"e" * 20


def test_sqlite_log_without_secret_keeps_one_next_to_the_database(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LEADSCORE_LEAD_KEY")}
    try:
        first = PredictionLog(f"sqlite:///{path}", **FAST)
        first.close()
        second = PredictionLog(f"sqlite:///{path}", **FAST)
        second.close()
    finally:
        os.environ.update(env)
    assert (tmp_path / "p.db.key").exists()
    assert first.secret == second.secret


# ------------------------------------------------------------------- row builder


def test_prediction_row_keeps_only_whitelisted_fields() -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC) + timedelta(hours=1)
    row = prediction_row(
        answer(
            3,
            segment=f"smb {EMAIL}",
            p_nan=float("nan"),
            reasons={"pricing_view_7d": 0.4, EMAIL: 1.0, "bad": "x"},
        ),
        secret=SECRET,
        request_id="req-1",
        model_name="lead-scorer",
        model_version="7",
        scored_at=at,
    )
    assert set(row) == {
        "id",
        "request_id",
        "lead_key",
        "model_name",
        "model_version",
        "p_convert",
        "scores",
        "quadrant",
        "segment",
        "reasons",
        "scored_at",
        "contributions",
        "features",
        "as_of",
    }
    assert row["contributions"] is None  # the answer had none
    assert row["features"] is None and row["as_of"] == row["scored_at"]
    assert row["lead_key"] == lead_key("L3", SECRET)
    assert row["p_convert"] == pytest.approx(0.13)
    assert row["scores"] == {
        "p_convert": pytest.approx(0.13),
        "p_accept": 0.5,
        "score": 73,
        "label": "A",
        "is_test": False,
        "probabilities.accept": 0.5,
        "p_nan": None,
    }
    assert type(row["scores"]["score"]) is int
    assert row["quadrant"] == "hot"
    assert row["segment"] == "smb [redacted]"
    assert row["reasons"] == [{"feature": "pricing_view_7d", "contribution": 0.4}]
    assert row["scored_at"] == datetime(2026, 3, 1, 13, 0)  # naive UTC
    assert EMAIL not in repr(row) and NAME not in repr(row) and "CTO" not in repr(row)
    with pytest.raises(ValueError, match="lead_id"):
        prediction_row(
            {"p_convert": 0.2}, secret=SECRET, request_id="r", model_name="m", model_version="1"
        )
    with pytest.raises(ValueError, match="request_id"):
        prediction_row(answer(1), secret=SECRET, request_id="", model_name="m", model_version="1")


# ------------------------------------------------------------------ round trips


def test_predictions_round_trip(db: dict[str, str], make_log) -> None:
    pl = make_log(**db)
    pl.log_answers(
        [answer(i) for i in range(3)],
        request_id="req-1",
        model_name="lead-scorer",
        model_version="7",
    )
    assert pl.flush(5)
    assert (pl.written, pl.pending(), pl.dropped, pl.rejected) == (3, 0, 0, 0)
    got = pl.read_predictions().sort_values("lead_key").reset_index(drop=True)
    assert len(got) == 3
    assert set(got["lead_key"]) == {lead_key(f"L{i}", SECRET) for i in range(3)}
    one = got[got["lead_key"] == lead_key("L1", SECRET)].iloc[0]
    assert one["request_id"] == "req-1" and one["model_version"] == "7"
    assert one["p_convert"] == pytest.approx(0.11)
    assert one["scores"]["score"] == 71 and one["scores"]["probabilities.accept"] == 0.5
    assert one["quadrant"] == "hot" and one["segment"] is None
    assert one["reasons"] == [
        {"feature": "pricing_view_7d", "contribution": 0.4, "text": "saw pricing"}
    ]
    assert abs(one["scored_at"] - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=1)


def test_answers_are_made_rows_by_the_writer_as_the_request_would_have(
    db: dict[str, str], make_log, caplog
) -> None:
    """``log_answers`` hands the answers to the writer thread, which builds the rows: the
    stored rows are those ``prediction_row`` gives at the moment of the call, and an answer
    whose row cannot be built (no lead id) is rejected and logged there, not raised into
    the request, without losing the others."""
    pl = make_log(**db)
    at = datetime(2026, 1, 2, 3, 4, 5)
    answers = [answer(1), {"p_convert": 0.5}, answer(2)]
    with caplog.at_level("ERROR", logger="serving.predlog"):
        pl.log_answers(answers, request_id="req-w", model_name="m", model_version="3", scored_at=at)
        assert pl.flush(5)
    assert (pl.written, pl.rejected, pl.pending()) == (2, 1, 0)
    assert "row could not be built" in caplog.text
    want = {
        lead_key(a["lead_id"], SECRET): pl.row(
            a, request_id="req-w", model_name="m", model_version="3", scored_at=at
        )
        for a in (answer(1), answer(2))
    }
    got = pl.read_predictions()
    assert set(got["lead_key"]) == set(want)
    for _, row in got.iterrows():
        built = want[row["lead_key"]]
        for column in ("request_id", "model_version", "p_convert", "scores", "reasons",
                       "quadrant", "contributions", "features"):  # fmt: skip
            assert row[column] == built[column] or (row[column] is None and built[column] is None)
        assert row["scored_at"] == at


def test_previous_scores_decode_contributions_only_where_the_score_moved(
    db: dict[str, str], make_log
) -> None:
    """``previous_scores(..., p_now=...)``: the newest row of each lead, its contributions
    decoded where the new ``p_convert`` differs (a change to explain) and None where it is
    the same; without ``p_now`` every row's are decoded."""
    pl = make_log(**db)
    contributions = {"unsubscribed": ["1", -0.3], "n_page_view_7d": ["4", 0.25]}
    logged = [
        {"lead_id": f"L{i}", "p_convert": p, "contributions": contributions}
        for i, p in ((1, 0.2), (2, 0.4))
    ]
    pl.log_answers(logged, request_id="r", model_name="m", model_version="1")
    assert pl.flush(5)
    got = pl.previous_scores(["L1", "L2", "L3"], p_now={"L1": 0.2, "L2": 0.45, "L3": 0.1})
    assert sorted(got) == ["L1", "L2"]
    assert got["L1"]["contributions"] is None and got["L1"]["p_convert"] == 0.2
    assert got["L2"]["contributions"] == contributions
    every = pl.previous_scores(["L1", "L2"])
    assert every["L1"]["contributions"] == every["L2"]["contributions"] == contributions


def test_outcomes_round_trip_and_join(db: dict[str, str], make_log) -> None:
    pl = make_log(**db)
    pl.log_answers([answer(1)], request_id="req-9", model_name="m", model_version="1")
    rows = [
        {
            "lead_id": "L1",
            "stage": "sal",
            "accepted": True,
            "at": "2026-02-01T10:00:00+01:00",
            "request_id": "req-9",
            "email": EMAIL,
        },
        {"lead_id": "L1", "stage": "customer", "won": True, "at": datetime(2026, 3, 1, 9)},
        {"lead_id": "L2", "stage": "opportunity", "won": False, "at": "2026-02-15T00:00:00Z"},
    ]
    assert pl.record_outcomes(rows) == 3
    assert pl.record_outcomes(rows[:1]) == 0  # a CRM retry is stored (and counted) once
    out = pl.read_outcomes()
    assert list(out.columns) == [
        "lead_id",
        "lead_key",
        "stage",
        "accepted",
        "won",
        "at",
        "received_at",
        "request_id",
    ]
    assert list(out["lead_id"]) == ["L1", "L2", "L1"]  # ordered by at
    assert out["at"].iloc[0] == datetime(2026, 2, 1, 9, 0)  # converted to naive UTC
    assert str(out["accepted"].dtype) == "boolean" and str(out["won"].dtype) == "boolean"
    assert out["accepted"].iloc[0] and out["accepted"].isna().iloc[1]
    assert out["won"].tolist()[1:] == [False, True]
    assert pl.flush(5)
    joined = out.merge(pl.read_predictions(), on="lead_key", suffixes=("", "_pred"))
    assert set(joined["lead_id"]) == {"L1"} and len(joined) == 2
    assert pl.record_outcomes([rows[0], {**rows[0], "lead_id": "L3"}]) == 1  # only L3 is new


def test_outcome_validation_reports_every_problem(tmp_path: Path, make_log) -> None:
    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}")
    with pytest.raises(OutcomeValidationError) as err:
        pl.record_outcomes(
            [
                {"lead_id": "L1", "stage": "won", "at": "2026-01-01"},
                {"lead_id": "L2", "stage": "mql", "accepted": "yes", "at": "2026-01-01"},
                {"stage": "mql", "at": "2026-01-01"},
                {"lead_id": "L4", "stage": "mql", "at": "last tuesday"},
                {"lead_id": "L5", "stage": "mql", "at": "2026-01-01"},
            ]
        )
    problems = err.value.problems
    assert len(problems) == 4
    assert "L1" in problems[0] and "stage" in problems[0]
    assert "accepted" in problems[1] and "lead_id" in problems[2] and "L4" in problems[3]
    assert len(pl.read_outcomes()) == 0  # nothing stored, not even the good row


def test_control_characters_in_ids_are_the_callers_fault_on_every_backend(
    db: dict[str, str], make_log
) -> None:
    # PostgreSQL refuses NUL in text and SQLite stores it: both refuse it here, by field,
    # as a problem with the outcomes (400), never as the store being down (503 for ever)
    pl = make_log(**db)
    for bad in ({"lead_id": "L\x00x"}, {"lead_id": "L\n2"}, {"request_id": "r\x00"}):
        row = {"lead_id": "L1", "stage": "sal", "at": "2026-01-01", **bad}
        with pytest.raises(OutcomeValidationError) as err:
            pl.record_outcomes([row])
        field = next(iter(bad))
        assert field in str(err.value), err.value
        assert "\x00" not in str(err.value)
    assert pl.record_outcomes([{"lead_id": "L1", "stage": "sal", "at": "2026-01-01"}]) == 1
    assert list(pl.read_outcomes()["lead_id"]) == ["L1"]


def test_sqlite_log_and_its_key_are_created_0600(tmp_path: Path, make_log) -> None:
    old_umask = os.umask(0o022)  # the usual umask: files 0644 unless created otherwise
    try:
        pl = make_log(f"sqlite:///{tmp_path / 'p.db'}", secret=None)
        pl.log_answers([answer(1)], request_id="r", model_name="m", model_version="1")
        assert pl.flush(5)
    finally:
        os.umask(old_umask)
    for name in ("p.db", "p.db.key", "p.db-wal", "p.db-shm"):
        path = tmp_path / name
        if name == "p.db" or path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (name, oct(path.stat().st_mode))


# ------------------------------------------------------------- database trouble


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A TCP port that accepts connections (kernel backlog) but never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    yield srv.getsockname()[1]
    srv.close()


class HangingProxy:
    """A TCP front for PostgreSQL that first holds every connection without answering
    (the database "hangs"), then, after ``release()``, drops the held ones and forwards
    new ones to the real server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.held: list[socket.socket] = []
        self.forwarding = False
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            if not self.forwarding:
                self.held.append(conn)
                continue
            upstream = socket.create_connection(self.target)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        self.forwarding = True
        for conn in self.held:
            conn.close()

    def close(self) -> None:
        self.srv.close()


def test_requeued_batch_is_dropped_first_when_the_buffer_overflows(
    pg_engine: sa.Engine, make_log
) -> None:
    """The writer holds the oldest rows (in flight) while new ones fill the buffer: when
    its write fails, the in-flight rows are the ones dropped, and they are counted."""
    host, port = pg_engine.url.host or "127.0.0.1", pg_engine.url.port or 5432
    proxy = HangingProxy((host, port))
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    url = pg_engine.url.set(host="127.0.0.1", port=proxy.port)
    try:
        pl = make_log(
            url.render_as_string(hide_password=False),
            table_prefix=prefix,
            buffer_size=10,
            batch_size=4,
            connect_timeout=30,
        )
        rows = [
            pl.row(answer(i), request_id=f"r{i:02d}", model_name="m", model_version="1")
            for i in range(14)
        ]
        pl.log(rows[:4])
        assert wait_until(lambda: len(proxy.held) >= 1)  # writer stuck with r00-r03
        time.sleep(0.05)
        for r in rows[4:]:
            pl.log([r])
        assert pl.pending() == 14 and pl.dropped == 0  # 10 buffered + 4 in flight
        proxy.release()
        assert pl.flush(timeout=5)
        assert (pl.dropped, pl.written) == (4, 10)
        assert sorted(pl.read_predictions()["request_id"]) == [f"r{i:02d}" for i in range(4, 14)]
        pl.close()
    finally:
        proxy.close()
        build_metadata(prefix)[0].drop_all(pg_engine)


def test_log_never_waits_for_the_database(hanging_port: int, make_log) -> None:
    pl = make_log(f"postgresql+psycopg://postgres@127.0.0.1:{hanging_port}/test", connect_timeout=3)
    pl.log([pl.row(answer(0), request_id="r", model_name="m", model_version="1")])
    time.sleep(0.3)  # the writer is now stuck in connect(), waiting for a server reply
    assert pl.consecutive_failures == 0 and pl.written == 0
    row = pl.row(answer(1), request_id="r", model_name="m", model_version="1")
    for _ in range(2000):
        pl.log([row])
    assert pl.pending() == 2001
    assert pl.consecutive_failures == 0  # the writer was blocked the whole time
    assert not pl.close(timeout=0.1)


def test_unreachable_database_scoring_keeps_working(make_log) -> None:
    pl = make_log(CLOSED_PORT_URL)
    for i in range(50):
        pl.log([pl.row(answer(i), request_id=f"r{i}", model_name="m", model_version="1")])
    assert pl.pending() == 50
    assert wait_until(lambda: pl.consecutive_failures >= 2)
    assert pl.written == 0 and pl.pending() == 50 and pl.dropped == 0
    assert "OperationalError" in (pl.last_error or "")
    with pytest.raises(StoreUnavailableError, match="127.0.0.1:1"):
        pl.record_outcomes([{"lead_id": "L1", "stage": "mql", "at": "2026-01-01"}])
    with pytest.raises(StoreUnavailableError):
        pl.read_outcomes()
    assert not pl.flush(timeout=0.2)
    assert not pl.close(timeout=0.2)
    assert wait_until(lambda: pl.pending() == 0)
    assert pl.dropped == 50  # unwritten at close: counted, not silently lost


def test_sqlite_down_at_start_then_up(tmp_path: Path, make_log) -> None:
    folder = tmp_path / "not-mounted-yet"
    pl = make_log(f"sqlite:///{folder / 'p.db'}")
    for i in range(20):
        pl.log([pl.row(answer(i), request_id="r", model_name="m", model_version="1")])
    assert wait_until(lambda: pl.consecutive_failures >= 1)
    assert pl.written == 0 and pl.pending() == 20
    folder.mkdir()
    assert pl.flush(timeout=5)
    assert pl.written == 20 and pl.consecutive_failures == 0
    assert count_rows(f"sqlite:///{folder / 'p.db'}") == 20


def test_postgres_database_created_after_start(pg_engine: sa.Engine, make_log) -> None:
    with temp_pg_database(pg_engine, create=False) as (name, url):
        pl = make_log(url)
        pl.log(
            [
                pl.row(answer(i), request_id="r", model_name="m", model_version="1")
                for i in range(10)
            ]
        )
        assert wait_until(lambda: pl.consecutive_failures >= 1)
        assert "does not exist" in (pl.last_error or "")
        pg_admin(pg_engine, f'CREATE DATABASE "{name}"')
        assert pl.flush(timeout=5)
        assert pl.written == 10 and count_rows(url) == 10
        pl.close()


def test_postgres_going_away_mid_run(pg_engine: sa.Engine, make_log) -> None:
    with temp_pg_database(pg_engine) as (name, url):
        pl = make_log(url)
        rows = [
            pl.row(answer(i), request_id="r", model_name="m", model_version="1") for i in range(20)
        ]
        pl.log(rows[:10])
        assert pl.flush(timeout=5) and pl.written == 10
        # the database goes away: no new connections, existing ones killed
        pg_admin(pg_engine, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        pg_admin(
            pg_engine,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        for r in rows[10:]:
            pl.log([r])
        assert wait_until(lambda: pl.consecutive_failures >= 2)
        assert pl.written == 10 and pl.pending() == 10
        pg_admin(pg_engine, f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        assert pl.flush(timeout=5)
        assert pl.written == 20 and pl.dropped == 0
        assert pl.record_outcomes([{"lead_id": "L1", "stage": "mql", "at": "2026-01-01"}]) == 1
        pl.close()
        assert count_rows(url) == 20


def test_full_buffer_drops_oldest_and_counts(
    tmp_path: Path, make_log, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.predlog")
    folder = tmp_path / "later"
    pl = make_log(f"sqlite:///{folder / 'p.db'}", buffer_size=10, batch_size=4)
    for i in range(25):
        pl.log([pl.row(answer(i), request_id=f"r{i:02d}", model_name="m", model_version="1")])
    assert wait_until(lambda: pl.consecutive_failures >= 2 and pl.pending() == 10)
    assert pl.dropped == 15 and pl.written == 0
    folder.mkdir()
    assert pl.flush(timeout=5)
    assert pl.dropped == 15 and pl.written == 10
    kept = sorted(pl.read_predictions()["request_id"])
    assert kept == [f"r{i:02d}" for i in range(15, 25)]  # the newest rows survived
    warnings = [r for r in caplog.records if "buffer full" in r.getMessage()]
    assert len(warnings) == 1


def test_the_writer_leaves_the_interpreter_to_requests(tmp_path: Path, make_log) -> None:
    answering = threading.Event()  # what serving.limits.busy says in the service
    answering.set()
    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}", buffer_size=100, yield_to=answering.is_set)
    rows = [
        pl.row(answer(i), request_id=f"r{i}", model_name="m", model_version="1") for i in range(5)
    ]
    pl.log(rows)
    time.sleep(0.4)  # 20 writer intervals: without requests the rows would be written
    assert (pl.written, pl.pending()) == (0, 5)
    answering.clear()  # the requests are answered: the rows go in the gap
    assert wait_until(lambda: pl.written == 5, timeout=1.0)
    # while requests go on, a flush() is not kept waiting, nor is a half-full buffer
    answering.set()
    pl.log(rows[:3])
    t = time.monotonic()
    assert pl.flush(timeout=5) and pl.written == 8
    assert time.monotonic() - t < 1.0
    pl.log([{**r, "id": None} for r in rows * 10])  # 50 rows: half the buffer
    assert wait_until(lambda: pl.written == 58, timeout=1.0)


def test_a_request_stops_the_writer_after_the_batch_it_is_writing(tmp_path: Path, make_log) -> None:
    """The service's log writes 1,000-lead answers in batches of LOG_BATCH_ROWS: a large
    request that begins while a backlog is written waits for one batch, not the backlog."""
    from serving.service import LOG_BATCH_ROWS

    released = threading.Event()
    pl = make_log(
        f"sqlite:///{tmp_path / 'p.db'}",
        batch_size=LOG_BATCH_ROWS,
        yield_to=lambda: pl.written > 0 and not released.is_set(),  # a request after batch 1
    )
    n = 5 * LOG_BATCH_ROWS
    pl.log_answers([answer(i) for i in range(n)], request_id="r", model_name="m", model_version="1")
    assert wait_until(lambda: pl.written > 0)
    time.sleep(0.3)  # 3 writer intervals: without the request the rest would be written
    assert (pl.written, pl.pending()) == (LOG_BATCH_ROWS, n - LOG_BATCH_ROWS)
    released.set()
    assert pl.flush(timeout=5) and pl.written == n


def test_rows_wait_for_requests_at_most_max_defer(tmp_path: Path, make_log) -> None:
    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}", yield_to=lambda: True)  # never quiet
    t = time.monotonic()
    pl.log([pl.row(answer(1), request_id="r", model_name="m", model_version="1")])
    assert wait_until(lambda: pl.written == 1, timeout=MAX_DEFER_S + 3)
    waited = time.monotonic() - t
    assert MAX_DEFER_S * 0.9 <= waited < MAX_DEFER_S + 2, waited


def test_close_writes_everything(db: dict[str, str], make_log) -> None:
    pl = make_log(**db, batch_size=500)
    row = pl.row(answer(1), request_id="r", model_name="m", model_version="1")
    for _ in range(50):
        pl.log([{**row, "id": uuid.uuid4().hex} for _ in range(100)])
    assert pl.close(timeout=10)
    assert (pl.written, pl.pending(), pl.dropped) == (5000, 0, 0)
    engine = sa.create_engine(db["db_url"])
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(pl.predictions)).scalar_one()
    engine.dispose()
    assert n == 5000
    pl.log([row])  # after close: counted as dropped, never raises
    assert pl.dropped == 1


def test_bad_rows_are_rejected_alone(tmp_path: Path, make_log, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="serving.predlog")
    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}")
    good = pl.row(answer(1), request_id="r", model_name="m", model_version="1")
    no_key = {
        **pl.row(answer(2), request_id="r", model_name="m", model_version="1"),
        "lead_key": None,
    }
    unserialisable = {
        **pl.row(answer(3), request_id="r", model_name="m", model_version="1"),
        "scores": {"x": object()},
    }
    pl.log([no_key, good, unserialisable])
    assert pl.flush(timeout=5)
    assert (pl.written, pl.rejected, pl.dropped, pl.pending()) == (1, 2, 0, 0)
    assert any("rejected 2 row(s)" in r.getMessage() for r in caplog.records)
    assert pl.consecutive_failures == 0


def test_no_raw_email_name_or_lead_id_is_stored(tmp_path: Path, make_log) -> None:
    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}")
    secret_lead = "lead-id-raw-4711"
    pl.log_answers(
        [
            answer(
                1,
                lead_id=secret_lead,
                segment=EMAIL,
                reasons=[f"contacted {EMAIL}", {"feature": "x", "text": f"by {EMAIL}"}],
            )
        ],
        request_id="r",
        model_name="m",
        model_version="1",
    )
    # even a hand-made row with extra keys goes through the column whitelist
    pl.log(
        [
            {
                **pl.row(answer(2), request_id="r", model_name="m", model_version="1"),
                "email": EMAIL,
                "name": NAME,
                "lead_id": secret_lead,
            }
        ]
    )
    assert pl.close(timeout=5) and pl.written == 2
    blob = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"pricing_view_7d" in blob  # sanity: the file really holds the rows
    for needle in (EMAIL, EMAIL.split("@")[0], NAME, "CTO", secret_lead):
        assert needle.encode() not in blob, needle
    reasons = PredictionLog(f"sqlite:///{tmp_path / 'p.db'}", secret=SECRET, **FAST)
    try:
        stored = reasons.read_predictions()
    finally:
        reasons.close()
    assert "[redacted]" in str(stored["reasons"].tolist())


# ------------------------------------------------------------------------ metrics


def test_metrics_count_answers_and_mirror_the_log(tmp_path: Path, make_log) -> None:
    from prometheus_client import REGISTRY, generate_latest

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_hot = value("leadscore_answers_total", quadrant="hot")
    before_scored = value("leadscore_scored_leads_total")
    metrics.observe_answers([answer(1), answer(3), answer(2), {"lead_id": "x"}])
    assert value("leadscore_answers_total", quadrant="hot") - before_hot == 2
    assert value("leadscore_answers_total", quadrant="none") >= 1
    assert value("leadscore_scored_leads_total") - before_scored == 4

    pl = make_log(f"sqlite:///{tmp_path / 'p.db'}", buffer_size=2)
    pl.log([pl.row(answer(i), request_id="r", model_name="m", model_version="1") for i in range(3)])
    assert pl.flush(5)
    metrics.observe_prediction_log(pl)
    assert value("leadscore_predlog_written") == 2
    assert value("leadscore_predlog_dropped") == 1
    assert value("leadscore_predlog_pending") == 0
    text = generate_latest(REGISTRY).decode()
    assert 'leadscore_answers_total{quadrant="hot"}' in text
    assert not math.isnan(value("leadscore_predlog_rejected"))
