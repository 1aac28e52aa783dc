"""The database behind the log: the two tables, the engine, and creating the tables when
the database is first reachable, by whichever process gets there first.

``predictions``
    One row per scored lead: ``id`` (row UUID, primary key), ``request_id``, ``lead_key``
    (HMAC-SHA256 of the lead id, never the raw id), ``model_name``, ``model_version``,
    ``p_convert`` (also in ``scores``), ``scores`` (JSON: every numeric field of the answer
    and the whitelisted label fields), ``quadrant``, ``segment`` (nullable), ``reasons``
    (JSON, nullable), ``scored_at`` and ``contributions`` (JSON, nullable: every feature's
    ``[value text, contribution]`` of the conversion head, what "changed because" is
    explained from; added later, so an older table gets the column when first opened and
    its older rows have none), ``features`` (JSON, nullable: every model feature's exact
    value, what ``leadscore monitor`` compares with the training data) and ``as_of``
    (nullable: the moment the lead was scored as of, the monitor's time axis), both added
    the same way.
``shadow_predictions``
    The same columns, for the answers of the shadow model (:mod:`serving.shadow`): scored
    beside the champion, never returned. Kept apart so that ``predictions`` stays what the
    callers were told (monitoring, history and training read only that one); a shadow
    row carries the ``request_id`` of the champion's row for the same lead, so the two pair
    exactly. Its ``contributions`` are null (the shadow logs no reasons' inputs).
``outcomes``
    What the CRM reports later, used as training labels: ``lead_id`` (raw: the CRM sends it
    and training joins on it), ``lead_key`` (same HMAC, to join with ``predictions``),
    ``stage``, ``accepted``, ``won`` (nullable booleans), ``at``, ``received_at``,
    ``request_id``. ``(lead_id, stage, at)`` is unique: a CRM retry is stored once.

SQLite (a file, created readable by its owner only) or PostgreSQL, through SQLAlchemy Core,
with an optional prefix on the table names.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import JSONB

from serving.predlog.rows import MAX_LABEL

logger = logging.getLogger("serving.predlog")

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
    "contributions",
    "features",
    "as_of",
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

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_JSON_DECODER = msgspec.json.Decoder()


def _json_text(value: Any) -> str:
    """The JSON columns' text (msgspec: several times faster than ``json.dumps`` on the
    contributions and feature values of every answer, and NaN/inf as null, which
    PostgreSQL's JSONB requires)."""
    return msgspec.json.encode(value).decode()


def json_value(text: str | bytes) -> Any:
    """A JSON column's value: msgspec, or ``json.loads`` for text msgspec refuses (a row
    an older release wrote with ``NaN``)."""
    try:
        return _JSON_DECODER.decode(text)
    except msgspec.DecodeError:
        return json.loads(text)


class StoreUnavailableError(RuntimeError):
    """The database could not be reached or refused a synchronous write/read."""


def _prediction_table(name: str, md: sa.MetaData) -> sa.Table:
    return sa.Table(
        name,
        md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False, index=True),
        sa.Column("lead_key", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("p_convert", sa.Float, nullable=True),
        sa.Column("scores", _JSON, nullable=False),
        sa.Column("quadrant", sa.String(MAX_LABEL), nullable=True),
        sa.Column("segment", sa.String(MAX_LABEL), nullable=True),
        sa.Column("reasons", _JSON, nullable=True),
        sa.Column("scored_at", sa.DateTime(), nullable=False, index=True),
        # added after the first release: an older table gets it from Store.ensure_schema
        sa.Column("contributions", _JSON, nullable=True),
        # added for monitoring: the exact feature values and the moment scored as of
        sa.Column("features", _JSON, nullable=True),
        sa.Column("as_of", sa.DateTime(), nullable=True),
        # a lead's newest answer (changed_because, for every lead of a request) and its
        # history: found through this index alone; without it SQLite searched each
        # request's rows by scored_at (all equal), 0.6 s for 1,000 leads
        sa.Index(f"ix_{name}_lead_key_scored_at", "lead_key", "scored_at"),
    )


#: The shadow model's table, without the prefix (see the module docstring).
SHADOW_TABLE = "shadow_predictions"


def build_metadata(prefix: str = "") -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The tables, named ``<prefix>predictions`` and ``<prefix>outcomes`` (returned) and
    ``<prefix>shadow_predictions`` (in the metadata: ``md.tables[prefix + SHADOW_TABLE]``)."""
    if prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError("table prefix must be letters, digits and underscores")
    md = sa.MetaData()
    predictions = _prediction_table(f"{prefix}predictions", md)
    _prediction_table(f"{prefix}{SHADOW_TABLE}", md)
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


def is_transient(err: BaseException) -> bool:
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


def describe(err: BaseException) -> str:
    """The database's complaint in one line, without the statement or its parameters."""
    orig = getattr(err, "orig", None) or err
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


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


