"""Outcomes reported by the CRM (``POST /outcomes``) as training labels.

``merge_outcomes`` is pure: it turns stored outcomes (:meth:`serving.predlog.PredictionLog.
read_outcomes`) into ``stage_history`` rows and merges them with the CRM export, so
`leadscore train --outcomes-db URL` learns from what the CRM reported after scoring.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from crm.contract import CrmData

# A won deal means the lead became a customer.
_WON_STAGE = "customer"


def outcome_stage_rows(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Outcomes -> ``(lead_id, stage, entered_at)`` rows.

    * a stage reached counts as entered at ``at``;
    * ``accepted = false`` (rejected by sales) means the stage was *not* entered;
    * ``won = false`` (lost) means not entered; ``won = true`` also means ``customer``.
    """
    cols = ["lead_id", "stage", "entered_at"]
    if outcomes.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    o = outcomes.copy()
    accepted = o["accepted"].astype("boolean") if "accepted" in o else pd.Series(pd.NA, o.index)
    won = o["won"].astype("boolean") if "won" in o else pd.Series(pd.NA, o.index)
    entered = ~(accepted.fillna(True) == False) & ~(won.fillna(True) == False)  # noqa: E712
    reached = o.loc[entered.to_numpy(), ["lead_id", "stage", "at"]]
    wins = o.loc[(won.fillna(False) == True).to_numpy(), ["lead_id", "at"]]  # noqa: E712
    wins = wins.assign(stage=_WON_STAGE)
    rows = pd.concat([reached, wins[["lead_id", "stage", "at"]]], ignore_index=True)
    return rows.rename(columns={"at": "entered_at"})[cols]


def merge_outcomes(data: CrmData, outcomes: pd.DataFrame) -> CrmData:
    """``data`` with the outcomes added to its stage history.

    Outcomes for leads not in ``data.leads`` are ignored; when a stage appears both in
    the export and in the outcomes, the earliest entry wins. Other tables are unchanged.
    """
    new = outcome_stage_rows(outcomes)
    new = new[new["lead_id"].isin(data.leads["lead_id"].astype(str))]
    if new.empty:
        return data
    history = data.stage_history
    merged = pd.concat(
        [
            history.astype({"lead_id": "str", "stage": "str"}),
            new.astype({"lead_id": "str", "stage": "str"}).assign(
                entered_at=pd.to_datetime(new["entered_at"]).astype(history["entered_at"].dtype)
            ),
        ],
        ignore_index=True,
    )
    merged = (
        merged.sort_values(["lead_id", "entered_at"], kind="stable")
        .drop_duplicates(["lead_id", "stage"], keep="first")
        .reset_index(drop=True)
    )
    merged = merged.astype({c: history[c].dtype for c in ("lead_id",)})
    if isinstance(history["stage"].dtype, pd.CategoricalDtype):
        merged["stage"] = pd.Categorical(merged["stage"], dtype=history["stage"].dtype)
    return replace(data, stage_history=merged[list(history.columns)])


__all__ = ["merge_outcomes", "outcome_stage_rows"]
