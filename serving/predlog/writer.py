"""The writer: an in-memory buffer of prediction rows and the background thread that
writes them in batches, so that scoring never waits for the database.

Policies (:class:`RowWriter`):

* Database down (at start or later): rows stay buffered and the writer retries with
  exponential backoff (``interval`` doubling up to ``max_retry_delay``, with jitter),
  creating the tables on the first successful connection. A batch that failed is retried as
  a whole; inserts ignore duplicate row ids, so a batch that was in fact committed is not
  stored twice.
* Buffer full: the **oldest** rows are dropped and counted in ``dropped``; a warning is
  logged once per episode (an episode ends when the buffer drains). The buffer holds at most
  ``buffer_size`` rows plus the batch being written.
* A row the database rejects for its content (missing column, bad value) is isolated by
  writing its batch row by row; bad rows are counted in ``rejected`` and logged.
* Requests first (``yield_to``, e.g. :func:`serving.limits.busy`): while it says the
  process is answering a large request, the thread takes no new batch (building and writing 1,000
  rows holds the interpreter for ~80 ms that a request would wait for), for at most
  ``max_defer_s`` at a time, and not at all once the buffer is half full or a
  :meth:`~RowWriter.flush` waits. A client sending requests one after the other gets its
  answers first and the rows are written in the gaps, or ``max_defer_s`` later.
* A deferred row (a function that builds the row, queued by
  :meth:`~serving.predlog.log.PredictionLog.log_answers` so that a request does not wait
  for its rows) is built by this thread when its batch is taken; one that raises is
  counted in ``rejected`` and logged.

Every queued row ends up counted exactly once in ``written``, ``dropped`` or ``rejected``,
or is still ``pending()``.

Retention: with ``history_days`` > 0 the thread also deletes the predictions older than
that, when it starts and then once a day (:func:`serving.predlog.history.delete_older_than`);
a purge that fails (database down) is tried again an hour later.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from serving.predlog.history import cutoff, delete_older_than
from serving.predlog.rows import new_row_id
from serving.predlog.store import Store, describe, is_transient
from serving.timestamps import utc_now

logger = logging.getLogger("serving.predlog")

PURGE_EVERY_S = 24 * 3600.0
PURGE_RETRY_S = 3600.0
#: Longest the writer leaves the interpreter to requests before it writes anyway (module doc).
MAX_DEFER_S = 2.0
#: what the buffer holds: a row, or a function that builds it (a deferred row)
Row = dict[str, Any] | Callable[[], dict[str, Any]]


class RowWriter:
    """The buffer and its writer thread (module docstring). Nothing runs until
    :meth:`start`; rows queued before that wait in the buffer."""

    def __init__(
        self,
        store: Store,
        buffer_size: int,
        batch_size: int,
        interval: float,
        max_retry_delay: float,
        history_days: int = 0,
        yield_to: Callable[[], bool] | None = None,
        max_defer_s: float = MAX_DEFER_S,
    ) -> None:
        if buffer_size < 1 or batch_size < 1:
            raise ValueError("buffer_size and batch_size must be positive")
        self.store = store
        self.buffer_size = buffer_size
        self._batch_size = batch_size
        self._interval = interval
        self._max_retry_delay = max(max_retry_delay, interval)
        self._buf: deque[Row] = deque(maxlen=buffer_size)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._inflight = 0
        self.logged = 0
        self.written = 0
        self.dropped = 0
        self.rejected = 0
        self._drop_episode = False  # set by queue() on overflow, warned about by the writer
        self._drop_warned = False
        self._closed = False
        self.consecutive_failures = 0
        self.last_error: str | None = None
        self.history_days = history_days
        self._yield_to = yield_to
        self._max_defer_s = max_defer_s
        self._flushing = 0  # flush() calls waiting: the writer does not yield then
        self._deferred_since: float | None = None  # monotonic: first wait for requests
        self._next_purge = 0.0  # monotonic: at once when the thread starts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-predlog", daemon=True)

    # ------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the writer thread (once)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def queue(self, rows: list[Row]) -> None:
        """Append rows (or functions that build them: module docstring) to the buffer;
        never blocks on the database and never raises for it."""
        n = len(rows)
        with self._lock:
            self.logged += n
            if self._closed:
                self.dropped += n
                self._drop_episode = True
                return
            overflow = len(self._buf) + n - self.buffer_size
            if overflow > 0:
                self.dropped += overflow
                self._drop_episode = True
            self._buf.extend(rows)  # the deque's maxlen drops the oldest rows

    def pending(self) -> int:
        """Rows queued but not yet written, dropped or rejected."""
        with self._lock:
            return len(self._buf) + self._inflight

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is settled; True if none is pending.
        A writer that was never started writes nothing: False at once if rows wait."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self.logged
            self._flushing += 1
        try:
            return self._wait_settled(target, deadline)
        finally:
            with self._cond:
                self._flushing -= 1

    def _wait_settled(self, target: int, deadline: float) -> bool:
        while True:
            self._wake.set()
            with self._cond:
                settled = self.written + self.dropped + self.rejected
                if settled >= target or not (self._buf or self._inflight):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.started:
                    return False
                self._cond.wait(min(remaining, 0.05))

    def close(self, timeout: float = 10.0) -> tuple[bool, int]:
        """Flush, then stop the thread; rows still buffered are counted as dropped.
        Returns (flushed in time, rows left unwritten)."""
        deadline = time.monotonic() + timeout
        ok = self.flush(timeout)
        with self._lock:
            self._closed = True
            left = len(self._buf)
            self._buf.clear()
            self.dropped += left
        self._stop.set()
        self._wake.set()
        if self.started:
            self._thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if left or self._inflight:
            logger.warning(
                "prediction log closed with %d row(s) unwritten (database %s: %s)",
                left + self._inflight,
                self.store.url,
                self.last_error,
            )
        if not self._thread.is_alive():
            self.store.engine.dispose()
        return ok, left

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.consecutive_failures == 0:
                delay = self._interval
            else:
                backoff = self._interval * 2 ** min(self.consecutive_failures, 30)
                delay = min(self._max_retry_delay, backoff) * random.uniform(0.8, 1.2)
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self._drain()
            except Exception:  # a bug here must not kill the writer thread
                logger.exception("prediction log writer failed unexpectedly")
                self.consecutive_failures += 1
            self._warn_drops()
            self._purge_when_due()

    def _purge_when_due(self) -> None:
        """The retention rule (module docstring): at start, then daily."""
        if self.history_days <= 0 or time.monotonic() < self._next_purge:
            return
        moment = cutoff(utc_now(), self.history_days)
        try:
            deleted = delete_older_than(self.store, moment)  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - the database's trouble: try again later
            self._next_purge = time.monotonic() + PURGE_RETRY_S
            logger.warning("prediction log: retention purge failed (%s)", describe(e))
            return
        self._next_purge = time.monotonic() + PURGE_EVERY_S
        if deleted:
            logger.info(
                "prediction log: deleted %d prediction(s) older than %d days",
                deleted,
                self.history_days,
            )

    def _warn_drops(self) -> None:
        with self._lock:
            episode = self._drop_episode
            drained = not (self._buf or self._inflight)
            if drained:
                self._drop_episode = False
            dropped = self.dropped
        if episode and not self._drop_warned:
            self._drop_warned = True
            logger.warning(
                "prediction log buffer full (%d rows): dropping the oldest rows "
                "(%d dropped so far; database %s: %s)",
                self.buffer_size,
                dropped,
                self.store.url,
                self.last_error or "writing too slowly",
            )
        if drained:
            self._drop_warned = False

    def _yield_to_requests(self) -> None:
        """Wait while the process answers requests (module docstring: requests first); the
        rows waiting since the first such wait are written ``max_defer_s`` later at the
        latest (the clock starts again once the buffer has drained)."""
        if self._yield_to is None:
            return
        while self._yield_to() and not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                if not self._buf or self._flushing or len(self._buf) * 2 >= self.buffer_size:
                    return
                if self._deferred_since is None:
                    self._deferred_since = now
                if now - self._deferred_since >= self._max_defer_s:
                    return
            time.sleep(0.005)

    def _drain(self) -> None:
        while True:
            self._yield_to_requests()
            with self._lock:
                if not self._buf:
                    self._deferred_since = None
                    return
                n = min(self._batch_size, len(self._buf))
                taken = [self._buf.popleft() for _ in range(n)]
                self._inflight = n
            batch = self._built(taken)
            n = len(batch)
            if not batch:
                continue
            for row in batch:
                if not row["id"]:
                    row["id"] = new_row_id()
            try:
                self.store.insert_predictions(batch)
            except Exception as e:  # noqa: BLE001 - classified below
                if is_transient(e):
                    self._on_failure(e)
                    self._requeue(batch)
                    return
                if not self._insert_one_by_one(batch):
                    return
                continue
            self._settle(written=n)
            self._on_success()

    def _built(self, taken: list[Row]) -> list[dict[str, Any]]:
        """The batch's rows, deferred ones built here; those that fail are rejected."""
        rows: list[dict[str, Any]] = []
        bad: list[str] = []
        for item in taken:
            if not callable(item):
                rows.append(item)
                continue
            try:
                rows.append(item())
            except Exception as e:  # noqa: BLE001 - counted and logged, never raised
                bad.append(f"{type(e).__name__}: {e}")
        if bad:
            logger.error(
                "prediction log rejected %d answer(s) whose row could not be built, first: %s",
                len(bad),
                bad[0][:300],
            )
            self._settle(rejected=len(bad))
        return rows

    def _insert_one_by_one(self, batch: list[dict[str, Any]]) -> bool:
        """Write a batch that failed for its content row by row; reject the bad rows."""
        bad: list[str] = []
        written = 0
        ok = True
        for i, row in enumerate(batch):
            try:
                self.store.insert_predictions([row])
            except Exception as e:  # noqa: BLE001 - classified below
                if is_transient(e):
                    self._on_failure(e)
                    rest, ok = batch[i:], False
                    break
                bad.append(describe(e))
            else:
                written += 1
        if bad:  # logged before the counts move, so flush() callers see the message
            logger.error(
                "prediction log rejected %d row(s) the database refused, first: %s",
                len(bad),
                bad[0],
            )
        self._settle(written=written, rejected=len(bad))
        if not ok:
            self._requeue(rest)
            return False
        self._on_success()
        return True

    def _settle(self, *, written: int = 0, rejected: int = 0) -> None:
        with self._cond:
            self.written += written
            self.rejected += rejected
            self._inflight -= written + rejected
            self._cond.notify_all()

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        """Put a failed batch back in front of the buffer, dropping the oldest on overflow."""
        with self._cond:
            self._inflight = 0
            if self._closed:
                self.dropped += len(batch)
            else:
                excess = len(batch) + len(self._buf) - self.buffer_size
                if excess > 0:
                    self.dropped += excess
                    self._drop_episode = True
                    batch = batch[excess:]
                self._buf.extendleft(reversed(batch))
            self._cond.notify_all()

    def _on_failure(self, err: BaseException) -> None:
        self.store.lost()
        self.last_error = describe(err)
        if self.consecutive_failures == 0:
            logger.warning(
                "prediction log: database %s unavailable (%s); buffering up to %d rows "
                "and retrying",
                self.store.url,
                self.last_error,
                self.buffer_size,
            )
        self.consecutive_failures += 1
        self.store.engine.dispose()

    def _on_success(self) -> None:
        if self.consecutive_failures:
            logger.info(
                "prediction log: database %s reachable again after %d failed attempt(s)",
                self.store.url,
                self.consecutive_failures,
            )
        self.consecutive_failures = 0
        self.last_error = None


__all__ = ["MAX_DEFER_S", "RowWriter"]
