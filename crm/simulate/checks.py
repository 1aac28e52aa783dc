"""Checks on a simulation: stage counts and rates, and the ceiling a model can reach on
the MQL -> SAL holdout (the true p_sal's ROC AUC)."""

from __future__ import annotations

import pandas as pd
from numpy.typing import ArrayLike

from crm.contract import CrmData
from crm.simulate.world import SAL_HORIZON_DAYS
from crm.vocabulary import STAGES


def stage_counts(data: CrmData) -> pd.Series:
    """How many leads entered each funnel stage."""
    sh = data.stage_history
    counts = sh.groupby(sh["stage"].astype(str))["lead_id"].nunique()
    return counts.reindex(list(STAGES), fill_value=0)


def stage_rates(data: CrmData) -> dict[str, float]:
    """Stage-to-stage conversion rates as recorded (later stages are censored at the end)."""
    c = stage_counts(data)
    return {f"{a}->{b}": float(c[b] / c[a]) if c[a] else float("nan")
            for a, b in zip(STAGES[1:-1], STAGES[2:], strict=True)}  # fmt: skip


def sal_holdout(
    data: CrmData,
    truth: pd.DataFrame,
    end: str | pd.Timestamp = "2025-12-31",
    horizon_days: int = SAL_HORIZON_DAYS,
    holdout_share: float = 0.2,
) -> pd.DataFrame:
    """The latest ``holdout_share`` of uncensored MQLs with label and true ``p_sal``.

    Uncensored: ``mql_at + horizon <= end``; label: SAL entered within the horizon."""
    sh = data.stage_history
    stage = sh["stage"].astype(str)
    mql = sh[stage == "mql"].groupby("lead_id")["entered_at"].min().rename("mql_at")
    sal = sh[stage == "sal"].groupby("lead_id")["entered_at"].min().rename("sal_at")
    horizon = pd.Timedelta(days=horizon_days)
    df = mql.to_frame().join(sal)
    df = df[df["mql_at"] + horizon <= pd.Timestamp(end)]
    df["label"] = (df["sal_at"] <= df["mql_at"] + horizon).astype(int)
    df = df.join(truth.set_index("lead_id")["p_sal"])
    df = df.reset_index().sort_values(["mql_at", "lead_id"], kind="stable")
    n_hold = int(round(len(df) * holdout_share))
    return df.iloc[len(df) - n_hold :]


def truth_auc(labels: ArrayLike, p_true: ArrayLike) -> float:
    """ROC AUC of the simulator's true probabilities against the realised labels: the
    ceiling no model of the simulated data can beat on those rows, but by luck."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, p_true))


def ceiling_auc(
    data: CrmData, truth: pd.DataFrame, end: str | pd.Timestamp = "2025-12-31"
) -> float:
    """ROC AUC of the true ``p_sal`` against the realised label on the time holdout."""
    hold = sal_holdout(data, truth, end)
    return truth_auc(hold["label"], hold["p_sal"])
