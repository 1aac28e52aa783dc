"""A lead's earlier answers, read back from ``predictions``, and the retention rule.

* :func:`latest_scores`: for each of some lead keys, its newest row (what ``/score`` needs
  to say what changed since), in one query;
* :func:`lead_history`: one lead's rows, oldest first (``GET /leads/{id}/history``);
* :func:`delete_older_than`: the retention rule (``LEADSCORE_HISTORY_DAYS``), run by the
  writer thread at start and once a day.

Rows older than the retention cut-off are never returned, deleted yet or not. On
PostgreSQL the reads carry a statement timeout, so a slow database costs a request at most
that long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from serving.predlog.store import Store, StoreUnavailableError, describe, json_value

#: the columns a history entry and a "changed because" are made of
HISTORY_COLUMNS = (
    "lead_key",
    "scored_at",
    "model_name",
    "model_version",
    "p_convert",
    "scores",
    "quadrant",
    "segment",
    "contributions",
)
READ_TIMEOUT_MS = 500  # PostgreSQL statement timeout of a history read


def cutoff(now: datetime, days: int) -> datetime | None:
    """The oldest moment kept for ``days`` of retention (None: 0 days, keep everything)."""
    return None if days <= 0 else now - timedelta(days=days)


def _rows(store: Store, query: sa.Select) -> list[dict[str, Any]]:
    try:
        store.ensure_schema()
        with store.engine.begin() as conn:
            if store.engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {READ_TIMEOUT_MS}"))
            return [dict(r) for r in conn.execute(query).mappings().all()]
    except sa_exc.SQLAlchemyError as e:
        store.lost()
        raise StoreUnavailableError(f"could not read {store.url}: {describe(e)}") from e


def _columns(store: Store, contributions_as_text: bool = False) -> list[Any]:
    t = store.predictions
    return [
        sa.cast(t.c[name], sa.Text).label(name)
        if contributions_as_text and name == "contributions"
        else t.c[name]
        for name in HISTORY_COLUMNS
    ]


def latest_scores(
    store: Store,
    keys: Iterable[str],
    since: datetime | None,
    decode: Callable[[str, dict[str, Any]], bool] = lambda key, row: True,
) -> dict[str, dict[str, Any]]:
    """lead key -> its newest row (scored at or after ``since``), for the keys that have
    one. Its ``contributions`` (JSON text in the database) are decoded where
    ``decode(key, row)`` is true, and None elsewhere: explaining a change needs them only
    where the score moved, and decoding 1,000 leads' ~60 features each costs ~50 ms."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    t = store.predictions
    newest = sa.select(t.c.lead_key, sa.func.max(t.c.scored_at).label("at")).where(
        t.c.lead_key.in_(keys)
    )
    if since is not None:
        newest = newest.where(t.c.scored_at >= since)
    newest = newest.group_by(t.c.lead_key).subquery()
    query = sa.select(*_columns(store, contributions_as_text=True)).join(
        newest, sa.and_(t.c.lead_key == newest.c.lead_key, t.c.scored_at == newest.c.at)
    )
    rows = {row["lead_key"]: row for row in _rows(store, query)}
    for key, row in rows.items():
        text = row["contributions"]
        row["contributions"] = json_value(text) if text is not None and decode(key, row) else None
    return rows


def lead_history(store: Store, key: str, since: datetime | None) -> list[dict[str, Any]]:
    """One lead's rows scored at or after ``since``, oldest first."""
    t = store.predictions
    query = sa.select(*_columns(store)).where(t.c.lead_key == key)
    if since is not None:
        query = query.where(t.c.scored_at >= since)
    return _rows(store, query.order_by(t.c.scored_at, t.c.id))


def delete_older_than(store: Store, moment: datetime) -> int:
    """Delete the rows of the log's table (:attr:`Store.log_table`: the answers', or the
    shadow's) scored before ``moment``; the number deleted."""
    store.ensure_schema()
    t = store.log_table
    with store.engine.begin() as conn:
        return conn.execute(sa.delete(t).where(t.c.scored_at < moment)).rowcount or 0


__all__ = [
    "HISTORY_COLUMNS",
    "READ_TIMEOUT_MS",
    "cutoff",
    "delete_older_than",
    "latest_scores",
    "lead_history",
]
