"""The durable prediction log and the outcome store.

Two tables, created on the first successful connection (SQLAlchemy Core, SQLite or
PostgreSQL), with an optional name prefix:

``predictions``
    One row per scored lead: ``id`` (row UUID, primary key), ``request_id``, ``lead_key``
    (HMAC-SHA256 of the lead id, never the raw id), ``model_name``, ``model_version``,
    ``p_convert`` (also in ``scores``), ``scores`` (JSON: every numeric field of the answer
    and the whitelisted label fields), ``quadrant``, ``segment`` (nullable), ``reasons``
    (JSON, nullable) and ``scored_at``.
``outcomes``
    What the CRM reports later, used as training labels: ``lead_id`` (raw: the CRM sends it
    and training joins on it), ``lead_key`` (same HMAC, to join with ``predictions``),
    ``stage``, ``accepted``, ``won`` (nullable booleans), ``at``, ``received_at``,
    ``request_id``. ``(lead_id, stage, at)`` is unique: a CRM retry is stored once.

All timestamps are naive UTC (as in :mod:`crm.contract`).

Privacy: :func:`prediction_row` copies only whitelisted fields of an answer (numbers, the
label fields in :data:`LABEL_FIELDS`, ``quadrant``, ``segment`` and the keys of each reason
in :data:`REASON_FIELDS`); free text is stripped of anything that looks like an e-mail
address. :meth:`PredictionLog.log` projects every row onto the table's columns again, so a
stray ``email`` or ``name`` key is never written.

The lead-key secret (:func:`secret_from_env`) comes from ``LEADSCORE_LEAD_KEY_SECRET``, else
from the file named by ``LEADSCORE_LEAD_KEY_SECRET_FILE``; for a SQLite log without either, a
random secret is generated once and kept in ``<db file>.key`` (mode 0600, as the database
file itself) next to the database, so keys stay joinable across restarts. PostgreSQL
deployments must set one of the two variables (replicas must share the secret). The secret is
never logged.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import math
import numbers
import os
import random
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB

from crm.vocabulary import STAGES

logger = logging.getLogger(__name__)

DB_URL_ENV = "LEADSCORE_DB_URL"
SECRET_ENV = "LEADSCORE_LEAD_KEY_SECRET"
SECRET_FILE_ENV = "LEADSCORE_LEAD_KEY_SECRET_FILE"
DEFAULT_SQLITE_PATH = "./leadscore-predictions.db"
MIN_SECRET_BYTES = 16

#: String fields of an answer copied into ``scores`` (besides every numeric field).
LABEL_FIELDS: frozenset[str] = frozenset(
    {"label", "grade", "tier", "band", "priority", "decision", "action"}
)
#: Keys kept from each reason when reasons are mappings.
REASON_FIELDS: frozenset[str] = frozenset(
    {"feature", "contribution", "direction", "text", "label", "value", "weight", "rank"}
)
_ANSWER_COLUMNS = frozenset({"lead_id", "quadrant", "segment", "reasons"})
PREDICTION_COLUMNS: tuple[str, ...] = (
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
)
OUTCOME_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "lead_key",
    "stage",
    "accepted",
    "won",
    "at",
    "received_at",
    "request_id",
)
_MAX_LABEL = 64
_MAX_TEXT = 200
_MAX_REASONS = 50
_EMAIL_LIKE = re.compile(r"\S*@\S*")

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


class StoreUnavailableError(RuntimeError):
    """The database could not be reached or refused a synchronous write/read."""


class OutcomeValidationError(ValueError):
    """Raised with every problem found in a batch of outcomes (nothing is stored)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the outcomes:\n" + "\n".join(problems))


# --------------------------------------------------------------------------- lead keys


