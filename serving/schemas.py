"""Request and response schemas of the HTTP API, and the request -> canonical tables step."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from crm.contract import SCHEMAS
from crm.email import email_domain_kind
from crm.vocabulary import EMAIL_DOMAIN_KINDS, EVENT_TYPES, LIFECYCLE_STAGES, QUADRANTS, STAGES
from features.content import PHASES
from serving.timestamps import checked_moment

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]
StageName = Literal[STAGES]  # type: ignore[valid-type]
QuadrantName = Literal[QUADRANTS]  # type: ignore[valid-type]
LifecycleStage = Literal[LIFECYCLE_STAGES]  # type: ignore[valid-type]
ContentStage = Literal[PHASES]  # type: ignore[valid-type]
EmailDomainKind = Literal[EMAIL_DOMAIN_KINDS]  # type: ignore[valid-type]
MAX_LEADS_PER_REQUEST = 1000
MAX_EVENTS_PER_LEAD = 20_000
MAX_OUTCOMES_PER_REQUEST = 10_000
#: Timestamps may run this far past ``as_of`` (clock skew between CRM and service).
CLOCK_SKEW = timedelta(minutes=5)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable_id(v: str) -> str:
    """Ids are printable text: a control character (NUL, newline, ...) is refused here, by
    name, rather than by one database and stored by another."""
    bad = _CONTROL.search(v)
    if bad is not None:
        raise ValueError(f"contains a control character (U+{ord(bad.group()):04X})")
    return v


#: A CRM id: 1 to 200 printable characters.
CrmId = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(printable_id)]


class Company(BaseModel):
    model_config = ConfigDict(extra="forbid")
    industry: str | None = Field(None, max_length=200, description="Industry of the account")
    employees: float | None = Field(None, ge=0, allow_inf_nan=False, description="Head count")
    annual_revenue: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Annual revenue in the account currency"
    )
    country: str | None = Field(None, max_length=100, description="ISO 3166-1 alpha-2 code")


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: EventType = Field(description="One of the canonical engagement event types")
    at: datetime = Field(description="When it happened (ISO 8601; naive means UTC)")
    topic: str | None = Field(None, max_length=200)
    content_id: Annotated[str, AfterValidator(printable_id)] | None = Field(None, max_length=200)

    _at = field_validator("at")(classmethod(lambda cls, v: checked_moment(v)))


class StageEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: StageName = Field(description="Funnel stage the lead entered")
    entered_at: datetime = Field(description="When it entered the stage (naive means UTC)")

    _entered = field_validator("entered_at")(classmethod(lambda cls, v: checked_moment(v)))


CustomValue = str | bool | Annotated[float, Field(allow_inf_nan=False)] | None


class Lead(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead_id: CrmId = Field(description="The CRM's lead id")
    created_at: datetime = Field(description="When the lead was created in the CRM")
    job_title: str | None = Field(None, max_length=300)
    source: str | None = Field(None, max_length=200, description="Acquisition channel")
    email: str | None = Field(
        None, max_length=320, description="Used only for business vs free-mail; never stored"
    )
    email_domain_kind: EmailDomainKind | None = None
    do_not_email: bool = False
    company: Company | None = None
    events: list[Event] = Field(default_factory=list, max_length=MAX_EVENTS_PER_LEAD)
    stages: list[StageEntry] = Field(
        default_factory=list,
        max_length=len(STAGES) * 4,
        description="Funnel stages entered so far (the CRM's stage history); drives the "
        "lifecycle stage and the content phase",
    )
    attributes: dict[Annotated[str, Field(max_length=100)], CustomValue] = Field(
        default_factory=dict,
        max_length=200,
        description="Custom lead attributes of a model trained on an import (GET /model lists "
        'them), by name without the attr_ prefix, e.g. {"lead_origin": "API"}',
    )
    counters: dict[
        Annotated[str, Field(max_length=100)], Annotated[float, Field(ge=0, allow_inf_nan=False)]
    ] = Field(
        default_factory=dict,
        max_length=200,
        description="Pre-aggregated engagement counters of a model trained on an import, by "
        'name without the counter_ prefix, e.g. {"total_visits": 5}',
    )

    _created = field_validator("created_at")(classmethod(lambda cls, v: checked_moment(v)))


class ModelRef(BaseModel):
    name: str
    version: str


class Reason(BaseModel):
    feature: str = Field(description="Model feature behind the reason")
    value: str | None = Field(None, description="The lead's value of that feature")
    contribution: float = Field(description="Signed push on the log-odds: > 0 raises the score")
    text: str = Field(description="The reason in plain words for a sales rep")


class ChangedBecause(BaseModel):
    previous_p_convert: float | None = Field(description="p_convert of the lead's last answer")
    previous_scored_at: datetime = Field(description="When that answer was given (UTC)")
    reasons: list[str] = Field(
        description="What moved the score since, in words: the features whose value changed "
        "and whose contributions moved most in the direction of the change (empty: no single "
        "feature explains it)"
    )


class LeadScore(BaseModel):
    lead_id: str
    p_convert: float = Field(description="Calibrated probability of reaching the target stage")
    fit_score: float = Field(description="0-100: how well the profile fits the ideal customer")
    interest_score: float = Field(description="0-100: how strong and recent the engagement is")
    p_mql: float | None = Field(None, description="Probability of lead -> MQL, where modelled")
    p_sal: float | None = Field(None, description="Probability of MQL -> SAL, where modelled")
    quadrant: QuadrantName
    persona: str = Field(description="Buyer persona from role and topics engaged with")
    persona_confidence: float = Field(description="0-1: share of the evidence for the persona")
    lifecycle_stage: LifecycleStage
    segment: str = Field(description="persona/lifecycle_stage, e.g. evaluator/prospect")
    funnel_stage: str = Field(description="Furthest funnel stage reached before as_of")
    content_stage: ContentStage = Field(description="Buying-cycle phase the content should match")
    next_content: list[str] = Field(
        description="Up to 3 content ids for the segment and phase, not yet consumed"
    )
    reasons: list[Reason] | None = Field(
        None, description="Top features pushing the score up (> 0) and down (< 0)"
    )
    flags: list[str] = Field(
        default_factory=list,
        description="Inputs scored but worth a look: unknown categories, missing optional "
        'fields (e.g. "unknown industry \'xyz\'", "missing company.employees")',
    )
    model: ModelRef
    changed_because: ChangedBecause | None = Field(
        None,
        exclude_if=lambda v: v is None,
        description="Only when the lead was scored before (within LEADSCORE_HISTORY_DAYS) "
        "and that answer could be read in time: its p_convert and moment, and why the score "
        "moved since",
    )


class ScoreResponse(BaseModel):
    request_id: str = Field(description="Id of this request, as stored in the prediction log")
    model: ModelRef
    scores: list[LeadScore]


_LEAD_SCORE_FIELDS = tuple(LeadScore.model_fields)
_REASON_FIELDS = tuple(Reason.model_fields)
_OMITTED_WHEN_ABSENT = frozenset({"changed_because"})
_FLOAT_FIELDS = frozenset(
    name for name, f in LeadScore.model_fields.items() if f.annotation in (float, float | None)
)


def score_response_json(request_id: str, model: dict[str, str], scores: list[dict]) -> bytes:
    """``ScoreResponse(...).model_dump_json()`` for answers made by our own scoring path,
    without validating them again: each answer's fields in the schema's order, fields the
    schema does not have left out, missing optional ones at their defaults, and non-finite
    numbers as null (as pydantic writes them). A test checks it against pydantic on real
    answers and on random floats.

    msgspec writes a float of 1e16 or more as ``1e16`` where pydantic writes ``1e+16``: the
    same number, other bytes. No field our path fills gets near that (probabilities, scores
    of 0-100, contributions in log-odds), but an answer that does is serialised by pydantic
    itself, so the bytes never depend on which path ran."""
    out = []
    big = False
    for rec in scores:
        item = {}
        for name in _LEAD_SCORE_FIELDS:
            if name in rec:
                v = rec[name]
            elif name in _OMITTED_WHEN_ABSENT:
                continue
            else:
                v = _DEFAULTS[name]
            if name in _FLOAT_FIELDS and v is not None:
                v = float(v)
                if not math.isfinite(v):
                    v = None
                elif not -_MSGSPEC_PLAIN_FLOATS < v < _MSGSPEC_PLAIN_FLOATS:
                    big = True
            elif name == "reasons" and v is not None:
                v = [{k: r.get(k) for k in _REASON_FIELDS} for r in v]
                for r in v:
                    c = float(r["contribution"])
                    if not math.isfinite(c):
                        c = None
                    elif not -_MSGSPEC_PLAIN_FLOATS < c < _MSGSPEC_PLAIN_FLOATS:
                        big = True
                    r["contribution"] = c
            elif name == "model":
                v = {"name": v["name"], "version": v["version"]}
            elif name == "changed_because":
                if v is None:
                    continue
                v = ChangedBecause.model_validate(v).model_dump(mode="json")
            item[name] = v
        out.append(item)
    body = {
        "request_id": request_id,
        "model": {"name": model["name"], "version": model["version"]},
        "scores": out,
    }
    if big:
        return ScoreResponse.model_validate(body).model_dump_json().encode()
    return _RESPONSE_ENCODER.encode(body)


#: msgspec writes floats as pydantic does where answers have them (0.00001, 1e-6; json.dumps
#: writes 1e-05, 1e-06), and several times faster than json.dumps for 1,000 answers
_RESPONSE_ENCODER = msgspec.json.Encoder()
#: below this magnitude msgspec and pydantic write a float with the same bytes
_MSGSPEC_PLAIN_FLOATS = 1e16


def _field_default(name: str) -> Any:
    f = LeadScore.model_fields[name]
    return f.get_default(call_default_factory=True) if not f.is_required() else None


_DEFAULTS = {name: _field_default(name) for name in _LEAD_SCORE_FIELDS}


class Outcome(BaseModel):
    """What happened to a lead, reported by the CRM: a funnel stage reached, sales
    accepting or rejecting it (stage ``sal``, ``accepted``), a deal won or lost (``won``)."""

    model_config = ConfigDict(extra="forbid")
    lead_id: CrmId = Field(description="The CRM's lead id")
    stage: StageName = Field(description="Funnel stage the outcome is about")
    accepted: bool | None = Field(None, description="Accepted (true) or rejected by sales")
    won: bool | None = Field(None, description="Deal won (true) or lost (false)")
    at: datetime = Field(description="When it happened (ISO 8601; naive means UTC)")

    _at = field_validator("at")(classmethod(lambda cls, v: checked_moment(v)))


class OutcomesResponse(BaseModel):
    request_id: str
    stored: int = Field(description="Outcomes stored by this request")
    duplicates: int = Field(
        0, description="Outcomes already stored (a retry: same lead_id, stage and at), not again"
    )


class ModelInfo(BaseModel):
    name: str
    version: str
    target: str | None = None
    trained_at: str | None = None
    holdout_metrics: dict[str, float] = Field(default_factory=dict)
    quadrant_thresholds: dict[str, float | str | int | None] = Field(default_factory=dict)
    family: str = Field(
        "lightgbm", description="Model family chosen on the validation folds before the holdout"
    )
    choice: str | None = Field(None, description="Why this family won, with the figures")
    calibration_prior: str | None = Field(None, description="Calibration prior chosen")
    skill: str | None = Field(None, description="Skill verdict on the holdout: ok or none")
    skill_sentence: str | None = Field(None, description="The skill verdict in one sentence")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Custom attributes the model expects, with their kind"
    )
    counters: list[str] = Field(
        default_factory=list, description="Pre-aggregated counters the model expects"
    )


class HistoryEntry(BaseModel):
    scored_at: datetime = Field(description="When the answer was given (UTC)")
    model: ModelRef
    p_convert: float | None
    fit_score: float | None
    interest_score: float | None
    quadrant: str | None
    segment: str | None
    changed_because: list[str] = Field(
        description="Why p_convert moved since the entry before, in words (empty for the first)"
    )
    change: str | None = Field(
        description='The same as one sentence, e.g. "p_convert 0.31 -> 0.12: ..." (null for '
        "the first entry)"
    )


class HistoryResponse(BaseModel):
    lead_id: str
    history: list[HistoryEntry] = Field(description="The lead's answers, oldest first")


class ErrorBody(BaseModel):
    """Every 4xx answer (and the rare 5xx) has this shape."""

    error: str = Field(description="What is wrong, in words")
    field: str | None = Field(None, description="Path of the offending field, e.g. leads[0].at")


def leads_to_tables(
    leads: list[Lead],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The request in the canonical table shapes, so the batch feature code path applies.

    Built column by column (one list per column, events and stages flattened with list
    comprehensions rather than appended row by row): a 1,000-lead request carries tens of
    thousands of events."""
    lead_rows = [
        {
            "lead_id": lead.lead_id,
            "account_id": f"acct:{lead.lead_id}",
            "created_at": lead.created_at,
            "job_title": lead.job_title,
            "source": lead.source,
            "email_domain_kind": lead.email_domain_kind or email_domain_kind(lead.email),
            "do_not_email": lead.do_not_email,
            **{f"attr_{k}": v for k, v in lead.attributes.items()},
            **{f"counter_{k}": v for k, v in lead.counters.items()},
        }
        for lead in leads
    ]
    custom = any(lead.attributes or lead.counters for lead in leads)
    if custom:  # rows with their own keys: pandas unions them (missing -> NaN)
        leads_df = pd.DataFrame(lead_rows)
    else:
        leads_df = pd.DataFrame({k: [r[k] for r in lead_rows] for k in _LEAD_COLUMNS})
    leads_df["created_at"] = pd.to_datetime(leads_df["created_at"]).astype("datetime64[ns]")
    companies = [lead.company or _NO_COMPANY for lead in leads]
    accounts_df = pd.DataFrame(
        {
            "account_id": [r["account_id"] for r in lead_rows],
            "industry": [c.industry for c in companies],
            "employees": [np.nan if c.employees is None else c.employees for c in companies],
            "annual_revenue": [
                np.nan if c.annual_revenue is None else c.annual_revenue for c in companies
            ],
            "country": [c.country for c in companies],
        }
    )
    events = [e for lead in leads for e in lead.events]
    events_df = pd.DataFrame(
        {
            "lead_id": _owners(leads, [len(lead.events) for lead in leads]),
            "at": [e.at for e in events],
            "type": [e.type for e in events],
            "topic": [e.topic for e in events],
            "content_id": [e.content_id for e in events],
        }
    )
    events_df["at"] = pd.to_datetime(events_df["at"]).astype("datetime64[ns]")
    events_df["type"] = _categorical(events_df["type"], _EVENT_TYPE_DTYPE, _EVENT_TYPE_CODE)
    stages = [st for lead in leads for st in lead.stages]
    stages_df = pd.DataFrame(
        {
            "lead_id": [lead.lead_id for lead in leads for _ in lead.stages],
            "stage": [st.stage for st in stages],
            "entered_at": [st.entered_at for st in stages],
        }
    )
    stages_df["entered_at"] = pd.to_datetime(stages_df["entered_at"]).astype("datetime64[ns]")
    stages_df["stage"] = _categorical(stages_df["stage"], _STAGE_DTYPE, _STAGE_CODE)
    return leads_df, accounts_df, events_df, stages_df


