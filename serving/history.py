"""A lead's score over time: ``changed_because`` on ``/score`` answers and
``GET /leads/{lead_id}/history``.

Both read the lead's earlier answers from the prediction log (rows keyed by the lead key,
never the raw id; :mod:`serving.predlog.history`) and explain a change of ``p_convert``
from the stored contributions (:mod:`scoring.changes`). ``changed_because`` must never fail
a request: when the log cannot answer, the answers go out without it (see
:meth:`LeadScorer._add_changes <serving.service.LeadScorer>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from scoring.changes import change_sentence, changed_because

HISTORY_PREFIX = "/leads/"
HISTORY_SUFFIX = "/history"
MAX_LEAD_ID = 200


def history_lead_id(path: str) -> str | None:
    """The lead id of a ``/leads/{lead_id}/history`` path (already percent-decoded), or
    None for any other path."""
    if not (path.startswith(HISTORY_PREFIX) and path.endswith(HISTORY_SUFFIX)):
        return None
    lead_id = path[len(HISTORY_PREFIX) : -len(HISTORY_SUFFIX)]
    return lead_id if 0 < len(lead_id) <= MAX_LEAD_ID and lead_id.isprintable() else None


def _moment(value: Any) -> str:
    """A stored moment (naive UTC) as RFC 3339 text, ``Z`` for UTC."""
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _reasons_since(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Why ``p_convert`` moved from the answer ``before`` to ``after`` (rows or answers)."""
    return changed_because(
        before.get("contributions"),
        after.get("contributions"),
        before.get("p_convert"),
        after.get("p_convert"),
    )


def add_changes(records: list[dict[str, Any]], previous: Mapping[str, Mapping[str, Any]]) -> None:
    """Put ``changed_because`` on each answer whose lead has a previous row."""
    for rec in records:
        before = previous.get(rec["lead_id"])
        if before is None:
            continue
        rec["changed_because"] = {
            "previous_p_convert": before.get("p_convert"),
            "previous_scored_at": _moment(before["scored_at"]),
            "reasons": _reasons_since(before, rec),
        }


def history_answer(lead_id: str, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``GET /leads/{lead_id}/history`` body for a lead's rows, oldest first: each
    answer with the change since the one before it in words."""
    entries = []
    before: Mapping[str, Any] | None = None
    for row in rows:
        scores = row.get("scores") or {}
        p = row.get("p_convert")
        if before is None:
            reasons: list[str] = []
            change = None
        else:
            reasons = _reasons_since(before, row)
            change = change_sentence(before.get("p_convert"), p, reasons)
        entries.append(
            {
                "scored_at": _moment(row["scored_at"]),
                "model": {"name": row["model_name"], "version": row["model_version"]},
                "p_convert": p,
                "fit_score": scores.get("fit_score"),
                "interest_score": scores.get("interest_score"),
                "quadrant": row.get("quadrant"),
                "segment": row.get("segment"),
                "changed_because": reasons,
                "change": change,
            }
        )
        before = row
    return {"lead_id": lead_id, "history": entries}


__all__ = ["HISTORY_PREFIX", "HISTORY_SUFFIX", "add_changes", "history_answer", "history_lead_id"]
