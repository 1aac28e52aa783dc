"""Late wins: conversions that arrive after the label's horizon and so count as losses.

A training label says "reached the target within ``horizon_days`` of entering the stage
before it". A deal won 120 days after MQL entry is a negative under the 90-day default:
the model learns that such leads do not convert, and in a business with long sales
cycles that can be a large share of its wins. ``train`` reports how many conversions fall
outside the horizon and the horizon that would keep 95 % of them.

The delays are measured on every lead that reached the target after entering the
from-stage, however recent; a lead that entered last month cannot show a 120-day delay
yet, so on growing data the 95 % horizon is if anything an underestimate. A longer horizon
also censors more recent snapshots (their outcome is not known yet): the sentence names
the option, the user weighs it. Delays run from the entry snapshot: a target with later
snapshots too (``mql`` at 0/7/30/90 days) still labels a lead that converts on day 120
positive in its 30- and 90-day snapshots; the entry snapshot, the one every lead has,
counts it as a loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crm.contract import CrmData
from training.dataset import previous_stage, stage_entries

#: the share of conversions a suggested horizon keeps
KEEP_SHARE = 0.95


def stage_label(stage: str) -> str:
    """How a stage is named in a sentence (MQL, SAL; other stages as they are)."""
    return stage.upper() if stage in ("mql", "sal") else stage


def entry_words(stage: str) -> str:
    """The moment a snapshot stands for, in words."""
    return "lead creation" if stage == "lead" else f"{stage_label(stage)} entry"


@dataclass(frozen=True)
class LateWins:
    """How many leads that reached ``target`` got there later than ``horizon_days`` after
    entering ``from_stage``; ``horizon_95_days``: the smallest whole number of days that
    keeps ``KEEP_SHARE`` of them (None when none reached it)."""

    from_stage: str
    target: str
    horizon_days: int
    n_reached: int
    n_late: int
    share_late: float
    horizon_95_days: int | None
    median_delay_days: float | None = None

    def sentence(self) -> str:
        """The finding in one plain sentence, with the option to act on it."""
        target, entry = stage_label(self.target), entry_words(self.from_stage)
        if not self.n_reached:
            return f"no lead reached {target} after {entry}: nothing to say about late wins"
        if not self.n_late:
            return (
                f"all {self.n_reached:,} leads that reached {target} got there within "
                f"{self.horizon_days} days of {entry}: the horizon misses no conversions"
            )
        late = (
            f"{self.n_late:,} of {self.n_reached:,} leads that reached {target} "
            f"({self.share_late:.1%}) got there more than {self.horizon_days} days after "
            f"{entry} and count as negatives"
        )
        if self.horizon_95_days is None or self.horizon_95_days <= self.horizon_days:
            return f"{late}; the horizon already keeps {KEEP_SHARE:.0%} of conversions"
        return (
            f"{late}; a horizon of {self.horizon_95_days} days would keep {KEEP_SHARE:.0%} "
            f"of them (--horizon-days {self.horizon_95_days}), at the cost of leaving out "
            "recent leads whose outcome is not known that long yet"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "from_stage": self.from_stage,
            "target": self.target,
            "horizon_days": self.horizon_days,
            "n_reached": self.n_reached,
            "n_late": self.n_late,
            "share_late": self.share_late,
            "horizon_95_days": self.horizon_95_days,
            "median_delay_days": self.median_delay_days,
            "sentence": self.sentence(),
        }


def late_wins(data: CrmData, target: str, horizon_days: int) -> LateWins:
    """Delays from entry into the stage before ``target`` (as the training set snapshots
    it) to the first entry into ``target``, over the leads that reached it after that
    entry; late = longer than ``horizon_days``, as the label counts it."""
    from_stage = previous_stage(data, target)
    start = stage_entries(data, from_stage)
    reached = stage_entries(data, target).reindex(start.index)
    after = reached.notna() & (reached >= start)
    delay = ((reached[after] - start[after]).dt.total_seconds() / 86400.0).to_numpy()
    n_reached = int(len(delay))
    if not n_reached:
        return LateWins(from_stage, target, horizon_days, 0, 0, 0.0, None)
    n_late = int(np.sum(delay > horizon_days))
    keep = float(np.quantile(delay, KEEP_SHARE, method="higher"))
    return LateWins(
        from_stage=from_stage,
        target=target,
        horizon_days=horizon_days,
        n_reached=n_reached,
        n_late=n_late,
        share_late=n_late / n_reached,
        horizon_95_days=max(1, math.ceil(keep)),
        median_delay_days=float(np.median(delay)),
    )
