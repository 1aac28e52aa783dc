"""The prediction log as the service and the CLI use it: :class:`PredictionLog`."""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from serving.predlog import history, outcome_store, traffic
from serving.predlog.keys import MIN_SECRET_BYTES, lead_key, resolve_secret
from serving.predlog.rows import outcome_rows, prediction_row
from serving.predlog.store import PREDICTION_COLUMNS, Store, StoreUnavailableError
from serving.predlog.writer import RowWriter
from serving.timestamps import utc_now

DEFAULT_SQLITE_PATH = "./leadscore-predictions.db"
LOOKUP_PAUSE_S = 30.0  # after a failed look-up of earlier scores, skip them this long


def _columns(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with exactly the ``predictions`` table's columns."""
    return {c: row.get(c) for c in PREDICTION_COLUMNS}


def _built_row(answer: Mapping[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """:func:`prediction_row` of one logged answer, as the writer thread builds it."""
    return _columns(prediction_row(answer, **meta))


class PredictionLog:
    """Non-blocking, bounded, retrying prediction log plus a synchronous outcome store.

    ``log(rows)`` only projects the rows onto the ``predictions`` columns and appends them to
    an in-memory buffer; once :meth:`start` has started it, a background thread writes them
    in batches (one ``executemany`` per batch, every ``interval`` seconds), with the
    policies of :mod:`serving.predlog.writer` for a database that is down, a full buffer
    and rows the database refuses. :meth:`flush` waits for the rows logged so far;
    :meth:`close` flushes, stops the writer and counts what it could not write as dropped.
    A started log is also closed at interpreter exit; close it explicitly on SIGTERM
    (service shutdown). ``with PredictionLog(...) as log:`` starts it and closes it.

    Every logged row ends up counted exactly once in ``written``, ``dropped`` or
    ``rejected``, or is still ``pending()``.

    ``record_outcomes``, ``read_outcomes`` and ``read_predictions`` are synchronous, need no
    :meth:`start`, and raise :class:`StoreUnavailableError` if the database is down.

    ``previous_scores`` and ``history`` read a lead's earlier answers (the rows of the last
    ``history_days`` days; 0: all), which the writer thread also deletes once older
    (:mod:`serving.predlog.history`).

    ``yield_to``: while it returns True (the service passes :func:`serving.limits.busy`:
    a request is being answered) the writer takes no new batch, for a bounded time
    (:mod:`serving.predlog.writer`, "requests first").

    ``shadow``: the logged rows go to ``shadow_predictions`` (the shadow model's answers,
    :mod:`serving.shadow`) instead of ``predictions``; everything else is the same.

    ``db_url`` defaults to a SQLite file at ``sqlite_path``. The lead-key secret is
    ``secret``, else read from ``secret_file``, else (SQLite only) kept in ``<db file>.key``
    (:mod:`serving.predlog.keys`). Create the log in the worker process that uses it (not
    before a fork).
    """

    def __init__(
        self,
        db_url: str | None = None,
        buffer_size: int = 100_000,
        *,
        sqlite_path: str | Path = DEFAULT_SQLITE_PATH,
        secret: bytes | None = None,
        secret_file: str | Path | None = None,
        table_prefix: str = "",
        batch_size: int = 1_000,
        interval: float = 0.1,
        max_retry_delay: float = 5.0,
        connect_timeout: float = 5.0,
        history_days: int = 0,
        shadow: bool = False,
        yield_to: Callable[[], bool] | None = None,
    ) -> None:
        url = sa.engine.make_url(db_url or f"sqlite:///{Path(sqlite_path).expanduser().absolute()}")
        self._store = Store(url, table_prefix, connect_timeout, shadow=shadow)
        self.secret = (
            secret
            if secret is not None
            else resolve_secret(file=secret_file, key_file=self._store.key_file)
        )
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the lead-key secret must be at least {MIN_SECRET_BYTES} bytes")
        self.url = self._store.url
        self.predictions = self._store.predictions
        self.outcomes = self._store.outcomes
        self.history_days = history_days
        self._lookups_paused_until = 0.0
        self._writer = RowWriter(
            self._store,
            buffer_size,
            batch_size,
            interval,
            max_retry_delay,
            history_days,
            yield_to=yield_to,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> PredictionLog:
        """Start the writer thread (once) and close the log at interpreter exit; returns
        the log. Nothing is written before this."""
        if not self._writer.started and not self._writer.stopped:
            self._writer.start()
            atexit.register(self._close_at_exit)
        return self

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row logged before this call is settled; True if none is pending."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer and release connections; True if everything was written.

        Rows still unwritten after ``timeout`` are counted as dropped (with a warning).
        """
        if self._writer.stopped:
            return self.pending() == 0
        ok, left = self._writer.close(timeout)
        atexit.unregister(self._close_at_exit)
        return ok and left == 0

    def _close_at_exit(self) -> None:
        self.close(timeout=5.0)

    def __enter__(self) -> PredictionLog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------- hot path

    def log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Queue rows for writing; never blocks on the database and never raises for it."""
        self._writer.queue([_columns(r) for r in rows])

    def row(self, answer: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """:func:`prediction_row` with this log's secret."""
        return prediction_row(answer, secret=self.secret, **kwargs)

    def log_answers(
        self,
        answers: Iterable[Mapping[str, Any]],
        *,
        request_id: str,
        model_name: str,
        model_version: str,
        scored_at: datetime | None = None,
        as_of: datetime | None = None,
    ) -> None:
        """Queue a row for each answer (each must carry ``lead_id``); ``as_of``: the moment
        they were scored as of (default: when they were scored). The rows are built by the
        writer thread, after the answer has gone out (~60 ms of a 1,000-lead request's CPU
        before): the answers must not be changed after this call. An answer whose row
        cannot be built is rejected and counted there, as a row the database refuses."""
        meta = {
            "secret": self.secret,
            "request_id": request_id,
            "model_name": model_name,
            "model_version": model_version,
            "scored_at": utc_now() if scored_at is None else scored_at,
            "as_of": as_of,
        }
        self._writer.queue([partial(_built_row, a, meta) for a in answers])

    # --------------------------------------------------------------------- history

    def previous_scores(
        self, lead_ids: Iterable[str], p_now: Mapping[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """lead id -> the newest logged row of that lead (within ``history_days``), for
        the leads that have one. With ``p_now`` (lead id -> its new ``p_convert``) a row
        whose ``p_convert`` equals the new one comes without its ``contributions`` (None):
        there is no change to explain, and decoding them is most of the look-up's cost.
        Raises :class:`StoreUnavailableError` if the database cannot answer; after that,
        for :data:`LOOKUP_PAUSE_S`, at once, without trying (a database that is down must
        not slow every request down)."""
        if time.monotonic() < self._lookups_paused_until:
            raise StoreUnavailableError("look-ups paused after a failure")
        keys = {lead_key(i, self.secret): i for i in lead_ids}

        def moved(key: str, row: dict[str, Any]) -> bool:
            return p_now is None or row.get("p_convert") != p_now.get(keys[key])

        try:
            rows = history.latest_scores(self._store, keys, self._since(), decode=moved)
        except StoreUnavailableError:
            self._lookups_paused_until = time.monotonic() + LOOKUP_PAUSE_S
            raise
        return {keys[k]: row for k, row in rows.items()}

    def history(self, lead_id: str) -> list[dict[str, Any]]:
        """Every logged row of one lead within ``history_days``, oldest first; raises
        :class:`StoreUnavailableError` if the database cannot answer."""
        return history.lead_history(self._store, lead_key(lead_id, self.secret), self._since())

    def _since(self) -> datetime | None:
        return history.cutoff(utc_now(), self.history_days)

    # -------------------------------------------------------------------- counters

    def pending(self) -> int:
        """Rows logged but not yet written, dropped or rejected."""
        return self._writer.pending()

    @property
    def buffer_size(self) -> int:
        return self._writer.buffer_size

    @property
    def written(self) -> int:
        return self._writer.written

    @property
    def dropped(self) -> int:
        return self._writer.dropped

    @property
    def rejected(self) -> int:
        return self._writer.rejected

    @property
    def logged(self) -> int:
        return self._writer.logged

    @property
    def consecutive_failures(self) -> int:
        return self._writer.consecutive_failures

    @property
    def last_error(self) -> str | None:
        return self._writer.last_error

    # -------------------------------------------------------------------- outcomes

    def outcome_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Validate outcomes and build the stored rows (whitelisted fields only)."""
        return outcome_rows(rows, self.secret)

    def record_outcomes(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """:func:`serving.predlog.outcome_store.record_outcomes` into this log's database."""
        return outcome_store.record_outcomes(self._store, rows, self.secret)

    def read_outcomes(self) -> pd.DataFrame:
        """All stored outcomes, ordered by ``at``: the labels for training."""
        return outcome_store.read_outcomes(self._store)

    def read_traffic(
        self,
        model_name: str,
        model_version: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Any:
        """One model version's answers scored as of ``[since, until)`` and their leads'
        outcomes, for the monitor (:func:`serving.predlog.traffic.read_traffic`)."""
        return traffic.read_traffic(self._store, model_name, model_version, since, until)

    def read_predictions(self) -> pd.DataFrame:
        """All stored predictions, ordered by ``scored_at`` (for monitoring and tests)."""
        return outcome_store.read_predictions(self._store)

    def read_shadow_predictions(self) -> pd.DataFrame:
        """All stored answers of the shadow model, ordered by ``scored_at``."""
        return outcome_store.read_predictions(self._store, shadow=True)


__all__ = ["DEFAULT_SQLITE_PATH", "PredictionLog"]
