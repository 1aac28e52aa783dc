"""The durable prediction log and the outcome store.

Two tables (:mod:`serving.predlog.store`), ``predictions`` (one row per scored lead) and
``outcomes`` (what the CRM reports later, the training labels), in SQLite or PostgreSQL.
All timestamps are naive UTC (:mod:`serving.timestamps`).

* :mod:`~serving.predlog.keys`: lead ids are stored as keyed hashes (lead keys), and the
  secret behind them;
* :mod:`~serving.predlog.rows`: what a row may hold (a whitelist: no e-mail, name or raw
  lead id in ``predictions``) and the validation of outcomes;
* :mod:`~serving.predlog.store`: the tables, the engine, creating the tables when several
  processes race to;
* :mod:`~serving.predlog.writer`: the buffer and the background thread that writes
  predictions without making scoring wait;
* :mod:`~serving.predlog.outcome_store`: outcomes written synchronously, read back;
* :mod:`~serving.predlog.log`: :class:`PredictionLog`, all of it behind one object;
* :mod:`~serving.predlog.history`: a lead's earlier answers read back, and the retention
  rule (``history_days``) the writer thread applies.
"""

from __future__ import annotations

from serving.predlog.keys import lead_key, secret_from_env
from serving.predlog.log import PredictionLog
from serving.predlog.rows import (
    LABEL_FIELDS,
    REASON_FIELDS,
    OutcomeValidationError,
    prediction_row,
)
from serving.predlog.store import StoreUnavailableError, build_metadata

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