_LEAD_COLUMNS = tuple(SCHEMAS["leads"])
_NO_COMPANY = Company()
_EVENT_TYPE_DTYPE = pd.CategoricalDtype(list(EVENT_TYPES))
_EVENT_TYPE_CODE = {t: i for i, t in enumerate(EVENT_TYPES)}
_STAGE_DTYPE = pd.CategoricalDtype(list(STAGES))
_STAGE_CODE = {t: i for i, t in enumerate(STAGES)}


def _owners(leads: list[Lead], counts: list[int]) -> pd.Categorical | list[str]:
    """The lead id of each event, as a categorical over the request's lead ids (every
    consumer maps ids to lead positions; a categorical maps each distinct id once instead
    of hashing tens of thousands of repeated strings). Plain strings if ids repeat."""
    ids = [lead.lead_id for lead in leads]
    if len(set(ids)) != len(ids):
        return [lead_id for lead_id, k in zip(ids, counts, strict=True) for _ in range(k)]
    codes = np.repeat(np.arange(len(ids), dtype=np.int32), counts)
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(ids), validate=False)


def _categorical(values: pd.Series, dtype: pd.CategoricalDtype, code: dict) -> pd.Categorical:
    """``pd.Categorical(values, categories=...)`` from a dict look-up per value (values
    outside the categories, and missing ones, get code -1 as there)."""
    codes = np.fromiter((code.get(v, -1) for v in values.tolist()), np.int8, len(values))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


