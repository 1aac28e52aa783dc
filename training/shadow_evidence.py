"""The shadow's live evidence: champion and shadow compared on the served leads whose
outcomes have arrived, paired, with bootstrap intervals (``leadscore promote --evidence
shadow``; the rows are paired and labelled by ``serving.outcomes.shadow_pairs``).

Paired: every lead was scored by both models in the same request (the same features, the
same moment), so the difference of a metric is measured on the same leads, and the
bootstrap resamples leads, each keeping both of its probabilities. An interval of the
difference that excludes zero is not the luck of which leads converted.

The rule (:func:`paired_evidence`) that recommends, and allows, promoting the shadow:

1. enough evidence: at least :data:`MIN_LEADS` leads with outcomes scored by both models,
   at least :data:`MIN_PER_CLASS` of them converted and as many did not; otherwise
   "not enough outcomes yet", and the shadow is not promoted (keep it running);
2. not worse than the champion on the live leads beyond the promotion gate's tolerance:
   the lower end of the 95 % interval of the ROC AUC difference (shadow - champion) is at
   least -:data:`~training.registry.AUC_TOLERANCE`, and the upper end of the interval of
   the log-loss difference is at most :data:`LOG_LOSS_TOLERANCE` (log loss judges
   calibration and ranking together; Brier is shown, not ruled on).

A shadow that passes is *recommended* when it is also better for sure: the upper end of
its log-loss difference interval is below 0. The promotion itself also needs the
time-holdout gate (:mod:`training.registry`), as a challenger does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.evaluate import RankedScores
from training.registry import AUC_TOLERANCE

MIN_LEADS = 200
MIN_PER_CLASS = 20
LOG_LOSS_TOLERANCE = 0.01
DRAWS = 1000
METRICS = ("roc_auc", "log_loss", "brier")
_EPS = 1e-6


@dataclass(frozen=True)
class ShadowEvidence:
    """Both models on the same live leads, and the rule's verdict."""

    n_leads: int
    n_converted: int
    ok: bool
    reason: str
    recommended: bool = False
    # metric -> value, per model
    champion: dict[str, float] = field(default_factory=dict)
    shadow: dict[str, float] = field(default_factory=dict)
    # metric -> (shadow - champion, 95 % interval low, high)
    difference: dict[str, tuple[float, float, float]] = field(default_factory=dict)


def _losses(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(p, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)), (p - y) ** 2


class _Scored:
    """One model's probabilities on the leads, ranked and scored once, for every draw."""

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.ranked = RankedScores(y, p)
        self.ll, self.br = _losses(y, p)

    def metrics(self, w: np.ndarray | None = None) -> dict[str, float | None]:
        """The metrics with lead weights ``w`` (a bootstrap draw; default: 1 each); the ROC
        AUC is None when the weighted leads hold one class only."""
        return {
            "roc_auc": self.ranked.auc(w),
            "log_loss": float(np.average(self.ll, weights=w)),
            "brier": float(np.average(self.br, weights=w)),
        }


def too_few(n: int, converted: int, min_leads: int = MIN_LEADS) -> str | None:
    """Why ``n`` leads (``converted`` of them converted) are not enough evidence, or None."""
    others = n - converted
    if n >= min_leads and converted >= MIN_PER_CLASS and others >= MIN_PER_CLASS:
        return None
    return (
        f"only {n} lead{'s' if n != 1 else ''} with outcomes scored by both models "
        f"({converted} converted, {others} did not); need at least {min_leads}, with "
        f"{MIN_PER_CLASS} of each: keep the shadow running until more outcomes arrive"
    )


def paired_evidence(
    y: np.ndarray,
    p_champion: np.ndarray,
    p_shadow: np.ndarray,
    *,
    min_leads: int = MIN_LEADS,
    draws: int = DRAWS,
    seed: int = 0,
) -> ShadowEvidence:
    """The comparison and the rule's verdict (module docstring) for one probability per
    lead and model and the lead's outcome ``y`` (1 converted)."""
    y = np.asarray(y, dtype=float)
    pc, ps = np.asarray(p_champion, dtype=float), np.asarray(p_shadow, dtype=float)
    n, converted = len(y), int(y.sum())
    short = too_few(n, converted, min_leads)
    if short is not None:
        return ShadowEvidence(n, converted, False, short)
    scored_c, scored_s = _Scored(y, pc), _Scored(y, ps)
    champion, shadow = scored_c.metrics(), scored_s.metrics()
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(draws):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        a, b = scored_c.metrics(w), scored_s.metrics(w)
        if a["roc_auc"] is None:  # the draw holds one class only: no ranking to compare
            continue
        for m in METRICS:
            diffs[m].append(b[m] - a[m])
    difference = {
        m: (
            shadow[m] - champion[m],
            float(np.percentile(diffs[m], 2.5)),
            float(np.percentile(diffs[m], 97.5)),
        )
        for m in METRICS
    }
    ok, reason, recommended = _verdict(difference, n)
    return ShadowEvidence(n, converted, ok, reason, recommended, champion, shadow, difference)


def _verdict(diff: dict[str, tuple[float, float, float]], n: int) -> tuple[bool, str, bool]:
    _, auc_low, _ = diff["roc_auc"]
    ll, _, ll_high = diff["log_loss"]
    problems = []
    if auc_low < -AUC_TOLERANCE:
        problems.append(f"its ROC AUC may be worse by up to {-auc_low:.4f} (> {AUC_TOLERANCE})")
    if ll_high > LOG_LOSS_TOLERANCE:
        problems.append(
            f"its log loss may be worse by up to {ll_high:.4f} (> {LOG_LOSS_TOLERANCE})"
        )
    where = f"on {n} live leads with outcomes"
    if problems:
        return (
            False,
            f"the shadow is not shown to be as good as the champion {where}: "
            + ("; ".join(problems)),
            False,
        )
    if ll_high < 0:
        return (
            True,
            f"the shadow beats the champion {where} (log loss {ll:+.4f}, "
            f"interval entirely below 0): recommended",
            True,
        )
    return (
        True,
        (
            f"the shadow is not worse than the champion {where} beyond tolerance "
            f"(log loss {ll:+.4f}), but not shown better either"
        ),
        False,
    )


__all__ = [
    "LOG_LOSS_TOLERANCE",
    "MIN_LEADS",
    "MIN_PER_CLASS",
    "ShadowEvidence",
    "paired_evidence",
    "too_few",
]
