"""Content mapping: which buying phase a lead is in, and which content to send next.

Configuration (both shipped as defaults, both replaceable):

- ``content_catalog.csv``: ``content_id, title, topic, phase, personas`` (phase awareness |
  consideration | decision; personas ``;``-separated, informational).
- ``content_map.yaml``: segment (``persona/lifecycle_stage``, either part may be ``*``) x
  phase -> content ids, best first, plus a ``default`` list per phase.

``load_content`` reads both into a frozen :class:`ContentLibrary`; a bad row or key raises
``ConfigError`` naming the file and the line or key.

``content_phase`` rule (all windows end at ``as_of``, only events strictly before it count;
thresholds are parameters):

- **decision** if the funnel stage is MQL, SAL or opportunity (marketing and sales already
  treat the lead as a buyer), or a ``pricing_view``/``demo_request`` in the last 30 days;
- **consideration** if a webinar registration/attendance, content download or form fill in
  the last 30 days, or at least 3 page views/blog reads in the last 14 days;
- **awareness** otherwise.

Customers follow the same engagement rules (their funnel stage alone does not make them
"deciding"): an active customer looking at pricing is in the decision phase of an upsell.

``next_content`` walks the lists for ``persona/stage``, ``persona/*``, ``*/stage``, ``*/*``
and ``default`` in that order, then the catalog's items of that phase made for the persona
(its ``personas`` column), drops content the lead already consumed (any event with that
``content_id`` before ``as_of``) and keeps the first ``n``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm.vocabulary import CONTENT_PHASES, LIFECYCLE_STAGES
from features.config import ConfigError, read_yaml_config
from features.encoding import lead_index, positions
from features.lifecycle import funnel_stages, lifecycle_stages, segments
from features.personas import PersonaConfig, assign_personas
from features.pointintime import AsOf, Moment, events_before

PHASES: tuple[str, ...] = CONTENT_PHASES
DEFAULT_CATALOG_PATH = Path(__file__).with_name("content_catalog.csv")
DEFAULT_MAP_PATH = Path(__file__).with_name("content_map.yaml")
CATALOG_COLUMNS: tuple[str, ...] = ("content_id", "title", "topic", "phase", "personas")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SEGMENT_KEY = re.compile(r"^(\*|[a-z][a-z0-9_]*)/(\*|[a-z][a-z0-9_]*)$")


# ---------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ContentItem:
    """One piece of content from the catalog."""

    content_id: str
    title: str
    topic: str
    phase: str
    personas: tuple[str, ...]


_Ids = tuple[Annotated[str, Field(min_length=1)], ...]


class PhaseLists(BaseModel):
    """Content ids per buying phase, best first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    awareness: _Ids = ()
    consideration: _Ids = ()
    decision: _Ids = ()


