"""Outcomes reported by the CRM (``POST /outcomes``) as training labels.

``merge_outcomes`` is pure: it turns stored outcomes (:meth:`serving.predlog.PredictionLog.
read_outcomes`) into ``stage_history`` rows and merges them with the CRM export, so
`leadscore train --outcomes-db URL` learns from what the CRM reported after scoring.
``shadow_pairs`` labels the leads the champion and the shadow model both scored with the
same outcomes, for ``leadscore promote --evidence shadow``.
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


def _probability(rows: pd.DataFrame, target: str) -> pd.Series:
    """Each row's probability of ``target`` (``scores["p_<target>"]``), NaN without one."""
    key = f"p_{target}"
    return pd.Series(
        [s.get(key) if isinstance(s, dict) else None for s in rows["scores"]],
        index=rows.index,
        dtype="float64",
    )


def shadow_pairs(
    predictions: pd.DataFrame,
    shadow_predictions: pd.DataFrame,
    outcomes: pd.DataFrame,
    target: str,
    champion: tuple[str, str],
    shadow: tuple[str, str],
) -> pd.DataFrame:
    """One row per lead with outcomes that both models scored: ``lead_key``,
    ``p_champion``, ``p_shadow`` (each model's probability of ``target``) and ``y`` (1 if
    an outcome says the lead reached ``target`` or a later stage, by the rules of
    :func:`outcome_stage_rows`).

    ``champion`` and ``shadow`` are (model name, version): only their rows count. The two
    rows of a pair answered the same request for the same lead. The pair used is the
    lead's last one scored before its first outcome (reported at ``at``), so no prediction
    made after anything was known about the lead's fate takes part."""
    from crm.vocabulary import STAGE_RANK

    cols = ["lead_key", "p_champion", "p_shadow", "y"]
    keep = ["request_id", "lead_key", "scored_at"]
    champ = predictions[
        (predictions["model_name"] == champion[0])
        & (predictions["model_version"].astype(str) == str(champion[1]))
    ]
    shad = shadow_predictions[
        (shadow_predictions["model_name"] == shadow[0])
        & (shadow_predictions["model_version"].astype(str) == str(shadow[1]))
    ]
    champ = champ[keep].assign(p_champion=_probability(champ, target))
    shad = shad[["request_id", "lead_key"]].assign(p_shadow=_probability(shad, target))
    pairs = champ.merge(shad, on=["request_id", "lead_key"]).dropna(
        subset=["p_champion", "p_shadow"]
    )
    if pairs.empty or outcomes.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})
    first = outcomes.groupby("lead_key")["at"].min().rename("first_outcome")
    pairs = pairs.join(first, on="lead_key", how="inner")
    pairs = pairs[pd.to_datetime(pairs["scored_at"]) < pd.to_datetime(pairs["first_outcome"])]
    pairs = pairs.sort_values("scored_at", kind="stable").drop_duplicates("lead_key", keep="last")
    reached = outcome_stage_rows(outcomes.assign(lead_id=outcomes["lead_key"]))
    rank = STAGE_RANK[target]
    converted = set(reached.loc[reached["stage"].map(STAGE_RANK).fillna(-1) >= rank, "lead_id"])
    pairs["y"] = pairs["lead_key"].isin(converted).astype(int)
    return pairs[cols].reset_index(drop=True)


__all__ = ["merge_outcomes", "outcome_stage_rows", "shadow_pairs"]
