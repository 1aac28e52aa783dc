"""Buyer personas from configuration: who a lead is, from its job title and its topics.

A persona (DOMAIN.md: subscriber, evaluator, marketer, ...) is defined in YAML, not in code:
each company has its own. ``load_personas`` reads the shipped ``personas.yaml`` or a
user's file into a frozen :class:`PersonaConfig`; a bad file raises :class:`ConfigError`
naming the file and the key (``personas[1] (evaluator).topics.fixes: ...``).

``assign_personas`` is a naive-Bayes classifier whose likelihoods come from the definitions:

    log posterior(p) = log prior(p) + title evidence(p)
                       + topic_event_weight x sum over topical events of log P(topic | p)

- P(topic | p) = motive_share x w(p, topic) / sum_t w(p, t) + (1 - motive_share) / V, with
  V the number of known topics (all persona topics plus ``general_topics``). Topics that no
  persona lists, and unknown topics, are equally likely under every persona: no signal.
- title evidence: log(role_likelihood_ratio) for each persona with a role pattern matching
  the normalised job title; only when no persona's role matched, log(
  department_likelihood_ratio) for each persona listing the title's department
  (``features.jobtitle``).
- Only events strictly before ``as_of`` count (a Timestamp, or a Series of per-lead
  timestamps indexed by lead_id): the assignment is point-in-time.

``persona_confidence`` is the posterior share of the chosen persona. A lead without any
evidence gets the persona with the highest prior, at that prior's share.

Everything runs on integer codes (one ``np.bincount`` over lead x topic, a small matrix
product, one regex pass per *distinct* job title), so 100k leads with 5M events take about a
second, and one lead a fraction of a millisecond.

``discover_personas`` (``features.persona_discovery``) proposes persona definitions from
data, as YAML text of the same schema, for a data scientist to review.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from features.config import read_yaml_config
from features.encoding import SMALL, lead_index, positions
from features.pointintime import AsOf, Moment, events_before

try:  # the job-title parser is optional: without it, titles are only lower-cased
    from features.jobtitle import normalize_title as _normalize_title
    from features.jobtitle import parse_job_title as _parse_job_title
except ImportError:  # pragma: no cover - exercised only when jobtitle.py is absent
    _normalize_title = None
    _parse_job_title = None

DEFAULT_PERSONAS_PATH = Path(__file__).with_name("personas.yaml")


# ---------------------------------------------------------------- the persona schema
def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


_Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
_Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Pattern = Annotated[str, Field(min_length=1), AfterValidator(_check_regex)]


class PersonaDefinition(BaseModel):
    """One persona: what it reads (topic weights) and who it is (job-title patterns)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: _Name
    description: str = ""
    prior: _Weight = 1.0
    topics: dict[Annotated[str, Field(min_length=1)], _Weight] = Field(min_length=1)
    roles: tuple[_Pattern, ...] = ()
    departments: tuple[str, ...] = ()


class PersonaScoring(BaseModel):
    """How strongly each kind of evidence counts (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    motive_share: float = Field(0.7, gt=0, lt=1)
    role_likelihood_ratio: float = Field(8.0, ge=1, allow_inf_nan=False)
    department_likelihood_ratio: float = Field(2.0, ge=1, allow_inf_nan=False)
    topic_event_weight: float = Field(1.0, gt=0, le=10)


class PersonaConfig(BaseModel):
    """All persona definitions of one company, plus the scoring settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    scoring: PersonaScoring = PersonaScoring()
    general_topics: tuple[str, ...] = ()
    personas: tuple[PersonaDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> PersonaConfig:
        seen: set[str] = set()
        for p in self.personas:
            if p.name in seen:
                raise ValueError(f"personas: persona name {p.name!r} is used twice")
            seen.add(p.name)
        motive = {t for p in self.personas for t in p.topics}
        both = sorted(motive.intersection(self.general_topics))
        if both:
            raise ValueError(
                f"general_topics: {both} are also persona topics; a topic is either a motive "
                "of some persona or general"
            )
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.personas)

    @cached_property
    def compiled(self) -> _PersonaModel:
        return _PersonaModel.build(self)


def load_personas(path: str | Path | None = None) -> PersonaConfig:
    """Persona definitions from a YAML file; ``None`` = the shipped ``personas.yaml``."""
    return read_yaml_config(
        PersonaConfig, Path(path) if path is not None else DEFAULT_PERSONAS_PATH
    )


def parse_personas(text: str | Mapping[str, Any], source: str = "<personas>") -> PersonaConfig:
    """Persona definitions from YAML text or an already parsed mapping."""
    return read_yaml_config(PersonaConfig, text, source)


# ---------------------------------------------------------------- job titles
def normalize_title(title: object) -> str:
    """Lower-case ASCII words separated by single spaces ("" when missing)."""
    if _normalize_title is not None:
        return _normalize_title(title)
    if not isinstance(title, str):
        return ""
    return re.sub(r"[^a-z0-9]+", " ", title.lower().replace(".", "")).strip()


def department_of(title: object) -> str:
    if _parse_job_title is None or not isinstance(title, str):
        return "unknown"
    return _parse_job_title(title)[1]


