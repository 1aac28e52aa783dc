"""Reasons in words: what a sales rep reads as the reason behind a score.

Two steps, both here so that every word an answer carries comes from one module:
:func:`reasons_from_array` picks, per lead, the features pushing the conversion score up
and down most (from the head's per-feature contributions), and :func:`phrase` says the
lead's value of each in plain words:
``phrase("days_since_last_live", 3.0)`` -> "went to a webinar or trade fair 3 days ago".
Unknown columns (custom attributes, counters) get a generic but readable sentence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import TOPIC_WINDOW_DAYS

N_REASONS = 3  # reasons per direction: the top 3 pushing the score up and the top 3 down

_EVENT_WORDS: dict[str, tuple[str, str]] = {
    # type: (singular noun phrase, plural noun phrase)
    "page_view": ("page view", "page views"),
    "blog_read": ("blog article read", "blog articles read"),
    "pricing_view": ("visit to the pricing page", "visits to the pricing page"),
    "newsletter_open": ("newsletter opened", "newsletters opened"),
    "newsletter_click": ("newsletter click", "newsletter clicks"),
    "email_open": ("e-mail opened", "e-mails opened"),
    "email_click": ("e-mail click", "e-mail clicks"),
    "webinar_registered": ("webinar registration", "webinar registrations"),
    "webinar_attended": ("webinar attended", "webinars attended"),
    "trade_fair_visit": ("trade-fair contact", "trade-fair contacts"),
    "content_download": ("content download", "content downloads"),
    "form_submit": ("form filled in", "forms filled in"),
    "demo_request": ("demo request", "demo requests"),
    "unsubscribe": ("unsubscribe", "unsubscribes"),
    "email_bounce": ("bounced e-mail", "bounced e-mails"),
    "referral": ("referral", "referrals"),
}

_GROUP_WORDS: dict[str, str] = {
    "web": "visited the website",
    "email": "engaged with e-mails or newsletters",
    "live": "went to a webinar or trade fair",
    "content": "downloaded content, filled in a form or asked for a demo",
    "negative": "unsubscribed or had an e-mail bounce",
    "advocacy": "referred someone",
}

_GROUP_NOUN: dict[str, str] = {
    "web": "website activity",
    "email": "e-mail activity",
    "live": "webinar and trade-fair activity",
    "content": "downloads, forms and demo requests",
    "negative": "unsubscribes and bounces",
    "advocacy": "referrals",
}

_CATEGORY_WORDS: dict[str, str] = {
    "industry": "industry",
    "region": "region",
    "country": "country",
    "source": "lead source",
}

_DEPARTMENT_WORDS: dict[str, str] = {"it": "IT", "hr": "HR", "executive": "the executive team"}

_COUNT = re.compile(r"^n_(?P<type>[a-z_]+)_(?P<days>\d+)d$")


def _days(value: float) -> str:
    d = int(round(value))
    if d <= 0:
        return "today"
    if d == 1:
        return "1 day ago"
    if d < 60:
        return f"{d} days ago"
    return f"about {round(d / 30)} months ago"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def phrase(feature: str, value: Any) -> str:
    """One short sentence about a lead's value of one feature."""
    if feature == "size_band":
        return "company size unknown" if _missing(value) else f"company with {value} employees"
    if feature == "log_employees":
        if _missing(value):
            return "company size unknown"
        return f"company with about {_number(math.expm1(float(value)))} employees"
    if feature == "log_annual_revenue":
        if _missing(value):
            return "company revenue unknown"
        return f"company revenue about {_number(math.expm1(float(value)))}"
    if feature == "seniority":
        if _missing(value) or value == "unknown":
            return "seniority unknown from the job title"
        return f"seniority: {str(value).replace('_', ' ')}"
    if feature == "department":
        if _missing(value) or value == "unknown":
            return "department unknown from the job title"
        name = str(value).replace("_", " ")
        return f"works in {_DEPARTMENT_WORDS.get(name, name)}"
    if feature in _CATEGORY_WORDS:
        word = _CATEGORY_WORDS[feature]
        if _missing(value):
            return f"{word} unknown"
        return f"{word}: {str(value).replace('_', ' ')}"
    if feature == "free_mail":
        if _missing(value):
            return "e-mail address type unknown"
        return "uses a free-mail address" if float(value) else "uses a business e-mail address"
    if feature == "do_not_email":
        return "asked not to be e-mailed" if value and not _missing(value) else "can be e-mailed"
    if feature == "lead_age_days":
        return "lead age unknown" if _missing(value) else f"lead created {_days(float(value))}"
    if feature == "days_since_last_event":
        if _missing(value):
            return "no recorded activity"
        return f"last activity {_days(float(value))}"
    if feature.startswith("days_since_last_"):
        group = feature.removeprefix("days_since_last_")
        if _missing(value):
            return f"no {_GROUP_NOUN.get(group, group)} so far"
        return f"{_GROUP_WORDS.get(group, group)} {_days(float(value))}"
    if feature.startswith("decay_"):
        group = feature.removeprefix("decay_")
        noun = _GROUP_NOUN.get(group, group)
        v = 0.0 if _missing(value) else float(value)
        if v < 0.05:
            return f"no recent {noun}"
        level = "strong" if v >= 3 else "some" if v >= 1 else "little"
        return f"{level} recent {noun} (weighted {v:.1f})"
    if feature == "n_events_total":
        return f"{_number(float(value or 0))} activities in total"
    if feature == f"distinct_topics_{TOPIC_WINDOW_DAYS}d":
        n = int(value or 0)
        return f"read about {n} different topic{'s' if n != 1 else ''} in the last 90 days"
    if feature == "unsubscribed":
        return "unsubscribed from e-mails" if value else "still subscribed to e-mails"
    if feature == "bounced":
        return "e-mail address bounced" if value else "e-mail address works"
    m = _COUNT.match(feature)
    if m and m["type"] in _EVENT_WORDS:
        one, many = _EVENT_WORDS[m["type"]]
        n = 0 if _missing(value) else int(round(float(value)))
        when = f"in the last {m['days']} days"
        if n == 0:
            return f"no {one} {when}"
        return f"{n} {one if n == 1 else many} {when}"
    name = feature.removeprefix("attr_").removeprefix("counter_").replace("_", " ")
    if _missing(value):
        return f"{name} unknown"
    if isinstance(value, float):
        return f"{name}: {_number(value)}"
    return f"{name}: {value}"