class ContentMap(BaseModel):
    """``content_map.yaml``: lists per segment key (``persona/stage`` with wildcards)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    default: PhaseLists
    segments: dict[str, PhaseLists] = {}

    @model_validator(mode="after")
    def _keys(self) -> ContentMap:
        for key in self.segments:
            m = _SEGMENT_KEY.match(key)
            if m is None:
                raise ValueError(
                    f"segments: key {key!r} must be persona/stage, e.g. evaluator/prospect, "
                    "*/new_customer or marketer/*"
                )
            if m.group(2) != "*" and m.group(2) not in LIFECYCLE_STAGES:
                raise ValueError(
                    f"segments: key {key!r} names stage {m.group(2)!r}; use one of "
                    f"{', '.join(LIFECYCLE_STAGES)} or *"
                )
        return self


@dataclass(frozen=True)
class ContentLibrary:
    """The catalog and the map, checked against each other."""

    items: tuple[ContentItem, ...]
    content_map: ContentMap
    _index: pd.Index = field(init=False, repr=False, compare=False)
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False)
    _candidates: dict[tuple[str, str], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ids = [it.content_id for it in self.items]
        object.__setattr__(self, "_index", pd.Index(ids, dtype=object))
        object.__setattr__(self, "_lookup", {c: i for i, c in enumerate(ids)})

    @property
    def position_of(self) -> dict[str, int]:
        """content id -> its position in :attr:`items` (the field keeps its old name:
        libraries pickled with earlier models hold it under that name)."""
        return self._lookup

    @property
    def content_ids(self) -> tuple[str, ...]:
        return tuple(self._index)

    def item(self, content_id: str) -> ContentItem:
        return self.items[self._lookup[content_id]]

    def catalog(self) -> pd.DataFrame:
        """The catalog as a frame (personas joined with ';' as in the CSV)."""
        rows = [{**it.__dict__, "personas": ";".join(it.personas)} for it in self.items]
        return pd.DataFrame(rows, columns=list(CATALOG_COLUMNS))

    def candidates(self, segment: str, phase: str) -> tuple[int, ...]:
        """Catalog positions for a segment and phase, in fallback order, without repeats."""
        key = (segment, phase)
        hit = self._candidates.get(key)
        if hit is not None:
            return hit
        persona, _, stage = segment.partition("/")
        out: list[int] = []
        seen: set[int] = set()
        keys = (f"{persona}/{stage}", f"{persona}/*", f"*/{stage}", "*/*")
        chain = [self.content_map.segments.get(k) for k in keys]
        ordered: list[int] = []
        for lists_ in [*chain, self.content_map.default]:
            if lists_ is not None:
                ordered += [self._lookup[cid] for cid in getattr(lists_, phase)]
        # last resort: catalog items of the phase made for the persona, in catalog order
        for i, it in enumerate(self.items):
            if it.phase == phase and persona in it.personas:
                ordered.append(i)
        for pos in ordered:
            if pos not in seen:
                seen.add(pos)
                out.append(pos)
        result = tuple(out)
        if len(self._candidates) < 10_000:
            self._candidates[key] = result
        return result


def _read_catalog(path: Path) -> tuple[ContentItem, ...]:
    source = str(path)
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in CATALOG_COLUMNS if c not in header]
            if missing:
                raise ConfigError(
                    f"{source}: missing column(s) {missing}; need {list(CATALOG_COLUMNS)}"
                )
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file: {exc}") from None
    problems: list[str] = []
    items: list[ContentItem] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        cid = (row.get("content_id") or "").strip()
        where = f"line {line} (content_id={cid or '?'})"
        if not cid:
            problems.append(f"  {where}: content_id is empty")
        elif cid in seen:
            problems.append(f"  {where}: content_id {cid!r} already used on line {seen[cid]}")
        else:
            seen[cid] = line
        phase = (row.get("phase") or "").strip()
        if phase not in PHASES:
            problems.append(f"  {where}: phase {phase!r} is not one of {', '.join(PHASES)}")
        topic = (row.get("topic") or "").strip()
        if not topic:
            problems.append(f"  {where}: topic is empty")
        personas = tuple(p.strip() for p in (row.get("personas") or "").split(";") if p.strip())
        bad = [p for p in personas if not _NAME.match(p)]
        if bad:
            problems.append(f"  {where}: personas {bad} are not persona names (a-z, 0-9, _)")
        items.append(ContentItem(cid, (row.get("title") or "").strip(), topic, phase, personas))
    if not items:
        problems.append("  the catalog has no rows")
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n" + "\n".join(problems))
    return tuple(items)


def load_content(
    catalog_path: str | Path | None = None, map_path: str | Path | None = None
) -> ContentLibrary:
    """Catalog CSV + content map YAML (``None`` = the shipped defaults), cross-checked:
    every id in the map must exist in the catalog and sit under the catalog's phase."""
    cat_path = Path(catalog_path) if catalog_path is not None else DEFAULT_CATALOG_PATH
    m_path = Path(map_path) if map_path is not None else DEFAULT_MAP_PATH
    items = _read_catalog(cat_path)
    cmap = read_yaml_config(ContentMap, m_path)
    phase_of = {it.content_id: it.phase for it in items}
    problems = []
    entries = [("default", cmap.default), *((f"segments.{k}", v) for k, v in cmap.segments.items())]
    for key, lists in entries:
        for phase in PHASES:
            for j, cid in enumerate(getattr(lists, phase)):
                where = f"{key}.{phase}[{j}]"
                if cid not in phase_of:
                    problems.append(
                        f"  {where}: unknown content id {cid!r} (not in {cat_path.name})"
                    )
                elif phase_of[cid] != phase and not _customer_key(key):
                    problems.append(
                        f"  {where}: {cid} is {phase_of[cid]!r} content in {cat_path.name}, "
                        f"listed under {phase!r}"
                    )
    if problems:
        raise ConfigError(f"{m_path}: {len(problems)} problem(s):\n" + "\n".join(problems))
    return ContentLibrary(items, cmap)