# ---------------------------------------------------------------- the classifier
@dataclass(frozen=True)
class _PersonaModel:
    """Arrays compiled once per PersonaConfig (cached on it)."""

    names: np.ndarray
    vocab: pd.Index
    topic_loglik: np.ndarray  # (V, P), centred per topic
    log_prior: np.ndarray  # (P,)
    patterns: tuple[re.Pattern[str] | None, ...]
    departments: tuple[frozenset[str], ...]
    log_role: float
    log_department: float
    event_weight: float
    no_evidence: np.ndarray
    vocab_lookup: dict[str, int]
    # Per-model data on the object that owns it: title -> evidence row under these
    # definitions, bounded (cleared at 100k titles), never pickled (see __getstate__).
    title_cache: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the title cache: its keys are the raw job titles this process has
        seen (in training, the training leads'), which must not travel inside a registered
        model. It fills again as titles are scored."""
        return {**self.__dict__, "title_cache": {}}

    @classmethod
    def build(cls, cfg: PersonaConfig) -> _PersonaModel:
        vocab: list[str] = []
        for p in cfg.personas:
            vocab += [t for t in p.topics if t not in vocab]
        vocab += [t for t in cfg.general_topics if t not in vocab]
        s = cfg.scoring.motive_share
        lik = np.full((len(vocab), len(cfg.personas)), (1.0 - s) / len(vocab))
        for j, p in enumerate(cfg.personas):
            total = sum(p.topics.values())
            for t, w in p.topics.items():
                lik[vocab.index(t), j] += s * w / total
        loglik = np.log(lik)
        loglik -= loglik.mean(axis=1, keepdims=True)
        prior = np.array([p.prior for p in cfg.personas])
        return cls(
            names=np.array(cfg.names, dtype=object),
            vocab=pd.Index(vocab),
            topic_loglik=loglik,
            log_prior=np.log(prior / prior.sum()),
            patterns=tuple(
                re.compile("|".join(f"(?:{r})" for r in p.roles)) if p.roles else None
                for p in cfg.personas
            ),
            departments=tuple(frozenset(p.departments) for p in cfg.personas),
            log_role=math.log(cfg.scoring.role_likelihood_ratio),
            log_department=math.log(cfg.scoring.department_likelihood_ratio),
            event_weight=cfg.scoring.topic_event_weight,
            no_evidence=np.zeros(len(cfg.personas)),
            vocab_lookup={t: i for i, t in enumerate(vocab)},
        )

    def title_evidence(self, titles: pd.Series) -> np.ndarray:
        """(n, P) log-likelihood ratios from the job titles; each distinct title parsed once
        per process (a bounded cache on the compiled model)."""
        n_p = len(self.names)
        if len(titles) <= SMALL:
            return np.array([self._title_row(t) for t in titles]).reshape(len(titles), n_p)
        codes, uniques = pd.factorize(titles, use_na_sentinel=True)
        ev = np.zeros((len(uniques) + 1, n_p))  # the last row serves missing titles
        for i, title in enumerate(uniques):
            ev[i] = self._title_row(title)
        return ev[codes]

    def _title_row(self, title: object) -> np.ndarray:
        if not isinstance(title, str):
            return self.no_evidence
        row = self.title_cache.get(title)
        if row is not None:
            return row
        row = self.no_evidence
        text = normalize_title(title)
        if text:
            hit = [rx is not None and rx.search(text) is not None for rx in self.patterns]
            if any(hit):
                row = np.where(hit, self.log_role, 0.0)
            elif self.log_department > 0 and any(self.departments):
                dep = department_of(title)
                row = np.array([self.log_department if dep in d else 0.0 for d in self.departments])
        if len(self.title_cache) >= 100_000:
            self.title_cache.clear()
        self.title_cache[title] = row
        return row

    def topic_counts(
        self, events: pd.DataFrame, leads: pd.Index, as_of: Moment | AsOf
    ) -> np.ndarray:
        """(n, V) counts of topical events before as_of per lead and known topic."""
        n, v = len(leads), len(self.vocab)
        if len(events) == 0 or "topic" not in events.columns:
            return np.zeros((n, v))
        rows, lead_pos, _, _ = events_before(events, leads, as_of)
        topic_pos = positions(events["topic"], self.vocab, self.vocab_lookup)[rows]
        ok = topic_pos >= 0
        flat = lead_pos[ok] * v + topic_pos[ok]
        return np.bincount(flat, minlength=n * v).reshape(n, v).astype(float)

    def posterior(self, titles: pd.Series, counts: np.ndarray) -> np.ndarray:
        logit = (
            self.log_prior
            + self.title_evidence(titles)
            + self.event_weight * (counts @ self.topic_loglik)
        )
        logit -= logit.max(axis=1, keepdims=True)
        p = np.exp(logit)
        return p / p.sum(axis=1, keepdims=True)


def assign_personas(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    as_of: Moment | AsOf,
    definitions: PersonaConfig | None = None,
    probabilities: bool = False,
) -> pd.DataFrame:
    """Persona and persona_confidence per lead (index lead_id, in the order of ``leads``).

    Uses the job title and the topics of events strictly before ``as_of`` (a Timestamp or a
    Series of per-lead timestamps indexed by lead_id). With ``probabilities=True`` the
    posterior of every persona is added as ``p_<name>`` columns."""
    cfg = definitions if definitions is not None else default_personas()
    model = cfg.compiled
    ids = lead_index(leads)
    titles = (
        leads["job_title"]
        if "job_title" in leads.columns
        else pd.Series([None] * len(ids), dtype=object)
    )
    post = model.posterior(titles, model.topic_counts(events, ids, as_of))
    best = post.argmax(axis=1)
    out = pd.DataFrame(
        {
            "persona": model.names[best],
            "persona_confidence": post[np.arange(len(ids)), best],
        },
        index=ids,
    )
    if probabilities:
        for j, name in enumerate(model.names):
            out[f"p_{name}"] = post[:, j]
    return out


# The shipped file, read once per process (a pure function of nothing mutable: the frozen
# PersonaConfig it returns is shared, never changed).
@lru_cache(maxsize=1)
def default_personas() -> PersonaConfig:
    """The shipped definitions, read once per process."""
    return load_personas()
