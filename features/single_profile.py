"""The funnel profile of a request's leads without DataFrames: persona, lifecycle stage,
segment, funnel stage, content phase and next content, as ``features.content.
funnel_profile`` gives them on the tables ``serving.schemas.leads_to_tables`` builds.

The rules are the table path's, read from it: the persona classifier compiled from the
persona definitions (:meth:`_PersonaModel.posterior`, the title evidence and topic
likelihoods), the defaults of ``lifecycle_stages`` and ``content_phase`` (windows, event
types, topics; read from their signatures), ``ContentLibrary.candidates`` for the content
lists, and the cut in time of ``features.pointintime``: only stage entries and events
strictly before as_of count, and the "last d days" rules exclude the window start.
tests/scoring/test_single.py checks the answers are the table path's.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from crm.vocabulary import LIFECYCLE_STAGES, STAGE_RANK, STAGES
from features.content import PHASES, ContentLibrary, _default_library, content_phase
from features.encoding import SMALL
from features.lifecycle import lifecycle_stages
from features.personas import PersonaConfig, _default_personas
from features.pointintime import NAT_NS, window_ns
from features.single import times_ns


@lru_cache(maxsize=4)
def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword defaults of a table-path rule: the one place its parameters are set."""
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


class _LeadEvents:
    """One lead's events strictly before its as_of: types, topics, ages, times, content."""

    __slots__ = ("age", "at", "content", "topic", "type")

    def __init__(self, events: Sequence[Any], ats: np.ndarray, as_of: int) -> None:
        before = [i for i, at in enumerate(ats.tolist()) if as_of - at > 0]
        self.type = [events[i].type for i in before]
        self.topic = [events[i].topic for i in before]
        self.content = [events[i].content_id for i in before]
        self.at = [int(ats[i]) for i in before]
        self.age = [as_of - a for a in self.at]


def _lifecycle(lead: Any, ev: _LeadEvents, as_of: int, funnel_rank: list[int]) -> int:
    """Code into LIFECYCLE_STAGES (rules: features.lifecycle); ``funnel_rank`` gets the
    furthest stage rank entered before as_of."""
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
    funnel_rank.append(best)
    if purchased is None:
        return 0
    if as_of - purchased < window_ns(rules["new_customer_days"]):
        return 1
    referred = active = False
    for typ, topic, at in zip(ev.type, ev.topic, ev.at, strict=True):
        if at > purchased:
            referred |= typ in rules["referral_types"]
            active |= typ in rules["activity_types"] and topic in rules["activity_topics"]
    return 3 if referred else 2 if active else 1


def _phase(ev: _LeadEvents, funnel_stage: str) -> int:
    """0 awareness, 1 consideration, 2 decision (rules: features.content.content_phase)."""
    r = _defaults(content_phase)

    def recent(kinds: tuple[str, ...], days: float) -> int:
        cut = window_ns(days)
        return sum(1 for t, a in zip(ev.type, ev.age, strict=True) if t in kinds and a < cut)

    if funnel_stage in r["decision_stages"]:
        return 2
    if recent(r["decision_types"], r["decision_window_days"]) > 0:
        return 2
    if recent(r["consideration_types"], r["consideration_window_days"]) > 0:
        return 1
    return 1 if recent(r["visit_types"], r["visit_window_days"]) >= r["min_visits"] else 0


def _personas(
    leads: Sequence[Any], events: list[_LeadEvents], cfg: PersonaConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(persona, persona_confidence) per lead: the compiled classifier of the table path."""
    model = cfg._compiled
    counts = np.zeros((len(leads), len(model.vocab)))
    lookup = model.vocab_lookup
    for i, ev in enumerate(events):
        for topic in ev.topic:
            j = lookup.get(topic) if topic is not None else None
            if j is not None:
                counts[i, j] += 1.0
    titles: Any = [lead.job_title for lead in leads]
    if len(titles) > SMALL:  # the classifier factorises long title columns
        titles = pd.Series(titles, dtype=object)
    post = model.posterior(titles, counts)
    best = post.argmax(axis=1)
    return model.names[best], post[np.arange(len(leads)), best]


def request_profile(
    leads: Sequence[Any],
    as_of: int | np.ndarray,
    personas: PersonaConfig | None = None,
    library: ContentLibrary | None = None,
    n_content: int = 3,
) -> dict[str, list[Any]]:
    """The profile columns of ``funnel_profile`` (persona, persona_confidence,
    lifecycle_stage, segment, funnel_stage, content_stage, next_content), one list each,
    for a request's leads as of ``as_of`` (int64 ns, one or one per lead)."""
    k = len(leads)
    moments = as_of.tolist() if isinstance(as_of, np.ndarray) else [int(as_of)] * k
    cfg = personas if personas is not None else _default_personas()
    lib = library if library is not None else _default_library()
    events = [
        _LeadEvents(lead.events, times_ns([e.at for e in lead.events]), t)
        for lead, t in zip(leads, moments, strict=True)
    ]
    who, confidence = _personas(leads, events, cfg)
    out: dict[str, list[Any]] = {
        "persona": who.tolist(),
        "persona_confidence": confidence.tolist(),
        "lifecycle_stage": [],
        "segment": [],
        "funnel_stage": [],
        "content_stage": [],
        "next_content": [],
    }
    ranks: list[int] = []
    for i, (lead, ev) in enumerate(zip(leads, events, strict=True)):
        stage = LIFECYCLE_STAGES[_lifecycle(lead, ev, moments[i], ranks)]
        funnel = STAGES[ranks[-1]]
        segment = f"{out['persona'][i]}/{stage}"
        phase = PHASES[_phase(ev, funnel)]
        consumed = {lib._lookup.get(c) for c in ev.content if c is not None}
        picks = [p for p in lib.candidates(segment, phase) if p not in consumed][:n_content]
        out["lifecycle_stage"].append(stage)
        out["segment"].append(segment)
        out["funnel_stage"].append(funnel)
        out["content_stage"].append(phase)
        out["next_content"].append([lib.items[p].content_id for p in picks])
    return out