class Store:
    """The engine and the tables of one log; creates the tables on first use.

    ``shadow``: the rows this log writes go to ``shadow_predictions`` (:attr:`log_table`).

    ``key_file`` is where a SQLite log keeps its generated lead-key secret (None for other
    databases). Creating the object opens no connection."""

    def __init__(
        self,
        url: sa.URL,
        table_prefix: str = "",
        connect_timeout: float = 5.0,
        shadow: bool = False,
    ) -> None:
        self.key_file: Path | None = None
        if url.get_backend_name() == "sqlite":
            if url.database in (None, "", ":memory:"):
                raise ValueError("an in-memory SQLite database cannot be shared with the writer")
            self.key_file = Path(f"{url.database}.key")
            _private_sqlite_file(Path(url.database))
            connect_args: dict[str, Any] = {"timeout": max(connect_timeout, 10.0)}
        elif url.get_backend_name() == "postgresql":
            connect_args = {"connect_timeout": max(1, math.ceil(connect_timeout))}
        else:
            connect_args = {}
        self.url = url.render_as_string(hide_password=True)
        self.engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args=connect_args,
            json_serializer=_json_text,
            json_deserializer=json_value,
        )
        if url.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._md, self.predictions, self.outcomes = build_metadata(table_prefix)
        self.shadow_predictions = self._md.tables[f"{table_prefix}{SHADOW_TABLE}"]
        # the table this log writes (and its retention purges): the shadow's, or the answers'
        self.log_table = self.shadow_predictions if shadow else self.predictions
        self.prediction_insert = _insert_ignoring_duplicates(self.engine, self.log_table, ["id"])
        self.outcome_insert = _insert_ignoring_duplicates(
            self.engine, self.outcomes, ["lead_id", "stage", "at"]
        )
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def ensure_schema(self) -> None:
        """Create the tables if this process has not seen them yet. Several processes (the
        workers of one server, replicas) may race to create them: the loser's error is
        recognised and the creation checked again."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            for attempt in range(3):
                try:
                    self._md.create_all(self.engine)
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
            self._add_missing_columns()
            self._add_missing_indexes()
            self._schema_ready = True

    def _add_missing_indexes(self) -> None:
        """Indexes added after a table was created (``create_all`` only makes them with a
        new table) are added to it."""
        inspector = sa.inspect(self.engine)
        for table in self._md.sorted_tables:
            have = {i["name"] for i in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in have:
                    self._add_unless_raced(
                        partial(index.create, self.engine),
                        partial(self._has_index, table.name, index.name),
                        f"index {index.name}",
                    )

    def _has_index(self, table: str, name: str) -> bool:
        return name in {i["name"] for i in sa.inspect(self.engine).get_indexes(table)}

    def _add_missing_columns(self) -> None:
        """The additive migration: columns of ``predictions`` added after a table was
        created (``contributions``, ``features``, ``as_of``) are added to it, nullable;
        older rows read as null."""
        have = {c["name"] for c in sa.inspect(self.engine).get_columns(self.predictions.name)}
        table = self.engine.dialect.identifier_preparer.format_table(self.predictions)
        for column in self.predictions.columns:
            if column.name in have:
                continue
            kind = column.type.compile(dialect=self.engine.dialect)
            self._add_unless_raced(
                partial(self._execute, f"ALTER TABLE {table} ADD COLUMN {column.name} {kind}"),
                partial(self._has_column, self.predictions.name, column.name),
                f"column {column.name}",
            )

    def _has_column(self, table: str, name: str) -> bool:
        return name in {c["name"] for c in sa.inspect(self.engine).get_columns(table)}

    def _execute(self, statement: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(statement))

    @staticmethod
    def _add_unless_raced(add: Any, present: Any, what: str) -> None:
        """``add()``; its error is not one when ``present()`` says another process added
        the same thing at the same moment."""
        try:
            add()
        except (sa_exc.OperationalError, sa_exc.ProgrammingError) as e:
            if not present():
                raise
            logger.debug("%s added by another process: %s", what, e)

    def lost(self) -> None:
        """The database failed: check the tables again next time (it may be a new, empty
        database by then)."""
        self._schema_ready = False

    def insert_predictions(self, rows: list[dict[str, Any]]) -> None:
        self.ensure_schema()
        with self.engine.begin() as conn:
            conn.execute(self.prediction_insert, rows)

    def read(self, query: sa.Select, columns: tuple[str, ...]) -> pd.DataFrame:
        """The rows of ``query`` as a frame; :class:`StoreUnavailableError` if unreachable."""
        try:
            self.ensure_schema()
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except sa_exc.SQLAlchemyError as e:
            self.lost()
            raise StoreUnavailableError(f"could not read {self.url}: {describe(e)}") from e
        return pd.DataFrame([dict(r) for r in rows], columns=list(columns))


__all__ = [
    "OUTCOME_COLUMNS",
    "PREDICTION_COLUMNS",
    "SHADOW_TABLE",
    "Store",
    "StoreUnavailableError",
    "build_metadata",
    "describe",
    "is_transient",
]