def _customer_key(key: str) -> bool:
    """Customer segments may reuse content across phases (onboarding fits every phase)."""
    stage = key.rsplit("/", 1)[-1]
    return stage in LIFECYCLE_STAGES[1:]


# The shipped files, read once per process (the frozen ContentLibrary is shared; its own
# candidate cache lives on it and is bounded).
@lru_cache(maxsize=1)
def default_library() -> ContentLibrary:
    return load_content()


# ---------------------------------------------------------------- phase
# A bounded cache of a pure function of an immutable tuple; callers only read the Index
# and the look-up dict it returns.
@lru_cache(maxsize=64)
def _type_index(types: tuple[str, ...]) -> tuple[pd.Index, dict[str, int]]:
    return pd.Index(types), {t: i for i, t in enumerate(types)}


def content_phase(
    events: pd.DataFrame,
    funnel_stage: pd.Series,
    as_of: Moment | AsOf,
    decision_stages: tuple[str, ...] = ("mql", "sal", "opportunity"),
    decision_types: tuple[str, ...] = ("pricing_view", "demo_request"),
    decision_window_days: float = 30.0,
    consideration_types: tuple[str, ...] = (
        "webinar_registered",
        "webinar_attended",
        "content_download",
        "form_submit",
    ),
    consideration_window_days: float = 30.0,
    visit_types: tuple[str, ...] = ("page_view", "blog_read"),
    min_visits: int = 3,
    visit_window_days: float = 14.0,
) -> pd.Series:
    """Buying phase per lead (index = ``funnel_stage.index``): awareness, consideration or
    decision, from the funnel stage and recent engagement (rule in the module docstring)."""
    ids = lead_index(funnel_stage.index)
    n = len(ids)
    snapshot = AsOf.resolve(as_of, ids)
    decision = np.isin(funnel_stage.to_numpy(dtype=object), list(decision_stages))
    consider = np.zeros(n, dtype=bool)
    if len(events):
        rows, pos, _, age = events_before(events, ids, snapshot)
        types = tuple(dict.fromkeys((*decision_types, *consideration_types, *visit_types)))
        tpos = positions(events["type"], *_type_index(types))[rows]

        def recent(kinds: tuple[str, ...], days: float) -> np.ndarray:
            is_kind = np.zeros(len(types) + 1, dtype=bool)  # the last slot: other types
            is_kind[[types.index(k) for k in kinds]] = True
            hit = is_kind[tpos] & AsOf.in_window(age, days, include_start=False)
            return np.bincount(pos[hit], minlength=n)

        decision |= recent(decision_types, decision_window_days) > 0
        consider = recent(consideration_types, consideration_window_days) > 0
        consider |= recent(visit_types, visit_window_days) >= min_visits
    code = np.where(decision, 2, np.where(consider, 1, 0))
    return pd.Series(np.array(PHASES, dtype=object)[code], index=ids, name="content_stage")