def lead_key(lead_id: str, secret: bytes) -> str:
    """HMAC-SHA256 (hex, 64 chars) of ``lead_id``: a stable pseudonym for the lead."""
    if not isinstance(lead_id, str) or not lead_id:
        raise ValueError("lead_id must be a non-empty string")
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the lead-key secret must be at least {MIN_SECRET_BYTES} bytes")
    keyed = _KEYED.get(secret)
    if keyed is None:  # the key schedule once per secret; copies are the same HMAC
        if len(_KEYED) > 16:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(lead_id.encode("utf-8"))
    return mac.hexdigest()


_KEYED: dict[bytes, Any] = {}


def _check_secret(value: bytes, source: str) -> bytes:
    value = value.strip()
    if len(value) < MIN_SECRET_BYTES:
        raise ValueError(f"the lead-key secret from {source} is shorter than {MIN_SECRET_BYTES}")
    return value


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        return _check_secret(path.read_bytes(), str(path))
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode("ascii") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process created
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning("generated a new lead-key secret in %s (keep it with the database)", path)
    return _check_secret(path.read_bytes(), str(path))


def secret_from_env(
    env: Mapping[str, str] | None = None, key_file: str | Path | None = None
) -> bytes:
    """Resolve the lead-key secret.

    Order: ``LEADSCORE_LEAD_KEY_SECRET`` (UTF-8), the file named by
    ``LEADSCORE_LEAD_KEY_SECRET_FILE``, then ``key_file`` (read, or created with a random
    secret and mode 0600 if missing). Raises ``ValueError`` when none is available or the
    secret is shorter than 16 bytes.
    """
    env = os.environ if env is None else env
    value = env.get(SECRET_ENV, "")
    if value.strip():
        return _check_secret(value.encode("utf-8"), SECRET_ENV)
    file_name = env.get(SECRET_FILE_ENV, "").strip()
    if file_name:
        try:
            return _check_secret(Path(file_name).read_bytes(), SECRET_FILE_ENV)
        except OSError as e:
            raise ValueError(f"cannot read {SECRET_FILE_ENV}={file_name}: {e.strerror}") from e
    if key_file is not None:
        return _read_or_create_key_file(Path(key_file))
    raise ValueError(
        f"no lead-key secret: set {SECRET_ENV} or {SECRET_FILE_ENV} (all replicas must share it)"
    )


# ------------------------------------------------------------------------- row builder


