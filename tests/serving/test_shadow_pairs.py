"""Which rows `promote --evidence shadow` weighs (serving/outcomes.py ``shadow_pairs``), and
the shadow table next to the answers' one in a real SQLite and PostgreSQL database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from serving.outcomes import shadow_pairs
from serving.predlog import PredictionLog

T0 = datetime(2026, 11, 1, 12, 0)


def _row(request: str, key: str, version: str, p: float, at: datetime) -> dict:
    return {
        "request_id": request,
        "lead_key": key,
        "model_name": "m",
        "model_version": version,
        "scores": {"p_convert": p, "p_sal": p},
        "scored_at": at,
    }


def test_pairs_are_same_request_before_the_first_outcome_of_the_two_versions():
    preds = pd.DataFrame(
        [
            _row("r1", "a", "1", 0.1, T0),
            _row("r2", "a", "1", 0.2, T0 + timedelta(days=1)),  # a's last pair before
            _row("r3", "a", "1", 0.9, T0 + timedelta(days=5)),  # after its outcome
            _row("r1", "b", "1", 0.3, T0),
            _row("r4", "c", "1", 0.4, T0),  # no shadow row for this request
            _row("r5", "d", "0", 0.5, T0),  # another champion version
        ]
    )
    shadow = pd.DataFrame(
        [
            _row("r1", "a", "2", 0.15, T0),
            _row("r2", "a", "2", 0.25, T0 + timedelta(days=1)),
            _row("r3", "a", "2", 0.95, T0 + timedelta(days=5)),
            _row("r1", "b", "2", 0.35, T0),
            _row("r5", "d", "2", 0.55, T0),
            _row("r6", "e", "3", 0.6, T0),  # another shadow version
        ]
    )
    outcomes = pd.DataFrame(
        {
            "lead_key": ["a", "b", "b", "d", "e"],
            "stage": ["sal", "mql", "sal", "sal", "sal"],
            "accepted": pd.array([None, None, False, None, None], dtype="boolean"),
            "won": pd.array([None] * 5, dtype="boolean"),
            "at": [T0 + timedelta(days=2)] * 5,
        }
    )
    pairs = shadow_pairs(preds, shadow, outcomes, "sal", ("m", "1"), ("m", "2"))
    got = pairs.set_index("lead_key")
    assert sorted(got.index) == ["a", "b"]
    assert got.loc["a", "p_champion"] == 0.2 and got.loc["a", "p_shadow"] == 0.25
    assert got.loc["a", "y"] == 1
    assert got.loc["b", "y"] == 0  # reached mql only; sal rejected by sales


PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_shadow_rows_go_to_their_own_table(kind, tmp_path):
    prefix = f"shadowt_{uuid.uuid4().hex[:8]}_"
    url = f"sqlite:///{tmp_path / 'log.db'}" if kind == "sqlite" else PG_URL
    if kind == "postgresql":
        try:
            sa.create_engine(url, connect_args={"connect_timeout": 2}).connect().close()
        except sa.exc.OperationalError as e:
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {e.orig}")
    secret = b"shadow-test-secret-0123456789"
    answers = [{"lead_id": "L-1", "p_convert": 0.2, "quadrant": "drop"}]
    champion = PredictionLog(url, secret=secret, table_prefix=prefix, interval=0.02).start()
    shadow = PredictionLog(url, secret=secret, table_prefix=prefix, interval=0.02, shadow=True)
    shadow.start()
    try:
        champion.log_answers(answers, request_id="r1", model_name="m", model_version="1")
        shadow.log_answers(
            [{**answers[0], "p_convert": 0.3}], request_id="r1", model_name="m", model_version="2"
        )
        assert champion.flush() and shadow.flush()
        assert champion.read_predictions()["p_convert"].tolist() == [0.2]
        rows = champion.read_shadow_predictions()
        assert rows["p_convert"].tolist() == [0.3] and rows["request_id"].tolist() == ["r1"]
        assert "L-1" not in rows.astype(str).to_string()
    finally:
        champion.close()
        shadow.close()
        if kind == "postgresql":
            from serving.predlog import build_metadata

            engine = sa.create_engine(url)
            build_metadata(prefix)[0].drop_all(engine)
            engine.dispose()
