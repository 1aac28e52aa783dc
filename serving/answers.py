"""A request's leads -> answer records: the one scoring step of ``/score`` and of the shadow
challenger (serving/shadow.py), so the shadow is scored exactly as the served model is.

The per-request path (``scoring.single.score_request``: no DataFrames) covers LightGBM
models; any other model goes through the table path (``leads_to_tables`` ->
``scoring.batch.score_tables``). Both give the same records, with contributions and exact
feature values for the prediction log (tests/scoring/test_single_scoring.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from scoring.batch import answer_records, score_tables
from scoring.single import score_request
from serving.schemas import leads_to_tables


def score_leads(
    model: Any,
    leads: Sequence[Any],
    moment: datetime | Sequence[datetime],
    model_ref: dict[str, str],
    checkpoint: Callable[[str], None] = lambda step: None,
) -> list[dict[str, Any]]:
    """Answer records (with ``contributions`` and ``features``, which the answer body leaves
    out) of ``leads`` as of ``moment`` (naive UTC), or of each lead as of its own moment (a
    sequence, one per lead: the shadow scores several queued requests in one call, each
    lead getting the records its request gets alone); ``checkpoint(step)`` is called
    between the table path's steps (the service stops a request past its deadline there)."""
    records = score_request(model, leads, moment, model_ref)
    if records is not None:
        return records
    if isinstance(moment, datetime):
        return _score_tables(model, leads, moment, model_ref, checkpoint)
    if len(moment) != len(leads):
        raise ValueError(f"{len(moment)} moments for {len(leads)} leads")
    by_moment: dict[datetime, list[int]] = {}
    for i, at in enumerate(moment):
        by_moment.setdefault(at, []).append(i)
    out: list[dict[str, Any]] = [{}] * len(leads)
    for at, positions in by_moment.items():
        part = _score_tables(model, [leads[i] for i in positions], at, model_ref, checkpoint)
        for i, record in zip(positions, part, strict=True):
            out[i] = record
    return out


def _score_tables(
    model: Any,
    leads: Sequence[Any],
    moment: datetime,
    model_ref: dict[str, str],
    checkpoint: Callable[[str], None],
) -> list[dict[str, Any]]:
    """The table path: ``leads_to_tables`` -> ``scoring.batch.score_tables``."""
    leads_df, accounts_df, events_df, stages_df = leads_to_tables(leads)
    checkpoint("building its tables")
    answers = score_tables(
        model,
        leads_df,
        accounts_df,
        events_df,
        pd.Timestamp(moment),
        stages_df,
        with_contributions=True,  # for the log: the answer body leaves them out
    )
    return answer_records(answers, model_ref)


__all__ = ["score_leads"]
