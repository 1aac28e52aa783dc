"""The outcome store: what the CRM reports after scoring (``POST /outcomes``), written
synchronously (the CRM is told only once it is stored), and read back as training labels
(`leadscore train --outcomes-db`). Predictions are read back here too, for monitoring."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from serving.predlog.rows import OutcomeValidationError, outcome_rows
from serving.predlog.store import (
    OUTCOME_COLUMNS,
    PREDICTION_COLUMNS,
    Store,
    StoreUnavailableError,
    describe,
)


def record_outcomes(store: Store, rows: Iterable[Mapping[str, Any]], secret: bytes) -> int:
    """Store outcomes durably before returning; returns how many rows were new.

    Raises :class:`OutcomeValidationError` (nothing stored) for bad rows and
    :class:`StoreUnavailableError` if the database cannot be written. A retried outcome
    (same ``lead_id``, ``stage`` and ``at``) is stored once, and counted once: the rows
    already stored are not in the count.
    """
    stored = outcome_rows(rows, secret)
    if not stored:
        return 0
    try:
        store.ensure_schema()
        with store.engine.begin() as conn:
            if store.engine.dialect.name in ("postgresql", "sqlite"):
                # the rows the insert really added (duplicates are skipped); rowcount of an
                # executemany is -1 on psycopg
                stmt = store.outcome_insert.returning(store.outcomes.c.id)
                return len(conn.execute(stmt, stored).all())
            conn.execute(store.outcome_insert, stored)
    except sa_exc.DataError as e:  # the rows' content, not the database: no retry helps
        raise OutcomeValidationError(
            [f"the database refused the outcomes' content: {describe(e)}"]
        ) from e
    except sa_exc.SQLAlchemyError as e:
        store.lost()
        raise StoreUnavailableError(
            f"could not store {len(stored)} outcome(s) in {store.url}: {describe(e)}"
        ) from e
    return len(stored)


def read_outcomes(store: Store) -> pd.DataFrame:
    """All stored outcomes, ordered by ``at``: the labels for training."""
    table = store.outcomes
    frame = store.read(
        sa.select(*(table.c[c] for c in OUTCOME_COLUMNS)).order_by(table.c.at, table.c.id),
        OUTCOME_COLUMNS,
    )
    for c in ("accepted", "won"):
        frame[c] = frame[c].astype("boolean")
    for c in ("at", "received_at"):
        frame[c] = pd.to_datetime(frame[c])
    return frame


def read_predictions(store: Store, shadow: bool = False) -> pd.DataFrame:
    """All stored predictions, ordered by ``scored_at`` (for monitoring and tests); the
    shadow model's (``shadow_predictions``) with ``shadow``."""
    table = store.shadow_predictions if shadow else store.predictions
    frame = store.read(sa.select(table).order_by(table.c.scored_at, table.c.id), PREDICTION_COLUMNS)
    frame["p_convert"] = frame["p_convert"].astype("float64")
    frame["scored_at"] = pd.to_datetime(frame["scored_at"])
    return frame


__all__ = ["read_outcomes", "read_predictions", "record_outcomes"]