def value_text(value: Any) -> str | None:
    """The raw value as short text for the API (None when missing)."""
    if _missing(value):
        return None
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


#: feature -> {value key: (value text, phrase)}: the words depend only on the pair, and
#: most values repeat (counts, categories, rounded days), so each pair is phrased once.
_PHRASES: dict[str, dict[Any, tuple[str | None, str]]] = {}
_MAX_PHRASES = 50_000  # per feature


def _phrase_all(feature: str, values: list[Any]) -> list[tuple[str | None, str]]:
    """(value text, phrase) for each value of one feature, from the memo where possible."""
    memo = _PHRASES.get(feature)
    if memo is None or len(memo) >= _MAX_PHRASES:
        memo = _PHRASES[feature] = {}
    out = []
    for v in values:
        # floats are their own key, except zeros (0.0 and -0.0 are equal but print
        # differently); other types carry their type (1.0 == True, but reads differently)
        key = v if type(v) is float and v != 0.0 else (type(v), repr(v) if v == 0.0 else v)
        try:
            hit = memo.get(key)
        except TypeError:  # an unhashable custom value: phrase it every time
            hit = None
            key = None
        if hit is None:
            hit = (value_text(v), phrase(feature, v))
            if key is not None:
                memo[key] = hit
        out.append(hit)
    return out


def _lead_values(v: np.ndarray) -> list[Any]:
    """A feature's values as the phrases read them: floats (NaN as ``np.nan``), or objects
    with missing values as NaN except None and text, which stay as they are."""
    if v.dtype.kind == "f":
        values = v.tolist()
        if len(values) < 16:  # a few leads: a Python pass costs less than NumPy's calls
            return [np.nan if x != x else x for x in values]
        for k in np.flatnonzero(np.isnan(v)).tolist():
            values[k] = np.nan
        return values
    v = v.astype(object)
    missing = pd.isna(v)
    if missing.any():
        missing &= np.fromiter((x is not None and not isinstance(x, str) for x in v), bool, len(v))
        v[missing] = np.nan
    return v.tolist()


#: the Arrow type of an answer's ``reasons`` (what ``reasons_arrow`` builds, and what a
#: list of the dicts ``reasons_from_values`` gives converts to)
REASON_TYPE = pa.struct(
    [
        ("feature", pa.string()),
        ("value", pa.string()),
        ("contribution", pa.float64()),
        ("text", pa.string()),
    ]
)