# ---------------------------------------------------------------- next content
def next_content(
    segment: pd.Series,
    phase: pd.Series,
    consumed: pd.DataFrame | None = None,
    n: int = 3,
    as_of: Moment | AsOf | None = None,
    library: ContentLibrary | None = None,
) -> pd.Series:
    """Up to ``n`` content ids per lead (a list; index = ``segment.index``) for its segment
    and phase that it has not consumed yet.

    ``consumed`` are events (lead_id, at, content_id); with ``as_of`` only those strictly
    before it count, without it all given events count (the caller cut them already)."""
    lib = library if library is not None else default_library()
    ids = lead_index(segment.index)
    m = len(ids)
    seg = segment.to_numpy(dtype=object)
    ph = phase.reindex(ids).to_numpy(dtype=object)
    bad = [p for p in set(ph) if p not in PHASES]
    if bad:
        raise ValueError(f"next_content: unknown phase(s) {bad}; use {', '.join(PHASES)}")
    # each distinct (segment, phase) pair's candidates are looked up once, on codes
    seg_code, seg_uniques = pd.factorize(seg, use_na_sentinel=False)
    ph_code, ph_uniques = pd.factorize(ph, use_na_sentinel=False)
    pairs, codes = np.unique(
        seg_code.astype(np.int64) * max(len(ph_uniques), 1) + ph_code, return_inverse=True
    )
    codes = codes.ravel()
    width_ph = max(len(ph_uniques), 1)
    lists = [
        lib.candidates(str(seg_uniques[k // width_ph]), ph_uniques[k % width_ph])
        for k in pairs.tolist()
    ]
    width = max((len(c) for c in lists), default=0)
    n_items = len(lib.items)
    table = np.full((len(lists), max(width, 1)), -1, dtype=np.int64)
    for i, c in enumerate(lists):
        table[i, : len(c)] = c
    cand = table[codes]  # (m, width)
    valid = cand >= 0
    if consumed is not None and len(consumed) and "content_id" in consumed.columns:
        if as_of is not None:
            rows, pos, _, _ = events_before(consumed, ids, as_of)
        else:
            pos_all = positions(consumed["lead_id"], ids)
            rows = np.flatnonzero(pos_all >= 0)
            pos = pos_all[rows]
        cpos = positions(consumed["content_id"], lib._index, lib._lookup)[rows]
        ok = cpos >= 0
        keys = pos[ok] * n_items + cpos[ok]
        flat = np.arange(m)[:, None] * n_items + np.where(valid, cand, 0)
        if m * n_items <= 50_000_000:
            seen_mat = np.zeros(m * n_items, dtype=bool)
            seen_mat[keys] = True
            seen = seen_mat[flat]
        else:
            seen = np.isin(flat, keys)
        valid &= ~seen
    pick = valid & (np.cumsum(valid, axis=1) <= n)
    order = np.argsort(~pick, axis=1, kind="stable")[:, :n]
    chosen = np.take_along_axis(np.where(pick, cand, n_items), order, axis=1)
    id_of = np.array([*lib.content_ids, None], dtype=object)
    kept = np.minimum(valid.sum(axis=1), n).tolist()  # the picks come first in each row
    out = [row[:k] for row, k in zip(id_of[chosen].tolist(), kept, strict=True)]
    return pd.Series(out, index=ids, name="next_content", dtype=object)


# ---------------------------------------------------------------- everything for one call
def funnel_profile(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    stage_history: pd.DataFrame,
    as_of: Moment | AsOf,
    personas: PersonaConfig | None = None,
    library: ContentLibrary | None = None,
    n_content: int = 3,
    phase_options: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Persona, lifecycle stage, segment, funnel stage, content phase and next content per
    lead (index lead_id), all as of ``as_of``: the answer's marketing columns.

    ``as_of`` is resolved once for the leads and the same snapshot serves every step."""
    snapshot = AsOf.resolve(as_of, lead_index(leads))
    who = assign_personas(leads, events, snapshot, personas)
    stage = lifecycle_stages(leads, stage_history, events, snapshot)
    funnel = funnel_stages(leads, stage_history, snapshot)
    seg = segments(who, stage)
    phase = content_phase(events, funnel, snapshot, **dict(phase_options or {}))
    nxt = next_content(seg, phase, events, n=n_content, as_of=snapshot, library=library)
    columns = {c: who[c].to_numpy() for c in who.columns}
    for s in (stage, seg, funnel, phase, nxt):
        columns[s.name] = s.to_numpy()
    return pd.DataFrame(columns, index=who.index)
