"""What the monitor reads from the log: one model version's answers in a time range (their
moment, lead key, scores and exact feature values) and the outcomes of those leads, as the
frames :func:`monitoring.monitor` takes. SQLite and PostgreSQL alike (SQLAlchemy Core;
the JSON columns come back as dicts from both).

The time axis is the moment a lead was scored *as of* (``as_of``; rows logged before that
column existed fall back to ``scored_at``): a CRM re-scoring last month's leads puts them
in last month. Outcomes are read for the lead keys found, in chunks.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from serving.predlog.store import Store

if TYPE_CHECKING:
    from monitoring.report import Traffic

_CHUNK = 500  # lead keys per outcome query (SQLite allows 999 parameters by default)


def read_traffic(
    store: Store,
    model_name: str,
    model_version: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Traffic:
    """The answers of ``model_name`` (version ``model_version``; None: every version)
    scored as of a moment in ``[since, until)``, and their leads' outcomes.
    Raises :class:`~serving.predlog.store.StoreUnavailableError` if the database cannot
    answer."""
    t = store.predictions
    moment = sa.func.coalesce(t.c.as_of, t.c.scored_at).label("moment")
    query = sa.select(t.c.id, t.c.lead_key, t.c.model_version, moment, t.c.scores, t.c.features)
    query = query.where(t.c.model_name == model_name)
    if model_version is not None:
        query = query.where(t.c.model_version == str(model_version))
    if since is not None:
        query = query.where(moment >= since)
    if until is not None:
        query = query.where(moment < until)
    columns = ("id", "lead_key", "model_version", "moment", "scores", "features")
    rows = store.read(query.order_by(moment, t.c.id), columns)
    rows["moment"] = pd.to_datetime(rows["moment"])
    keys = sorted(set(rows["lead_key"]))
    o = store.outcomes
    parts = [
        store.read(
            sa.select(o.c.lead_key, o.c.stage, o.c.at).where(
                o.c.lead_key.in_(keys[i : i + _CHUNK])
            ),
            ("lead_key", "stage", "at"),
        )
        for i in range(0, len(keys), _CHUNK)
    ]
    outcomes = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame({"lead_key": [], "stage": [], "at": []})
    )
    outcomes["at"] = pd.to_datetime(outcomes["at"])
    index = pd.RangeIndex(len(rows))
    features = pd.DataFrame.from_records(
        [f if isinstance(f, dict) else {} for f in rows["features"]], index=index
    )
    scores = pd.DataFrame.from_records(
        [s if isinstance(s, dict) else {} for s in rows["scores"]], index=index
    )
    numeric = [c for c in scores.columns if pd.api.types.is_numeric_dtype(scores[c])]
    from monitoring.report import Traffic  # SciPy: only when the traffic is read

    return Traffic(
        predictions=rows[["id", "lead_key", "model_version", "moment"]].reset_index(drop=True),
        features=features,
        scores=scores[numeric].astype(float),
        outcomes=outcomes,
    )


__all__ = ["read_traffic"]