def reasons_from_array(
    contrib: np.ndarray,
    columns: list[str],
    X: pd.DataFrame,
    n: int = N_REASONS,
    *,
    arrow: bool = False,
) -> list[list[dict]] | pa.ListArray:
    """``reasons`` on a contributions array (last column = bias) and the feature frame the
    contributions are of (:func:`reasons_from_values`); ``arrow``: the same reasons as one
    Arrow ``list<struct>`` array (:func:`reasons_arrow`), for batch runs writing Parquet."""

    def codes_of(feature: str) -> np.ndarray | None:
        col = X[feature]
        return col.cat.codes.to_numpy() if isinstance(col.dtype, pd.CategoricalDtype) else None

    parts = _reason_parts(contrib, columns, lambda f: X[f].to_numpy(), n, codes_of)
    return _arrow(parts, columns) if arrow else _records(parts, columns)


def reasons_from_values(
    contrib: np.ndarray,
    columns: list[str],
    values_of: Callable[[str], np.ndarray],
    n: int = N_REASONS,
    codes_of: Callable[[str], np.ndarray | None] | None = None,
) -> list[list[dict]]:
    """``reasons`` on a contributions array (last column = bias): per lead the ``n``
    features pushing the score up most (contribution > 0, largest first) and the ``n``
    pushing it down most (< 0, most negative first), with the lead's value in words.

    Picks are made on whole arrays, values are read by column (``values_of(feature)``: the
    feature's values of every lead, as ``X[feature].to_numpy()`` gives them), and the words
    for a (feature, value) pair are made once (batch scoring phrases millions of reasons)."""
    return _records(_reason_parts(contrib, columns, values_of, n, codes_of), columns)


def round4(values: np.ndarray) -> list[float]:
    """``[round(v, 4) for v in values]`` (Python's correctly rounded decimal rounding) for
    finite floats, on whole arrays: ``rint(v * 1e4) / 1e4`` is the same float wherever
    ``v * 1e4`` is not within rounding error of a half (the division of two exact integers
    is the float nearest the 4-place decimal, as Python's round gives); those few values
    are rounded by Python itself."""
    v = np.asarray(values, dtype=np.float64)
    scaled = v * 1e4
    out = np.rint(scaled) / 1e4
    near_half = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) <= 1e-9 * np.maximum(
        1.0, np.abs(scaled)
    )
    near_half |= ~np.isfinite(scaled) | (np.abs(scaled) >= 2.0**52)
    result = out.tolist()
    for k in np.flatnonzero(near_half).tolist():
        result[k] = round(float(v[k]), 4)
    return result


class _ReasonParts(NamedTuple):
    """Every kept reason, lead by lead and in answer order, column by column."""

    feats: np.ndarray  # position of the feature in ``columns``
    value_texts: list[str | None]
    contributions: list[float]  # rounded to 4 places
    texts: list[str]
    bounds: list[int]  # lead i's reasons are [bounds[i], bounds[i + 1])


def _records(parts: _ReasonParts, columns: list[str]) -> list[list[dict]]:
    if not parts.bounds:
        return []
    names = [columns[j] for j in parts.feats.tolist()]
    reasons = [
        {"feature": f, "value": vt, "contribution": cv, "text": tx}
        for f, vt, cv, tx in zip(
            names, parts.value_texts, parts.contributions, parts.texts, strict=True
        )
    ]
    b = parts.bounds
    return [reasons[b[i] : b[i + 1]] for i in range(len(b) - 1)]


