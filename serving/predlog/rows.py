"""What a stored row may hold: the whitelist that keeps personal data out of the log.

:func:`prediction_row` copies only whitelisted fields of an answer (numbers, the label
fields in :data:`LABEL_FIELDS`, ``quadrant``, ``segment`` and the keys of each reason in
:data:`REASON_FIELDS`); free text is stripped of anything that looks like an e-mail address,
and the lead id is stored only as its lead key (:mod:`serving.predlog.keys`).
:func:`outcome_rows` validates what the CRM reports and builds the ``outcomes`` rows.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from crm.vocabulary import STAGES
from serving.predlog.keys import lead_key
from serving.timestamps import checked_moment, utc_now

#: String fields of an answer copied into ``scores`` (besides every numeric field).
LABEL_FIELDS: frozenset[str] = frozenset(
    {"label", "grade", "tier", "band", "priority", "decision", "action"}
)
#: Keys kept from each reason when reasons are mappings.
REASON_FIELDS: frozenset[str] = frozenset(
    {"feature", "contribution", "direction", "text", "label", "value", "weight", "rank"}
)
_ANSWER_COLUMNS = frozenset(
    {"lead_id", "quadrant", "segment", "reasons", "contributions", "features"}
)
MAX_LABEL = 64
_MAX_TEXT = 200
_MAX_REASONS = 50
_EMAIL_LIKE = re.compile(r"\S*@\S*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NOT_NUMBERS = (str, list, dict, tuple, type(None))
_NOT_MAPPINGS = (str, list, tuple, type(None))


class OutcomeValidationError(ValueError):
    """Raised with every problem found in a batch of outcomes (nothing is stored)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} problem(s) in the outcomes:\n" + "\n".join(problems))


def _clean_text(value: str, limit: int) -> str:
    if "@" not in value:  # nothing the pattern could match
        return value[:limit]
    return _EMAIL_LIKE.sub("[redacted]", value)[:limit]


def _number(value: Any) -> bool | int | float | None:
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    f = float(value)
    return f if math.isfinite(f) else None


def _is_number(value: Any) -> bool:
    t = type(value)
    if t is float or t is int or t is bool:  # the common answers, without the ABC check
        return True
    if t in _NOT_NUMBERS:
        return False
    return isinstance(value, numbers.Real)


def _safe_key(key: Any) -> bool:
    return isinstance(key, str) and 0 < len(key) <= MAX_LABEL and "@" not in key


def _label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | numbers.Real):
        raise ValueError(f"expected a short text label, got {type(value).__name__}")
    return _clean_text(str(value), MAX_LABEL)