def _texts(col: pd.Series) -> list[str | None]:
    """``str`` of each value of a column, None where missing."""
    missing = col.isna().to_numpy()
    return [
        None if m else str(v) for v, m in zip(col.astype(object).tolist(), missing, strict=True)
    ]


def _isoformats(col: pd.Series) -> list[str]:
    """``pd.Timestamp(v).isoformat()`` of each value of a datetime column: through Python
    datetimes where no value has nanoseconds (the same text, ~20x faster)."""
    if len(col) == 0:
        return []
    if (
        not pd.api.types.is_datetime64_any_dtype(col)
        or col.isna().any()
        or (col.dt.nanosecond != 0).any()
    ):
        return [pd.Timestamp(v).isoformat() for v in col.tolist()]
    return [v.isoformat() for v in col.dt.to_pydatetime().tolist()]


def _grouped(keys: pd.Series, items: list[dict]) -> dict[Any, list[dict]]:
    """Items by the key of their row, in row order within each key."""
    out: dict[Any, list[dict]] = {}
    for key, item in zip(keys.astype(object).tolist(), items, strict=True):
        out.setdefault(key, []).append(item)
    return out


def _companies(accounts: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """account id -> the request's ``company`` object."""
    columns = {
        k: (
            [None if pd.isna(v) else float(v) for v in accounts[k].tolist()]
            if k in _NUMERIC
            else _texts(accounts[k])
        )
        for k in ("industry", "employees", "annual_revenue", "country")
    }
    return {
        account_id: {k: values[i] for k, values in columns.items()}
        for i, account_id in enumerate(accounts["account_id"].astype(object).tolist())
    }


def tables_to_requests(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    events: pd.DataFrame,
    as_of: pd.Timestamp | None = None,
    stage_history: pd.DataFrame | None = None,
) -> list[dict]:
    """Canonical rows -> /score request leads (JSON-ready): how a CRM would send them.

    Events at or after ``as_of`` are left out, as a CRM calling at that moment would not
    have them yet. Columns are converted whole, then grouped by lead (a row-by-row walk
    of each lead's events cost ~2 ms a lead)."""
    companies = _companies(accounts[accounts["account_id"].isin(leads["account_id"])])
    ev = events if as_of is None else events[events["at"] < as_of]
    if len(ev) > len(leads):  # only the events of the leads asked for are converted
        ev = ev[ev["lead_id"].isin(leads["lead_id"])]
    event_items = [
        {"type": t, "at": at, "topic": topic, "content_id": content}
        for t, at, topic, content in zip(
            ev["type"].astype(object).map(str).tolist(),
            _isoformats(ev["at"]),
            _texts(ev["topic"]),
            _texts(ev["content_id"]),
            strict=True,
        )
    ]
    by_lead = _grouped(ev["lead_id"], event_items)
    stages_by_lead: dict = {}
    if stage_history is not None:
        sh = stage_history if as_of is None else stage_history[stage_history["entered_at"] < as_of]
        sh = sh[sh["lead_id"].isin(leads["lead_id"])]
        stage_items = [
            {"stage": stage, "entered_at": at}
            for stage, at in zip(
                sh["stage"].astype(object).map(str).tolist(),
                _isoformats(sh["entered_at"]),
                strict=True,
            )
        ]
        stages_by_lead = _grouped(sh["lead_id"], stage_items)
    out = []
    for row in leads.itertuples(index=False):
        account = row.account_id
        out.append(
            {
                "lead_id": str(row.lead_id),
                "created_at": pd.Timestamp(row.created_at).isoformat(),
                "job_title": None if pd.isna(row.job_title) else str(row.job_title),
                "source": None if pd.isna(row.source) else str(row.source),
                "email_domain_kind": None
                if pd.isna(row.email_domain_kind)
                else str(row.email_domain_kind),
                "do_not_email": bool(row.do_not_email),
                "company": dict(companies[account])
                if isinstance(account, str) and account in companies
                else None,
                "events": list(by_lead.get(row.lead_id, ())),
                **_custom_json(row),
                "stages": list(stages_by_lead.get(row.lead_id, ())),
            }
        )
    return out


_NUMERIC = ("employees", "annual_revenue")


def check_leads(leads: list[Lead], as_of: datetime) -> None:
    """Request rules pydantic cannot see alone: duplicate lead ids in one request, and
    timestamps after ``as_of`` (+ :data:`CLOCK_SKEW`). Raises
    :class:`serving.errors.RequestError` naming the first offending field."""
    from serving.errors import RequestError

    seen: set[str] = set()
    limit = as_of + CLOCK_SKEW
    for i, lead in enumerate(leads):
        if lead.lead_id in seen:
            raise RequestError(f"duplicate lead_id {lead.lead_id!r}", f"leads[{i}].lead_id")
        seen.add(lead.lead_id)
        if lead.created_at > limit:
            raise RequestError(
                f"created_at {lead.created_at.isoformat()} is after as_of {as_of.isoformat()}",
                f"leads[{i}].created_at",
            )
        for j, e in enumerate(lead.events):
            if e.at > limit:
                raise RequestError(
                    f"event time {e.at.isoformat()} is after as_of {as_of.isoformat()}",
                    f"leads[{i}].events[{j}].at",
                )
        for j, st in enumerate(lead.stages):
            if st.entered_at > limit:
                raise RequestError(
                    f"stage time {st.entered_at.isoformat()} is after as_of {as_of.isoformat()}",
                    f"leads[{i}].stages[{j}].entered_at",
                )


def check_outcomes(outcomes: list[Outcome], now: datetime) -> None:
    """Outcomes cannot happen in the future (beyond :data:`CLOCK_SKEW`)."""
    from serving.errors import RequestError

    for i, o in enumerate(outcomes):
        if o.at > now + CLOCK_SKEW:
            raise RequestError(
                f"outcome time {o.at.isoformat()} is in the future", f"outcomes[{i}].at"
            )


def _custom_json(row: Any) -> dict[str, dict[str, Any]]:
    """An imported lead's attr_*/counter_* columns as the request's attributes/counters."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in row._asdict().items():
        for prefix, field in (("attr_", "attributes"), ("counter_", "counters")):
            if key.startswith(prefix) and not pd.isna(value):
                if isinstance(value, (bool, np.bool_)):
                    value = bool(value)
                elif isinstance(value, (int, float, np.number)):
                    value = float(value)
                out.setdefault(field, {})[key.removeprefix(prefix)] = value
    return out
