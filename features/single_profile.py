"""The funnel profile of a request's leads without DataFrames: persona, lifecycle stage,
segment, funnel stage, content phase and next content, as ``features.content.
funnel_profile`` gives them on the tables ``serving.schemas.leads_to_tables`` builds.

The rules are the table path's, read from it: the persona classifier compiled from the
persona definitions (:meth:`_PersonaModel.posterior`, the title evidence and topic
likelihoods), the defaults of ``lifecycle_stages`` and ``content_phase`` (windows, event
types, topics; read from their signatures), ``ContentLibrary.candidates`` for the content
lists, and the cut in time of ``features.pointintime``: only stage entries and events
strictly before as_of count, and the "last d days" rules exclude the window start.
tests/scoring/test_single_scoring.py checks the answers are the table path's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from crm.vocabulary import EVENT_TYPES, LIFECYCLE_STAGES, STAGE_RANK, STAGES
from features.content import PHASES, ContentLibrary, content_phase, default_library
from features.encoding import SMALL
from features.lifecycle import lifecycle_stages
from features.personas import PersonaConfig, default_personas
from features.pointintime import NAT_NS, AsOf, window_ns
from features.single import RequestEvents, times_ns


@lru_cache(maxsize=4)
def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword defaults of a table-path rule: the one place its parameters are set."""
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _lifecycle(lead: Any, ev: RequestEvents, i: int, as_of: int, ranks: list[int]) -> int:
    """Code into LIFECYCLE_STAGES of lead ``i`` (rules: features.lifecycle); ``ranks`` gets
    the furthest funnel stage rank it entered before as_of."""
    rules = _defaults(lifecycle_stages)
    purchased = None
    best = STAGE_RANK["lead"]
    if lead.stages:
        entered = times_ns([st.entered_at for st in lead.stages]).tolist()
        for st, at in zip(lead.stages, entered, strict=True):
            if at == NAT_NS or as_of - at <= 0:
                continue
            rank = STAGE_RANK[st.stage]
            best = max(best, rank)
            if rank == STAGE_RANK["customer"] and (purchased is None or at < purchased):
                purchased = at
    ranks.append(best)
    if purchased is None:
        return 0
    if as_of - purchased < window_ns(rules["new_customer_days"]):
        return 1
    referred = active = False
    lo, hi = int(ev.offsets[i]), int(ev.offsets[i + 1])
    for j in range(lo, hi):
        if ev.age[j] > 0 and ev.at[j] > purchased:
            typ = EVENT_TYPES[ev.typ[j]]
            referred |= typ in rules["referral_types"]
            active |= typ in rules["activity_types"] and ev.topic[j] in rules["activity_topics"]
    return 3 if referred else 2 if active else 1


def _recent(ev: RequestEvents, kinds: tuple[str, ...], days: float, k: int) -> np.ndarray:
    """Per lead, its events of ``kinds`` in the last ``days`` days (window start excluded)."""
    is_kind = np.zeros(len(EVENT_TYPES), dtype=bool)
    is_kind[[EVENT_TYPES.index(t) for t in kinds]] = True
    hit = is_kind[ev.typ] & (ev.age > 0) & AsOf.in_window(ev.age, days, include_start=False)
    return np.bincount(ev.lead[hit], minlength=k)


def _phases(ev: RequestEvents, funnel: list[str]) -> np.ndarray:
    """0 awareness, 1 consideration, 2 decision per lead (features.content.content_phase)."""
    r = _defaults(content_phase)
    k = len(funnel)
    decision = np.array([f in r["decision_stages"] for f in funnel], dtype=bool)
    decision |= _recent(ev, r["decision_types"], r["decision_window_days"], k) > 0
    consider = _recent(ev, r["consideration_types"], r["consideration_window_days"], k) > 0
    consider |= _recent(ev, r["visit_types"], r["visit_window_days"], k) >= r["min_visits"]
    return np.where(decision, 2, np.where(consider, 1, 0))


def _personas(leads: Sequence[Any], ev: RequestEvents, cfg: PersonaConfig) -> tuple:
    """(persona, persona_confidence) per lead: the compiled classifier of the table path."""
    model = cfg.compiled
    k, v = len(leads), len(model.vocab)
    lookup = model.vocab_lookup
    code = np.fromiter(
        (-1 if t is None else lookup.get(t, -1) for t in ev.topic), np.intp, len(ev.topic)
    )
    ok = (code >= 0) & (ev.age > 0)
    counts = np.bincount(ev.lead[ok] * v + code[ok], minlength=k * v).reshape(k, v)
    titles: Any = [lead.job_title for lead in leads]
    if len(titles) > SMALL:  # the classifier factorises long title columns
        titles = pd.Series(titles, dtype=object)
    post = model.posterior(titles, counts.astype(float))
    best = post.argmax(axis=1)
    return model.names[best], post[np.arange(k), best]


def request_profile(
    leads: Sequence[Any],
    as_of: np.ndarray,
    events: RequestEvents,
    personas: PersonaConfig | None = None,
    library: ContentLibrary | None = None,
    n_content: int = 3,
) -> dict[str, list[Any]]:
    """The profile columns of ``funnel_profile`` (persona, persona_confidence,
    lifecycle_stage, segment, funnel_stage, content_stage, next_content), one list each,
    for a request's leads as of ``as_of`` (int64 ns per lead) with their ``events``
    (``FeatureRows.events``)."""
    cfg = personas if personas is not None else default_personas()
    lib = library if library is not None else default_library()
    who, confidence = _personas(leads, events, cfg)
    moments = as_of.tolist()
    ranks: list[int] = []
    stages = [
        LIFECYCLE_STAGES[_lifecycle(lead, events, i, moments[i], ranks)]
        for i, lead in enumerate(leads)
    ]
    funnel = [STAGES[r] for r in ranks]
    persona = who.tolist()
    segment = [f"{p}/{s}" for p, s in zip(persona, stages, strict=True)]
    phase = [PHASES[c] for c in _phases(events, funnel).tolist()]
    lookup = lib.position_of
    before = events.before.tolist()
    consumed: list[set[int]] = [set() for _ in leads]
    for j, (c, lead) in enumerate(zip(events.content, events.lead.tolist(), strict=True)):
        if c is not None and before[j] and c in lookup:
            consumed[lead].add(lookup[c])
    nxt = []
    for i in range(len(leads)):
        picks = [p for p in lib.candidates(segment[i], phase[i]) if p not in consumed[i]]
        nxt.append([lib.items[p].content_id for p in picks[:n_content]])
    return {
        "persona": persona,
        "persona_confidence": confidence.tolist(),
        "lifecycle_stage": stages,
        "segment": segment,
        "funnel_stage": funnel,
        "content_stage": phase,
        "next_content": nxt,
    }