def _arrow(parts: _ReasonParts, columns: list[str]) -> pa.ListArray:
    """The reasons as one Arrow array of type ``list<REASON_TYPE>``, one list per lead:
    what converting :func:`_records`' lists of dicts gives, built from the columns without
    a Python object per reason."""
    names = pa.array(columns, pa.string()).take(pa.array(parts.feats, pa.int64()))
    struct = pa.StructArray.from_arrays(
        [
            names,
            pa.array(parts.value_texts, pa.string()),
            pa.array(parts.contributions, pa.float64()),
            pa.array(parts.texts, pa.string()),
        ],
        fields=list(REASON_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(parts.bounds or [0], pa.int32()), struct)


def _reason_parts(
    contrib: np.ndarray,
    columns: list[str],
    values_of: Callable[[str], np.ndarray],
    n: int,
    codes_of: Callable[[str], np.ndarray | None] | None,
) -> _ReasonParts:
    c = contrib[:, :-1]
    m = len(c)
    if m == 0:
        return _ReasonParts(np.zeros(0, dtype=np.intp), [], [], [], [])
    if m == 1:
        return _one_lead_parts(c[0].tolist(), columns, values_of, n)
    from scoring.reason_kernels import pick  # numba: loaded when many leads are scored

    # the n first and last of each row's stable descending order, kept if they push
    # (> 0 first, < 0 last): every kept reason, lead by lead and in answer order
    picked = pick(c, n).ravel()
    flat = np.flatnonzero(picked >= 0)
    rows = flat // (2 * n)
    feats = picked[flat]
    contributions = round4(c[rows, feats])
    value_texts: list[Any] = [None] * len(flat)
    texts: list[Any] = [None] * len(flat)
    for j in np.unique(feats).tolist():
        at = np.flatnonzero(feats == j)
        feature = columns[j]
        where = rows[at]
        v = values_of(feature)[where]
        # leads sharing a value (float bit pattern: 0.0 and -0.0 read differently; or
        # category code) share its words: each distinct value is read and phrased once
        # (a value of one lead alone, as in a one-lead request, is phrased as it is)
        codes = codes_of(feature) if codes_of is not None and len(at) > 1 else None
        if len(at) == 1:
            key = None
        elif codes is not None:
            key = codes[where]
        elif v.dtype.kind == "f":
            key = np.ascontiguousarray(v, dtype=np.float64).view(np.int64)
        else:
            key = None
        if key is None:
            words = _phrase_all(feature, _lead_values(v))
        else:
            _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            said = _phrase_all(feature, _lead_values(v[first]))
            words = [said[i] for i in inverse.ravel().tolist()]
        for k, (vt, tx) in zip(at.tolist(), words, strict=True):
            value_texts[k] = vt
            texts[k] = tx
    bounds = np.searchsorted(rows, np.arange(m + 1)).tolist()
    return _ReasonParts(feats, value_texts, contributions, texts, bounds)


def _one_lead_parts(
    row: list[float], columns: list[str], values_of: Callable[[str], np.ndarray], n: int
) -> _ReasonParts:
    """:func:`_reason_parts` of one lead (a one-lead request), in plain Python: the same
    picks (a stable sort, as ``argsort(kind="stable")`` of the negated row) and words,
    without a dozen NumPy calls on arrays of one row."""
    order = sorted(range(len(row)), key=lambda j: -row[j])
    picked = [j for j in order[:n] if row[j] > 0] + [j for j in order[::-1][:n] if row[j] < 0]
    contributions = round4(np.array([row[j] for j in picked], dtype=np.float64))
    value_texts: list[Any] = []
    texts: list[Any] = []
    for j in picked:  # each feature at most once: its contribution is > 0 or < 0
        ((vt, tx),) = _phrase_all(columns[j], _lead_values(values_of(columns[j])[:1]))
        value_texts.append(vt)
        texts.append(tx)
    feats = np.array(picked, dtype=np.intp)
    return _ReasonParts(feats, value_texts, contributions, texts, [0, len(picked)])


def contribution_records(
    contrib: np.ndarray, columns: list[str], X: pd.DataFrame
) -> list[dict[str, tuple[str | None, float]]]:
    """Per lead, every feature's ``(value text, contribution)`` (contributions rounded to
    4 places, the bias left out): what the prediction log keeps so that a later score of
    the same lead can say what changed (:mod:`scoring.changes`). Each distinct value of a
    column is put in words once."""
    if len(contrib) == 0:
        return []
    texts = []
    for f in columns:
        codes, uniques = pd.factorize(X[f], use_na_sentinel=True)
        said = [value_text(v) for v in uniques.tolist()] + [None]  # code -1: missing
        texts.append([said[k] for k in codes.tolist()])
    return records_from_texts(contrib, columns, texts)


def records_from_texts(
    contrib: np.ndarray, columns: list[str], texts: list[list[str | None]]
) -> list[dict[str, tuple[str | None, float]]]:
    """:func:`contribution_records` from each column's value texts (one list per column,
    one text per lead)."""
    c = np.round(contrib[:, : len(columns)], 4).tolist()
    return [
        dict(zip(columns, zip(said, row, strict=True), strict=True))
        for said, row in zip(zip(*texts, strict=True), c, strict=True)
    ]