def _scores(answer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in answer.items():
        if not _safe_key(key) or key in _ANSWER_COLUMNS:
            continue
        if _is_number(value):
            out[key] = _number(value)
        elif isinstance(value, str) and key in LABEL_FIELDS:
            out[key] = _clean_text(value, MAX_LABEL)
        elif type(value) in _NOT_MAPPINGS:
            continue
        elif isinstance(value, Mapping):  # e.g. {"probabilities": {"accept": 0.4}}
            for sub, v in value.items():
                if _safe_key(sub) and _is_number(v):
                    out[f"{key}.{sub}"] = _number(v)
    return out


def _reason(item: Any) -> Any:
    if isinstance(item, str):
        return _clean_text(item, _MAX_TEXT)
    if type(item) is dict or isinstance(item, Mapping):
        kept: dict[str, Any] = {}
        for key, v in item.items():
            if key not in REASON_FIELDS:
                continue
            if type(v) is str:  # text first: the cheap check for most values
                kept[key] = _clean_text(v, _MAX_TEXT)
            elif _is_number(v):
                kept[key] = _number(v)
            elif isinstance(v, str):
                kept[key] = _clean_text(v, _MAX_TEXT)
        return kept
    return None


def _reasons(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):  # {"feature": contribution}
        value = [
            {"feature": k, "contribution": v}
            for k, v in value.items()
            if _safe_key(k) and _is_number(v)
        ]
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError("reasons must be a list (or a feature -> contribution mapping)")
    out = [r for r in map(_reason, value) if r is not None and r != {}]
    return out[:_MAX_REASONS]


def _plain(value: Mapping[str, Any]) -> dict[str, Any]:
    """A dict of a mapping (the answers' lazily built ones, ``scoring.single.LoggedMapping``,
    copied through their items in one C-level pass)."""
    return value if type(value) is dict else dict(value.items())


def _contributions(value: Any) -> dict[str, Any] | None:
    """``{feature: [value text, contribution]}`` with safe feature names, texts cleaned
    as reason values are, non-finite contributions as null. ~60 features a lead and 1,000
    leads a request: what our scoring gives is checked whole, entry by entry only when
    something needs cleaning."""
    if not isinstance(value, Mapping):
        return None
    value = _plain(value)
    try:
        texts, numbers_ = zip(*value.values(), strict=True) if value else ((), ())
        clean = (
            _SAFE_FEATURES.issuperset(value.keys())
            and {type(c) for c in numbers_} <= {float}
            and math.isfinite(sum(numbers_))
            and {type(t) for t in texts} <= {str, type(None)}
            and max(map(len, filter(None, texts)), default=0) <= MAX_LABEL
            and "@" not in "".join(filter(None, texts))
        )
    except (TypeError, ValueError):  # not all pairs
        clean = False
    if clean:
        return dict(value)
    return _contributions_one_by_one(value)


def _contributions_one_by_one(value: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, list[Any]] = {}
    for feature, pair in value.items():
        if not _safe_key(feature) or not isinstance(pair, list | tuple) or len(pair) != 2:
            continue
        if len(_SAFE_FEATURES) < 10_000:
            _SAFE_FEATURES.add(feature)
        text, c = pair
        out[feature] = [
            _clean_text(text, MAX_LABEL) if isinstance(text, str) else None,
            _number(c) if _is_number(c) else None,
        ]
    return out


_SAFE_FEATURES: set[str] = set()  # feature names already checked by _safe_key


def _feature_values(value: Any) -> dict[str, Any] | None:
    """``{feature: value}`` (numbers, booleans, short texts, null) with safe feature names,
    texts cleaned as reason values are, non-finite numbers as null: what our scoring gives
    is checked whole, entry by entry only when something needs cleaning."""
    if not isinstance(value, Mapping):
        return None
    value = _plain(value)
    values = value.values()
    kinds = {type(v) for v in values}
    if kinds <= {float, str, bool, type(None)} and _SAFE_FEATURES.issuperset(value.keys()):
        numbers_ = [v for v in values if type(v) is float]
        texts = [v for v in values if type(v) is str]
        if (
            math.isfinite(sum(numbers_))
            and max(map(len, texts), default=0) <= MAX_LABEL
            and "@" not in "".join(texts)
        ):
            return dict(value)
    out: dict[str, Any] = {}
    for feature, v in value.items():
        if not _safe_key(feature):
            continue
        if len(_SAFE_FEATURES) < 10_000:
            _SAFE_FEATURES.add(feature)
        if isinstance(v, str):
            out[feature] = _clean_text(v, MAX_LABEL)
        elif _is_number(v):
            out[feature] = _number(v)
        else:
            out[feature] = None
    return out


def _required_text(value: Any, field: str, limit: int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string")
    if len(value) > limit:
        raise ValueError(f"{field} is longer than {limit} characters")
    bad = _CONTROL.search(value)
    if bad is not None:  # PostgreSQL refuses NUL in text; no backend should store these
        raise ValueError(f"{field} contains a control character (U+{ord(bad.group()):04X})")
    return value


_ROW_IDS: tuple[int, str, itertools.count] | None = None


def new_row_id() -> str:
    """A unique 32-hex row id: a random 80-bit prefix drawn once per process (again after a
    fork) and a counter. As unique as a random UUID for the log's purposes, without a call
    for random bytes per row (uuid4 per row cost ~50 ms per 1,000-lead request here)."""
    global _ROW_IDS
    pid = os.getpid()
    if _ROW_IDS is None or _ROW_IDS[0] != pid:
        _ROW_IDS = (pid, secrets.token_hex(10), itertools.count())
    return f"{_ROW_IDS[1]}{next(_ROW_IDS[2]) & 0xFFFFFFFFFFFF:012x}"


def prediction_row(
    answer: Mapping[str, Any],
    *,
    secret: bytes,
    request_id: str,
    model_name: str,
    model_version: str,
    lead_id: str | None = None,
    scored_at: datetime | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Build one ``predictions`` row from one answer, keeping only whitelisted fields.

    ``lead_id`` defaults to ``answer["lead_id"]`` and is stored only as its HMAC key.
    ``scores`` gets every numeric field of the answer (one level of nested mappings is
    flattened as ``"outer.inner"``; NaN/inf become null) and the string fields named in
    :data:`LABEL_FIELDS`. Every other string (e-mail, name, job title, ...) is ignored.
    ``contributions`` (``{feature: [value text, contribution]}``, see
    :func:`scoring.reasons.contribution_records`) is kept with its texts cleaned as
    reasons' are, and so are the exact ``features`` values
    (:func:`scoring.batch.feature_records`, for monitoring). ``as_of``: the moment the
    answer was scored as of (default: ``scored_at``).
    """
    lid = answer.get("lead_id") if lead_id is None else lead_id
    scores = _scores(answer)
    p = scores.get("p_convert")
    return {
        "id": new_row_id(),
        "request_id": _required_text(request_id, "request_id", 128),
        "lead_key": lead_key(lid, secret),  # type: ignore[arg-type]
        "model_name": _required_text(model_name, "model_name", 200),
        "model_version": _required_text(model_version, "model_version", 200),
        "p_convert": p if isinstance(p, float | int) and not isinstance(p, bool) else None,
        "scores": scores,
        "quadrant": _label(answer.get("quadrant")),
        "segment": _label(answer.get("segment")),
        "reasons": _reasons(answer.get("reasons")),
        "contributions": _contributions(answer.get("contributions")),
        "scored_at": (
            at := utc_now() if scored_at is None else checked_moment(scored_at, "scored_at")
        ),
        "features": _feature_values(answer.get("features")),
        "as_of": at if as_of is None else checked_moment(as_of, "as_of"),
    }


def _outcome_row(r: Mapping[str, Any], where: str, secret: bytes, problems: list[str]) -> dict:
    lid = _required_text(r.get("lead_id"), "lead_id", 200)
    where = f"{where} (lead_id={lid})"
    row: dict[str, Any] = {"lead_id": lid, "lead_key": lead_key(lid, secret)}
    stage = r.get("stage")
    if stage not in STAGES:
        problems.append(f"{where}: stage must be one of {', '.join(STAGES)}")
    row["stage"] = stage
    for field in ("accepted", "won"):
        v = r.get(field)
        if v is not None and not isinstance(v, bool):
            problems.append(f"{where}: {field} must be true, false or null")
        row[field] = v
    try:
        row["at"] = checked_moment(r.get("at"), "at")
    except ValueError as e:
        problems.append(f"{where}: {e}")
    rid = r.get("request_id")
    if rid is not None and (not isinstance(rid, str) or len(rid) > 128 or _CONTROL.search(rid)):
        problems.append(f"{where}: request_id must be printable text of at most 128 characters")
    row["request_id"] = rid
    return row


def outcome_rows(rows: Iterable[Mapping[str, Any]], secret: bytes) -> list[dict[str, Any]]:
    """Validate outcomes and build the stored rows (whitelisted fields only); raises
    :class:`OutcomeValidationError` with every problem found."""
    problems: list[str] = []
    out: list[dict[str, Any]] = []
    received_at = utc_now()
    for i, r in enumerate(rows):
        try:
            row = _outcome_row(r, f"outcome {i}", secret, problems)
        except ValueError as e:  # no usable lead_id: nothing else to say about this one
            problems.append(f"outcome {i}: {e}")
            continue
        row["received_at"] = received_at
        out.append(row)
    if problems:
        raise OutcomeValidationError(problems)
    return out


__all__ = [
    "LABEL_FIELDS",
    "REASON_FIELDS",
    "OutcomeValidationError",
    "outcome_rows",
    "prediction_row",
]
