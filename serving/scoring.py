"""The one scoring path: canonical tables -> features -> model -> answer rows.

The HTTP service and `leadscore score` (batch) both call ``score_tables``, so a lead gets
the same answer either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features.build import compute_features
from features.content import funnel_profile

EMPTY_STAGES = pd.DataFrame(
    {
        "lead_id": pd.Series(dtype="str"),
        "stage": pd.Series(dtype="str"),
        "entered_at": pd.Series(dtype="datetime64[ns]"),
    }
)


def score_tables(
    model: Any,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    stage_history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score leads as of one moment; returns one answer row per lead, index = lead_id:
    probabilities, fit and interest, quadrant, then persona, lifecycle stage, segment,
    content phase and next content from the configuration versioned with the model."""
    X = compute_features(leads, accounts, events, as_of, model.feature_config)
    answers = model.score(X)
    history = EMPTY_STAGES if stage_history is None else stage_history
    profile = funnel_profile(leads, events, history, as_of, model.personas, model.content)
    return answers.join(profile)


def score_batch(
    model: Any,
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp,
    chunk_size: int = 50_000,
    on_chunk: Callable[[int], None] = lambda n: None,
    stage_history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """``score_tables`` over chunks of leads, so memory stays bounded on big exports."""
    codes = pd.Index(pd.unique(leads["lead_id"])).get_indexer(events["lead_id"])
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    accounts_by_id = accounts.set_index("account_id", drop=False)
    parts = []
    for start in range(0, len(leads), chunk_size):
        part = leads.iloc[start : start + chunk_size]
        lo, hi = np.searchsorted(sorted_codes, [start, start + len(part)])
        ev = events.iloc[order[lo:hi]]
        acc_ids = part["account_id"].dropna().unique()
        acc = accounts_by_id.loc[accounts_by_id.index.intersection(acc_ids)].reset_index(drop=True)
        hist = None
        if stage_history is not None:
            hist = stage_history[stage_history["lead_id"].isin(part["lead_id"])]
        parts.append(score_tables(model, part, acc, ev, as_of, hist))
        on_chunk(len(part))
    return pd.concat(parts) if parts else pd.DataFrame()


def answer_records(answers: pd.DataFrame, model_ref: dict[str, str]) -> list[dict[str, Any]]:
    """Answer frame -> JSON-ready dicts, one per lead, each naming the model."""
    return [
        {"lead_id": str(lead_id), **row, "model": model_ref}
        for lead_id, row in zip(answers.index, answers.to_dict("records"), strict=True)
    ]
