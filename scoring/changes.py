"""Changed because: why a lead's score moved between two answers, in words.

Each logged answer keeps the conversion head's contributions (log-odds) and the lead's
value of every feature (:func:`scoring.reasons.contribution_records`). Between two answers
the features whose contributions moved most *in the direction of the change* explain it:
``p_convert 0.31 -> 0.12: visited the website about 2 months ago, unsubscribed from
e-mails``, each feature said in the words of :func:`scoring.reasons.phrase` with its new
value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from scoring.reasons import phrase

N_CHANGES = 3  # features named per change
MIN_MOVE = 0.01  # log-odds: a smaller move is noise, not a reason

Contributions = Mapping[str, Sequence[Any]]  # feature -> [value text, contribution]


def _value(text: Any) -> Any:
    """A stored value text back as the value :func:`phrase` expects: a number where it
    reads as one, None where missing, the text otherwise."""
    if text is None:
        return math.nan
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _contribution(entry: Sequence[Any] | None) -> float:
    if not entry or len(entry) < 2 or entry[1] is None:
        return 0.0
    c = float(entry[1])
    return c if math.isfinite(c) else 0.0


def changed_because(
    before: Contributions | None,
    after: Contributions | None,
    p_before: float | None,
    p_after: float | None,
    n: int = N_CHANGES,
) -> list[str]:
    """The phrases that explain ``p_before -> p_after``: up to ``n`` features whose value
    changed and whose contributions moved most in the direction of the change (at least
    :data:`MIN_MOVE`), said with their new value. Empty when the score did not move, or
    nothing is known of either answer's contributions (rows logged before they were kept)."""
    if not before or not after or p_before is None or p_after is None or p_before == p_after:
        return []
    sign = 1.0 if p_after > p_before else -1.0
    moved, shifted = [], []
    for feature in after.keys() | before.keys():
        move = sign * (_contribution(after.get(feature)) - _contribution(before.get(feature)))
        if move >= MIN_MOVE:
            was, now = (before.get(feature) or [None])[0], (after.get(feature) or [None])[0]
            (moved if was != now else shifted).append((-move, feature))
    # A feature whose value did not change can still move (trees share credit between
    # features): it is named only when no changed value explains the move.
    phrases = []
    for _, feature in sorted(moved or shifted)[:n]:
        entry = after.get(feature) or before.get(feature) or [None, 0.0]
        phrases.append(phrase(feature, _value(entry[0])))
    return phrases


def change_sentence(p_before: float | None, p_after: float | None, phrases: list[str]) -> str:
    """``"p_convert 0.31 -> 0.12: a, b"`` (``"p_convert 0.31 -> 0.31: no change"``)."""

    def said(p: float | None) -> str:
        return "?" if p is None else f"{p:.2f}"

    head = f"p_convert {said(p_before)} -> {said(p_after)}"
    if phrases:
        return f"{head}: {', '.join(phrases)}"
    if p_before is not None and p_after is not None and p_before == p_after:
        return f"{head}: no change"
    return f"{head}: no single feature explains it"


__all__ = ["MIN_MOVE", "N_CHANGES", "change_sentence", "changed_because"]