def _utc_naive(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise ValueError(f"{field}: not an ISO-8601 timestamp") from e
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise ValueError(f"{field}: expected a timestamp, got {type(value).__name__}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _clean_text(value: str, limit: int) -> str:
    if "@" not in value:  # nothing the pattern could match
        return value[:limit]
    return _EMAIL_LIKE.sub("[redacted]", value)[:limit]


def _number(value: Any) -> bool | int | float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    f = float(value)
    return f if math.isfinite(f) else None


_NOT_NUMBERS = (str, list, dict, tuple, type(None))


def _is_number(value: Any) -> bool:
    t = type(value)
    if t is float or t is int or t is bool:  # the common answers, without the ABC check
        return True
    if t in _NOT_NUMBERS:
        return False
    return isinstance(value, numbers.Real)


def _safe_key(key: Any) -> bool:
    return isinstance(key, str) and 0 < len(key) <= _MAX_LABEL and "@" not in key


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
        raise ValueError(f"expected a short text label, got {type(value).__name__}")
    return _clean_text(str(value), _MAX_LABEL)


def _scores(answer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in answer.items():
        if not _safe_key(key) or key in _ANSWER_COLUMNS:
            continue
        if _is_number(value):
            out[key] = _number(value)
        elif isinstance(value, str) and key in LABEL_FIELDS:
            out[key] = _clean_text(value, _MAX_LABEL)
        elif type(value) in _NOT_MAPPINGS:
            continue
        elif isinstance(value, Mapping):  # e.g. {"probabilities": {"accept": 0.4}}
            for sub, v in value.items():
                if _safe_key(sub) and _is_number(v):
                    out[f"{key}.{sub}"] = _number(v)
    return out


_NOT_MAPPINGS = (str, list, tuple, type(None))


def _reason(item: Any) -> Any:
    if isinstance(item, str):
        return _clean_text(item, _MAX_TEXT)
    if type(item) is dict or isinstance(item, Mapping):
        kept: dict[str, Any] = {}
        for key, v in item.items():
            if key not in REASON_FIELDS:
                continue
            if type(v) is str:  # text first: the cheap check for most values
                kept[key] = _clean_text(v, _MAX_TEXT)
            elif _is_number(v):
                kept[key] = _number(v)
            elif isinstance(v, str):
                kept[key] = _clean_text(v, _MAX_TEXT)
        return kept
    return None


def _reasons(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # {"feature": contribution}
        value = [
            {"feature": k, "contribution": v}
            for k, v in value.items()
            if _safe_key(k) and _is_number(v)
        ]
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError("reasons must be a list (or a feature -> contribution mapping)")
    out = [r for r in map(_reason, value) if r is not None and r != {}]
    return out[:_MAX_REASONS]


def _required_text(value: Any, field: str, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{field} is longer than {limit} characters")
    bad = _CONTROL.search(value)
    if bad is not None:  # PostgreSQL refuses NUL in text; no backend should store these
        raise ValueError(f"{field} contains a control character (U+{ord(bad.group()):04X})")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def prediction_row(
    answer: Mapping[str, Any],
    *,
    secret: bytes,
    request_id: str,
    model_name: str,
    model_version: str,
    lead_id: str | None = None,
    scored_at: datetime | None = None,
) -> dict[str, Any]:
    """Build one ``predictions`` row from one answer, keeping only whitelisted fields.

    ``lead_id`` defaults to ``answer["lead_id"]`` and is stored only as its HMAC key.
    ``scores`` gets every numeric field of the answer (one level of nested mappings is
    flattened as ``"outer.inner"``; NaN/inf become null) and the string fields named in
    :data:`LABEL_FIELDS`. Every other string (e-mail, name, job title, ...) is ignored.
    """
    lid = answer.get("lead_id") if lead_id is None else lead_id
    scores = _scores(answer)
    p = scores.get("p_convert")
    return {
        "id": uuid.uuid4().hex,
        "request_id": _required_text(request_id, "request_id", 128),
        "lead_key": lead_key(lid, secret),  # type: ignore[arg-type]
        "model_name": _required_text(model_name, "model_name", 200),
        "model_version": _required_text(model_version, "model_version", 200),
        "p_convert": p if isinstance(p, float | int) and not isinstance(p, bool) else None,
        "scores": scores,
        "quadrant": _label(answer.get("quadrant")),
        "segment": _label(answer.get("segment")),
        "reasons": _reasons(answer.get("reasons")),
        "scored_at": _utcnow() if scored_at is None else _utc_naive(scored_at, "scored_at"),
    }


# ------------------------------------------------------------------------------ schema


def build_metadata(prefix: str = "") -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The two tables, named ``<prefix>predictions`` and ``<prefix>outcomes``."""
    if prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError("table prefix must be letters, digits and underscores")
    md = sa.MetaData()
    predictions = sa.Table(
        f"{prefix}predictions",
        md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("lead_key", sa.String(64), nullable=False, index=True),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("p_convert", sa.Float, nullable=True),
        sa.Column("scores", _JSON, nullable=False),
        sa.Column("quadrant", sa.String(_MAX_LABEL), nullable=True),
        sa.Column("segment", sa.String(_MAX_LABEL), nullable=True),
        sa.Column("reasons", _JSON, nullable=True),
        sa.Column("scored_at", sa.DateTime(), nullable=False, index=True),
    )
    outcomes = sa.Table(
        f"{prefix}outcomes",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("lead_key", sa.String(64), nullable=False, index=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=True),
        sa.Column("won", sa.Boolean, nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.UniqueConstraint("lead_id", "stage", "at", name=f"uq_{prefix}outcomes_lead_stage_at"),
    )
    return md, predictions, outcomes


def _insert_ignoring_duplicates(engine: sa.Engine, table: sa.Table, keys: list[str]) -> Any:
    name = engine.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # other dialects: plain insert (a retried batch could then be stored twice)
        return sa.insert(table)
    return insert(table).on_conflict_do_nothing(index_elements=keys)


def _is_transient(err: BaseException) -> bool:
    """Errors worth retrying: the database is unreachable, restarting or lost a table."""
    if isinstance(err, sa_exc.DBAPIError) and err.connection_invalidated:
        return True
    return isinstance(
        err,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.ProgrammingError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError
        | OSError,
    )


def _describe(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


# ------------------------------------------------------------------------ the log


class PredictionLog:
    """Non-blocking, bounded, retrying prediction log plus a synchronous outcome store.

    ``log(rows)`` only projects the rows onto the ``predictions`` columns and appends them to
    an in-memory buffer; a background thread writes them in batches (one ``executemany``
    per batch, every ``interval`` seconds). Policies:

    * Database down (at start or later): scoring is unaffected; rows stay buffered and the
      writer retries with exponential backoff (``interval`` doubling up to
      ``max_retry_delay``, with jitter), creating the tables on the first successful
      connection. A batch that failed is retried as a whole; inserts ignore duplicate row
      ids, so a batch that was in fact committed is not stored twice.
    * Buffer full: the **oldest** rows are dropped and counted in :attr:`dropped`; a warning
      is logged once per episode (an episode ends when the buffer drains). The buffer holds
      at most ``buffer_size`` rows plus the batch being written.
    * A row the database rejects for its content (missing column, bad value) is isolated by
      writing its batch row by row; bad rows are counted in :attr:`rejected` and logged.
    * :meth:`flush` waits for the rows logged so far; :meth:`close` flushes, stops the
      writer and counts what it could not write as dropped. ``close`` also runs at
      interpreter exit; call it explicitly on SIGTERM (service shutdown).

    Every logged row ends up counted exactly once in ``written``, ``dropped`` or
    ``rejected``, or is still ``pending()``.

    ``record_outcomes`` and ``read_outcomes`` are synchronous and raise
    :class:`StoreUnavailableError` if the database is down.

    Create the log in the worker process that uses it (not before a fork).
    """

    def __init__(
        self,
        db_url: str | None = None,
        buffer_size: int = 100_000,
        *,
        sqlite_path: str | Path = DEFAULT_SQLITE_PATH,
        secret: bytes | None = None,
        table_prefix: str = "",
        batch_size: int = 1_000,
        interval: float = 0.1,
        max_retry_delay: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if buffer_size < 1 or batch_size < 1:
            raise ValueError("buffer_size and batch_size must be positive")
        url = sa.engine.make_url(
            db_url
            or os.environ.get(DB_URL_ENV)
            or f"sqlite:///{Path(sqlite_path).expanduser().absolute()}"
        )
        key_file: Path | None = None
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                raise ValueError("an in-memory SQLite database cannot be shared with the writer")
            key_file = Path(f"{url.database}.key")
            _private_sqlite_file(Path(url.database))
            connect_args: dict[str, Any] = {"timeout": max(connect_timeout, 10.0)}
        elif url.get_backend_name() == "postgresql":
            connect_args = {"connect_timeout": max(1, math.ceil(connect_timeout))}
        else:
            connect_args = {}
        self.secret = secret if secret is not None else secret_from_env(key_file=key_file)
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the lead-key secret must be at least {MIN_SECRET_BYTES} bytes")

        self.url = url.render_as_string(hide_password=True)
        self._engine = sa.create_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
        )
        if url.get_backend_name() == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        self._md, self.predictions, self.outcomes = build_metadata(table_prefix)
        self._pred_insert = _insert_ignoring_duplicates(self._engine, self.predictions, ["id"])
        self._out_insert = _insert_ignoring_duplicates(
            self._engine, self.outcomes, ["lead_id", "stage", "at"]
        )
        self._schema_ready = False
        self._schema_lock = threading.Lock()

        self.buffer_size = buffer_size
        self._batch_size = batch_size
        self._interval = interval
        self._max_retry_delay = max(max_retry_delay, interval)
        self._buf: deque[dict[str, Any]] = deque(maxlen=buffer_size)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._inflight = 0
        self._logged = 0
        self._written = 0
        self._dropped = 0
        self._rejected = 0
        self._drop_episode = False  # set by log() on overflow, warned about by the writer
        self._drop_warned = False
        self._closed = False
        self._flushing = 0
        self.consecutive_failures = 0
        self.last_error: str | None = None

        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-predlog", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)

    # ----------------------------------------------------------------- hot path

    def log(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Queue rows for writing; never blocks on the database and never raises for it."""
        projected = [{c: r.get(c) for c in PREDICTION_COLUMNS} for r in rows]
        n = len(projected)
        with self._lock:
            self._logged += n
            if self._closed:
                self._dropped += n
                self._drop_episode = True
                return
            overflow = len(self._buf) + n - self.buffer_size
            if overflow > 0:
                self._dropped += overflow
                self._drop_episode = True
            self._buf.extend(projected)  # the deque's maxlen drops the oldest rows

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
    ) -> None:
        """Build a row for each answer (each must carry ``lead_id``) and :meth:`log` them."""
        at = _utcnow() if scored_at is None else scored_at
        self.log(
            [
                prediction_row(
                    a,
                    secret=self.secret,
                    request_id=request_id,
                    model_name=model_name,
                    model_version=model_version,
                    scored_at=at,
                )
                for a in answers
            ]
        )

    # --------------------------------------------------------------- counters

    def pending(self) -> int:
        """Rows logged but not yet written, dropped or rejected."""
        with self._lock:
            return len(self._buf) + self._inflight

    @property
    def written(self) -> int:
        return self._written

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def logged(self) -> int:
        return self._logged

    # --------------------------------------------------------- flush / close

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row logged before this call is settled; True if none is pending."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._logged
            self._flushing += 1
        try:
            while True:
                self._wake.set()
                with self._cond:
                    settled = self._written + self._dropped + self._rejected
                    if settled >= target or not (self._buf or self._inflight):
                        return True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(min(remaining, 0.05))
        finally:
            with self._cond:
                self._flushing -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer and release connections; True if everything was written.

        Rows still unwritten after ``timeout`` are counted as dropped (with a warning).
        """
        if self._stop.is_set():
            return self.pending() == 0
        deadline = time.monotonic() + timeout
        ok = self.flush(timeout)
        with self._lock:
            self._closed = True
            left = len(self._buf)
            self._buf.clear()
            self._dropped += left
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.05)
        if left or self._inflight:
            logger.warning(
                "prediction log closed with %d row(s) unwritten (database %s: %s)",
                left + self._inflight,
                self.url,
                self.last_error,
            )
        if not self._thread.is_alive():
            self._engine.dispose()
        atexit.unregister(self._close_at_exit)
        return ok and left == 0

    def _close_at_exit(self) -> None:
        self.close(timeout=5.0)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- writer thread

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

    def _warn_drops(self) -> None:
        with self._lock:
            episode = self._drop_episode
            drained = not (self._buf or self._inflight)
            if drained:
                self._drop_episode = False
            dropped = self._dropped
        if episode and not self._drop_warned:
            self._drop_warned = True
            logger.warning(
                "prediction log buffer full (%d rows): dropping the oldest rows "
                "(%d dropped so far; database %s: %s)",
                self.buffer_size,
                dropped,
                self.url,
                self.last_error or "writing too slowly",
            )
        if drained:
            self._drop_warned = False

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._buf:
                    return
                n = min(self._batch_size, len(self._buf))
                batch = [self._buf.popleft() for _ in range(n)]
                self._inflight = n
            for row in batch:
                if not row["id"]:
                    row["id"] = uuid.uuid4().hex
            try:
                self._insert(batch)
            except Exception as e:  # noqa: BLE001 - classified below
                if _is_transient(e):
                    self._on_failure(e)
                    self._requeue(batch)
                    return
                if not self._insert_one_by_one(batch):
                    return
                continue
            self._settle(written=n)
            self._on_success()

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        self._ensure_schema()
        with self._engine.begin() as conn:
            conn.execute(self._pred_insert, rows)

    def _insert_one_by_one(self, batch: list[dict[str, Any]]) -> bool:
        """Write a batch that failed for its content row by row; reject the bad rows."""
        bad: list[str] = []
        written = 0
        ok = True
        for i, row in enumerate(batch):
            try:
                self._insert([row])
            except Exception as e:  # noqa: BLE001 - classified below
                if _is_transient(e):
                    self._on_failure(e)
                    rest, ok = batch[i:], False
                    break
                bad.append(_describe(e))
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
            self._written += written
            self._rejected += rejected
            self._inflight -= written + rejected
            self._cond.notify_all()

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        """Put a failed batch back in front of the buffer, dropping the oldest on overflow."""
        with self._cond:
            self._inflight = 0
            if self._closed:
                self._dropped += len(batch)
            else:
                excess = len(batch) + len(self._buf) - self.buffer_size
                if excess > 0:
                    self._dropped += excess
                    self._drop_episode = True
                    batch = batch[excess:]
                self._buf.extendleft(reversed(batch))
            self._cond.notify_all()

    def _on_failure(self, err: BaseException) -> None:
        self._schema_ready = False
        self.last_error = _describe(err)
        if self.consecutive_failures == 0:
            logger.warning(
                "prediction log: database %s unavailable (%s); buffering up to %d rows "
                "and retrying",
                self.url,
                self.last_error,
                self.buffer_size,
            )
        self.consecutive_failures += 1
        self._engine.dispose()

    def _on_success(self) -> None:
        if self.consecutive_failures:
            logger.info(
                "prediction log: database %s reachable again after %d failed attempt(s)",
                self.url,
                self.consecutive_failures,
            )
        self.consecutive_failures = 0
        self.last_error = None

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            for attempt in range(3):
                try:
                    self._md.create_all(self._engine)
                    break
                except (
                    sa_exc.IntegrityError,
                    sa_exc.ProgrammingError,
                    sa_exc.OperationalError,
                ) as e:
                    # another process created the tables at the same moment (PostgreSQL:
                    # an integrity or programming error; SQLite: "table ... already
                    # exists"): check again; any other operational error is the store's
                    raced = not isinstance(e, sa_exc.OperationalError) or "already exists" in str(e)
                    if not raced or attempt == 2:
                        raise
            self._schema_ready = True

    # ---------------------------------------------------------------- outcomes

    def outcome_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Validate outcomes and build the stored rows (whitelisted fields only)."""
        problems: list[str] = []
        out: list[dict[str, Any]] = []
        received_at = _utcnow()
        for i, r in enumerate(rows):
            where = f"outcome {i}"
            try:
                lid = _required_text(r.get("lead_id"), "lead_id", 200)
                where = f"outcome {i} (lead_id={lid})"
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            row: dict[str, Any] = {"lead_id": lid, "lead_key": lead_key(lid, self.secret)}
            stage = r.get("stage")
            if stage not in STAGES:
                problems.append(f"{where}: stage must be one of {', '.join(STAGES)}")
            row["stage"] = stage
            for field in ("accepted", "won"):
                v = r.get(field)
                if v is not None and not isinstance(v, bool):
                    problems.append(f"{where}: {field} must be true, false or null")
                row[field] = v
            try:
                row["at"] = _utc_naive(r.get("at"), "at")
            except ValueError as e:
                problems.append(f"{where}: {e}")
            rid = r.get("request_id")
            if rid is not None and (
                not isinstance(rid, str) or len(rid) > 128 or _CONTROL.search(rid)
            ):
                problems.append(
                    f"{where}: request_id must be printable text of at most 128 characters"
                )
            row["request_id"] = rid
            row["received_at"] = received_at
            out.append(row)
        if problems:
            raise OutcomeValidationError(problems)
        return out

    def record_outcomes(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Store outcomes durably before returning; returns how many rows were new.

        Raises :class:`OutcomeValidationError` (nothing stored) for bad rows and
        :class:`StoreUnavailableError` if the database cannot be written. A retried
        outcome (same ``lead_id``, ``stage`` and ``at``) is stored once, and counted once:
        the rows already stored are not in the count.
        """
        stored = self.outcome_rows(rows)
        if not stored:
            return 0
        try:
            self._ensure_schema()
            with self._engine.begin() as conn:
                if self._engine.dialect.name in ("postgresql", "sqlite"):
                    # the rows the insert really added (duplicates are skipped); rowcount
                    # of an executemany is -1 on psycopg
                    stmt = self._out_insert.returning(self.outcomes.c.id)
                    return len(conn.execute(stmt, stored).all())
                conn.execute(self._out_insert, stored)
        except sa_exc.DataError as e:  # the rows' content, not the database: no retry helps
            raise OutcomeValidationError(
                [f"the database refused the outcomes' content: {_describe(e)}"]
            ) from e
        except sa_exc.SQLAlchemyError as e:
            self._schema_ready = False
            raise StoreUnavailableError(
                f"could not store {len(stored)} outcome(s) in {self.url}: {_describe(e)}"
            ) from e
        return len(stored)

    def read_outcomes(self) -> pd.DataFrame:
        """All stored outcomes, ordered by ``at``: the labels for training."""
        frame = self._read(
            sa.select(*(self.outcomes.c[c] for c in OUTCOME_COLUMNS)).order_by(
                self.outcomes.c.at, self.outcomes.c.id
            ),
            OUTCOME_COLUMNS,
        )
        for c in ("accepted", "won"):
            frame[c] = frame[c].astype("boolean")
        for c in ("at", "received_at"):
            frame[c] = pd.to_datetime(frame[c])
        return frame

    def read_predictions(self) -> pd.DataFrame:
        """All stored predictions, ordered by ``scored_at`` (for monitoring and tests)."""
        frame = self._read(
            sa.select(self.predictions).order_by(
                self.predictions.c.scored_at, self.predictions.c.id
            ),
            PREDICTION_COLUMNS,
        )
        frame["p_convert"] = frame["p_convert"].astype("float64")
        frame["scored_at"] = pd.to_datetime(frame["scored_at"])
        return frame

    def _read(self, query: sa.Select, columns: tuple[str, ...]) -> pd.DataFrame:
        try:
            self._ensure_schema()
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sa_exc.SQLAlchemyError as e:
            self._schema_ready = False
            raise StoreUnavailableError(f"could not read {self.url}: {_describe(e)}") from e
        return pd.DataFrame([dict(r) for r in rows], columns=list(columns))


def _private_sqlite_file(path: Path) -> None:
    """Create the SQLite database file readable by its owner only (0600; SQLite gives its
    -wal and -shm files the database file's mode). An existing file with a looser mode is
    left as it is, with a warning."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            logger.warning(
                "prediction log %s is readable by others (mode %o): chmod 600 it", path, mode
            )
        return
    except OSError:  # e.g. the folder does not exist yet: the database reports it later
        return
    os.close(fd)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer thread
        cur.execute("PRAGMA busy_timeout=10000")  # several workers may share the file
    finally:
        cur.close()


__all__ = [
    "LABEL_FIELDS",
    "REASON_FIELDS",
    "OutcomeValidationError",
    "PredictionLog",
    "StoreUnavailableError",
    "build_metadata",
    "lead_key",
    "prediction_row",
    "secret_from_env",
]
